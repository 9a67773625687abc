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

"""glance-scrubber --daemon: passes on schedule, graceful SIGTERM/SIGINT."""

import signal

import pytest

from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

SIGNALS = (signal.SIGTERM, signal.SIGINT)
LIVENESS = 120  # seconds to wait for what must happen; never asserted
PASSES = 1100  # above Python's default recursion limit


def signal_ids(signum):
    return signal.Signals(signum).name


def wait_until_scrubbed(engine, images, daemon):
    def all_deleted():
        if not daemon.running():
            raise AssertionError('the daemon exited:\n' + daemon.output())
        return all(scenario.is_scrubbed(engine, image) for image in images)
    fixtures.wait_until(all_deleted, LIVENESS, interval=0.2,
                        what='images scrubbed by the daemon')


def check_clean_exit(run):
    assert run.returncode == 0, run.describe()
    assert 'Traceback' not in run.output, run.describe()


@pytest.mark.parametrize('signum', SIGNALS, ids=signal_ids)
def test_daemon_scrubs_images_deleted_while_it_runs(signum, database,
                                                    config, file_store):
    engine = database.engine
    config.set('DEFAULT', wakeup_time=1)
    backlog = scenario.Backlog([scenario.Placement(file_store)],
                               scenario.StoreSet(file=file_store),
                               count=(3, 2, 1)).insert(engine)
    placements = backlog.placements

    with fixtures.RunningScrubber(config, '--daemon') as daemon:
        wait_until_scrubbed(engine, backlog.to_scrub, daemon)
        later = scenario.pending_images(placements, 4, 2)
        seed.insert(engine, later)
        wait_until_scrubbed(engine, later, daemon)
        passes = len(daemon.summaries())

        run = daemon.stop(signum)

    check_clean_exit(run)
    assert passes >= 2 and len(run.summaries) >= passes
    assert sum(summary['scrubbed'] for summary in run.summaries) == \
        len(backlog.to_scrub) + len(later)
    assert sum(summary['failed'] for summary in run.summaries) == 0
    for image in backlog.to_scrub + later:
        scenario.check_image_scrubbed(engine, backlog.stores, image)
    backlog.check_untouched(engine)


def test_back_to_back_passes_never_overlap_nor_pile_up(database, config,
                                                       file_store):
    """wakeup_time = 0: more passes than Python's recursion limit.

    Each pass ends before the next starts, and the loop does not recurse.
    """
    engine = database.engine
    config.set('DEFAULT', wakeup_time=0)
    backlog = scenario.Backlog([scenario.Placement(file_store)],
                               scenario.StoreSet(file=file_store),
                               count=(2, 1, 1)).insert(engine)

    with fixtures.RunningScrubber(config, '--daemon') as daemon:
        fixtures.wait_until(
            lambda: len(daemon.summaries()) > PASSES or not daemon.running(),
            LIVENESS, interval=0.5, what='%d passes' % PASSES)
        later = scenario.pending_images(backlog.placements, 2, 1)
        seed.insert(engine, later)
        wait_until_scrubbed(engine, later, daemon)
        run = daemon.stop(signal.SIGTERM)

    check_clean_exit(run)
    assert 'RecursionError' not in run.output
    marks = [line.split('Scrub pass ', 1)[1].split(':', 1)[0]
             for line in run.stdout.splitlines()
             if 'Scrub pass starting:' in line or
             'Scrub pass summary:' in line]
    assert len(marks) > 2 * PASSES
    assert marks == ['starting', 'summary'] * (len(marks) // 2)
    assert sum(summary['scrubbed'] for summary in run.summaries) == \
        len(backlog.to_scrub) + len(later)
    for image in backlog.to_scrub + later:
        scenario.check_image_scrubbed(engine, backlog.stores, image)
    backlog.check_untouched(engine)


@pytest.mark.parametrize('backend', ('eventlet', 'threading'),
                         indirect=True)
@pytest.mark.parametrize('signum', SIGNALS, ids=signal_ids)
def test_daemon_stopped_mid_pass_finishes_the_images_in_flight(
        signum, backend, database, config, moto_server, s3_bucket):
    engine = database.engine
    proxy = fixtures.CountingProxy(moto_server.endpoint,
                                   group_of=scenario.image_of)
    with proxy:
        config.set('glance_store', filesystem_store_datadir=None)
        config.use_s3_store(proxy.endpoint, s3_bucket.name)
        config.set('DEFAULT', wakeup_time=1, scrub_pool_size=2)
        s3_bucket.url_netloc = proxy.netloc
        images = scenario.pending_images([scenario.Placement(s3_bucket)],
                                         20, 2)
        seed.insert(engine, images)
        proxy.hold(fixtures.object_request)
        with fixtures.RunningScrubber(config, '--daemon',
                                      env=backend) as daemon:
            fixtures.wait_until(lambda: proxy.held >= 2, LIVENESS,
                                what='two requests held')
            daemon.send(signum)
            proxy.release()
            run = daemon.wait()
        touched = {request.group for request in proxy.requests
                   if fixtures.object_request(request.method, request.path)}

    check_clean_exit(run)
    deleted = check_nothing_half_done(engine, s3_bucket, images)
    assert run.summary['scrubbed'] == len(deleted)
    # The pass that stopped early accounts for every image it found.
    scenario.check_adds_up(run.summary)
    assert run.summary['found'] == len(deleted), run.describe()
    # Every image the pass started on was finished; after the signal it
    # took no new ones, so most of the backlog is still waiting.
    assert touched and touched <= deleted
    assert len(deleted) < len(images)


def check_nothing_half_done(engine, bucket, images):
    """Check no image or location is half done.

    A location is deleted exactly when its data is gone; an image is
    deleted exactly when all its locations are.

    :returns: the ids of the images deleted.
    """
    deleted = set()
    for image in images:
        status, _deleted, _at = seed.image_status(engine, image.id)
        states = seed.location_states(engine, image.id)
        for url, location_status, _flag in states:
            assert (location_status == 'deleted') == \
                (not bucket.exists(url)), (image.id, url, location_status)
        all_gone = all(state[1] == 'deleted' for state in states)
        assert (status == 'deleted') == all_gone, (image.id, states)
        assert status in ('deleted', 'pending_delete')
        if status == 'deleted':
            deleted.add(image.id)
    return deleted
