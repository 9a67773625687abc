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

"""Only data Glance owns, in the stores it is configured for, is deleted.

* a file location outside every datadir is never deleted (old clouds let
  users set file locations: CVE-2014-9493, CVE-2015-1195);
* data another live image's location points to is kept;
* data Glance never owned (the http store) is let go, not retried.
"""

import datetime
import os

from oslo_utils import timeutils
import pytest

from glance.common import crypt
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

DATABASES = ('sqlite', 'mysql', 'postgresql')
BACKENDS = ('eventlet', 'threading')
KEY = 'sixteen byte key'


def outside_file(tmp_path, name='precious'):
    outside = tmp_path / 'outside'
    outside.mkdir(exist_ok=True)
    path = outside / name
    path.write_bytes(b'not glance data')
    return path


def image_at(*urls):
    return seed.Image(locations=[seed.Location(url) for url in urls])


def error_lines(run, image_id):
    return [line for line in run.output.splitlines()
            if ' ERROR ' in line and image_id in line]


@pytest.mark.parametrize('backend', BACKENDS, indirect=True)
@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_file_locations_outside_every_datadir_are_never_deleted(
        database, backend, config, file_store, tmp_path):
    """A plain path, a path climbing out with '..', a symlinked folder.

    Each of their images fails with the reason; a well-placed image
    beside them is scrubbed.
    """
    outside = outside_file(tmp_path)
    os.symlink(outside.parent, os.path.join(file_store.datadir, 'escape'))
    doomed = [
        image_at('file://%s' % outside),
        image_at('file://%s/../outside/%s' % (file_store.datadir,
                                              outside.name)),
        image_at('file://%s/escape/%s' % (file_store.datadir,
                                          outside.name)),
    ]
    good = scenario.pending_images([scenario.Placement(file_store)], 1,
                                   1)[0]
    seed.insert(database.engine, doomed + [good])

    run = fixtures.run_scrubber(config, env=backend)

    assert run.returncode == 1, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    counts = scenario.summary_counts(run.summary)
    assert (counts['failed'], counts['scrubbed']) == (3, 1)
    assert outside.read_bytes() == b'not glance data'
    for image in doomed:
        scenario.check_pending(database.engine, image, ['pending_delete'])
        assert any('outside every filesystem_store_datadir' in line
                   for line in error_lines(run, image.id)), run.describe()
    scenario.check_image_scrubbed(database.engine,
                                  scenario.StoreSet(file=file_store), good)


def test_multi_store_datadirs_bound_file_locations(database, config,
                                                   file_store, tmp_path):
    """Any file backend's datadir is Glance's; a path in none is not."""
    other = fixtures.FileStore(tmp_path / 'other-images')
    config.set('glance_store', stores=None, default_store=None,
               filesystem_store_datadir=None)
    config.use_multi_store('fast', {
        'fast': ('file', {'filesystem_store_datadir': file_store.datadir}),
        'slow': ('file', {'filesystem_store_datadir': other.datadir}),
    })
    outside = outside_file(tmp_path)
    inside_other = seed.Image(locations=[seed.Location(
        other.put('moved'), store='fast')])
    stray = seed.Image(locations=[seed.Location('file://%s' % outside,
                                                store='fast')])
    seed.insert(database.engine, [inside_other, stray])

    run = scenario.run_with_one_failure(config, found=2,
                                        locations_deleted=1)

    assert other.names() == []
    assert outside.exists()
    scenario.check_pending(database.engine, stray, ['pending_delete'])
    assert error_lines(run, stray.id), run.describe()


def live_image_at(url):
    image = image_at(url)
    image.status, image.deleted = 'active', False
    image.locations[0].status = 'active'
    return image


@pytest.mark.parametrize('encrypted', (False, True),
                         ids=('plain', 'encrypted'))
@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_data_another_live_image_uses_is_kept(encrypted, database, config,
                                              file_store):
    """Its location is recorded deleted, with a WARNING; nothing else.

    With metadata_encryption_key set the two rows hold different
    ciphertexts of one URL: the URLs compared are the decrypted ones.
    """
    shared_url = file_store.put('shared')
    own_url = file_store.put('own')
    protect = ((lambda url: crypt.urlsafe_encrypt(KEY, url))
               if encrypted else (lambda url: url))
    if encrypted:
        config.set('DEFAULT', metadata_encryption_key=KEY)
    deleted = image_at(protect(shared_url), protect(own_url))
    live = live_image_at(protect(shared_url))
    seed.insert(database.engine, [deleted, live])

    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary) == {
        'found': 1, 'scrubbed': 1, 'failed': 0, 'skipped': 0, 'in_use': 0,
        'locations_deleted': 2, 'bytes_reclaimed': scenario.IMAGE_SIZE}
    assert file_store.exists(shared_url)
    assert not file_store.exists(own_url)
    assert seed.image_status(database.engine, deleted.id).status == \
        'deleted'
    assert [state[1] for state in seed.location_states(
        database.engine, deleted.id)] == ['deleted', 'deleted']
    warnings = [line for line in run.output.splitlines()
                if ' WARNING ' in line and deleted.id in line]
    assert any('another image' in line for line in warnings), \
        run.describe()


@pytest.mark.parametrize('database', DATABASES, indirect=True)
def test_data_glance_never_owned_is_let_go(database, config, file_store):
    """An http location: recorded deleted, nothing sent, image finished.

    The http store cannot delete; the port is closed, so any request
    would fail the image.
    """
    config.set('glance_store', stores='file,http')
    own_url = file_store.put('own')
    image = image_at('http://127.0.0.1:9/images/someone-elses.qcow2',
                     own_url)
    seed.insert(database.engine, [image])

    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary) == {
        'found': 1, 'scrubbed': 1, 'failed': 0, 'skipped': 0, 'in_use': 0,
        'locations_deleted': 2, 'bytes_reclaimed': scenario.IMAGE_SIZE}
    assert any('cannot delete' in line and image.id in line
               for line in run.output.splitlines()), run.describe()
    assert seed.image_status(database.engine, image.id).status == 'deleted'
    assert [state[1] for state in seed.location_states(
        database.engine, image.id)] == ['deleted', 'deleted']
    assert not file_store.exists(own_url)
    again = fixtures.run_scrubber(config)
    assert again.returncode == 0 and again.summary['found'] == 0, \
        again.describe()


def test_shared_data_goes_with_its_last_image(database, config, file_store):
    """The daemon's later pass deletes data its earlier passes had to keep.

    Three live images share a file. They are deleted one after another,
    each scrubbed by a pass of one daemon: the file stays while another
    image is live, and goes with the last, though the daemon had seen the
    others use it.
    """
    shared_url = file_store.put('shared')
    images = [live_image_at(shared_url) for _image in range(3)]
    seed.insert(database.engine, images)
    config.set('DEFAULT', wakeup_time=1)

    with fixtures.RunningScrubber(config, '--daemon') as daemon:
        daemon.wait_for_passes(1)
        for image in images:
            delete_as_glance_api_does(database.engine, image)
            fixtures.wait_until(
                lambda: scenario.is_scrubbed(database.engine, image), 60,
                what='image %s scrubbed' % image.id)
            if image is not images[-1]:
                assert file_store.exists(shared_url), daemon.output()
        run = daemon.stop()

    assert run.returncode == 0, run.describe()
    assert not file_store.exists(shared_url)


def delete_as_glance_api_does(engine, image):
    """pending_delete, deleted an hour ago, with its locations."""
    deleted_at = timeutils.utcnow() - datetime.timedelta(hours=1)
    with engine.begin() as connection:
        connection.execute(
            seed.IMAGES.update().where(seed.IMAGES.c.id == image.id)
            .values(status='pending_delete', deleted=True,
                    deleted_at=deleted_at))
        connection.execute(
            seed.LOCATIONS.update()
            .where(seed.LOCATIONS.c.image_id == image.id)
            .values(status='pending_delete', deleted=True,
                    deleted_at=deleted_at))
