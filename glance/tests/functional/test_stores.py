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

"""Scrubbing through glance_store's S3 driver and with several stores.

S3 is a local moto server, reached by the scrubber through the counting
proxy when a test needs to inject failures. The tests of deletes, of
objects already gone and of multi-store run on a Ceph RADOS Gateway
(``rgw``) as well: a real S3 server, with its own answers.
"""

import pytest

from glance.tests.functional import conftest
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed


@pytest.fixture
def proxy(request, s3_server):
    proxy = fixtures.CountingProxy(s3_server.endpoint)
    proxy.setUp()
    request.addfinalizer(proxy.cleanUp)
    return proxy


def use_s3_only(config, endpoint, bucket):
    config.set('glance_store', filesystem_store_datadir=None)
    return config.use_s3_store(endpoint, bucket.name)


def use_file_and_s3(config, file_store, endpoint, bucket):
    """Multi-store: backend 'fast' (file, the default) and 'cheap' (S3)."""
    config.set('glance_store', stores=None, default_store=None,
               filesystem_store_datadir=None)
    config.use_multi_store('fast', {
        'fast': ('file', {'filesystem_store_datadir': file_store.datadir}),
        'cheap': ('s3', fixtures.s3_store_options(endpoint, bucket.name)),
    })


@conftest.on_every_s3_server
def test_s3_store_backlog(database, config, s3_server, s3_bucket):
    use_s3_only(config, s3_server.endpoint, s3_bucket)
    backlog = scenario.Backlog([scenario.Placement(s3_bucket)],
                               scenario.StoreSet(s3=s3_bucket),
                               count=(8, 4, 4)).insert(database.engine)

    run = fixtures.run_scrubber(config)

    backlog.check_scrubbed(database.engine, run)
    assert s3_bucket.keys()  # the decoys' objects are still there


@conftest.on_every_s3_server
def test_an_s3_object_already_gone_counts_as_deleted(database, config,
                                                     s3_server, s3_bucket):
    """The store answers 404 to the HEAD; glance_store raises NotFound.

    One missing object among a few deletes is far below the not-found
    guard's threshold (scrub_not_found_ratio): its image is scrubbed,
    and its bytes are not counted as reclaimed.
    """
    use_s3_only(config, s3_server.endpoint, s3_bucket)
    stores = scenario.StoreSet(s3=s3_bucket)
    placements = [scenario.Placement(s3_bucket)]
    present = scenario.pending_images(placements, 3, 1)
    gone = scenario.pending_images(placements, 1, 1)[0]
    gone_url = gone.locations[0].url
    s3_bucket.client.delete_object(Bucket=s3_bucket.name,
                                   Key=s3_bucket.key_of(gone_url))
    assert not s3_bucket.exists(gone_url)
    seed.insert(database.engine, present + [gone])

    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert scenario.summary_counts(run.summary) == {
        'found': 4, 'scrubbed': 4, 'failed': 0, 'skipped': 0, 'in_use': 0,
        'locations_deleted': 4, 'bytes_reclaimed': 3 * scenario.IMAGE_SIZE}
    for image in present + [gone]:
        scenario.check_image_scrubbed(database.engine, stores, image)
    assert s3_bucket.keys() == []


@conftest.on_every_s3_server
def test_multi_store_backlog(database, config, file_store, s3_server,
                             s3_bucket):
    """Images spread over a file and an S3 backend, some in both."""
    s3_bucket.credentials_in_url = False  # as glance_store writes them now
    use_file_and_s3(config, file_store, s3_server.endpoint, s3_bucket)
    backlog = scenario.Backlog(
        [scenario.Placement(file_store, 'fast'),
         scenario.Placement(s3_bucket, 'cheap')],
        scenario.StoreSet(file=file_store, s3=s3_bucket),
        count=(8, 6, 4)).insert(database.engine)

    run = fixtures.run_scrubber(config)

    backlog.check_scrubbed(database.engine, run)
    assert s3_bucket.keys() and file_store.names()


def test_s3_location_the_store_fails_on_is_retried_by_the_next_pass(
        database, config, proxy, s3_bucket):
    use_s3_only(config, proxy.endpoint, s3_bucket)
    s3_bucket.url_netloc = proxy.netloc
    stores = scenario.StoreSet(s3=s3_bucket)
    placements = [scenario.Placement(s3_bucket)]
    stuck = scenario.pending_images(placements, 1, 3)[0]
    others = scenario.pending_images(placements, 4, 1)
    seed.insert(database.engine, [stuck] + others)
    first, failing, last = [location.url for location in stuck.locations]
    failing_key = '/%s/%s' % (s3_bucket.name, s3_bucket.key_of(failing))
    proxy.fail_requests(lambda method, path: path == failing_key)

    scenario.run_with_one_failure(
        config, found=5, locations_deleted=5)
    scenario.check_pending(database.engine, stuck,
                           ['deleted', 'pending_delete', 'pending_delete'])
    assert [stores.exists(url) for url in (first, failing, last)] == \
        [False, True, True]
    assert not any(request.path.endswith(s3_bucket.key_of(last))
                   for request in proxy.requests)  # never reached
    for image in others:
        scenario.check_image_scrubbed(database.engine, stores, image)

    proxy.stop_failing()
    scenario.check_next_pass_finishes(config, database.engine, stores, stuck,
                                      locations_left=2)


@conftest.on_every_s3_server
def test_only_the_image_no_store_can_delete_fails(database, config,
                                                  file_store, s3_server,
                                                  s3_bucket):
    """Multi-store: a location naming no configured backend fails alone.

    A location without backend metadata (written before multi-store was
    turned on) is still found by its URL.
    """
    use_file_and_s3(config, file_store, s3_server.endpoint, s3_bucket)
    stores = scenario.StoreSet(file=file_store, s3=s3_bucket)
    good = scenario.pending_images([scenario.Placement(file_store, 'fast'),
                                    scenario.Placement(s3_bucket, 'cheap')],
                                   4, 2)
    legacy = scenario.pending_images([scenario.Placement(file_store)], 1,
                                     1)
    orphan = scenario.pending_images(
        [scenario.Placement(file_store, 'nosuch')], 1, 1)[0]
    seed.insert(database.engine, good + legacy + [orphan])

    run = scenario.run_with_one_failure(
        config, found=6, locations_deleted=9)
    for image in good + legacy:
        scenario.check_image_scrubbed(database.engine, stores, image)
    scenario.check_pending(database.engine, orphan, ['pending_delete'])
    assert stores.exists(orphan.locations[0].url)
    assert orphan.id in run.output


def test_restores_during_a_pass_win_or_are_refused(
        database, config, proxy, s3_bucket, tmp_path):
    """A restore from another host either wins or finds the image claimed.

    Serial pool: while the first image's request is held, the second is
    claimed already (the pass claims one batch ahead) and cannot be
    restored; the third is not, is restored and keeps its data.
    """
    use_s3_only(config, proxy.endpoint, s3_bucket)
    config.set('DEFAULT', scrub_pool_size=1)
    s3_bucket.url_netloc = proxy.netloc
    stores = scenario.StoreSet(s3=s3_bucket)
    first, second, third = sorted(
        scenario.pending_images([scenario.Placement(s3_bucket)], 3, 2),
        key=lambda image: image.id)
    seed.insert(database.engine, [first, second, third])
    elsewhere = config.on_another_host(tmp_path / 'elsewhere')
    # Only the first image's requests: the restore looks its data up too.
    proxy.hold(lambda method, path: first.id in path)
    with fixtures.RunningScrubber(config) as scrub:
        fixtures.wait_until(lambda: proxy.held >= 1, 120,
                            what='a request held')
        assert [request.group for request in proxy.requests
                if fixtures.object_request(request.method, request.path)] \
            == ['/%s/%s.0' % (s3_bucket.name, first.id)]
        refused = fixtures.run_scrubber(elsewhere, '--restore', second.id)
        restored = fixtures.run_scrubber(elsewhere, '--restore', third.id)
        proxy.release()
        run = scrub.wait()

    assert refused.returncode == 2 and 'claimed' in refused.stderr, \
        refused.describe()
    assert restored.returncode == 0, restored.describe()
    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary) == {
        'found': 3, 'scrubbed': 2, 'failed': 0, 'skipped': 1, 'in_use': 0,
        'locations_deleted': 4, 'bytes_reclaimed': 4 * scenario.IMAGE_SIZE}
    for image in (first, second):
        scenario.check_image_scrubbed(database.engine, stores, image)
    assert seed.image_status(database.engine, third.id).status == 'active'
    assert all(stores.exists(location.url) for location in third.locations)
    # The restore looked its data up; nothing deleted it.
    assert not any(request.path.endswith(third.id + '.0') and
                   request.method == 'DELETE' for request in proxy.requests)


def test_a_library_error_on_a_later_location_keeps_what_was_deleted(
        database, config, proxy, s3_bucket):
    """botocore's ClientError (HTTP 500) from the DELETE of location 2 of 3.

    glance_store lets it through. The image fails with a one-line reason,
    no traceback; location 1, deleted, stays recorded deleted, so that a
    restore only brings back locations that still have data.
    """
    use_s3_only(config, proxy.endpoint, s3_bucket)
    s3_bucket.url_netloc = proxy.netloc
    stores = scenario.StoreSet(s3=s3_bucket)
    stuck = scenario.pending_images([scenario.Placement(s3_bucket)], 1,
                                    3)[0]
    others = scenario.pending_images([scenario.Placement(s3_bucket)], 2, 1)
    seed.insert(database.engine, [stuck] + others)
    failing_key = '/%s/%s' % (s3_bucket.name,
                              s3_bucket.key_of(stuck.locations[1].url))
    proxy.fail_requests(lambda method, path: method == 'DELETE' and
                        path == failing_key)

    run = scenario.run_with_one_failure(config, found=3, locations_deleted=3)

    assert 'Traceback' not in run.output, run.describe()
    errors = [line for line in run.output.splitlines()
              if ' ERROR ' in line and stuck.id in line]
    # One line, saying what the store answered (the code botocore gives).
    assert len(errors) == 1 and 'InternalError' in errors[0], run.describe()
    scenario.check_pending(database.engine, stuck,
                           ['deleted', 'pending_delete', 'pending_delete'])
    audit = [line for line in run.output.splitlines()
             if ' INFO ' in line and 'scrubbed: 1 locations deleted, %d '
             'bytes reclaimed' % scenario.IMAGE_SIZE in line]
    for image in others:
        assert any(image.id in line for line in audit), run.describe()
    proxy.stop_failing()
    restore = fixtures.run_scrubber(config, '--restore', stuck.id)
    assert restore.returncode == 0, restore.describe()
    assert [state[1] for state in seed.location_states(
        database.engine, stuck.id)] == ['deleted', 'active', 'active']
    assert [stores.exists(location.url) for location in stuck.locations] \
        == [False, True, True]
