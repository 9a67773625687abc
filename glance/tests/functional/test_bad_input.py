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

"""Bad configuration and requests, through the real command line.

Each is refused at start: exit 2, one clear line on stderr, no traceback,
and nothing deleted: an eligible image planted first keeps its rows and
its data.
"""

import pytest

from glance.tests.functional import fixtures
from glance.tests.functional import scenario
from glance.tests import seed

# A closed loopback port: connections are refused at once. One connection
# attempt, not oslo.db's default ten, ten seconds apart.
UNREACHABLE = {
    'mysql': 'mysql+pymysql://root@127.0.0.1:9/glance',
    'postgresql': 'postgresql+psycopg2://root@127.0.0.1:9/glance',
}


def pool_size(value):
    def change(config, tmp_path):
        config.set('DEFAULT', scrub_pool_size=value)
    return change


def unknown_store(config, tmp_path):
    config.set('glance_store', stores='nosuch', default_store='nosuch')


def unknown_backend_type(config, tmp_path):
    config.set('glance_store', stores=None, default_store=None,
               default_backend='fast')
    config.set('DEFAULT', enabled_backends='fast:nosuch')


def unreachable_database(backend):
    def change(config, tmp_path):
        config.set('database', connection=UNREACHABLE[backend],
                   max_retries=1, retry_interval=1)
    return change


def database_without_schema(config, tmp_path):
    config.set('database', connection='sqlite:///%s' % (
        tmp_path / 'empty.sqlite'))


def no_lock_path(config, tmp_path):
    config.set('oslo_concurrency', lock_path=None)


def bad_encryption_key(config, tmp_path):
    config.set('DEFAULT', metadata_encryption_key='too short')


def coordination_url(url):
    def change(config, tmp_path):
        config.set('coordination', backend_url=url)
    return change


def nothing(config, tmp_path):
    pass


# (id, change to the configuration, extra arguments, environment, words
# the refusal must contain)
CASES = [
    ('pool-size-0', pool_size(0), (), {}, ['scrub_pool_size']),
    ('pool-size-negative', pool_size(-3), (), {}, ['scrub_pool_size']),
    ('pool-size-not-a-number', pool_size('abc'), (), {},
     ['scrub_pool_size']),
    ('restore-and-daemon', nothing, ('--daemon', '--restore', 'IMAGE'),
     {}, ['--restore', '--daemon']),
    ('unknown-store', unknown_store, (), {}, ['nosuch']),
    ('unknown-backend-type', unknown_backend_type, (), {}, ['nosuch']),
    ('unreachable-mysql', unreachable_database('mysql'), (), {},
     ['127.0.0.1:9']),
    ('unreachable-postgresql', unreachable_database('postgresql'), (), {},
     ['127.0.0.1:9']),
    ('database-without-schema', database_without_schema, (), {},
     ['empty.sqlite']),
    ('no-lock-path', no_lock_path, (), {}, ['lock_path']),
    ('bad-encryption-key', bad_encryption_key, (), {},
     ['metadata_encryption_key']),
    ('missing-config-file', nothing, ('--config-file', '/nonexistent.conf'),
     {}, ['/nonexistent.conf']),
    ('unknown-concurrency-backend', nothing, (),
     {fixtures.BACKEND_VARIABLE: 'nosuch'}, [fixtures.BACKEND_VARIABLE]),
    ('unknown-coordination-backend', coordination_url('nosuch://host'), (),
     {}, ['[coordination] backend_url', 'nosuch']),
    # kazoo, ZooKeeper's client, is not installed.
    ('coordination-client-missing', coordination_url('zookeeper://host'), (),
     {}, ['[coordination] backend_url']),
]


def case_params():
    for case in CASES:
        yield pytest.param(*case[1:], id=case[0])


@pytest.mark.parametrize('change, args, env, words', list(case_params()))
def test_refused_at_start_and_nothing_deleted(change, args, env, words,
                                              database, config, file_store,
                                              tmp_path):
    image = scenario.pending_images([scenario.Placement(file_store)], 1,
                                    2)[0]
    seed.insert(database.engine, [image])
    rows = scenario.rows_of(database.engine, [image.id])
    change(config, tmp_path)
    args = [image.id if arg == 'IMAGE' else arg for arg in args]

    run = fixtures.run_scrubber(config, *args, env=env, timeout=120)

    assert run.returncode == 2, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    refusals = [line for line in run.stderr.splitlines()
                if line.startswith('glance-scrubber:')]
    assert len(refusals) == 1, run.describe()
    for word in words:
        assert word in refusals[0], run.describe()
    assert run.summary is None
    assert scenario.rows_of(database.engine, [image.id]) == rows
    assert all(file_store.exists(location.url)
               for location in image.locations)
