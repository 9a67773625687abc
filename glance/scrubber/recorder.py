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

"""Recording outcomes: the not-found guard, the database, progress.

Outcomes reach the database through the NotFoundGuard (a pass pointed at
the wrong store records nothing it did not delete), in batches (a few
statements per batch rather than per image); the counts go to the
summary, and a progress line to the log every ``report_interval``.
"""

import time

from oslo_db import exception as db_exception
from oslo_log import log as logging
from oslo_utils import units
from sqlalchemy import exc as sa_exc

from glance.common.exception import one_line
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _
from glance.scrubber import model
from glance.scrubber.stores import deleter

LOG = logging.getLogger('glance.scrubber')


class Recorder:
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

    @property
    def unrecorded(self):
        """Outcomes taken and not yet recorded (nor counted)."""
        return len(self._waiting) + self._guard.holding

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
                    finished=outcome.result is model.Result.SCRUBBED or
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
    # hand-made change did, and the data deleted is gone. The claim is
    # not this pass's any more, kept or not.
    outcome.claim_kept = False
    outcome.fail(_('the image became %(status)s while its data was being '
                   'deleted; %(count)d locations deleted') % {
        'status': recorded.status,
        'count': len(outcome.deletions)})


def _unrecorded(outcome, error):
    # Nothing of the transaction was written, the give-back included: the
    # image stays claimed, whatever the worker did, and none of its
    # locations is recorded deleted (the pass that takes it over finds
    # their data gone and records them).
    outcome.deletions = []
    outcome.keep_claim(_('could not record the scrub: %s') % one_line(error))


def _log_outcome(outcome):
    if outcome.result is model.Result.FAILED:
        LOG.error('Image %(id)s not scrubbed, left pending_delete for the '
                  'next pass: %(reason)s',
                  {'id': outcome.image_id, 'reason': outcome.reason})
    elif outcome.result is model.Result.LEFT_CLAIMED:
        LOG.error('Image %(id)s not finished, left claimed until a later '
                  'pass takes it over (scrub_claim_timeout); it cannot be '
                  'restored meanwhile: %(reason)s',
                  {'id': outcome.image_id, 'reason': outcome.reason})
    elif outcome.result is model.Result.GIVEN_BACK:
        LOG.warning('Image %(id)s given back, pending_delete and restorable '
                    'again: %(reason)s',
                    {'id': outcome.image_id, 'reason': outcome.reason})
    elif outcome.result is model.Result.IN_USE:
        LOG.warning('Image %(id)s kept, its data is in use; left '
                    'pending_delete for a later pass: %(reason)s',
                    {'id': outcome.image_id, 'reason': outcome.reason})
    else:
        LOG.info('Image %(id)s scrubbed: %(count)d locations deleted, '
                 '%(bytes)d bytes reclaimed',
                 {'id': outcome.image_id, 'count': len(outcome.deletions),
                  'bytes': outcome.bytes_reclaimed})


class Progress:
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
                 'requests throttled, %(concurrency)d at once; '
                 '%(left_claimed)d left claimed, %(given_back)d given back',

                 {'found': summary.found, 'scrubbed': summary.scrubbed,
                  'failed': summary.failed, 'skipped': summary.skipped,
                  'in_use': summary.in_use, 'in_flight': in_flight,
                  'left_claimed': summary.left_claimed,
                  'given_back': summary.given_back,
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


class NotFoundGuard:
    """Stops a pass whose first deletes mostly find no data.

    The first SAMPLE location deletes of a pass that reach the store are
    the sample (images retaken from a stopped pass do not count: their
    data is expected to be gone). An outcome that found no data for some
    location is held back until the sample can no longer go wrong; if
    more than *ratio* of the sample finds nothing, the guard trips: the
    pass takes no more images, and every held or later outcome that found
    no data is withheld (see _withheld()). A pass with fewer deletes is
    judged on those at its end, from SMALLEST_SAMPLE deletes up: the
    steady state of a daemon is many small passes.

    :param ratio: ``scrub_not_found_ratio``; 1.0 never trips.
    """

    SAMPLE = 20
    SMALLEST_SAMPLE = 5

    def __init__(self, ratio):
        self._ratio = ratio
        self._limit = int(ratio * self.SAMPLE)
        self._seen = 0
        self._not_found = 0
        self._held = []
        self.tripped = False
        self._settled = False

    def admit(self, outcome):
        """Take a finished outcome; return the outcomes ready to record."""
        if outcome.claim.retaken:
            return [outcome]
        self._count(outcome)
        if self.tripped:
            return [self._withheld(held) for held in self._take_held()] + \
                [self._withheld(outcome)]
        if self._settled:
            return [outcome] + self._take_held()
        if not outcome.found_nothing_at():
            return [outcome]
        self._held.append(outcome)
        return []

    @property
    def holding(self):
        """How many outcomes wait for the verdict."""
        return len(self._held)

    def release(self):
        """At the end of the pass: the held outcomes, settled or withheld.

        A pass that ended before its sample was complete is judged on the
        deletes it made, if it made at least SMALLEST_SAMPLE of them.
        """
        if not (self.tripped or self._settled):
            self.tripped = (self._seen >= self.SMALLEST_SAMPLE and
                            self._not_found > self._ratio * self._seen)
        if self.tripped:
            return [self._withheld(held) for held in self._take_held()]
        self._settled = True
        return self._take_held()

    def verdict(self):
        """Why the pass stopped early, or None."""
        if not self.tripped:
            return None
        return _('%(missing)d of the first %(seen)d deletes found no data in '
                 'the store: is glance-scrubber pointed at the stores that '
                 'hold the images? The pass stopped; those images and the '
                 'rest stay pending_delete (scrub_not_found_ratio).') % {
            'missing': self._not_found, 'seen': self._seen}

    def _count(self, outcome):
        for _location_id, deletion in outcome.deletions:
            if self._seen >= self.SAMPLE:
                break
            if deletion in (deleter.Deletion.DELETED,
                            deleter.Deletion.ALREADY_GONE):
                self._seen += 1
                if deletion is deleter.Deletion.ALREADY_GONE:
                    self._not_found += 1
        if self._not_found > self._limit:
            self.tripped = True
        elif self._not_found + (self.SAMPLE - self._seen) <= self._limit:
            # Even if every delete left in the sample found nothing, it
            # would not trip.
            self._settled = True

    def _take_held(self):
        held, self._held = self._held, []
        return held

    @staticmethod
    def _withheld(outcome):
        """An outcome whose missing data is not recorded as deleted.

        The locations the store did delete are recorded; those it found
        nothing for stay pending_delete, and the claim is given back.
        """
        missing = set(outcome.found_nothing_at())
        if not missing:
            return outcome
        outcome.deletions = [(location_id, deletion) for location_id, deletion
                             in outcome.deletions
                             if location_id not in missing]
        outcome.fail(_('the store had no data for %d of its locations, '
                       'and the pass stopped: not recorded') % len(missing))
        return outcome
