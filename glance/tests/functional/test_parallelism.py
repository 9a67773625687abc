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

"""Images in parallel, the locations of one image in series: counted.

The scrubber deletes S3 objects through the counting proxy, which records
every request. Nothing here is timed: the proof is the number of requests
the proxy saw in flight at once.

To show that a pass reaches ``scrub_pool_size`` requests at once, the
proxy first holds every request until that many are waiting and then no
new one arrives for a while (a correct scrubber has no more to send; an
unbounded one would show more); then it lets them go and serves the rest
with a delay, so that any overlap beyond the pool would be seen too.
glance_store's S3 driver sends HEAD then DELETE for each object.
"""

import collections

import pytest

from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

DELAY = 0.05  # seconds the proxy adds to each request
QUIET = 1.0  # seconds without a new request before the held ones go
REQUESTS_PER_LOCATION = 2  # HEAD, DELETE
SINGLE_LOCATION_IMAGES = 48
THREE_LOCATION_IMAGES = 4


@pytest.fixture
def proxy(proxy):
    proxy.delay = DELAY
    return proxy


@pytest.mark.parametrize('backend', ('eventlet', 'threading'),
                         indirect=True)
@pytest.mark.parametrize('pool_size', (1, 4, 16))
def test_pool_size_bounds_the_requests_in_flight(
        pool_size, backend, database, config, proxy, s3_bucket):
    config.set('glance_store', filesystem_store_datadir=None)
    config.use_s3_store(proxy.endpoint, s3_bucket.name)
    config.set('DEFAULT', scrub_pool_size=pool_size)
    s3_bucket.url_netloc = proxy.netloc
    placements = [scenario.Placement(s3_bucket)]
    images = (scenario.pending_images(placements, SINGLE_LOCATION_IMAGES, 1)
              + scenario.pending_images(placements, THREE_LOCATION_IMAGES,
                                        3))
    seed.insert(database.engine, images)
    locations = SINGLE_LOCATION_IMAGES + 3 * THREE_LOCATION_IMAGES

    run = scrub_holding_the_first_requests(config, backend, proxy,
                                           pool_size)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary) == {
        'found': len(images), 'scrubbed': len(images), 'failed': 0,
        'skipped': 0, 'in_use': 0, 'locations_deleted': locations,
        'bytes_reclaimed': locations * scenario.IMAGE_SIZE}
    stores = scenario.StoreSet(s3=s3_bucket)
    for image in images:
        scenario.check_image_scrubbed(database.engine, stores, image)
    assert s3_bucket.keys() == []

    # The bucket looked up at start aside.
    requests = [request for request in proxy.finished_requests()
                if fixtures.object_request(request.method, request.path)]
    assert len(requests) == len(proxy.requests) - 1 == \
        REQUESTS_PER_LOCATION * locations
    assert proxy.max_in_flight == pool_size
    assert set(proxy.max_in_flight_per_group.values()) == {1}
    for image in images:
        check_serial_and_in_order(image, requests)
    if pool_size == 1:
        assert images_in_the_order_scrubbed(requests) == \
            sorted(image.id for image in images)


def scrub_holding_the_first_requests(config, backend, proxy, pool_size):
    proxy.hold(fixtures.object_request)
    with fixtures.RunningScrubber(config, env=backend) as scrub:
        fixtures.wait_until(
            lambda: proxy.held >= pool_size or not scrub.running(), 120,
            what='%d requests held' % pool_size)
        proxy.wait_quiet(QUIET)
        assert proxy.held == pool_size, scrub.output()
        proxy.release()
        return scrub.wait()


def check_serial_and_in_order(image, requests):
    """One request at a time for the image, in location order.

    HEAD then DELETE per location, each request starting after the
    previous one was answered.
    """
    mine = sorted((request for request in requests
                   if request.group == image.id),
                  key=lambda request: request.start)
    assert [(request.method, scenario.location_of(request.path))
            for request in mine] == [
        (method, index) for index in range(len(image.locations))
        for method in ('HEAD', 'DELETE')], image.id
    for previous, following in zip(mine, mine[1:]):
        assert previous.end <= following.start, (previous, following)


def images_in_the_order_scrubbed(requests):
    first_seen = collections.OrderedDict()
    for request in sorted(requests, key=lambda request: request.start):
        first_seen.setdefault(request.group, None)
    return list(first_seen)
