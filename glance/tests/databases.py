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


def alembic_versions(engine):
    """The revisions the alembic_version table holds, sorted."""
    with engine.connect() as connection:
        return sorted(connection.exec_driver_sql(
            'SELECT version_num FROM alembic_version').scalars())


def insert_image(engine, image_id, location=None):
    """An active image row, and a location of it if *location* is a URL.

    Plain SQL of the columns every revision of the schema has, so that it
    works on a database of any release, this tree's or upstream's.
    """
    row = {'id': image_id, 'no': False, 'now': '2026-01-01 00:00:00',
           'location': location}
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO images (id, status, visibility, min_disk, min_ram, "
            "protected, os_hidden, created_at, deleted) VALUES (:id, "
            "'active', 'private', 0, 0, :no, :no, :now, :no)"), row)
        if location:
            connection.execute(sa.text(
                "INSERT INTO image_locations (image_id, value, status, "
                "created_at, deleted) VALUES (:id, :location, 'active', "
                ":now, :no)"), row)


def schema_of(engine, exact=True):
    """Tables, columns, keys and indexes of a database, in comparable form.

    CHECK constraints are left out: nothing reads them. *exact* False
    leaves out two more differences that no reader sees, for comparing
    schemas that two programs made: the order of the columns, and SQLite's
    INTEGER against BIGINT (one integer affinity there).
    """
    inspector = sa.inspect(engine)
    schema = {}
    for table in sorted(inspector.get_table_names()):
        columns = [(column['name'], _type_name(engine, column['type'], exact),
                    column['nullable'], column.get('default'))
                   for column in inspector.get_columns(table)]
        schema[table] = {
            'columns': columns if exact else {
                name: tuple(rest) for name, *rest in columns},
            'primary_key': inspector.get_pk_constraint(table),
            'foreign_keys': sorted(
                repr(key) for key in inspector.get_foreign_keys(table)),
            'indexes': sorted(
                repr(index) for index in inspector.get_indexes(table)),
            'unique': sorted(
                repr(unique)
                for unique in inspector.get_unique_constraints(table)),
        }
    return schema


def _type_name(engine, column_type, exact):
    name = repr(column_type)
    if (not exact and engine.dialect.name == 'sqlite' and
            name == 'BIGINT()'):
        return 'INTEGER()'
    return name
