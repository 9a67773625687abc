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

"""Watching a scrub pass from the thread that started it.

A pass sends its statements to the database from its own thread. When the
server stops answering without closing the connection (a frozen server, a
network that drops everything), a statement waits in the database driver,
often in C: the pass logs nothing more, and were it the main thread, no
signal handler would run until the server answered. So the pass runs in a
thread of its own, and the thread that started it (the main one, where
SIGTERM and SIGINT land) watches it:

* while the pass has waited on one database call for longer than the
  report interval, a warning says so, once per interval;
* once a stop is requested, a pass that is still waiting on the database
  STOP_GRACE seconds later is left behind (its thread is a daemon: the
  process exits without it) and the watcher ends the pass in its place.

Leaving the pass behind loses nothing: the images it claimed and did not
record stay claimed, as after a crash, and a later pass takes them over.
"""

import threading
import time

from oslo_log import log as logging

from glance.db.sqlalchemy import api as db_api

LOG = logging.getLogger(__name__)

STOP_GRACE = 10.0  # seconds a stopping pass may wait on the database


def run_watched(run, stop_requested, report_interval, grace=STOP_GRACE,
                call_under_way=db_api.longest_call_under_way):
    """Run run() in a thread of its own and wait for its end here.

    :param stop_requested: an Event set when the pass is asked to stop.
    :param report_interval: seconds between two warnings of a wait.
    :param call_under_way: returns (name, seconds) of the database call
        the pass waits on, or None.
    :returns: (True, run()'s result), or (False, None) when the pass was
        left behind.
    """
    outcome = {}

    def target():
        try:
            outcome['result'] = run()
        except BaseException as error:  # noqa: B036 - raised again below
            outcome['error'] = error

    thread = threading.Thread(target=target, name='scrub-pass', daemon=True)
    thread.start()
    watcher = _Watcher(report_interval, grace)
    while thread.is_alive():
        # A timed join: signal handlers run meanwhile.
        thread.join(min(1.0, report_interval))
        if thread.is_alive() and watcher.gives_up(
                call_under_way(), stop_requested.is_set()):
            return False, None
    if 'error' in outcome:
        raise outcome['error']
    return True, outcome['result']


class _Watcher:

    def __init__(self, report_interval, grace, clock=time.monotonic):
        self._interval = report_interval
        self._grace = grace
        self._clock = clock
        self._next_warning = clock() + report_interval
        self._stop_seen = None

    def gives_up(self, call, stopping):
        """Warn of a long database wait; True to leave the pass behind."""
        now = self._clock()
        if stopping and self._stop_seen is None:
            self._stop_seen = now
        if call is None:
            return False
        name, seconds = call
        if seconds >= self._interval and now >= self._next_warning:
            self._next_warning = now + self._interval
            LOG.warning('Scrub pass waiting for the database for %(seconds)d '
                        's (%(call)s): it does not answer', {
                            'seconds': seconds, 'call': name})
        if self._stop_seen is None:
            return False
        waited_since_stop = min(seconds, now - self._stop_seen)
        if waited_since_stop < self._grace:
            return False
        LOG.error('Scrub pass left behind: stop requested, and the database '
                  'has not answered %(call)s for %(seconds)d s; what it '
                  'claimed and did not record is finished by a later pass',
                  {'call': name, 'seconds': seconds})
        return True
