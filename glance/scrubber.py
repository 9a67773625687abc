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
the images to scrub from the database (the queue), claims them in
batches on the primary database (the decision to delete, atomic whoever
else works on the database), hands each claimed image to a worker through
a futurist executor (the pass), and records every outcome:

    database -> claims -> executor -> outcomes -> database and the summary

Images are scrubbed in parallel, up to ``scrub_pool_size`` at once; the
locations of one image are deleted one after another, in order, through
glance.common.store_policy, which deletes only data Glance owns. The
daemon runs a pass every ``wakeup_time`` seconds after the previous one
ended, so passes never overlap.
"""

import dataclasses
import datetime
import enum
import itertools
import threading
import time

import futurist
from futurist import waiters
from oslo_concurrency import lockutils
from oslo_config import cfg
from oslo_db import exception as db_exception
from oslo_log import log as logging
from oslo_service import service
from oslo_utils import timeutils
from oslo_utils import units
from sqlalchemy import exc as sa_exc

from glance.common import coordination
from glance.common import exception
from glance.common import metrics
from glance.common import pass_watch
from glance.common import store_checks
from glance.common import store_policy
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _

LOG = logging.getLogger(__name__)

LOCK_NAME = 'glance-scrubber'
LOCK_PREFIX = 'glance-'

# The longest time the options in seconds accept, about 68 years: "now
# minus scrub_time" must still be a date the database can hold.
MAX_SECONDS = 2 ** 31 - 1
# Beyond a thousand workers, threads and store connections cost more than
# any store gains.
MAX_POOL_SIZE = 1000

scrubber_opts = [
    cfg.IntOpt('scrub_time', default=0, min=0, max=MAX_SECONDS, help=_("""
The time, in seconds, to keep an image's data after the image is deleted.

With ``delayed_delete`` on, a deleted image becomes eligible for
scrubbing this many seconds after its deletion; until then its data stays
in the store and an operator can still bring it back with
``glance-scrubber --restore``.

Possible values:
    * 0 (scrub as soon as the scrubber runs) or any number of seconds up
      to 2147483647 (68 years)

Related options:
    * delayed_delete
    * wakeup_time
""")),
    cfg.IntOpt('scrub_pool_size', default=1, min=1, max=MAX_POOL_SIZE,
               help=_("""
The number of images scrubbed at the same time.

A scrub pass hands each eligible image to a pool of this many workers; the
locations of one image are still deleted one after another. 1 scrubs
images one at a time, in a stable order. A larger pool keeps up with a
long backlog when each delete waits on the store (object stores, remote
back ends), at the cost of that many requests in flight against the store
at once: size it against the store's rate limits.

The workers are native threads under the threading backend (the default)
and green threads under the eventlet backend; the backend is chosen with
the ``OS_GLANCE_SCRUBBER_BACKEND`` environment variable.

Possible values:
    * An integer from 1 to 1000; 1 means serial scrubbing

Related options:
    * delayed_delete
    * wakeup_time
""")),
    cfg.IntOpt('scrub_claim_timeout', default=3600, min=60, max=MAX_SECONDS,
               help=_("""
The time, in seconds, after which a scrub pass's claim on an image is
considered abandoned.

Before deleting any of an image's data, a pass claims the image in the
database: the image becomes ``deleted`` at once (so it can no longer be
restored) and its locations stay ``pending_delete`` until their data is
gone. If the pass stops before it finishes (the process is killed, the
host fails), a later pass takes the claim over once it is this old and
deletes whatever data is left. Set it well above the time one image's
data can take to delete; a claim taken over too early only makes two
passes delete the same data.

Possible values:
    * Any number of seconds from 60 to 2147483647 (68 years)

Related options:
    * scrub_pool_size
    * wakeup_time
""")),
    cfg.FloatOpt('scrub_not_found_ratio', default=0.5, min=0.0, max=1.0,
                 help=_("""
The share of the first deletes of a pass that may find no data before the
pass stops.

A scrubber pointed at the wrong store (another S3 endpoint or bucket, a
file store whose file system is not mounted) finds no data anywhere, and
"not found" normally counts as already deleted. So the first 20 deletes
of each pass are watched: when more than this share of them find nothing,
the pass takes no more images, leaves those images ``pending_delete``
without recording anything about the missing data, and exits with an
error. Images a stopped pass had already claimed are not counted: their
data is expected to be gone.

Possible values:
    * A number from 0.0 (any missing data among the first deletes stops
      the pass) to 1.0 (never stop)

Related options:
    * scrub_claim_timeout
""")),
    cfg.FloatOpt('scrub_store_rate_limit', default=0.0, min=0.0, help=_("""
The most location deletes per second one scrubber asks its stores for, in
all.

Deletes are spaced evenly so that the cap holds over any second, however
many workers ``scrub_pool_size`` runs. One delete costs the store one or
more requests (two on S3: a HEAD, then the DELETE); size the cap against
the store's request limit accordingly, divided by the number of
scrubbers sharing the store.

Without a cap the scrubber still protects its store: a store that answers
"slow down" (S3 and Ceph RGW ``503 SlowDown``, Swift ``498`` or ``429``,
any ``503``) makes the pass lower the number of deletes it has in flight
(halved at each throttled round, raised again by about one per successful
round, never above ``scrub_pool_size``) and ask again for the throttled
delete after a jittered, growing wait.

Possible values:
    * 0 (no cap, the default) or any positive number of deletes per
      second

Related options:
    * scrub_pool_size
""")),
    cfg.IntOpt('scrub_store_timeout', default=600, min=0, max=MAX_SECONDS,
               help=_("""
The longest time, in seconds, one store call may take: the delete of one
location's data (or, for ``--restore``, the look-up of it).

A call that gives no answer in time fails its image: the reason is
logged, the image is not scrubbed in this pass, the pass goes on with the
other images and exits 1. The timed-out call cannot be interrupted and may
still delete the data later, so the image is not handed back to
``pending_delete`` (where a restore could bring it back without its
data): it stays claimed, as after a crash, and a later pass takes it over
once the claim is ``scrub_claim_timeout`` old. The default leaves room for
the delete of a large RBD image or a Swift object of thousands of
segments, while a hung store still cannot hold a pass for more than ten
minutes; keep it well below ``scrub_claim_timeout``.

When set, it is also the default of glance_store's
``rados_connect_timeout`` for the RBD stores where that option is unset,
so that librados ends a hung call by itself.

Possible values:
    * 0: no bound, a store call may wait forever
    * Any positive number of seconds

Related options:
    * scrub_claim_timeout
    * rados_connect_timeout
""")),
    cfg.IntOpt('wakeup_time', default=300, min=0, max=MAX_SECONDS, help=_("""
The time, in seconds, the scrubber daemon sleeps between two passes.

The daemon starts its next pass this long after the previous pass ended,
so passes never overlap however long one takes. It applies to
``glance-scrubber --daemon`` only; run once (the default), the scrubber
does a single pass and exits.

Possible values:
    * 0 (start the next pass at once) or any number of seconds up to
      2147483647 (68 years)

Related options:
    * daemon
    * scrub_time
""")),
    cfg.IntOpt('report_interval', default=60, min=1, max=MAX_SECONDS,
               help=_("""
The time, in seconds, between two progress lines of a scrub pass.

While a pass runs, the scrubber logs a "Scrub pass in progress" line this
often (images found, scrubbed, failed, skipped, in use, in flight, data
reclaimed), and rewrites the ``metrics_file``, when one is set, at the
same period; a daemon also rewrites it this often between passes, so
that the backlog it shows stays current.

Possible values:
    * Any number of seconds from 1 to 2147483647 (68 years)

Related options:
    * metrics_file
    * wakeup_time
""")),
    cfg.StrOpt('metrics_file', help=_("""
A file to write the scrubber's metrics to, for Prometheus.

When set, the scrubber writes the Prometheus text format to this file
after each pass and every ``report_interval`` seconds: the images the
last pass scrubbed, failed, skipped and kept in use, the bytes it
reclaimed and its duration, the images still pending_delete and the age
of the oldest, and the time of the last pass with no failed image. Point
it into the directory of node_exporter's textfile collector, with a name
ending in ``.prom``. The file is replaced atomically (a temporary file in
the same directory, then a rename) with mode 0644. Its directory must
exist and be writable, or the scrubber refuses to start; ``--restore``
does not use it. Unset (the default), no metrics are written.

Possible values:
    * Unset, or the path of a file in a writable directory

Related options:
    * report_interval
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

Brings the pending_delete image IMAGE_ID back to active as it was before
its deletion, and exits: its locations whose data is still in their store,
and the properties, tags and members deleted with it. Only an image in
pending_delete with data left can be restored; an image a scrub pass has
claimed cannot, and the command refuses while a scrub pass runs on this
host. It cannot be combined with ``--daemon``.

Possible values:
    * An image ID (a UUID). Anything else, an empty value included, is
      refused at start (exit 2) before the database or a store is used.

Related options:
    * daemon
""")),
    cfg.BoolOpt('list', default=False, help=_("""
List the pending_delete images waiting to be scrubbed, and exit.

Prints one line per image (id, deletion time, time left before a pass may
take it given ``scrub_time``, size, number of pending_delete locations and
the names of their stores; never the location URLs, which may hold
credentials), then the totals: images, bytes, the oldest deletion, and how
many are due now or still inside ``scrub_time``. It only reads the
database: nothing is deleted or written and the scrub lock is not taken,
so it is safe while a pass runs on this or another host. It cannot be
combined with ``--daemon``, ``--restore`` or ``--dry-run``.

Possible values:
    * True
    * False

Related options:
    * scrub_time
    * dry_run
""")),
    cfg.BoolOpt('dry-run', default=False, help=_("""
Show what a scrub pass would do now, without doing it, and exit.

Goes through the images a pass would take (pending_delete for at least
``scrub_time`` seconds) and prints, for each of their pending_delete
locations in order, what the pass would decide: delete the data, keep it
because another image may need it, let it go because the store cannot
delete, or refuse it (outside every file datadir, no configured store,
undecryptable), in which case the image would fail; then the totals. The
stores are not asked, so data already gone or in use (RBD clones) shows as
a delete. Nothing is deleted or written to the database and the scrub lock
is not taken, so it is safe while a pass runs on this or another host. It
cannot be combined with ``--daemon`` or ``--restore``.

Possible values:
    * True
    * False

Related options:
    * scrub_time
    * list
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
    IN_USE = 'in use'


@dataclasses.dataclass
class Outcome:
    """What the worker did with one claimed image; crosses the executor.

    ``deletions`` pairs each location handled, in order, with its
    store_policy.Deletion; every one of them is recorded deleted.
    """

    claim: db_api.Claim
    result: Result = Result.SCRUBBED
    deletions: list = dataclasses.field(default_factory=list)
    bytes_reclaimed: int = 0
    reason: str = ''
    # A store call timed out and may still delete data: the claim must
    # not be given back (see Worker._scrub).
    claim_kept: bool = False

    @property
    def image_id(self):
        return self.claim.image_id

    @property
    def deleted_location_ids(self):
        return [location_id for location_id, _deletion in self.deletions]

    def found_nothing_at(self):
        """Locations whose data the store did not have."""
        return [location_id for location_id, deletion in self.deletions
                if deletion is store_policy.Deletion.ALREADY_GONE]

    def fail(self, reason):
        self.result = Result.FAILED
        self.reason = reason


@dataclasses.dataclass
class Summary:
    """The counts of one pass, logged as its closing line.

    ``aborted`` is the reason the pass stopped early, when it did.
    """

    found: int = 0
    scrubbed: int = 0
    failed: int = 0
    skipped: int = 0
    in_use: int = 0
    locations_deleted: int = 0
    bytes_reclaimed: int = 0
    seconds: float = 0.0
    # Store requests answered "slow down", and the store requests allowed
    # in flight at the end (throttle.StoreGate).
    throttled: int = 0
    concurrency: int = 0
    aborted: str = None

    @property
    def images_per_second(self):
        return self.scrubbed / self.seconds if self.seconds else 0.0

    def add(self, outcome):
        if outcome.result is Result.SCRUBBED:
            self.scrubbed += 1
        elif outcome.result is Result.FAILED:
            self.failed += 1
        elif outcome.result is Result.IN_USE:
            self.in_use += 1
        else:
            self.skipped += 1
        self.locations_deleted += len(outcome.deletions)
        self.bytes_reclaimed += outcome.bytes_reclaimed

    def fields(self):
        """The counts by name, as the summary line names them.

        For structured logs: oslo.log's JSON formatter carries them.
        """
        fields = dataclasses.asdict(self)
        fields['images_per_second'] = self.images_per_second
        return fields

    def describe(self):
        return ('found=%d scrubbed=%d failed=%d skipped=%d in_use=%d '
                'locations_deleted=%d bytes_reclaimed=%d seconds=%.2f '
                'images_per_second=%.1f throttled=%d concurrency=%d' % (
                    self.found, self.scrubbed, self.failed, self.skipped,
                    self.in_use, self.locations_deleted,
                    self.bytes_reclaimed, self.seconds,
                    self.images_per_second, self.throttled,
                    self.concurrency))


# --- the worker -------------------------------------------------------------


class Worker:
    """Scrubs one claimed image: deletes its locations serially, in order.

    It never raises: every outcome, failures included, is returned with
    every location it did delete, and nothing is written to the database
    here (the pass records outcomes).
    """

    def __init__(self, deleter):
        self._deleter = deleter

    def __call__(self, claim):
        outcome = Outcome(claim)
        try:
            self._scrub(claim, outcome)
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            LOG.exception('Scrubbing image %(id)s failed unexpectedly',
                          {'id': claim.image_id})
            outcome.fail(_('unexpected error: %s')
                         % store_policy.one_line(error))
        return outcome

    def _scrub(self, claim, outcome):
        for location in claim.locations:
            try:
                deletion = self._deleter.delete(claim.image_id, location)
            except store_policy.StoreTimeout as error:
                # The call goes on in its thread and may still delete the
                # data. Given back, the image could be restored and lose
                # its data afterwards; kept claimed, as a crash leaves it,
                # it cannot be restored, and a later pass takes it over
                # after scrub_claim_timeout and finishes it.
                outcome.fail(_('location %(id)s: %(error)s; the image stays '
                               'claimed until scrub_claim_timeout') % {
                    'id': location.id, 'error': error})
                outcome.claim_kept = True
                return
            except store_policy.LocationInUse as error:
                outcome.result = Result.IN_USE
                outcome.reason = _('location %(id)s is in use: %(error)s') % {
                    'id': location.id, 'error': error}
                return
            except store_policy.LocationError as error:
                outcome.fail(_('location %(id)s: %(error)s') % {
                    'id': location.id, 'error': error})
                return
            outcome.deletions.append((location.id, deletion))
            if deletion is store_policy.Deletion.DELETED:
                outcome.bytes_reclaimed += claim.size
            elif deletion in (store_policy.Deletion.SHARED,
                              store_policy.Deletion.NOT_OWNED):
                LOG.warning('Image %(image)s: location %(id)s %(what)s; '
                            'recorded deleted without touching the store',
                            {'image': claim.image_id, 'id': location.id,
                             'what': _why_untouched(deletion)})


def _why_untouched(deletion):
    if deletion is store_policy.Deletion.SHARED:
        return _('points to data another image may still need (it is live, '
                 'or pending_delete and restorable)')
    return _('is in a store that cannot delete (Glance never owned the '
             'data)')


# --- the queue --------------------------------------------------------------


class Queue:
    """The images to scrub, read page by page from the database.

    First the images whose claim a stopped pass abandoned (older than the
    claim timeout), then the eligible pending_delete images. Reading them
    is not deciding: each is claimed on the primary before it is
    scrubbed.
    """

    def __init__(self, context, page_size, deleted_before, claimed_before):
        self._context = context
        self._page_size = page_size
        self.deleted_before = deleted_before
        self.claimed_before = claimed_before

    def __iter__(self):
        yield from self._pages(db_api.list_abandoned_claims,
                               self.claimed_before)
        yield from self._pages(db_api.list_pending_delete_images,
                               self.deleted_before)

    def _pages(self, list_page, before):
        marker = None
        while True:
            page = list_page(self._context, before, marker=marker,
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
    """Runs scrub passes: claims images and streams them through workers.

    :param context: admin request context.
    :param worker: a Worker: scrubs one claimed image when called,
        returning an Outcome.
    :param deleter: the worker's StoreDeleter; the pass keeps its view of
        the images that may need some data (DataUsers) up to date.
    :param executors: makes the executor of a pass (see Executors).
    :param pool_size: ``scrub_pool_size``, images scrubbed at once.
    :param scrub_time: ``scrub_time``, seconds an image waits.
    :param lock_path: directory of the lock shared with --restore.
    :param claim_timeout: ``scrub_claim_timeout``: seconds after which the
        claim of a stopped pass is taken over (without coordination).
    :param not_found_ratio: ``scrub_not_found_ratio`` (see NotFoundGuard).
    :param report_interval: seconds between progress lines in a pass.
    :param metrics_file: ``metrics_file``: where to write the metrics
        (glance.common.metrics); none are written when None.
    :param membership: which images this scrubber proposes to itself and
        which abandoned claims it takes over (glance.common.coordination);
        alone when None.
    """

    # A claim is a transaction: one per image would cost the file store
    # more than its deletes. Claimed images cannot be restored and a stop
    # waits for them, so a pass claims about CLAIM_AHEAD seconds of work at
    # a time, at its pace so far: at least one image per worker, at most
    # MAX_CLAIM.
    CLAIM_AHEAD = 1.0
    MAX_CLAIM = 100

    def __init__(self, context, worker, deleter, executors, pool_size,
                 scrub_time, lock_path, claim_timeout=3600,
                 not_found_ratio=0.5, report_interval=60.0, page_size=None,
                 membership=None, metrics_file=None):
        self._context = context
        self._worker = worker
        self._deleter = deleter
        self._executors = executors
        self.pool_size = pool_size
        self.max_in_flight = pool_size + self.MAX_CLAIM
        self._page_size = page_size or self.max_in_flight
        self._scrub_time = scrub_time
        self._membership = (membership or
                            coordination.Alone(claim_timeout))
        self._not_found_ratio = not_found_ratio
        self._lock_path = lock_path
        self.report_interval = report_interval
        self._metrics = (metrics.MetricsFile(
            metrics_file, lambda: db_api.backlog_totals(context))
            if metrics_file else metrics.NoMetrics())
        self._stopping = threading.Event()
        self._stop_reason = None

    def stop(self, reason=None):
        """Stop taking new images; the images in flight are finished.

        Safe in a signal handler: it logs nothing (a log write interrupted
        by another one fails), the pass says it stopped.

        :param reason: why, for that log line (a signal's name, say).
        """
        self._stop_reason = reason
        self._stopping.set()

    @property
    def stopping(self):
        return self._stopping.is_set()

    def report_idle(self):
        """Between passes: rewrite the metrics, the backlog read anew."""
        self._metrics.refresh()

    def run_once(self):
        """Run one pass under the scrub lock and return its Summary."""
        lock = ScrubLock(self._lock_path)
        if not lock.acquire(blocking=False):
            # Said once: the wait can last as long as the other pass.
            LOG.info('Waiting for the scrub lock %s, held by a restore or '
                     'another scrub pass on this host', lock.path)
            while not lock.acquire(blocking=True, timeout=1):
                if self.stopping:
                    return Summary()
        try:
            try:
                self._membership.join()
            except coordination.CoordinationLost as error:
                # Said once, by the membership; the pass is not started.
                return Summary(aborted=str(error))
            return self._watched_pass()
        finally:
            lock.release()

    def _watched_pass(self):
        """Run a pass that a stuck database cannot keep from stopping."""
        summary = Summary()
        started = time.monotonic()
        finished, _summary = pass_watch.run_watched(
            lambda: self._run_pass(summary), self._stopping,
            self.report_interval)
        if not finished:
            summary.aborted = _('stopped while the database was not '
                                'answering')
            summary.seconds = time.monotonic() - started
            # No metrics: their backlog query would wait on the same
            # database.
            self._log_summary(summary)
        return summary

    def _new_queue(self):
        now = timeutils.utcnow()
        return Queue(self._context, self._page_size,
                     now - datetime.timedelta(seconds=self._scrub_time),
                     self._membership.takeover_cutoff(now))

    def _proposed(self, queue):
        """The queue's images this scrubber is to claim, while it may."""
        for candidate in queue:
            if self._membership.lost:
                return
            if self._membership.proposes(candidate):
                yield candidate

    def _run_pass(self, summary):
        started = time.monotonic()
        progress = _Progress(self.report_interval, started, self._metrics)
        guard = store_checks.NotFoundGuard(self._not_found_ratio)
        recorder = _Recorder(self._context, summary, guard,
                             self._membership)
        LOG.info('Scrub pass starting: %(size)d at once on %(backend)s',
                 {'size': self.pool_size,
                  'backend': self._executors.backend})
        queue = self._new_queue()
        # Images scrubbed since the last pass no longer need their data.
        self._deleter.start_pass()
        in_flight = set()
        executor = self._executors(self.pool_size)
        try:
            candidates = self._proposed(queue)
            while not self._stop_taking(guard):
                size = self._claim_size(progress)
                # Images claimed beyond those the workers are on.
                waiting = len(in_flight) - self.pool_size
                if waiting > size // 2:
                    self._collect(in_flight, recorder, progress)
                    continue
                batch = list(itertools.islice(candidates,
                                              size - max(waiting, 0)))
                if not batch:
                    break
                for claim in self._claim(queue, batch, summary):
                    in_flight.add(executor.submit(self._worker, claim))
        finally:
            # However the loop ended, every image claimed is waited for and
            # recorded before the pass returns.
            while in_flight:
                self._collect(in_flight, recorder, progress)
            recorder.flush(final=True)
            self._membership.release_all()
            # The workers are idle now: no need to wait for their threads
            # to notice the shutdown.
            executor.shutdown(wait=False)
        summary.aborted = guard.verdict() or self._lost_coordination()
        summary.seconds = time.monotonic() - started
        self._note_pacing(summary)
        self._log_summary(summary)
        self._metrics.pass_finished(
            summary, succeeded=not (summary.failed or summary.aborted))
        return summary

    @staticmethod
    def _log_summary(summary):
        LOG.info('Scrub pass summary: %s', summary.describe(),
                 extra=summary.fields())
        if summary.aborted:
            LOG.error('Scrub pass stopped early: %s', summary.aborted)

    def _lost_coordination(self):
        if self._membership.lost:
            return str(coordination.CoordinationLost(
                reason=self._membership.lost))
        return None

    def _claim_size(self, progress):
        pace = progress.images_per_second()
        return max(self.pool_size,
                   min(self.MAX_CLAIM, int(pace * self.CLAIM_AHEAD)))

    def _stop_taking(self, guard):
        if self.stopping:
            LOG.info('Stop requested (%s): taking no more images, finishing '
                     'the images in flight', self._stop_reason or 'stop')
            return True
        return guard.tripped or bool(self._membership.lost)

    def _claim(self, queue, batch, summary):
        """Claim *batch* on the primary; the images it may scrub."""
        summary.found += len(batch)
        token = db_api.claim_token()
        try:
            # Announced before it is written, so that no other member takes
            # these claims for abandoned ones.
            self._membership.hold(token, len(batch))
        except coordination.CoordinationLost:
            summary.found -= len(batch)
            return []
        try:
            # Before the claim: the locations added up to a second ago are
            # seen (DataUsers.REFRESH_INTERVAL).
            self._deleter.data_users.refresh(self._context)
            claims = db_api.claim_images(self._context, batch,
                                         queue.deleted_before,
                                         queue.claimed_before, token=token)
            self._deleter.data_users.claimed(claims)
        except (db_exception.DBError, sa_exc.SQLAlchemyError) as error:
            LOG.error('Could not claim %(count)d images, none of their data '
                      'was touched: %(error)s',
                      {'count': len(batch),
                       'error': store_policy.one_line(error)})
            summary.failed += len(batch)
            claims = []
        self._membership.release(token, len(batch) - len(claims))
        claimed = {claim.image_id for claim in claims}
        for candidate in batch:
            if candidate.id not in claimed:
                LOG.info('Image %s skipped: it was restored or claimed by '
                         'another pass before this one could claim it; '
                         'nothing deleted', candidate.id)
                summary.skipped += 1
        return claims

    def _collect(self, in_flight, recorder, progress):
        """Wait for some job to finish and hand it to the recorder."""
        timeout = min(progress.due_in(), recorder.due_in())
        done, _pending = waiters.wait_for_any(in_flight, timeout=timeout)
        for future in done:
            in_flight.discard(future)
            recorder.add(future.result())
        progress.finished += len(done)
        recorder.flush_if_due()
        self._note_pacing(recorder.summary)
        progress.maybe_report(recorder.summary, len(in_flight))

    def _note_pacing(self, summary):
        gate = self._deleter.gate
        summary.throttled = gate.throttled
        summary.concurrency = min(gate.concurrency, self.pool_size)


class _Recorder:
    """Writes outcomes to the database in batches, and counts them.

    Recording a batch in one transaction costs a few statements instead of
    a few per image. An outcome waits at most MAX_WAIT seconds or until
    BATCH outcomes are waiting. Until it is written its image stays
    claimed: if the process dies meanwhile, a later pass takes the claim
    over and finishes the image.

    Outcomes pass the NotFoundGuard first: one whose data was missing
    waits there until the guard trusts the store. Once written (or given
    up), an outcome's claim is released from the membership.
    """

    BATCH = 100
    MAX_WAIT = 1.0

    def __init__(self, context, summary, guard, membership):
        self._context = context
        self.summary = summary
        self._guard = guard
        self._membership = membership
        self._waiting = []
        self._oldest = None

    def add(self, outcome):
        admitted = self._guard.admit(outcome)
        if admitted and not self._waiting:
            self._oldest = time.monotonic()
        self._waiting.extend(admitted)

    def due_in(self):
        if not self._waiting:
            return self.MAX_WAIT
        return max(0.0, self._oldest + self.MAX_WAIT - time.monotonic())

    def flush_if_due(self):
        if len(self._waiting) >= self.BATCH or (
                self._waiting and self.due_in() == 0.0):
            self.flush()

    def flush(self, final=False):
        if final:
            self._waiting.extend(self._guard.release())
        outcomes, self._waiting = self._waiting, []
        if not outcomes:
            return
        try:
            recorded = db_api.record_scrubs(self._context, [
                db_api.ScrubRecord(
                    outcome.image_id, outcome.claim.token,
                    tuple(outcome.deleted_location_ids),
                    # A kept claim is recorded as finished: the image stays
                    # deleted, and its pending_delete locations make it an
                    # abandoned claim for a later pass.
                    finished=outcome.result is Result.SCRUBBED or
                    outcome.claim_kept)
                for outcome in outcomes])
        except (db_exception.DBError, sa_exc.SQLAlchemyError) as error:
            # oslo.db's retries gave up: the data is gone but the record is
            # not; the images stay claimed and a later pass finishes them.
            recorded = {}
            for outcome in outcomes:
                _unrecorded(outcome, error)
        for outcome in outcomes:
            if outcome.image_id in recorded:
                _check_recorded(outcome, recorded[outcome.image_id])
            _log_outcome(outcome)
            self.summary.add(outcome)
            self._membership.release(outcome.claim.token)


def _check_recorded(outcome, recorded):
    """Compare what the worker did with what the database says now."""
    if recorded.held:
        return
    if recorded.status == db_api.DELETED:
        # A later pass took the claim over (this one outlived the claim
        # timeout): it finishes what is left.
        LOG.warning('Image %s: another pass took its claim over while '
                    'this one was deleting its data', outcome.image_id)
        return
    # Nothing in this tree or upstream's brings a claimed image back; a
    # hand-made change did, and the data deleted is gone.
    outcome.fail(_('the image became %(status)s while its data was being '
                   'deleted; %(count)d locations deleted') % {
        'status': recorded.status,
        'count': len(outcome.deletions)})


def _unrecorded(outcome, error):
    LOG.error('Image %(id)s: could not record the scrub, a later pass '
              'finishes it: %(error)s',
              {'id': outcome.image_id,
               'error': store_policy.one_line(error)})
    outcome.fail(store_policy.one_line(error))


def _log_outcome(outcome):
    if outcome.result is Result.FAILED:
        LOG.error('Image %(id)s not scrubbed, left pending_delete for the '
                  'next pass: %(reason)s',
                  {'id': outcome.image_id, 'reason': outcome.reason})
    elif outcome.result is Result.IN_USE:
        LOG.warning('Image %(id)s kept, its data is in use; left '
                    'pending_delete for a later pass: %(reason)s',
                    {'id': outcome.image_id, 'reason': outcome.reason})
    else:
        LOG.info('Image %(id)s scrubbed: %(count)d locations deleted, '
                 '%(bytes)d bytes reclaimed',
                 {'id': outcome.image_id, 'count': len(outcome.deletions),
                  'bytes': outcome.bytes_reclaimed})


class _Progress:
    """Logs a progress line every *interval* seconds during a pass.

    It also counts the images the workers finished, for the pass's pace,
    and hands the counts so far to the metrics at each report.
    """

    def __init__(self, interval, started, metrics_writer):
        self._interval = interval
        self._started = started
        self._metrics = metrics_writer
        self._next = started + interval
        self.finished = 0

    def images_per_second(self):
        elapsed = time.monotonic() - self._started
        return self.finished / elapsed if elapsed > 0 else 0.0

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
                 '%(in_use)d in use, %(in_flight)d in flight, %(mib).1f MiB '
                 'reclaimed in %(elapsed).0f s; store: %(throttled)d '
                 'requests throttled, %(concurrency)d at once',
                 {'found': summary.found, 'scrubbed': summary.scrubbed,
                  'failed': summary.failed, 'skipped': summary.skipped,
                  'in_use': summary.in_use, 'in_flight': in_flight,
                  'throttled': summary.throttled,
                  'concurrency': summary.concurrency,
                  'mib': summary.bytes_reclaimed / units.Mi,
                  'elapsed': elapsed},
                 extra=_progress_fields(summary, in_flight, elapsed))
        self._metrics.pass_progress(summary, elapsed)


def _progress_fields(summary, in_flight, elapsed):
    """The progress line's numbers, named as in the summary line."""
    fields = summary.fields()
    fields.update(in_flight=in_flight, seconds=elapsed,
                  images_per_second=summary.scrubbed / elapsed
                  if elapsed > 0 else 0.0)
    return fields


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


# --- restore ----------------------------------------------------------------


def restore(context, image_id, lock_path, deleter):
    """Restore a pending_delete image as glance-api had it before deletion.

    Each pending_delete location's data is looked up in its store first:
    only the locations whose data is there come back. The database then
    restores the image, those locations, and the properties, tags and
    members deleted with it, in one compare-and-set transaction that a
    scrub pass's claim excludes.

    :param deleter: a StoreDeleter, to look the data up.
    :returns: a db_api.Restored.
    :raises ScrubberBusy: a scrub pass on this host holds the lock.
    :raises NotFound, Conflict: see db_api.find_restorable; Conflict too
        when no location has data left, or the store cannot tell.
    """
    lock = ScrubLock(lock_path)
    if not lock.acquire(blocking=False):
        raise exception.ScrubberBusy(lock=lock.path)
    try:
        candidate = db_api.find_restorable(context, image_id)
        present = _locations_with_data(deleter, candidate)
        if not present:
            raise exception.Conflict(_no_data_left(image_id),
                                     image_id=image_id,
                                     status=db_api.PENDING_DELETE)
        return db_api.restore_image(context, candidate, present)
    finally:
        lock.release()


def _locations_with_data(deleter, candidate):
    present = []
    for location in candidate.locations:
        try:
            found = deleter.data_present(location)
        except store_policy.LocationError as error:
            raise exception.Conflict(
                _('Image %(image)s not restored: location %(id)s: '
                  '%(error)s') % {'image': candidate.image_id,
                                  'id': location.id, 'error': error},
                image_id=candidate.image_id, status=db_api.PENDING_DELETE)
        if found:
            present.append(location.id)
        else:
            LOG.warning('Image %(image)s: the data of location %(id)s is '
                        'gone from its store; it is not restored',
                        {'image': candidate.image_id, 'id': location.id})
    return present


def _no_data_left(image_id):
    return _('Image %s not restored: none of its pending_delete locations '
             'has data left in its store; it stays pending_delete.') % \
        image_id


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
