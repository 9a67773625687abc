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

"""A store that throttles: the pass backs off and still scrubs everything.

The counting proxy stands for an S3 (or Ceph RGW) with a request rate
limit: above RATE requests per second it answers ``503 SlowDown``, which
is what the scrubber's S3 clients see from such a store.

The proxy is put in front of moto, and of a Ceph RGW too for the first
test (on the default backend only): the Ceph release the tests run
(Pacific) has no request rate limit of its own, so the 503s are the
proxy's there as well, but the requests it lets through are served by a
real S3 server. The rate cap of the second test is the scrubber's own
pacing, which no server's answer enters: moto only.
"""

import pytest

from glance.tests.functional import conftest
from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

DELAY = 0.025  # seconds, the store's own latency
RATE = 100  # requests per second the store accepts
POOL_SIZE = 32
IMAGES = 300


@pytest.fixture
def proxy(proxy):
    proxy.delay = DELAY
    return proxy


def s3_images(config, proxy, s3_bucket, count):
    config.set('glance_store', filesystem_store_datadir=None)
    config.use_s3_store(proxy.endpoint, s3_bucket.name)
    s3_bucket.url_netloc = proxy.netloc
    return scenario.pending_images([scenario.Placement(s3_bucket)], count, 1)


@conftest.on_both_backends_and_rgw
def test_a_throttling_store_is_backed_off_from_and_fully_scrubbed(
        backend, database, config, proxy, s3_bucket):
    images = s3_images(config, proxy, s3_bucket, IMAGES)
    seed.insert(database.engine, images)
    config.set('DEFAULT', scrub_pool_size=POOL_SIZE)
    proxy.limit_rate(RATE)

    run = fixtures.run_scrubber(config, env=backend)

    assert run.returncode == 0, run.describe()
    counts = scenario.summary_counts(run.summary)
    assert counts['scrubbed'] == IMAGES, run.describe()
    assert s3_bucket.keys() == []
    share = proxy.throttled / len(proxy.requests)
    print('%d of %d requests throttled (%.0f%%)' % (
        proxy.throttled, len(proxy.requests), 100 * share))
    assert share <= 0.2, run.describe()


CAP = 20  # scrub_store_rate_limit, deletes per second
CAPPED_IMAGES = 40


def most_requests_in_one_second(requests):
    starts = sorted(request.start for request in requests)
    most = 0
    for index, start in enumerate(starts):
        within = [other for other in starts[index:] if other < start + 1.0]
        most = max(most, len(within))
    return most


@pytest.mark.parametrize('backend', ('eventlet', 'threading'),
                         indirect=True)
def test_the_rate_cap_holds_over_any_second(backend, database, config,
                                            proxy, s3_bucket):
    images = s3_images(config, proxy, s3_bucket, CAPPED_IMAGES)
    seed.insert(database.engine, images)
    config.set('DEFAULT', scrub_pool_size=POOL_SIZE,
               scrub_store_rate_limit=CAP)

    run = fixtures.run_scrubber(config, env=backend)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == CAPPED_IMAGES
    deletes = [request for request in proxy.finished_requests()
               if request.method == 'DELETE']
    assert len(deletes) == CAPPED_IMAGES
    # Evenly spaced at 1/CAP s; one more for the arrival jitter of two
    # requests at the edges of the window.
    assert most_requests_in_one_second(deletes) <= CAP + 1
