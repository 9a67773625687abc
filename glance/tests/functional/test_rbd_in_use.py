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

"""Data in use is deferred, not failed: RBD images with clones.

Nova and Cinder boot from copy-on-write clones of a Glance image's
snapshot; glance_store then refuses to delete it (InUseByStore). That is
the store keeping data something still reads, not a fault: the image is
kept, counted ``in_use``, logged once per pass, retried by later passes,
and a pass whose only trouble is such images exits 0.
"""

import uuid

import pytest

from glance.tests.harness import ceph
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

BACKENDS = ('eventlet', 'threading')
DATA = b'glance image data' * 1024


# Shared with other test modules, which still find it here.


def rbd_image(rbd_pool):
    url = rbd_pool.put('image-%s' % uuid.uuid4().hex[:12], DATA)
    return seed.Image(locations=[seed.Location(url)], size=len(DATA))


def warnings_about(run, image_id):
    return [line for line in run.output.splitlines()
            if ' WARNING ' in line and image_id in line]


@pytest.mark.parametrize('backend', BACKENDS, indirect=True)
def test_an_image_with_clones_is_kept_until_they_are_gone(
        database, backend, config, ceph_cluster, rbd_pool):
    ceph.use_rbd_store(config, ceph_cluster)
    cloned, opened, free = (rbd_image(rbd_pool) for _image in range(3))
    child = rbd_pool.clone(cloned.locations[0].url,
                           'volume-%s' % uuid.uuid4().hex[:12])
    seed.insert(database.engine, [cloned, opened, free])

    with rbd_pool.open_by_another_client(opened.locations[0].url):
        runs = [fixtures.run_scrubber(config, env=backend)
                for _pass in range(2)]

    for run in runs:
        assert run.returncode == 0, run.describe()
        assert 'Traceback' not in run.output, run.describe()
        for image in (cloned, opened):
            assert len(warnings_about(run, image.id)) == 1, run.describe()
    assert scenario.summary_counts(runs[0].summary) == {
        'found': 3, 'scrubbed': 1, 'failed': 0, 'skipped': 0, 'in_use': 2,
        'locations_deleted': 1, 'bytes_reclaimed': len(DATA)}
    assert (runs[1].summary['found'], runs[1].summary['in_use']) == (2, 2)
    scenario.check_pending(database.engine, cloned, ['pending_delete'])
    assert rbd_pool.read(cloned.locations[0].url) == DATA
    assert rbd_pool.snapshots(cloned.locations[0].url) == ['snap']
    assert not rbd_pool.exists(free.locations[0].url)

    rbd_pool.remove_clone(child)
    run = fixtures.run_scrubber(config, env=backend)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == 2
    for image in (cloned, opened):
        assert not rbd_pool.exists(image.locations[0].url)
        assert seed.image_status(database.engine, image.id).status == \
            'deleted'


def test_an_image_in_use_can_still_be_restored(database, config,
                                               ceph_cluster, rbd_pool):
    """Kept in use, it is pending_delete again: its data is all there."""
    ceph.use_rbd_store(config, ceph_cluster)
    cloned = rbd_image(rbd_pool)
    rbd_pool.clone(cloned.locations[0].url,
                   'volume-%s' % uuid.uuid4().hex[:12])
    seed.insert(database.engine, [cloned])
    assert fixtures.run_scrubber(config).returncode == 0

    restore = fixtures.run_scrubber(config, '--restore', cloned.id)

    assert restore.returncode == 0, restore.describe()
    assert seed.image_status(database.engine, cloned.id).status == 'active'
    assert rbd_pool.read(cloned.locations[0].url) == DATA
