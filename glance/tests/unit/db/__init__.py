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

"""Tests of the database layer, on real SQLite, MariaDB and PostgreSQL.

A group of tests that must hold on every server is written once, as a
mixin named for the behaviour, and run by one concrete class per server::

    class ClaimImagesTests:
        def test_...(self): ...

    class TestClaimImagesOnSQLite(ClaimImagesTests, db.SQLiteTestCase):
        pass

(likewise ``db.MySQLTestCase`` and ``db.PostgreSQLTestCase``). The mixin
is no TestCase, so it is never run on its own.
"""

import unittest

import fixtures
import sqlalchemy as sa
import testtools

from glance import context
from glance.db.sqlalchemy import api
from glance.db.sqlalchemy import models
from glance.tests import databases
from glance.tests.unit import children


def set_up(fixture):
    """*fixture* set up outside a test (setUpClass); the caller cleans up.

    fixtures wraps any failure of setUp() in MultipleExceptions, once per
    level of nested fixtures, which would turn a missing server's skip
    into an error: unwrap it so that a skip stays a skip (CI still fails,
    as it should).
    """
    try:
        fixture.setUp()
    except fixtures.MultipleExceptions as error:
        first = error
        while isinstance(first, fixtures.MultipleExceptions):
            first = first.args[0][1]
        if isinstance(first, unittest.SkipTest):
            raise unittest.SkipTest(str(first))
        raise
    return fixture


def set_up_database(backend, migrate=True):
    """A set-up databases.Database outside a test; the caller cleans up."""
    return set_up(databases.Database(backend, migrate=migrate))


def clear(engine):
    """Delete every image and what hangs off it."""
    with engine.begin() as connection:
        children.clear(connection)
        connection.execute(models.ImageLocation.__table__.delete())
        connection.execute(models.Image.__table__.delete())


class DatabaseTestCase(testtools.TestCase):
    """A migrated database on the server *backend* names, for a class.

    The database is made once for the class (making one per test would
    dominate the run time) and dropped after its last test; a missing
    server skips the class, or fails it under CI. Each test starts from
    empty tables and the database API configured on them.

    :ivar database: the databases.Database of the class.
    :ivar engine: an engine on it, for the test's own reads and writes.
    :ivar context: an admin request context.
    """

    backend = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.database = set_up_database(cls.backend)

    @classmethod
    def tearDownClass(cls):
        cls.database.cleanUp()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        clear(self.database.engine)
        api.configure(connection=self.database.url, max_retries=1,
                      retry_interval=0)
        self.addCleanup(api.reset)
        self.engine = self.database.engine
        self.context = context.get_admin_context()

    def use_database(self, migrate=True):
        """Another database on the same server, dropped after the test.

        The database API lets go of it first, whatever the test configured.
        """
        database = self.useFixture(databases.Database(self.backend,
                                                      migrate=migrate))
        self.addCleanup(api.reset)
        return database

    def use_replica(self):
        """A second migrated database, as ``[database] slave_connection``.

        A replica that lags behind: the test writes to it what it wants
        the replica to show.
        """
        replica = self.use_database()
        api.configure(connection=self.database.url,
                      slave_connection=replica.url, max_retries=1,
                      retry_interval=0)
        return replica


class SQLiteTestCase(DatabaseTestCase):
    backend = 'sqlite'


class MySQLTestCase(DatabaseTestCase):
    backend = 'mysql'


class PostgreSQLTestCase(DatabaseTestCase):
    backend = 'postgresql'


class StatementCounter:
    """Counts the SQL statements an engine sends, transaction control aside.

    oslo.db sends an explicit BEGIN on SQLite (embedded, no round trip);
    that is demarcation, not a query, so it is not counted.
    """

    TRANSACTION_CONTROL = ('BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT',
                           'RELEASE')

    def __init__(self, engine):
        self.engine = engine
        self.statements = []

    def _record(self, conn, cursor, statement, parameters, context,
                executemany):
        if not statement.lstrip().upper().startswith(
                self.TRANSACTION_CONTROL):
            self.statements.append(statement)

    def __enter__(self):
        sa.event.listen(self.engine, 'before_cursor_execute', self._record)
        return self

    def __exit__(self, *exc_info):
        sa.event.remove(self.engine, 'before_cursor_execute', self._record)

    def take(self):
        statements, self.statements = self.statements, []
        return statements
