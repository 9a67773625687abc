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

"""The values a pass hands around: outcomes and the summary (no I/O).
"""

import dataclasses
import datetime
import enum

from glance.db.sqlalchemy import api as db_api
from glance.scrubber.stores import deleter


class Result(enum.Enum):
    """What became of a claimed image.

    An image the pass could not claim is skipped before any worker sees
    it: the pass counts it in the Summary, no Outcome carries it.
    """

    SCRUBBED = 'scrubbed'
    FAILED = 'failed'
    IN_USE = 'in use'
    # Not finished, and not given back either: the image stays claimed
    # (deleted, with pending_delete locations) until a later pass takes
    # the claim over, scrub_claim_timeout after it was made.
    LEFT_CLAIMED = 'left claimed'
    # Never attempted: the pass stopped (its store stopped answering)
    # before a worker took the image up; the claim is given back and the
    # image is pending_delete, restorable, as before the pass.
    GIVEN_BACK = 'given back'


@dataclasses.dataclass
class Outcome:
    """What the worker did with one claimed image; crosses the executor.

    ``deletions`` pairs each location handled, in order, with its
    deleter.Deletion; every one of them is recorded deleted.
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
                if deletion is deleter.Deletion.ALREADY_GONE]

    def fail(self, reason):
        # A kept claim stays kept whatever else goes wrong: its store call
        # may still be deleting data.
        self.result = (Result.LEFT_CLAIMED if self.claim_kept
                       else Result.FAILED)
        self.reason = reason

    def keep_claim(self, reason):
        """Not finished, and the claim must not be given back."""
        self.claim_kept = True
        self.fail(reason)

    def give_back(self, reason):
        """Not attempted: nothing of its data was touched."""
        self.result = Result.GIVEN_BACK
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class ClaimsElsewhere:
    """Images claimed by other passes that no pass may take over yet.

    Another pass works on them, or one stopped (killed, say) and they
    wait: until their claim is old enough they can be neither scrubbed
    nor restored. ``first_takeable_at`` (UTC) is when the oldest claim
    may be taken over; None when there is none.
    """

    count: int = 0
    first_takeable_at: datetime.datetime = None

    def seconds_until_takeable(self, now):
        """Seconds from *now* until the first may be taken over; 0 if none."""
        if self.first_takeable_at is None:
            return 0.0
        return max(0.0, (self.first_takeable_at - now).total_seconds())


@dataclasses.dataclass
class Summary:
    """The counts of one pass, logged as its closing line.

    Every image the pass found lands in exactly one of OUTCOME_COUNTS:
    ``found == accounted``, however the pass ended. ``aborted`` is the
    reason the pass stopped early, when it did.
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
    # Images this pass claimed and leaves claimed, neither finished nor
    # given back: a store call timed out and may still delete data, the
    # record could not be written, or the pass was left behind by a
    # database that stopped answering. A later pass takes them over once
    # their claim is old enough (scrub_claim_timeout).
    left_claimed: int = 0
    # Images other passes held when this one started (ClaimsElsewhere):
    # not found by this pass, so in none of OUTCOME_COUNTS.
    claimed_elsewhere: int = 0
    first_takeable_at: datetime.datetime = None
    # Images this pass claimed and gave back without touching their data:
    # it stopped (glance.scrubber.breaker) before a worker took them up.
    # They are pending_delete again, restorable, for the next pass.
    given_back: int = 0

    OUTCOME_COUNTS = ('scrubbed', 'failed', 'skipped', 'in_use',
                      'left_claimed', 'given_back')

    @property
    def images_per_second(self):
        return self.scrubbed / self.seconds if self.seconds else 0.0

    @property
    def accounted(self):
        """The images counted in one of OUTCOME_COUNTS."""
        return sum(getattr(self, name) for name in self.OUTCOME_COUNTS)

    @property
    def succeeded(self):
        """Every image found is done with, and the pass ran to its end.

        Images in use are kept on purpose, skipped ones were not this
        pass's to scrub: neither is a failure.
        """
        return not (self.failed or self.left_claimed or self.given_back or
                    self.aborted)

    def note_claims_elsewhere(self, elsewhere):
        self.claimed_elsewhere = elsewhere.count
        self.first_takeable_at = elsewhere.first_takeable_at

    def add(self, outcome):
        if outcome.result is Result.SCRUBBED:
            self.scrubbed += 1
        elif outcome.result is Result.FAILED:
            self.failed += 1
        elif outcome.result is Result.LEFT_CLAIMED:
            self.left_claimed += 1
        elif outcome.result is Result.GIVEN_BACK:
            self.given_back += 1
        else:  # Result.IN_USE
            self.in_use += 1
        self.locations_deleted += len(outcome.deletions)
        self.bytes_reclaimed += outcome.bytes_reclaimed

    def left_behind(self):
        """A copy for a pass that is left behind, not waited for.

        What it found and has not counted yet was claimed and is not
        recorded: it stays claimed, as after a crash. A copy, because the
        pass left behind may still count in the original.
        """
        copy = dataclasses.replace(self)
        copy.left_claimed += copy.found - copy.accounted
        return copy

    def fields(self):
        """The counts by name, as the summary line names them.

        For structured logs: oslo.log's JSON formatter carries them.
        """
        fields = dataclasses.asdict(self)
        fields['images_per_second'] = self.images_per_second
        if self.first_takeable_at is not None:
            fields['first_takeable_at'] = self.first_takeable_at.isoformat()
        return fields

    def describe(self):
        return ('found=%d scrubbed=%d failed=%d skipped=%d in_use=%d '
                'locations_deleted=%d bytes_reclaimed=%d seconds=%.2f '
                'images_per_second=%.1f throttled=%d concurrency=%d '
                'left_claimed=%d claimed_elsewhere=%d given_back=%d' % (
                    self.found, self.scrubbed, self.failed, self.skipped,
                    self.in_use, self.locations_deleted,
                    self.bytes_reclaimed, self.seconds,
                    self.images_per_second, self.throttled,
                    self.concurrency, self.left_claimed,
                    self.claimed_elsewhere, self.given_back))
