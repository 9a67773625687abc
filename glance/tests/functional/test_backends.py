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

"""Both concurrency backends scale on a store that blocks in C (RBD).

librbd holds eventlet's hub while it works: green workers calling it
directly delete one image at a time, whatever ``scrub_pool_size`` says.
Over a real Ceph cluster whose OSDs answer the scrubber a few
milliseconds late (injected on the client side, as a network would), a
pool of 4 must scrub clearly faster than a pool of 1 on either backend.
The check is a ratio of pass times with a wide margin: about 3x is
measured, serial work gives 1.0x, the test asks for 1.6x.
"""

import uuid

import pytest

from glance.tests.harness import ceph
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

IMAGES = 12
DATA = b'glance rbd image' * 4096  # 64 KiB
SPEEDUP = 1.6
# What a network between the scrubber and its OSDs would add, and librbd
# made to remove one object at a time, so that a delete is a row of
# round trips rather than CPU.
CLIENT_OPTIONS = {
    'ms inject delay type': 'osd',
    'ms inject delay max': 0.004,
    'ms inject delay probability': 1,
    'rbd concurrent management ops': 1,
}


def scrub_pass_seconds(config, database, rbd_pool, backend, pool_size):
    images = []
    for _image in range(IMAGES):
        url = rbd_pool.put('image-%s' % uuid.uuid4().hex[:12], DATA)
        images.append(seed.Image(locations=[seed.Location(url)],
                                 size=len(DATA)))
    seed.insert(database.engine, images)
    config.set('DEFAULT', scrub_pool_size=pool_size)

    run = fixtures.run_scrubber(config, env=backend)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == IMAGES, \
        run.describe()
    for image in images:
        assert not rbd_pool.exists(image.locations[0].url)
    return run.summary['seconds']


@pytest.mark.parametrize('backend', ('eventlet', 'threading'),
                         indirect=True)
def test_a_larger_pool_scrubs_rbd_images_faster(
        backend, database, config, ceph_cluster, rbd_pool, tmp_path):
    config.set('glance_store', stores='rbd', default_store='rbd',
               filesystem_store_datadir=None,
               rbd_store_pool=ceph_cluster.pool,
               rbd_store_user=ceph_cluster.user,
               rbd_store_ceph_conf=ceph.client_conf(
                   ceph_cluster, tmp_path / 'ceph-client.conf',
                   CLIENT_OPTIONS))

    serial = scrub_pass_seconds(config, database, rbd_pool, backend, 1)
    parallel = scrub_pass_seconds(config, database, rbd_pool, backend, 4)

    print('%s: %d RBD images in %.2f s at pool 1, %.2f s at pool 4 '
          '(%.1fx)' % (backend[fixtures.BACKEND_VARIABLE], IMAGES, serial,
                       parallel, serial / parallel))
    assert serial / parallel >= SPEEDUP, (serial, parallel)


def test_threading_is_the_default_backend(config):
    run = fixtures.run_scrubber(
        config, env={fixtures.BACKEND_VARIABLE: None})

    assert run.returncode == 0, run.describe()
    assert 'on the threading backend' in run.output, run.describe()
    assert 'Scrub pass starting: 4 at once on threading' in run.output, \
        run.describe()
