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

import testtools

from glance.tests import utils


def installed_version():
    return metadata.version('glance')


class TestVersion(testtools.TestCase):
    """The installed version, as the console scripts print it."""

    def test_the_installed_version_is_a_release_of_this_tree(self):
        # pbr's fallback without a git tag or a version in setup.cfg is
        # 0.0.1.devN, which says nothing about what is installed.
        self.assertFalse(installed_version().startswith('0.0.'),
                         installed_version())

    def check_version_printed(self, command):
        # Neither needs a configuration file nor a database to answer.
        result = subprocess.run(
            [utils.console_script(command), '--version'],
            capture_output=True, text=True, timeout=60, check=False)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertEqual(installed_version(), result.stdout.strip())
        self.assertEqual('', result.stderr)

    def test_glance_scrubber_version_prints_the_installed_version(self):
        self.check_version_printed('glance-scrubber')

    def test_glance_manage_version_prints_the_installed_version(self):
        self.check_version_printed('glance-manage')
