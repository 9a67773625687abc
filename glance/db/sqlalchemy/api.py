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

"""The queries of the scrubber, through oslo.db's enginefacade.

Only what the scrubber needs lives here: page through the queue of
eligible images with their pending_delete locations, read one image's
status (StatusReader), record what a scrub deleted, and restore an
image. Every public function is one transaction, retried by oslo.db on
deadlock and on a dropped connection.
"""

import contextlib
import dataclasses
import threading

from oslo_config import cfg
from oslo_db import api as oslo_db_api
from oslo_db import exception as db_exception
from oslo_db.sqlalchemy import enginefacade
from oslo_serialization import jsonutils
from oslo_utils import timeutils
import sqlalchemy as sa
from sqlalchemy import sql

from glance.common import exception
from glance.db.sqlalchemy import models
from glance.i18n import _

PENDING_DELETE = 'pending_delete'
DELETED = 'deleted'
ACTIVE = 'active'

_facade_lock = threading.Lock()
_facade = None
_url = None

retry_on_db_error = oslo_db_api.wrap_db_retry(
    max_retries=5, retry_interval=0.5, inc_retry_interval=True,
    retry_on_deadlock=True, retry_on_disconnect=True)


@dataclasses.dataclass(frozen=True)
class PendingLocation:
    """One pending_delete location of an image: a store URL to delete.

    ``meta_data`` is kept as the JSON text the row holds and parsed by
    ``store_name()``, so that one corrupt row fails its own image only.
    """

    id: int
    url: str
    meta_data: str = None

    def store_name(self):
        """The backend named in the location's metadata, or None.

        :raises ValueError: the metadata is not a JSON object.
        """
        if not self.meta_data:
            return None
        metadata = jsonutils.loads(self.meta_data)
        if not isinstance(metadata, dict):
            raise ValueError(_('location metadata is not a JSON object'))
        return metadata.get('store')


@dataclasses.dataclass(frozen=True)
class PendingImage:
    """An eligible image with its pending_delete locations, in order."""

    id: str
    size: int
    locations: tuple


def configure(connection=None, **engine_options):
    """Point the API at a database; read once at start.

    :param connection: an SQLAlchemy URL; None keeps ``[database]
        connection`` from the configuration.
    :param engine_options: further oslo.db engine options
        (``max_pool_size``, ...).
    """
    global _facade, _url
    facade = enginefacade.transaction_context()
    options = dict(engine_options)
    if connection is not None:
        options['connection'] = connection
    if options:
        facade.configure(**options)
    with _facade_lock:
        old, _facade = _facade, facade
        _url = connection or cfg.CONF.database.connection
    if old is not None:
        _dispose(old)


def reset():
    """Forget the configured database and close its connections."""
    global _facade
    with _facade_lock:
        old, _facade = _facade, None
    if old is not None:
        _dispose(old)


def _dispose(facade):
    try:
        facade.writer.get_engine().dispose()
    except Exception:  # noqa: BLE001 - the engine may never have started
        pass


def _get_facade():
    with _facade_lock:
        if _facade is None:
            raise RuntimeError('glance.db.sqlalchemy.api is not configured')
        return _facade


def get_engine():
    """Return the writer engine (for schema checks and migrations)."""
    return _get_facade().writer.get_engine()


def _reader(context):
    return _get_facade().reader.using(context)


def _writer(context):
    return _get_facade().writer.using(context)


def safe_url():
    """The configured database URL with its password masked."""
    try:
        return sa.engine.make_url(_url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as such
        return '<malformed URL>'


@contextlib.contextmanager
def database_errors():
    """Turn a failure to reach or use the database into one clear error."""
    try:
        yield
    except (db_exception.DBError, sa.exc.SQLAlchemyError, ImportError,
            ValueError) as error:
        raise exception.DatabaseUnavailable(url=safe_url(),
                                            reason=_describe(error))


def _describe(error):
    cause = getattr(error, 'inner_exception', None) or error
    cause = getattr(cause, 'orig', None) or cause
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


def check_schema(context):
    """Fail with one clear error when the database cannot serve the queue.

    One cheap query per table the scrubber reads, so that a wrong or
    unreachable ``connection`` is reported at start, before any store is
    touched.

    :raises DatabaseUnavailable: the database cannot be reached or has no
        glance schema.
    """
    with database_errors(), _reader(context) as session:
        for table in (models.Image, models.ImageLocation):
            session.execute(sa.select(table.id).limit(1)).all()


@retry_on_db_error
def list_pending_delete_images(context, deleted_before, marker=None,
                               limit=100):
    """Return one page of eligible images, with their locations.

    An image is eligible when its status is pending_delete, it is
    soft-deleted and it was deleted at or before *deleted_before*. Only
    its pending_delete locations are returned, ordered by location id. An
    eligible image whose locations were all deleted already (an earlier
    pass was interrupted before recording the image) is returned with no
    locations, so that it is finished rather than stranded.

    Images of every visibility are eligible. The page is ordered by image
    id and starts after *marker*; it is read in one round trip.

    :returns: a list of PendingImage, at most *limit* long.
    """
    image = models.Image
    location = models.ImageLocation
    page = (sa.select(image.id, image.size)
            .where(image.status == PENDING_DELETE,
                   image.deleted == sql.true(),
                   image.deleted_at <= deleted_before))
    if marker is not None:
        page = page.where(image.id > marker)
    page = page.order_by(image.id).limit(limit).subquery('page')
    raw_metadata = sa.type_coerce(location.meta_data, sa.Text)
    query = (sa.select(page.c.id, page.c.size, location.id, location.value,
                       raw_metadata)
             .select_from(page.outerjoin(
                 location, sa.and_(location.image_id == page.c.id,
                                   location.status == PENDING_DELETE)))
             .order_by(page.c.id, location.id))
    with _reader(context) as session:
        rows = session.execute(query).all()
    return _group_rows(rows)


def _group_rows(rows):
    images = []
    current_id, size, locations = None, None, []
    for image_id, image_size, loc_id, url, metadata in rows:
        if image_id != current_id:
            if current_id is not None:
                images.append(PendingImage(current_id, size,
                                           tuple(locations)))
            current_id, size, locations = image_id, image_size or 0, []
        if loc_id is not None:
            locations.append(PendingLocation(loc_id, url, metadata))
    if current_id is not None:
        images.append(PendingImage(current_id, size, tuple(locations)))
    return images


_STATUS_QUERY = sa.select(models.Image.status).where(
    models.Image.id == sa.bindparam('image_id'))


class StatusReader:
    """Reads image statuses over connections kept between reads.

    A pass re-reads the status of each image right before deleting its
    data. A connection taken from the pool for each read would cost a
    ping at checkout and a rollback at checkin; the reader keeps its
    autocommit connections instead (one per worker reading at once) until
    release(), and a read is the SELECT alone (plus a COMMIT on MySQL).

    Safe for concurrent use by threads and green threads.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._idle = []

    @retry_on_db_error
    def status(self, image_id):
        """The status of an image, or None when there is no such row."""
        connection = self._take()
        try:
            status = connection.execute(
                _STATUS_QUERY, {'image_id': image_id}).scalar_one_or_none()
            # End the transaction SQLAlchemy began: oslo.db makes it a
            # real one on SQLite, whose read lock would block the pass's
            # own writes.
            connection.commit()
        except BaseException:
            # After an error (a restarted server, say) the kept connections
            # may all be dead: none is kept, the retry takes (and pings) a
            # new one from the pool.
            connection.close()
            self.release()
            raise
        with self._lock:
            self._idle.append(connection)
        return status

    def release(self):
        """Give the kept connections back to the pool."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        engine = _get_facade().reader.get_engine()
        return engine.connect().execution_options(
            isolation_level='AUTOCOMMIT')


@dataclasses.dataclass(frozen=True)
class ScrubRecord:
    """What the scrub of one image deleted, to be written down."""

    image_id: str
    deleted_location_ids: tuple = ()
    image_done: bool = False


# Bound on the ids in one IN (...) list.
IN_LIST_SIZE = 500


@retry_on_db_error
def record_scrubs(context, records):
    """Record what the scrubs of several images deleted, in one transaction.

    Each location listed in a record is marked deleted (its data is gone).
    The images of the records whose ``image_done`` is set move from
    pending_delete to deleted, each only if it is still pending_delete and
    none of its locations is (compare-and-set: an image restored meanwhile
    stays restored). A handful of statements serve the whole batch.

    :returns: the set of image ids marked deleted.
    """
    now = timeutils.utcnow()
    # (image id, location id): a location is only ever marked deleted on
    # behalf of the image it belongs to.
    deleted = [(record.image_id, location_id) for record in records
               for location_id in record.deleted_location_ids]
    done_ids = [record.image_id for record in records if record.image_done]
    with _writer(context) as session:
        for chunk in _chunks(deleted):
            _mark_locations_deleted(session, chunk, now)
        finished = set()
        for chunk in _chunks(done_ids):
            finished |= _finish_images(session, chunk, now)
        return finished


def _chunks(ids):
    for start in range(0, len(ids), IN_LIST_SIZE):
        yield ids[start:start + IN_LIST_SIZE]


def _mark_locations_deleted(session, pairs, now):
    location = models.ImageLocation
    # The plain id list lets every database use the primary key; the pairs
    # make sure each location belongs to the image it is recorded for.
    session.execute(
        sa.update(location)
        .where(location.id.in_([location_id for _image, location_id
                                in pairs]),
               sa.tuple_(location.image_id, location.id).in_(pairs),
               location.status == PENDING_DELETE)
        .values(status=DELETED, deleted=True, updated_at=now,
                deleted_at=sa.func.coalesce(location.deleted_at, now))
        .execution_options(synchronize_session=False))


def _finish_images(session, image_ids, now):
    """Mark deleted those of *image_ids* that can be; return their ids."""
    image = models.Image
    location = models.ImageLocation
    pending_location = (sa.select(location.id)
                        .where(location.image_id == image.id,
                               location.status == PENDING_DELETE)
                        .exists())
    # Lock the rows that qualify, so that exactly those are updated and the
    # caller learns which ones (UPDATE ... RETURNING is not everywhere).
    finishable = set(session.execute(
        sa.select(image.id)
        .where(image.id.in_(image_ids), image.status == PENDING_DELETE,
               ~pending_location)
        .with_for_update()).scalars())
    if finishable:
        session.execute(
            sa.update(image)
            .where(image.id.in_(finishable), image.status == PENDING_DELETE)
            .values(status=DELETED, updated_at=now)
            .execution_options(synchronize_session=False))
    return finishable


@retry_on_db_error
def restore_image(context, image_id):
    """Bring a pending_delete image back to active, with its locations.

    The image becomes active and not deleted, and each of its
    pending_delete locations becomes active and not deleted, so its data
    can be downloaded again.

    :returns: the number of locations restored.
    :raises NotFound: there is no such image.
    :raises Conflict: the image is not pending_delete, or none of its data
        is left to restore.
    """
    now = timeutils.utcnow()
    with _writer(context) as session:
        status = session.execute(
            sa.select(models.Image.status)
            .where(models.Image.id == image_id)
            .with_for_update()).scalar_one_or_none()
        if status is None:
            raise exception.NotFound(image_id=image_id)
        if status != PENDING_DELETE:
            raise exception.Conflict(image_id=image_id, status=status)
        restored = _restore_locations(session, image_id, now)
        if not restored:
            raise exception.Conflict(
                _no_data_message(image_id), image_id=image_id, status=status)
        session.execute(
            sa.update(models.Image)
            .where(models.Image.id == image_id,
                   models.Image.status == PENDING_DELETE)
            .values(status=ACTIVE, deleted=False, deleted_at=None,
                    updated_at=now)
            .execution_options(synchronize_session=False))
        return restored


def _restore_locations(session, image_id, now):
    location = models.ImageLocation
    result = session.execute(
        sa.update(location)
        .where(location.image_id == image_id,
               location.status == PENDING_DELETE)
        .values(status=ACTIVE, deleted=False, deleted_at=None,
                updated_at=now)
        .execution_options(synchronize_session=False))
    return result.rowcount


def _no_data_message(image_id):
    return _("Image %s has no pending_delete location left: its data was "
             "already scrubbed, so it cannot be restored.") % image_id
