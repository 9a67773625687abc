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

"""This tree's ``glance-manage db sync`` and released upstream Glance's.

Either may come first on a database and the other must take it over: after
this tree's sync, upstream's sync has nothing left to do, its ``db
version`` shows its head, its glance-api serves the database, and the
schema is the one upstream's own sync creates; after upstream's sync, this
tree's sync has nothing to do and says so. A database that an earlier
release of this tree stamped ``scrubber_initial`` is moved onto upstream's
history by this tree's sync, its rows kept.

Run with ``tox -e interop``, or with pytest once
tools/upstream_glance_venv.py has built upstream's virtualenv.
"""

import pathlib
import subprocess
import uuid

import fixtures
import sqlalchemy as sa
import testtools

from glance.db.sqlalchemy import alembic_migrations
from glance.tests import databases
from glance.tests.interop import upstream
from glance.tests import utils

# What released upstream Glance (33.0.0) records after its db sync.
UPSTREAM_HEAD = '2024_1_contract01'
# The only revision of earlier releases of this tree.
EARLIER_RELEASE_REVISION = 'scrubber_initial'

MANAGE_TIMEOUT = 120

# Reference schemas from upstream's own db sync, one per backend.
_upstream_schemas = {}


def schema_of(engine):
    """The schema, less what two programs' syncs may make differently.

    See databases.schema_of: neither side reads those differences.
    """
    return databases.schema_of(engine, exact=False)


def insert_metadef_namespace(engine, namespace):
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO metadef_namespaces (namespace, visibility, "
            "protected, owner, created_at) VALUES (:namespace, 'public', "
            ":no, 'admin', '2026-01-01 00:00:00')"),
            {'namespace': namespace, 'no': False})


def image_and_location_ids(engine):
    with engine.connect() as connection:
        return sorted(connection.exec_driver_sql(
            'SELECT images.id, image_locations.value FROM images JOIN '
            'image_locations ON image_locations.image_id = images.id'))


class _SchemaHandOver:
    """The scenarios; the TestCase subclasses below pick the database."""

    backend = None

    def setUp(self):
        super().setUp()
        self.python = upstream.upstream_python()
        self.workdir = pathlib.Path(self.useFixture(fixtures.TempDir()).path)

    def new_database(self, revision=None):
        """An empty database, or one at *revision* of this tree."""
        db = self.useFixture(databases.Database(self.backend, migrate=False))
        upstream.check_driver(self.python, db.url)
        if revision:
            alembic_migrations.upgrade(db.engine, revision)
        return db

    def _config(self, db):
        config = self.workdir / ('%s.conf' % uuid.uuid4().hex)
        config.write_text('[database]\nconnection = %s\n' % db.url)
        return config

    def _run(self, command, what):
        result = subprocess.run(command, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL,
                                timeout=MANAGE_TIMEOUT)
        self.assertEqual(0, result.returncode, '%s failed:\n%s' % (
            what, result.stdout[-4000:]))
        self.assertNotIn('Traceback', result.stdout)
        return result.stdout

    def our_manage(self, db, *args):
        return self._run([utils.console_script('glance-manage'),
                          '--config-file', str(self._config(db)), *args],
                         'this tree\'s glance-manage %s' % ' '.join(args))

    def upstream_manage(self, db, *args):
        manage = self.python.parent / 'glance-manage'
        return self._run(
            upstream.isolated(self.python, manage, '--config-file',
                              str(self._config(db)), *args),
            'upstream glance-manage %s' % ' '.join(args))

    def upstream_schema(self):
        """The schema upstream's own db sync creates on this backend."""
        if self.backend not in _upstream_schemas:
            reference = databases.Database(self.backend, migrate=False)
            reference.setUp()
            try:
                self.upstream_manage(reference, 'db', 'sync')
                _upstream_schemas[self.backend] = schema_of(reference.engine)
            finally:
                reference.cleanUp()
        return _upstream_schemas[self.backend]

    def assert_upstream_takes_over(self, db):
        """Upstream's db sync has nothing to do; version shows its head."""
        output = self.upstream_manage(db, 'db', 'sync')
        self.assertIn('Database is up to date', output)
        self.assertEqual(UPSTREAM_HEAD, self.upstream_manage(
            db, 'db', 'version').strip().splitlines()[-1])
        self.assertEqual([UPSTREAM_HEAD],
                         databases.alembic_versions(db.engine))
        self.assertEqual(self.upstream_schema(), schema_of(db.engine))

    def assert_upstream_api_serves(self, db):
        """Images and metadata definitions, on the tables we created.

        (The tasks API needs a role that no Keystone-less caller has.)
        """
        api_server = self.useFixture(
            upstream.UpstreamGlanceAPI(self.python, db.url))
        api = upstream.ApiClient(api_server.url)
        image_id = api.create_image('on-our-schema')
        api.upload(image_id, b'served by upstream')
        self.assertEqual(b'served by upstream', api.download(image_id))
        # Without Keystone, writing metadata definitions is refused
        # (403): the namespace is written to the table, then read back.
        insert_metadef_namespace(db.engine, 'OS::Interop::Check')
        shown = api.expect_json(200, 'GET',
                                '/v2/metadefs/namespaces/OS::Interop::Check')
        self.assertEqual('OS::Interop::Check', shown['namespace'])
        api.delete(image_id)
        self.assertEqual(404, api.status_of(image_id))

    def test_upstream_takes_over_after_our_sync(self):
        db = self.new_database()
        self.our_manage(db, 'db', 'sync')

        self.assert_upstream_takes_over(db)
        self.assert_upstream_api_serves(db)

    def test_our_sync_after_upstream_sync_is_a_no_op(self):
        db = self.new_database()
        self.upstream_manage(db, 'db', 'sync')
        databases.insert_image(db.engine, 'made-by-upstream',
                               location='file:///images/one')
        schema_before = schema_of(db.engine)

        output = self.our_manage(db, 'db', 'sync')

        self.assertIn('already at revision %s; nothing to do'
                      % UPSTREAM_HEAD, output)
        self.assertEqual(schema_before, schema_of(db.engine))
        self.assertEqual([UPSTREAM_HEAD],
                         databases.alembic_versions(db.engine))
        self.assertEqual([('made-by-upstream', 'file:///images/one')],
                         image_and_location_ids(db.engine))

    def test_earlier_release_database_moves_to_upstream_history(self):
        db = self.new_database(EARLIER_RELEASE_REVISION)
        databases.insert_image(db.engine, 'made-by-earlier-release',
                               location='file:///images/one')
        self.assertEqual([EARLIER_RELEASE_REVISION],
                         databases.alembic_versions(db.engine))

        output = self.our_manage(db, 'db', 'sync')

        self.assertIn('Database is at revision %s.' % UPSTREAM_HEAD, output)
        self.assert_upstream_takes_over(db)
        self.assertEqual([('made-by-earlier-release', 'file:///images/one')],
                         image_and_location_ids(db.engine))


class TestSchemaHandOverSQLite(_SchemaHandOver, testtools.TestCase):
    backend = 'sqlite'


class TestSchemaHandOverMySQL(_SchemaHandOver, testtools.TestCase):
    backend = 'mysql'


class TestSchemaHandOverPostgreSQL(_SchemaHandOver, testtools.TestCase):
    backend = 'postgresql'
