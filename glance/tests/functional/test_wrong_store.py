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

""""Not found" means "already gone" only in the right store.

Pointed at a store that does not hold the images (a datadir whose file
system is not mounted, another S3 endpoint, a missing bucket or pool),
every delete would answer "not found" and every image would be marked
deleted while its data stays, orphaned, in the real store. The scrubber
refuses such a store at start when it can tell, and stops a pass whose
first deletes mostly find nothing.
"""

import os
import uuid

import pytest

from glance.tests.functional import conftest
from glance.tests.harness import ceph
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed


def refusal(run):
    """The one 'glance-scrubber:' line of a refused run."""
    assert 'Traceback' not in run.output, run.describe()
    lines = [line for line in run.stderr.splitlines()
             if line.startswith('glance-scrubber:')]
    assert len(lines) == 1, run.describe()
    return lines[0]


@pytest.mark.parametrize('multistore', (False, True),
                         ids=('single', 'multi'))
def test_a_missing_datadir_is_refused_at_start(multistore, database, config,
                                               file_store, tmp_path):
    """glance_store would create it empty; the scrubber refuses instead."""
    image = scenario.pending_images([scenario.Placement(file_store)], 1,
                                    1)[0]
    seed.insert(database.engine, [image])
    unmounted = str(tmp_path / 'unmounted')
    if multistore:
        config.set('glance_store', stores=None, default_store=None,
                   filesystem_store_datadir=None)
        config.use_multi_store('fast', {
            'fast': ('file', {'filesystem_store_datadir': unmounted})})
    else:
        config.set('glance_store', filesystem_store_datadir=unmounted)
    rows = scenario.rows_of(database.engine, [image.id])

    for action in ((), ('--restore', image.id)):
        run = fixtures.run_scrubber(config, *action)

        assert run.returncode == 2, run.describe()
        assert unmounted in refusal(run) and 'mounted' in refusal(run)
    assert not os.path.exists(unmounted)
    assert scenario.rows_of(database.engine, [image.id]) == rows


@conftest.on_every_s3_server
def test_a_missing_s3_bucket_is_refused_at_start(database, config,
                                                 s3_server):
    config.set('glance_store', filesystem_store_datadir=None)
    config.use_s3_store(s3_server.endpoint, 'no-such-bucket')

    run = fixtures.run_scrubber(config)

    assert run.returncode == 2, run.describe()
    assert 'no-such-bucket' in refusal(run)


def test_a_missing_rbd_pool_is_refused_at_start(database, config,
                                                ceph_cluster):
    ceph.use_rbd_store(config, ceph_cluster)
    config.set('glance_store', rbd_store_pool='no-such-pool')

    run = fixtures.run_scrubber(config)

    assert run.returncode == 2, run.describe()
    assert 'no-such-pool' in refusal(run)


def images_whose_data_is_elsewhere(file_store, count):
    """Rows pointing into the datadir, as if its mount were missing."""
    images = []
    for _number in range(count):
        image_id = str(uuid.uuid4())
        images.append(seed.Image(id=image_id, locations=[
            seed.Location(file_store.url(image_id + '.0'))]))
    return images


def test_a_pass_whose_deletes_find_nothing_stops(database, config,
                                                 file_store):
    """More than half of the first 20 deletes found nothing.

    The pass takes no more images, records none of the missing data as
    deleted and exits 1 with one line; the images stay pending_delete.
    """
    config.set('DEFAULT', scrub_pool_size=2)
    images = images_whose_data_is_elsewhere(file_store, 300)
    seed.insert(database.engine, images)

    run = fixtures.run_scrubber(config)

    assert run.returncode == 1, run.describe()
    assert 'scrub_not_found_ratio' in refusal(run)
    assert run.summary['found'] < len(images)
    assert run.summary['locations_deleted'] == 0
    for image in images:
        scenario.check_pending(database.engine, image, ['pending_delete'])


def test_the_ratio_can_be_raised_for_a_known_loss(database, config,
                                                  file_store):
    """An operator who knows the data is gone lets the pass record it."""
    config.set('DEFAULT', scrub_not_found_ratio=1.0)
    images = images_whose_data_is_elsewhere(file_store, 25)
    seed.insert(database.engine, images)

    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert run.summary['scrubbed'] == len(images)
    assert seed.count_images(database.engine, 'pending_delete') == 0


def test_another_s3_endpoint_stops_the_pass(database, config, moto_server,
                                            s3_bucket, request):
    """Same bucket name on another S3 server: the objects are not there.

    The objects stay in the real store and the images pending_delete.
    """
    elsewhere = fixtures.MotoServer()
    elsewhere.setUp()
    request.addfinalizer(elsewhere.cleanUp)
    fixtures.S3Bucket(elsewhere.endpoint, s3_bucket.name).create()
    config.set('glance_store', filesystem_store_datadir=None)
    config.use_s3_store(elsewhere.endpoint, s3_bucket.name)
    images = scenario.pending_images([scenario.Placement(s3_bucket)], 30, 1)
    seed.insert(database.engine, images)

    run = fixtures.run_scrubber(config)

    assert run.returncode == 1, run.describe()
    assert 'scrub_not_found_ratio' in refusal(run)
    for image in images:
        scenario.check_pending(database.engine, image, ['pending_delete'])
        assert s3_bucket.exists(image.locations[0].url)
