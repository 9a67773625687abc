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

"""The scrub pass, read top to bottom.

glance-api, with ``delayed_delete`` on, leaves a deleted image in
``pending_delete`` with its data still in the store. A scrub pass reads
the images to scrub from the database (the queue, claims.py), claims them
in batches on the primary database (the decision to delete, atomic
whoever else works on the database), hands each claimed image to a worker
(worker.py) through a futurist executor, and records every outcome
(recorder.py):

    database -> claims -> executor -> outcomes -> database and the summary

Images are scrubbed in parallel, up to ``scrub_pool_size`` at once; the
locations of one image are deleted one after another, in order, through
glance.scrubber.stores, which deletes only data Glance owns. The daemon
(daemon.py) runs a pass every ``wakeup_time`` seconds after the previous
one ended, so passes never overlap.
"""

import datetime
import functools
import itertools
import threading
import time

import futurist
from futurist import waiters
from oslo_db import exception as db_exception
from oslo_log import log as logging
from oslo_utils import timeutils
from sqlalchemy import exc as sa_exc

from glance.common.exception import one_line
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _
from glance.scrubber import breaker
from glance.scrubber import claims
from glance.scrubber import coordination
from glance.scrubber import data_users as data_users_index
from glance.scrubber import lock as scrub_lock
from glance.scrubber import metrics
from glance.scrubber import model
from glance.scrubber import pass_watch
from glance.scrubber import recorder
from glance.scrubber import worker

LOG = logging.getLogger('glance.scrubber')

# What a database call raises once oslo.db's retries have given up.
DATABASE_ERRORS = (db_exception.DBError, sa_exc.SQLAlchemyError)


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
    :param settings: the options.Settings of the command: pool size,
        scrub_time, lock_path, claim timeout, not-found ratio, report
        interval, metrics file.
    :param deleter: the StoreDeleter the workers delete with.
    :param data_users: the DataUsers the deleter asks; the pass keeps it
        up to date (forgets it at the start of a pass, has it look ahead
        at the images it is about to claim, refreshes it before each
        claim, tells it what was claimed).
    :param gate: the StoreGate the deleter sends its deletes through; its
        counts go into the summary.
    :param executors: makes the executor of a pass (see Executors).
    :param membership: which images this scrubber proposes to itself and
        which abandoned claims it takes over (glance.scrubber.coordination);
        alone when None.
    :param page_size: images read from the queue at a time; by default
        QUEUE_PAGE.
    """

    # A claim is a transaction: one per image would cost the file store
    # more than its deletes. Claimed images cannot be restored and a stop
    # waits for them, so a pass claims about CLAIM_AHEAD seconds of work at
    # a time at its pace so far (at most MAX_CLAIM images), and at least
    # one image per worker; in all it never holds more than MAX_CLAIM
    # images beyond those its workers are on (max_in_flight), whatever the
    # pool size.
    CLAIM_AHEAD = 1.0
    MAX_CLAIM = 100
    # Images read from the queue at a time; the data users of one page or
    # more are looked up at once (data_users_index.LookAheadSize).
    QUEUE_PAGE = 5000

    def __init__(self, context, settings, deleter, data_users, gate,
                 executors, membership=None, page_size=None):
        self._context = context
        self._worker = worker.Worker(deleter)
        self._deleter = deleter
        self._data_users = data_users
        self._gate = gate
        self._executors = executors
        self.pool_size = settings.scrub_pool_size
        self.max_in_flight = self.pool_size + self.MAX_CLAIM
        self._page_size = page_size or max(self.QUEUE_PAGE,
                                           self.max_in_flight)
        self._scrub_time = settings.scrub_time
        self._membership = (membership or
                            coordination.Alone(settings.scrub_claim_timeout))
        self._not_found_ratio = settings.scrub_not_found_ratio
        self._lock_path = settings.lock_path
        self.report_interval = settings.report_interval
        self._metrics = (metrics.MetricsFile(
            settings.metrics_file,
            lambda: db_api.backlog_totals(context),
            read_claims=lambda: claims.claimed_elsewhere(
                context, self._membership, timeutils.utcnow()))
            if settings.metrics_file else metrics.NoMetrics())
        self._stopping = threading.Event()
        self._stop_reason = None
        # Whether the last pass was left behind, waiting on a database
        # that did not answer a stop (see _watched_pass).
        self.last_pass_left_behind = False

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
        lock = scrub_lock.ScrubLock(self._lock_path)
        if not lock.acquire(blocking=False):
            # Said once: the wait can last as long as the other pass.
            LOG.info('Waiting for the scrub lock %(path)s, held by '
                     '%(holder)s on this host',
                     {'path': lock.path, 'holder': lock.holder()})
            while not lock.acquire(blocking=True, timeout=1):
                if self.stopping:
                    return model.Summary()
        try:
            try:
                self._membership.join()
            except coordination.CoordinationLost as error:
                # Said once, by the membership; each pass not started only
                # in the debug log (a daemon tries every wakeup_time).
                LOG.debug('Scrub pass not started: %s', error)
                return model.Summary(aborted=str(error))
            return self._watched_pass()
        finally:
            lock.release()

    def _watched_pass(self):
        """Run a pass that a stuck database cannot keep from stopping."""
        summary = model.Summary()
        started = time.monotonic()
        finished, _summary = pass_watch.run_watched(
            lambda: self._run_pass(summary), self._stopping,
            self.report_interval)
        self.last_pass_left_behind = not finished
        if not finished:
            summary = summary.left_behind()
            summary.aborted = _('stopped while the database was not '
                                'answering')
            summary.seconds = time.monotonic() - started
            # No metrics: their backlog query would wait on the same
            # database.
            self._log_summary(summary)
        return summary

    def _new_queue(self, now):
        return claims.Queue(
            self._context, self._page_size,
            now - datetime.timedelta(seconds=self._scrub_time),
            self._membership.takeover_cutoff(now))

    def _claims_elsewhere(self, now):
        """What waits for other passes at the start of this one."""
        try:
            return claims.claimed_elsewhere(self._context, self._membership,
                                            now)
        except (db_exception.DBError, sa_exc.SQLAlchemyError) as error:
            # Only said, never acted on: no reason to fail the pass.
            LOG.warning('Could not count the images claimed by other '
                        'passes: %s', one_line(error))
            return model.ClaimsElsewhere()

    def _proposed(self, queue):
        """The queue's images this scrubber is to claim, while it may."""
        for candidate in queue:
            if self._membership.lost:
                return
            if self._membership.proposes(candidate):
                yield candidate

    def _looked_ahead(self, queue, progress):
        """The candidates to claim, the users of their data looked up first.

        The first look-up is of the first page of the queue; later ones of
        as many pages as make a data_users_index.LookAheadSize.
        """
        pages = queue.pages()
        size = data_users_index.LookAheadSize()
        wanted = 1
        while True:
            chunk = []
            for page in pages:
                chunk.extend(self._proposed(page))
                if len(chunk) >= wanted or self._membership.lost:
                    break
            if not chunk:
                return
            self._data_users.look_ahead(
                self._context, [candidate.id for candidate in chunk])
            size.took(self._data_users.lookup_seconds,
                      progress.images_per_second())
            wanted = size()
            yield from chunk
            if self._membership.lost:
                return

    def _run_pass(self, summary):
        started = time.monotonic()
        progress = recorder.Progress(self.report_interval, started,
                                     self._metrics)
        guard = recorder.NotFoundGuard(self._not_found_ratio)
        store_breaker = breaker.StoreBreaker(self._deleter.outages)
        records = recorder.Recorder(self._context, summary, guard,
                                    self._membership)
        LOG.info('Scrub pass starting: %(size)d at once on %(backend)s',
                 {'size': self.pool_size,
                  'backend': self._executors.backend})
        now = timeutils.utcnow()
        queue = self._new_queue(now)
        summary.note_claims_elsewhere(self._claims_elsewhere(now))
        # Images scrubbed since the last pass no longer need their data.
        self._data_users.forget()
        self._deleter.start_pass()
        in_flight = set()
        database_failure = None
        executor = self._executors(self.pool_size)
        # Once the breaker trips, the images claimed and not yet taken up
        # are given back untouched.
        scrub = functools.partial(self._worker, breaker=store_breaker)
        try:
            candidates = self._looked_ahead(queue, progress)
            while not self._stop_taking(guard, store_breaker):
                size = self._claim_size(progress)
                # Images claimed beyond those the workers are on.
                waiting = len(in_flight) - self.pool_size
                room = self.max_in_flight - len(in_flight)
                if waiting > size // 2 or room <= 0:
                    self._collect(in_flight, records, progress)
                    continue
                try:
                    batch = list(itertools.islice(
                        candidates, min(size - max(waiting, 0), room)))
                    if not batch:
                        break
                    claims = self._claim(queue, batch, summary)
                except DATABASE_ERRORS as error:
                    # oslo.db's retries gave up: end the pass, with its
                    # summary, rather than leave it to a traceback or try
                    # every image left against a database that is gone.
                    database_failure = _database_gone(error)
                    break
                for claim in claims:
                    in_flight.add(executor.submit(scrub, claim))
        finally:
            # However the loop ended, every image claimed is waited for and
            # recorded before the pass returns.
            while in_flight:
                self._collect(in_flight, records, progress)
            records.flush(final=True)
            self._membership.release_all()
            # The workers are idle now: no need to wait for their threads
            # to notice the shutdown.
            executor.shutdown(wait=False)
        summary.aborted = (guard.verdict() or store_breaker.verdict() or
                           self._lost_coordination() or database_failure)
        summary.seconds = time.monotonic() - started
        self._note_pacing(summary)
        # The file first: whoever waits for the summary line finds the
        # metrics of the same pass.
        self._metrics.pass_finished(summary, succeeded=summary.succeeded)
        self._log_summary(summary)
        return summary

    def _log_summary(self, summary):
        LOG.info('Scrub pass summary: %s', summary.describe(),
                 extra=summary.fields())
        if summary.claimed_elsewhere:
            self._log_claims_elsewhere(summary)
        if summary.aborted:
            LOG.error('Scrub pass stopped early: %s', summary.aborted)

    def _log_claims_elsewhere(self, summary):
        # After a crash the next pass finds nothing to do and exits 0,
        # while the dead pass's images wait: say so, and until when. Info,
        # not a warning: with coordination the other members' claims in
        # flight are counted at every pass.
        wait = summary.first_takeable_at - timeutils.utcnow()
        LOG.info(
            '%(count)d images are claimed by another scrub pass, running or '
            'stopped, and were left to it: until a pass takes them over '
            'they can be neither scrubbed nor restored. The first may be '
            'taken over at %(at)s UTC, in %(seconds)d s (%(rule)s).',
            {'count': summary.claimed_elsewhere,
             'at': summary.first_takeable_at.isoformat(),
             'seconds': max(0, wait.total_seconds()),
             'rule': self._membership.takeover_rule()})

    def _lost_coordination(self):
        if self._membership.lost:
            return str(coordination.CoordinationLost(
                reason=self._membership.lost))
        return None

    def _claim_size(self, progress):
        pace = progress.images_per_second()
        return max(self.pool_size,
                   min(self.MAX_CLAIM, int(pace * self.CLAIM_AHEAD)))

    def _stop_taking(self, guard, store_breaker):
        if self.stopping:
            LOG.info('Stop requested (%s): taking no more images, finishing '
                     'the images in flight', self._stop_reason or 'stop')
            return True
        return (guard.tripped or store_breaker.tripped or
                bool(self._membership.lost))

    def _claim(self, queue, batch, summary):
        """Claim *batch* on the primary; the images it may scrub.

        The batch is found once the claim is decided, and each of its
        images counted then unless it was claimed: a claim left waiting on
        a database that does not answer may or may not be written, and
        its images are in no count rather than in a wrong one.
        """
        token = db_api.claim_token()
        try:
            # Announced before it is written, so that no other member takes
            # these claims for abandoned ones.
            self._membership.hold(token, len(batch))
        except coordination.CoordinationLost:
            return []
        try:
            taken = self._claim_batch(queue, batch, token)
        except DATABASE_ERRORS as error:
            LOG.error('Could not claim %(count)d images, none of their data '
                      'was touched: %(error)s',
                      {'count': len(batch),
                       'error': one_line(error)})
            self._membership.release(token, len(batch))
            summary.found += len(batch)
            summary.failed += len(batch)
            # The database is gone: the pass takes no more images.
            raise
        self._membership.release(token, len(batch) - len(taken))
        summary.found += len(batch)
        claimed = {claim.image_id for claim in taken}
        for candidate in batch:
            if candidate.id not in claimed:
                LOG.info('Image %s skipped: it was restored or claimed by '
                         'another pass before this one could claim it; '
                         'nothing deleted', candidate.id)
                summary.skipped += 1
        return taken

    def _claim_batch(self, queue, batch, token):
        # Before the claim, the locations added up to a second ago
        # (DataUsers.REFRESH_INTERVAL); after it, claimed() reads those
        # added until the claim committed.
        self._data_users.refresh(self._context)
        taken = db_api.claim_images(self._context, batch,
                                    queue.deleted_before,
                                    queue.claimed_before, token=token)
        self._data_users.claimed(taken)
        return taken

    def _collect(self, in_flight, records, progress):
        """Wait for some job to finish and hand it to the recorder."""
        timeout = min(progress.due_in(), records.due_in())
        done, _pending = waiters.wait_for_any(in_flight, timeout=timeout)
        for future in done:
            in_flight.discard(future)
            outcome = future.result()
            self._data_users.finished(outcome.claim)
            records.add(outcome)
        progress.finished += len(done)
        records.flush_if_due()
        self._note_pacing(records.summary)
        # Images finished but not yet recorded are still in flight: the
        # progress line adds up as the summary does.
        progress.maybe_report(records.summary,
                              len(in_flight) + records.unrecorded)

    def _note_pacing(self, summary):
        summary.throttled = self._gate.throttled
        summary.concurrency = min(self._gate.concurrency, self.pool_size)


def _database_gone(error):
    return _('the database stopped answering: %s; the pass took no more '
             'images, and those it had claimed were finished') % \
        one_line(error)
