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

"""The pass watcher: warnings of a stuck database, and leaving it behind.

The functional test_database_outages runs it against a frozen MariaDB and
PostgreSQL; here, its decisions on a clock of the test's.
"""

import threading

import fixtures
import testtools

from glance.scrubber import pass_watch


class TestWatcher(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.now = 100.0
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='glance.scrubber.pass_watch'))
        self.watcher = pass_watch._Watcher(report_interval=5, grace=10,
                                           clock=lambda: self.now)

    def at(self, seconds, call, stopping=False):
        self.now = 100.0 + seconds
        return self.watcher.gives_up(call, stopping)

    def warnings(self):
        return self.logs.output.count('waiting for the database')

    def test_a_long_wait_is_said_once_per_interval(self):
        self.assertFalse(self.at(4, ('claim_images', 4)))
        self.assertEqual(0, self.warnings())
        self.assertFalse(self.at(5, ('claim_images', 5)))
        self.assertFalse(self.at(6, ('claim_images', 6)))
        self.assertEqual(1, self.warnings())
        self.assertFalse(self.at(10, ('claim_images', 10)))
        self.assertEqual(2, self.warnings())
        self.assertIn('claim_images', self.logs.output)

    def test_without_a_stop_the_pass_is_waited_for(self):
        self.assertFalse(self.at(600, ('record_scrubs', 600)))

    def test_a_stopped_pass_stuck_on_the_database_is_left_behind(self):
        self.assertFalse(self.at(1, ('record_scrubs', 30), stopping=True))
        self.assertFalse(self.at(10, ('record_scrubs', 39), stopping=True))
        self.assertTrue(self.at(11, ('record_scrubs', 40), stopping=True))
        self.assertIn('left behind', self.logs.output)

    def test_a_database_call_begun_after_the_stop_has_its_grace(self):
        self.assertFalse(self.at(1, None, stopping=True))
        self.assertFalse(self.at(20, ('record_scrubs', 9), stopping=True))
        self.assertTrue(self.at(21, ('record_scrubs', 10), stopping=True))

    def test_a_stopped_pass_busy_with_its_stores_is_waited_for(self):
        self.assertFalse(self.at(1, None, stopping=True))
        self.assertFalse(self.at(600, None, stopping=True))


class TestRunWatched(testtools.TestCase):

    def test_the_result_of_a_pass_that_ends(self):
        self.assertEqual((True, 'summary'), pass_watch.run_watched(
            lambda: 'summary', threading.Event(), 1,
            call_under_way=lambda: None))

    def test_an_error_of_the_pass_is_raised_here(self):
        def fail():
            raise ValueError('pass broke')

        self.assertRaises(ValueError, pass_watch.run_watched, fail,
                          threading.Event(), 1, call_under_way=lambda: None)

    def test_a_stuck_pass_is_left_behind_once_stopped(self):
        stuck = threading.Event()
        stop = threading.Event()
        stop.set()
        self.addCleanup(stuck.set)

        finished, result = pass_watch.run_watched(
            stuck.wait, stop, 0.1, grace=0.2,
            call_under_way=lambda: ('claim_images', 5.0))

        self.assertEqual((False, None), (finished, result))
