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

"""The daemon: passes on a schedule, never overlapping, stopping cleanly."""

import threading
import time
import traceback

import fixtures
import testtools

from glance import scrubber


class FakeScrubber:
    """Stands for Scrubber: records when each pass ran, and its stack."""

    def __init__(self, duration=0.0, fail_passes=(), passes_wanted=None):
        self.duration = duration
        self.fail_passes = set(fail_passes)
        self.passes_wanted = passes_wanted
        self.runs = []
        self.stack_depths = []
        self.running = 0
        self.overlapped = False
        self.enough = threading.Event()
        self.stopped = threading.Event()

    def run_once(self):
        self.running += 1
        self.overlapped = self.overlapped or self.running > 1
        started = time.monotonic()
        self.stack_depths.append(len(traceback.extract_stack()))
        try:
            time.sleep(self.duration)
            if len(self.runs) in self.fail_passes:
                raise RuntimeError('pass %d blew up' % len(self.runs))
            return scrubber.Summary()
        finally:
            self.runs.append((started, time.monotonic()))
            self.running -= 1
            if self.passes_wanted and len(self.runs) >= self.passes_wanted:
                self.enough.set()

    def stop(self, reason=None):
        self.stopped.set()


class TestDaemon(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='glance.scrubber', level='INFO'))

    def run_daemon(self, fake, wakeup_time, timeout=30):
        daemon = scrubber.Daemon(fake, wakeup_time)
        daemon.start()
        self.assertTrue(fake.enough.wait(timeout), 'too few passes ran')
        daemon.stop()
        daemon.wait()
        return daemon

    def test_next_pass_starts_wakeup_time_after_the_last_one_ended(self):
        fake = FakeScrubber(duration=0.3, passes_wanted=3)

        self.run_daemon(fake, wakeup_time=0.2)

        self.assertFalse(fake.overlapped)
        for (_s, ended), (started, _e) in zip(fake.runs, fake.runs[1:]):
            self.assertGreaterEqual(started - ended, 0.19)

    def test_wakeup_time_zero_runs_pass_after_pass_without_recursing(self):
        # Upstream schedules each pass from the previous one and ends in a
        # RecursionError with wakeup_time = 0; here the stack stays flat.
        fake = FakeScrubber(passes_wanted=3000)

        self.run_daemon(fake, wakeup_time=0)

        self.assertGreaterEqual(len(fake.runs), 3000)
        self.assertEqual(1, len(set(fake.stack_depths)))
        self.assertFalse(fake.overlapped)

    def test_a_failing_pass_is_logged_and_the_daemon_goes_on(self):
        fake = FakeScrubber(fail_passes={0, 2}, passes_wanted=4)

        self.run_daemon(fake, wakeup_time=0)

        self.assertGreaterEqual(len(fake.runs), 4)
        self.assertIn('Scrub pass failed', self.logs.output)
        self.assertIn('RuntimeError: pass 2 blew up', self.logs.output)

    def test_stop_ends_the_loop_after_the_pass_in_progress(self):
        fake = FakeScrubber(duration=0.5, passes_wanted=1)
        daemon = scrubber.Daemon(fake, wakeup_time=3600)
        daemon.start()
        time.sleep(0.1)

        daemon.stop()
        daemon.wait()

        self.assertTrue(fake.stopped.is_set())
        self.assertEqual(1, len(fake.runs))
        self.assertEqual(0, fake.running)

    def test_stop_during_the_sleep_between_passes_is_prompt(self):
        fake = FakeScrubber(passes_wanted=1)
        daemon = scrubber.Daemon(fake, wakeup_time=3600)
        daemon.start()
        self.assertTrue(fake.enough.wait(10))
        asked = time.monotonic()

        daemon.stop()
        daemon.wait()

        self.assertLess(time.monotonic() - asked, 5)
        self.assertEqual(1, len(fake.runs))

    def test_stopping_a_daemon_that_never_started_returns(self):
        fake = FakeScrubber()
        daemon = scrubber.Daemon(fake, wakeup_time=1)
        returned = threading.Event()

        def stop_and_wait():
            daemon.stop()
            daemon.wait()
            returned.set()

        # In a thread of its own: a stop that waited for a loop that never
        # ran would hang the test run instead of failing this test.
        threading.Thread(target=stop_and_wait, daemon=True).start()

        self.assertTrue(returned.wait(10), 'stop() or wait() never returned')
        self.assertTrue(fake.stopped.is_set())
        self.assertEqual([], fake.runs)
