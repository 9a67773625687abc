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

"""glance.db.sqlalchemy.api against real SQLite, MariaDB and PostgreSQL.

Rows are written as glance-api leaves them (glance.tests.seed) and read
back with plain SQL, so every assertion is on what the database holds.

One database per backend serves this module (creating one per test would
dominate the run time); each test starts from empty tables and a freshly
configured API.
"""

import datetime
import threading
import time

from oslo_utils import timeutils
import pytest
import sqlalchemy as sa

from glance.common import exception
from glance import context as glance_context
from glance.db.sqlalchemy import api
from glance.db.sqlalchemy import models
from glance.tests import databases
from glance.tests import seed
from glance.tests.unit.db import set_up_database

IMAGES = models.Image.__table__
LOCATIONS = models.ImageLocation.__table__
SCRUB_TIME = datetime.timedelta(seconds=60)
TRANSACTION_CONTROL = ('BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT',
                       'RELEASE')


@pytest.fixture(scope='module', params=databases.BACKENDS)
def database(request):
    database = set_up_database(request.param)
    request.addfinalizer(database.cleanUp)
    return database


@pytest.fixture
def db(database):
    with database.engine.begin() as connection:
        connection.execute(LOCATIONS.delete())
        connection.execute(IMAGES.delete())
    api.configure(connection=database.url, max_retries=1, retry_interval=0)
    yield database
    api.reset()


@pytest.fixture
def context():
    return glance_context.get_admin_context()


def cutoff():
    """deleted_before as the scrubber computes it, with scrub_time 60 s."""
    return timeutils.utcnow() - SCRUB_TIME


def pending(*urls, store=None):
    return [seed.Location(url, store=store) for url in urls]


def update_image(engine, image_id, **values):
    with engine.begin() as connection:
        connection.execute(IMAGES.update()
                           .where(IMAGES.c.id == image_id).values(**values))


def location_ids(engine, image_id):
    with engine.connect() as connection:
        return list(connection.scalars(
            sa.select(LOCATIONS.c.id).where(LOCATIONS.c.image_id == image_id)
            .order_by(LOCATIONS.c.id)))


def location_rows(engine, image_id):
    """[(status, deleted, deleted_at is set)] in id order."""
    with engine.connect() as connection:
        return [(status, bool(deleted), deleted_at is not None)
                for status, deleted, deleted_at in connection.execute(
                    sa.select(LOCATIONS.c.status, LOCATIONS.c.deleted,
                              LOCATIONS.c.deleted_at)
                    .where(LOCATIONS.c.image_id == image_id)
                    .order_by(LOCATIONS.c.id))]


def snapshot(engine):
    """Every row of both tables, to prove that a refusal changed nothing."""
    with engine.connect() as connection:
        return (
            [tuple(row) for row in connection.execute(
                sa.select(IMAGES).order_by(IMAGES.c.id))],
            [tuple(row) for row in connection.execute(
                sa.select(LOCATIONS).order_by(LOCATIONS.c.id))])


def record_one(context, image_id, deleted_location_ids, image_done):
    """record_scrubs() for one image: True when it was marked deleted."""
    record = api.ScrubRecord(image_id, tuple(deleted_location_ids),
                             image_done)
    return image_id in api.record_scrubs(context, [record])


def listed_ids(context, **kwargs):
    return [image.id for image in
            api.list_pending_delete_images(context, cutoff(), **kwargs)]


class StatementCounter:
    """Counts the SQL statements an engine sends, transaction control aside.

    oslo.db sends an explicit BEGIN on SQLite (embedded, no round trip);
    that is demarcation, not a query, so it is not counted.
    """

    def __init__(self, engine):
        self.engine = engine
        self.statements = []

    def _record(self, conn, cursor, statement, parameters, context,
                executemany):
        if not statement.lstrip().upper().startswith(TRANSACTION_CONTROL):
            self.statements.append(statement)

    def __enter__(self):
        sa.event.listen(self.engine, 'before_cursor_execute', self._record)
        return self

    def __exit__(self, *exc_info):
        sa.event.remove(self.engine, 'before_cursor_execute', self._record)

    def take(self):
        statements, self.statements = self.statements, []
        return statements


# list_pending_delete_images

def test_lists_only_eligible_images(db, context):
    eligible = [seed.Image(pending('file:///e%d' % i)) for i in range(2)]
    # Each decoy differs from an eligible image in exactly one respect.
    active = seed.Image(pending('file:///active'), status='active')
    scrubbed = seed.Image(pending('file:///done'), status='deleted')
    not_deleted = seed.Image(pending('file:///kept'))
    too_young = seed.Image(pending('file:///young'), deleted_seconds_ago=5)
    seed.insert(db.engine, eligible + [active, scrubbed, not_deleted,
                                       too_young])
    # deleted_at stays old: only the deleted flag keeps it out.
    update_image(db.engine, not_deleted.id, deleted=False)

    assert listed_ids(context) == sorted(image.id for image in eligible)


def test_image_deleted_exactly_at_cutoff_is_eligible(db, context):
    image = seed.Image(pending('file:///edge'))
    seed.insert(db.engine, [image])
    edge = timeutils.utcnow().replace(microsecond=0) - SCRUB_TIME
    update_image(db.engine, image.id, deleted_at=edge)

    listed = api.list_pending_delete_images(context, edge)

    assert [found.id for found in listed] == [image.id]


def test_lists_only_pending_locations_in_id_order(db, context):
    image = seed.Image([
        seed.Location('file:///z-first'),
        seed.Location('file:///gone', status='deleted'),
        seed.Location('file:///live', status='active'),
        seed.Location('file:///a-last', store='cheap'),
    ], size=4096)
    other = seed.Image(pending('file:///other'))
    seed.insert(db.engine, [image, other])
    ids = location_ids(db.engine, image.id)

    listed = {found.id: found for found in
              api.list_pending_delete_images(context, cutoff())}

    locations = listed[image.id].locations
    assert [loc.url for loc in locations] == ['file:///z-first',
                                              'file:///a-last']
    assert [loc.id for loc in locations] == [ids[0], ids[3]]
    assert [loc.store_name() for loc in locations] == [None, 'cheap']
    assert listed[image.id].size == 4096
    assert [loc.url for loc in listed[other.id].locations] == [
        'file:///other']


def test_every_visibility_is_eligible(db, context):
    # Upstream's admin listing misses 'community' images: never here.
    images = [seed.Image(pending('file:///%s' % visibility),
                         visibility=visibility)
              for visibility in ('private', 'public', 'shared', 'community')]
    seed.insert(db.engine, images)

    assert listed_ids(context) == sorted(image.id for image in images)


def test_stranded_image_is_listed_without_locations(db, context):
    # An earlier pass deleted every location but not the image row.
    stranded = seed.Image([seed.Location('file:///s1', status='deleted'),
                           seed.Location('file:///s2', status='deleted')])
    bare = seed.Image([])
    seed.insert(db.engine, [stranded, bare])

    listed = api.list_pending_delete_images(context, cutoff())

    assert sorted((image.id, image.locations) for image in listed) == sorted(
        [(stranded.id, ()), (bare.id, ())])


def test_pages_return_every_image_once_in_one_query_each(db, context):
    eligible = [seed.Image(pending('file:///%d-a' % i, 'file:///%d-b' % i))
                for i in range(11)]
    decoys = [seed.Image(pending('file:///young%d' % i),
                         deleted_seconds_ago=1) for i in range(5)]
    seed.insert(db.engine, eligible + decoys)
    limit, marker, pages, seen = 3, None, 0, []

    with StatementCounter(api.get_engine()) as counter:
        while True:
            page = api.list_pending_delete_images(context, cutoff(),
                                                  marker=marker, limit=limit)
            assert len(counter.take()) == 1
            pages += 1
            assert len(page) <= limit
            seen += page
            if len(page) < limit:
                break
            marker = page[-1].id

    assert [image.id for image in seen] == sorted(i.id for i in eligible)
    assert pages == 4
    # Two locations per image: the limit counts images, not joined rows.
    assert all(len(image.locations) == 2 for image in seen)


def test_one_query_per_call_for_a_full_page(db, context):
    seed.insert(db.engine, [seed.Image(pending('file:///%d' % i))
                            for i in range(5)])

    with StatementCounter(api.get_engine()) as counter:
        api.list_pending_delete_images(context, cutoff(), limit=100)
        statements = counter.take()

    assert len(statements) == 1, statements


# StatusReader

@pytest.fixture
def reader(db):
    reader = api.StatusReader()
    yield reader
    reader.release()


@pytest.fixture
def image_id(db):
    image = seed.Image(pending('file:///x'))
    seed.insert(db.engine, [image])
    return image.id


class PoolEvents:
    """Records checkouts, checkins and resets of the API's engine pool."""

    NAMES = ('checkout', 'checkin', 'reset')

    def __init__(self):
        self.pool = api.get_engine().pool
        self.events = []
        self._listeners = [
            (name, lambda *args, name=name: self.events.append(name))
            for name in self.NAMES]

    def __enter__(self):
        for name, listener in self._listeners:
            sa.event.listen(self.pool, name, listener)
        return self

    def __exit__(self, *exc_info):
        for name, listener in self._listeners:
            sa.event.remove(self.pool, name, listener)


def test_status_reader_reads_the_current_status(db, reader, image_id):
    assert reader.status(image_id) == 'pending_delete'
    update_image(db.engine, image_id, status='active')
    assert reader.status(image_id) == 'active'
    assert reader.status('no-such-image') is None


def test_status_reader_keeps_one_connection_until_released(reader,
                                                           image_id):
    with PoolEvents() as pool:
        for _read in range(3):
            reader.status(image_id)
        assert pool.events == ['checkout']
        reader.release()
        assert pool.events.count('checkin') == 1


def test_status_reader_sends_only_the_select(reader, image_id):
    reader.status(image_id)
    with PoolEvents() as pool, \
            StatementCounter(api.get_engine()) as counter:
        reader.status(image_id)

    # A checkout would ping the server, a checkin roll back.
    assert pool.events == []
    assert len(counter.take()) == 1


def test_status_reader_lets_writers_in_between_reads(db, reader, image_id):
    reader.status(image_id)
    # SQLite would say "database is locked" if the read's transaction
    # were still open.
    update_image(db.engine, image_id, status='active')
    assert reader.status(image_id) == 'active'


def test_status_reader_replaces_a_dropped_connection(db, reader, image_id):
    _require_server(db)
    reader.status(image_id)
    victim = reader._idle[0].exec_driver_sql(
        _backend_id_sql(db.backend)).scalar()
    with db.engine.connect() as admin:
        admin.exec_driver_sql(_kill_sql(db.backend, victim))

    assert reader.status(image_id) == 'pending_delete'
    assert reader._idle[0].exec_driver_sql(
        _backend_id_sql(db.backend)).scalar() != victim


# record_scrub

def test_record_scrub_marks_only_given_locations(db, context):
    image = seed.Image(pending('file:///1', 'file:///2', 'file:///3'))
    other = seed.Image(pending('file:///other'))
    seed.insert(db.engine, [image, other])
    first, second, _third = location_ids(db.engine, image.id)
    with db.engine.begin() as connection:
        connection.execute(LOCATIONS.update().values(deleted_at=None))

    finished = record_one(context, image.id, [first, second],
                          image_done=False)

    assert finished is False
    assert location_rows(db.engine, image.id) == [
        ('deleted', True, True), ('deleted', True, True),
        ('pending_delete', True, False)]
    assert location_rows(db.engine, other.id) == [
        ('pending_delete', True, False)]
    assert seed.image_status(db.engine, image.id).status == 'pending_delete'


def test_record_scrub_ignores_a_location_of_another_image(db, context):
    """A location is marked deleted only on behalf of its own image."""
    image = seed.Image(pending('file:///1'))
    other = seed.Image(pending('file:///other'))
    seed.insert(db.engine, [image, other])
    own = location_ids(db.engine, image.id)[0]
    foreign = location_ids(db.engine, other.id)[0]

    record_one(context, image.id, [own, foreign], image_done=False)

    assert [state for state, _deleted, _at in location_rows(
        db.engine, image.id)] == ['deleted']
    assert location_rows(db.engine, other.id) == [
        ('pending_delete', True, True)]


def test_record_scrub_finishes_image(db, context):
    image = seed.Image(pending('file:///1', 'file:///2'))
    seed.insert(db.engine, [image])

    finished = record_one(context, image.id,
                          location_ids(db.engine, image.id),
                          image_done=True)

    assert finished is True
    status, deleted, deleted_at = seed.image_status(db.engine, image.id)
    assert (status, bool(deleted), deleted_at is not None) == (
        'deleted', True, True)
    assert location_rows(db.engine, image.id) == [('deleted', True, True)] * 2


def test_record_scrub_finishes_stranded_image(db, context):
    image = seed.Image([seed.Location('file:///s', status='deleted')])
    seed.insert(db.engine, [image])

    assert record_one(context, image.id, [], image_done=True) is True
    assert seed.image_status(db.engine, image.id).status == 'deleted'


def test_record_scrub_refuses_image_with_pending_location(db, context):
    image = seed.Image(pending('file:///1', 'file:///2'))
    seed.insert(db.engine, [image])
    first, _second = location_ids(db.engine, image.id)

    finished = record_one(context, image.id, [first], image_done=True)

    assert finished is False
    assert seed.image_status(db.engine, image.id).status == 'pending_delete'
    assert location_rows(db.engine, image.id) == [
        ('deleted', True, True), ('pending_delete', True, True)]


def test_record_scrub_leaves_restored_image_alone(db, context):
    image = seed.Image(pending('file:///1'))
    seed.insert(db.engine, [image])
    ids = location_ids(db.engine, image.id)
    api.restore_image(context, image.id)

    finished = record_one(context, image.id, ids, image_done=True)

    assert finished is False
    assert tuple(seed.image_status(db.engine, image.id)) == (
        'active', False, None)


@pytest.mark.parametrize('status', ['active', 'killed', 'deleted'])
def test_record_scrub_compare_and_set_on_status(db, context, status):
    image = seed.Image([seed.Location('file:///s', status='deleted')])
    seed.insert(db.engine, [image])
    update_image(db.engine, image.id, status=status)
    before = snapshot(db.engine)

    assert record_one(context, image.id, [], image_done=True) is False
    assert snapshot(db.engine) == before


def test_record_scrubs_records_a_batch_in_one_transaction(db, context):
    done = seed.Image(pending('file:///done1', 'file:///done2'))
    partial = seed.Image(pending('file:///part1', 'file:///part2'))
    stranded = seed.Image([seed.Location('file:///s', status='deleted')])
    restored = seed.Image([seed.Location('file:///r', status='active')],
                          status='active', deleted=False)
    seed.insert(db.engine, [done, partial, stranded, restored])
    partial_first = location_ids(db.engine, partial.id)[0]
    records = [
        api.ScrubRecord(done.id, tuple(location_ids(db.engine, done.id)),
                        image_done=True),
        api.ScrubRecord(partial.id, (partial_first,), image_done=True),
        api.ScrubRecord(stranded.id, (), image_done=True),
        api.ScrubRecord(restored.id, (), image_done=True),
    ]

    finished = api.record_scrubs(context, records)

    assert finished == {done.id, stranded.id}
    statuses = {image.id: seed.image_status(db.engine, image.id).status
                for image in (done, partial, stranded, restored)}
    assert statuses == {done.id: 'deleted', partial.id: 'pending_delete',
                        stranded.id: 'deleted', restored.id: 'active'}
    assert location_rows(db.engine, partial.id) == [
        ('deleted', True, True), ('pending_delete', True, True)]


# restore_image

def test_restore_brings_image_and_pending_locations_back(db, context):
    image = seed.Image([seed.Location('file:///1'),
                        seed.Location('file:///gone', status='deleted'),
                        seed.Location('file:///2')])
    other = seed.Image(pending('file:///other'))
    seed.insert(db.engine, [image, other])
    other_before = location_rows(db.engine, other.id)

    restored = api.restore_image(context, image.id)

    assert restored == 2
    assert tuple(seed.image_status(db.engine, image.id)) == (
        'active', False, None)
    assert location_rows(db.engine, image.id) == [
        ('active', False, False), ('deleted', True, True),
        ('active', False, False)]
    assert location_rows(db.engine, other.id) == other_before
    assert seed.image_status(db.engine, other.id).status == 'pending_delete'


def test_restore_unknown_image_is_not_found(db, context):
    seed.insert(db.engine, [seed.Image(pending('file:///1'))])
    before = snapshot(db.engine)

    with pytest.raises(exception.NotFound):
        api.restore_image(context, 'no-such-image')
    assert snapshot(db.engine) == before


@pytest.mark.parametrize('status,deleted', [('active', False),
                                            ('deleted', True)])
def test_restore_refuses_image_not_pending_delete(db, context, status,
                                                  deleted):
    image = seed.Image([seed.Location('file:///1', status='active')],
                       status=status, deleted=deleted)
    seed.insert(db.engine, [image])
    before = snapshot(db.engine)

    with pytest.raises(exception.Conflict) as raised:
        api.restore_image(context, image.id)

    assert status in str(raised.value)
    assert snapshot(db.engine) == before


def test_restore_refuses_image_whose_data_is_gone(db, context):
    image = seed.Image([seed.Location('file:///1', status='deleted')])
    seed.insert(db.engine, [image])
    before = snapshot(db.engine)

    with pytest.raises(exception.Conflict) as raised:
        api.restore_image(context, image.id)

    assert 'no pending_delete location' in str(raised.value)
    assert snapshot(db.engine) == before


# check_schema and database_errors

def test_check_schema_accepts_migrated_database(db, context):
    assert api.check_schema(context) is None


@pytest.mark.parametrize('backend', databases.BACKENDS)
def test_check_schema_refuses_empty_database(backend, context):
    empty = set_up_database(backend, migrate=False)
    try:
        api.configure(connection=empty.url, max_retries=1, retry_interval=0)
        with pytest.raises(exception.DatabaseUnavailable) as raised:
            api.check_schema(context)
    finally:
        api.reset()
        empty.cleanUp()

    message = str(raised.value)
    assert '\n' not in message
    assert message.startswith('Cannot use the database at ')
    assert 'images' in message


@pytest.mark.parametrize('url,shown', [
    ('mysql+pymysql://root:s3cret@127.0.0.1:3399/glance',
     'mysql+pymysql://root:***@127.0.0.1:3399/glance'),
    ('postgresql+psycopg2://root:s3cret@127.0.0.1:5499/glance',
     'postgresql+psycopg2://root:***@127.0.0.1:5499/glance'),
])
def test_unreachable_server_is_one_clear_error(url, shown, context):
    api.configure(connection=url, max_retries=1, retry_interval=0)
    try:
        with pytest.raises(exception.DatabaseUnavailable) as raised:
            api.check_schema(context)
        with pytest.raises(exception.DatabaseUnavailable):
            with api.database_errors():
                api.get_engine()
    finally:
        api.reset()

    message = str(raised.value)
    assert '\n' not in message
    assert message.startswith('Cannot use the database at %s: ' % shown)
    assert 's3cret' not in message
    assert 'refused' in message.lower()


# Retries, provoked for real on the servers

def _require_server(db):
    if db.backend == 'sqlite':
        pytest.skip('needs a database server')


def _backend_id_sql(backend):
    return ('SELECT pg_backend_pid()' if backend == 'postgresql'
            else 'SELECT CONNECTION_ID()')


def _kill_sql(backend, connection_id):
    if backend == 'postgresql':
        return 'SELECT pg_terminate_backend(%d)' % connection_id
    return 'KILL %d' % connection_id


def test_dropped_connection_is_replaced(db, context):
    _require_server(db)
    image = seed.Image(pending('file:///1'))
    seed.insert(db.engine, [image])
    engine = api.get_engine()
    with engine.connect() as connection:
        victim = connection.exec_driver_sql(
            _backend_id_sql(db.backend)).scalar()
    with db.engine.connect() as admin:
        admin.exec_driver_sql(_kill_sql(db.backend, victim))

    assert api.StatusReader().status(image.id) == 'pending_delete'
    with engine.connect() as connection:
        assert connection.exec_driver_sql(
            _backend_id_sql(db.backend)).scalar() != victim


def _lock_waits_sql(backend):
    if backend == 'postgresql':
        return ("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                "current_database() AND wait_event_type = 'Lock'")
    return ("SELECT count(*) FROM information_schema.innodb_trx "
            "WHERE trx_state = 'LOCK WAIT'")


def _wait_for_lock_wait(db):
    """Poll until a transaction waits for a lock (synchronisation only)."""
    with db.engine.connect() as monitor:
        for _attempt in range(1000):
            if monitor.exec_driver_sql(_lock_waits_sql(db.backend)).scalar():
                return
            time.sleep(0.01)
    pytest.fail('restore_image never waited for the locations lock')


def _in_thread(function, *args):
    outcome = {}

    def run():
        try:
            outcome['result'] = function(*args)
        except Exception as error:  # noqa: BLE001 - re-raised by the test
            outcome['error'] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _make_survivor(db, connection):
    """Make *connection*'s transaction win the coming deadlock.

    PostgreSQL: the waiter whose deadlock_timeout expires first aborts
    itself, so this one waits far longer than restore_image's (1 s).
    InnoDB: a transaction that changed a non-transactional table is never
    preferred as the victim.
    """
    if db.backend == 'postgresql':
        if not connection.exec_driver_sql(
                'SELECT rolsuper FROM pg_roles '
                'WHERE rolname = current_user').scalar():
            pytest.skip('setting deadlock_timeout needs a superuser')
        connection.exec_driver_sql("SET LOCAL deadlock_timeout = '60s'")
    else:
        connection.exec_driver_sql(
            'INSERT INTO nontransactional (id) VALUES (1)')


def _create_nontransactional_table(db):
    if db.backend == 'mysql':
        with db.engine.begin() as connection:
            connection.exec_driver_sql(
                'CREATE TABLE IF NOT EXISTS nontransactional (id INT) '
                'ENGINE=MyISAM')


def test_restore_is_retried_after_a_real_deadlock(db, context):
    """restore_image loses a deadlock to another transaction and retries.

    The other transaction holds the image's location rows, restore_image
    takes the image row and waits for the locations, then the other
    transaction asks for the image row: a real deadlock, which the server
    resolves by aborting restore_image's transaction. oslo.db must retry
    it, and the retry must succeed.
    """
    _require_server(db)
    image = seed.Image(pending('file:///1', 'file:///2'))
    seed.insert(db.engine, [image])
    _create_nontransactional_table(db)
    errors = []
    engine = api.get_engine()

    def record_error(error_context):
        errors.append(str(error_context.original_exception))

    sa.event.listen(engine, 'handle_error', record_error)

    with StatementCounter(engine) as counter:
        with db.engine.connect() as other:
            transaction = other.begin()
            _make_survivor(db, other)
            other.execute(LOCATIONS.update()
                          .values(updated_at=sa.func.now()))
            thread, outcome = _in_thread(api.restore_image, context,
                                         image.id)
            _wait_for_lock_wait(db)
            other.execute(IMAGES.update().where(IMAGES.c.id == image.id)
                          .values(updated_at=sa.func.now()))
            transaction.commit()
        thread.join()
        statements = counter.take()

    assert 'error' not in outcome, outcome
    assert outcome['result'] == 2
    assert any('deadlock' in error.lower() for error in errors), errors
    # The image row was locked twice: the first attempt and the retry.
    assert sum('FOR UPDATE' in statement for statement in statements) == 2
    assert tuple(seed.image_status(db.engine, image.id)) == (
        'active', False, None)
    assert location_rows(db.engine, image.id) == [('active', False, False)] * 2
