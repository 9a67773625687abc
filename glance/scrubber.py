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

"""The image scrubber: reclaims the data of pending_delete images.

glance-api, with ``delayed_delete`` on, leaves a deleted image in
``pending_delete`` with its data still in the store. A scrub pass reads
the eligible images from the database (the queue), hands each image to a
worker through a futurist executor (the pass), and records every outcome:

    database -> jobs -> executor -> outcomes -> database and the summary

Images are scrubbed in parallel, up to ``scrub_pool_size`` at once; the
locations of one image are deleted one after another, in order. The
daemon runs a pass every ``wakeup_time`` seconds after the previous one
ended, so passes never overlap.
"""

import dataclasses
import datetime
import enum
import threading
import time

import futurist
from futurist import waiters
import glance_store
from glance_store import exceptions as store_exceptions
from oslo_concurrency import lockutils
from oslo_config import cfg
from oslo_db import exception as db_exception
from oslo_log import log as logging
from oslo_service import service
from oslo_utils import timeutils
from oslo_utils import units
from sqlalchemy import exc as sa_exc

from glance.common import crypt
from glance.common import exception
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _

LOG = logging.getLogger(__name__)

LOCK_NAME = 'glance-scrubber'
LOCK_PREFIX = 'glance-'

scrubber_opts = [
    cfg.IntOpt('scrub_time', default=0, min=0, help=_("""
The time, in seconds, to keep an image's data after the image is deleted.

With ``delayed_delete`` on, a deleted image becomes eligible for
scrubbing this many seconds after its deletion; until then its data stays
in the store and an operator can still bring it back with
``glance-scrubber --restore``.

Possible values:
    * 0 (scrub as soon as the scrubber runs) or any positive number

Related options:
    * delayed_delete
    * wakeup_time
""")),
    cfg.IntOpt('scrub_pool_size', default=1, min=1, help=_("""
The number of images scrubbed at the same time.

A scrub pass hands each eligible image to a pool of this many workers; the
locations of one image are still deleted one after another. 1 scrubs
images one at a time, in a stable order. A larger pool keeps up with a
long backlog when each delete waits on the store (object stores, remote
back ends), at the cost of that many requests in flight against the store
at once: size it against the store's rate limits.

The workers are green threads under the eventlet backend and native
threads under the threading backend; the backend is chosen with the
``OS_GLANCE_SCRUBBER_BACKEND`` environment variable.

Possible values:
    * Any positive integer; 1 means serial scrubbing

Related options:
    * delayed_delete
    * wakeup_time
""")),
    cfg.IntOpt('wakeup_time', default=300, min=0, help=_("""
The time, in seconds, the scrubber daemon sleeps between two passes.

The daemon starts its next pass this long after the previous pass ended,
so passes never overlap however long one takes. It applies to
``glance-scrubber --daemon`` only; run once (the default), the scrubber
does a single pass and exits.

Possible values:
    * 0 (start the next pass at once) or any positive number

Related options:
    * daemon
    * scrub_time
""")),
]

scrubber_cmd_cli_opts = [
    cfg.BoolOpt('daemon', short='D', default=False, help=_("""
Run the scrubber as a daemon.

By default the scrubber does one pass and exits, for cron or a systemd
timer; with this option it runs a pass every ``wakeup_time`` seconds
until it receives SIGTERM or SIGINT.

Possible values:
    * True
    * False

Related options:
    * wakeup_time
    * restore
""")),
    cfg.StrOpt('restore', metavar='IMAGE_ID', help=_("""
Restore an image that is waiting to be scrubbed.

Brings the pending_delete image IMAGE_ID back to active together with its
locations, so that it can be downloaded again, and exits. Only an image in
pending_delete can be restored; the command refuses while a scrub pass is
running. It cannot be combined with ``--daemon``.

Possible values:
    * An image ID

Related options:
    * daemon
""")),
]


def register_opts(conf):
    conf.register_opts(scrubber_opts)


def register_cli_opts(conf):
    conf.register_cli_opts(scrubber_cmd_cli_opts)


# --- outcomes ---------------------------------------------------------------


class Result(enum.Enum):
    SCRUBBED = 'scrubbed'
    FAILED = 'failed'
    SKIPPED = 'skipped'


@dataclasses.dataclass
class Outcome:
    """What the worker did with one image; crosses the executor boundary."""

    image_id: str
    result: Result
    deleted_location_ids: list = dataclasses.field(default_factory=list)
    bytes_reclaimed: int = 0
    reason: str = ''


@dataclasses.dataclass
class Summary:
    """The counts of one pass, logged as its closing line."""

    found: int = 0
    scrubbed: int = 0
    failed: int = 0
    skipped: int = 0
    locations_deleted: int = 0
    bytes_reclaimed: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self):
        return self.scrubbed / self.seconds if self.seconds else 0.0

    def add(self, outcome):
        if outcome.result is Result.SCRUBBED:
            self.scrubbed += 1
        elif outcome.result is Result.FAILED:
            self.failed += 1
        else:
            self.skipped += 1
        self.locations_deleted += len(outcome.deleted_location_ids)
        self.bytes_reclaimed += outcome.bytes_reclaimed

    def describe(self):
        return ('found=%d scrubbed=%d failed=%d skipped=%d '
                'locations_deleted=%d bytes_reclaimed=%d seconds=%.2f '
                'images_per_second=%.1f' % (
                    self.found, self.scrubbed, self.failed, self.skipped,
                    self.locations_deleted, self.bytes_reclaimed,
                    self.seconds, self.images_per_second))


# --- the store side ---------------------------------------------------------


class LocationError(Exception):
    """A location's data could not be deleted; its image fails."""


class StoreDeleter:
    """Deletes the data of one location through glance_store.

    :param context: the admin request context handed to the drivers.
    :param multistore: delete from the backend named in the location's
        ``store`` metadata (``enabled_backends`` is set); otherwise
        the single store picks the driver from the URL scheme.
    :param encryption_key: ``metadata_encryption_key``, or None.
    :param s3_stores: a SharedS3Stores serving the S3 locations, or None
        to leave every location to glance_store's own helpers.
    """

    def __init__(self, context, multistore=False, encryption_key=None,
                 s3_stores=None):
        self._context = context
        self._multistore = multistore
        self._encryption_key = encryption_key
        self._s3_stores = s3_stores

    def url_of(self, location):
        if not self._encryption_key:
            return location.url
        try:
            return crypt.urlsafe_decrypt(self._encryption_key, location.url)
        except crypt.DecryptionError as error:
            raise LocationError(_('cannot decrypt location %(id)s: '
                                  '%(error)s') % {'id': location.id,
                                                  'error': error})

    def _backend_of(self, location):
        try:
            return location.store_name()
        except ValueError as error:
            raise LocationError(_('cannot read the metadata of location '
                                  '%(id)s: %(error)s') % {
                'id': location.id, 'error': error})

    def delete(self, location):
        """Delete a location's data.

        :returns: True when data was deleted, False when the store did not
            have it (already gone counts as deleted).
        :raises LocationError: the data may still be there.
        """
        url = self.url_of(location)
        backend = self._backend_of(location) if self._multistore else None
        try:
            self._delete_url(url, backend)
        except store_exceptions.NotFound:
            return False
        except (store_exceptions.GlanceStoreException,
                store_exceptions.BackendException) as error:
            raise LocationError(_('store refused to delete location '
                                  '%(id)s: %(error)s') % {
                'id': location.id, 'error': _one_line(error)})
        return True

    def _delete_url(self, url, backend):
        if self._s3_stores and self._s3_stores.handles(url, backend):
            self._s3_stores.delete(url, backend, self._context)
            return
        if self._multistore:
            glance_store.delete(url, backend, context=self._context)
        else:
            glance_store.delete_from_backend(url, context=self._context)


def _one_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# --- the worker -------------------------------------------------------------


class Worker:
    """Scrubs one image: deletes its locations serially, in order.

    It never raises: every outcome, failures included, is returned, and
    nothing is written to the database here (the pass records outcomes).
    The database connections it keeps between images are given back by
    release(), which the pass calls once its images are all done.
    """

    def __init__(self, deleter):
        self._deleter = deleter
        self._statuses = db_api.StatusReader()

    def release(self):
        """Give back the database connections kept between images."""
        self._statuses.release()

    def __call__(self, job):
        try:
            return self._scrub(job)
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            LOG.exception('Scrubbing image %(id)s failed unexpectedly',
                          {'id': job.id})
            return Outcome(job.id, Result.FAILED,
                           reason=_('unexpected error: %s') %
                           _one_line(error))

    def _scrub(self, job):
        try:
            pending = self._still_pending_delete(job.id)
        except (db_exception.DBError, sa_exc.SQLAlchemyError) as error:
            return Outcome(job.id, Result.FAILED,
                           reason=_('cannot re-read its status, nothing '
                                    'deleted: %s') % _one_line(error))
        if not pending:
            return Outcome(job.id, Result.SKIPPED,
                           reason=_('no longer pending_delete'))
        outcome = Outcome(job.id, Result.SCRUBBED)
        for location in job.locations:
            try:
                found = self._deleter.delete(location)
            except LocationError as error:
                outcome.result = Result.FAILED
                outcome.reason = str(error)
                return outcome
            outcome.deleted_location_ids.append(location.id)
            if found:
                outcome.bytes_reclaimed += job.size
        return outcome

    def _still_pending_delete(self, image_id):
        # Re-read right before deleting: an image restored since the page
        # was read must keep its data.
        return self._statuses.status(image_id) == db_api.PENDING_DELETE


# --- the queue --------------------------------------------------------------


class Queue:
    """The eligible images, read page by page from the database."""

    def __init__(self, context, scrub_time, page_size):
        self._context = context
        self._scrub_time = scrub_time
        self._page_size = page_size

    def __iter__(self):
        deleted_before = (timeutils.utcnow() -
                          datetime.timedelta(seconds=self._scrub_time))
        marker = None
        while True:
            page = db_api.list_pending_delete_images(
                self._context, deleted_before, marker=marker,
                limit=self._page_size)
            yield from page
            if len(page) < self._page_size:
                return
            marker = page[-1].id


# --- the pass ---------------------------------------------------------------


class Executors:
    """Makes the executor of a pass for the process's concurrency backend.

    eventlet: ``futurist.GreenThreadPoolExecutor`` (the process is monkey
    patched at start); threading: ``futurist.ThreadPoolExecutor``.
    """

    GREEN = 'eventlet'
    NATIVE = 'threading'

    def __init__(self, backend):
        if backend not in (self.GREEN, self.NATIVE):
            raise ValueError(backend)
        self.backend = backend

    def __call__(self, workers):
        if self.backend == self.GREEN:
            return futurist.GreenThreadPoolExecutor(max_workers=workers)
        return futurist.ThreadPoolExecutor(max_workers=workers)


class Scrubber:
    """Runs scrub passes: streams the queue through a bounded executor.

    :param context: admin request context.
    :param worker: a Worker: scrubs one image when called, returning an
        Outcome; release() is called at the end of each pass.
    :param executors: makes the executor of a pass (see Executors).
    :param pool_size: ``scrub_pool_size``, images scrubbed at once.
    :param scrub_time: ``scrub_time``, seconds an image waits.
    :param lock_path: directory of the lock shared with --restore.
    :param report_interval: seconds between progress lines in a pass.
    """

    # Jobs handed to the executor and not yet finished, per worker: enough
    # to keep every worker busy while the pass collects finished ones.
    IN_FLIGHT_PER_WORKER = 2

    def __init__(self, context, worker, executors, pool_size, scrub_time,
                 lock_path, report_interval=60.0, page_size=None):
        self._context = context
        self._worker = worker
        self._executors = executors
        self.pool_size = pool_size
        self.max_in_flight = pool_size * self.IN_FLIGHT_PER_WORKER
        self._queue = Queue(context, scrub_time,
                            page_size or max(100, self.max_in_flight))
        self._lock_path = lock_path
        self._report_interval = report_interval
        self._stopping = threading.Event()

    def stop(self):
        """Stop taking new images; the images in flight are finished."""
        self._stopping.set()

    @property
    def stopping(self):
        return self._stopping.is_set()

    def run_once(self):
        """Run one pass under the scrub lock and return its Summary."""
        lock = ScrubLock(self._lock_path)
        while not lock.acquire(blocking=True, timeout=1):
            if self.stopping:
                return Summary()
            LOG.info('Waiting for the scrub lock held by a restore or '
                     'another scrub pass')
        try:
            return self._run_pass()
        finally:
            lock.release()

    def _run_pass(self):
        summary = Summary()
        started = time.monotonic()
        progress = _Progress(self._report_interval, started)
        recorder = _Recorder(self._context, summary)
        LOG.info('Scrub pass starting: %(size)d at once on %(backend)s',
                 {'size': self.pool_size,
                  'backend': self._executors.backend})
        in_flight = set()
        executor = self._executors(self.pool_size)
        try:
            for job in self._queue:
                if self.stopping:
                    LOG.info('Stop requested: taking no more images')
                    break
                while len(in_flight) >= self.max_in_flight:
                    self._collect(in_flight, recorder, progress)
                summary.found += 1
                in_flight.add(executor.submit(self._worker, job))
        finally:
            # However the loop ended, every image handed out is waited for
            # and recorded before the pass returns.
            while in_flight:
                self._collect(in_flight, recorder, progress)
            recorder.flush()
            # The workers are idle now: no need to wait for their threads
            # to notice the shutdown.
            executor.shutdown(wait=False)
            self._worker.release()
        summary.seconds = time.monotonic() - started
        LOG.info('Scrub pass summary: %s', summary.describe())
        return summary

    def _collect(self, in_flight, recorder, progress):
        """Wait for some job to finish and hand it to the recorder."""
        timeout = min(progress.due_in(), recorder.due_in())
        done, _pending = waiters.wait_for_any(in_flight, timeout=timeout)
        for future in done:
            in_flight.discard(future)
            recorder.add(future.result())
        recorder.flush_if_due()
        progress.maybe_report(recorder.summary, len(in_flight))


class _Recorder:
    """Writes outcomes to the database in batches, and counts them.

    Recording a batch in one transaction costs a few statements instead of
    a few per image. An outcome waits at most MAX_WAIT seconds or until
    BATCH outcomes are waiting. Until it is written its image stays
    pending_delete: if the process dies meanwhile, the next pass finds the
    data gone (not found counts as deleted) and finishes the image.
    """

    BATCH = 100
    MAX_WAIT = 1.0

    def __init__(self, context, summary):
        self._context = context
        self.summary = summary
        self._waiting = []
        self._oldest = None

    def add(self, outcome):
        if not self._waiting:
            self._oldest = time.monotonic()
        self._waiting.append(outcome)

    def due_in(self):
        if not self._waiting:
            return self.MAX_WAIT
        return max(0.0, self._oldest + self.MAX_WAIT - time.monotonic())

    def flush_if_due(self):
        if len(self._waiting) >= self.BATCH or (
                self._waiting and self.due_in() == 0.0):
            self.flush()

    def flush(self):
        outcomes, self._waiting = self._waiting, []
        if not outcomes:
            return
        try:
            finished = db_api.record_scrubs(self._context, [
                db_api.ScrubRecord(
                    outcome.image_id, tuple(outcome.deleted_location_ids),
                    image_done=outcome.result is Result.SCRUBBED)
                for outcome in outcomes])
        except (db_exception.DBError, sa_exc.SQLAlchemyError) as error:
            # oslo.db's retries gave up: the data is gone but the record is
            # not; the images stay pending_delete and the next pass
            # finishes them.
            finished = set()
            for outcome in outcomes:
                _unrecorded(outcome, error)
        for outcome in outcomes:
            if outcome.result is Result.SCRUBBED and \
                    outcome.image_id not in finished:
                outcome.result = Result.SKIPPED
                outcome.reason = _('restored or finished by someone else '
                                   'while its data was deleted')
            _log_outcome(outcome)
            self.summary.add(outcome)


def _unrecorded(outcome, error):
    LOG.error('Image %(id)s: could not record the scrub, the next pass '
              'finishes it: %(error)s',
              {'id': outcome.image_id, 'error': _one_line(error)})
    outcome.result = Result.FAILED
    outcome.reason = _one_line(error)


def _log_outcome(outcome):
    if outcome.result is Result.FAILED:
        LOG.error('Image %(id)s not scrubbed, left pending_delete for the '
                  'next pass: %(reason)s',
                  {'id': outcome.image_id, 'reason': outcome.reason})
    elif outcome.result is Result.SKIPPED:
        LOG.info('Image %(id)s skipped: %(reason)s',
                 {'id': outcome.image_id, 'reason': outcome.reason})
    else:
        LOG.debug('Image %(id)s scrubbed: %(count)d locations deleted',
                  {'id': outcome.image_id,
                   'count': len(outcome.deleted_location_ids)})


class _Progress:
    """Logs a progress line every *interval* seconds during a pass."""

    def __init__(self, interval, started):
        self._interval = interval
        self._started = started
        self._next = started + interval

    def due_in(self):
        return max(0.0, self._next - time.monotonic())

    def maybe_report(self, summary, in_flight):
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        elapsed = now - self._started
        LOG.info('Scrub pass in progress: %(found)d found, %(scrubbed)d '
                 'scrubbed, %(failed)d failed, %(skipped)d skipped, '
                 '%(in_flight)d in flight, %(mib).1f MiB reclaimed in '
                 '%(elapsed).0f s',
                 {'found': summary.found, 'scrubbed': summary.scrubbed,
                  'failed': summary.failed, 'skipped': summary.skipped,
                  'in_flight': in_flight,
                  'mib': summary.bytes_reclaimed / units.Mi,
                  'elapsed': elapsed})


class ScrubLock:
    """The lock a scrub pass and ``--restore`` both hold.

    Between processes it is a lock file in ``lock_path`` (oslo.concurrency);
    within one process a thread lock guards it as well, because file locks
    are held per process and would let two threads of one process in.
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


# --- restore ----------------------------------------------------------------


def restore(context, image_id, lock_path):
    """Restore a pending_delete image and its locations to active.

    :returns: the number of locations restored.
    :raises ScrubberBusy: a scrub pass holds the lock.
    :raises NotFound, Conflict: see db_api.restore_image.
    """
    lock = ScrubLock(lock_path)
    if not lock.acquire(blocking=False):
        raise exception.ScrubberBusy(lock=lock.path)
    try:
        return db_api.restore_image(context, image_id)
    finally:
        lock.release()


# --- the daemon -------------------------------------------------------------


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

    def __init__(self, scrubber, wakeup_time):
        super().__init__(threads=1)
        self._scrubber = scrubber
        self._wakeup_time = wakeup_time
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
        while not self._stopping.is_set():
            left = wake_at - time.monotonic()
            if left <= 0:
                return
            self._stopping.wait(min(left, self.SLEEP_SLICE))

    def request_stop(self):
        if not self._stopping.is_set():
            LOG.info('Scrubber daemon stopping: finishing the images in '
                     'flight')
        self._stopping.set()
        self._scrubber.stop()

    def stop(self, graceful=True):
        self.request_stop()
        if self._started:
            self._finished.wait()
        super().stop(graceful=True)

    def wait(self):
        if self._started:
            self._finished.wait()
        super().wait()
