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

"""The database goes away under a pass: short outages are ridden through.

The scrubber reaches its database through a TCP proxy (tcp_proxy), which
cuts every connection and refuses new ones for a few seconds, as a server
restart or a fail-over does, or freezes them.
"""

import signal
import time

import pytest
import sqlalchemy as sa

from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests.harness import tcp_proxy
from glance.tests import seed

DELAY = 0.1  # seconds per store request: a pass of a few seconds
IMAGES = 60
POOL_SIZE = 4
OUTAGE = 3  # seconds


@pytest.fixture
def proxy(proxy):
    proxy.delay = DELAY
    return proxy


@pytest.fixture
def database_proxy(database):
    url = sa.engine.make_url(database.url)
    proxy = tcp_proxy.TcpProxy((url.host, url.port))
    proxy.setUp()
    yield proxy
    proxy.cleanUp()


def start_a_slow_pass(database, database_proxy, config, proxy, s3_bucket,
                      backend, *args):
    config.set('database', connection=database_proxy.url_for(database.url))
    config.set('glance_store', filesystem_store_datadir=None)
    config.use_s3_store(proxy.endpoint, s3_bucket.name)
    config.set('DEFAULT', scrub_pool_size=POOL_SIZE)
    s3_bucket.url_netloc = proxy.netloc
    images = scenario.pending_images([scenario.Placement(s3_bucket)],
                                     IMAGES, 1)
    seed.insert(database.engine, images)
    return images, fixtures.RunningScrubber(config, *args, env=backend)


def wait_for_deletes(proxy, count):
    fixtures.wait_until(
        lambda: sum(request.method == 'DELETE'
                    for request in proxy.finished_requests()) >= count,
        120, what='%d deletes' % count)


@pytest.mark.parametrize('database', ('mysql', 'postgresql'),
                         indirect=True)
@pytest.mark.parametrize('backend', ('eventlet', 'threading'),
                         indirect=True)
def test_a_short_outage_is_ridden_through(database, database_proxy, config,
                                          proxy, s3_bucket, backend):
    images, scrubber = start_a_slow_pass(database, database_proxy, config,
                                         proxy, s3_bucket, backend)
    with scrubber:
        wait_for_deletes(proxy, IMAGES // 4)
        database_proxy.cut()
        time.sleep(OUTAGE)
        database_proxy.restore()
        run = scrubber.wait()

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == IMAGES, \
        run.describe()
    stores = scenario.StoreSet(s3=s3_bucket)
    for image in images:
        scenario.check_image_scrubbed(database.engine, stores, image)


@pytest.mark.parametrize('database', ('mysql', 'postgresql'),
                         indirect=True)
@pytest.mark.parametrize('backend', ('eventlet', 'threading'),
                         indirect=True)
@pytest.mark.parametrize('mode', ('once', 'daemon'))
def test_a_stop_is_acted_on_while_the_database_is_frozen(
        database, database_proxy, config, proxy, s3_bucket, backend, mode):
    config.set('DEFAULT', report_interval=1)
    # A daemon stopped so exits 1 as a single pass does: the stop was
    # asked for, but what its pass claimed stays claimed.
    images, scrubber = start_a_slow_pass(
        database, database_proxy, config, proxy, s3_bucket, backend,
        *(['--daemon'] if mode == 'daemon' else []))
    with scrubber:
        wait_for_deletes(proxy, IMAGES // 4)
        database_proxy.freeze()
        time.sleep(OUTAGE)
        frozen_output = scrubber.output()
        scrubber.send(signal.SIGTERM)
        try:
            run = scrubber.wait(timeout=60)
        finally:
            database_proxy.thaw()

    # Said while frozen, then the pass ends with its summary line once
    # the stop's grace has passed, though the database still does not
    # answer.
    assert 'Scrub pass waiting for the database' in frozen_output, \
        frozen_output
    assert run.summary is not None, run.describe()
    assert run.returncode == 1, run.describe()
    assert 'stopped while the database was not answering' in run.output
    # What the pass had claimed and not recorded is counted, left claimed.
    scenario.check_adds_up(run.summary)
    assert run.summary.get('left_claimed', 0) > 0, run.describe()


@pytest.mark.parametrize('database', ('mysql', 'postgresql'),
                         indirect=True)
def test_an_outage_longer_than_the_retries_ends_with_a_summary(
        database, database_proxy, config, proxy, s3_bucket, backend):
    images, scrubber = start_a_slow_pass(database, database_proxy, config,
                                         proxy, s3_bucket, backend)
    with scrubber:
        wait_for_deletes(proxy, IMAGES // 4)
        database_proxy.cut()
        try:
            run = scrubber.wait(timeout=180)
        finally:
            database_proxy.restore()

    # oslo.db gave up: the pass says so in one line on stderr, ends with
    # its summary line, and no traceback reaches the log.
    assert run.returncode == 1, run.describe()
    assert run.summary is not None, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert len(run.stderr.splitlines()) == 1, run.describe()
    assert 'Scrub pass stopped early' in run.stdout, run.describe()
    scenario.check_adds_up(run.summary)
