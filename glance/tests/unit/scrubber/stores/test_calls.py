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

"""StoreCalls on the threading backend: bounded store calls.

The eventlet side needs a monkey patched process: the functional tests
(test_backends, test_store_timeout) run it in the real command.
"""

import threading
import time

import glance_store
from oslo_config import cfg
import testtools

from glance.scrubber.stores import calls as store_calls
from glance.scrubber.stores import errors
from glance.scrubber.stores import layout


class BoundedCallsTest(testtools.TestCase):

    def test_a_call_that_answers_in_time_gives_its_value(self):
        calls = store_calls.StoreCalls('threading', timeout=5)

        self.assertEqual(42, calls.run('s3', lambda: 42))

    def test_the_error_of_a_call_reaches_the_caller(self):
        calls = store_calls.StoreCalls('threading', timeout=5)

        def refuse():
            raise KeyError('gone')

        self.assertRaises(KeyError, calls.run, 's3', refuse)

    def test_a_call_without_an_answer_is_left_behind(self):
        calls = store_calls.StoreCalls('threading', timeout=1)
        release = threading.Event()
        self.addCleanup(release.set)
        started = time.monotonic()

        error = self.assertRaises(errors.StoreTimeout, calls.run,
                                  's3', release.wait)

        self.assertLess(time.monotonic() - started, 5)
        self.assertIn('scrub_store_timeout', str(error))
        # The next call does not wait for the stuck one.
        self.assertEqual('next', calls.run('s3', lambda: 'next'))

    def test_threads_are_reused_from_one_call_to_the_next(self):
        calls = store_calls.StoreCalls('threading', timeout=5)
        calls.run('file', lambda: None)
        before = threading.active_count()

        for _call in range(50):
            calls.run('file', lambda: None)

        self.assertLessEqual(threading.active_count(), before + 1)

    def test_without_a_bound_the_call_runs_in_the_callers_thread(self):
        calls = store_calls.StoreCalls('threading', timeout=0)

        self.assertIs(threading.current_thread(),
                      calls.run('file', threading.current_thread))


class LibraryTimeoutsTest(testtools.TestCase):

    def conf(self, **glance_store_options):
        conf = cfg.ConfigOpts()
        glance_store.register_opts(conf)
        conf([], project='glance')
        conf.set_override('stores', ['rbd'], group='glance_store')
        for name, value in glance_store_options.items():
            conf.set_override(name, value, group='glance_store')
        return conf

    def test_an_unset_rados_timeout_takes_the_store_timeout(self):
        conf = self.conf()

        store_calls.bound_library_timeouts(
            conf, layout.StoreLayout.from_config(conf), 30)

        self.assertEqual(30, conf.glance_store.rados_connect_timeout)

    def test_a_rados_timeout_the_operator_set_is_kept(self):
        conf = self.conf(rados_connect_timeout=5)

        store_calls.bound_library_timeouts(
            conf, layout.StoreLayout.from_config(conf), 30)

        self.assertEqual(5, conf.glance_store.rados_connect_timeout)

    def test_no_bound_changes_nothing(self):
        conf = self.conf()

        store_calls.bound_library_timeouts(
            conf, layout.StoreLayout.from_config(conf), 0)

        self.assertEqual(-1, conf.glance_store.rados_connect_timeout)
