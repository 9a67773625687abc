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

"""The unit tests: testtools classes, pytest (or stestr) the runner alone.

Every unit test is a method of a testtools.TestCase class named for the
behaviour it groups, with self.assert* and useFixture rather than pytest's
assert rewriting and fixtures. That is OpenStack's convention (stestr and
oslotest run the same classes), fixtures' cleanUp discipline holds
whatever fails (cleanups run in reverse order, even after an error in
setUp), and most of the tree was written so already. What a room's tests
share is a base class (glance/tests/unit/scrubber/base.py, the database
bases of glance/tests/unit/db/__init__.py) rather than pytest fixtures
spread over conftest files; a group that must hold on every database
server is a mixin with one concrete class per server. The functional
tests stay pytest functions: their fixtures start real servers.
tools/check_test_assertions.py (tox -e pep8) holds the rule.
"""

# Unit tests run in one process on native threads: select the threading
# backend before glance.scrubber or glance.cmd import oslo.service, so
# that nothing monkey patches the test runner. The eventlet backend is
# exercised by the green executor tests here and, monkey patched, by the
# functional tests that run the real glance-scrubber.
import os
import pathlib

os.environ.setdefault('OS_GLANCE_SCRUBBER_BACKEND', 'threading')

from oslo_service import backend as _service_backend  # noqa: E402

if _service_backend.get_backend_type() is None:
    _service_backend.init_backend(_service_backend.BackendType.THREADING)

import fixtures  # noqa: E402
import testtools  # noqa: E402

from glance import context  # noqa: E402
from glance.db.sqlalchemy import api as db_api  # noqa: E402
from glance.tests import databases  # noqa: E402


class SQLiteTestCase(testtools.TestCase):
    """A migrated SQLite database the database API is configured for."""

    def setUp(self):
        super().setUp()
        self.db = self.useFixture(databases.Database('sqlite'))
        db_api.configure(connection=self.db.url)
        self.addCleanup(db_api.reset)
        self.context = context.get_admin_context()


def temporary_folder(test):
    """A folder of *test*'s own, removed after it: a pathlib.Path."""
    return pathlib.Path(test.useFixture(fixtures.TempDir()).path)
