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

"""A store that stops answering, at start, under --restore, mid-pass.

The counting proxy in front of the S3 server plays the store: it holds
requests without answering (a hung store: connections are accepted,
nothing comes back), or answers 503. A port nobody listens on plays a
store that is down. With ``scrub_store_timeout`` set, none of them may
hold the command for much longer than the bound, and none is mistaken for
a configuration error: the command refuses with exit 4, "store
unavailable", and nothing is deleted.
"""

import socket
import threading
import time

import pytest

from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed

STORE_TIMEOUT = 3  # seconds
# Before the bound covered the start-up check, a hung store held it for
# minutes (botocore's 60 s read timeout, four times): give far less.
RUN_TIMEOUT = 90
# Start-up (about 2 s) and one bounded look-up, with room for a loaded
# machine.
REFUSED_WITHIN = STORE_TIMEOUT + 12
EXIT_STORE_UNAVAILABLE = 4

on_both_backends = pytest.mark.parametrize(
    'backend', ('eventlet', 'threading'), indirect=True)


def s3_images(config, endpoint, s3_bucket, count, netloc=None):
    """*count* S3 images, the store reached at *endpoint*."""
    config.set('glance_store', filesystem_store_datadir=None)
    config.use_s3_store(endpoint, s3_bucket.name)
    config.set('DEFAULT', scrub_store_timeout=STORE_TIMEOUT)
    if netloc:
        s3_bucket.url_netloc = netloc
    images = scenario.pending_images([scenario.Placement(s3_bucket)],
                                     count, 1)
    return images


def timed_run(config, *args, backend):
    started = time.monotonic()
    run = fixtures.run_scrubber(config, *args, env=backend,
                                timeout=RUN_TIMEOUT)
    return run, time.monotonic() - started


def check_refused_as_unavailable(run, elapsed):
    assert run.returncode == EXIT_STORE_UNAVAILABLE, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert 'Invalid configuration' not in run.stderr, run.describe()
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, run.describe()
    assert errors[0].startswith(
        'glance-scrubber: Store unavailable: store s3: '), run.describe()
    assert elapsed < REFUSED_WITHIN, (elapsed, run.describe())


def check_untouched(database, s3_bucket, images):
    assert seed.count_images(database.engine, 'pending_delete') == \
        len(images)
    assert len(s3_bucket.keys()) == len(images)


@on_both_backends
@pytest.mark.parametrize('command', ('pass', '--restore'))
def test_a_store_that_never_answers_at_start_is_refused_in_time(
        backend, command, database, config, proxy, s3_bucket):
    images = s3_images(config, proxy.endpoint, s3_bucket, 2, proxy.netloc)
    seed.insert(database.engine, images)
    proxy.hold()
    args = ('--restore', images[0].id) if command == '--restore' else ()

    run, elapsed = timed_run(config, *args, backend=backend)

    check_refused_as_unavailable(run, elapsed)
    assert 'gave no answer' in run.stderr, run.describe()
    assert proxy.held >= 1, 'the store was not asked'
    proxy.release()
    check_untouched(database, s3_bucket, images)


@on_both_backends
def test_restore_refuses_when_the_look_up_of_the_data_gets_no_answer(
        backend, database, config, proxy, s3_bucket):
    images = s3_images(config, proxy.endpoint, s3_bucket, 1, proxy.netloc)
    seed.insert(database.engine, images)
    # The bucket answers at start; the image's object does not.
    proxy.hold(lambda method, path:
               scenario.image_of(path) == images[0].id)

    run, elapsed = timed_run(config, '--restore', images[0].id,
                             backend=backend)

    check_refused_as_unavailable(run, elapsed)
    assert images[0].id in run.stderr, run.describe()
    proxy.release()
    check_untouched(database, s3_bucket, images)


def closed_port():
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@on_both_backends
def test_a_store_that_refuses_connections_at_start_is_unavailable(
        backend, database, config, s3_bucket):
    images = s3_images(config, 'http://127.0.0.1:%d' % closed_port(),
                       s3_bucket, 1)
    seed.insert(database.engine, images)

    run, elapsed = timed_run(config, backend=backend)

    check_refused_as_unavailable(run, elapsed)
    assert 'cannot be reached' in run.stderr, run.describe()
    check_untouched(database, s3_bucket, images)


class FirstRequests:
    """A proxy predicate: true for the first *count* requests only."""

    def __init__(self, count):
        self._left = count
        self._lock = threading.Lock()

    def __call__(self, method, path):
        with self._lock:
            self._left -= 1
            return self._left >= 0


@on_both_backends
def test_a_transient_503_at_start_is_sent_again_not_refused(
        backend, database, config, proxy, s3_bucket):
    images = s3_images(config, proxy.endpoint, s3_bucket, 3, proxy.netloc)
    seed.insert(database.engine, images)
    # The bucket check is the first request.
    proxy.fail_requests(FirstRequests(2), status=503)

    run, _elapsed = timed_run(config, backend=backend)

    assert run.returncode == 0, run.describe()
    assert scenario.summary_counts(run.summary)['scrubbed'] == 3
    assert s3_bucket.keys() == []
    assert [request.status for request in proxy.requests[:2]] == [503, 503]


# --- mid-pass ---------------------------------------------------------------

IMAGES = 120
ANSWERED = 40  # deletes the store answers before it goes silent
POOL_SIZE = 4
TRIP_AFTER = 3  # glance.scrubber.breaker.StoreBreaker.TRIP_AFTER
# The store goes silent: the calls in flight time out within one bound,
# those started meanwhile within two; then the pass ends. Room for start-up
# of nothing (it is over), the last records and a loaded machine.
ENDS_WITHIN = TRIP_AFTER * STORE_TIMEOUT + 8


class SilentAfterDeletes:
    """A proxy predicate: every request is held once *count* DELETEs passed.

    :ivar silent_since: when the first request was held (time.monotonic()).
    """

    def __init__(self, count):
        self._left = count
        self._lock = threading.Lock()
        self.silent_since = None

    def __call__(self, method, path):
        with self._lock:
            if self._left > 0:
                self._left -= method == 'DELETE'
                return False
            if self.silent_since is None:
                self.silent_since = time.monotonic()
            return True


def said_about(run, phrase):
    """The images the log names in lines holding *phrase*."""
    return {line.split('Image ', 1)[1].split(' ', 1)[0]
            for line in run.output.splitlines()
            if 'Image ' in line and phrase in line}


@on_both_backends
def test_a_store_that_goes_silent_mid_pass_stops_it_and_gives_back(
        backend, database, config, proxy, s3_bucket):
    images = s3_images(config, proxy.endpoint, s3_bucket, IMAGES,
                       proxy.netloc)
    seed.insert(database.engine, images)
    config.set('DEFAULT', scrub_pool_size=POOL_SIZE)
    silent = SilentAfterDeletes(ANSWERED)
    proxy.hold(silent)

    run, _elapsed = timed_run(config, backend=backend)
    ended = time.monotonic()

    assert run.returncode == 1, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert ended - silent.silent_since < ENDS_WITHIN, (
        ended - silent.silent_since, run.describe())
    counts = scenario.summary_counts(run.summary)
    given_back = counts.get('given_back', 0)
    left_claimed = counts['left_claimed']
    assert (counts['scrubbed'], counts['failed']) == (ANSWERED, 0), \
        run.describe()
    assert 1 <= left_claimed <= TRIP_AFTER + POOL_SIZE - 1, run.describe()
    assert given_back >= 1, run.describe()

    # The log names each image given back and each left claimed; the
    # database agrees, image by image.
    named_given_back = said_about(run, 'given back')
    named_left_claimed = said_about(run, 'left claimed')
    assert len(named_given_back) == given_back, run.describe()
    assert len(named_left_claimed) == left_claimed, run.describe()
    for image_id in named_given_back:
        assert seed.image_status(database.engine, image_id).status == \
            'pending_delete'
    for image_id in named_left_claimed:
        assert seed.image_status(database.engine, image_id).status == \
            'deleted'
    assert seed.count_images(database.engine, 'pending_delete') == \
        IMAGES - ANSWERED - left_claimed
    assert len(s3_bucket.keys()) == IMAGES - ANSWERED

    # One line on stderr says what stopped the pass and which is which.
    said = run.stderr.splitlines()
    assert len(said) == 1, run.describe()
    assert 'the store s3 stopped answering' in said[0], run.describe()
    assert '%d images stay claimed' % left_claimed in said[0]
    assert '%d images claimed and never attempted were given back' % \
        given_back in said[0]

    # Given back means restorable, at once.
    proxy.release()
    restore = fixtures.run_scrubber(config, '--restore',
                                    sorted(named_given_back)[0], env=backend,
                                    timeout=RUN_TIMEOUT)
    assert restore.returncode == 0, restore.describe()
