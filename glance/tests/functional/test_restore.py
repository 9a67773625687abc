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

"""glance-scrubber --restore, on every database."""

import os

import pytest

from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

DATABASES = ('sqlite', 'mysql', 'postgresql')


def check_refused(run, *expected_words):
    """Exit 2, one line on stderr naming the problem, no traceback."""
    assert run.returncode == 2, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    lines = refusal_lines(run)
    assert len(lines) == 1, run.describe()
    for word in expected_words:
        assert word in lines[0], run.describe()


def refusal_lines(run):
    return [line for line in run.stderr.splitlines()
            if line.startswith('glance-scrubber:')]


@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_restore_brings_an_image_back_and_the_next_pass_leaves_it(
        database, config, file_store):
    engine = database.engine
    stores = scenario.StoreSet(file=file_store)
    placements = [scenario.Placement(file_store)]
    restored, scrubbed = scenario.pending_images(placements, 2, 2)
    # One location of the restored image was scrubbed already by a pass
    # that failed on the other: it stays deleted.
    partly = scenario.pending_images(placements, 1, 3)[0]
    partly.locations[0].status = 'deleted'
    active = scenario.pending_images(placements, 1, 1, status='active',
                                     deleted=False)[0]
    active.locations[0].status = 'active'
    seed.insert(engine, [restored, scrubbed, partly, active])
    data_before = scenario.data_present(stores, [restored, partly])

    for image, count in ((restored, 2), (partly, 2)):
        run = fixtures.run_scrubber(config, '--restore', image.id)
        assert run.returncode == 0, run.describe()
        assert 'Traceback' not in run.output, run.describe()
        assert restored_line(run, image.id, count), run.describe()
        assert run.summary is None  # nothing was scrubbed
        check_active(engine, image)
    for image in (restored, partly):
        scenario.check_data(stores, image, lambda url: url, data_before)
    restored_rows = scenario.rows_of(engine, [restored.id, partly.id,
                                              active.id])

    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary) == {
        'found': 1, 'scrubbed': 1, 'failed': 0, 'skipped': 0,
        'in_use': 0, 'locations_deleted': 2,
        'bytes_reclaimed': 2 * scenario.IMAGE_SIZE}
    scenario.check_image_scrubbed(engine, stores, scrubbed)
    assert scenario.rows_of(engine, [restored.id, partly.id, active.id]) \
        == restored_rows
    for image in (restored, partly):
        scenario.check_data(stores, image, lambda url: url, data_before)

    unknown = scenario.new_image_id()
    for image_id, status in ((unknown, None), (active.id, 'active'),
                             (scrubbed.id, 'deleted')):
        run = fixtures.run_scrubber(config, '--restore', image_id)
        check_refused(run, image_id, *([status] if status else []))
    assert scenario.rows_of(engine, [restored.id, partly.id, active.id]) \
        == restored_rows


def restored_line(run, image_id, count):
    """The line --restore prints: the image and how many locations."""
    return [line for line in run.stdout.splitlines()
            if image_id in line and 'restored' in line and
            str(count) in line.replace(image_id, '')]


def check_active(engine, image):
    """Active and downloadable: the image and its pending locations."""
    status, deleted, deleted_at = seed.image_status(engine, image.id)
    assert (status, deleted, deleted_at) == ('active', False, None)
    expected = [(location.url, 'active', False)
                if location.status == 'pending_delete'
                else (location.url, location.status, True)
                for location in image.locations]
    assert seed.location_states(engine, image.id) == expected
    assert any(state == 'active' for _url, state, _deleted in expected)


def test_restore_of_an_image_without_data_left_is_refused(
        database, config, file_store):
    """Every location was scrubbed: there is nothing to bring back."""
    image = scenario.pending_images([scenario.Placement(file_store)], 1,
                                    1)[0]
    image.locations[0].status = 'deleted'
    seed.insert(database.engine, [image])
    rows = scenario.rows_of(database.engine, [image.id])

    check_refused(fixtures.run_scrubber(config, '--restore', image.id),
                  image.id)
    assert scenario.rows_of(database.engine, [image.id]) == rows


def test_restore_is_refused_while_a_pass_runs(database, config,
                                              moto_server, s3_bucket):
    """The pass holds the scrub lock: --restore exits 3.

    It changes nothing; the pass then scrubs the image as it would have.
    """
    proxy = fixtures.CountingProxy(moto_server.endpoint)
    proxy.setUp()
    try:
        check_restore_refused_during_a_held_pass(database, config, proxy,
                                                 s3_bucket)
    finally:
        proxy.cleanUp()


def check_restore_refused_during_a_held_pass(database, config, proxy,
                                             s3_bucket):
    config.use_s3_store(proxy.endpoint, s3_bucket.name)
    config.set('glance_store', filesystem_store_datadir=None)
    s3_bucket.url_netloc = proxy.netloc
    stores = scenario.StoreSet(s3=s3_bucket)
    images = scenario.pending_images([scenario.Placement(s3_bucket)], 2, 1)
    seed.insert(database.engine, images)
    proxy.hold(fixtures.object_request)
    with fixtures.RunningScrubber(config) as scrub:
        proxy.wait_for_held(1)
        rows = scenario.rows_of(database.engine, [images[1].id])

        run = fixtures.run_scrubber(config, '--restore', images[1].id)

        assert scenario.rows_of(database.engine, [images[1].id]) == rows
        proxy.release()
        finished = scrub.wait()
    assert run.returncode == 3, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert len(refusal_lines(run)) == 1, run.describe()
    assert finished.returncode == 0, finished.describe()
    for image in images:
        scenario.check_image_scrubbed(database.engine, stores, image)


@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_restore_brings_back_what_was_deleted_with_the_image(
        database, config, file_store):
    """Properties, tags and members deleted with the image come back.

    glance-api soft-deleted them with the image's own deleted_at; a
    property removed while the image was still active stays removed.
    """
    image = scenario.pending_images(
        [scenario.Placement(file_store)], 1, 1,
        properties={'hw_firmware_type': 'uefi', 'os_type': 'linux'},
        tags=['golden', 'ubuntu'],
        members={'tenant-2': 'accepted', 'tenant-3': 'pending'},
        removed_properties={'hw_qemu_guest_agent': 'yes'})[0]
    other = scenario.pending_images([scenario.Placement(file_store)], 1, 1,
                                    properties={'os_type': 'windows'},
                                    tags=['other'])[0]
    seed.insert(database.engine, [image, other])
    others_before = seed.live_children(database.engine, other.id)

    run = fixtures.run_scrubber(config, '--restore', image.id)

    assert run.returncode == 0, run.describe()
    assert restored_line(run, image.id, 1), run.describe()
    assert seed.live_children(database.engine, image.id) == {
        'properties': image.properties, 'tags': image.tags,
        'members': image.members}
    assert seed.live_children(database.engine, other.id) == others_before
    check_active(database.engine, image)


@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_restore_of_an_image_whose_data_is_gone_is_refused(
        database, config, file_store):
    """Its rows say pending_delete, but the store no longer has the data.

    A kill -9 between a store delete and its record used to leave such
    images (and upstream's scrubber still does): restored, they would be
    active images of 0 bytes.
    """
    image = scenario.pending_images([scenario.Placement(file_store)], 1,
                                    1)[0]
    os.remove(file_store.path_of(image.locations[0].url))
    seed.insert(database.engine, [image])
    rows = scenario.rows_of(database.engine, [image.id])

    check_refused(fixtures.run_scrubber(config, '--restore', image.id),
                  image.id)
    assert scenario.rows_of(database.engine, [image.id]) == rows


@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_restore_brings_back_only_the_locations_with_data(
        database, config, file_store):
    image = scenario.pending_images([scenario.Placement(file_store)], 1,
                                    2)[0]
    os.remove(file_store.path_of(image.locations[1].url))
    seed.insert(database.engine, [image])

    run = fixtures.run_scrubber(config, '--restore', image.id)

    assert run.returncode == 0, run.describe()
    assert restored_line(run, image.id, 1), run.describe()
    assert any('Not restored: 1' in line for line in
               run.stdout.splitlines()), run.describe()
    assert seed.image_status(database.engine, image.id).status == 'active'
    assert [state[1:] for state in seed.location_states(
        database.engine, image.id)] == [('active', False), ('deleted', True)]
