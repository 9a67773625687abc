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

"""glance-scrubber --list and --dry-run: seeing the backlog, changing nothing.

Both run through the real command line against every database; they must
leave every row and every store file as it was, also while a pass holds
the scrub lock, and --dry-run must say what the next real pass does.
"""

import os
import re
import uuid

import pytest

from glance.common import crypt
from glance.tests.harness import ceph
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

DATABASES = ('sqlite', 'mysql', 'postgresql')
KEY = 'sixteen byte key'
S3_SECRET = 'backlog-s3-secret'
SWIFT_KEY = 'backlog-swift-key'
RBD_DATA = b'rbd image data' * 1024
LIST_TOTAL = re.compile(r'^Backlog: (\d+) images?, (\d+) bytes')
DUE_TOTAL = re.compile(r'^Due now: (\d+) images?, (\d+) bytes[^;]*; '
                       r'inside scrub_time \(\d+ s\): (\d+) images?, '
                       r'(\d+) bytes')
DRY_RUN_IMAGE = re.compile(r'^Image (\S+): (would be scrubbed|would fail)')
DRY_RUN_LOCATION = re.compile(r'^  location (\d+) (\S+): (\S+) \((.*)\)$')
DRY_RUN_TOTAL = re.compile(r'^Dry run: (\d+) images? due, (\d+) would be '
                           r'scrubbed, (\d+) would fail')


# --- reading the output -----------------------------------------------------


def listed(run):
    """{image id: (deleted_at, due_in, size, locations, stores)}."""
    lines = run.stdout.splitlines()
    assert lines[0].split() == ['ID', 'DELETED_AT', 'DUE_IN', 'SIZE',
                                'LOCATIONS', 'STORES'], run.describe()
    rows = {}
    for line in lines[1:]:
        if line.startswith('Backlog:'):
            break
        image_id, deleted_at, due_in, size, count, stores = line.split()
        assert image_id not in rows, 'listed twice: %s' % image_id
        rows[image_id] = (deleted_at, due_in, int(size), int(count),
                          stores.split(','))
    return rows


def totals_of(run, pattern):
    found = [pattern.match(line) for line in run.stdout.splitlines()]
    found = [match for match in found if match]
    assert len(found) == 1, run.describe()
    return tuple(int(value) for value in found[0].groups())


def planned(run):
    """{image id: (verdict, [(location id, store, decision)])}."""
    plans = {}
    current = None
    for line in run.stdout.splitlines():
        image = DRY_RUN_IMAGE.match(line)
        location = DRY_RUN_LOCATION.match(line)
        if image:
            current = plans.setdefault(image.group(1), (image.group(2), []))
        elif location:
            current[1].append((int(location.group(1)), location.group(2),
                               location.group(3)))
    return plans


def location_ids(engine, image):
    return [row['id'] for row in scenario.rows_of(
        engine, [image.id])[image.id]['locations']]


def check_read_only_run(run):
    assert run.returncode == 0, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert run.summary is None, run.describe()  # no pass ran


def image_at(*urls, **options):
    return seed.Image(locations=[seed.Location(url) for url in urls],
                      **options)


def live_image_at(url):
    image = image_at(url, status='active', deleted=False)
    image.locations[0].status = 'active'
    return image


# --- --list -----------------------------------------------------------------


@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_list_shows_each_pending_delete_image_and_the_totals(
        database, config, file_store):
    """Due and young images, store names only, totals; nothing changes.

    Location URLs with credentials (old S3 and Swift URLs) are never
    shown; --list needs no store, so these need not be reachable.
    """
    due = scenario.pending_images([scenario.Placement(file_store)], 2, 1)
    several = image_at(
        file_store.put('several.0'),
        's3://AKIAGLANCETEST:%s@127.0.0.1:9/bucket/several.1' % S3_SECRET,
        'swift+https://tenant%%3Auser:%s@127.0.0.1:9/v1/images/several.2'
        % SWIFT_KEY, 's3://AKIAGLANCETEST:%s@127.0.0.1:9/bucket/several.3'
        % S3_SECRET, size=5000, deleted_seconds_ago=7200)
    several.locations.append(seed.Location(file_store.put('several.gone'),
                                           status='deleted'))
    young = scenario.pending_images([scenario.Placement(file_store)], 1, 2,
                                    deleted_seconds_ago=60)[0]
    # Claimed an hour ago (seed's stamp) by a pass that stopped: listed
    # apart, takeable now.
    abandoned = image_at(file_store.put('abandoned'), status='deleted')
    decoys = [live_image_at(file_store.put('live')), abandoned,
              image_at(file_store.put('not-soft-deleted'), deleted=False)]
    images = due + [several, young] + decoys
    seed.insert(database.engine, images)
    rows = scenario.rows_of(database.engine, [image.id for image in images])
    files = file_store.names()

    run = fixtures.run_scrubber(config, '--list')

    check_read_only_run(run)
    for secret in (S3_SECRET, SWIFT_KEY, '://', file_store.datadir):
        assert secret not in run.output, run.describe()
    backlog = listed(run)
    assert sorted(backlog) == sorted(image.id for image in
                                     due + [several, young])
    for image in due:
        assert backlog[image.id][1:] == ('now', 1024, 1, ['file'])
    assert backlog[several.id][1:] == ('now', 5000, 4,
                                       ['file', 's3', 'swift+https'])
    deleted_at, due_in, size, count, stores = backlog[young.id]
    # Deleted a minute ago, scrub_time 600: due in about nine minutes.
    assert re.fullmatch(r'(8m[0-5]\d|9m00)s', due_in), run.describe()
    assert (size, count, stores) == (1024, 2, ['file'])
    assert totals_of(run, LIST_TOTAL) == (4, 3 * 1024 + 5000)
    assert totals_of(run, DUE_TOTAL) == (3, 2 * 1024 + 5000, 1, 1024)
    oldest = backlog[several.id][0]
    assert 'oldest deleted %s (2h00m ago)' % oldest in run.stdout or \
        'oldest deleted %s (2h01m ago)' % oldest in run.stdout, \
        run.describe()
    claimed = scenario.claimed_listed(run)
    assert list(claimed) == [abandoned.id], run.describe()
    assert claimed[abandoned.id][1] == 'now'
    assert 'Claimed: 1 image, 1024 bytes (1.0 KiB); may be taken over now: ' \
        '1 image (scrub_claim_timeout: 3600 s)' in run.stdout, run.describe()
    assert scenario.rows_of(database.engine,
                            [image.id for image in images]) == rows
    assert file_store.names() == files


def test_list_pages_through_a_long_backlog(database, config):
    """More images than a page: each listed once, counted once."""
    images = [image_at('file:///nowhere/%d' % number)
              for number in range(1234)]
    seed.insert(database.engine, images)

    run = fixtures.run_scrubber(config, '--list')

    check_read_only_run(run)
    assert sorted(listed(run)) == sorted(image.id for image in images)
    assert totals_of(run, LIST_TOTAL) == (1234, 1234 * 1024)
    assert run.stdout.splitlines()[-1] == 'Claimed: 0 images'


def test_list_names_multi_store_backends_and_reads_encrypted_urls(
        database, config, file_store, tmp_path):
    """The backend of each location's metadata; the scheme without one."""
    other = fixtures.FileStore(tmp_path / 'other-images')
    config.set('glance_store', stores=None, default_store=None,
               filesystem_store_datadir=None)
    config.use_multi_store('fast', {
        'fast': ('file', {'filesystem_store_datadir': file_store.datadir}),
        'cheap': ('file', {'filesystem_store_datadir': other.datadir}),
    })
    config.set('DEFAULT', metadata_encryption_key=KEY)
    image = seed.Image(locations=[
        seed.Location(crypt.urlsafe_encrypt(KEY, other.put('a')),
                      store='cheap'),
        seed.Location(crypt.urlsafe_encrypt(KEY, file_store.put('b')),
                      store='fast'),
        seed.Location(crypt.urlsafe_encrypt(KEY, 's3://k:%s@h/b/c'
                                            % S3_SECRET)),
        seed.Location('not encrypted with this key')])
    seed.insert(database.engine, [image])

    run = fixtures.run_scrubber(config, '--list')

    check_read_only_run(run)
    assert S3_SECRET not in run.output
    assert listed(run)[image.id][3:] == (4, ['cheap', 'fast', 's3', '?'])


# --- --dry-run --------------------------------------------------------------


@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_dry_run_changes_nothing_and_the_pass_does_what_it_said(
        database, config, file_store, tmp_path):
    """Deletes, a shared-data keep, an outside-datadir refusal, a let-go.

    The dry run leaves every row (status, updated_at, deleted_at, ...) and
    every file as it was; the real pass that follows deletes exactly the
    data the dry run said it would.
    """
    config.set('glance_store', stores='file,http')
    outside = tmp_path / 'outside'
    outside.mkdir()
    (outside / 'precious').write_bytes(b'not glance data')
    shared_url = file_store.put('shared')
    plain = scenario.pending_images([scenario.Placement(file_store)], 2, 2)
    sharing = image_at(shared_url, file_store.put('sharing.own'))
    live = live_image_at(shared_url)
    stray = image_at('file://%s' % (outside / 'precious'),
                     file_store.put('stray.after'))
    foreign = image_at('http://127.0.0.1:9/images/someone-elses.qcow2')
    young = scenario.pending_images([scenario.Placement(file_store)], 1, 1,
                                    deleted_seconds_ago=60)[0]
    images = plain + [sharing, live, stray, foreign, young]
    seed.insert(database.engine, images)
    ids = [image.id for image in images]
    rows = scenario.rows_of(database.engine, ids)
    files = file_store.names()

    run = fixtures.run_scrubber(config, '--dry-run')

    check_read_only_run(run)
    assert scenario.rows_of(database.engine, ids) == rows
    assert file_store.names() == files
    assert (outside / 'precious').read_bytes() == b'not glance data'
    plans = planned(run)
    assert sorted(plans) == sorted(image.id for image in
                                   plain + [sharing, stray, foreign])
    engine = database.engine
    for image in plain:
        assert plans[image.id] == ('would be scrubbed', [
            (location_id, 'file', 'delete')
            for location_id in location_ids(engine, image)])
    shared_id, own_id = location_ids(engine, sharing)
    assert plans[sharing.id] == ('would be scrubbed', [
        (shared_id, 'file', 'keep-shared'), (own_id, 'file', 'delete')])
    outside_id, after_id = location_ids(engine, stray)
    assert plans[stray.id] == ('would fail', [
        (outside_id, 'file', 'refuse'), (after_id, 'file', 'not-reached')])
    assert 'outside every filesystem_store_datadir' in run.stdout
    assert plans[foreign.id] == ('would be scrubbed', [
        (location_ids(engine, foreign)[0], 'http', 'let-go')])
    assert totals_of(run, DRY_RUN_TOTAL) == (5, 4, 1)

    scrub = fixtures.run_scrubber(config)

    assert scrub.returncode == 1, scrub.describe()  # the stray image fails
    assert scenario.summary_counts(scrub.summary) == {
        'found': 5, 'scrubbed': 4, 'failed': 1, 'skipped': 0, 'in_use': 0,
        'locations_deleted': 7, 'bytes_reclaimed': 5 * 1024}
    url_of = {location_id: location.url for image in images
              for location_id, location in zip(location_ids(engine, image),
                                               image.locations)}
    for image_id, (_verdict, locations) in plans.items():
        for location_id, _store, decision in locations:
            url = url_of[location_id]
            if url.startswith('file://'):
                assert os.path.exists(url[len('file://'):]) == (
                    decision != 'delete'), (image_id, decision)
    scenario.check_pending(engine, stray, ['pending_delete'] * 2)
    assert seed.image_status(engine, young.id).status == 'pending_delete'


def test_dry_run_judges_images_of_one_batch_as_the_pass_does(
        database, config, file_store):
    """Two due images sharing data: the pass claims both, deletes it once.

    Neither is a restorable user of the other's data once claimed
    together, so the dry run says delete for both, as the pass does.
    """
    shared_url = file_store.put('shared')
    images = [image_at(shared_url), image_at(shared_url)]
    seed.insert(database.engine, images)

    run = fixtures.run_scrubber(config, '--dry-run')

    check_read_only_run(run)
    assert [decision for image in images
            for _id, _store, decision in planned(run)[image.id][1]] == \
        ['delete', 'delete']
    assert file_store.exists(shared_url)
    scrub = fixtures.run_scrubber(config)
    assert scrub.returncode == 0, scrub.describe()
    assert not file_store.exists(shared_url)


def test_dry_run_refuses_what_no_configured_store_serves(database, config,
                                                         file_store):
    image = image_at('swift+https://u:%s@127.0.0.1:9/v1/images/x'
                     % SWIFT_KEY)
    seed.insert(database.engine, [image])

    run = fixtures.run_scrubber(config, '--dry-run')

    check_read_only_run(run)
    assert SWIFT_KEY not in run.output
    assert planned(run)[image.id] == ('would fail', [
        (location_ids(database.engine, image)[0], 'swift+https',
         'refuse')])
    assert 'no configured store' in run.stdout


@pytest.mark.parametrize('mode', ('--list', '--dry-run'))
def test_read_only_modes_need_no_lock_path(mode, database, config,
                                           file_store):
    """They take no lock: a host without the scrubber's lock_path works."""
    config.set('oslo_concurrency', lock_path=None)
    image = scenario.pending_images([scenario.Placement(file_store)], 1,
                                    1)[0]
    seed.insert(database.engine, [image])

    run = fixtures.run_scrubber(config, mode)

    check_read_only_run(run)
    assert image.id in run.stdout


def test_dry_run_warns_that_rbd_data_may_be_in_use(database, config,
                                                   ceph_cluster, rbd_pool):
    """A clone keeps the data; only the store can say so, when deleting."""
    ceph.use_rbd_store(config, ceph_cluster)
    url = rbd_pool.put('image-%s' % uuid.uuid4().hex[:12], RBD_DATA)
    cloned = seed.Image(locations=[seed.Location(url)], size=len(RBD_DATA))
    rbd_pool.clone(url, 'volume-%s' % uuid.uuid4().hex[:12])
    seed.insert(database.engine, [cloned])

    run = fixtures.run_scrubber(config, '--dry-run')

    check_read_only_run(run)
    decisions = planned(run)[cloned.id][1]
    assert [(store, decision) for _id, store, decision in decisions] == \
        [('rbd', 'delete')], run.describe()
    assert 'RBD clones' in run.stdout
    assert 'Note: 1 location on RBD' in run.stdout, run.describe()
    assert rbd_pool.read(url) == RBD_DATA


# --- while a pass runs ------------------------------------------------------


def test_list_and_dry_run_work_while_a_pass_holds_the_lock(
        database, config, file_store):
    """A pass paused on its first delete holds the scrub lock.

    --restore is refused then (the lock is held), but --list and
    --dry-run answer, change nothing, and the pass finishes afterwards.
    """
    config.set('DEFAULT', scrub_pool_size=1)
    images = scenario.pending_images([scenario.Placement(file_store)], 3, 1)
    seed.insert(database.engine, images)
    with fixtures.PausedScrubber(config, 'delete') as scrub:
        scrub.wait_until_paused()
        ids = [image.id for image in images]
        rows = scenario.rows_of(database.engine, ids)
        files = file_store.names()
        claimed = [image.id for image in images if seed.image_status(
            database.engine, image.id).status == 'deleted']
        assert claimed, 'the pass claimed nothing'

        restore = fixtures.run_scrubber(config, '--restore',
                                        images[-1].id, timeout=120)
        listing = fixtures.run_scrubber(config, '--list', timeout=120)
        dry_run = fixtures.run_scrubber(config, '--dry-run', timeout=120)

        assert scenario.rows_of(database.engine, ids) == rows
        assert file_store.names() == files
        scrub.resume()
        finished = scrub.wait()
    assert restore.returncode == 3, restore.describe()
    for run in (listing, dry_run):
        check_read_only_run(run)
    waiting = sorted(set(ids) - set(claimed))
    # Claimed images are the pass's now: no longer pending_delete.
    assert sorted(listed(listing)) == waiting
    assert sorted(planned(dry_run)) == waiting
    assert finished.returncode == 0, finished.describe()
    for image in images:
        scenario.check_image_scrubbed(database.engine,
                                      scenario.StoreSet(file=file_store),
                                      image)


# --- refused ----------------------------------------------------------------


@pytest.mark.parametrize('args, words', [
    (('--list', '--restore', 'IMAGE'), ['--list', '--restore']),
    (('--list', '--daemon'), ['--list', '--daemon']),
    (('--list', '--dry-run'), ['--list', '--dry-run']),
    (('--dry-run', '--restore', 'IMAGE'), ['--dry-run', '--restore']),
    (('--dry-run', '--daemon'), ['--dry-run', '--daemon']),
], ids=['list-restore', 'list-daemon', 'list-dry-run', 'dry-run-restore',
        'dry-run-daemon'])
def test_bad_combinations_are_refused_in_one_line(args, words, database,
                                                  config, file_store):
    image = scenario.pending_images([scenario.Placement(file_store)], 1,
                                    1)[0]
    seed.insert(database.engine, [image])
    rows = scenario.rows_of(database.engine, [image.id])
    args = [image.id if arg == 'IMAGE' else arg for arg in args]

    run = fixtures.run_scrubber(config, *args)

    assert run.returncode == 2, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    # No report: the log's one line of the refusal at most.
    assert [line for line in run.stdout.splitlines()
            if 'ERROR glance.scrubber' not in line] == [], run.describe()
    refusals = [line for line in run.stderr.splitlines()
                if line.startswith('glance-scrubber:')]
    assert len(refusals) == 1, run.describe()
    for word in words:
        assert word in refusals[0], run.describe()
    assert scenario.rows_of(database.engine, [image.id]) == rows
    assert file_store.exists(image.locations[0].url)
