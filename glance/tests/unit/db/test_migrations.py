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

The command's start-up (about 1.5 s of CPU) dominates, so the module
prepares one database per scenario and backend, runs the commands of all
of them side by side, and the tests then check what each left behind.
"""

import dataclasses
import os
import subprocess
import unittest

import pytest
import sqlalchemy as sa

from glance.db.sqlalchemy import alembic_migrations
from glance.tests import databases
from glance.tests.unit.db import set_up_database
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


def schema_snapshot(engine):
    """Everything a migration could change, in comparable form."""
    inspector = sa.inspect(engine)
    snapshot = {}
    for table in sorted(inspector.get_table_names()):
        snapshot[table] = {
            'columns': [(column['name'], repr(column['type']),
                         column['nullable'], column.get('default'))
                        for column in inspector.get_columns(table)],
            'primary_key': inspector.get_pk_constraint(table),
            'foreign_keys': sorted(
                repr(fk) for fk in inspector.get_foreign_keys(table)),
            'indexes': sorted(
                repr(index) for index in inspector.get_indexes(table)),
            'unique': sorted(
                repr(unique)
                for unique in inspector.get_unique_constraints(table)),
        }
    return snapshot


def alembic_versions(engine):
    with engine.connect() as connection:
        return sorted(connection.exec_driver_sql(
            'SELECT version_num FROM alembic_version').scalars())


def image_ids(engine):
    with engine.connect() as connection:
        return sorted(connection.exec_driver_sql(
            'SELECT id FROM images').scalars())


def insert_image(engine, image_id):
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO images (id, status, visibility, min_disk, min_ram, "
            "protected, os_hidden, created_at, deleted) VALUES (:id, "
            "'active', 'private', 0, 0, :no, :no, :now, :no)"),
            {'id': image_id, 'no': False, 'now': '2026-01-01 00:00:00'})


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


class Scenarios:
    """The databases of every scenario and backend, created up front.

    A backend whose server is missing is remembered and skipped by the
    tests that need it (databases.Database decides; CI fails instead).
    """

    def __init__(self, request, folder):
        self.request = request
        self.folder = folder
        self.scenarios = {}
        self.unavailable = {}

    def add(self, name, backend, migrate):
        try:
            db = set_up_database(backend, migrate=migrate)
        except unittest.SkipTest as reason:
            self.unavailable[backend] = reason
            return None
        self.request.addfinalizer(db.cleanUp)
        self.scenarios[(name, backend)] = Scenario(db)
        return self.scenarios[(name, backend)]

    def get(self, name, backend):
        if backend in self.unavailable:
            pytest.skip(str(self.unavailable[backend]))
        return self.scenarios[(name, backend)]

    def run(self, jobs):
        """jobs: {(name, backend): arguments}; appends each Result."""
        results = run_side_by_side(self.folder, {
            '%s-%s' % key: (self.scenarios[key].db.url, arguments)
            for key, arguments in jobs.items()})
        for key in jobs:
            self.scenarios[key].results.append(results['%s-%s' % key])


@pytest.fixture(scope='module')
def scenarios(request, tmp_path_factory):
    every = Scenarios(request, tmp_path_factory.mktemp('manage'))
    first_round, second_round = {}, {}
    for backend in databases.BACKENDS:
        if every.add('sync-twice', backend, migrate=False):
            first_round[('sync-twice', backend)] = ['db', 'sync']
        if every.add('version', backend, migrate=True):
            first_round[('version', backend)] = ['db', 'version']
        earlier = every.add('earlier-release', backend, migrate=False)
        if earlier:
            alembic_migrations.upgrade(earlier.db.engine,
                                       EARLIER_RELEASE_REVISION)
            insert_image(earlier.db.engine, 'kept-across-the-upgrade')
            first_round[('earlier-release', backend)] = ['db', 'sync']
        foreign = every.add('foreign', backend, migrate=True)
        if foreign:
            move_to_upstream_revision(foreign.db.engine)
            insert_image(foreign.db.engine, 'upstream-image')
            foreign.schema_before = schema_snapshot(foreign.db.engine)
            first_round[('foreign', backend)] = ['db', 'sync']
    every.run(first_round)
    for (name, backend) in first_round:
        scenario = every.get(name, backend)
        if name == 'sync-twice' and scenario.results[0].returncode == 0:
            scenario.versions_after_first_sync = alembic_versions(
                scenario.db.engine)
            insert_image(scenario.db.engine, 'kept-across-syncs')
            scenario.schema_before = schema_snapshot(scenario.db.engine)
            second_round[(name, backend)] = ['db', 'sync']
    every.run(second_round)
    return every


def assert_clean_success(result):
    assert result.returncode == 0, result.output
    assert 'Traceback' not in result.output, result.output


@pytest.mark.parametrize('backend', databases.BACKENDS)
def test_sync_creates_the_schema_at_head(scenarios, backend):
    scenario = scenarios.get('sync-twice', backend)
    head = alembic_migrations.head_revision()

    assert_clean_success(scenario.results[0])
    assert 'Database is at revision %s.' % head in scenario.results[0].stdout
    assert scenario.versions_after_first_sync == [head]
    assert set(scenario.schema_before) == UPSTREAM_TABLES


@pytest.mark.parametrize('backend', databases.BACKENDS)
def test_second_sync_is_a_no_op(scenarios, backend):
    scenario = scenarios.get('sync-twice', backend)
    engine = scenario.db.engine
    assert len(scenario.results) == 2, 'the first sync failed'

    assert_clean_success(scenario.results[1])
    assert ('already at revision %s; nothing to do'
            % alembic_migrations.head_revision()) in scenario.results[1].stdout
    assert schema_snapshot(engine) == scenario.schema_before
    assert alembic_versions(engine) == [alembic_migrations.head_revision()]
    assert image_ids(engine) == ['kept-across-syncs']


@pytest.mark.parametrize('backend', databases.BACKENDS)
def test_sync_upgrades_a_database_of_an_earlier_release(scenarios, backend):
    """scrubber_initial gets the schema and revision of a fresh sync."""
    scenario = scenarios.get('earlier-release', backend)
    fresh = scenarios.get('sync-twice', backend)
    engine = scenario.db.engine
    head = alembic_migrations.head_revision()

    assert_clean_success(scenario.results[0])
    assert 'Database is at revision %s.' % head in scenario.results[0].stdout
    assert alembic_versions(engine) == [head]
    assert set(schema_snapshot(engine)) == UPSTREAM_TABLES
    assert schema_snapshot(engine) == fresh.schema_before
    assert image_ids(engine) == ['kept-across-the-upgrade']


@pytest.mark.parametrize('backend', databases.BACKENDS)
def test_version_prints_the_revision(scenarios, backend):
    result = scenarios.get('version', backend).results[0]

    assert_clean_success(result)
    assert alembic_migrations.head_revision() in result.stdout.splitlines()


@pytest.mark.parametrize('backend', databases.BACKENDS)
def test_version_prints_only_the_revision(scenarios, backend):
    """stdout is the answer alone, so that scripts can use it."""
    result = scenarios.get('version', backend).results[0]

    assert result.stdout.strip() == alembic_migrations.head_revision()


@pytest.mark.parametrize('backend', databases.BACKENDS)
def test_sync_leaves_a_foreign_revision_alone(scenarios, backend):
    scenario = scenarios.get('foreign', backend)
    engine = scenario.db.engine
    result = scenario.results[0]

    assert_clean_success(result)
    assert UPSTREAM_REVISION in result.stdout
    assert 'schema is left as it is' in result.stdout
    assert schema_snapshot(engine) == scenario.schema_before
    assert alembic_versions(engine) == [UPSTREAM_REVISION]
    assert image_ids(engine) == ['upstream-image']
