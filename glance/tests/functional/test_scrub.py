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

"""One-shot scrub passes on the file store, on every database and backend.

Each test runs the installed glance-scrubber against a real database and
checks the exact rows and files it leaves.
"""

import os

import pytest

from glance.common import crypt
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

DATABASES = ('sqlite', 'mysql', 'postgresql')
BACKENDS = ('eventlet', 'threading')
ENCRYPTION_KEY = '0123456789abcdef0123456789abcdef'


def file_backlog(file_store, **options):
    return scenario.Backlog([scenario.Placement(file_store)],
                            scenario.StoreSet(file=file_store), **options)


@pytest.mark.parametrize('backend', BACKENDS, indirect=True)
@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_a_pass_scrubs_the_backlog_and_nothing_else(database, backend,
                                                    config, file_store):
    backlog = file_backlog(file_store).insert(database.engine)

    run = fixtures.run_scrubber(config, env=backend)

    backlog.check_scrubbed(database.engine, run)
    assert os.listdir(file_store.datadir)  # the decoys' data is still there
    # Not a word about eventlet on either backend (cron mails any output).
    assert 'Eventlet is deprecated' not in run.output, run.describe()


def test_a_second_pass_finds_nothing_and_touches_nothing(database, config,
                                                         file_store):
    backlog = file_backlog(file_store, count=(3, 2, 0)).insert(
        database.engine)
    backlog.check_scrubbed(database.engine, fixtures.run_scrubber(config))
    scrubbed_rows = scenario.rows_of(
        database.engine, backlog.image_ids(backlog.to_scrub))

    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary) == {
        'found': 0, 'scrubbed': 0, 'failed': 0, 'skipped': 0,
        'in_use': 0, 'locations_deleted': 0, 'bytes_reclaimed': 0}
    assert scenario.rows_of(database.engine, backlog.image_ids(
        backlog.to_scrub)) == scrubbed_rows
    backlog.check_untouched(database.engine)


def test_serial_pool_scrubs_the_backlog(database, config, file_store):
    backlog = file_backlog(file_store, count=(5, 2, 2)).insert(
        database.engine)
    config.set('DEFAULT', scrub_pool_size=1)

    backlog.check_scrubbed(database.engine, fixtures.run_scrubber(config))


def _make_undeletable(file_store, url):
    """Turn a location's file into a non-empty directory.

    unlink() fails on it with EISDIR, even for root.
    """
    path = file_store.path_of(url)
    os.remove(path)
    os.makedirs(os.path.join(path, 'in-the-way'))


def _make_deletable_again(file_store, url):
    path = file_store.path_of(url)
    os.rmdir(os.path.join(path, 'in-the-way'))
    os.rmdir(path)
    with open(path, 'wb') as image_file:
        image_file.write(b'x' * scenario.IMAGE_SIZE)


def test_a_location_that_cannot_be_deleted_leaves_its_image_pending(
        database, config, file_store):
    placements = [scenario.Placement(file_store)]
    stores = scenario.StoreSet(file=file_store)
    stuck = scenario.pending_images(placements, 1, 3)[0]
    others = scenario.pending_images(placements, 6, 1)
    seed.insert(database.engine, [stuck] + others)
    first, blocked, last = [location.url for location in stuck.locations]
    _make_undeletable(file_store, blocked)

    run = scenario.run_with_one_failure(
        config, found=7, locations_deleted=7)
    assert stuck.id in run.output  # the failure names the image
    scenario.check_pending(database.engine, stuck,
                           ['deleted', 'pending_delete', 'pending_delete'])
    assert not stores.exists(first)
    assert os.path.isdir(file_store.path_of(blocked))
    assert stores.exists(last)
    for image in others:
        scenario.check_image_scrubbed(database.engine, stores, image)

    _make_deletable_again(file_store, blocked)
    scenario.check_next_pass_finishes(config, database.engine, stores, stuck,
                                      locations_left=2)
    assert not stores.exists(blocked) and not stores.exists(last)


def test_encrypted_locations_are_scrubbed(database, config, file_store):
    backlog = file_backlog(
        file_store, count=(4, 2, 2),
        encrypt=lambda url: crypt.urlsafe_encrypt(ENCRYPTION_KEY, url))
    undecryptable = scenario.pending_images(
        backlog.placements, 1, 1)[0]
    plain_url = undecryptable.locations[0].url
    undecryptable.locations[0].url = crypt.urlsafe_encrypt(
        'another key of 16 bytes'[:16], plain_url)
    backlog.insert(database.engine)
    seed.insert(database.engine, [undecryptable])
    config.set('DEFAULT', metadata_encryption_key=ENCRYPTION_KEY)

    run = fixtures.run_scrubber(config)

    # The image whose URL cannot be decrypted fails alone.
    assert run.returncode == 1, run.describe()
    expected = backlog.expected_summary()
    expected.update(found=expected['found'] + 1, failed=1)
    assert scenario.summary_counts(run.summary) == expected
    for image in backlog.to_scrub:
        scenario.check_image_scrubbed(database.engine, backlog.stores, image,
                                      backlog.plain_url)
    backlog.check_untouched(database.engine)
    scenario.check_pending(database.engine, undecryptable,
                           ['pending_delete'])
    assert file_store.exists(plain_url)
    assert undecryptable.id in run.output
