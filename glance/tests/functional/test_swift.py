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

"""The real glance-scrubber against a real Swift behind Keystone.

glance_store's swift driver, single tenant, with its credentials in a
swift_store_config_file reference, as most Swift-backed Glance clouds run
it. The data is written by that same driver, as glance-api writes it, and
checked with plain HTTP requests to Swift.
"""

import os
import urllib.parse
import uuid

import glance_store
from glance_store import exceptions as store_exceptions
from oslo_config import cfg
from oslo_config import fixture as config_fixture
import pytest

from glance.scrubber.stores import swift as swift_stores
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests.harness import swift
from glance.tests import seed

DATA = b'glance image data in swift ' * 1024
SEGMENTS = 3


@pytest.fixture(scope='module')
def swift_cluster(request):
    """One Swift and Keystone for the module: they take seconds to start."""
    cluster = swift.SwiftCluster()
    cluster.setUp()
    request.addfinalizer(cluster.cleanUp)
    return cluster


@pytest.fixture
def swift_account(request, swift_cluster):
    account = swift_cluster.account()
    request.addfinalizer(account.close)
    return account


@pytest.fixture
def container():
    """A container of the test's own, created by the first image put."""
    return 'glance-%s' % uuid.uuid4().hex[:12]


@pytest.fixture
def reference_file(tmp_path, swift_cluster):
    return swift_cluster.write_reference_file(tmp_path / 'swift-store.conf')


@pytest.fixture
def swift_config(config, reference_file, container):
    """The scrubber's configuration: the swift store only."""
    config.set('glance_store', filesystem_store_datadir=None,
               **swift.store_options(reference_file, container))
    return config


def swift_image(writer, data=DATA, **image_options):
    """An image whose data glance_store put in Swift."""
    image_id = str(uuid.uuid4())
    url = writer.put(image_id, data)
    return seed.Image(id=image_id, locations=[seed.Location(url)],
                      size=len(data), **image_options)


def object_name(image):
    return swift.parse_url(image.locations[0].url)[1]


def seconds_per_delete(run):
    return run.summary['seconds'] / max(1, run.summary['locations_deleted'])


@pytest.mark.parametrize('database', ['sqlite', 'postgresql'],
                         indirect=True)
def test_images_in_swift_are_scrubbed(database, swift_config, swift_account,
                                      reference_file, container):
    writer = swift.GlanceStoreWriter(reference_file, container)
    pending = [swift_image(writer) for _image in range(3)]
    kept = swift_image(writer, status='active', deleted=False)
    kept.locations[0].status = 'active'
    seed.insert(database.engine, pending + [kept])
    assert len(swift_account.objects(container)) == 4

    run = fixtures.run_scrubber(swift_config.set('DEFAULT',
                                                 scrub_pool_size=1))

    assert run.returncode == 0, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == 3, \
        run.describe()
    assert run.summary['locations_deleted'] == 3
    assert run.summary['bytes_reclaimed'] == 3 * len(DATA)
    for image in pending:
        scenario.check_image_scrubbed(database.engine, swift_account, image)
    assert swift_account.objects(container) == [object_name(kept)]
    assert swift_account.read(kept.locations[0].url) == DATA
    assert seed.image_status(database.engine, kept.id).status == 'active'
    print('swift delete: %.2f s each (pool 1, %s)'
          % (seconds_per_delete(run), database.url.split(':')[0]))


def test_a_segmented_image_loses_its_segments_and_manifest(
        database, swift_config, swift_account, reference_file, container):
    # Segments of one glance_store MB, and an image of whole segments:
    # glance_store hangs on a last segment shorter than the others.
    writer = swift.GlanceStoreWriter(reference_file, container,
                                     segment_mb=1)
    data = os.urandom(SEGMENTS * swift.STORE_MB)
    large = swift_image(writer, data)
    name = object_name(large)
    assert swift_account.objects(container) == [name] + [
        '%s-%05d' % (name, segment) for segment in range(1, SEGMENTS + 1)]
    assert swift_account.read(large.locations[0].url) == data
    seed.insert(database.engine, [large])

    run = fixtures.run_scrubber(swift_config)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == 1, \
        run.describe()
    scenario.check_image_scrubbed(database.engine, swift_account, large)
    assert swift_account.objects(container) == []


def test_an_object_already_gone_counts_as_deleted(
        database, swift_config, swift_account, reference_file, container):
    """Swift answers 404, glance_store raises NotFound: nothing to do.

    One missing object among a few deletes is far below the not-found
    guard's threshold (scrub_not_found_ratio), so the image is scrubbed.
    """
    writer = swift.GlanceStoreWriter(reference_file, container)
    present = swift_image(writer)
    gone = swift_image(writer)
    assert swift_account.objects(container) == sorted(
        [object_name(present), object_name(gone)])
    swift_account.delete(gone.locations[0].url)
    seed.insert(database.engine, [present, gone])

    run = fixtures.run_scrubber(swift_config)

    assert run.returncode == 0, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == 2, \
        run.describe()
    for image in (present, gone):
        scenario.check_image_scrubbed(database.engine, swift_account, image)
    assert swift_account.objects(container) == []


# --- the connections the workers share --------------------------------------


@pytest.fixture
def swift_store_in_this_process(reference_file, container):
    """glance_store's single Swift store, configured in this process."""
    conf = config_fixture.Config(cfg.CONF)
    conf.setUp()
    glance_store.register_opts(cfg.CONF)
    cfg.CONF([], project='glance-scrubber-tests', default_config_files=[],
             default_config_dirs=[])
    for name, value in swift.store_options(reference_file,
                                           container).items():
        conf.config(group='glance_store', **{name: value})
    glance_store.create_stores(cfg.CONF)
    yield
    conf.cleanUp()


def test_deletes_share_one_connection_and_its_token(
        swift_store_in_this_process, reference_file, container,
        swift_account):
    """The driver behaviour glance.scrubber.stores.swift relies on.

    glance_store's delete takes the connection to use, and a swiftclient
    connection keeps its Keystone token: ten deletes, one connection,
    one login. Without it each delete logs in again.
    """
    writer = swift.GlanceStoreWriter(reference_file, container)
    urls = [writer.put(str(uuid.uuid4()), DATA) for _image in range(10)]
    shared = swift_stores.SharedSwiftConnections()

    for url in urls:
        assert shared.handles(url, None)
        shared.delete(url, None, context=None)

    assert shared.opened == 1
    assert swift_account.objects(container) == []
    # A missing object is the store's answer; the connection stays.
    with pytest.raises(store_exceptions.NotFound):
        shared.delete(urls[0], None, context=None)
    assert shared.opened == 1


# --- one Keystone login per process -----------------------------------------

LOGIN_DELAY = 0.02


def logins(keystone):
    """The logins that went through a proxy in front of Keystone."""
    return [request for request in keystone.requests
            if request.method == 'POST' and
            request.path.rstrip('/').endswith('/auth/tokens')]


@pytest.fixture
def keystone_proxy(swift_cluster):
    """Keystone behind a proxy that counts and delays (20 ms) requests."""
    origin = swift_cluster.auth_url.rsplit('/v3', 1)[0]
    proxy = fixtures.CountingProxy(origin, delay=LOGIN_DELAY)
    proxy.setUp()
    yield proxy
    proxy.cleanUp()


@pytest.fixture
def counted_config(config, tmp_path, swift_cluster, keystone_proxy,
                   container):
    """The swift store, logging in to Keystone through keystone_proxy."""
    reference = swift_cluster.write_reference_file(
        tmp_path / 'swift-store-proxied.conf',
        auth_url=keystone_proxy.endpoint + '/v3')
    config.set('glance_store', filesystem_store_datadir=None,
               **swift.store_options(reference, container))
    return config


def test_the_workers_share_one_keystone_login(
        database, counted_config, keystone_proxy, swift_account,
        reference_file, container):
    """Eight workers, one token: a login per worker would be eight."""
    writer = swift.GlanceStoreWriter(reference_file, container)
    pending = [swift_image(writer) for _image in range(16)]
    seed.insert(database.engine, pending)

    run = fixtures.run_scrubber(counted_config.set('DEFAULT',
                                                   scrub_pool_size=8))

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == 16, \
        run.describe()
    assert swift_account.objects(container) == []
    assert len(logins(keystone_proxy)) == 1, run.describe()


def test_a_refused_token_is_renewed_by_one_login(
        database, counted_config, keystone_proxy, swift_cluster,
        swift_account, reference_file, container):
    """Swift refuses the first token: eight workers, one login more.

    A proxy in front of Swift (``swift_store_endpoint``) answers 401, as
    Swift does to an expired or revoked token, until a second login has
    reached Keystone.
    """
    writer = swift.GlanceStoreWriter(reference_file, container)
    pending = [swift_image(writer) for _image in range(16)]
    seed.insert(database.engine, pending)
    storage = urllib.parse.urlsplit(swift_account.storage_url)
    swift_proxy = fixtures.CountingProxy('%s://%s' % (storage.scheme,
                                                      storage.netloc))
    swift_proxy.setUp()
    try:
        swift_proxy.fail_requests(
            lambda method, path: len(logins(keystone_proxy)) < 2,
            status=401)
        counted_config.set('glance_store', swift_store_endpoint=(
            swift_proxy.endpoint + storage.path))

        run = fixtures.run_scrubber(counted_config.set('DEFAULT',
                                                       scrub_pool_size=8))

        refused = [request for request in swift_proxy.requests
                   if request.status == 401]
    finally:
        swift_proxy.cleanUp()
    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == 16, \
        run.describe()
    assert swift_account.objects(container) == []
    assert len(refused) >= 1
    assert len(logins(keystone_proxy)) == 2, run.describe()
