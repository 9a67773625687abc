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
import pathlib
import subprocess
import unittest
import uuid

import fixtures
import sqlalchemy as sa
import testtools

from glance.tests.unit import db as db_tests
from glance.tests import utils

ERROR_PREFIX = 'glance-manage: Cannot use the database at '


def glance_manage():
    return utils.console_script('glance-manage')


def missing_postgresql_database_url(server):
    """A URL on the real PostgreSQL server naming a database it lacks."""
    missing = 'glance_missing_%s' % uuid.uuid4().hex[:12]
    return sa.engine.make_url(server.url).set(database=missing)\
        .render_as_string(hide_password=False), missing


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


class BadInput(fixtures.Fixture):
    """Every case's db sync, run at once.

    :ivar outcomes: name -> (returncode, output, texts the error line must
        contain).
    :ivar skipped: name -> why a case whose server is missing here was not
        run (CI fails instead).
    """

    def _setUp(self):
        folder = pathlib.Path(self.useFixture(fixtures.TempDir()).path)
        cases = self._cases()
        processes = {name: start_manage(folder, name, url, 'db', 'sync')
                     for name, (url, _expected) in cases.items()}
        self.outcomes = {}
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=120)
            self.outcomes[name] = (process.returncode, stdout + stderr,
                                   cases[name][1])

    def _cases(self):
        """name -> (connection URL, texts the error line must contain)."""
        cases = {
            'unreachable-mysql': (
                'mysql+pymysql://root:s3cret@127.0.0.1:3399/glance',
                ['mysql+pymysql://root:***@127.0.0.1:3399/glance: ',
                 "Can't connect"]),
            'unknown-dialect': ('foo://bar', ['foo://bar: ', 'dialects:foo']),
            'malformed-url': ('notaurl', ['Could not parse']),
        }
        self.skipped = {}
        try:
            server = db_tests.set_up_database('postgresql', migrate=False)
        except unittest.SkipTest as reason:
            self.skipped['missing-postgresql-database'] = str(reason)
        else:
            self.addCleanup(server.cleanUp)
            missing_url, missing_name = missing_postgresql_database_url(
                server)
            cases['missing-postgresql-database'] = (
                missing_url, [missing_name, 'does not exist'])
        return cases


class TestBadDatabase(testtools.TestCase):
    """db sync refuses a database it cannot use, in one line."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bad_input = db_tests.set_up(BadInput())

    @classmethod
    def tearDownClass(cls):
        cls.bad_input.cleanUp()
        super().tearDownClass()

    def check_one_clear_line(self, case):
        if case in self.bad_input.skipped:
            self.skipTest(self.bad_input.skipped[case])
        returncode, output, expected = self.bad_input.outcomes[case]

        self.assertNotIn('Traceback', output)
        self.assertNotEqual(0, returncode, output)
        error_lines = [line for line in output.splitlines()
                       if line.startswith(ERROR_PREFIX)]
        self.assertEqual(1, len(error_lines), output)
        for text in expected:
            self.assertIn(text, error_lines[0], output)

    def test_unreachable_mysql_is_one_clear_line(self):
        self.check_one_clear_line('unreachable-mysql')

    def test_unknown_dialect_is_one_clear_line(self):
        self.check_one_clear_line('unknown-dialect')

    def test_malformed_url_is_one_clear_line(self):
        self.check_one_clear_line('malformed-url')

    def test_missing_postgresql_database_is_one_clear_line(self):
        self.check_one_clear_line('missing-postgresql-database')

    def test_password_is_never_shown(self):
        _returncode, output, _expected = self.bad_input.outcomes[
            'unreachable-mysql']

        self.assertNotIn('s3cret', output)

    def test_no_deprecation_noise_around_the_error(self):
        """The eventlet deprecation banner (eight lines) buries the error."""
        _returncode, output, _expected = self.bad_input.outcomes[
            'unknown-dialect']

        self.assertNotIn('Eventlet is deprecated', output)
