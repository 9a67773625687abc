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

Parametrize ``database`` (sqlite, mysql, postgresql) and ``backend``
(eventlet, threading) indirectly; unparametrized they are SQLite and the
default backend.
"""

import os
import uuid

import pytest

from glance.tests import databases
from glance.tests.functional import ceph
from glance.tests.functional import fixtures
from glance.tests.functional import scenario


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


@pytest.fixture
def s3_bucket(moto_server):
    """A new bucket on the shared moto server, reached directly."""
    return fixtures.S3Bucket(moto_server.endpoint,
                             'images-%s' % uuid.uuid4().hex[:12]).create()


@pytest.fixture
def proxy(request, moto_server):
    """The counting proxy in front of the moto server, by image.

    A test module that wants a delay overrides it: ``def proxy(proxy)``.
    """
    return use(request, fixtures.CountingProxy(moto_server.endpoint,
                                               group_of=scenario.image_of))


@pytest.fixture(scope='session')
def ceph_cluster(request):
    """A one-node Ceph cluster shared by the session's tests."""
    return use(request, ceph.CephCluster())


@pytest.fixture
def rbd_pool(request, ceph_cluster):
    """The cluster's RBD pool, reached directly: give images unique names."""
    pool = ceph_cluster.rbd_pool()
    request.addfinalizer(pool.close)
    return pool
