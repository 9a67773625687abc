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

"""Upstream scrubber defects (glance 33.0.0) and the tests that pin them.

Each defect listed in DESIGN.md has a test that upstream's behaviour
fails; most live next to the feature they concern:

* --restore left the locations deleted (image downloads as 0 bytes):
  test_restore.test_restore_brings_an_image_back_and_the_next_pass_leaves_it,
  unit/test_scrubber.TestRestoreRaces, and the interop test, which
  downloads a restored image through upstream's own glance-api.
* Daemon passes overlapped, and the scheduler recursed until
  RecursionError with wakeup_time = 0: test_daemon (wakeup_time=0, over a
  thousand passes, strictly alternating) and unit/test_daemon.
* SIGTERM killed the daemon (exit 143), SIGINT logged a traceback:
  test_daemon, both signals, both backends, exit 0, no traceback.
* An exception raised inside a scrub job was lost:
  unit/test_scrubber.TestFailures.test_an_unexpected_error_in_a_job_is_
  reported_not_lost, and test_scrub's failing locations (exit 1).
* Images stranded with all their locations deleted: the Backlog of
  test_scrub holds one, which every pass must finish.
* Community images were never scrubbed: the Backlog spreads its images
  over every visibility, community included.
* The --restore guard grepped the process list, and the one-shot command
  returned before its jobs finished, and SQLite failed with "database is
  locked" from pool 4 up: the tests below.
"""

import pytest

from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed


def test_restore_works_while_a_scrubber_daemon_sleeps(config, database,
                                                      file_store):
    # Upstream refuses --restore whenever any process named like the
    # scrubber runs; here only a pass in progress (the lock) refuses it.
    placements = [scenario.Placement(file_store)]
    config.set('DEFAULT', wakeup_time=3600, scrub_time=0)
    daemon = fixtures.RunningScrubber(config, '--daemon')
    daemon.setUp()
    try:
        daemon.wait_for_passes(1)
        image = seed.insert(database.engine, scenario.pending_images(
            placements, 1, 2))[0]

        run = fixtures.run_scrubber(config, '--restore', image.id)
    finally:
        stopped = daemon.stop()
        daemon.cleanUp()

    assert run.returncode == 0, run.describe()
    assert seed.image_status(database.engine, image.id)[0] == 'active'
    assert [state[1] for state in seed.location_states(
        database.engine, image.id)] == ['active', 'active']
    assert all(file_store.exists(location.url)
               for location in image.locations)
    assert stopped.returncode == 0, stopped.describe()


@pytest.mark.parametrize('pool_size', [4, 16, 64])
def test_sqlite_at_any_pool_size_finishes_every_image(pool_size, config,
                                                      database, file_store):
    # Upstream stranded 72 of 300 images at pool 4 and 160 at pool 16 on
    # "database is locked". Every image must be finished, and recorded
    # before the one-shot command returns.
    placements = [scenario.Placement(file_store)]
    images = seed.insert(database.engine, scenario.pending_images(
        placements, 300, 1))
    config.set('DEFAULT', scrub_pool_size=pool_size)

    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert 'database is locked' not in run.output
    assert run.summary['scrubbed'] == 300, run.describe()
    assert seed.count_images(database.engine, 'deleted') == 300
    assert seed.count_images(database.engine, 'pending_delete') == 0
    assert not any(file_store.exists(image.locations[0].url)
                   for image in images)
