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

"""`glance-manage db sync|version`, run as the real console script.

On every backend: a second sync changes nothing, version prints the
revision, a database an earlier release of this tree stamped
``scrubber_initial`` is brought to the same schema and revision as a fresh
one, and a database at a revision of another glance release (an upstream
database, newer than this tree) is left exactly as it is.

The command's start-up (about 1.5 s of CPU) dominates, so each class
prepares one database per scenario on its server, runs the commands of all
of them side by side, and the tests then check what each left behind.
"""

import dataclasses
import os
import pathlib
import subprocess

import fixtures
import testtools

from glance.db.sqlalchemy import alembic_migrations
from glance.tests import databases
from glance.tests.unit import db as db_tests
from glance.tests import utils

UPSTREAM_REVISION = '2025_1_contract01'
# The only revision of earlier releases of this tree.
EARLIER_RELEASE_REVISION = 'scrubber_initial'
# Upstream Glance's schema, which db sync creates.
UPSTREAM_TABLES = {
    'alembic_version', 'images', 'image_locations', 'image_properties',
    'image_tags', 'image_members', 'tasks', 'task_info',
    'metadef_namespaces', 'metadef_resource_types',
    'metadef_namespace_resource_types', 'metadef_objects',
    'metadef_properties', 'metadef_tags', 'node_reference',
    'cached_images'}


def glance_manage():
    return utils.console_script('glance-manage')


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self):
        return self.stdout + self.stderr


def run_side_by_side(folder, jobs):
    """Run glance-manage once per job, all at once, as an operator would.

    :param jobs: {name: (database URL, command arguments)}.
    :returns: {name: Result}.
    """
    environment = dict(os.environ)
    # The unit tests pick the threading backend for themselves; the command
    # runs with its own default, as deployed.
    environment.pop('OS_GLANCE_SCRUBBER_BACKEND', None)
    processes = {}
    for name, (url, arguments) in jobs.items():
        config = folder / ('%s.conf' % name)
        config.write_text('[database]\nconnection = %s\nmax_retries = 1\n'
                          'retry_interval = 1\n' % url)
        processes[name] = subprocess.Popen(
            [glance_manage(), '--config-file', str(config)] + arguments,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=environment)
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        results[name] = Result(process.returncode, stdout, stderr)
    return results


def image_ids(engine):
    with engine.connect() as connection:
        return sorted(connection.exec_driver_sql(
            'SELECT id FROM images').scalars())


def move_to_upstream_revision(engine):
    """Make the database look like one an upstream release migrated."""
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE alembic_version SET version_num = '%s'"
            % UPSTREAM_REVISION)
        # A newer upstream may have tables this tree does not know; they
        # must survive.
        connection.exec_driver_sql(
            'CREATE TABLE newer_upstream_table (id VARCHAR(36) PRIMARY KEY)')


@dataclasses.dataclass
class Scenario:
    """One database and what glance-manage did to it."""

    db: databases.Database
    results: list = dataclasses.field(default_factory=list)
    schema_before: dict = None
    versions_after_first_sync: list = None


class Scenarios(fixtures.Fixture):
    """The database of every scenario on one server, and the commands run.

    A missing server skips (databases.Database decides; CI fails instead).

    :ivar scenarios: {scenario name: Scenario}.
    """

    def __init__(self, backend):
        super().__init__()
        self.backend = backend

    def _setUp(self):
        self.folder = pathlib.Path(self.useFixture(fixtures.TempDir()).path)
        self.scenarios = {}
        sync_twice = self._add('sync-twice', migrate=False)
        self._add('version', migrate=True)
        earlier = self._add('earlier-release', migrate=False)
        alembic_migrations.upgrade(earlier.db.engine,
                                   EARLIER_RELEASE_REVISION)
        databases.insert_image(earlier.db.engine, 'kept-across-the-upgrade')
        foreign = self._add('foreign', migrate=True)
        move_to_upstream_revision(foreign.db.engine)
        databases.insert_image(foreign.db.engine, 'upstream-image')
        foreign.schema_before = databases.schema_of(foreign.db.engine)
        self._run({'sync-twice': ['db', 'sync'],
                   'version': ['db', 'version'],
                   'earlier-release': ['db', 'sync'],
                   'foreign': ['db', 'sync']})
        if sync_twice.results[0].returncode == 0:
            sync_twice.versions_after_first_sync = databases.alembic_versions(
                sync_twice.db.engine)
            databases.insert_image(sync_twice.db.engine, 'kept-across-syncs')
            sync_twice.schema_before = databases.schema_of(
                sync_twice.db.engine)
            self._run({'sync-twice': ['db', 'sync']})

    def _add(self, name, migrate):
        db = self.useFixture(databases.Database(self.backend,
                                                migrate=migrate))
        self.scenarios[name] = Scenario(db)
        return self.scenarios[name]

    def _run(self, jobs):
        """jobs: {name: arguments}; appends each Result."""
        results = run_side_by_side(self.folder, {
            name: (self.scenarios[name].db.url, arguments)
            for name, arguments in jobs.items()})
        for name in jobs:
            self.scenarios[name].results.append(results[name])


class DbSyncTests:
    """db sync and db version, once per scenario, on the *backend* server."""

    backend = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.prepared = db_tests.set_up(Scenarios(cls.backend))
        cls.scenarios = cls.prepared.scenarios

    @classmethod
    def tearDownClass(cls):
        cls.prepared.cleanUp()
        super().tearDownClass()

    def assert_clean_success(self, result):
        self.assertEqual(0, result.returncode, result.output)
        self.assertNotIn('Traceback', result.output)

    def test_sync_creates_the_schema_at_head(self):
        scenario = self.scenarios['sync-twice']
        head = alembic_migrations.head_revision()

        self.assert_clean_success(scenario.results[0])
        self.assertIn('Database is at revision %s.' % head,
                      scenario.results[0].stdout)
        self.assertEqual([head], scenario.versions_after_first_sync)
        self.assertEqual(UPSTREAM_TABLES, set(scenario.schema_before))

    def test_second_sync_is_a_no_op(self):
        scenario = self.scenarios['sync-twice']
        engine = scenario.db.engine
        self.assertEqual(2, len(scenario.results), 'the first sync failed')

        self.assert_clean_success(scenario.results[1])
        self.assertIn('already at revision %s; nothing to do'
                      % alembic_migrations.head_revision(),
                      scenario.results[1].stdout)
        self.assertEqual(scenario.schema_before, databases.schema_of(engine))
        self.assertEqual([alembic_migrations.head_revision()],
                         databases.alembic_versions(engine))
        self.assertEqual(['kept-across-syncs'], image_ids(engine))

    def test_sync_upgrades_a_database_of_an_earlier_release(self):
        """scrubber_initial gets the schema and revision of a fresh sync."""
        scenario = self.scenarios['earlier-release']
        fresh = self.scenarios['sync-twice']
        engine = scenario.db.engine
        head = alembic_migrations.head_revision()

        self.assert_clean_success(scenario.results[0])
        self.assertIn('Database is at revision %s.' % head,
                      scenario.results[0].stdout)
        self.assertEqual([head], databases.alembic_versions(engine))
        self.assertEqual(UPSTREAM_TABLES, set(databases.schema_of(engine)))
        self.assertEqual(fresh.schema_before, databases.schema_of(engine))
        self.assertEqual(['kept-across-the-upgrade'], image_ids(engine))

    def test_version_prints_the_revision(self):
        result = self.scenarios['version'].results[0]

        self.assert_clean_success(result)
        self.assertIn(alembic_migrations.head_revision(),
                      result.stdout.splitlines())

    def test_version_prints_only_the_revision(self):
        """stdout is the answer alone, so that scripts can use it."""
        result = self.scenarios['version'].results[0]

        self.assertEqual(alembic_migrations.head_revision(),
                         result.stdout.strip())

    def test_sync_leaves_a_foreign_revision_alone(self):
        scenario = self.scenarios['foreign']
        engine = scenario.db.engine
        result = scenario.results[0]

        self.assert_clean_success(result)
        self.assertIn(UPSTREAM_REVISION, result.stdout)
        self.assertIn('schema is left as it is', result.stdout)
        self.assertEqual(scenario.schema_before, databases.schema_of(engine))
        self.assertEqual([UPSTREAM_REVISION],
                         databases.alembic_versions(engine))
        self.assertEqual(['upstream-image'], image_ids(engine))


class TestDbSyncOnSQLite(DbSyncTests, testtools.TestCase):
    backend = 'sqlite'


class TestDbSyncOnMySQL(DbSyncTests, testtools.TestCase):
    backend = 'mysql'


class TestDbSyncOnPostgreSQL(DbSyncTests, testtools.TestCase):
    backend = 'postgresql'
