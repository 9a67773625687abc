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

"""StoreSender: the gate, the bound, and store outages told from errors."""

import socket
import threading

from botocore import exceptions as boto_exceptions
from glance_store import exceptions as store_exceptions
from keystoneauth1 import exceptions as keystone_exceptions
import requests
import testtools

from glance.scrubber.stores import calls as store_calls
from glance.scrubber.stores import errors
from glance.scrubber.stores import gate as store_gate
from glance.scrubber.stores import sending
from glance.tests.unit.scrubber import base


class TestOutageOf(testtools.TestCase):

    def assertOutage(self, kind, error):
        outage = sending.outage_of(error)
        self.assertIsInstance(outage, kind, error)
        self.assertNotIn('\n', str(outage))

    def test_a_store_that_cannot_be_reached_is_unavailable(self):
        for error in (
                ConnectionRefusedError(111, 'Connection refused'),
                socket.gaierror(-2, 'Name or service not known'),
                boto_exceptions.EndpointConnectionError(
                    endpoint_url='http://s3'),
                boto_exceptions.ConnectTimeoutError(endpoint_url='http://s3'),
                requests.ConnectionError('refused'),
                keystone_exceptions.ConnectFailure('Keystone refused')):
            self.assertOutage(errors.StoreUnavailable, error)

    def test_a_server_error_is_unavailable(self):
        for error in (base.client_error('InternalError', 500),
                      base.client_error('SlowDown', 503),
                      base.http_error(502),
                      base.SwiftLikeError(504)):
            self.assertOutage(errors.StoreUnavailable, error)

    def test_no_answer_in_time_is_a_timeout(self):
        for error in (boto_exceptions.ReadTimeoutError(
                          endpoint_url='http://s3'),
                      requests.ReadTimeout('read timed out'),
                      TimeoutError('timed out')):
            self.assertOutage(errors.StoreTimeout, error)

    def test_an_outage_wrapped_by_glance_store_is_found(self):
        self.assertOutage(errors.StoreUnavailable, base.wrapped(
            ConnectionResetError(104, 'Connection reset by peer')))

    def test_answers_about_the_data_are_no_outage(self):
        for error in (base.client_error('AccessDenied', 403),
                      base.client_error('NoSuchKey', 404),
                      store_exceptions.NotFound(),
                      store_exceptions.InUseByStore(),
                      ValueError('a bug')):
            self.assertIsNone(sending.outage_of(error), error)


class TestStoreSender(testtools.TestCase):

    def sender(self, timeout=0):
        gate = store_gate.StoreGate(4, sleep=lambda seconds: None)
        return sending.StoreSender(
            gate, store_calls.StoreCalls('threading', timeout=timeout))

    def answers(self, *outcomes):
        """A request that raises or returns each of *outcomes* in turn."""
        left = list(outcomes)

        def request():
            outcome = left.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        return request

    def test_a_transient_throttle_is_sent_again_by_the_gate(self):
        request = self.answers(base.client_error('SlowDown', 503),
                               base.client_error('SlowDown', 503),
                               'bucket found')

        self.assertEqual('bucket found', self.sender().send('s3', request))

    def test_a_store_that_keeps_throttling_is_unavailable(self):
        request = self.answers(*[base.client_error('SlowDown', 503)] * 3)

        raised = self.assertRaises(errors.StoreUnavailable,
                                   self.sender().send, 's3', request,
                                   attempts=3)
        self.assertIn('HTTP 503', str(raised))
        self.assertIsInstance(raised.__cause__, boto_exceptions.ClientError)

    def test_a_store_that_does_not_answer_is_a_timeout_of_the_bound(self):
        release = threading.Event()
        self.addCleanup(release.set)

        raised = self.assertRaises(errors.StoreTimeout, self.sender(1).send,
                                   's3', release.wait)
        self.assertIn('scrub_store_timeout', str(raised))

    def test_other_errors_pass_on_unchanged(self):
        error = store_exceptions.NotFound()

        raised = self.assertRaises(store_exceptions.NotFound,
                                   self.sender().send, 's3',
                                   self.answers(error))
        self.assertIs(error, raised)
