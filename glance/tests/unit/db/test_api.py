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

Rows are written as glance-api leaves them (glance.tests.seed and
glance.tests.unit.children) and read back with plain SQL, so every
assertion is on what the database holds.

Each group of tests runs on each server, one database per class
(glance.tests.unit.db.DatabaseTestCase); each test starts from empty
tables and a freshly configured API. The tests of ``[database]
slave_connection`` use a second database of the same backend as a stale
replica.
"""

import datetime
import logging
import re
import sys
import threading
import time

from oslo_utils import timeutils
import sqlalchemy as sa
import testtools
from testtools import matchers

from glance.common import exception
from glance import context as glance_context
from glance.db.sqlalchemy import api
from glance.db.sqlalchemy import models
from glance.tests import databases
from glance.tests import seed
from glance.tests.unit import children
from glance.tests.unit import db as db_tests

IMAGES = models.Image.__table__
LOCATIONS = models.ImageLocation.__table__
SCRUB_TIME = datetime.timedelta(seconds=60)
CLAIM_TIMEOUT = datetime.timedelta(seconds=60)
TRANSACTION_CONTROL = ('BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT',
                       'RELEASE')
BEING_SCRUBBED = 'is being scrubbed'


def cutoff():
    """deleted_before as the scrubber computes it, with scrub_time 60 s."""
    return timeutils.utcnow() - SCRUB_TIME


def claimed_before():
    """claimed_before as a pass computes it, with a 60 s claim timeout."""
    return timeutils.utcnow() - CLAIM_TIMEOUT


def pending(*urls, store=None):
    return [seed.Location(url, store=store) for url in urls]


def update_image(engine, image_id, **values):
    with engine.begin() as connection:
        connection.execute(IMAGES.update()
                           .where(IMAGES.c.id == image_id).values(**values))


def image_row(engine, image_id):
    """(status, deleted, deleted_at, updated_at) of an image."""
    with engine.connect() as connection:
        status, deleted, deleted_at, updated_at = connection.execute(
            sa.select(IMAGES.c.status, IMAGES.c.deleted,
                      IMAGES.c.deleted_at, IMAGES.c.updated_at)
            .where(IMAGES.c.id == image_id)).one()
    return status, bool(deleted), deleted_at, updated_at


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
    """Every row of every table, to prove that a refusal changed nothing."""
    tables = (IMAGES, LOCATIONS) + children.TABLES
    with engine.connect() as connection:
        return [[tuple(row) for row in connection.execute(
            sa.select(table).order_by(*table.primary_key.columns))]
            for table in tables]


def candidates(*images, retaken=False):
    return [api.Candidate(image.id, retaken) for image in images]


def claim(context, *images):
    """claim_images() of *images* as fresh candidates, with the defaults."""
    return api.claim_images(context, candidates(*images), cutoff(),
                            claimed_before())


def claimed_ids(claims):
    return [one.image_id for one in claims]


def record(context, the_claim, deleted_location_ids=(), finished=True):
    """record_scrubs() of one claim: its Recorded."""
    recorded = api.record_scrubs(context, [api.ScrubRecord(
        the_claim.image_id, the_claim.token, tuple(deleted_location_ids),
        finished)])
    assert list(recorded) == [the_claim.image_id]
    return recorded[the_claim.image_id]


def listed_ids(context, **kwargs):
    return [candidate.id for candidate in
            api.list_pending_delete_images(context, cutoff(), **kwargs)]


def restore_all(context, image_id):
    """Restore an image with every pending_delete location present."""
    candidate = api.find_restorable(context, image_id)
    return api.restore_image(context, candidate, [
        location.id for location in candidate.locations])


# list_pending_delete_images

class ListPendingDeleteImagesTests:
    """list_pending_delete_images: the queue a pass pages through."""

    def test_lists_only_eligible_images(self):
        eligible = [seed.Image(pending('file:///e%d' % i)) for i in range(2)]
        # Each decoy differs from an eligible image in exactly one respect.
        active = seed.Image(pending('file:///active'), status='active')
        scrubbed = seed.Image(pending('file:///done'), status='deleted')
        not_deleted = seed.Image(pending('file:///kept'))
        too_young = seed.Image(pending('file:///young'),
                               deleted_seconds_ago=5)
        seed.insert(self.engine, eligible + [active, scrubbed, not_deleted,
                                             too_young])
        # deleted_at stays old: only the deleted flag keeps it out.
        update_image(self.engine, not_deleted.id, deleted=False)

        self.assertEqual(sorted(image.id for image in eligible),
                         listed_ids(self.context))

    def test_lists_candidates_by_id_only_none_of_them_retaken(self):
        image = seed.Image(pending('file:///1', 'file:///2'))
        seed.insert(self.engine, [image])

        self.assertEqual([api.Candidate(image.id, retaken=False)],
                         api.list_pending_delete_images(self.context,
                                                        cutoff()))

    def test_image_deleted_exactly_at_cutoff_is_eligible(self):
        image = seed.Image(pending('file:///edge'))
        seed.insert(self.engine, [image])
        edge = timeutils.utcnow().replace(microsecond=0) - SCRUB_TIME
        update_image(self.engine, image.id, deleted_at=edge)

        listed = api.list_pending_delete_images(self.context, edge)

        self.assertEqual([image.id], [found.id for found in listed])

    def test_every_visibility_is_eligible(self):
        # Upstream's admin listing misses 'community' images: never here.
        images = [seed.Image(pending('file:///%s' % visibility),
                             visibility=visibility)
                  for visibility in ('private', 'public', 'shared',
                                     'community')]
        seed.insert(self.engine, images)

        self.assertEqual(sorted(image.id for image in images),
                         listed_ids(self.context))

    def test_image_with_no_pending_location_left_is_still_listed(self):
        # An earlier pass deleted every location but not the image row: it
        # is proposed, so that a claim finishes it rather than stranding it.
        stranded = seed.Image([seed.Location('file:///s1', status='deleted'),
                               seed.Location('file:///s2', status='deleted')])
        bare = seed.Image([])
        seed.insert(self.engine, [stranded, bare])

        self.assertEqual(sorted([stranded.id, bare.id]),
                         listed_ids(self.context))

    def test_claimed_image_is_no_longer_listed(self):
        claimed, waiting = seed.insert(self.engine, [
            seed.Image(pending('file:///c')),
            seed.Image(pending('file:///w'))])
        claim(self.context, claimed)

        self.assertEqual([waiting.id], listed_ids(self.context))

    def test_pages_return_every_image_once_in_one_query_each(self):
        eligible = [seed.Image(pending('file:///%d-a' % i,
                                       'file:///%d-b' % i))
                    for i in range(11)]
        decoys = [seed.Image(pending('file:///young%d' % i),
                             deleted_seconds_ago=1) for i in range(5)]
        seed.insert(self.engine, eligible + decoys)
        limit, marker, pages, seen = 3, None, 0, []

        with db_tests.StatementCounter(api.get_engine()) as counter:
            while True:
                page = api.list_pending_delete_images(
                    self.context, cutoff(), marker=marker, limit=limit)
                self.assertEqual(1, len(counter.take()))
                pages += 1
                self.assertLessEqual(len(page), limit)
                seen += page
                if len(page) < limit:
                    break
                marker = page[-1].id

        self.assertEqual(sorted(i.id for i in eligible),
                         [image.id for image in seen])
        self.assertEqual(4, pages)


class TestListPendingDeleteImagesOnSQLite(ListPendingDeleteImagesTests,
                                          db_tests.SQLiteTestCase):
    pass


class TestListPendingDeleteImagesOnMySQL(ListPendingDeleteImagesTests,
                                         db_tests.MySQLTestCase):
    pass


class TestListPendingDeleteImagesOnPostgreSQL(ListPendingDeleteImagesTests,
                                              db_tests.PostgreSQLTestCase):
    pass


# list_abandoned_claims

class ListAbandonedClaimsTests:
    """list_abandoned_claims: what a stopped pass left to take over."""

    def test_lists_only_claims_older_than_claimed_before_with_data_left(
            self):
        # A claim a stopped pass left: deleted, a location still pending,
        # and stamped (updated_at) an hour ago by seed.
        abandoned = seed.Image(
            [seed.Location('file:///a-done', status='deleted'),
             seed.Location('file:///a-left')], status='deleted')
        # Each decoy differs from it in exactly one respect.
        recent = seed.Image(pending('file:///recent'), status='deleted')
        finished = seed.Image([seed.Location('file:///f', status='deleted')],
                              status='deleted')
        eligible = seed.Image(pending('file:///eligible'))
        not_deleted = seed.Image(pending('file:///kept'), status='deleted')
        seed.insert(self.engine, [abandoned, recent, finished, eligible,
                                  not_deleted])
        update_image(self.engine, recent.id, updated_at=timeutils.utcnow())
        update_image(self.engine, not_deleted.id, deleted=False)

        listed = api.list_abandoned_claims(self.context, claimed_before())

        self.assertEqual([(abandoned.id, True)],
                         [(found.id, found.retaken) for found in listed])
        # With its claim's token, for the coordination's takeover.
        self.assertEqual(image_row(self.engine, abandoned.id)[3],
                         listed[0].claimed_at)

    def test_abandoned_claim_stamped_exactly_at_claimed_before_is_listed(
            self):
        image = seed.Image(pending('file:///edge'), status='deleted')
        seed.insert(self.engine, [image])
        stamp = api.claim_token() - CLAIM_TIMEOUT
        update_image(self.engine, image.id, updated_at=stamp)

        self.assertEqual([image.id], [found.id for found in
                                      api.list_abandoned_claims(
                                          self.context, stamp)])
        self.assertEqual([], api.list_abandoned_claims(
            self.context, stamp - datetime.timedelta(seconds=1)))

    def test_abandoned_claims_page_by_image_id(self):
        images = seed.insert(self.engine, [
            seed.Image(pending('file:///%d' % i), status='deleted')
            for i in range(7)])
        marker, seen = None, []
        while True:
            page = api.list_abandoned_claims(self.context, claimed_before(),
                                             marker=marker, limit=3)
            seen += page
            if len(page) < 3:
                break
            marker = page[-1].id

        self.assertEqual(sorted(i.id for i in images),
                         [found.id for found in seen])


class TestListAbandonedClaimsOnSQLite(ListAbandonedClaimsTests,
                                      db_tests.SQLiteTestCase):
    pass


class TestListAbandonedClaimsOnMySQL(ListAbandonedClaimsTests,
                                     db_tests.MySQLTestCase):
    pass


class TestListAbandonedClaimsOnPostgreSQL(ListAbandonedClaimsTests,
                                          db_tests.PostgreSQLTestCase):
    pass


# claimed_totals and list_claimed

def claimed_by_a_pass(*urls, seconds_ago=0):
    """An image a pass claimed *seconds_ago* and has not finished."""
    return seed.Image(pending(*urls), status='deleted'), \
        api.claim_token() - datetime.timedelta(seconds=seconds_ago)


class ClaimedTotalsTests:
    """claimed_totals and list_claimed: the claims of passes still on."""

    def test_claimed_totals_count_recent_unfinished_claims_and_the_oldest(
            self):
        (young, young_stamp), (older, older_stamp) = (
            claimed_by_a_pass('file:///young', seconds_ago=5),
            claimed_by_a_pass('file:///older-a', 'file:///older-b',
                              seconds_ago=40))
        # Each decoy differs from a recent claim in exactly one respect.
        (abandoned, abandoned_stamp) = claimed_by_a_pass(
            'file:///abandoned', seconds_ago=3600)
        finished = seed.Image(
            [seed.Location('file:///done', status='deleted')],
            status='deleted')
        waiting = seed.Image(pending('file:///waiting'))
        not_deleted = seed.Image(pending('file:///kept'), status='deleted')
        seed.insert(self.engine, [young, older, abandoned, finished, waiting,
                                  not_deleted])
        for image, stamp in ((young, young_stamp), (older, older_stamp),
                             (abandoned, abandoned_stamp),
                             (finished, young_stamp), (waiting, young_stamp),
                             (not_deleted, young_stamp)):
            update_image(self.engine, image.id, updated_at=stamp)
        update_image(self.engine, not_deleted.id, deleted=False)

        with db_tests.StatementCounter(api.get_engine()) as counter:
            totals = api.claimed_totals(self.context, claimed_before())

        self.assertEqual(api.ClaimedTotals(2, older_stamp), totals)
        self.assertEqual(1, len(counter.take()))

    def test_claimed_totals_leave_out_a_claim_stamped_at_the_cutoff(self):
        image, stamp = claimed_by_a_pass('file:///edge', seconds_ago=60)
        seed.insert(self.engine, [image])
        update_image(self.engine, image.id, updated_at=stamp)

        # Stamped at the cutoff, it is takeable: list_abandoned_claims has
        # it.
        self.assertEqual(api.ClaimedTotals(0, None),
                         api.claimed_totals(self.context, stamp))
        self.assertEqual(api.ClaimedTotals(1, stamp), api.claimed_totals(
            self.context, stamp - datetime.timedelta(seconds=1)))

    def test_claimed_totals_see_a_claim_just_made(self):
        image = seed.insert(self.engine,
                            [seed.Image(pending('file:///c'))])[0]
        made = claim(self.context, image)[0]

        self.assertEqual(api.ClaimedTotals(1, made.token),
                         api.claimed_totals(self.context, claimed_before()))

    def test_list_claimed_pages_every_unfinished_claim_with_its_locations(
            self):
        claims = [claimed_by_a_pass('file:///%d-a' % i, 'file:///%d-b' % i,
                                    seconds_ago=3600 * (i % 2))
                  for i in range(5)]
        finished = seed.Image(
            [seed.Location('file:///done', status='deleted')],
            status='deleted')
        waiting = seed.Image(pending('file:///waiting'))
        images = seed.insert(self.engine,
                             [image for image, _stamp in claims] +
                             [finished, waiting])
        stamps = {}
        for image, stamp in claims:
            update_image(self.engine, image.id, updated_at=stamp)
            stamps[image.id] = stamp
        marker, seen = None, []
        while True:
            page = api.list_claimed(self.context, marker=marker, limit=2)
            seen += page
            if len(page) < 2:
                break
            marker = page[-1].id

        self.assertEqual(sorted(stamps), [one.id for one in seen])
        for one in seen:
            self.assertEqual(stamps[one.id], one.claimed_at)
            self.assertEqual(images[0].size, one.size)
            self.assertEqual(location_ids(self.engine, one.id),
                             [location.id for location in one.locations])


class TestClaimedTotalsOnSQLite(ClaimedTotalsTests,
                                db_tests.SQLiteTestCase):
    pass


class TestClaimedTotalsOnMySQL(ClaimedTotalsTests, db_tests.MySQLTestCase):
    pass


class TestClaimedTotalsOnPostgreSQL(ClaimedTotalsTests,
                                    db_tests.PostgreSQLTestCase):
    pass


# claim_images

class ClaimImagesTests:
    """claim_images: the compare-and-set that decides a delete."""

    def test_claim_takes_the_images_still_eligible_and_no_other(self):
        eligible = [seed.Image(pending('file:///e%d' % i)) for i in range(2)]
        active = seed.Image(pending('file:///active'), status='active')
        finished = seed.Image(
            [seed.Location('file:///done', status='deleted')],
            status='deleted')
        not_deleted = seed.Image(pending('file:///kept'))
        too_young = seed.Image(pending('file:///young'),
                               deleted_seconds_ago=5)
        claimed_recently = seed.Image(pending('file:///claimed'),
                                      status='deleted')
        decoys = [active, finished, not_deleted, too_young, claimed_recently]
        seed.insert(self.engine, eligible + decoys)
        update_image(self.engine, not_deleted.id, deleted=False)
        update_image(self.engine, claimed_recently.id,
                     updated_at=api.claim_token())
        before = {image.id: image_row(self.engine, image.id)
                  for image in decoys}
        deleted_at = {image.id: image_row(self.engine, image.id)[2]
                      for image in eligible}

        claims = claim(self.context, *decoys, *eligible)

        self.assertEqual(sorted(image.id for image in eligible),
                         claimed_ids(claims))
        for one in claims:
            self.assertEqual(0, one.token.microsecond)
            self.assertIs(False, one.retaken)
            # Moved to deleted and stamped; still soft-deleted at the same
            # time.
            self.assertEqual(
                ('deleted', True, deleted_at[one.image_id], one.token),
                image_row(self.engine, one.image_id))
        self.assertEqual(before, {image.id: image_row(self.engine, image.id)
                                  for image in decoys})

    def test_claim_reads_the_pending_locations_in_id_order(self):
        image = seed.Image([
            seed.Location('file:///z-first'),
            seed.Location('file:///gone', status='deleted'),
            seed.Location('file:///live', status='active'),
            seed.Location('file:///a-last', store='cheap'),
        ], size=4096)
        sizeless = seed.Image(pending('file:///sizeless'))
        seed.insert(self.engine, [image, sizeless])
        update_image(self.engine, sizeless.id, size=None)
        ids = location_ids(self.engine, image.id)

        claims = {one.image_id: one
                  for one in claim(self.context, image, sizeless)}

        locations = claims[image.id].locations
        self.assertEqual(['file:///z-first', 'file:///a-last'],
                         [loc.url for loc in locations])
        self.assertEqual([ids[0], ids[3]], [loc.id for loc in locations])
        self.assertEqual([None, 'cheap'],
                         [loc.store_name() for loc in locations])
        self.assertEqual(4096, claims[image.id].size)
        self.assertEqual(0, claims[sizeless.id].size)
        self.assertEqual(['file:///sizeless'],
                         [loc.url for loc in claims[sizeless.id].locations])

    def test_image_with_no_pending_location_left_is_claimed_to_be_finished(
            self):
        stranded = seed.Image([seed.Location('file:///s', status='deleted')])
        seed.insert(self.engine, [stranded])

        claims = claim(self.context, stranded)

        self.assertEqual([(stranded.id, ())],
                         [(one.image_id, one.locations) for one in claims])

    def test_a_second_claim_of_the_same_image_gets_nothing(self):
        image = seed.Image(pending('file:///1'))
        seed.insert(self.engine, [image])

        first = claim(self.context, image)
        second = claim(self.context, image)

        self.assertEqual([image.id], claimed_ids(first))
        self.assertEqual([], second)
        self.assertEqual(first[0].token, image_row(self.engine, image.id)[3])

    def test_no_candidates_claim_nothing_without_a_query(self):
        seed.insert(self.engine, [seed.Image(pending('file:///1'))])

        with db_tests.StatementCounter(api.get_engine()) as counter:
            self.assertEqual([], api.claim_images(self.context, [], cutoff(),
                                                  claimed_before()))
            self.assertEqual([], counter.take())

    def test_abandoned_claim_is_retaken_only_once_older_than_claimed_before(
            self):
        image = seed.Image([seed.Location('file:///done', status='deleted'),
                            seed.Location('file:///left')], status='deleted')
        seed.insert(self.engine, [image])
        stamp = api.claim_token() - datetime.timedelta(minutes=10)
        update_image(self.engine, image.id, updated_at=stamp)
        retaken = api.Candidate(image.id, retaken=True)

        too_soon = api.claim_images(self.context, [retaken], cutoff(),
                                    stamp - datetime.timedelta(seconds=1))
        claims = api.claim_images(self.context, [retaken], cutoff(), stamp)

        self.assertEqual([], too_soon)
        self.assertEqual(
            [(image.id, True, ['file:///left'])],
            [(one.image_id, one.retaken, [loc.url for loc in one.locations])
             for one in claims])
        self.assertNotEqual(stamp, claims[0].token)
        self.assertEqual(('deleted', True),
                         image_row(self.engine, image.id)[:2])
        self.assertEqual(claims[0].token,
                         image_row(self.engine, image.id)[3])

    def test_a_finished_image_is_never_retaken(self):
        finished = seed.Image(
            [seed.Location('file:///done', status='deleted')],
            status='deleted')
        seed.insert(self.engine, [finished])
        before = snapshot(self.engine)

        self.assertEqual([], api.claim_images(
            self.context, candidates(finished, retaken=True), cutoff(),
            claimed_before()))
        self.assertEqual(before, snapshot(self.engine))

    def test_an_image_restored_before_its_claim_is_not_claimed(self):
        image = seed.Image(pending('file:///1'))
        seed.insert(self.engine, [image])
        restore_all(self.context, image.id)

        self.assertEqual([], claim(self.context, image))
        self.assertEqual(('active', False, None),
                         image_row(self.engine, image.id)[:3])
        self.assertEqual([('active', False, False)],
                         location_rows(self.engine, image.id))

    def test_an_image_claimed_can_no_longer_be_restored(self):
        image = seed.Image(pending('file:///1', 'file:///2'))
        seed.insert(self.engine, [image])
        read_before_the_claim = api.find_restorable(self.context, image.id)
        claim(self.context, image)
        after_the_claim = snapshot(self.engine)

        found = self.assertRaises(exception.Conflict, api.find_restorable,
                                  self.context, image.id)
        restored = self.assertRaises(
            exception.Conflict, api.restore_image, self.context,
            read_before_the_claim,
            [loc.id for loc in read_before_the_claim.locations])

        self.assertIn(BEING_SCRUBBED, str(found))
        self.assertIn(BEING_SCRUBBED, str(restored))
        self.assertEqual(after_the_claim, snapshot(self.engine))

    def test_the_queue_reads_the_replica_but_the_claim_decides_on_the_primary(
            self):
        replica = self.use_replica()
        # The primary: a restore brought `restored` back, and a pass
        # recorded the first location of `scrubbing` deleted; the replica
        # lags behind.
        restored = seed.Image(pending('file:///r'))
        scrubbing = seed.Image(pending('file:///s1', 'file:///s2'))
        seed.insert(replica.engine, [restored, scrubbing])
        seed.insert(self.engine, [restored, scrubbing])
        restore_all(self.context, restored.id)
        with self.engine.begin() as connection:
            connection.execute(LOCATIONS.update()
                               .where(LOCATIONS.c.value == 'file:///s1')
                               .values(status='deleted'))

        listed = api.list_pending_delete_images(self.context, cutoff())
        claims = api.claim_images(self.context, listed, cutoff(),
                                  claimed_before())

        self.assertEqual(sorted([restored.id, scrubbing.id]),
                         sorted(candidate.id for candidate in listed))
        self.assertEqual(
            [(scrubbing.id, ['file:///s2'])],
            [(one.image_id, [loc.url for loc in one.locations])
             for one in claims])
        self.assertEqual('active', image_row(self.engine, restored.id)[0])


class ServerClaimImagesTests(ClaimImagesTests):
    """What only a database server's row locks show."""

    def test_claim_waiting_on_another_claim_of_the_image_then_leaves_it(
            self):
        """Compare-and-set under concurrency, on the servers' row locks.

        Another transaction claims the image and holds its row; our claim
        waits for the lock, then reads the committed row and takes nothing.
        """
        image = seed.Image(pending('file:///1'))
        seed.insert(self.engine, [image])
        other_token = api.claim_token()

        with self.engine.connect() as other:
            transaction = other.begin()
            other.execute(IMAGES.update().where(IMAGES.c.id == image.id)
                          .values(status='deleted', updated_at=other_token))
            thread, outcome = _in_thread(
                api.claim_images, self.context, candidates(image), cutoff(),
                claimed_before())
            _wait_for_lock_wait(self.database, thread, outcome)
            transaction.commit()
        thread.join()

        self.assertEqual({'result': []}, outcome)
        self.assertEqual(other_token, image_row(self.engine, image.id)[3])


class TestClaimImagesOnSQLite(ClaimImagesTests, db_tests.SQLiteTestCase):
    pass


class TestClaimImagesOnMySQL(ServerClaimImagesTests,
                             db_tests.MySQLTestCase):
    pass


class TestClaimImagesOnPostgreSQL(ServerClaimImagesTests,
                                  db_tests.PostgreSQLTestCase):
    pass


# record_scrubs

class RecordScrubsTests:
    """record_scrubs: what a pass writes once an image's data is gone."""

    def claimed(self, *images):
        """Seed *images* and claim them: {image id: Claim}."""
        seed.insert(self.engine, images)
        return {one.image_id: one for one in claim(self.context, *images)}

    def test_record_of_a_finished_scrub_keeps_the_image_deleted(self):
        image = seed.Image(pending('file:///1', 'file:///2'))
        the_claim = self.claimed(image)[image.id]

        recorded = record(self.context, the_claim,
                          location_ids(self.engine, image.id), finished=True)

        self.assertEqual(api.Recorded('deleted', held=True), recorded)
        self.assertEqual(('deleted', True),
                         image_row(self.engine, image.id)[:2])
        self.assertEqual([('deleted', True, True)] * 2,
                         location_rows(self.engine, image.id))

    def test_record_marks_only_the_locations_given(self):
        image = seed.Image(pending('file:///1', 'file:///2', 'file:///3'))
        other = seed.Image(pending('file:///other'))
        claims = self.claimed(image, other)
        first, second, _third = location_ids(self.engine, image.id)
        with self.engine.begin() as connection:
            connection.execute(LOCATIONS.update().values(deleted_at=None))

        record(self.context, claims[image.id], [first, second],
               finished=False)

        self.assertEqual([('deleted', True, True), ('deleted', True, True),
                          ('pending_delete', True, False)],
                         location_rows(self.engine, image.id))
        self.assertEqual([('pending_delete', True, False)],
                         location_rows(self.engine, other.id))

    def test_record_never_marks_a_location_of_another_image(self):
        image = seed.Image(pending('file:///1'))
        other = seed.Image(pending('file:///other'))
        claims = self.claimed(image, other)
        own = location_ids(self.engine, image.id)[0]
        foreign = location_ids(self.engine, other.id)[0]

        record(self.context, claims[image.id], [own, foreign], finished=True)

        self.assertEqual([('deleted', True, True)],
                         location_rows(self.engine, image.id))
        self.assertEqual([('pending_delete', True, True)],
                         location_rows(self.engine, other.id))

    def test_record_of_an_unfinished_scrub_gives_the_claim_back(self):
        image = seed.Image(pending('file:///1', 'file:///2'))
        the_claim = self.claimed(image)[image.id]
        deleted_at = image_row(self.engine, image.id)[2]
        first = location_ids(self.engine, image.id)[0]

        recorded = record(self.context, the_claim, [first], finished=False)

        # Given back: it is pending_delete again, and it was this pass's.
        self.assertEqual(api.Recorded('pending_delete', held=True), recorded)
        # pending_delete again, as glance-api left it: a later pass retries
        # it and a restore may take it.
        self.assertEqual(('pending_delete', True, deleted_at),
                         image_row(self.engine, image.id)[:3])
        self.assertEqual([('deleted', True, True),
                          ('pending_delete', True, True)],
                         location_rows(self.engine, image.id))
        self.assertEqual([image.id], listed_ids(self.context))

    def test_record_does_not_give_back_a_claim_another_pass_took_over(self):
        image = seed.Image(pending('file:///1', 'file:///2'))
        the_claim = self.claimed(image)[image.id]
        later_token = the_claim.token + datetime.timedelta(hours=1)
        update_image(self.engine, image.id, updated_at=later_token)
        first = location_ids(self.engine, image.id)[0]

        recorded = record(self.context, the_claim, [first], finished=False)

        self.assertEqual(api.Recorded('deleted', held=False), recorded)
        self.assertEqual('deleted', image_row(self.engine, image.id)[0])
        self.assertEqual(later_token, image_row(self.engine, image.id)[3])
        # Its data is gone whoever holds the image now.
        self.assertEqual([('deleted', True, True),
                          ('pending_delete', True, True)],
                         location_rows(self.engine, image.id))

    def check_image_whose_status_changed_is_reported_and_left(self, status):
        image = seed.Image(pending('file:///1', 'file:///2'))
        the_claim = self.claimed(image)[image.id]
        update_image(self.engine, image.id, status=status)
        row = image_row(self.engine, image.id)

        recorded = record(self.context, the_claim, [], finished=False)

        self.assertEqual(api.Recorded(status, held=False), recorded)
        self.assertEqual(row, image_row(self.engine, image.id))

    def test_record_reports_an_image_restored_to_active_and_leaves_it(self):
        self.check_image_whose_status_changed_is_reported_and_left('active')

    def test_record_reports_an_image_back_to_pending_delete_and_leaves_it(
            self):
        self.check_image_whose_status_changed_is_reported_and_left(
            'pending_delete')

    def test_record_reports_an_image_killed_and_leaves_it(self):
        self.check_image_whose_status_changed_is_reported_and_left('killed')

    def test_record_reports_an_image_that_is_gone(self):
        image = seed.Image(pending('file:///1'))
        the_claim = self.claimed(image)[image.id]
        with self.engine.begin() as connection:
            connection.execute(LOCATIONS.delete())
            connection.execute(IMAGES.delete())

        self.assertEqual(api.Recorded(None, held=False),
                         record(self.context, the_claim, [], finished=False))

    def test_record_of_a_batch_treats_each_image_on_its_own(self):
        done = seed.Image(pending('file:///done1', 'file:///done2'))
        partial = seed.Image(pending('file:///part1', 'file:///part2'))
        taken_over = seed.Image(pending('file:///taken'))
        stranded = seed.Image([seed.Location('file:///s', status='deleted')])
        claims = self.claimed(done, partial, taken_over, stranded)
        update_image(self.engine, taken_over.id,
                     updated_at=claims[taken_over.id].token +
                     datetime.timedelta(hours=1))
        records = [
            api.ScrubRecord(done.id, claims[done.id].token,
                            tuple(location_ids(self.engine, done.id))),
            api.ScrubRecord(partial.id, claims[partial.id].token,
                            tuple(location_ids(self.engine, partial.id)[:1]),
                            finished=False),
            api.ScrubRecord(taken_over.id, claims[taken_over.id].token,
                            finished=False),
            api.ScrubRecord(stranded.id, claims[stranded.id].token),
        ]

        recorded = api.record_scrubs(self.context, records)

        self.assertEqual({
            done.id: api.Recorded('deleted', held=True),
            partial.id: api.Recorded('pending_delete', held=True),
            taken_over.id: api.Recorded('deleted', held=False),
            stranded.id: api.Recorded('deleted', held=True)}, recorded)
        statuses = {image.id: image_row(self.engine, image.id)[0]
                    for image in (done, partial, taken_over, stranded)}
        self.assertEqual({done.id: 'deleted', partial.id: 'pending_delete',
                          taken_over.id: 'deleted', stranded.id: 'deleted'},
                         statuses)
        self.assertEqual([('deleted', True, True)] * 2,
                         location_rows(self.engine, done.id))
        self.assertEqual([('deleted', True, True),
                          ('pending_delete', True, True)],
                         location_rows(self.engine, partial.id))

    def test_recording_a_batch_costs_the_statements_of_one_image(self):
        images = [seed.Image(pending('file:///%d-a' % i, 'file:///%d-b' % i))
                  for i in range(20)]
        claims = self.claimed(*images)

        def records_of(batch):
            return [api.ScrubRecord(
                image.id, claims[image.id].token,
                tuple(location_ids(self.engine, image.id)[:1]),
                finished=False) for image in batch]

        one, rest = records_of(images[:1]), records_of(images[1:])
        with db_tests.StatementCounter(api.get_engine()) as counter:
            api.record_scrubs(self.context, one)
            for_one = counter.take()
            api.record_scrubs(self.context, rest)
            for_nineteen = counter.take()

        self.assertEqual(len(for_one), len(for_nineteen))
        self.assertEqual(20, seed.count_images(self.engine, 'pending_delete'))


class TestRecordScrubsOnSQLite(RecordScrubsTests, db_tests.SQLiteTestCase):
    pass


class TestRecordScrubsOnMySQL(RecordScrubsTests, db_tests.MySQLTestCase):
    pass


class TestRecordScrubsOnPostgreSQL(RecordScrubsTests,
                                   db_tests.PostgreSQLTestCase):
    pass


# find_restorable

class FindRestorableTests:
    """find_restorable: what --restore reads before it asks the stores."""

    def test_find_restorable_reads_the_image_and_its_pending_locations(self):
        image = seed.Image([seed.Location('file:///1'),
                            seed.Location('file:///gone', status='deleted'),
                            seed.Location('file:///2', store='cheap')])
        seed.insert(self.engine, [image])
        first, _gone, second = location_ids(self.engine, image.id)

        candidate = api.find_restorable(self.context, image.id)

        self.assertEqual(image.id, candidate.image_id)
        self.assertEqual(image_row(self.engine, image.id)[2],
                         candidate.deleted_at)
        self.assertEqual([(first, 'file:///1', None),
                          (second, 'file:///2', 'cheap')],
                         [(loc.id, loc.url, loc.store_name())
                          for loc in candidate.locations])

    def test_find_restorable_of_an_unknown_image_is_not_found(self):
        self.assertRaises(exception.NotFound, api.find_restorable,
                          self.context, 'no-such-image')

    def check_refused_as_not_pending_delete(self, status, deleted):
        image = seed.Image([seed.Location('file:///1', status='active')],
                           status=status, deleted=deleted)
        seed.insert(self.engine, [image])

        raised = self.assertRaises(exception.Conflict, api.find_restorable,
                                   self.context, image.id)

        self.assertIn("status '%s'" % status, str(raised))

    def test_find_restorable_refuses_an_active_image(self):
        self.check_refused_as_not_pending_delete('active', deleted=False)

    def test_find_restorable_refuses_an_image_already_scrubbed(self):
        self.check_refused_as_not_pending_delete('deleted', deleted=True)

    def check_refused_as_pending_delete_but_not_deleted(self, **values):
        # Not as glance-api leaves an image it deleted: restoring it would
        # have no deleted_at to find its properties, tags and members by.
        image = seed.Image(pending('file:///1'))
        seed.insert(self.engine, [image])
        update_image(self.engine, image.id, **values)
        before = snapshot(self.engine)

        raised = self.assertRaises(exception.Conflict, api.find_restorable,
                                   self.context, image.id)

        self.assertIn('is pending_delete but not deleted', str(raised))
        self.assertEqual(before, snapshot(self.engine))

    def test_find_restorable_refuses_a_pending_delete_image_not_deleted(
            self):
        self.check_refused_as_pending_delete_but_not_deleted(deleted=False)

    def test_find_restorable_refuses_a_pending_delete_image_no_deleted_at(
            self):
        self.check_refused_as_pending_delete_but_not_deleted(deleted_at=None)

    def test_find_restorable_refuses_an_image_whose_data_is_gone(self):
        image = seed.Image([seed.Location('file:///1', status='deleted')])
        seed.insert(self.engine, [image])

        raised = self.assertRaises(exception.Conflict, api.find_restorable,
                                   self.context, image.id)

        self.assertIn('has no data left', str(raised))

    def test_find_restorable_reads_the_primary(self):
        replica = self.use_replica()
        image = seed.Image(pending('file:///1'))
        seed.insert(replica.engine, [image])
        seed.insert(self.engine, [image])
        claim(self.context, image)

        raised = self.assertRaises(exception.Conflict, api.find_restorable,
                                   self.context, image.id)

        self.assertIn(BEING_SCRUBBED, str(raised))


class TestFindRestorableOnSQLite(FindRestorableTests,
                                 db_tests.SQLiteTestCase):
    pass


class TestFindRestorableOnMySQL(FindRestorableTests, db_tests.MySQLTestCase):
    pass


class TestFindRestorableOnPostgreSQL(FindRestorableTests,
                                     db_tests.PostgreSQLTestCase):
    pass


# restore_image

class RestoreImageTests:
    """restore_image: the image back as glance-api had it, or nothing."""

    def deleted_with(self, image, **kinds):
        """Children of *image* soft-deleted with it (its own deleted_at)."""
        children.insert(self.engine, image.id,
                        deleted_at=image_row(self.engine, image.id)[2],
                        **kinds)

    def test_restore_brings_the_image_back_as_glance_api_had_it(self):
        image = seed.Image([seed.Location('file:///present'),
                            seed.Location('file:///earlier',
                                          status='deleted'),
                            seed.Location('file:///gone'),
                            seed.Location('file:///present-too')])
        other = seed.Image(pending('file:///other'))
        seed.insert(self.engine, [image, other])
        deleted_at = image_row(self.engine, image.id)[2]
        self.deleted_with(image, properties=['os_distro'], tags=['ubuntu'],
                          members=['tenant-2', 'tenant-3'])
        # glance-api purges the properties just before it deletes the image.
        children.insert(self.engine, image.id,
                        deleted_at=deleted_at - datetime.timedelta(seconds=1),
                        properties=['hw_disk_bus'])
        # Removed while the image was active: they stay removed.
        children.insert(self.engine, image.id,
                        deleted_at=deleted_at - datetime.timedelta(days=1),
                        properties=['stale'], tags=['old-tag'],
                        members=['tenant-9'])
        children.insert(self.engine, image.id, properties=['kept-live'])
        # Another image deleted at the very same time keeps its own.
        update_image(self.engine, other.id, deleted_at=deleted_at)
        self.deleted_with(other, properties=['os_distro'], tags=['ubuntu'])
        other_before = (image_row(self.engine, other.id),
                        location_rows(self.engine, other.id))
        present, _earlier, _gone, present_too = location_ids(self.engine,
                                                             image.id)
        candidate = api.find_restorable(self.context, image.id)

        restored = api.restore_image(self.context, candidate,
                                     [present, present_too])

        self.assertEqual((2, 1, 2, 1, 2),
                         (restored.locations, restored.locations_gone,
                          restored.properties, restored.tags,
                          restored.members))
        self.assertEqual(('hw_disk_bus', 'os_distro'),
                         restored.property_names)
        self.assertEqual(('active', False, None),
                         image_row(self.engine, image.id)[:3])
        self.assertEqual([('active', False, False), ('deleted', True, True),
                          ('deleted', True, True), ('active', False, False)],
                         location_rows(self.engine, image.id))
        self.assertEqual(
            {'properties': ['hw_disk_bus', 'kept-live', 'os_distro'],
             'tags': ['ubuntu'], 'members': ['tenant-2', 'tenant-3']},
            children.live(self.engine, image.id))
        self.assertEqual({'properties': [], 'tags': [], 'members': []},
                         children.live(self.engine, other.id))
        self.assertEqual(other_before,
                         (image_row(self.engine, other.id),
                          location_rows(self.engine, other.id)))

    def check_property_deleted_before_the_image(self, before_the_image,
                                                restored):
        image = seed.Image(pending('file:///1'))
        seed.insert(self.engine, [image])
        deleted_at = image_row(self.engine, image.id)[2]
        children.insert(self.engine, image.id,
                        deleted_at=deleted_at - before_the_image,
                        properties=['os_distro'])

        api.restore_image(self.context,
                          api.find_restorable(self.context, image.id),
                          location_ids(self.engine, image.id))

        self.assertEqual(['os_distro'] if restored else [],
                         children.live(self.engine, image.id)['properties'])

    def test_restore_brings_back_a_property_deleted_with_the_image(self):
        self.check_property_deleted_before_the_image(
            datetime.timedelta(0), restored=True)

    def test_restore_brings_back_a_property_purged_a_second_before(self):
        self.check_property_deleted_before_the_image(
            datetime.timedelta(seconds=1), restored=True)

    def test_restore_brings_back_a_property_purged_at_the_window_s_edge(
            self):
        self.check_property_deleted_before_the_image(
            api.PROPERTY_PURGE_WINDOW, restored=True)

    def test_restore_leaves_a_property_removed_just_before_the_window(self):
        self.check_property_deleted_before_the_image(
            api.PROPERTY_PURGE_WINDOW + datetime.timedelta(seconds=1),
            restored=False)

    def test_restore_leaves_a_property_removed_a_day_before(self):
        self.check_property_deleted_before_the_image(
            datetime.timedelta(days=1), restored=False)

    def test_restore_leaves_tags_and_members_removed_before_the_image(self):
        image = seed.Image(pending('file:///1'))
        seed.insert(self.engine, [image])
        deleted_at = image_row(self.engine, image.id)[2]
        children.insert(self.engine, image.id,
                        deleted_at=deleted_at - datetime.timedelta(seconds=1),
                        tags=['old-tag'], members=['tenant-9'])

        restored = api.restore_image(
            self.context, api.find_restorable(self.context, image.id),
            location_ids(self.engine, image.id))

        self.assertEqual((0, 0), (restored.tags, restored.members))
        self.assertEqual({'properties': [], 'tags': [], 'members': []},
                         children.live(self.engine, image.id))

    def test_restore_with_no_present_location_writes_nothing(self):
        image = seed.Image(pending('file:///gone1', 'file:///gone2'))
        seed.insert(self.engine, [image])
        self.deleted_with(image, properties=['os_distro'])
        candidate = api.find_restorable(self.context, image.id)
        before = snapshot(self.engine)

        raised = self.assertRaises(exception.Conflict, api.restore_image,
                                   self.context, candidate, [])

        self.assertIn('has no data left', str(raised))
        self.assertEqual(before, snapshot(self.engine))

    def test_restore_writes_nothing_once_a_pass_claimed_the_image(self):
        image = seed.Image(pending('file:///1'))
        seed.insert(self.engine, [image])
        self.deleted_with(image, properties=['os_distro'],
                          members=['tenant-2'])
        candidate = api.find_restorable(self.context, image.id)
        claim(self.context, image)
        before = snapshot(self.engine)

        raised = self.assertRaises(
            exception.Conflict, api.restore_image, self.context, candidate,
            [loc.id for loc in candidate.locations])

        self.assertIn(BEING_SCRUBBED, str(raised))
        self.assertEqual(before, snapshot(self.engine))

    def test_restore_of_an_image_deleted_again_meanwhile_writes_nothing(
            self):
        """Restored and deleted again (another host) since it was read.

        A new deleted_at: the candidate read before is stale. The refusal
        says what happened, nothing is written, and trying again restores
        it.
        """
        image = seed.Image(pending('file:///1'))
        seed.insert(self.engine, [image])
        candidate = api.find_restorable(self.context, image.id)
        update_image(self.engine, image.id,
                     deleted_at=candidate.deleted_at +
                     datetime.timedelta(seconds=5))
        before = snapshot(self.engine)

        raised = self.assertRaises(
            exception.Conflict, api.restore_image, self.context, candidate,
            [loc.id for loc in candidate.locations])

        self.assertEqual(before, snapshot(self.engine))
        message = str(raised)
        self.assertNotIn("'pending_delete', not 'pending_delete'", message)
        self.assertIn('changed while it was being restored', message)
        self.assertIn('try again', message)
        self.assertEqual(1, restore_all(self.context, image.id).locations)

    def test_restore_leaves_a_location_of_another_image_alone(self):
        image = seed.Image(pending('file:///1'))
        other = seed.Image(pending('file:///other'))
        seed.insert(self.engine, [image, other])
        candidate = api.find_restorable(self.context, image.id)
        foreign = location_ids(self.engine, other.id)[0]

        restored = api.restore_image(self.context, candidate, [
            candidate.locations[0].id, foreign])

        self.assertEqual(1, restored.locations)
        self.assertEqual([('pending_delete', True, True)],
                         location_rows(self.engine, other.id))


class TestRestoreImageOnSQLite(RestoreImageTests, db_tests.SQLiteTestCase):
    pass


class TestRestoreImageOnMySQL(RestoreImageTests, db_tests.MySQLTestCase):
    pass


class TestRestoreImageOnPostgreSQL(RestoreImageTests,
                                   db_tests.PostgreSQLTestCase):
    pass


# check_schema and database_errors

class CheckSchemaTests:
    """check_schema: a database without the schema is refused at start."""

    def test_check_schema_accepts_migrated_database(self):
        self.assertIsNone(api.check_schema(self.context))

    def test_check_schema_refuses_empty_database(self):
        empty = self.use_database(migrate=False)
        api.configure(connection=empty.url, max_retries=1, retry_interval=0)

        raised = self.assertRaises(exception.DatabaseUnavailable,
                                   api.check_schema, self.context)

        message = str(raised)
        self.assertNotIn('\n', message)
        self.assertThat(message, matchers.StartsWith(
            'Cannot use the database at '))
        self.assertIn('images', message)

    def test_check_schema_refuses_a_replica_without_the_schema(self):
        empty = self.use_database(migrate=False)
        api.configure(connection=self.database.url,
                      slave_connection=empty.url, max_retries=1,
                      retry_interval=0)

        raised = self.assertRaises(exception.DatabaseUnavailable,
                                   api.check_schema, self.context)

        self.assertIn('images', str(raised))


class TestCheckSchemaOnSQLite(CheckSchemaTests, db_tests.SQLiteTestCase):
    pass


class TestCheckSchemaOnMySQL(CheckSchemaTests, db_tests.MySQLTestCase):
    pass


class TestCheckSchemaOnPostgreSQL(CheckSchemaTests,
                                  db_tests.PostgreSQLTestCase):
    pass


class TestUnreachableServer(testtools.TestCase):
    """database_errors: a server that cannot be reached, in one line."""

    def setUp(self):
        super().setUp()
        self.context = glance_context.get_admin_context()
        self.addCleanup(api.reset)

    def check_one_clear_error(self, url, shown):
        api.configure(connection=url, max_retries=1, retry_interval=0)

        raised = self.assertRaises(exception.DatabaseUnavailable,
                                   api.check_schema, self.context)
        with testtools.ExpectedException(exception.DatabaseUnavailable):
            with api.database_errors():
                api.get_engine()

        message = str(raised)
        self.assertNotIn('\n', message)
        self.assertThat(message, matchers.StartsWith(
            'Cannot use the database at %s: ' % shown))
        self.assertNotIn('s3cret', message)
        self.assertIn('refused', message.lower())

    def test_unreachable_mysql_server_is_one_clear_error(self):
        self.check_one_clear_error(
            'mysql+pymysql://root:s3cret@127.0.0.1:3399/glance',
            'mysql+pymysql://root:***@127.0.0.1:3399/glance')

    def test_unreachable_postgresql_server_is_one_clear_error(self):
        self.check_one_clear_error(
            'postgresql+psycopg2://root:s3cret@127.0.0.1:5499/glance',
            'postgresql+psycopg2://root:***@127.0.0.1:5499/glance')


# Retries, provoked for real

def _backend_id_sql(backend):
    return ('SELECT pg_backend_pid()' if backend == 'postgresql'
            else 'SELECT CONNECTION_ID()')


def _kill_sql(backend, connection_id):
    if backend == 'postgresql':
        return 'SELECT pg_terminate_backend(%d)' % connection_id
    return 'KILL %d' % connection_id


def _lock_waits_sql(backend):
    if backend == 'postgresql':
        return ("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                "current_database() AND wait_event_type = 'Lock'")
    return ("SELECT count(*) FROM information_schema.innodb_trx "
            "WHERE trx_state = 'LOCK WAIT'")


def _wait_for_lock_wait(db, thread, outcome):
    """Poll until *thread* waits for a lock (synchronisation only).

    InnoDB refreshes what information_schema.innodb_trx shows only when
    it was not read for 100 ms: polled faster, it would show the same
    stale snapshot for ever. PostgreSQL snapshots pg_stat_activity at its
    first read in a transaction: each poll is a transaction of its own.
    """
    interval = 0.15 if db.backend == 'mysql' else 0.01
    deadline = time.monotonic() + 30
    with db.engine.connect() as monitor:
        while time.monotonic() < deadline and thread.is_alive():
            waiting = monitor.exec_driver_sql(
                _lock_waits_sql(db.backend)).scalar()
            monitor.rollback()
            if waiting:
                return
            time.sleep(interval)
    raise AssertionError('the API call never waited for a row lock: %r'
                         % outcome)


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
            # deadlock_timeout is a superuser's setting, and nothing else
            # makes this transaction the survivor: under CI, where this
            # test must run, a role without it is an error.
            raise databases.unavailable(
                'setting deadlock_timeout needs a PostgreSQL superuser; '
                'GLANCE_TEST_POSTGRESQL_URL names a role without it')
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


class RetryWatch(logging.Handler):
    """Sees oslo.db retry a refused API call, and why it was refused.

    oslo.db logs "Performing DB retry" once the refused transaction was
    rolled back and before it sleeps; the error is the one being handled.
    """

    LOGGER = 'oslo_db.api'

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.errors = []
        self.retrying = threading.Event()
        self._logger = logging.getLogger(self.LOGGER)
        self._level = None

    def emit(self, record):
        if record.getMessage().startswith('Performing DB retry'):
            self.errors.append(str(sys.exc_info()[1]))
            self.retrying.set()

    def __enter__(self):
        self._level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc_info):
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)


_UPDATE_IMAGES = re.compile(r'^\s*UPDATE images\b', re.IGNORECASE)


class RetriesTests:
    """oslo.db retries a transaction a server refused, provoked here.

    Server-only: SQLite has no connection to drop and no deadlock; its own
    refusal is TestRetriesOnSQLite's.
    """

    def test_a_dropped_connection_is_replaced(self):
        image = seed.Image([seed.Location('file:///1', status='active')],
                           status='active', deleted=False)
        seed.insert(self.engine, [image])
        engine = api.get_engine()
        with engine.connect() as connection:
            victim = connection.exec_driver_sql(
                _backend_id_sql(self.backend)).scalar()
        with self.engine.connect() as admin:
            admin.exec_driver_sql(_kill_sql(self.backend, victim))

        rows, _highest = api.data_users(self.context)

        self.assertEqual(['file:///1'],
                         [value for _id, _image, value in rows])
        with engine.connect() as connection:
            self.assertNotEqual(victim, connection.exec_driver_sql(
                _backend_id_sql(self.backend)).scalar())

    def test_restore_is_retried_after_a_real_deadlock(self):
        """restore_image loses a deadlock to another transaction and retries.

        The other transaction holds the image's location rows,
        restore_image takes the image row and waits for the locations, then
        the other transaction asks for the image row: a real deadlock,
        which the server resolves by aborting restore_image's transaction.
        oslo.db must retry it, and the retry must succeed.
        """
        image = seed.Image(pending('file:///1', 'file:///2'))
        seed.insert(self.engine, [image])
        _create_nontransactional_table(self.database)
        candidate = api.find_restorable(self.context, image.id)
        present = [location.id for location in candidate.locations]
        engine = api.get_engine()

        with RetryWatch() as retries, \
                db_tests.StatementCounter(engine) as counter:
            with self.engine.connect() as other:
                transaction = other.begin()
                _make_survivor(self.database, other)
                other.execute(LOCATIONS.update()
                              .values(updated_at=sa.func.now()))
                thread, outcome = _in_thread(api.restore_image, self.context,
                                             candidate, present)
                _wait_for_lock_wait(self.database, thread, outcome)
                other.execute(IMAGES.update().where(IMAGES.c.id == image.id)
                              .values(updated_at=sa.func.now()))
                transaction.commit()
            thread.join()
            statements = counter.take()

        self.assertNotIn('error', outcome)
        self.assertEqual(api.Restored(locations=2), outcome['result'])
        self.assertTrue(any('deadlock' in error.lower()
                            for error in retries.errors), retries.errors)
        # The image row was taken twice: the first attempt and the retry.
        self.assertEqual(2, sum(bool(_UPDATE_IMAGES.match(statement))
                                for statement in statements))
        self.assertEqual(('active', False, None),
                         image_row(self.engine, image.id)[:3])
        self.assertEqual([('active', False, False)] * 2,
                         location_rows(self.engine, image.id))


class TestRetriesOnSQLite(db_tests.SQLiteTestCase):
    """SQLite refuses a second writer at once: oslo.db retries it."""

    def test_sqlite_database_is_locked_is_retried(self):
        """A claim that meets another SQLite writer is retried, not failed.

        Another connection holds SQLite's write lock while the claim,
        having read its rows, asks for it: SQLite refuses at once
        ("database is locked") rather than wait, as waiting could deadlock.
        The writer lets go once the claim has been refused; the retry must
        then succeed.
        """
        image, decoy = seed.insert(self.engine, [
            seed.Image(pending('file:///1')),
            seed.Image(pending('file:///decoy'), status='active')])
        writer = self.engine.connect()
        transaction = writer.begin()
        writer.execute(IMAGES.update().where(IMAGES.c.id == decoy.id)
                       .values(name='renamed meanwhile'))

        with RetryWatch() as retries:
            def commit_once_refused():
                retries.retrying.wait(timeout=60)
                transaction.commit()
                writer.close()

            holder = threading.Thread(target=commit_once_refused)
            holder.start()
            try:
                claims = claim(self.context, image)
            finally:
                retries.retrying.set()
                holder.join()

        self.assertEqual([image.id], claimed_ids(claims))
        self.assertTrue(retries.errors, retries.errors)
        self.assertTrue(all('database is locked' in error
                            for error in retries.errors), retries.errors)
        self.assertEqual('deleted', image_row(self.engine, image.id)[0])
        self.assertEqual('active', image_row(self.engine, decoy.id)[0])


class TestRetriesOnMySQL(RetriesTests, db_tests.MySQLTestCase):
    pass


class TestRetriesOnPostgreSQL(RetriesTests, db_tests.PostgreSQLTestCase):
    pass
