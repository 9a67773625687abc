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

"""The read-only side of the backlog: StoreDeleter.plan() and store names.

plan() runs against glance_store's real file and http stores with the
network cut: it must decide as delete() would, and touch nothing.
"""

import os

import fixtures
import testtools

from glance.common import crypt
from glance.db.sqlalchemy import api as db_api
from glance.scrubber import backlog
from glance.scrubber.stores import deleter as store_deleter
from glance.scrubber.stores import errors
from glance.tests.unit.scrubber import base

Deletion = store_deleter.Deletion
KEY = 'sixteen byte key'
SECRET = 'plan-secret-key'


class TestPlan(base.SingleStoreTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(base.NoNetwork())

    def plan(self, url, image_id='image-1'):
        return self.deleter.plan(image_id,
                                 base.store_location(url))

    def test_data_in_the_datadir_would_be_deleted_and_is_kept(self):
        url = self.in_datadir('image-1')

        self.assertIs(Deletion.DELETED, self.plan(url))
        self.assertTrue(os.path.exists(url[len('file://'):]))

    def test_a_file_outside_every_datadir_is_refused(self):
        outside = self.useFixture(fixtures.TempDir()).path
        url = 'file://' + base.put(outside, 'precious')

        error = self.assertRaises(errors.LocationError, self.plan, url)
        self.assertIn('outside every filesystem_store_datadir', str(error))
        self.assertTrue(os.path.exists(url[len('file://'):]))

    def test_data_another_live_image_uses_would_be_kept(self):
        url = self.in_datadir('shared')
        self.live_image(url)
        self.deleter.data_users.refresh(self.context)

        self.assertIs(Deletion.SHARED, self.plan(url, image_id='pending'))

    def test_a_store_that_cannot_delete_would_let_go(self):
        self.assertIs(Deletion.NOT_OWNED,
                      self.plan('http://127.0.0.1:9/images/x.qcow2'))

    def test_a_scheme_no_configured_store_serves_is_refused(self):
        error = self.assertRaises(
            errors.LocationError, self.plan,
            'swift+https://user:%s@127.0.0.1:9/v1/images/x' % SECRET)

        self.assertIn('no configured store serves it', str(error))
        self.assertNotIn(SECRET, str(error))


def pending(url, meta_data=None):
    return db_api.PendingLocation(1, url, meta_data)


class TestStoreNames(testtools.TestCase):

    def test_the_url_scheme_names_the_store(self):
        names = backlog.StoreNames(multistore=False)

        self.assertEqual('s3', names.of(pending(
            's3://key:%s@host/bucket/obj' % SECRET)))
        self.assertEqual('file', names.of(pending('file:///images/x')))

    def test_the_backend_of_the_metadata_with_several_stores(self):
        names = backlog.StoreNames(multistore=True)

        self.assertEqual('fast', names.of(pending('file:///x',
                                                  '{"store": "fast"}')))
        self.assertEqual('file', names.of(pending('file:///x', '{}')))
        self.assertEqual('?', names.of(pending('file:///x', '[1]')))

    def test_an_encrypted_url_is_read_and_never_shown(self):
        names = backlog.StoreNames(False, encryption_key=KEY)
        value = crypt.urlsafe_encrypt(KEY, 's3://k:%s@h/b/o' % SECRET)

        self.assertEqual('s3', names.of(pending(value)))
        self.assertEqual('?', names.of(pending('not encrypted at all')))

    def test_a_value_without_a_scheme_is_not_shown(self):
        names = backlog.StoreNames(multistore=False)

        self.assertEqual('?', names.of(pending('/srv/%s/x' % SECRET)))
        self.assertEqual('?', names.of(pending('%s' % SECRET)))

    def test_an_image_names_each_store_once_in_order(self):
        image = db_api.BacklogImage('id', None, 1, (
            pending('s3://h/b/1'), pending('file:///x'),
            pending('s3://h/b/2')))

        self.assertEqual(['s3', 'file'],
                         backlog.StoreNames(False).of_image(image))


class TestDuration(testtools.TestCase):

    def test_short_durations_round_up(self):
        self.assertEqual(['0s', '1s', '45s', '1m00s', '9m12s', '3h05m',
                          '2d04h'],
                         [backlog.duration(seconds) for seconds in
                          (0, 0.2, 45, 60, 552, 3 * 3600 + 300,
                           2 * 86400 + 4 * 3600 + 59)])


class TestClaimedTotals(testtools.TestCase):

    def lines(self, coordinated=False, **counts):
        return list(backlog._claimed_totals(
            backlog.ClaimedListTotals(**counts), 3600, coordinated))

    def test_no_claim_is_said_too(self):
        self.assertEqual(['Claimed: 0 images'],
                         self.lines(coordinated=True))

    def test_how_many_may_be_taken_now_and_when_the_next(self):
        self.assertEqual(
            ['Claimed: 3 images, 3072 bytes (3.0 KiB); may be taken over '
             'now: 1 image; the next in 50m00s (scrub_claim_timeout: '
             '3600 s)'],
            self.lines(images=3, bytes=3072, takeable_now=1,
                       next_takeable_in=3000))

    def test_with_coordination_a_dead_members_claims_go_sooner(self):
        lines = self.lines(coordinated=True, images=1, bytes=10,
                           takeable_now=1)

        self.assertEqual('Claimed: 1 image, 10 bytes; may be taken over '
                         'now: 1 image (scrub_claim_timeout: 3600 s)',
                         lines[0])
        self.assertIn('taken over 60 s after they were made', lines[1])
