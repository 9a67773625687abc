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

"""The breaker: a pass stops when a store stops answering.

A store that goes silent mid-pass (no answer within
``scrub_store_timeout``, connections refused, server errors) would have
every image the pass claims wait for the bound and fail: a backlog of
thousands would take days, and each image would stay claimed, not
restorable, until ``scrub_claim_timeout``. Like the not-found guard
(glance.scrubber.recorder), the breaker stops the pass instead once
TRIP_AFTER calls in a row to one store went unanswered:

* the pass claims no more images;
* an image claimed and not yet taken up by a worker is given back,
  untouched: pending_delete and restorable again (Result.GIVEN_BACK);
* an image whose call was abandoned stays claimed, as any timed-out call
  leaves it (the call may still delete its data).

The calls are counted on the store side (stores.sending.StoreOutages);
the breaker only reads the counts, from the pass and from the workers.
"""

from glance.i18n import _


class StoreBreaker:
    """Trips, for the rest of a pass, once a store stops answering.

    :param outages: the StoreOutages of the pass's deleter, forgotten at
        the start of the pass.
    :param trip_after: the calls in a row a store must leave unanswered.
    """

    TRIP_AFTER = 3

    def __init__(self, outages, trip_after=TRIP_AFTER):
        self._outages = outages
        self._trip_after = trip_after
        # (store, its last outage) once tripped; never reset in a pass.
        self._silent = None

    @property
    def tripped(self):
        """Whether the pass must take up no more images.

        Read by the workers and the pass at once: the worst a race does is
        to read the counts twice.
        """
        if self._silent is None:
            self._silent = self._outages.out_of_reach(self._trip_after)
        return self._silent is not None

    def reason_not_attempted(self):
        """Why a worker gives its image back untouched (once tripped)."""
        store, _outage = self._silent
        return _('not attempted: the store %(store)s stopped answering and '
                 'the pass stopped; nothing deleted') % {'store': store}

    def verdict(self):
        """Why the pass stopped early, or None."""
        if not self.tripped:
            return None
        store, outage = self._silent
        return _('the store %(store)s stopped answering (%(calls)d calls in '
                 'a row; the last: %(error)s): the pass took no more '
                 'images') % {'store': store, 'calls': self._trip_after,
                              'error': outage}
