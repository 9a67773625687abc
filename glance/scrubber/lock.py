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

"""The scrub lock: a pass and a restore of one host take turns.
"""

import threading

from oslo_concurrency import lockutils

LOCK_NAME = 'glance-scrubber'
LOCK_PREFIX = 'glance-'


class ScrubLock:
    """The lock a scrub pass and ``--restore`` both hold on one host.

    Between processes it is a lock file in ``lock_path`` (oslo.concurrency);
    within one process a thread lock guards it as well, because file locks
    are held per process and would let two threads of one process in.
    It only keeps a host tidy: what makes a restore safe against any pass,
    on any host, is the claim in the database.

    Why not ``lockutils.lock(..., external=True)``: that one guards threads
    too and takes ``blocking=False``, but a blocking acquire has no
    timeout (oslo.concurrency 7.6), and a pass waiting behind a restore
    must look up every second to see whether it was asked to stop. It is
    also only a context manager, keys its thread lock by name rather than
    by lock file, and drops the file lock when
    ``[oslo_concurrency] disable_process_locking`` is set, which would let
    a restore and a pass of two processes run together.
    """

    _thread_locks = {}
    _registry_lock = threading.Lock()

    def __init__(self, lock_path):
        self._file_lock = lockutils.external_lock(
            LOCK_NAME, lock_file_prefix=LOCK_PREFIX, lock_path=lock_path)
        self.path = self._file_lock.path
        with self._registry_lock:
            self._thread_lock = self._thread_locks.setdefault(
                self.path, threading.Lock())

    def acquire(self, blocking=True, timeout=None):
        """Take the lock; False when it is held (or *timeout* passed)."""
        thread_timeout = timeout if blocking and timeout is not None else -1
        if not self._thread_lock.acquire(blocking, thread_timeout):
            return False
        if self._file_lock.acquire(blocking=blocking, timeout=timeout):
            return True
        self._thread_lock.release()
        return False

    def release(self):
        self._file_lock.release()
        self._thread_lock.release()
