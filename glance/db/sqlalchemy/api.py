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
images to scrub, claim them, record what a scrub deleted, list the URLs
live locations still use, and restore an image. Every public function is
one transaction, retried by oslo.db on deadlock and on a dropped
connection.

The claim is what makes deleting data safe whoever else works on the
database (another scrubber, a restore from another host): before any of
an image's data is touched, one transaction on the primary database
moves the image from ``pending_delete`` to ``deleted`` if, and only if,
it is still ``pending_delete``. Its ``pending_delete`` locations stay so
until their data is gone. A restore, ours or upstream's, only ever takes
a ``pending_delete`` image, so it either wins before the claim (and the
scrubber then deletes nothing) or finds the image deleted and refuses.

An image ``deleted`` with ``pending_delete`` locations is therefore an
image whose data is being deleted, or was, by a pass that may have
stopped half-way. Its ``updated_at``, set by the claim, stamps the claim:
the pass that holds it recognises its own claim by that stamp when it
records or gives the claim back, and a claim older than the claim timeout
is taken over by a later pass, which deletes whatever data is left.
"""

import contextlib
import dataclasses
import datetime
import functools
import itertools
import threading
import time

from oslo_config import cfg
from oslo_db import api as oslo_db_api
from oslo_db import exception as db_exception
from oslo_db.sqlalchemy import enginefacade
from oslo_serialization import jsonutils
from oslo_utils import timeutils
import sqlalchemy as sa
from sqlalchemy import sql

try:
    import psycopg2
except ImportError:  # a deployment on MySQL or SQLite only
    psycopg2 = None

from glance.common import exception
from glance.db.sqlalchemy import models
from glance.i18n import _

PENDING_DELETE = 'pending_delete'
DELETED = 'deleted'
ACTIVE = 'active'

_facade_lock = threading.Lock()
_facade = None
_url = None


def _sqlite_busy(error):
    # SQLite answers "database is locked" when another process kept the
    # write lock past the busy timeout, or at once when two transactions
    # would wait on each other. The transaction was rolled back: running
    # it again is what oslo.db does for a deadlock elsewhere.
    return 'database is locked' in str(error)


# PostgreSQL's answers while it shuts down, crashes or starts up
# (admin_shutdown, crash_shutdown, cannot_connect_now).
_POSTGRESQL_GOING_AWAY = frozenset(['57P01', '57P02', '57P03'])


def _postgresql_connection_lost(error):
    """Whether psycopg2 lost, or could not make, its server connection.

    oslo.db recognises the words libpq used before release 14 ("could not
    connect to server"), not those of later releases ('connection to
    server at "HOST", port P failed'), nor psycopg2's shorter ones under
    eventlet: a PostgreSQL restart would fail every statement of the
    outage instead of being waited for. An OperationalError without an
    SQLSTATE was raised by libpq itself, about the connection.
    """
    inner = getattr(error, 'inner_exception', None) or error
    driver_error = getattr(inner, 'orig', None)
    if psycopg2 is None or \
            not isinstance(driver_error, psycopg2.OperationalError):
        return False
    return driver_error.pgcode in _POSTGRESQL_GOING_AWAY or \
        driver_error.pgcode is None


def _worth_retrying(error):
    return _sqlite_busy(error) or _postgresql_connection_lost(error)


# About 15 s of retries in all (0.5, 1, 2, 4, 8 s): a server restart or a
# fail-over is waited for; a longer outage fails what the pass was doing
# (the claim, or the record: a later pass finishes it).
_retry = oslo_db_api.wrap_db_retry(
    max_retries=5, retry_interval=0.5, inc_retry_interval=True,
    retry_on_deadlock=True, retry_on_disconnect=True,
    exception_checker=_worth_retrying)

# The API calls under way, by thread: (name, monotonic start). A server
# that stops answering leaves a call waiting in the driver, where the
# caller cannot say so; whoever watches the pass can (calls_waiting).
_calls_under_way = {}


def retry_on_db_error(function):
    """An API call: retried on the errors worth it, and tracked."""
    retried = _retry(function)

    @functools.wraps(function)
    def call(*args, **kwargs):
        thread = threading.get_ident()
        _calls_under_way[thread] = (function.__name__, time.monotonic())
        try:
            return retried(*args, **kwargs)
        finally:
            _calls_under_way.pop(thread, None)
    return call


def longest_call_under_way():
    """(name, seconds) of the API call waiting longest now, or None."""
    calls = list(_calls_under_way.values())
    if not calls:
        return None
    name, started = min(calls, key=lambda call: call[1])
    return name, time.monotonic() - started


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
class Candidate:
    """An image the queue proposes; only a claim decides it is scrubbed.

    ``retaken`` marks the claim of a pass that stopped before it finished:
    its data is expected to be partly or wholly gone already.
    ``claimed_at`` is that claim's token.
    """

    id: str
    retaken: bool = False
    claimed_at: datetime.datetime = None


@dataclasses.dataclass(frozen=True)
class Claim:
    """An image this pass claimed, with the locations it is to delete.

    The locations were read in the claim's transaction, on the primary
    database, ordered by id. ``token`` is the ``updated_at`` the claim
    wrote: the record and the give-back compare it to know the claim is
    still this pass's.
    """

    image_id: str
    size: int
    token: datetime.datetime
    locations: tuple
    retaken: bool = False


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


def _replica_reader(context):
    # oslo.db's asynchronous reader: the [database] slave_connection when
    # one is set (which may lag behind), else the primary.
    return _get_facade().async_.using(context)


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
    return exception.one_line(cause)


def check_schema(context):
    """Fail with one clear error when the database cannot serve the queue.

    One cheap query per table the scrubber reads, on the primary and on
    the replica (``slave_connection``) when there is one, so that a wrong
    or unreachable database is reported at start, before any store is
    touched.

    :raises DatabaseUnavailable: the database cannot be reached or has no
        glance schema.
    """
    for session_of in (_reader, _replica_reader):
        with database_errors(), session_of(context) as session:
            _check_tables(session)


def _check_tables(session):
    for table in (models.Image, models.ImageLocation):
        try:
            session.execute(sa.select(table.id).limit(1)).all()
        except (db_exception.DBError, sa.exc.SQLAlchemyError) as error:
            if _table_missing(session, table.__tablename__):
                raise exception.DatabaseUnavailable(
                    url=safe_url(),
                    reason=_('it has no %s table: no Glance schema here. '
                             'Point [database] connection at Glance\'s '
                             'database, or create the schema with '
                             '"glance-manage db sync"')
                    % table.__tablename__) from error
            raise


def _table_missing(session, name):
    """Whether the database of *session* lacks table *name*."""
    session.rollback()
    try:
        return not sa.inspect(session.connection()).has_table(name)
    except (db_exception.DBError, sa.exc.SQLAlchemyError):
        return False


# --- the queue --------------------------------------------------------------


@retry_on_db_error
def list_pending_delete_images(context, deleted_before, marker=None,
                               limit=100):
    """Return one page of the ids of eligible images, as Candidates.

    An image is eligible when its status is pending_delete, it is
    soft-deleted and it was deleted at or before *deleted_before*. Images
    of every visibility are eligible. The page is ordered by image id and
    starts after *marker*.

    This only proposes, so the page is read from the replica when
    ``[database] slave_connection`` is set: claim_images() decides, on the
    primary.
    """
    image = models.Image
    query = (sa.select(image.id)
             .where(image.status == PENDING_DELETE,
                    image.deleted == sql.true(),
                    image.deleted_at <= deleted_before))
    return _page(context, query, marker, limit, retaken=False)


@retry_on_db_error
def list_abandoned_claims(context, claimed_before, marker=None, limit=100):
    """Return one page of images whose claim a stopped pass left behind.

    These are deleted images that still have pending_delete locations and
    were claimed at or before *claimed_before*: a pass claimed them and
    stopped (killed, say) before it recorded their locations. Their data
    may be partly or wholly gone; what is left must still be deleted.
    """
    image = models.Image
    query = (sa.select(image.id, image.updated_at)
             .where(image.status == DELETED,
                    image.deleted == sql.true(),
                    image.updated_at <= claimed_before,
                    _has_pending_location()))
    return _page(context, query, marker, limit, retaken=True)


def _has_pending_location():
    location = models.ImageLocation
    return (sa.select(location.id)
            .where(location.image_id == models.Image.id,
                   location.status == PENDING_DELETE)
            .exists())


def _page(context, query, marker, limit, retaken):
    if marker is not None:
        query = query.where(models.Image.id > marker)
    query = query.order_by(models.Image.id).limit(limit)
    with _replica_reader(context) as session:
        rows = session.execute(query).all()
    if retaken:
        return [Candidate(row.id, True, row.updated_at) for row in rows]
    return [Candidate(row.id) for row in rows]


@dataclasses.dataclass(frozen=True)
class BacklogTotals:
    """The images waiting for a scrub, for the metrics.

    ``oldest_deleted_at`` is None when nothing waits.
    """

    count: int
    oldest_deleted_at: datetime.datetime = None


@retry_on_db_error
def backlog_totals(context):
    """Count the pending_delete images and find the oldest deletion.

    Every soft-deleted pending_delete image counts, eligible yet or not
    (``scrub_time``): this is what waits for a scrubber. Read on the
    primary, so that the totals taken right after a pass do not show the
    images it has just scrubbed, as a lagging replica would.

    :returns: a BacklogTotals.
    """
    image = models.Image
    query = (sa.select(sa.func.count(image.id), sa.func.min(image.deleted_at))
             .where(image.status == PENDING_DELETE,
                    image.deleted == sql.true()))
    with _reader(context) as session:
        count, oldest = session.execute(query).one()
    return BacklogTotals(count, oldest)


@dataclasses.dataclass(frozen=True)
class ClaimedTotals:
    """The images claimed by a pass and not finished, since some time.

    ``oldest_claimed_at`` is the oldest of their claims' stamps, None
    when there is none.
    """

    count: int
    oldest_claimed_at: datetime.datetime = None


@retry_on_db_error
def claimed_totals(context, claimed_after):
    """Count the claims stamped after *claimed_after*, and find the oldest.

    A claimed image is a deleted image with pending_delete locations (see
    the module's docstring). Those whose claim is more recent than the
    takeover cutoff are the ones no pass may take yet: a pass works on
    them, or one stopped and they wait. One aggregate statement, which
    the index on updated_at narrows to the recent claims. Read on the
    primary, where the claims are written.

    :returns: a ClaimedTotals.
    """
    image = models.Image
    query = (sa.select(sa.func.count(image.id), sa.func.min(image.updated_at))
             .where(image.status == DELETED,
                    image.deleted == sql.true(),
                    image.updated_at > claimed_after,
                    _has_pending_location()))
    with _reader(context) as session:
        count, oldest = session.execute(query).one()
    return ClaimedTotals(count, oldest)


# --- claims -----------------------------------------------------------------


def claim_token():
    """The updated_at a claim writes: the time, in whole seconds.

    Whole seconds, because MySQL's DATETIME keeps no fraction: the stamp
    read back must equal the one written. Two claims of one image cannot
    share a stamp: a claim is only taken over once it is older than the
    claim timeout.
    """
    return timeutils.utcnow().replace(microsecond=0)


@retry_on_db_error
def claim_images(context, candidates, deleted_before, claimed_before,
                 token=None):
    """Claim images for scrubbing, in one transaction on the primary.

    A candidate is claimed when it is still eligible (pending_delete,
    soft-deleted, deleted at or before *deleted_before*) or when it is a
    deleted image with pending_delete locations whose claim was stamped at
    or before *claimed_before* (abandoned). Its row is locked, moved to
    (or kept at) ``deleted`` and stamped with a new claim token; its
    pending_delete locations are read in the same transaction.

    :param candidates: Candidates from the queue.
    :param token: the claim token to write (claim_token()'s); a new one
        when None.
    :returns: a list of Claim, in image id order; a candidate that is not
        claimable (restored, claimed by another pass, ...) is left out.
    """
    retaken = {candidate.id: candidate.retaken for candidate in candidates}
    if not retaken:
        return []
    token = token or claim_token()
    image = models.Image
    claimable = sa.or_(
        sa.and_(image.status == PENDING_DELETE,
                image.deleted_at <= deleted_before),
        sa.and_(image.status == DELETED,
                image.updated_at <= claimed_before,
                _has_pending_location()))
    condition = sa.and_(image.id.in_(sorted(retaken)),
                        image.deleted == sql.true(), claimable)
    with _writer(context) as session:
        sizes = _take_images(session, condition, token)
        if not sizes:
            return []
        locations = _pending_locations(session, sorted(sizes))
    return [Claim(image_id, size or 0, token,
                  tuple(locations.get(image_id, ())), retaken[image_id])
            for image_id, size in sorted(sizes.items())]


def _take_images(session, condition, token):
    """Claim the images that meet *condition*: {image id: size}.

    Where the database can say which rows an UPDATE changed (PostgreSQL,
    SQLite), one statement does it; elsewhere (MySQL, MariaDB) the rows
    are locked and read first, so that exactly those are updated.
    """
    image = models.Image
    claim = (sa.update(image).values(status=DELETED, updated_at=token)
             .execution_options(synchronize_session=False))
    if session.bind.dialect.update_returning:
        return dict(session.execute(
            claim.where(condition).returning(image.id, image.size)).all())
    sizes = dict(session.execute(
        sa.select(image.id, image.size).where(condition)
        .order_by(image.id).with_for_update()).all())
    if sizes:
        session.execute(claim.where(image.id.in_(sorted(sizes))))
    return sizes


def _pending_locations(session, image_ids):
    """{image id: [PendingLocation]} of the pending_delete locations."""
    location = models.ImageLocation
    raw_metadata = sa.type_coerce(location.meta_data, sa.Text)
    rows = session.execute(
        sa.select(location.image_id, location.id, location.value,
                  raw_metadata)
        .where(location.image_id.in_(image_ids),
               location.status == PENDING_DELETE)
        .order_by(location.image_id, location.id)).all()
    return {image_id: [PendingLocation(loc_id, url, metadata)
                       for _image, loc_id, url, metadata in group]
            for image_id, group in itertools.groupby(
                rows, key=lambda row: row[0])}


@dataclasses.dataclass(frozen=True)
class ScrubRecord:
    """What the scrub of one claimed image did, to be written down.

    :ivar deleted_location_ids: locations whose data is gone (or that
        were let go): they are marked deleted.
    :ivar finished: the image is done and stays deleted; otherwise the
        claim is given back and the image is pending_delete again.
    """

    image_id: str
    token: datetime.datetime
    deleted_location_ids: tuple = ()
    finished: bool = True


@dataclasses.dataclass(frozen=True)
class Recorded:
    """What recording found: the image's status, and whose claim it was.

    ``held`` is true when the claim recorded was still this pass's; when
    it is false, ``status`` tells what became of the image meanwhile.
    """

    status: str
    held: bool


# Bound on the ids in one IN (...) list.
IN_LIST_SIZE = 500


@retry_on_db_error
def record_scrubs(context, records):
    """Record what the scrubs of several images did, in one transaction.

    Every location listed is marked deleted (its data is gone), whoever
    holds the image now. The claim of an image that did not finish is
    given back (the image is pending_delete again), but only while it is
    still this pass's claim.

    :returns: {image id: Recorded}.
    """
    now = timeutils.utcnow()
    # (image id, location id): a location is only ever marked deleted on
    # behalf of the image it belongs to.
    deleted = [(record.image_id, location_id) for record in records
               for location_id in record.deleted_location_ids]
    with _writer(context) as session:
        for chunk in _chunks(deleted):
            _mark_locations_deleted(session, chunk, now)
        recorded = {}
        for chunk in _chunks(records):
            recorded.update(_check_claims(session, chunk))
        given_back = [record.image_id for record in records
                      if not record.finished and
                      recorded[record.image_id].held]
        for chunk in _chunks(given_back):
            _give_back(session, chunk, now)
        for image_id in given_back:
            recorded[image_id] = Recorded(PENDING_DELETE, held=True)
        return recorded


def _chunks(items):
    for start in range(0, len(items), IN_LIST_SIZE):
        yield items[start:start + IN_LIST_SIZE]


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


def _check_claims(session, records):
    """Lock the images of *records*; {image id: Recorded}."""
    image = models.Image
    rows = dict((image_id, (status, stamp)) for image_id, status, stamp in
                session.execute(
                    sa.select(image.id, image.status, image.updated_at)
                    .where(image.id.in_([record.image_id
                                         for record in records]))
                    .with_for_update()).all())
    recorded = {}
    for record in records:
        status, stamp = rows.get(record.image_id, (None, None))
        recorded[record.image_id] = Recorded(
            status, status == DELETED and stamp == record.token)
    return recorded


def _give_back(session, image_ids, now):
    image = models.Image
    session.execute(
        sa.update(image)
        .where(image.id.in_(image_ids), image.status == DELETED)
        .values(status=PENDING_DELETE, updated_at=now)
        .execution_options(synchronize_session=False))


# --- the images that may need some data -------------------------------------

# Bound on the suffixes one find_data_users() statement compares with.
SUFFIXES_PER_STATEMENT = 10000


def _data_user_rows():
    """The locations whose image may still need their data, by id.

    Those that are not deleted (their image is live) and the
    pending_delete locations of pending_delete images (a restore can
    bring them back).
    """
    location = models.ImageLocation
    image = models.Image
    restorable = (sa.select(image.id)
                  .where(image.id == location.image_id,
                         image.status == PENDING_DELETE)
                  .exists())
    return (sa.select(location.id, location.image_id, location.value)
            .where(sa.or_(location.deleted == sql.false(),
                          sa.and_(location.status == PENDING_DELETE,
                                  restorable)))
            .order_by(location.id))


@retry_on_db_error
def data_users(context, after_id=None, limit=None):
    """Locations whose image may still need their data, and the highest id.

    Those are the locations that are not deleted (their image is live) and
    the pending_delete locations of pending_delete images (a restore can
    bring them back). Read on the primary: whether another image may need
    some data decides whether it is deleted. *after_id* (the highest id
    of an earlier call) reads only the locations added since: new rows get
    higher ids. With *limit*, at most that many, the lowest ids first (to
    read them all a page at a time).

    :returns: ([(id, image id, value)], highest id in the table or None).
    """
    location = models.ImageLocation
    query = _data_user_rows()
    if limit is not None:
        query = query.limit(limit)
    with _writer(context) as session:
        highest = session.execute(
            sa.select(sa.func.max(location.id))).scalar()
        if after_id is not None:
            if highest is None or highest <= after_id:
                return [], highest
            # The new rows only, found by the primary key: no join.
            query = query.where(location.id > after_id)
        return session.execute(query).all(), highest


@retry_on_db_error
def highest_location_id(context):
    """The highest location id now, on the primary; None if none."""
    with _writer(context) as session:
        return session.execute(
            sa.select(sa.func.max(models.ImageLocation.id))).scalar()


@retry_on_db_error
def find_data_users(context, suffixes, plain_endings, odd_characters):
    """The data users (see data_users()) whose value may end with a suffix.

    The value ends with one of *suffixes*, or its last character is not
    one of *plain_endings*, or it holds one of *odd_characters*: the
    caller knows that any other form of the URLs at stake is among
    these. Only a filter: the caller compares what it gets. Read on the
    primary. No index serves a suffix: each statement reads the location
    table once, however many suffixes it compares, so ask for many at a
    time.

    :param suffixes: strings; the values are compared by their last
        ``len(suffix)`` characters.
    :returns: [(id, image id, value)], in id order.
    """
    suffixes = sorted(set(suffixes))
    rows = {}
    with _writer(context) as session:
        for start in range(0, len(suffixes), SUFFIXES_PER_STATEMENT):
            query = _data_user_rows().where(_ends_with_one_of(
                session.bind.dialect.name,
                suffixes[start:start + SUFFIXES_PER_STATEMENT],
                plain_endings, odd_characters))
            rows.update((row.id, row) for row in session.execute(query))
    return [rows[location_id] for location_id in sorted(rows)]


def _ends_with_one_of(dialect, suffixes, plain_endings, odd_characters):
    value = models.ImageLocation.value

    def ending(length):
        if dialect == 'sqlite':
            return sa.func.substr(value, -length)
        return sa.func.right(value, length)

    by_length = {}
    for suffix in suffixes:
        by_length.setdefault(len(suffix), []).append(suffix)
    # One hashed IN list per length: a cheap test of each row.
    return sa.or_(
        *[ending(length).in_(group) for length, group in by_length.items()],
        ending(1).not_in(sorted(plain_endings)),
        *[value.contains(character, autoescape=True)
          for character in odd_characters])


@retry_on_db_error
def list_pending_locations(context, image_ids):
    """{image id: [PendingLocation]} of some images, read on the primary."""
    with _writer(context) as session:
        return _pending_locations(session, list(image_ids))


# --- the backlog, read only -------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BacklogImage:
    """A pending_delete image as --list and --dry-run show it.

    ``locations`` are its pending_delete locations (PendingLocation), in
    id order: the ones a pass would delete, in that order.
    """

    id: str
    deleted_at: datetime.datetime
    size: int
    locations: tuple


@retry_on_db_error
def list_backlog(context, marker=None, limit=500, deleted_before=None):
    """Return one page of the pending_delete images, as BacklogImages.

    Read only: nothing is claimed or written, so it is safe while passes
    run. The page holds the pending_delete, soft-deleted images ordered
    by id after *marker*, with their pending_delete locations; with
    *deleted_before*, only those deleted at or before it (the images a
    pass would take). Read on the primary: an operator asks what is there
    now, and a replica may lag.
    """
    image = models.Image
    query = (sa.select(image.id, image.deleted_at, image.size)
             .where(image.status == PENDING_DELETE,
                    image.deleted == sql.true()))
    if deleted_before is not None:
        query = query.where(image.deleted_at <= deleted_before)
    return [BacklogImage(row.id, row.deleted_at, row.size, locations)
            for row, locations in _page_with_locations(context, query,
                                                       marker, limit)]


def _page_with_locations(context, query, marker, limit):
    """(row, its pending_delete locations) of one page of images by id.

    *query* selects images with an ``id`` column; the page starts after
    *marker*.
    """
    if marker is not None:
        query = query.where(models.Image.id > marker)
    query = query.order_by(models.Image.id).limit(limit)
    with _reader(context) as session:
        rows = session.execute(query).all()
        locations = (_pending_locations(session, [row.id for row in rows])
                     if rows else {})
    return [(row, tuple(locations.get(row.id, ()))) for row in rows]


@dataclasses.dataclass(frozen=True)
class ClaimedImage:
    """An image a pass claimed and has not finished, as --list shows it.

    ``claimed_at`` is its claim's stamp; ``locations`` are the
    pending_delete locations left, in id order.
    """

    id: str
    claimed_at: datetime.datetime
    size: int
    locations: tuple


@retry_on_db_error
def list_claimed(context, marker=None, limit=500):
    """Return one page of the claimed, unfinished images: ClaimedImages.

    Every deleted image with pending_delete locations, whoever claimed it
    and however long ago, ordered by id after *marker*. Read only, on the
    primary, like list_backlog().
    """
    image = models.Image
    query = (sa.select(image.id, image.updated_at, image.size)
             .where(image.status == DELETED,
                    image.deleted == sql.true(),
                    _has_pending_location()))
    return [ClaimedImage(row.id, row.updated_at, row.size, locations)
            for row, locations in _page_with_locations(context, query,
                                                       marker, limit)]


# --- restore ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RestoreCandidate:
    """A pending_delete image as a restore finds it, before the store check.

    ``deleted_at`` is the image's: glance-api soft-deleted its properties,
    tags and members with that same time.
    """

    image_id: str
    deleted_at: datetime.datetime
    locations: tuple


@dataclasses.dataclass(frozen=True)
class Restored:
    """What a restore brought back (counts of rows)."""

    locations: int
    properties: int = 0
    tags: int = 0
    members: int = 0
    locations_gone: int = 0
    property_names: tuple = ()


@retry_on_db_error
def find_restorable(context, image_id):
    """Read, on the primary, a pending_delete image and its locations.

    :returns: a RestoreCandidate.
    :raises NotFound: there is no such image.
    :raises Conflict: the image is not pending_delete (a scrub pass claimed
        it, or it is not deleted at all), or it has no pending_delete
        location left.
    """
    image = models.Image
    with _writer(context) as session:
        row = session.execute(
            sa.select(image.status, image.deleted, image.deleted_at)
            .where(image.id == image_id)).one_or_none()
        if row is None:
            raise exception.NotFound(image_id=image_id)
        locations = _pending_locations(session, [image_id]).get(image_id, [])
    if row.status == DELETED and locations:
        raise exception.Conflict(_being_scrubbed_message(image_id),
                                 image_id=image_id, status=row.status)
    if row.status != PENDING_DELETE:
        raise exception.Conflict(image_id=image_id, status=row.status)
    if not row.deleted or row.deleted_at is None:
        raise exception.Conflict(
            _('Image %s is pending_delete but not deleted: its rows are '
              'not as glance-api leaves them; not restored.') % image_id,
            image_id=image_id, status=row.status)
    if not locations:
        raise exception.Conflict(_no_data_message(image_id),
                                 image_id=image_id, status=row.status)
    return RestoreCandidate(image_id, row.deleted_at, tuple(locations))


@retry_on_db_error
def restore_image(context, candidate, present_ids):
    """Bring a pending_delete image back to active, as glance-api had it.

    In one transaction, and only if the image is still pending_delete
    with the same deletion time (compare-and-set: a scrub pass that
    claimed it meanwhile wins): the image becomes active and not deleted;
    each of *present_ids* that is still pending_delete becomes active and
    not deleted; the other pending_delete locations of *candidate*, whose
    data is gone, are marked deleted; and the properties, tags and
    members that glance-api soft-deleted together with the image are
    undeleted (see _undelete_children and _undelete_properties).

    :param candidate: the RestoreCandidate read by find_restorable().
    :param present_ids: ids of the locations whose data the store still
        has.
    :returns: a Restored.
    :raises Conflict: the image changed since it was read, or none of
        *present_ids* could be restored; nothing was written.
    """
    now = timeutils.utcnow()
    image = models.Image
    with _writer(context) as session:
        # The write comes first: on SQLite it takes the write lock before
        # anything is read.
        taken = session.execute(
            sa.update(image)
            .where(image.id == candidate.image_id,
                   image.status == PENDING_DELETE,
                   image.deleted == sql.true(),
                   image.deleted_at == candidate.deleted_at)
            .values(status=ACTIVE, deleted=False, deleted_at=None,
                    updated_at=now)
            .execution_options(synchronize_session=False)).rowcount
        if taken != 1:
            raise _changed_meanwhile(session, candidate.image_id)
        restored = _undelete_locations(session, candidate.image_id,
                                       present_ids, now)
        if not restored:
            raise exception.Conflict(_no_data_message(candidate.image_id),
                                     image_id=candidate.image_id,
                                     status=PENDING_DELETE)
        gone = [location.id for location in candidate.locations
                if location.id not in set(present_ids)]
        if gone:
            _mark_locations_deleted(
                session, [(candidate.image_id, loc_id) for loc_id in gone],
                now)
        properties = _undelete_properties(session, candidate, now)
        tags = _undelete_children(session, models.ImageTag, candidate, now)
        members = _undelete_children(session, models.ImageMember,
                                     candidate, now)
    return Restored(restored, len(properties), tags, members,
                    locations_gone=len(gone),
                    property_names=tuple(sorted(properties)))


# How long before the image's own deleted_at glance-api may have deleted its
# properties: in the same request, in a transaction of their own.
PROPERTY_PURGE_WINDOW = datetime.timedelta(seconds=60)


def _changed_meanwhile(session, image_id):
    status = session.execute(
        sa.select(models.Image.status)
        .where(models.Image.id == image_id)).scalar_one_or_none()
    if status is None:
        return exception.NotFound(image_id=image_id)
    if status == DELETED:
        return exception.Conflict(_being_scrubbed_message(image_id),
                                  image_id=image_id, status=status)
    if status == PENDING_DELETE:
        return exception.Conflict(
            _('Image %s changed while it was being restored (it was '
              'deleted again); nothing was restored, try again.') % image_id,
            image_id=image_id, status=status)
    return exception.Conflict(image_id=image_id, status=status)


def _undelete_locations(session, image_id, location_ids, now):
    if not location_ids:
        return 0
    location = models.ImageLocation
    return session.execute(
        sa.update(location)
        .where(location.image_id == image_id,
               location.id.in_(list(location_ids)),
               location.status == PENDING_DELETE)
        .values(status=ACTIVE, deleted=False, deleted_at=None,
                updated_at=now)
        .execution_options(synchronize_session=False)).rowcount


def _undelete_children(session, model, candidate, now):
    """Undelete the tags or members glance-api deleted with the image.

    image_destroy() gives them the image's own deleted_at; a tag or
    member removed earlier, while the image was active, stays removed.
    """
    return session.execute(
        sa.update(model)
        .where(model.image_id == candidate.image_id,
               model.deleted == sql.true(),
               model.deleted_at == candidate.deleted_at)
        .values(deleted=False, deleted_at=None, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount


def _undelete_properties(session, candidate, now):
    """Undelete the properties glance-api deleted with the image.

    Before image_destroy(), glance-api's delete purges the image's
    properties one by one (image_update with purge_props), each with a
    deleted_at of its own, just before the image's: so they are the ones
    deleted in the PROPERTY_PURGE_WINDOW before it. That purge deletes
    again, with a new deleted_at, the properties removed earlier while the
    image was active (glance 33.0.0 and earlier): the database no longer
    tells them apart, and they come back too.

    :returns: the names of the properties undeleted.
    """
    prop = models.ImageProperty
    deleted_with_image = sa.and_(
        prop.image_id == candidate.image_id, prop.deleted == sql.true(),
        prop.deleted_at <= candidate.deleted_at,
        prop.deleted_at >= candidate.deleted_at - PROPERTY_PURGE_WINDOW)
    names = session.execute(
        sa.select(prop.name).where(deleted_with_image)).scalars().all()
    if names:
        session.execute(
            sa.update(prop).where(deleted_with_image)
            .values(deleted=False, deleted_at=None, updated_at=now)
            .execution_options(synchronize_session=False))
    return names


def _no_data_message(image_id):
    return _("Image %s has no data left in its stores (no pending_delete "
             "location holds any): it cannot be restored.") % image_id


def _being_scrubbed_message(image_id):
    return _("Image %s is being scrubbed: a scrub pass claimed it and its "
             "data is being, or has been, deleted; it cannot be "
             "restored.") % image_id
