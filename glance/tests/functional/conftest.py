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

"""pytest glue: the harness of fixtures.py as pytest fixtures.

Parametrize ``database`` (sqlite, mysql, postgresql), ``backend``
(eventlet, threading) and ``s3_server`` (moto, rgw) indirectly;
unparametrized they are SQLite, the default backend and moto.
``on_every_s3_server`` parametrizes a test over both S3 servers.
"""

import os
import uuid

import pytest

from glance.tests import databases
from glance.tests.harness import ceph
from glance.tests.harness import fixtures
from glance.tests.harness import scenario


def use(request, fixture):
    """Set a fixtures.Fixture up, cleaned up when *request* ends."""
    fixture.setUp()
    request.addfinalizer(fixture.cleanUp)
    return fixture


@pytest.fixture
def database(request):
    return use(request, databases.Database(getattr(request, 'param',
                                                   'sqlite')))


@pytest.fixture
def backend(request):
    """The concurrency backend, as the environment of the scrubber."""
    name = getattr(request, 'param', None)
    return {fixtures.BACKEND_VARIABLE: name} if name else {}


@pytest.fixture
def file_store(tmp_path):
    return fixtures.FileStore(tmp_path / 'images')


@pytest.fixture
def config(tmp_path, database, file_store):
    """SQLite (or the parametrized database) and the file store."""
    lock_path = tmp_path / 'locks'
    os.makedirs(lock_path, exist_ok=True)
    return fixtures.ScrubberConfig(
        tmp_path / 'glance-scrubber.conf', database.url, lock_path,
        scrub_pool_size=4, scrub_time=scenario.SCRUB_TIME
    ).use_file_store(file_store.datadir)


@pytest.fixture(scope='session')
def moto_server(request):
    return use(request, fixtures.MotoServer())


@pytest.fixture(scope='session')
def rgw_server(request):
    """A Ceph RADOS Gateway on the session's cluster, as moto_server is.

    It accepts the keys the S3 helpers sign with by default
    (fixtures.S3_ACCESS_KEY and S3_SECRET_KEY).
    """
    ceph.require_rgw()  # before a cluster is started for nothing
    return use(request, ceph.RgwGateway(
        request.getfixturevalue('ceph_daemons')))


S3_SERVERS = {'moto': 'moto_server', 'rgw': 'rgw_server'}
on_every_s3_server = pytest.mark.parametrize('s3_server', sorted(S3_SERVERS),
                                             indirect=True)
# Both concurrency backends on moto, and Ceph RGW on the default one: for
# the longer S3 tests, where RGW on both would double the time they add.
on_both_backends_and_rgw = pytest.mark.parametrize(
    'backend, s3_server', (('eventlet', 'moto'), ('threading', 'moto'),
                           ('threading', 'rgw')), indirect=True)


@pytest.fixture
def s3_server(request):
    """The session's S3 server: moto, or Ceph RGW when parametrized so.

    Either has ``endpoint``; both take the default keys of the helpers.
    """
    return request.getfixturevalue(
        S3_SERVERS[getattr(request, 'param', 'moto')])


@pytest.fixture
def s3_bucket(s3_server):
    """A new bucket on the shared S3 server, reached directly."""
    return fixtures.S3Bucket(s3_server.endpoint,
                             'images-%s' % uuid.uuid4().hex[:12]).create()


@pytest.fixture
def proxy(request, s3_server):
    """The counting proxy in front of the S3 server, by image.

    A test module that wants a delay overrides it: ``def proxy(proxy)``.
    """
    return use(request, fixtures.CountingProxy(s3_server.endpoint,
                                               group_of=scenario.image_of))


@pytest.fixture(scope='session')
def ceph_daemons(request):
    """The session's one-node Ceph cluster, Python bindings or not.

    What the RADOS Gateway runs on; RBD tests use ceph_cluster.
    """
    return use(request, ceph.CephCluster(bindings=False))


@pytest.fixture(scope='session')
def ceph_cluster(ceph_daemons):
    """A one-node Ceph cluster shared by the session's tests.

    The same cluster as ceph_daemons, for tests that reach it through the
    rados and rbd bindings (the scrubber's rbd store, RbdPool).
    """
    ceph.require_ceph()
    return ceph_daemons


@pytest.fixture
def rbd_pool(request, ceph_cluster):
    """The cluster's RBD pool, reached directly: give images unique names."""
    pool = ceph_cluster.rbd_pool()
    request.addfinalizer(pool.close)
    return pool
