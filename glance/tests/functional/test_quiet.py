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

"""Quiet when all is well: cron mails the operator whatever is on stderr.

A clean pass leaves stderr empty on either backend, even with Python
showing every warning and a library warning as it is imported (the
warning goes to the log); a failed pass says so there in one line; a pass
waiting for the scrub lock says so once.
"""

import time

import pytest
import sqlalchemy as sa

from glance import scrubber
from glance.tests import databases
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

BACKENDS = ('eventlet', 'threading')
# Every warning shown once where it is raised, not only those Python's
# default filters let through (DeprecationWarning, ResourceWarning...).
EVERY_WARNING = {'PYTHONWARNINGS': 'default'}
LOCK_WAIT = 'Waiting for the scrub lock'


def plant(database, file_store, count=3):
    images = scenario.pending_images([scenario.Placement(file_store)],
                                     count, 2)
    seed.insert(database.engine, images)
    return images


def scrubbed(database, images):
    return all(seed.image_status(database.engine, image.id).status ==
               'deleted' for image in images)


@pytest.mark.parametrize('backend', BACKENDS, indirect=True)
@pytest.mark.parametrize('database', ('sqlite', 'postgresql'),
                         indirect=True)
def test_a_clean_pass_writes_nothing_to_stderr(database, backend, config,
                                               file_store, tmp_path):
    images = plant(database, file_store)
    warning = fixtures.warning_on_import(tmp_path / 'site')

    run = fixtures.run_scrubber(config, env=dict(backend, **EVERY_WARNING,
                                                 **warning))

    assert run.returncode == 0, run.describe()
    assert run.summary['scrubbed'] == len(images), run.describe()
    assert run.stderr == '', run.describe()
    # The log goes to stdout unless the operator sends it elsewhere; the
    # warning raised before it was set up is in it, once.
    assert 'Scrub pass summary:' in run.stdout
    assert run.stdout.count('UserWarning: ' + fixtures.IMPORT_WARNING) == 1, \
        run.describe()
    assert 'WARNING py.warnings' in run.stdout, run.describe()


@pytest.mark.parametrize('args, logged', [
    # Before the log is set up: the warning is dropped.
    (('--config-file', '/nonexistent.conf'), False),
    # While it is set up.
    (('--log-file', '/nonexistent/glance-scrubber.log'), False),
    # Once it is set up.
    (('--restore', 'all'), True),
], ids=['bad-command-line', 'log-file-cannot-be-opened', 'bad-request'])
def test_a_refusal_is_one_line_on_stderr_whatever_warned_at_import(
        args, logged, config, tmp_path):
    warning = fixtures.warning_on_import(tmp_path / 'site')

    run = fixtures.run_scrubber(config, *args, env=warning)

    assert run.returncode == 2, run.describe()
    assert len(run.stderr.splitlines()) == 1, run.describe()
    assert run.stderr.startswith('glance-scrubber:'), run.describe()
    assert (fixtures.IMPORT_WARNING in run.stdout) == logged, run.describe()


@pytest.mark.parametrize('backend', BACKENDS, indirect=True)
def test_a_failed_pass_says_so_on_stderr_in_one_line(database, backend,
                                                     config, file_store):
    images = plant(database, file_store, count=2)
    unscrubbable = seed.Image(locations=[seed.Location('nosuch://host/x')])
    seed.insert(database.engine, [unscrubbable])

    run = fixtures.run_scrubber(config, env=backend)

    assert run.returncode == 1, run.describe()
    assert scrubbed(database, images)
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.describe()
    assert lines[0].startswith('glance-scrubber: 1 images could not be '
                               'scrubbed'), run.describe()


@pytest.mark.parametrize('backend', BACKENDS, indirect=True)
def test_a_pass_waiting_for_the_lock_says_so_once(database, backend, config,
                                                  file_store):
    images = plant(database, file_store)
    # What a restore or another pass on this host holds.
    lock = scrubber.ScrubLock(config.sections['oslo_concurrency'][
        'lock_path'])
    assert lock.acquire(blocking=False)
    try:
        waiting = fixtures.RunningScrubber(config, env=backend)
        waiting.setUp()
        fixtures.wait_until(lambda: LOCK_WAIT in waiting.output(), 60,
                            what='the scrubber waiting for the lock')
        # It tries again every second: let it try a few times.
        time.sleep(3.5)
        assert not scrubbed(database, [images[0]])
    finally:
        lock.release()
    try:
        run = waiting.wait(timeout=120)
    finally:
        waiting.cleanUp()

    assert run.returncode == 0, run.describe()
    assert run.output.count(LOCK_WAIT) == 1, run.describe()
    assert run.stderr == '', run.describe()
    assert scrubbed(database, images)


def max_connections(engine):
    """The server's own limit on connections, as it reports it."""
    query = ('SHOW max_connections' if engine.dialect.name == 'postgresql'
             else 'SELECT @@max_connections')
    with engine.connect() as connection:
        return int(connection.execute(sa.text(query)).scalar())


@pytest.mark.parametrize('backend', BACKENDS, indirect=True)
@pytest.mark.parametrize('database', ('mysql', 'postgresql'), indirect=True)
def test_a_pool_above_the_databases_max_connections_scrubs_everything(
        database, backend, config, file_store):
    # Workers delete from the stores only; the pass reads and records
    # through a few connections whatever the pool size.
    limit = max_connections(database.engine)
    pool_size = limit + 10
    if pool_size > 1000:
        # The largest scrub_pool_size cannot go above this server's limit
        # (its own default is 100 or 151): under CI an error, not a skip.
        raise databases.unavailable(
            'max_connections is %d on this %s server: a scrub_pool_size '
            'above it would be above the largest one, 1000'
            % (limit, database.engine.dialect.name))
    images = plant(database, file_store, count=pool_size * 2)
    config.set('DEFAULT', scrub_pool_size=pool_size)

    run = fixtures.run_scrubber(config, env=backend)

    assert run.returncode == 0, run.describe()
    assert run.summary['scrubbed'] == len(images), run.describe()
    assert run.stderr == '', run.describe()


def test_a_clean_multi_store_pass_logs_no_error(database, config,
                                                file_store):
    # glance_store lists every driver's options, cinder's too, whose
    # library (os-brick) a deployment without cinder does not install.
    config.set('glance_store', stores=None, default_store=None)
    config.use_multi_store('fast', {
        'fast': ('file', {'filesystem_store_datadir': file_store.datadir})})
    images = scenario.pending_images(
        [scenario.Placement(file_store, backend='fast')], 3, 1)
    seed.insert(database.engine, images)

    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert run.summary['scrubbed'] == len(images), run.describe()
    assert ' ERROR ' not in run.output, run.describe()
    assert run.stderr == '', run.describe()
