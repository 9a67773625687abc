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

"""The worker: deletes the locations of one claimed image, in order.
"""

from oslo_log import log as logging

from glance.common.exception import one_line
from glance.i18n import _
from glance.scrubber import model
from glance.scrubber.stores import deleter
from glance.scrubber.stores import errors

LOG = logging.getLogger('glance.scrubber')


class Worker:
    """Scrubs one claimed image: deletes its locations serially, in order.

    It never raises: every outcome, failures included, is returned with
    every location it did delete, and nothing is written to the database
    here (the pass records outcomes).
    """

    def __init__(self, deleter):
        self._deleter = deleter

    def __call__(self, claim, breaker=None):
        """Scrub one claimed image; its model.Outcome.

        :param breaker: the pass's breaker.StoreBreaker: once it has
            tripped, the image is given back untouched.
        """
        outcome = model.Outcome(claim)
        if breaker is not None and breaker.tripped:
            outcome.give_back(breaker.reason_not_attempted())
            return outcome
        try:
            self._scrub(claim, outcome)
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            LOG.exception('Scrubbing image %(id)s failed unexpectedly',
                          {'id': claim.image_id})
            outcome.fail(_('unexpected error: %s')
                         % one_line(error))
        return outcome

    def _scrub(self, claim, outcome):
        for location in claim.locations:
            try:
                deletion = self._deleter.delete(claim.image_id, location)
            except errors.StoreTimeout as error:
                # The call goes on in its thread and may still delete the
                # data. Given back, the image could be restored and lose
                # its data afterwards; kept claimed, as a crash leaves it,
                # it cannot be restored, and a later pass takes it over
                # after scrub_claim_timeout and finishes it.
                outcome.keep_claim(_('location %(id)s: %(error)s') % {
                    'id': location.id, 'error': error})
                return
            except errors.LocationInUse as error:
                outcome.result = model.Result.IN_USE
                outcome.reason = _('location %(id)s is in use: %(error)s') % {
                    'id': location.id, 'error': error}
                return
            except errors.LocationError as error:
                outcome.fail(_('location %(id)s: %(error)s') % {
                    'id': location.id, 'error': error})
                return
            outcome.deletions.append((location.id, deletion))
            if deletion is deleter.Deletion.DELETED:
                outcome.bytes_reclaimed += claim.size
            elif deletion in (deleter.Deletion.SHARED,
                              deleter.Deletion.NOT_OWNED):
                LOG.warning('Image %(image)s: location %(id)s %(what)s; '
                            'recorded deleted without touching the store',
                            {'image': claim.image_id, 'id': location.id,
                             'what': _why_untouched(deletion)})


def _why_untouched(deletion):
    if deletion is deleter.Deletion.SHARED:
        return _('points to data another image may still need (it is live, '
                 'or pending_delete and restorable)')
    return _('is in a store that cannot delete (Glance never owned the '
             'data)')
