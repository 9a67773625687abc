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

"""StoreGate and RateCap: adaptive concurrency, retries and the cap."""

import threading

from botocore import exceptions as boto_exceptions
import testtools

from glance.scrubber.stores import gate as store_gate
from glance.tests.unit.scrubber import base


class TestIsThrottled(testtools.TestCase):

    def test_slow_down_answers_are_throttles(self):
        for error in (base.client_error('SlowDown', 503),
                      base.client_error('503', 503),
                      base.client_error('Throttling', 400),
                      base.http_error(429), base.SwiftLikeError(498),
                      base.SwiftLikeError(429),
                      base.wrapped(base.client_error('SlowDown', 503))):
            self.assertTrue(store_gate.is_throttled(error), error)

    def test_other_failures_are_not(self):
        for error in (base.client_error('NoSuchKey', 404),
                      base.client_error('AccessDenied', 403),
                      base.client_error('InternalError', 500),
                      base.http_error(500), base.SwiftLikeError(409),
                      base.wrapped(ValueError('bad')), OSError('reset')):
            self.assertFalse(store_gate.is_throttled(error), error)


class TestStoreGate(testtools.TestCase):

    def gate(self, ceiling=8, **kwargs):
        self.sleeps = []
        kwargs.setdefault('sleep', self.sleeps.append)
        kwargs.setdefault('rand', lambda: 1.0)
        return store_gate.StoreGate(ceiling, **kwargs)

    def test_it_starts_at_the_pool_size(self):
        self.assertEqual(8, self.gate(8).concurrency)

    def test_a_round_of_throttles_halves_it_once(self):
        gate = self.gate(8)
        tickets = [gate.enter() for _ in range(8)]
        for ticket in tickets:
            gate.leave(ticket, throttled=True)
        self.assertEqual(4, gate.concurrency)
        self.assertEqual(8, gate.throttled)
        # A request sent after the decrease that is throttled again
        # halves it again.
        gate.leave(gate.enter(), throttled=True)
        self.assertEqual(2, gate.concurrency)

    def test_it_never_goes_below_one(self):
        gate = self.gate(2)
        for _ in range(5):
            gate.leave(gate.enter(), throttled=True)
        self.assertEqual(1, gate.concurrency)

    def test_successes_raise_it_by_about_one_per_round(self):
        gate = self.gate(4)
        for _ in range(3):
            gate.leave(gate.enter(), throttled=True)
        self.assertEqual(1, gate.concurrency)
        gate.leave(gate.enter(), throttled=False)
        self.assertEqual(2, gate.concurrency)
        # 2 + 1/2 + 1/2.5 + 1/2.9: a round of 2, and a little more.
        for _ in range(3):
            gate.leave(gate.enter(), throttled=False)
        self.assertEqual(3, gate.concurrency)
        for _ in range(20):
            gate.leave(gate.enter(), throttled=False)
        self.assertEqual(4, gate.concurrency)

    def test_a_request_beyond_the_limit_waits_for_a_slot(self):
        gate = self.gate(1)
        first = gate.enter()
        entered = threading.Event()

        def second():
            gate.leave(gate.enter(), throttled=False)
            entered.set()

        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        self.assertFalse(entered.wait(0.2))
        gate.leave(first, throttled=False)
        self.assertTrue(entered.wait(10))
        thread.join(10)

    def test_a_throttled_request_is_sent_again_after_growing_waits(self):
        gate = self.gate(8, base_wait=0.1, max_wait=0.3)
        answers = [base.client_error('SlowDown', 503)] * 3 + ['done']

        def request():
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        self.assertEqual('done', gate.call(request, attempts=5))
        self.assertEqual([0.1, 0.2, 0.3], self.sleeps)
        self.assertEqual(3, gate.throttled)

    @staticmethod
    def always_failing(error, sent):
        def request():
            sent.append(1)
            raise error
        return request

    def test_the_last_throttled_answer_is_raised(self):
        gate = self.gate(8)
        sent = []

        self.assertRaises(boto_exceptions.ClientError, gate.call,
                          self.always_failing(
                              base.client_error('SlowDown', 503), sent),
                          attempts=3)
        self.assertEqual(3, len(sent))

    def test_other_errors_are_not_sent_again(self):
        gate = self.gate(8)
        sent = []

        self.assertRaises(boto_exceptions.ClientError, gate.call,
                          self.always_failing(
                              base.client_error('AccessDenied', 403), sent),
                          attempts=3)
        self.assertEqual(1, len(sent))
        self.assertEqual([], self.sleeps)
        self.assertEqual(8, gate.concurrency)


class TestRateCap(testtools.TestCase):

    def test_requests_are_spaced_evenly(self):
        now = [100.0]
        sleeps = []

        def sleep(seconds):
            sleeps.append(round(seconds, 6))

        cap = store_gate.RateCap(10, clock=lambda: now[0], sleep=sleep)
        for _ in range(4):
            cap.wait()
        self.assertEqual([0.1, 0.2, 0.3], sleeps)
        # Idle time is not saved up for a burst.
        now[0] += 5
        del sleeps[:]
        cap.wait()
        cap.wait()
        self.assertEqual([0.1], sleeps)
