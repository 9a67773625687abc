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

import socket
import time

import pytest

from glance.tests import databases
from glance.tests.functional import conftest
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
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


_SILENT = []


def silent_port():
    """A loopback port that accepts connections and never answers.

    One listening socket for the test process: the kernel completes the
    connections, nobody reads them.
    """
    if not _SILENT:
        listener = socket.socket()
        listener.bind((fixtures.LOOPBACK, 0))
        listener.listen(128)
        _SILENT.append(listener)
    return _SILENT[0].getsockname()[1]


def silent_coordination(scheme):
    def change(config, tmp_path):
        config.set('coordination', backend_url='%s://%s:%d' % (
            scheme, fixtures.LOOPBACK, silent_port()))
    return change


def nothing(config, tmp_path):
    pass


def option(section, **options):
    def change(config, tmp_path):
        config.set(section, **options)
    return change


def extra_file(content):
    """A second configuration file, EXTRA in the arguments."""
    def change(config, tmp_path):
        (tmp_path / 'extra.conf').write_bytes(content)
    return change


def s3_store(**options):
    """The S3 store besides the file store; no S3 request is made."""
    def change(config, tmp_path):
        config.set('glance_store', stores='file,s3', **dict(
            fixtures.s3_store_options('http://127.0.0.1:9', 'images'),
            **options))
    return change


def under_a_file(section, option_name):
    """*option_name* set to a path whose parent is a regular file."""
    def change(config, tmp_path):
        (tmp_path / 'a-file').write_text('')
        config.set(section, **{option_name: str(tmp_path / 'a-file' / 'x')})
    return change


# A refusal comes within this many seconds (the process starts in one or
# two): not after a driver's retries.
REFUSED_WITHIN = 30

# The largest value of the options in seconds, and one past it.
MAX_SECONDS = 2 ** 31 - 1


# (id, change to the configuration, extra arguments, environment, words
# the refusal must contain)
CASES = [
    ('pool-size-0', pool_size(0), (), {}, ['scrub_pool_size']),
    ('pool-size-negative', pool_size(-3), (), {}, ['scrub_pool_size']),
    ('pool-size-not-a-number', pool_size('abc'), (), {},
     ['scrub_pool_size']),
    ('restore-and-daemon', nothing, ('--daemon', '--restore', 'IMAGE'),
     {}, ['--restore', '--daemon']),
    # A restore script whose image id variable came out empty: without
    # the check, a full scrub pass.
    ('restore-empty', nothing, ('--restore', ''), {}, ['--restore', "''"]),
    ('restore-equals-empty', nothing, ('--restore=',), {},
     ['--restore', "''"]),
    ('restore-blank', nothing, ('--restore', '  '), {},
     ['--restore', "'  '"]),
    ('restore-not-an-image-id', nothing, ('--restore', 'all'), {},
     ['--restore', "'all'"]),
    ('restore-empty-and-daemon', nothing, ('--daemon', '--restore', ''),
     {}, ['--restore']),
    ('restore-empty-and-list', nothing, ('--list', '--restore', ''),
     {}, ['--restore']),
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
    # A coordination backend down at start (a closed port): refused at
    # once, not after tooz's retries (a minute for Redis).
    ('coordination-redis-down', coordination_url('redis://127.0.0.1:9'),
     (), {}, ['[coordination] backend_url', 'unreachable', '127.0.0.1:9']),
    ('coordination-etcd-down', coordination_url('etcd3+http://127.0.0.1:9'),
     (), {}, ['[coordination] backend_url', 'unreachable', '127.0.0.1:9']),
    # A port that accepts connections and never answers: refused once the
    # start-up bound (glance.scrubber.coordination.Member.START_TIMEOUT) is
    # over, not after the drivers' socket timeouts and retries.
    ('coordination-redis-silent', silent_coordination('redis'), (), {},
     ['[coordination] backend_url', 'unreachable']),
    ('coordination-etcd-silent', silent_coordination('etcd3+http'), (), {},
     ['[coordination] backend_url', 'unreachable']),
    # An "option =" line gives None, not the default.
    ('pool-size-empty', pool_size(''), (), {}, ['scrub_pool_size', 'empty']),
    ('scrub-time-empty', option('DEFAULT', scrub_time=''), (), {},
     ['scrub_time', 'empty']),
    ('wakeup-time-empty', option('DEFAULT', wakeup_time=''), ('--daemon',),
     {}, ['wakeup_time', 'empty']),
    ('claim-timeout-empty', option('DEFAULT', scrub_claim_timeout=''), (),
     {}, ['scrub_claim_timeout', 'empty']),
    ('not-found-ratio-empty', option('DEFAULT', scrub_not_found_ratio=''),
     (), {}, ['scrub_not_found_ratio', 'empty']),
    ('not-found-ratio-nan', option('DEFAULT', scrub_not_found_ratio='nan'),
     (), {}, ['scrub_not_found_ratio', 'nan']),
    ('report-interval-empty', option('DEFAULT', report_interval=''), (), {},
     ['report_interval', 'empty']),
    ('store-rate-limit-nan', option('DEFAULT', scrub_store_rate_limit='nan'),
     (), {}, ['scrub_store_rate_limit', 'nan']),
    # 2**40 seconds before now is before the year 1.
    ('scrub-time-huge', option('DEFAULT', scrub_time=2 ** 40), (), {},
     ['scrub_time', 'less than or equal']),
    ('scrub-time-above-max', option('DEFAULT', scrub_time=MAX_SECONDS + 1),
     (), {}, ['scrub_time']),
    ('claim-timeout-huge', option('DEFAULT', scrub_claim_timeout=2 ** 40),
     (), {}, ['scrub_claim_timeout', 'less than or equal']),
    ('wakeup-time-huge', option('DEFAULT', wakeup_time=2 ** 40),
     ('--daemon',), {}, ['wakeup_time', 'less than or equal']),
    ('pool-size-huge', pool_size(2 ** 40), (), {},
     ['scrub_pool_size', 'less than or equal']),
    ('claim-timeout-0', option('DEFAULT', scrub_claim_timeout=0), (), {},
     ['scrub_claim_timeout']),
    ('wakeup-time-negative', option('DEFAULT', wakeup_time=-1),
     ('--daemon',), {}, ['wakeup_time']),
    ('debug-not-a-boolean', option('DEFAULT', debug='maybe'), (), {},
     ['--debug', 'maybe']),
    ('config-file-is-a-directory', nothing, ('--config-file', '{tmp}'), {},
     ['{tmp}', 'directory']),
    ('config-file-binary', extra_file(bytes(range(256)) * 4),
     ('--config-file', '{tmp}/extra.conf'), {},
     ['{tmp}/extra.conf', 'UTF-8']),
    ('config-file-not-utf8', extra_file(b'[DEFAULT]\n# caf\xe9\n'),
     ('--config-file', '{tmp}/extra.conf'), {},
     ['{tmp}/extra.conf', 'UTF-8']),
    ('log-file-in-a-missing-folder',
     option('DEFAULT', log_file='/nonexistent/glance-scrubber.log'), (),
     {}, ['/nonexistent/glance-scrubber.log']),
    ('log-config-missing', nothing,
     ('--log-config-append', '/nonexistent/logging.ini'), {},
     ['/nonexistent/logging.ini']),
    ('lock-path-under-a-file', under_a_file('oslo_concurrency',
                                            'lock_path'), (), {},
     ['lock_path', 'Not a directory']),
    ('datadir-cannot-be-created', under_a_file('glance_store',
                                               'filesystem_store_datadir'),
     (), {}, ['filesystem_store_datadir', '{tmp}/a-file/x']),
    ('s3-virtual-addressing-bad-bucket-name',
     s3_store(s3_store_bucket='Not_A_DNS_Name',
              s3_store_bucket_url_format='virtual'), (), {},
     ['Not_A_DNS_Name', 'DNS']),
    ('s3-unknown-url-format', s3_store(s3_store_bucket_url_format='sideways'),
     (), {}, ['sideways']),
    # glance_store keeps a store that fails to configure, unable to
    # delete: its data would be let go, never deleted.
    ('s3-store-fails-to-configure', s3_store(s3_store_host=None), (), {},
     ['s3', 'failed to configure', 'cannot delete']),
    ('s3-negative-large-object-size',
     s3_store(s3_store_large_object_size=-5), (), {},
     ['s3_store_large_object_size']),
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
    args = [image.id if arg == 'IMAGE' else arg.format(tmp=tmp_path)
            for arg in args]

    started = time.monotonic()
    run = fixtures.run_scrubber(config, *args, env=env, timeout=300)
    seconds = time.monotonic() - started

    assert run.returncode == 2, run.describe()
    assert seconds < REFUSED_WITHIN, (seconds, run.describe())
    assert 'Traceback' not in run.output, run.describe()
    refusals = run.stderr.splitlines()
    assert len(refusals) == 1, run.describe()
    assert refusals[0].startswith('glance-scrubber:'), run.describe()
    for word in words:
        assert word.format(tmp=tmp_path) in refusals[0], run.describe()
    assert run.summary is None
    assert scenario.rows_of(database.engine, [image.id]) == rows
    assert all(file_store.exists(location.url)
               for location in image.locations)


@pytest.mark.parametrize('backend_name', ['sqlite', 'mysql', 'postgresql'])
def test_a_database_without_glance_schema_says_to_sync_it(backend_name,
                                                          request, config):
    empty = conftest.use(request, databases.Database(backend_name,
                                                     migrate=False))
    config.set('database', connection=empty.url)

    run = fixtures.run_scrubber(config, timeout=120)

    assert run.returncode == 2, run.describe()
    assert run.stderr.count('\n') == 1, run.describe()
    assert 'glance-manage db sync' in run.stderr, run.describe()
    # The log says it too, in one line, and oslo.db's traceback of the
    # failed query is not there.
    assert 'Traceback' not in run.output, run.describe()
    assert 'glance-manage db sync' in run.stdout, run.describe()
