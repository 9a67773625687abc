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

"""The claim: whatever runs where, an image never ends active without data.

A scrub pass claims an image in the database before touching its data.
These tests stop the real glance-scrubber at each step of a scrub
(paused_scrubber) and land there what another host could do at that
moment: a restore with a lock_path of its own, a hand-made change, or a
crash (kill -9). The only ends allowed are an active image with all its
data, and a deleted image with none.
"""

import datetime
import os
import re

from oslo_utils import timeutils
from prometheus_client import parser
import pytest

from glance.tests import databases
from glance.tests.functional import conftest
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

DATABASES = ('sqlite', 'mysql', 'postgresql')
BACKENDS = ('eventlet', 'threading')
STEPS = ('claim', 'delete', 'store', 'record')

RESTORED = ('active', True)
SCRUBBED = ('deleted', False)


def one_image(file_store, locations=2):
    return scenario.pending_images([scenario.Placement(file_store)], 1,
                                   locations)[0]


def end_state(engine, file_store, image):
    """(image status, whether its data is there): all of it or none."""
    present = {file_store.exists(location.url)
               for location in image.locations}
    assert len(present) == 1, 'part of the data of %s is gone' % image.id
    return seed.image_status(engine, image.id).status, present.pop()


def location_statuses(engine, image):
    return [status for _url, status, _deleted
            in seed.location_states(engine, image.id)]


def refused_as_claimed(run):
    assert run.returncode == 2, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    lines = [line for line in run.stderr.splitlines()
             if line.startswith('glance-scrubber:')]
    assert len(lines) == 1 and 'claimed' in lines[0], run.describe()


@pytest.mark.parametrize('backend', BACKENDS, indirect=True)
@pytest.mark.parametrize('database', DATABASES, indirect=True)
@pytest.mark.parametrize('step', STEPS)
def test_a_restore_from_another_host_at_any_step_never_loses_data(
        step, database, backend, config, file_store, tmp_path):
    engine = database.engine
    image = one_image(file_store)
    seed.insert(engine, [image])
    elsewhere = config.on_another_host(tmp_path / 'elsewhere')

    with fixtures.PausedScrubber(config, step, env=backend) as scrub:
        scrub.wait_until_paused()
        restore = fixtures.run_scrubber(elsewhere, '--restore', image.id,
                                        env=backend)
        scrub.resume()
        run = scrub.wait()

    assert end_state(engine, file_store, image) in (RESTORED, SCRUBBED)
    assert run.returncode == 0, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    if step == 'claim':
        # The restore came first: the pass could not claim the image.
        assert restore.returncode == 0, restore.describe()
        assert end_state(engine, file_store, image) == RESTORED
        assert location_statuses(engine, image) == ['active', 'active']
        assert scenario.summary_counts(run.summary)['skipped'] == 1
    else:
        refused_as_claimed(restore)
        assert end_state(engine, file_store, image) == SCRUBBED
        assert location_statuses(engine, image) == ['deleted', 'deleted']
        assert scenario.summary_counts(run.summary)['scrubbed'] == 1


def backdate_claims(engine, seconds=7200):
    """Make every claim look *seconds* old: the time a later pass waits."""
    stamp = timeutils.utcnow() - datetime.timedelta(seconds=seconds)
    with engine.begin() as connection:
        connection.execute(seed.IMAGES.update()
                           .where(seed.IMAGES.c.status == 'deleted')
                           .values(updated_at=stamp))


CLAIMED_TOTAL = re.compile(r'^Claimed: (\d+) images?, (\d+) bytes.*; may be '
                           r'taken over now: (\d+) images?; the next in '
                           r'(\S+) \(scrub_claim_timeout: 3600 s\)$')
# What --list says of a claim made a moment ago, an hour to go.
AN_HOUR_TO_GO = re.compile(r'59m[0-5]\ds|1h00m')


def check_said_what_waits(config, run, metrics_path, claimed):
    """The pass, --list and the metrics show the claims of a dead pass.

    They were made a moment ago: an hour (scrub_claim_timeout) to go.
    """
    assert run.summary['claimed_elsewhere'] == len(claimed), run.describe()
    assert '%d images are claimed by another scrub pass' % len(claimed) \
        in run.stdout, run.describe()
    assert 'scrub_claim_timeout (3600 s) after the claim' in run.stdout

    listing = fixtures.run_scrubber(config, '--list')
    assert listing.returncode == 0, listing.describe()
    rows = scenario.claimed_listed(listing)
    assert set(rows) == claimed, listing.describe()
    assert all(AN_HOUR_TO_GO.fullmatch(takeable_in)
               for _at, takeable_in in rows.values()), listing.describe()
    totals = [CLAIMED_TOTAL.match(line)
              for line in listing.stdout.splitlines()]
    totals = [match for match in totals if match]
    assert len(totals) == 1, listing.describe()
    images, _bytes, takeable_now, next_in = totals[0].groups()
    assert (int(images), int(takeable_now)) == (len(claimed), 0)
    assert AN_HOUR_TO_GO.fullmatch(next_in), listing.describe()

    with open(metrics_path) as stream:
        values = {sample.name: sample.value for family
                  in parser.text_string_to_metric_families(stream.read())
                  for sample in family.samples}
    assert values['glance_scrubber_claimed_images'] == len(claimed)
    assert 3500 < values[
        'glance_scrubber_claimed_next_takeable_seconds'] <= 3600, values


@pytest.mark.parametrize('database', DATABASES, indirect=True)
@pytest.mark.parametrize('step', ('delete', 'record'))
def test_a_pass_killed_after_its_claims_is_finished_by_a_later_one(
        step, database, config, file_store, tmp_path):
    """kill -9 with images claimed, their data there or already deleted.

    Until the claim timeout those images belong to the dead pass: no
    restore brings them back and no pass takes them, and the next pass,
    --list and the metrics say how many wait and until when. Then a pass
    takes the claims over and deletes whatever is left, however much of
    the data it finds already gone.
    """
    engine = database.engine
    stores = scenario.StoreSet(file=file_store)
    images = scenario.pending_images([scenario.Placement(file_store)], 25,
                                     1)
    seed.insert(engine, images)
    metrics_path = str(tmp_path / 'glance_scrubber.prom')

    with fixtures.PausedScrubber(config, step) as scrub:
        scrub.wait_until_paused()
        scrub.kill()

    claimed = scenario.claimed_ids(engine)
    assert claimed, 'the pass was killed before it claimed anything'
    refused_as_claimed(fixtures.run_scrubber(
        config.on_another_host(tmp_path / 'elsewhere'), '--restore',
        sorted(claimed)[0]))

    config.set('DEFAULT', metrics_file=metrics_path)
    run = fixtures.run_scrubber(config)
    assert run.returncode == 0, run.describe()
    assert scenario.claimed_ids(engine) == claimed  # not taken: not old enough
    check_said_what_waits(config, run, metrics_path, claimed)
    backdate_claims(engine)
    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == len(claimed)
    assert run.summary['claimed_elsewhere'] == 0, run.describe()
    for image in images:
        scenario.check_image_scrubbed(engine, stores, image)
    assert file_store.names() == []


@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_a_store_refusal_gives_the_claim_back(database, config, file_store):
    """The image fails, is pending_delete again and can be restored.

    Its first location's data was deleted before the store refused the
    second (a directory: unlinking it fails): that location stays
    recorded deleted, and only the second comes back.
    """
    engine = database.engine
    image = one_image(file_store)
    refused = file_store.path_of(image.locations[1].url)
    os.remove(refused)
    os.mkdir(refused)
    seed.insert(engine, [image])

    run = scenario.run_with_one_failure(config, found=1,
                                        locations_deleted=1)
    assert image.id in run.stderr + run.stdout

    scenario.check_pending(engine, image, ['deleted', 'pending_delete'])
    restore = fixtures.run_scrubber(config, '--restore', image.id)
    assert restore.returncode == 0, restore.describe()
    assert seed.image_status(engine, image.id).status == 'active'
    assert location_statuses(engine, image) == ['deleted', 'active']


@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_an_image_changed_by_hand_under_a_pass_is_an_error(
        database, config, file_store):
    """Nothing brings a claimed image back but a hand-made change.

    Made while the data is being deleted, it fails the image loudly.
    """
    engine = database.engine
    image = one_image(file_store, locations=1)
    seed.insert(engine, [image])

    with fixtures.PausedScrubber(config, 'record') as scrub:
        scrub.wait_until_paused()
        with engine.begin() as connection:
            connection.execute(seed.IMAGES.update()
                               .where(seed.IMAGES.c.id == image.id)
                               .values(status='active', deleted=False))
        scrub.resume()
        run = scrub.wait()

    assert run.returncode == 1, run.describe()
    assert scenario.summary_counts(run.summary)['failed'] == 1
    errors = [line for line in run.output.splitlines()
              if ' ERROR ' in line and image.id in line]
    assert any('became active' in line for line in errors), run.describe()


@pytest.mark.parametrize('database', ('mysql', 'postgresql'), indirect=True)
def test_reads_that_decide_a_delete_go_to_the_primary(
        request, database, config, file_store):
    """A replica (slave_connection) still shows a restored image deleted.

    The pass may page through the replica, but it decides on the primary:
    the restored image keeps its data.
    """
    images = scenario.pending_images([scenario.Placement(file_store)], 3, 1)
    replica = conftest.use(request, databases.Database(database.backend))
    for engine in (database.engine, replica.engine):
        seed.insert(engine, images)
    restored = images[1]
    restore = fixtures.run_scrubber(config, '--restore', restored.id)
    assert restore.returncode == 0, restore.describe()
    config.set('database', slave_connection=replica.url)

    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary)['skipped'] == 1
    assert seed.image_status(database.engine, restored.id).status == \
        'active'
    assert file_store.exists(restored.locations[0].url)
    for image in (images[0], images[2]):
        scenario.check_image_scrubbed(database.engine,
                                      scenario.StoreSet(file=file_store),
                                      image)
