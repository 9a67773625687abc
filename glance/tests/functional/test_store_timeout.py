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

"""No store can hold a pass forever (scrub_store_timeout).

The counting proxy in front of the S3 server accepts the requests for one
image's object and never answers them, as a hung store does. The pass
scrubs the others, ends and exits 1 within about the bound; that image
is left claimed (it cannot be restored while the abandoned call may
still delete its data) and a pass after scrub_claim_timeout finishes
it. The first test runs with the proxy in front of a Ceph RGW
as well (default backend): RGW cannot be made to hang one object's
requests by itself. The daemon test is about the daemon's next pass, not
the server: moto only.

On RBD the call blocks inside librbd, where no thread can be interrupted
(on the eventlet backend, in eventlet's native thread pool): the process
must still exit as soon as the pass is over.
"""

import datetime
import time
import uuid

import pytest
import sqlalchemy as sa

from glance.tests.functional import conftest
from glance.tests.harness import ceph
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

STORE_TIMEOUT = 3  # seconds
# Without the bound the held request waits for botocore's read timeout
# (60 s) and its retries: minutes. The run is given far less.
RUN_TIMEOUT = 60
CLAIM_TIMEOUT = 600


def hung_store(config, proxy, s3_bucket, count):
    """*count* S3 images; the store never answers for the first one."""
    config.set('glance_store', filesystem_store_datadir=None)
    config.use_s3_store(proxy.endpoint, s3_bucket.name)
    config.set('DEFAULT', scrub_pool_size=2,
               scrub_store_timeout=STORE_TIMEOUT,
               scrub_claim_timeout=CLAIM_TIMEOUT)
    s3_bucket.url_netloc = proxy.netloc
    images = scenario.pending_images([scenario.Placement(s3_bucket)],
                                     count, 1)
    hung = images[0]
    proxy.hold(lambda method, path: scenario.image_of(path) == hung.id)
    return images, hung


def age_claim(engine, image_id, seconds):
    """Make the claim on an image look *seconds* older."""
    images = seed.IMAGES
    with engine.begin() as connection:
        stamp = connection.execute(sa.select(images.c.updated_at).where(
            images.c.id == image_id)).scalar_one()
        connection.execute(sa.update(images).where(
            images.c.id == image_id).values(
            updated_at=stamp - datetime.timedelta(seconds=seconds)))


@conftest.on_both_backends_and_rgw
def test_a_store_that_never_answers_leaves_its_image_claimed(
        backend, database, config, proxy, s3_bucket):
    images, hung = hung_store(config, proxy, s3_bucket, 4)
    seed.insert(database.engine, images)

    run = fixtures.run_scrubber(config, env=backend, timeout=RUN_TIMEOUT)

    assert run.returncode == 1, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    # Left claimed, not failed: a failed image is pending_delete again.
    assert scenario.summary_counts(run.summary) == {
        'found': 4, 'scrubbed': 3, 'failed': 0, 'skipped': 0, 'in_use': 0,
        'left_claimed': 1, 'locations_deleted': 3,
        'bytes_reclaimed': 3 * scenario.IMAGE_SIZE}
    assert 'glance-scrubber: 1 images stay claimed until a later pass ' \
        'takes them over (scrub_claim_timeout)' in run.stderr, run.describe()
    assert run.summary['seconds'] < RUN_TIMEOUT / 2, run.describe()
    assert [line for line in run.output.splitlines()
            if hung.id in line and 'scrub_store_timeout' in line and
            ' ERROR ' in line], run.describe()
    assert proxy.held >= 1, 'the store was not asked'
    # Claimed, not handed back: no restore while the call may still run.
    assert seed.image_status(database.engine, hung.id).status == 'deleted'
    assert [state[1] for state in seed.location_states(
        database.engine, hung.id)] == ['pending_delete']
    restore = fixtures.run_scrubber(config, '--restore', hung.id,
                                    env=backend, timeout=RUN_TIMEOUT)
    assert restore.returncode == 2, restore.describe()
    assert s3_bucket.keys() == ['%s.0' % hung.id]

    # Once the store answers and the claim is old, a pass finishes it.
    proxy.release()
    age_claim(database.engine, hung.id, CLAIM_TIMEOUT + 60)
    later = fixtures.run_scrubber(config, env=backend, timeout=RUN_TIMEOUT)

    assert later.returncode == 0, later.describe()
    assert scenario.summary_counts(later.summary)['scrubbed'] == 1
    assert s3_bucket.keys() == []
    assert [state[1] for state in seed.location_states(
        database.engine, hung.id)] == ['deleted']


@pytest.mark.parametrize('backend', ('eventlet', 'threading'),
                         indirect=True)
def test_a_daemon_goes_on_after_a_store_call_timed_out(
        backend, database, config, proxy, s3_bucket):
    images, hung = hung_store(config, proxy, s3_bucket, 2)
    seed.insert(database.engine, images)
    config.set('DEFAULT', wakeup_time=1)

    daemon = fixtures.RunningScrubber(config, '--daemon', env=backend)
    daemon.setUp()
    try:
        daemon.wait_for_passes(2, timeout=RUN_TIMEOUT)
        stopped = daemon.stop(timeout=RUN_TIMEOUT)
    finally:
        daemon.cleanUp()

    assert stopped.returncode == 0, stopped.describe()
    assert 'Traceback' not in stopped.output, stopped.describe()
    first, second = stopped.summaries[:2]
    assert (first['scrubbed'], first['failed'], first['left_claimed']) == \
        (1, 0, 1), stopped.describe()
    # The next pass leaves the claimed image alone until the claim is old,
    # and says it waits.
    assert (second['found'], second['claimed_elsewhere']) == (0, 1), \
        stopped.describe()


# Every message to an OSD waits up to this long: one delete sends dozens.
OSD_DELAY = 20


@pytest.mark.parametrize('backend', ('eventlet', 'threading'),
                         indirect=True)
def test_a_call_stuck_in_librbd_does_not_keep_the_process_alive(
        backend, database, config, ceph_cluster, rbd_pool, tmp_path):
    url = rbd_pool.put('image-%s' % uuid.uuid4().hex[:12], b'x' * 1024)
    image = seed.Image(locations=[seed.Location(url)], size=1024)
    seed.insert(database.engine, [image])
    conf = ceph.client_conf(ceph_cluster, tmp_path / 'ceph-client.conf', {
        'ms inject delay type': 'osd',
        'ms inject delay max': OSD_DELAY,
        'ms inject delay probability': 1})
    config.set('glance_store', stores='rbd', default_store='rbd',
               filesystem_store_datadir=None,
               rbd_store_pool=ceph_cluster.pool,
               rbd_store_user=ceph_cluster.user, rbd_store_ceph_conf=conf,
               # Set, so that librados does not end the call first.
               rados_connect_timeout=300)
    config.set('DEFAULT', scrub_store_timeout=STORE_TIMEOUT)

    started = time.monotonic()
    run = fixtures.run_scrubber(config, env=backend, timeout=RUN_TIMEOUT)
    elapsed = time.monotonic() - started

    assert run.returncode == 1, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert scenario.summary_counts(run.summary)['left_claimed'] == 1
    # The pass ended at the bound; the process did not wait for librbd.
    assert elapsed < run.summary['seconds'] + 20, (elapsed, run.describe())
    assert seed.image_status(database.engine, image.id).status == 'deleted'
