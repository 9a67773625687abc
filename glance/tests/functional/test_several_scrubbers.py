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

"""Several glance-scrubber daemons, each with a lock_path of its own (as
on separate hosts), on one database, sharing a real coordination backend.

The S3 objects are deleted through the counting proxy, which sees every
DELETE whichever member sends it: "deleted by exactly one member" is
"exactly one DELETE per object".
"""

import collections
from concurrent import futures
import contextlib
import os
import re
import signal

from oslo_log import log as oslo_logging
import pytest

from glance.tests import coordination_servers as servers
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

DATABASES = ('mysql', 'postgresql')
DELAY = 0.2  # seconds the proxy adds to each request
POOL_SIZE = 2
MEMBERS = 3
# A member's claims stay its own this long after it is gone
# (glance.scrubber.coordination.Member.ORPHAN_AGE), then a wakeup_time.
TAKEOVER_TIMEOUT = 60 + 60
LOST = 'Coordination backend unreachable'
NOT_STARTED = 'Scrub pass not started: '


@pytest.fixture
def proxy(proxy):
    proxy.delay = DELAY
    return proxy


@pytest.fixture
def coordination_url(request):
    """The machine's Redis, or an etcd of the test's own."""
    if getattr(request, 'param', 'redis') == 'redis':
        return servers.shared_redis_url()
    etcd = servers.EtcdServer()
    etcd.setUp()
    request.addfinalizer(etcd.cleanUp)
    return etcd.url


@pytest.fixture
def own_redis(request):
    redis = servers.RedisServer()
    redis.setUp()
    request.addfinalizer(redis.cleanUp)
    return redis


class Cluster:
    """The members' configurations, the S3 bucket and the images."""

    def __init__(self, config, tmp_path, proxy, s3_bucket, url):
        config.set('glance_store', filesystem_store_datadir=None)
        config.use_s3_store(proxy.endpoint, s3_bucket.name)
        config.set('DEFAULT', scrub_pool_size=POOL_SIZE, wakeup_time=1)
        config.set('coordination', backend_url=url,
                   group_name=servers.unique_group())
        s3_bucket.url_netloc = proxy.netloc
        self.config = config
        self.tmp_path = tmp_path
        self.proxy = proxy
        self.bucket = s3_bucket
        self.stores = scenario.StoreSet(s3=s3_bucket)

    def host(self, name):
        return self.config.on_another_host(self.tmp_path / name)

    def start(self, stack, count, env=None):
        members = [stack.enter_context(fixtures.RunningScrubber(
            self.host('host%d' % number), '--daemon', env=env))
            for number in range(count)]
        wait_for_group(members, count)
        return members

    def seed(self, engine, count):
        images = scenario.pending_images([scenario.Placement(self.bucket)],
                                         count, 1)
        seed.insert(engine, images)
        return images

    def deletes(self):
        """{object path: DELETE requests the proxy saw for it}."""
        return collections.Counter(
            request.path for request in self.proxy.finished_requests()
            if request.method == 'DELETE')

    def object_path(self, image):
        return '/%s/%s' % (self.bucket.name,
                           self.bucket.key_of(image.locations[0].url))


def wait_for_group(members, count, timeout=60):
    line = ': %d members (' % count
    fixtures.wait_until(
        lambda: all(line in member.output() for member in members), timeout,
        what='each member seeing %d members' % count)


def scrubbed_count(engine, images):
    return sum(scenario.is_scrubbed(engine, image) for image in images)


def wait_scrubbed(engine, images, timeout):
    fixtures.wait_until(lambda: scrubbed_count(engine, images) == len(images),
                        timeout, interval=0.5, what='every image scrubbed')


def restore_while_scrubbing(cluster, images):
    """Restore *images* at once, each from a host of its own.

    :returns: {image id: ScrubberRun}.
    """
    with futures.ThreadPoolExecutor(len(images)) as executor:
        runs = {image.id: executor.submit(
                    fixtures.run_scrubber, cluster.host('restorer%d' % n),
                    '--restore', image.id)
                for n, image in enumerate(images)}
    return {image_id: run.result() for image_id, run in runs.items()}


def group_views(output):
    """The member counts a member logged, in order."""
    return [int(count) for count in
            re.findall(r'Scrubber group \S+: (\d+) members', output)]


def scrubbed_by(run):
    return sum(summary['scrubbed'] for summary in run.summaries)


def skipped(runs):
    return sum(summary['skipped'] for run in runs for summary in run.summaries)


@pytest.mark.parametrize('coordination_url', ('redis', 'etcd'),
                         indirect=True)
@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_members_share_the_images_and_a_restore_anywhere_is_safe(
        database, coordination_url, config, tmp_path, proxy, s3_bucket):
    """Three members: each scrubs its share, each object is deleted once.

    A fourth process restores images while the passes run: a restore that
    succeeds keeps all the image's data, one refused leaves the image to
    the scrubbers.
    """
    cluster = Cluster(config, tmp_path, proxy, s3_bucket, coordination_url)
    engine = database.engine
    with contextlib.ExitStack() as stack:
        members = cluster.start(stack, MEMBERS)
        images = cluster.seed(engine, 150)
        restores = restore_while_scrubbing(cluster, images[::15])
        restored = {image_id for image_id, run in restores.items()
                    if run.returncode == 0}
        wait_scrubbed(engine, [image for image in images
                               if image.id not in restored], timeout=120)
        views = [group_views(member.output()) for member in members]
        runs = [member.stop() for member in members]

    for run in runs:
        assert run.returncode == 0, run.describe()
        assert 'Traceback' not in run.output, run.describe()
    # The passes (about 10 s) outlast the membership timeout (3 s): the
    # heartbeats went on, no member ever looked dead to another.
    for view in views:
        assert view[view.index(MEMBERS):] == [MEMBERS], views
    deletes = cluster.deletes()
    for run in restores.values():
        assert run.returncode in (0, 2), run.describe()
    for image in images:
        if image.id in restored:
            assert seed.image_status(engine, image.id).status == 'active'
            assert cluster.bucket.exists(image.locations[0].url)
            assert deletes[cluster.object_path(image)] == 0
        else:
            scenario.check_image_scrubbed(engine, cluster.stores, image)
            assert deletes[cluster.object_path(image)] == 1, image.id
    # Each member took a share (all three were in the group beforehand).
    assert all(scrubbed_by(run) > 0 for run in runs), [
        scrubbed_by(run) for run in runs]
    # ... and only its share: no member raced another for an image (an
    # image restored before its member could claim it is skipped).
    assert skipped(runs) <= len(restored)


@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_a_killed_member_is_taken_over(database, config, tmp_path, proxy,
                                       s3_bucket):
    """kill -9 one of three members in the middle of its work.

    Its share goes to the others once its heartbeat has expired; its
    claims once no live member announces them and they are ORPHAN_AGE old.
    Only images claimed at the moment of the kill may have their data
    deleted twice.
    """
    cluster = Cluster(config, tmp_path, proxy, s3_bucket,
                      servers.shared_redis_url())
    engine = database.engine
    with contextlib.ExitStack() as stack:
        members = cluster.start(stack, MEMBERS)
        images = cluster.seed(engine, 120)
        fixtures.wait_until(lambda: sum(cluster.deletes().values()) >= 15,
                            60, what='some objects deleted')
        os.killpg(members[0].pid, signal.SIGKILL)
        claimed_at_kill = scenario.claimed_ids(engine)
        wait_for_group(members[1:], MEMBERS - 1)
        wait_scrubbed(engine, images, TAKEOVER_TIMEOUT)
        runs = [member.stop() for member in members[1:]]

    for run in runs:
        assert run.returncode == 0, run.describe()
    deletes = cluster.deletes()
    for image in images:
        scenario.check_image_scrubbed(engine, cluster.stores, image)
        count = deletes[cluster.object_path(image)]
        assert count == 1 or (count == 2 and image.id in claimed_at_kill), (
            image.id, count)


def passes_not_started_since_the_loss(member):
    """The daemon's passes not started since it lost the backend."""
    output = member.output()
    if LOST not in output:
        return 0
    return output[output.index(LOST):].count(NOT_STARTED)


def taken_ids(engine, images):
    """The images a pass claimed: deleted, their data gone or going."""
    return {image.id for image in images
            if seed.image_status(engine, image.id).status == 'deleted'}


@pytest.mark.parametrize('backend', ('threading',), indirect=True)
@pytest.mark.parametrize('database', ('postgresql',), indirect=True)
def test_without_the_backend_no_new_image_is_taken_until_it_is_back(
        database, backend, config, tmp_path, proxy, s3_bucket, own_redis):
    """The backend dies in the middle of the passes, then comes back.

    Each member finishes the images it had in flight, and its later passes
    take nothing (each one not started says so in the debug log) until
    the backend is back. On the threading backend (the others run on
    eventlet's).
    """
    config.set('DEFAULT', default_log_levels=','.join(
        oslo_logging.get_default_log_levels() + ['glance.scrubber=DEBUG']))
    cluster = Cluster(config, tmp_path, proxy, s3_bucket, own_redis.url)
    engine = database.engine
    with contextlib.ExitStack() as stack:
        members = cluster.start(stack, 2, env=backend)
        images = cluster.seed(engine, 150)
        fixtures.wait_until(lambda: sum(cluster.deletes().values()) >= 10,
                            60, what='some objects deleted')
        own_redis.stop()
        fixtures.wait_until(
            lambda: all(LOST in member.output() for member in members), 30,
            what='both members noticing the loss')
        # A pass not started means the one in progress ended (a daemon's
        # passes never overlap), and a pass waits for every image it
        # claimed: none is left claimed, every image taken is finished.
        fixtures.wait_until(
            lambda: all(passes_not_started_since_the_loss(member) >= 1
                        for member in members), 60,
            what='both members ending the pass in progress')
        taken = taken_ids(engine, images)
        assert scenario.claimed_ids(engine) == set()
        assert 0 < len(taken) < len(images)
        # A run started meanwhile (from cron) is refused at start.
        once = fixtures.run_scrubber(cluster.host('cron'), env=backend)
        refusal = ('glance-scrubber: [coordination] backend_url: the '
                   'coordination backend is unreachable, nothing was '
                   'scrubbed: cannot connect to %s:%d: Connection refused'
                   % (fixtures.LOOPBACK, own_redis.port))
        assert once.returncode == 2, once.describe()
        assert once.stderr.splitlines() == [refusal], once.describe()
        # Two more passes of each member without the backend: not one
        # image taken since the loss was noticed.
        seen = [passes_not_started_since_the_loss(member)
                for member in members]
        fixtures.wait_until(
            lambda: all(passes_not_started_since_the_loss(member) >= count + 2
                        for member, count in zip(members, seen)), 60,
            what='two more passes of each member without the backend')
        assert taken_ids(engine, images) == taken
        assert scenario.claimed_ids(engine) == set()

        own_redis.start()
        wait_scrubbed(engine, images, 120)
        runs = [member.stop() for member in members]

    for run in runs:
        assert run.returncode == 0, run.describe()
        output = run.output
        assert output.count(LOST) == 1, output
        assert 'Coordination backend reachable again' in output, output
    deletes = cluster.deletes()
    for image in images:
        scenario.check_image_scrubbed(engine, cluster.stores, image)
        assert deletes[cluster.object_path(image)] == 1, image.id
