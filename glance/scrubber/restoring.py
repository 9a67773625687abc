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

"""``--restore``: bring a pending_delete image back as glance-api had it.
"""

from oslo_log import log as logging

from glance.common import exception
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _
from glance.scrubber import lock as scrub_lock
from glance.scrubber.stores import errors

LOG = logging.getLogger('glance.scrubber')


def restore(context, image_id, lock_path, deleter):
    """Restore a pending_delete image as glance-api had it before deletion.

    Each pending_delete location's data is looked up in its store first:
    only the locations whose data is there come back. The database then
    restores the image, those locations, and the properties, tags and
    members deleted with it, in one compare-and-set transaction that a
    scrub pass's claim excludes.

    :param deleter: a StoreDeleter, to look the data up.
    :returns: a db_api.Restored.
    :raises ScrubberBusy: a pass or a restore on this host holds the lock.
    :raises NotFound, Conflict: see db_api.find_restorable; Conflict too
        when no location has data left, or the store cannot tell.
    :raises StoreUnavailable: a store did not answer the look-up within
        ``scrub_store_timeout``, or could not be reached; nothing changed.
    """
    lock = scrub_lock.ScrubLock(lock_path, scrub_lock.RESTORE)
    if not lock.acquire(blocking=False):
        raise exception.ScrubberBusy(holder=lock.holder(), lock=lock.path)
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
        except errors.StoreOutage as outage:
            raise exception.StoreUnavailable(reason=_(
                'store %(store)s: %(error)s; image %(image)s not restored, '
                'it stays pending_delete: try again once the store answers')
                % {'store': outage.store, 'error': outage,
                   'image': candidate.image_id})
        except errors.LocationError as error:
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
