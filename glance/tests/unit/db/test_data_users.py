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

"""Who else uses some data: the queries, and what a pass reads with them.

On real SQLite, MariaDB and PostgreSQL: each group of tests is a mixin
run by one class per server, on a database made once for the class.
"""

import fixtures
from oslo_utils import timeutils
import sqlalchemy as sa
import testtools

from glance.db.sqlalchemy import api
from glance.db.sqlalchemy import models
from glance import scrubber
from glance.scrubber import data_users
from glance.scrubber.stores import urls
from glance.tests import seed
from glance.tests.unit import db as db_tests
from glance.tests.unit.scrubber import base

LOCATIONS = models.ImageLocation.__table__


class _DataUsersTestCase:
    """What the data users tests share, beside a db_tests base."""

    def insert(self, *images):
        return seed.insert(self.engine, images)

    def location_ids(self, image):
        with self.engine.connect() as connection:
            return list(connection.scalars(
                sa.select(LOCATIONS.c.id)
                .where(LOCATIONS.c.image_id == image.id)
                .order_by(LOCATIONS.c.id)))

    def claim(self, *images):
        now = timeutils.utcnow()
        return api.claim_images(
            self.context, [api.Candidate(image.id) for image in images],
            now, now)


def live(*urls):
    return seed.Image([seed.Location(url, status='active') for url in urls],
                      status='active', deleted=False)


def pending(*urls, **kwargs):
    return seed.Image([seed.Location(url) for url in urls], **kwargs)


def values(rows):
    return [value for _id, _image, value in rows]


# --- data_users -------------------------------------------------------------


class DataUsersQueryTests:
    """api.data_users(): every location whose image may need its data."""

    def test_data_users_are_live_and_restorable_locations_in_id_order(self):
        # Live: its locations that are not deleted.
        active = seed.Image(
            [seed.Location('file:///a1', status='active'),
             seed.Location('file:///a-gone', status='deleted'),
             seed.Location('file:///a2', status='active')],
            status='active', deleted=False)
        # Restorable (pending_delete): its pending_delete locations, young
        # or eligible.
        restorable = seed.Image([seed.Location('file:///r1'),
                                 seed.Location('file:///r-gone',
                                               status='deleted')])
        young = pending('file:///y', deleted_seconds_ago=5)
        # Claimed by a pass, or finished: nothing restores them.
        claimed = pending('file:///c', status='deleted')
        finished = seed.Image([seed.Location('file:///f', status='deleted')],
                              status='deleted')
        self.insert(active, restorable, young, claimed, finished)
        first, _gone, second = self.location_ids(active)
        kept, _kept_gone = self.location_ids(restorable)
        [young_id] = self.location_ids(young)
        [highest] = self.location_ids(finished)

        rows, found_highest = api.data_users(self.context)

        self.assertEqual([
            (first, active.id, 'file:///a1'),
            (second, active.id, 'file:///a2'),
            (kept, restorable.id, 'file:///r1'),
            (young_id, young.id, 'file:///y')], [tuple(row) for row in rows])
        # The highest id of the table, user or not: the next call starts
        # there.
        self.assertEqual(highest, found_highest)

    def test_a_location_removed_from_a_live_image_is_not_a_data_user(self):
        # glance-api leaves a location removed from an active image
        # pending_delete: the image no longer needs it, and no restore
        # brings it back.
        self.insert(seed.Image([seed.Location('file:///kept',
                                              status='active'),
                                seed.Location('file:///removed')],
                               status='active', deleted=False))

        rows, _highest = api.data_users(self.context)

        self.assertEqual(['file:///kept'], values(rows))

    def test_an_image_stops_being_a_data_user_once_claimed(self):
        image = pending('file:///1')
        self.insert(image)
        before, _highest = api.data_users(self.context)

        self.claim(image)
        after, _highest = api.data_users(self.context)

        self.assertEqual(['file:///1'], values(before))
        self.assertEqual([], after)

    def test_data_users_after_an_id_are_only_the_newer_ones(self):
        self.insert(live('file:///old'), pending('file:///old-pending'))
        _rows, highest = api.data_users(self.context)
        new = live('file:///new')
        new_pending = pending('file:///new-pending', deleted_seconds_ago=5)
        new_claimed = pending('file:///new-claimed', status='deleted')
        self.insert(new, new_pending, new_claimed)

        rows, newest = api.data_users(self.context, after_id=highest)

        self.assertEqual([(new.id, 'file:///new'),
                          (new_pending.id, 'file:///new-pending')],
                         [(image_id, value) for _id, image_id, value in rows])
        self.assertEqual(self.location_ids(new_claimed)[0], newest)
        self.assertEqual(([], newest),
                         api.data_users(self.context, after_id=newest))

    def test_data_users_with_nothing_new_cost_one_statement(self):
        self.insert(pending('file:///1'))
        _rows, highest = api.data_users(self.context)

        with db_tests.StatementCounter(api.get_engine()) as counter:
            self.assertEqual(([], highest),
                             api.data_users(self.context, after_id=highest))

        self.assertEqual(1, len(counter.statements))
        self.assertIn('max', counter.statements[0].lower())

    def test_data_users_of_an_empty_table(self):
        self.assertEqual(([], None), api.data_users(self.context))
        self.assertEqual(([], None), api.data_users(self.context,
                                                    after_id=7))

    def test_data_users_a_page_at_a_time(self):
        self.insert(*[live('file:///%d' % number) for number in range(5)])

        first, highest = api.data_users(self.context, limit=2)
        second, _highest = api.data_users(self.context, after_id=first[-1][0],
                                          limit=2)
        last, _highest = api.data_users(self.context,
                                        after_id=second[-1][0], limit=2)

        self.assertEqual(['file:///0', 'file:///1', 'file:///2',
                          'file:///3', 'file:///4'],
                         values(first) + values(second) + values(last))
        self.assertEqual(highest, last[-1][0])

    def test_data_users_are_read_on_the_primary(self):
        self.use_replica()
        restorable = pending('file:///restorable')
        # The replica does not have the images.
        self.insert(live('file:///live'), restorable)

        rows, highest = api.data_users(self.context)

        self.assertEqual(['file:///live', 'file:///restorable'],
                         values(rows))
        self.assertEqual(self.location_ids(restorable)[0], highest)

    def test_data_users_read_a_claim_on_the_primary(self):
        # The replica still shows the image pending_delete: the claim on
        # the primary decides that it no longer needs its data.
        replica = self.use_replica()
        image = pending('file:///1')
        seed.insert(replica.engine, [image])
        self.insert(image)
        self.claim(image)

        self.assertEqual([], api.data_users(self.context)[0])

    def test_the_highest_location_id(self):
        self.assertIsNone(api.highest_location_id(self.context))
        image = pending('file:///1', 'file:///2', status='deleted')
        self.insert(image)

        self.assertEqual(self.location_ids(image)[-1],
                         api.highest_location_id(self.context))


class TestDataUsersQueryOnSQLite(DataUsersQueryTests, _DataUsersTestCase,
                                 db_tests.SQLiteTestCase):
    pass


class TestDataUsersQueryOnMySQL(DataUsersQueryTests, _DataUsersTestCase,
                                db_tests.MySQLTestCase):
    pass


class TestDataUsersQueryOnPostgreSQL(DataUsersQueryTests, _DataUsersTestCase,
                                     db_tests.PostgreSQLTestCase):
    pass


# --- find_data_users --------------------------------------------------------


class FindDataUsersTests:
    """api.find_data_users(): the data users a suffix narrows down to."""

    def find(self, *suffixes):
        return values(api.find_data_users(
            self.context, suffixes, urls.PLAIN_ENDINGS,
            urls.IRREGULAR_CHARACTERS))

    def test_only_values_ending_with_a_suffix(self):
        self.insert(live('file:///srv/a/1234', 'file:///srv/a/99-1234'),
                    live('file:///srv/a/5678', 'file:///srv/a/1234x'),
                    pending('rbd://fsid/pool/abcd/snap'),
                    pending('rbd://fsid/pool/efgh/snap'))

        found = self.find('1234', 'abcd/snap')

        self.assertEqual(['file:///srv/a/1234', 'file:///srv/a/99-1234',
                          'rbd://fsid/pool/abcd/snap'], found)

    def test_every_value_whose_ending_says_nothing(self):
        odd = ['file:///srv/a/other/', 'file:///srv/a/other/..',
               'file:///srv/a/other ', 's3://h/b/k?versionId=1',
               'file:///srv/a/#x1', 'file:///srv/a/o\nther']
        self.insert(live(*odd), live('file:///srv/a/plain'))

        self.assertEqual(odd, self.find('1234'))

    def test_only_data_users(self):
        self.insert(
            live('file:///1234'),
            pending('file:///young/1234', deleted_seconds_ago=5),
            pending('file:///claimed/1234', status='deleted'),
            seed.Image([seed.Location('file:///gone/1234',
                                      status='deleted')]),
            seed.Image([seed.Location('file:///removed/1234')],
                       status='active', deleted=False))

        self.assertEqual(['file:///1234', 'file:///young/1234'],
                         self.find('1234'))

    def test_suffixes_longer_than_a_value(self):
        self.insert(live('s3://b/k'))

        self.assertEqual(['s3://b/k'], self.find('s3://b/k', 'x' * 300))

    def test_many_suffixes_in_several_statements(self):
        self.useFixture(fixtures.MockPatch(
            'glance.db.sqlalchemy.api.SUFFIXES_PER_STATEMENT', 2))
        self.insert(live('file:///a', 'file:///b', 'file:///c'))

        with db_tests.StatementCounter(api.get_engine()) as counter:
            found = self.find('a', 'b', 'c', 'd')

        self.assertEqual(['file:///a', 'file:///b', 'file:///c'], found)
        self.assertEqual(2, len(counter.statements))

    def test_the_pending_locations_of_some_images(self):
        image = pending('file:///1', 'file:///2')
        other = pending('file:///3')
        self.insert(image, other)

        found = api.list_pending_locations(self.context, [image.id])

        self.assertEqual({image.id: ['file:///1', 'file:///2']},
                         {image_id: [location.url for location in found]
                          for image_id, found in found.items()})


class TestFindDataUsersOnSQLite(FindDataUsersTests, _DataUsersTestCase,
                                db_tests.SQLiteTestCase):
    pass


class TestFindDataUsersOnMySQL(FindDataUsersTests, _DataUsersTestCase,
                               db_tests.MySQLTestCase):
    pass


class TestFindDataUsersOnPostgreSQL(FindDataUsersTests, _DataUsersTestCase,
                                    db_tests.PostgreSQLTestCase):
    pass


# --- what a pass reads ------------------------------------------------------


class LocationRowsRead(fixtures.Fixture):
    """Counts the location rows the database API hands back."""

    READERS = ('data_users', 'find_data_users', 'list_pending_locations')

    def _setUp(self):
        self.rows = 0
        for name in self.READERS:
            if hasattr(api, name):
                self.useFixture(fixtures.MockPatchObject(
                    api, name, self._counted(getattr(api, name))))

    def _counted(self, reader):
        def read(*args, **kwargs):
            result = reader(*args, **kwargs)
            rows = result[0] if isinstance(result, tuple) else result
            self.rows += (sum(len(found) for found in rows.values())
                          if isinstance(rows, dict) else len(rows))
            return result
        return read


class WhatAPassReadsTests:
    """A pass reads about the data at stake, not about the whole cloud."""

    LIVE = 2000

    def setUp(self):
        super().setUp()
        self.insert(*[live('file:///srv/images/live-%d' % number)
                      for number in range(self.LIVE)])

    def make_scrubber(self):
        deleter = base.RecordingDeleter()
        deleter.data_users = data_users.DataUsers(urls.LocationUrls())
        settings = scrubber.Settings(
            scrub_pool_size=4, scrub_time=0,
            lock_path=self.useFixture(fixtures.TempDir()).path,
            scrub_claim_timeout=600, scrub_not_found_ratio=0.5,
            report_interval=60.0)
        return scrubber.Scrubber(
            self.context, settings, deleter, deleter.data_users,
            deleter.gate, scrubber.Executors('threading'))

    def test_a_pass_reads_the_locations_at_stake_only(self):
        due = [pending('file:///srv/images/due-%d' % number)
               for number in range(10)]
        self.insert(*due)
        the_scrubber = self.make_scrubber()
        rows = self.useFixture(LocationRowsRead())

        summary = the_scrubber.run_once()

        self.assertEqual(10, summary.scrubbed)
        # The due images' own locations, at most twice over: none of the
        # live images' rows.
        self.assertLessEqual(rows.rows, 20)

    def test_successive_passes_read_their_own_backlog_only(self):
        # A daemon's passes: one image deleted between each two.
        the_scrubber = self.make_scrubber()
        rows = self.useFixture(LocationRowsRead())

        for number in range(3):
            self.insert(pending('file:///srv/images/due-%d' % number))
            the_scrubber.run_once()
        the_scrubber.run_once()

        # Each image's location, read by a look-ahead and its look-up.
        self.assertLessEqual(rows.rows, 6)

    def test_the_users_of_the_data_at_stake_are_found_among_many(self):
        shared = pending('file:///srv/images/live-7')
        alone = pending('file:///srv/images/alone')
        irregular = live('file:///srv/images/alone/.')
        self.insert(shared, alone, irregular)
        users = data_users.DataUsers(urls.LocationUrls(), self.context)
        users.forget()
        users.look_ahead(self.context, [shared.id, alone.id])
        users.refresh(self.context)
        claims = self.claim(shared, alone)
        users.claimed(claims)

        asked = {claim.image_id: users.users_besides(
            users.digest_of(claim.locations[0]), claim.image_id)
            for claim in claims}

        self.assertEqual(1, len(asked[shared.id]))
        self.assertEqual({irregular.id}, asked[alone.id])


class TestWhatAPassReadsOnSQLite(WhatAPassReadsTests, _DataUsersTestCase,
                                 db_tests.SQLiteTestCase):
    pass


class TestWhatAPassReadsOnMySQL(WhatAPassReadsTests, _DataUsersTestCase,
                                db_tests.MySQLTestCase):
    pass


class TestWhatAPassReadsOnPostgreSQL(WhatAPassReadsTests, _DataUsersTestCase,
                                     db_tests.PostgreSQLTestCase):
    pass


# --- how far a pass looks ahead ---------------------------------------------


class TestLookAheadSize(testtools.TestCase):

    def test_a_quick_look_up_keeps_the_least(self):
        size = data_users.LookAheadSize()
        self.assertEqual(size.LEAST, size())

        size.took(0.05, 3000.0)

        self.assertEqual(size.LEAST, size())

    def test_a_slow_look_up_looks_further_ahead_within_the_most(self):
        size = data_users.LookAheadSize()

        size.took(0.6, 2500.0)
        further = size()
        size.took(30.0, 2500.0)

        # 0.6 s is a tenth of the time 15,000 images take at that pace.
        self.assertEqual(15000, further)
        self.assertEqual(size.MOST, size())
