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

"""The queue: the images a pass may claim, read page by page.
"""

from glance.db.sqlalchemy import api as db_api
from glance.scrubber import model


def claimed_elsewhere(context, membership, now):
    """The claims no pass may take over at *now*: a model.ClaimsElsewhere.

    One aggregate query: how many claims are younger than the takeover
    cutoff of *membership*, and the oldest of them, which is taken over
    first, as long after its claim as the cutoff is before *now*.
    """
    cutoff = membership.takeover_cutoff(now)
    totals = db_api.claimed_totals(context, claimed_after=cutoff)
    if not totals.count:
        return model.ClaimsElsewhere()
    return model.ClaimsElsewhere(
        totals.count, totals.oldest_claimed_at + (now - cutoff))


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
        for page in self.pages():
            yield from page

    def pages(self):
        """The candidates, a list of at most page_size at a time."""
        yield from self._pages(db_api.list_abandoned_claims,
                               self.claimed_before)
        yield from self._pages(db_api.list_pending_delete_images,
                               self.deleted_before)

    def _pages(self, list_page, before):
        marker = None
        while True:
            page = list_page(self._context, before, marker=marker,
                             limit=self._page_size)
            if page:
                yield page
            if len(page) < self._page_size:
                return
            marker = page[-1].id
