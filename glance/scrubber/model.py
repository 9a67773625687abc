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
        else:  # Result.IN_USE
            self.in_use += 1
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
