# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""--version of the real console scripts prints the installed version."""

from importlib import metadata
import subprocess

import pytest

from glance.tests import utils


def installed_version():
    return metadata.version('glance')


def test_the_installed_version_is_a_release_of_this_tree():
    # pbr's fallback without a git tag or a version in setup.cfg is
    # 0.0.1.devN, which says nothing about what is installed.
    assert not installed_version().startswith('0.0.')


@pytest.mark.parametrize('command', ['glance-scrubber', 'glance-manage'])
def test_version_prints_the_installed_version(command):
    # Neither needs a configuration file nor a database to answer.
    result = subprocess.run(
        [utils.console_script(command), '--version'],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == installed_version()
    assert result.stderr == ''
