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

"""Scrubbing RBD images as glance_store makes them, on a real cluster.

Every image here is added by glance_store's own rbd driver, as glance-api
adds it: a protected snapshot ``snap`` and the URL
``rbd://FSID/POOL/IMAGE/snap``. What the tests check is read with the rbd
bindings directly (ceph.RbdPool), never through glance_store. Images held
by clones of format 1 are the business of test_rbd_in_use.
"""

import uuid

import pytest

from glance.tests.harness import ceph
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

# Not one repeated byte: a read back proves the data, not just its length.
DATA = bytes(range(256)) * 64


@pytest.fixture
def glance_rbd(ceph_cluster, rbd_pool):
    """glance_store's rbd driver as a single store (no backend name)."""
    return ceph.GlanceStoreRbd(ceph_cluster, rbd_pool)


def images_in(store, count, data=DATA):
    """*count* pending_delete images, each added to *store* by its id."""
    images = []
    for _number in range(count):
        image_id = str(uuid.uuid4())
        url, metadata = store.add(image_id, data)
        images.append(seed.Image(
            id=image_id, size=len(data),
            locations=[seed.Location(url, store=metadata.get('store'))]))
    return images


def only_url(image):
    [location] = image.locations
    return location.url


def scrubber_warnings_about(run, image_id):
    """The scrubber's own warnings naming the image.

    glance_store warns too, naming the RBD image: the image's id here.
    """
    return [line for line in run.output.splitlines()
            if ' WARNING glance.scrubber ' in line and image_id in line]


def check_clean_pass(run, **counts):
    assert run.returncode == 0, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    expected = {'found': 0, 'scrubbed': 0, 'failed': 0, 'skipped': 0,
                'in_use': 0, 'locations_deleted': 0, 'bytes_reclaimed': 0}
    expected.update(counts)
    assert scenario.summary_counts(run.summary) == expected, run.describe()


# --- (a) a backlog --------------------------------------------------------


@pytest.mark.parametrize('database', ('sqlite', 'postgresql'),
                         indirect=True)
def test_a_backlog_in_rbd_is_scrubbed_in_parallel(database, config,
                                                  ceph_cluster, rbd_pool,
                                                  glance_rbd):
    """Images and their snapshots gone, not trashed; decoys untouched."""
    ceph.use_rbd_store(config, ceph_cluster)
    config.set('DEFAULT', scrub_pool_size=4)
    stores = scenario.StoreSet(rbd=glance_rbd)
    backlog = scenario.Backlog([scenario.Placement(glance_rbd)], stores,
                               count=(6, 3, 2)).insert(database.engine)

    run = fixtures.run_scrubber(config)

    backlog.check_scrubbed(database.engine, run)
    for image in backlog.to_scrub:
        for location in image.locations:
            assert not rbd_pool.in_trash(location.url), location
    for image in backlog.untouchable:
        for location in image.locations:
            assert rbd_pool.snapshots(location.url) == [ceph.SNAPSHOT]
            assert rbd_pool.read(location.url) == \
                b'x' * scenario.IMAGE_SIZE


# One RADOS client per log file: Ceph expands $cctid to the id of each
# client's context (one per rados.Rados).
CLIENT_LOGS = {'log file': '%s/client.$pid.$cctid.log',
               'debug rados': '1'}


@pytest.mark.parametrize('backend', ('threading', 'eventlet'),
                         indirect=True)
def test_the_workers_share_one_cluster_connection(
        database, config, ceph_cluster, rbd_pool, glance_rbd, backend,
        tmp_path):
    """One connection for the start-up check, one for every delete.

    glance_store alone opens a RADOS connection per delete, and the
    in-use look before it one more.
    """
    logs = tmp_path / 'rados-clients'
    logs.mkdir()
    options = {name: value % logs if '%s' in value else value
               for name, value in CLIENT_LOGS.items()}
    ceph.use_rbd_store(config, ceph_cluster)
    config.set('glance_store', rbd_store_ceph_conf=ceph.client_conf(
        ceph_cluster, tmp_path / 'scrubber-ceph.conf', options))
    config.set('DEFAULT', scrub_pool_size=4)
    images = images_in(glance_rbd, 12)
    seed.insert(database.engine, images)

    run = fixtures.run_scrubber(config, env=backend)

    check_clean_pass(run, found=12, scrubbed=12, locations_deleted=12,
                     bytes_reclaimed=12 * len(DATA))
    for image in images:
        assert not rbd_pool.exists(only_url(image))
    # At most: a context freed may leave its id to the next one.
    clients = sorted(path.name for path in logs.iterdir())
    assert len(clients) <= 2, clients


# --- (b) open by another client -------------------------------------------


@pytest.mark.parametrize('exclusive_lock', (False, True),
                         ids=('watch', 'exclusive_lock'))
def test_an_image_open_elsewhere_is_kept_until_it_is_closed(
        exclusive_lock, database, config, ceph_cluster, rbd_pool,
        glance_rbd):
    """In use while a client has it open; scrubbed once it is closed.

    glance_store would unprotect and remove the image's snapshot before it
    found the image busy; the scrubber sees the watcher first and touches
    nothing, so the snapshot stays (and a restore works: the next test).
    """
    ceph.use_rbd_store(config, ceph_cluster)
    opened, free = images_in(glance_rbd, 2)
    seed.insert(database.engine, [opened, free])

    with rbd_pool.open_by_another_client(only_url(opened), exclusive_lock):
        run = fixtures.run_scrubber(config)

    check_clean_pass(run, found=2, scrubbed=1, in_use=1,
                     locations_deleted=1, bytes_reclaimed=len(DATA))
    assert len(scrubber_warnings_about(run, opened.id)) == 1, run.describe()
    scenario.check_pending(database.engine, opened, ['pending_delete'])
    assert rbd_pool.read(only_url(opened)) == DATA
    assert rbd_pool.snapshots(only_url(opened)) == [ceph.SNAPSHOT]
    assert not rbd_pool.exists(only_url(free))

    run = fixtures.run_scrubber(config)

    check_clean_pass(run, found=1, scrubbed=1, locations_deleted=1,
                     bytes_reclaimed=len(DATA))
    assert not rbd_pool.exists(only_url(opened))
    assert seed.image_status(database.engine, opened.id).status == 'deleted'


def test_an_image_that_was_open_elsewhere_can_still_be_restored(
        database, config, ceph_cluster, rbd_pool, glance_rbd):
    """Kept whole, snapshot included: the restore brings it back.

    Before the scrubber looked for watchers itself, glance_store removed
    the snapshot its URL names, and the restore had to refuse an image
    whose data was all there.
    """
    ceph.use_rbd_store(config, ceph_cluster)
    [opened] = images_in(glance_rbd, 1)
    seed.insert(database.engine, [opened])
    with rbd_pool.open_by_another_client(only_url(opened)):
        check_clean_pass(fixtures.run_scrubber(config), found=1, in_use=1)

    restore = fixtures.run_scrubber(config, '--restore', opened.id)

    assert restore.returncode == 0, restore.describe()
    assert seed.image_status(database.engine, opened.id).status == 'active'
    assert rbd_pool.read(only_url(opened)) == DATA
    assert rbd_pool.snapshots(only_url(opened)) == [ceph.SNAPSHOT]


# --- (c) an image missing from the pool -----------------------------------


def test_an_image_removed_behind_the_scrubbers_back_is_recorded_deleted(
        database, config, ceph_cluster, rbd_pool, glance_rbd):
    """glance_store's NotFound: already gone, among images that are there.

    Its bytes are not counted as reclaimed: nothing was.
    """
    ceph.use_rbd_store(config, ceph_cluster)
    images = images_in(glance_rbd, 5)
    missing = images[2]
    rbd_pool.remove(only_url(missing))
    seed.insert(database.engine, images)

    run = fixtures.run_scrubber(config)

    check_clean_pass(run, found=5, scrubbed=5, locations_deleted=5,
                     bytes_reclaimed=4 * len(DATA))
    stores = scenario.StoreSet(rbd=glance_rbd)
    for image in images:
        scenario.check_image_scrubbed(database.engine, stores, image)


def test_a_pool_whose_images_are_all_missing_stops_the_pass(
        database, config, ceph_cluster, rbd_pool, glance_rbd):
    """As for a wrong file or S3 store (test_wrong_store): nothing recorded.

    The images whose data the pool has not got stay pending_delete.
    """
    ceph.use_rbd_store(config, ceph_cluster)
    images = images_in(glance_rbd, 5)
    for image in images:
        rbd_pool.remove(only_url(image))
    seed.insert(database.engine, images)

    run = fixtures.run_scrubber(config)

    assert run.returncode == 1, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert 'scrub_not_found_ratio' in run.stderr, run.describe()
    assert run.summary['locations_deleted'] == 0
    for image in images:
        scenario.check_pending(database.engine, image, ['pending_delete'])


# --- (d) multi-store --------------------------------------------------------


def test_multi_store_rbd_and_file_backlog(database, config, ceph_cluster,
                                          rbd_pool, file_store):
    """Backends 'ceph' (rbd, the default) and 'files'; some images in both.

    The location metadata names the backend, as glance-api writes it
    (glance_store's add() returns ``{'store': 'ceph'}``).
    """
    config.set('glance_store', stores=None, default_store=None,
               filesystem_store_datadir=None)
    config.use_multi_store('ceph', {
        'ceph': ('rbd', ceph.rbd_store_options(ceph_cluster)),
        'files': ('file', {'filesystem_store_datadir': file_store.datadir}),
    })
    ceph_backend = ceph.GlanceStoreRbd(ceph_cluster, rbd_pool,
                                       backend='ceph')
    backlog = scenario.Backlog(
        [scenario.Placement(ceph_backend, 'ceph'),
         scenario.Placement(file_store, 'files')],
        scenario.StoreSet(rbd=ceph_backend, file=file_store),
        count=(2, 4, 2)).insert(database.engine)

    run = fixtures.run_scrubber(config)

    backlog.check_scrubbed(database.engine, run)
    assert file_store.names()  # the decoys' files are still there


def test_glance_store_names_the_backend_in_the_location_metadata(
        ceph_cluster, rbd_pool):
    """What the multi-store test writes is what glance-api would."""
    ceph_backend = ceph.GlanceStoreRbd(ceph_cluster, rbd_pool,
                                       backend='ceph')
    [image] = images_in(ceph_backend, 1)

    assert image.locations[0].metadata == {'store': 'ceph'}
    assert rbd_pool.snapshots(only_url(image)) == [ceph.SNAPSHOT]
    rbd_pool.remove(only_url(image))


# --- (e) clone format 2 -----------------------------------------------------


def parent_of_a_v2_clone(database, config, ceph_cluster, glance_rbd,
                         request):
    """A due image with a format-2 clone.

    :returns: (the pool making format-2 clones, the image, its URL, the
        clone's name).
    """
    ceph.use_rbd_store(config, ceph_cluster)
    v2_pool = ceph_cluster.rbd_pool(clone_format=2)
    request.addfinalizer(v2_pool.close)
    [parent] = images_in(glance_rbd, 1)
    url = only_url(parent)
    child = v2_pool.clone(url, 'volume-%s' % uuid.uuid4().hex[:12])
    seed.insert(database.engine, [parent])
    return v2_pool, parent, url, child


def check_kept_in_use(run, engine, v2_pool, parent, url):
    check_clean_pass(run, found=1, in_use=1)
    scenario.check_pending(engine, parent, ['pending_delete'])
    assert v2_pool.read(url) == DATA
    assert v2_pool.snapshots(url) == [ceph.SNAPSHOT]


def test_a_parent_of_a_v2_clone_is_kept_until_the_clone_is_gone(
        database, config, ceph_cluster, glance_rbd, request):
    """In use, as with a clone of format 1; scrubbed once it is removed.

    glance_store alone would move the image to the RBD trash and report
    success, the clone still reading its data: the image recorded
    deleted, its bytes counted reclaimed, and the trashed image left
    there for good (nothing purges it without ceph-mgr's trash purge
    schedule). The scrubber looks for clones first.
    """
    v2_pool, parent, url, child = parent_of_a_v2_clone(
        database, config, ceph_cluster, glance_rbd, request)

    run = fixtures.run_scrubber(config)

    check_kept_in_use(run, database.engine, v2_pool, parent, url)
    assert not v2_pool.in_trash(url)

    v2_pool.remove_clone(child)
    run = fixtures.run_scrubber(config)

    check_clean_pass(run, found=1, scrubbed=1, locations_deleted=1,
                     bytes_reclaimed=len(DATA))
    assert not v2_pool.exists(url)
    assert not v2_pool.in_trash(url)


def test_a_clone_in_the_trash_still_keeps_its_parent(
        database, config, ceph_cluster, glance_rbd, request):
    """A trashed clone still reads its parent's snapshot until purged."""
    v2_pool, parent, url, child = parent_of_a_v2_clone(
        database, config, ceph_cluster, glance_rbd, request)
    v2_pool.trash_clone(child)

    run = fixtures.run_scrubber(config)

    check_kept_in_use(run, database.engine, v2_pool, parent, url)
