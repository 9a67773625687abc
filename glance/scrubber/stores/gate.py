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

"""Keeping a pass from hammering its store.

The workers of a pass send store requests as fast as the store answers;
an object store that limits its request rate answers the excess with
"slow down" (S3 and Ceph RGW ``503 SlowDown``, Swift ``498`` or ``429``).
Two things keep a pass within what the store accepts:

* StoreGate: the number of store requests in flight follows the store's
  answers (additive increase, multiplicative decrease): each throttled
  answer halves it, successes raise it again by about one per round of
  requests, never above ``scrub_pool_size``; a throttled request is sent
  again after a jittered, growing wait;
* an optional hard cap on the requests per second one scrubber sends
  (``scrub_store_rate_limit``).

The gate sits around each store call of a worker; it knows nothing of
images or the database.
"""

import random
import threading
import time

# Answers that mean "too many requests", by code and by HTTP status.
THROTTLE_CODES = frozenset([
    'SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded',
    'TooManyRequests', 'TooManyRequestsException', 'RequestThrottled',
    'ServiceUnavailable'])
THROTTLE_STATUSES = frozenset([429, 498, 503])


def is_throttled(error):
    """Whether the store answered "too many requests" (throttled).

    Looks at botocore's ClientError (error code and HTTP status),
    swiftclient's ClientException (``http_status``) and requests'
    HTTPError (``response.status_code``), in *error* and through the
    chain of causes glance_store may wrap them in.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if _code(error) in THROTTLE_CODES or \
                http_status(error) in THROTTLE_STATUSES:
            return True
        error = error.__cause__ or error.__context__
    return False


def _code(error):
    response = getattr(error, 'response', None)
    if isinstance(response, dict):
        return response.get('Error', {}).get('Code')
    return None


def http_status(error):
    """The HTTP status a store client error carries, or None."""
    status = getattr(error, 'http_status', None)
    if status is not None:
        return status
    response = getattr(error, 'response', None)
    if isinstance(response, dict):
        return response.get('ResponseMetadata', {}).get('HTTPStatusCode')
    return getattr(response, 'status_code', None)


class RateCap:
    """At most *rate* store requests per second, evenly spaced.

    Each caller is given the next free send time and sleeps until then,
    so the cap holds over any window, however many workers call.
    """

    def __init__(self, rate, clock=time.monotonic, sleep=time.sleep):
        self._interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self):
        with self._lock:
            now = self._clock()
            send_at = max(now, self._next)
            self._next = send_at + self._interval
        if send_at > now:
            self._sleep(send_at - now)


class NoCap:
    def wait(self):
        pass


class StoreGate:
    """Adaptive concurrency of store requests, and the retry waits.

    :param ceiling: the most requests in flight (``scrub_pool_size``);
        the gate starts there: a store that never throttles sees no
        difference.
    :param rate_cap: a RateCap, or None for no cap.
    :param base_wait: seconds; the wait before the n-th retry of one
        request is drawn uniformly from 0 to base_wait * 2**n, capped
        at max_wait ("full jitter": throttled workers do not come back
        all at once).
    """

    def __init__(self, ceiling, rate_cap=None, base_wait=0.1, max_wait=10.0,
                 rand=random.random, sleep=time.sleep):
        self.ceiling = ceiling
        self._limit = float(ceiling)
        self._in_flight = 0
        self._rate_cap = rate_cap or NoCap()
        self._base_wait = base_wait
        self._max_wait = max_wait
        self._rand = rand
        self._sleep = sleep
        self._changed = threading.Condition()
        self._sent = 0
        self._decreased_after = 0
        self.throttled = 0

    def start_pass(self):
        """Count the throttled requests of a new pass from zero.

        The concurrency reached is kept: the store's limit has not
        changed between two passes.
        """
        with self._changed:
            self.throttled = 0

    @property
    def concurrency(self):
        """The requests allowed in flight now."""
        with self._changed:
            return int(self._limit)

    def enter(self):
        """Wait for room for one more request, then take it.

        :returns: the request's ticket, for leave().
        """
        with self._changed:
            while self._in_flight >= int(self._limit):
                self._changed.wait()
            self._in_flight += 1
            self._sent += 1
            ticket = self._sent
        self._rate_cap.wait()
        return ticket

    def leave(self, ticket, throttled):
        """A request is answered; *throttled* when the store said so."""
        with self._changed:
            self._in_flight -= 1
            if not throttled:
                self._limit = min(float(self.ceiling),
                                  self._limit + 1.0 / self._limit)
            else:
                self.throttled += 1
                # One decrease per round: requests sent before the last
                # decrease saw the old limit, and were answered for it.
                if ticket > self._decreased_after:
                    self._limit = max(1.0, self._limit / 2)
                    self._decreased_after = self._sent
            self._changed.notify_all()

    def backoff(self, attempt):
        """Sleep before sending a throttled request again (attempt 0..)."""
        bound = min(self._max_wait, self._base_wait * 2 ** attempt)
        self._sleep(self._rand() * bound)

    def call(self, request, attempts):
        """Send request() through the gate; retry while it is throttled.

        :param attempts: the most sends; the last throttled answer is
            raised.
        """
        for attempt in range(attempts):
            ticket = self.enter()
            throttled = False
            try:
                return request()
            except Exception as error:
                throttled = is_throttled(error)
                if not throttled or attempt == attempts - 1:
                    raise
            finally:
                self.leave(ticket, throttled)
            self.backoff(attempt)
