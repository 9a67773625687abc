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

"""Bad database input through the real glance-manage console script.

Each case must end with a non-zero exit and one line that names the
database and the problem, never a traceback. The cases are independent,
so their processes run side by side (start-up dominates their cost).
"""

import os
import subprocess
import unittest
import uuid

import pytest
import sqlalchemy as sa

from glance.tests.unit.db import set_up_database
from glance.tests import utils

ERROR_PREFIX = 'glance-manage: Cannot use the database at '
# Cases whose server is missing here: name -> reason (CI fails instead).
SKIPPED = {}


def glance_manage():
    return utils.console_script('glance-manage')


def missing_postgresql_database_url(request):
    """A URL on the real PostgreSQL server naming a database it lacks."""
    server = set_up_database('postgresql', migrate=False)
    request.addfinalizer(server.cleanUp)
    missing = 'glance_missing_%s' % uuid.uuid4().hex[:12]
    return sa.engine.make_url(server.url).set(database=missing)\
        .render_as_string(hide_password=False), missing


def bad_input_cases(request):
    """name -> (connection URL, texts the error line must contain)."""
    cases = {
        'unreachable-mysql': (
            'mysql+pymysql://root:s3cret@127.0.0.1:3399/glance',
            ['mysql+pymysql://root:***@127.0.0.1:3399/glance: ',
             "Can't connect"]),
        'unknown-dialect': ('foo://bar', ['foo://bar: ', 'dialects:foo']),
        'malformed-url': ('notaurl', ['Could not parse']),
    }
    try:
        missing_url, missing_name = missing_postgresql_database_url(request)
    except unittest.SkipTest as reason:
        SKIPPED['missing-postgresql-database'] = str(reason)
    else:
        cases['missing-postgresql-database'] = (
            missing_url, [missing_name, 'does not exist'])
    return cases


def start_manage(folder, name, url, *command):
    config = folder / ('%s.conf' % name)
    config.write_text('[database]\nconnection = %s\nmax_retries = 1\n'
                      'retry_interval = 1\n' % url)
    environment = dict(os.environ)
    # The unit tests pick the threading backend for themselves; the command
    # runs with its own default, as deployed.
    environment.pop('OS_GLANCE_SCRUBBER_BACKEND', None)
    return subprocess.Popen(
        [glance_manage(), '--config-file', str(config)] + list(command),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environment)


@pytest.fixture(scope='module')
def outcomes(request, tmp_path_factory):
    """Start every case at once; name -> (returncode, output, expected)."""
    folder = tmp_path_factory.mktemp('manage')
    cases = bad_input_cases(request)
    processes = {name: start_manage(folder, name, url, 'db', 'sync')
                 for name, (url, _expected) in cases.items()}
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        results[name] = (process.returncode, stdout + stderr,
                         cases[name][1])
    return results


@pytest.mark.parametrize('case', ['unreachable-mysql', 'unknown-dialect',
                                  'malformed-url',
                                  'missing-postgresql-database'])
def test_bad_database_is_one_clear_line(outcomes, case):
    if case in SKIPPED:
        pytest.skip(SKIPPED[case])
    returncode, output, expected = outcomes[case]

    assert 'Traceback' not in output, output
    assert returncode != 0, output
    error_lines = [line for line in output.splitlines()
                   if line.startswith(ERROR_PREFIX)]
    assert len(error_lines) == 1, output
    for text in expected:
        assert text in error_lines[0], output


def test_password_is_never_shown(outcomes):
    returncode, output, _expected = outcomes['unreachable-mysql']

    assert 's3cret' not in output


def test_no_deprecation_noise_around_the_error(outcomes):
    """The eventlet deprecation banner (eight lines) buries the error."""
    _returncode, output, _expected = outcomes['unknown-dialect']

    assert 'Eventlet is deprecated' not in output, output
