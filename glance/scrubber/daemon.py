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

"""The daemon: a pass every ``wakeup_time`` seconds after the last one ended.
"""

import threading
import time

from oslo_log import log as logging
from oslo_service import service

LOG = logging.getLogger('glance.scrubber')


class Daemon(service.Service):
    """Runs a pass every ``wakeup_time`` seconds after the last one ended.

    Stopping lets the pass finish the images in flight, takes no new ones
    and ends the loop. ``request_stop()`` only asks (it is safe in a
    signal handler); ``stop()`` asks and waits.
    """

    # The sleep between passes is cut in slices this long, so that a stop
    # is noticed even where a signal does not wake the sleeper (eventlet's
    # hub).
    SLEEP_SLICE = 1.0

    def __init__(self, scrubber, wakeup_time, report_interval=None):
        # Every report_interval seconds of sleep, the scrubber's
        # report_idle() (its metrics); never when None.
        super().__init__(threads=1)
        self._scrubber = scrubber
        self._wakeup_time = wakeup_time
        self._report_interval = report_interval
        self._stopping = threading.Event()
        self._started = False
        self._finished = threading.Event()

    def start(self):
        super().start()
        self._started = True
        self.tg.add_thread(self._run_forever)

    def _run_forever(self):
        try:
            while not self._stopping.is_set():
                self._run_pass()
                self._sleep(self._wakeup_time)
            LOG.info('Scrubber daemon stopped')
        finally:
            self._finished.set()

    def _run_pass(self):
        try:
            self._scrubber.run_once()
        except Exception:  # noqa: BLE001 - one bad pass must not end it
            LOG.exception('Scrub pass failed; the next one starts in '
                          '%d seconds', self._wakeup_time)

    def _sleep(self, seconds):
        wake_at = time.monotonic() + seconds
        report_at = self._next_report()
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= report_at:
                # The backlog grows between passes too.
                self._scrubber.report_idle()
                report_at = self._next_report()
            left = wake_at - now
            if left <= 0:
                return
            self._stopping.wait(min(left, report_at - now, self.SLEEP_SLICE))

    def _next_report(self):
        if self._report_interval is None:
            return float('inf')
        return time.monotonic() + self._report_interval

    def request_stop(self, reason=None):
        """Ask the loop to end; safe in a signal handler (no logging)."""
        self._stopping.set()
        self._scrubber.stop(reason)

    def stop(self, graceful=True):
        self.request_stop()
        if self._started:
            self._finished.wait()
        super().stop(graceful=True)

    def wait(self):
        if self._started:
            self._finished.wait()
        super().wait()
