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

import os
import threading

from oslo_concurrency import lockutils

from glance.i18n import _

LOCK_NAME = 'glance-scrubber'
LOCK_PREFIX = 'glance-'
# What holds the lock, as the holder names itself.
PASS = 'pass'
RESTORE = 'restore'


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

    The holder writes what it is (a pass or a restore) and its process id
    beside the lock file, so that the one refused can say what holds it.

    :param role: PASS or RESTORE: what takes the lock.
    """

    _thread_locks = {}
    _registry_lock = threading.Lock()

    def __init__(self, lock_path, role=PASS):
        self._file_lock = lockutils.external_lock(
            LOCK_NAME, lock_file_prefix=LOCK_PREFIX, lock_path=lock_path)
        # fasteners keeps the path as bytes; an operator reads text.
        self.path = os.fsdecode(self._file_lock.path)
        self._role = role
        self._holder_file = self.path + '.holder'
        with self._registry_lock:
            self._thread_lock = self._thread_locks.setdefault(
                self.path, threading.Lock())

    def acquire(self, blocking=True, timeout=None):
        """Take the lock; False when it is held (or *timeout* passed)."""
        thread_timeout = timeout if blocking and timeout is not None else -1
        if not self._thread_lock.acquire(blocking, thread_timeout):
            return False
        if self._file_lock.acquire(blocking=blocking, timeout=timeout):
            self._say_held()
            return True
        self._thread_lock.release()
        return False

    def release(self):
        self._forget_held()
        self._file_lock.release()
        self._thread_lock.release()

    def holder(self):
        """What holds the lock, in words (for a refusal or a wait)."""
        try:
            with open(self._holder_file, encoding='utf-8') as said:
                role, _sep, pid = said.read().partition(' ')
        except OSError:
            role = pid = None
        if role == RESTORE:
            return _('a restore (process %s)') % pid.strip()
        if role == PASS:
            return _('a scrub pass (process %s)') % pid.strip()
        return _('another glance-scrubber')

    def _say_held(self):
        try:
            with open(self._holder_file, 'w', encoding='utf-8') as holder:
                holder.write('%s %d' % (self._role, os.getpid()))
        except OSError:
            # Only words for a refused command: never a reason to fail.
            pass

    def _forget_held(self):
        try:
            os.unlink(self._holder_file)
        except OSError:
            pass
