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

"""One Keystone login shared by the workers of a set of credentials.

The real swiftclient and Swift are in glance/tests/unit/test_compat.py
(the swiftclient behaviour relied on) and in
glance/tests/functional/test_swift.py (logins counted at a Keystone).
"""

import threading

import testtools

from glance.scrubber.stores import swift

WORKERS = 8
WAIT = 10


class CountedLogins:
    """A login that hands out token-1, token-2, ... and can be held."""

    def __init__(self):
        self.made = 0
        self.entered = threading.Event()
        self.go = threading.Event()
        self.go.set()

    def __call__(self):
        self.made += 1
        self.entered.set()
        self.go.wait(WAIT)
        return ('http://swift/v1/AUTH_images', 'token-%d' % self.made)


def at_once(call, count=WORKERS):
    """*call()* in *count* threads started together; their results."""
    results = [None] * count
    barrier = threading.Barrier(count)

    def worker(index):
        barrier.wait(WAIT)
        results[index] = call()

    threads = [threading.Thread(target=worker, args=(index,))
               for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    return results


class TestSharedLogin(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.log_in = CountedLogins()
        self.login = swift.SharedLogin(self.log_in)

    def test_workers_asking_together_share_one_login(self):
        # The login is slow: the others arrive while it is under way.
        self.log_in.go.clear()
        threading.Timer(0.2, self.log_in.go.set).start()

        handed = at_once(self.login.credentials)

        self.assertEqual(1, self.log_in.made)
        self.assertEqual(1, self.login.logins)
        self.assertEqual({('http://swift/v1/AUTH_images', 'token-1')},
                         set(handed))

    def test_a_token_refused_to_every_worker_is_renewed_once(self):
        first = self.login.credentials()

        handed = at_once(lambda: self.login.credentials(refused=first))

        self.assertEqual(2, self.log_in.made)
        self.assertEqual({'token-2'}, {token for _url, token in handed})

    def test_a_token_refused_late_does_not_replace_a_newer_one(self):
        first = self.login.credentials()
        second = self.login.credentials(refused=first)

        # A worker that was still using the first token is refused now.
        self.assertEqual(second, self.login.credentials(refused=first))
        self.assertEqual(2, self.log_in.made)

    def test_forgotten_credentials_make_the_next_caller_log_in(self):
        first = self.login.credentials()

        self.login.forget(first)

        self.assertEqual('token-2', self.login.credentials()[1])

    def test_forgetting_older_credentials_keeps_the_current_ones(self):
        first = self.login.credentials()
        second = self.login.credentials(refused=first)

        self.login.forget(first)

        self.assertEqual(second, self.login.credentials())
        self.assertEqual(2, self.log_in.made)


class TestTokenSource(testtools.TestCase):
    """What one connection asks: a token, then another once refused."""

    def setUp(self):
        super().setUp()
        self.log_in = CountedLogins()
        self.login = swift.SharedLogin(self.log_in)

    def test_connections_of_the_same_credentials_share_the_token(self):
        sources = [swift._TokenSource(self.login) for _source in range(3)]

        self.assertEqual({'token-1'},
                         {source()[1] for source in sources})

    def test_asked_again_the_token_was_refused(self):
        # swiftclient asks again only after Swift answered 401.
        source = swift._TokenSource(self.login)
        other = swift._TokenSource(self.login)
        source()
        other()

        self.assertEqual('token-2', source()[1])
        self.assertEqual('token-2', other()[1])
        self.assertEqual(2, self.log_in.made)

    def test_a_refusal_swiftclient_did_not_retry_renews_for_the_next(self):
        source = swift._TokenSource(self.login)
        source()

        source.refused()

        self.assertEqual('token-2', swift._TokenSource(self.login)()[1])
