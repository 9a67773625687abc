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

"""Real databases for the tests: SQLite, MariaDB/MySQL and PostgreSQL.

Each Database fixture creates a database of its own, lays the glance schema
down with this tree's migrations (or leaves it empty) and drops it
afterwards. The servers are the ones this machine and CI run; their admin
URLs can be overridden with GLANCE_TEST_MYSQL_URL and
GLANCE_TEST_POSTGRESQL_URL. A missing server skips the test, except under
CI (CI=true), where it fails it.
"""

import os
import unittest
import uuid

import fixtures
from oslo_db.sqlalchemy import provision
import sqlalchemy as sa

from glance.db.sqlalchemy import alembic_migrations

BACKENDS = ('sqlite', 'mysql', 'postgresql')

ADMIN_URLS = {
    'mysql': os.environ.get('GLANCE_TEST_MYSQL_URL',
                            'mysql+pymysql://root@127.0.0.1:3306/test'),
    'postgresql': os.environ.get(
        'GLANCE_TEST_POSTGRESQL_URL',
        'postgresql+psycopg2://root@127.0.0.1:5432/test'),
}

_servers = {}


class ServerUnavailable(Exception):
    pass


def under_ci():
    return os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


class Unavailable(RuntimeError):
    """Something a test needs is missing, under CI where that is an error."""


def unavailable(reason):
    """The exception for a missing server or program a test needs.

    SkipTest, or under CI (where every backend is installed) an error.
    """
    if under_ci():
        return Unavailable(reason)
    return unittest.SkipTest(reason)


def _server(backend):
    """The oslo.db provisioning backend for a server, checked once."""
    if backend not in _servers:
        server = provision.Backend(backend, ADMIN_URLS[backend])
        try:
            server._verify()
        except Exception as error:  # noqa: BLE001 - reported as the reason
            server = ServerUnavailable('%s server at %s unavailable: %s' % (
                backend, ADMIN_URLS[backend], error))
        _servers[backend] = server
    server = _servers[backend]
    if isinstance(server, ServerUnavailable):
        raise server
    return server


class Database(fixtures.Fixture):
    """A database of its own on *backend*, dropped at cleanup.

    :param backend: 'sqlite', 'mysql' or 'postgresql'.
    :param migrate: lay the glance schema down with glance-manage's
        migrations.
    :ivar url: the SQLAlchemy URL of the new database.
    :ivar engine: an engine on it, for the test's own checks.
    """

    def __init__(self, backend, migrate=True):
        super().__init__()
        self.backend = backend
        self.migrate = migrate

    def _setUp(self):
        if self.backend == 'sqlite':
            self.url = self._sqlite_url()
        else:
            self.url = self._server_database_url()
        self.engine = sa.create_engine(self.url)
        self.addCleanup(self.engine.dispose)
        if self.migrate:
            alembic_migrations.upgrade(self.engine)

    def _sqlite_url(self):
        folder = self.useFixture(fixtures.TempDir()).path
        return 'sqlite:///%s' % os.path.join(folder, 'glance.sqlite')

    def _server_database_url(self):
        try:
            server = _server(self.backend)
        except ServerUnavailable as error:
            if under_ci():
                raise
            raise unittest.SkipTest(str(error))
        name = 'glance_%s' % uuid.uuid4().hex[:12]
        server.create_named_database(name)
        self.addCleanup(server.drop_named_database, name)
        return str(server.provisioned_database_url(name).render_as_string(
            hide_password=False))
