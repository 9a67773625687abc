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

"""Each store call of a worker, bounded in time on either backend."""

import functools
import queue
import threading

from glance import _compat
from glance.i18n import _
from glance.scrubber.stores import errors
from glance.scrubber.stores import layout

# The stores whose client library blocks in C without yielding to
# eventlet's hub (librbd and librados release the GIL, but a green thread
# in them holds the hub: the other workers and the heartbeat stop). On the
# eventlet backend their calls run in eventlet's pool of native threads.
# S3, Swift, HTTP and Cinder talk through Python sockets that monkey
# patching makes green: they stay in the hub, where they overlap already.
NATIVE_BLOCKING_SCHEMES = frozenset(['rbd'])
# eventlet's default number of native threads (EVENTLET_THREADPOOL_SIZE).
TPOOL_THREADS = 20


class StoreCalls:
    """Runs each store call of a worker, bounded in time.

    The one place that knows how a store call behaves on each concurrency
    backend:

    * threading: the call runs in the worker's thread; with a bound, in a
      daemon thread of its own that the worker waits for at most
      *timeout* seconds;
    * eventlet: calls to the stores of NATIVE_BLOCKING_SCHEMES go through
      eventlet.tpool, the others run in the green thread; the bound is an
      eventlet.Timeout.

    A call that outlives the bound is left running (no Python thread can
    be interrupted inside a C library) and StoreTimeout is raised; the
    caller must treat the data as possibly deleted later.

    :param backend: ``eventlet`` or ``threading``.
    :param timeout: ``scrub_store_timeout`` in seconds; 0 for no bound.
    :param workers: the most calls at once (``scrub_pool_size``): enough
        native threads are made for them on the eventlet backend.
    """

    def __init__(self, backend='threading', timeout=0, workers=1):
        self.timeout = timeout
        self._green = backend == 'eventlet'
        self._threads = _CallThreads()
        if self._green:
            from eventlet import tpool
            # Read when the pool starts, at the first call.
            tpool.set_num_threads(max(TPOOL_THREADS, workers))

    def run(self, scheme, call):
        """call(), bounded; *scheme* is the URL scheme of its location.

        :raises StoreTimeout: no answer within the bound.
        """
        if self._green:
            return self._run_green(scheme in NATIVE_BLOCKING_SCHEMES, call)
        if not self.timeout:
            return call()
        return self._run_in_thread(call)

    def _run_in_thread(self, call):
        pending = self._threads.submit(call)
        if not pending.done.wait(self.timeout):
            raise self._timed_out()
        return pending.result()

    def _run_green(self, native, call):
        import eventlet
        from eventlet import tpool
        if native:
            call = functools.partial(tpool.execute, call)
        if not self.timeout:
            return call()
        timer = eventlet.Timeout(self.timeout)
        try:
            return call()
        except eventlet.Timeout as fired:
            if fired is not timer:
                raise
            if native:
                # This thread may never return: the process must still
                # end.
                _compat.let_exit_leave_native_threads()
            raise self._timed_out()
        finally:
            timer.cancel()

    def _timed_out(self):
        return errors.StoreTimeout(
            _('the store gave no answer within %d seconds '
              '(scrub_store_timeout)') % self.timeout)


class _PendingCall:
    """One call handed to a _CallThreads thread, and its result."""

    def __init__(self, call):
        self._call = call
        self.done = threading.Event()
        self._value = self._error = None

    def run(self):
        try:
            self._value = self._call()
        except BaseException as error:  # noqa: BLE001 - handed over
            self._error = error
        finally:
            self.done.set()

    def result(self):
        if self._error is not None:
            raise self._error
        return self._value


class _CallThreads:
    """Daemon threads that run bounded store calls, kept for later calls.

    A new thread per call would cost more than a file store delete. A
    thread stuck in a store stays out of the pool; being a daemon, it
    cannot keep the process from exiting once the pass is over.
    """

    def __init__(self):
        self._calls = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, call):
        pending = _PendingCall(call)
        with self._lock:
            spare = self._idle > 0
            if spare:
                self._idle -= 1
        if not spare:
            threading.Thread(target=self._serve, name='store-call',
                             daemon=True).start()
        self._calls.put(pending)
        return pending

    def _serve(self):
        while True:
            self._calls.get().run()
            with self._lock:
                self._idle += 1


def bound_library_timeouts(conf, store_layout, seconds):
    """Give glance_store's own store timeouts a default of *seconds*.

    Only where the operator left them unset: ``rados_connect_timeout``
    (glance_store applies it to the RADOS connection and to each monitor
    and OSD operation, which librados otherwise waits for without end).
    A call this scrubber gave up on then ends by itself instead of
    holding a thread for the life of the process. Nothing is changed when
    *seconds* is 0.
    """
    if not seconds:
        return
    for group in store_layout.option_groups(layout.RBD_TYPE):
        if conf[group].rados_connect_timeout < 0:
            conf.set_default('rados_connect_timeout', seconds, group=group)
