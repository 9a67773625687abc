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

"""The Ceph harness: a real cluster, and glance_store's rbd driver on it.

These prove what the scrubber's RBD tests rely on: images put by the
harness look like glance_store's own, and the driver's delete tells a
deleted image, a missing one and one in use apart. And the RADOS Gateway
of the S3 tests stops alone or with its cluster.
"""

import os
import socket
import urllib.parse
import uuid

import fixtures
import glance_store
from glance_store import exceptions as store_exceptions
from oslo_config import cfg
from oslo_config import fixture as config_fixture
import pytest

from glance.tests.functional import conftest
from glance.tests.harness import ceph
from glance.tests.harness import fixtures as harness

DATA = b'0123456789abcdef' * 4096


def unique(prefix='image'):
    """A name no other test of the session uses: they share the pool."""
    return '%s-%s' % (prefix, uuid.uuid4().hex[:12])


@pytest.fixture
def rbd_store(request, ceph_cluster):
    """glance_store's rbd driver, configured as glance-scrubber's is.

    The overrides go at the end of the test, and the scheme map is the
    test's own: no later test finds an rbd store pointing at a cluster
    that is gone.
    """
    conf = conftest.use(request, config_fixture.Config(cfg.CONF)).conf
    conftest.use(request, fixtures.MonkeyPatch(
        'glance_store.location.SCHEME_TO_CLS_MAP', {}))
    glance_store.register_opts(conf)
    conf.set_override('stores', ['rbd'], group='glance_store')
    conf.set_override('default_store', 'rbd', group='glance_store')
    conf.set_override('rbd_store_pool', ceph_cluster.pool,
                      group='glance_store')
    conf.set_override('rbd_store_user', ceph_cluster.user,
                      group='glance_store')
    conf.set_override('rbd_store_ceph_conf', ceph_cluster.conf,
                      group='glance_store')
    glance_store.create_stores(conf)
    glance_store.verify_default_store()
    return conf


def test_cluster_is_up(ceph_cluster, rbd_pool):
    assert os.path.isfile(ceph_cluster.conf)
    assert (ceph_cluster.pool, ceph_cluster.user) == ('images', 'admin')
    assert rbd_pool.fsid == ceph_cluster.fsid
    assert isinstance(rbd_pool.names(), list)


def test_put_then_exists(rbd_pool):
    name = unique()

    url = rbd_pool.put(name, DATA)

    assert url == 'rbd://%s/images/%s/snap' % (rbd_pool.fsid, name)
    assert rbd_pool.exists(url)
    assert rbd_pool.read(url) == DATA
    assert rbd_pool.snapshots(url) == ['snap']
    assert name in rbd_pool.names()
    assert not rbd_pool.exists(rbd_pool.url(unique('never-put')))


def test_store_deletes_an_image(rbd_pool, rbd_store):
    url = rbd_pool.put(unique(), DATA)
    decoy = rbd_pool.put(unique('decoy'), DATA)

    glance_store.delete_from_backend(url)

    assert not rbd_pool.exists(url)
    assert rbd_pool.read(decoy) == DATA


def test_store_reports_a_missing_image(rbd_pool, rbd_store):
    url = rbd_pool.url(unique('never-put'))

    with pytest.raises(store_exceptions.NotFound):
        glance_store.delete_from_backend(url)


def test_store_keeps_an_image_with_a_clone(rbd_pool, rbd_store):
    url = rbd_pool.put(unique(), DATA)
    child = rbd_pool.clone(url, unique('volume'))

    with pytest.raises(store_exceptions.InUseByStore):
        glance_store.delete_from_backend(url)

    assert rbd_pool.read(url) == DATA
    assert rbd_pool.snapshots(url) == ['snap']
    # Once the clone is gone, the image is no longer in use.
    rbd_pool.remove_clone(child)
    glance_store.delete_from_backend(url)
    assert not rbd_pool.exists(url)


def test_store_keeps_an_image_open_elsewhere(rbd_pool, rbd_store):
    url = rbd_pool.put(unique(), DATA)

    with rbd_pool.open_by_another_client(url):
        with pytest.raises(store_exceptions.InUseByStore):
            glance_store.delete_from_backend(url)
        # The data stays. (The driver has already unprotected and removed
        # the snapshot when the removal of the image finds it busy.)
        assert rbd_pool.read(url) == DATA

    glance_store.delete_from_backend(url)
    assert not rbd_pool.exists(url)


def answers(endpoint):
    """Whether something accepts connections at *endpoint*."""
    address = urllib.parse.urlsplit(endpoint)
    try:
        socket.create_connection((address.hostname, address.port),
                                 timeout=5).close()
    except OSError:
        return False
    return True


def test_the_gateway_stops_alone_or_with_its_cluster():
    """A cluster of its own: the session's gateway is not stopped."""
    ceph.require_rgw()
    with ceph.CephCluster(bindings=False) as cluster:
        with ceph.RgwGateway(cluster) as gateway:
            bucket = harness.S3Bucket(gateway.endpoint,
                                      unique('bucket')).create()
            url = bucket.put('kept', DATA)

        assert not answers(gateway.endpoint)
        # Left to the cluster's stop.
        again = ceph.RgwGateway(cluster)
        again.setUp()
        bucket = harness.S3Bucket(again.endpoint, bucket.name)
        assert bucket.exists(url)  # the same user, the same data
        assert not bucket.exists(bucket.url('never-put'))

    assert not answers(again.endpoint)
