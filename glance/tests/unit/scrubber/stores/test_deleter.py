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

"""What the scrubber may delete, and StoreDeleter against real stores.

StoreDeleter runs against glance_store's real file store and real http
store (whose delete is refused by glance_store before any request: a
socket connect fails the test); the images that may still need some data
(DataUsers) are read from a real SQLite database. Only the answers no
local store can give (RBD's "in use", botocore's errors) are injected
where glance_store would raise them.
"""

import os
import socket

from botocore import exceptions as boto_exceptions
import fixtures
import glance_store
from glance_store import exceptions as store_exceptions
from oslo_config import cfg
from oslo_config import fixture as config_fixture
import testtools

from glance.cmd import scrubber as cmd
from glance.common import crypt
from glance.common import exception
from glance.db.sqlalchemy import api as db_api
from glance import scrubber
from glance.scrubber import data_users
from glance.scrubber.stores import deleter as store_deleter
from glance.scrubber.stores import errors
from glance.scrubber.stores import layout
from glance.scrubber.stores import urls
from glance.tests import seed
from glance.tests.unit.scrubber.base import DatabaseTestCase
from glance.tests.unit.scrubber.base import datadirs_of
from glance.tests.unit.scrubber.base import NoNetwork
from glance.tests.unit.scrubber.base import put
from glance.tests.unit.scrubber.base import SingleStoreTestCase
from glance.tests.unit.scrubber.base import store_location

Deletion = store_deleter.Deletion
KEY = 'sixteen byte key'


# --- configured_datadirs ----------------------------------------------------


class TestConfiguredDatadirs(testtools.TestCase):

    def single_store(self, stores=('file',), **options):
        conf = cfg.ConfigOpts()
        cmd.register_opts(conf)
        glance_store.register_opts(conf)
        conf([], project='glance')
        conf.set_override('stores', list(stores), group='glance_store')
        for name, value in options.items():
            conf.set_override(name, value, group='glance_store')
        return conf

    def multi_store(self, backends, sections):
        conf = cfg.ConfigOpts()
        cmd.register_opts(conf)
        conf([], project='glance')
        conf.set_override('enabled_backends', backends)
        glance_store.register_store_opts(conf)
        for group, options in sections.items():
            for name, value in options.items():
                conf.set_override(name, value, group=group)
        return conf

    def test_single_file_store_has_its_datadir(self):
        conf = self.single_store(filesystem_store_datadir='/srv/images')

        self.assertEqual(['/srv/images'],
                         datadirs_of(conf))

    def test_single_file_store_datadirs_drop_their_priority(self):
        conf = self.single_store(filesystem_store_datadir=None,
                                 filesystem_store_datadirs=[
                                     '/srv/fast:200', '/srv/slow'])

        self.assertEqual(['/srv/fast', '/srv/slow'],
                         datadirs_of(conf))

    def test_no_file_store_has_no_datadir(self):
        conf = self.single_store(stores=('http', 'rbd'),
                                 filesystem_store_datadir='/srv/images')

        self.assertEqual([], datadirs_of(conf))

    def test_multi_store_reads_each_file_backend_and_no_other(self):
        conf = self.multi_store(
            {'fast': 'file', 'web': 'http', 'cheap': 'file'},
            {'fast': {'filesystem_store_datadir': '/srv/fast'},
             'cheap': {'filesystem_store_datadir': None,
                       'filesystem_store_datadirs': ['/srv/c1:1',
                                                     '/srv/c2:2']}})

        self.assertEqual(['/srv/fast', '/srv/c1', '/srv/c2'],
                         datadirs_of(conf))

    def test_datadirs_are_read_as_glance_store_reads_them(self):
        # The path is what comes before the last colon, stripped.
        conf = self.single_store(filesystem_store_datadir=None,
                                 filesystem_store_datadirs=[
                                     '/srv/fast: 200', '/srv/slow:',
                                     ' /srv/padded :7'])

        self.assertEqual(['/srv/fast', '/srv/slow', '/srv/padded'],
                         datadirs_of(conf))

    def test_multi_store_datadirs_are_read_as_glance_store_reads_them(self):
        conf = self.multi_store(
            {'cheap': 'file'},
            {'cheap': {'filesystem_store_datadir': None,
                       'filesystem_store_datadirs': ['/srv/c1: 100',
                                                     '/srv/c2:']}})

        self.assertEqual(['/srv/c1', '/srv/c2'],
                         datadirs_of(conf))


# --- FileDatadirs -----------------------------------------------------------


class TestFileDatadirs(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.datadir = os.path.join(self.root, 'images')
        os.mkdir(self.datadir)
        self.datadirs = layout.FileDatadirs([self.datadir])

    def test_a_file_in_the_datadir_is_inside(self):
        self.assertTrue(self.datadirs.contains(
            os.path.join(self.datadir, 'image-1')))
        self.assertTrue(self.datadirs.contains(
            os.path.join(self.datadir, 'sub', 'image-1')))

    def test_a_sibling_sharing_the_prefix_is_outside(self):
        self.assertFalse(self.datadirs.contains(
            os.path.join(self.root, 'images-private', 'image-1')))

    def test_dot_dot_out_of_the_datadir_is_outside(self):
        self.assertFalse(self.datadirs.contains(
            os.path.join(self.datadir, '..', 'secret')))
        self.assertTrue(self.datadirs.contains(
            os.path.join(self.datadir, 'sub', '..', 'image-1')))

    def test_a_folder_made_a_link_since_is_seen_once_forgotten(self):
        # Folders are resolved once per pass (forget() at each start).
        folder = os.path.join(self.datadir, 'sub')
        os.mkdir(folder)
        image = os.path.join(folder, 'image-1')
        self.assertTrue(self.datadirs.contains(image))
        os.rmdir(folder)
        os.symlink(self.root, folder)

        self.datadirs.forget()

        self.assertFalse(self.datadirs.contains(image))

    def test_a_symlink_in_the_datadir_to_a_file_outside_is_outside(self):
        target = put(self.root, 'secret')
        link = os.path.join(self.datadir, 'image-1')
        os.symlink(target, link)

        self.assertFalse(self.datadirs.contains(link))

    def test_a_folder_in_the_datadir_linking_outside_is_outside(self):
        outside = os.path.join(self.root, 'outside')
        os.mkdir(outside)
        os.symlink(outside, os.path.join(self.datadir, 'sub'))

        self.assertFalse(self.datadirs.contains(
            os.path.join(self.datadir, 'sub', 'image-1')))
        self.assertFalse(self.datadirs.contains(
            os.path.join(self.datadir, 'sub', '..', 'sub', 'image-1')))

    def test_a_datadir_configured_through_a_symlink_is_resolved(self):
        alias = os.path.join(self.root, 'alias')
        os.symlink(self.datadir, alias)
        through_alias = layout.FileDatadirs([alias])

        self.assertTrue(through_alias.contains(
            os.path.join(self.datadir, 'image-1')))
        self.assertTrue(through_alias.contains(
            os.path.join(alias, 'image-1')))
        self.assertFalse(through_alias.contains(
            os.path.join(self.root, 'elsewhere')))

    def test_any_of_several_datadirs(self):
        other = os.path.join(self.root, 'other')
        datadirs = layout.FileDatadirs([self.datadir, other])

        self.assertTrue(datadirs.contains(os.path.join(other, 'x')))
        self.assertFalse(datadirs.contains(os.path.join(self.root, 'x')))

    def test_no_datadir_contains_nothing(self):
        self.assertFalse(layout.FileDatadirs([]).contains(
            os.path.join(self.datadir, 'image-1')))


# --- data_key ---------------------------------------------------------------


class TestDataKey(testtools.TestCase):

    def assertSameData(self, url, *others):
        key = urls.data_key(url)
        for other in others:
            self.assertEqual(key, urls.data_key(other), other)

    def assertOtherData(self, url, *others):
        key = urls.data_key(url)
        for other in others:
            self.assertNotEqual(key, urls.data_key(other), other)

    def test_credentials_do_not_change_the_data_named(self):
        self.assertSameData('s3://host/bucket/key',
                            's3://access:secret@host/bucket/key')
        self.assertSameData('swift+https://host/v1/c/o',
                            'swift+https://acct:user:key@host/v1/c/o')

    def test_trailing_slash_dot_and_dot_dot_do_not_either(self):
        self.assertSameData('file:///srv/images/abc',
                            'file:///srv/images/abc/',
                            'file:///srv/./images/abc',
                            'file:///srv/images/x/../abc')

    def test_other_data_has_another_key(self):
        self.assertOtherData('s3://host/bucket/key',
                             's3://host/bucket/key2', 's3://host/other/key',
                             'swift://host/bucket/key')
        self.assertOtherData('swift://host/v1/c/o',
                             'swift://other-host/v1/c/o',
                             'swift://host/v1/c/other',
                             'swift://host/v1/other/o')

    def test_a_query_does_not_change_the_s3_object_named(self):
        self.assertSameData('s3://host/bucket/key',
                            's3://host/bucket/key?versionId=2')

    # S3: glance_store reaches every S3 location through the configured
    # endpoint and credentials, so the bucket and the key name the data.

    def test_an_s3_object_is_named_by_its_bucket_and_key(self):
        self.assertEqual(('s3', 'bucket', 'key'),
                         urls.data_key('s3://host/bucket/key'))
        self.assertEqual(
            ('s3', 'bucket', 'key'),
            urls.data_key('s3+https://a:b@host:8443/bucket/key/'))

    def test_s3_with_and_without_credentials_is_the_same_object(self):
        self.assertSameData('s3://s3.example.com/images/abc',
                            's3://AKIA:secret@s3.example.com/images/abc',
                            's3://AKIA:secret@other.example.com/images/abc')

    def test_a_slash_in_the_secret_key_does_not_change_the_data_named(self):
        # AWS secret keys contain '/' (and '+').
        self.assertSameData('s3://host/bucket/key',
                            's3://AKIA:se/cr+et@host/bucket/key',
                            's3+https://AKIA:a/b/c@host/bucket/key')
        self.assertOtherData('s3://AKIA:se/cr+et@host/bucket/key',
                             's3://AKIA:se/cr+et@host/bucket/other')

    def test_s3_and_s3_https_name_the_same_object(self):
        self.assertSameData('s3://host/bucket/key',
                            's3+https://host/bucket/key',
                            's3+http://host/bucket/key',
                            's3+https://other-host:8443/bucket/key')

    def test_an_s3_object_is_not_a_swift_or_rbd_one(self):
        self.assertOtherData('s3://host/bucket/key',
                             'swift://host/bucket/key',
                             'rbd://host/bucket/key')

    # Swift: the credentials may hold '/', the host and path name the data.

    def test_swift_credentials_are_stripped_even_with_a_slash(self):
        self.assertSameData('swift://host/v1/AUTH_t/glance/abc',
                            'swift://acct:user:k/e/y@host/v1/AUTH_t/glance/'
                            'abc',
                            'swift://user:key@host/v1/AUTH_t/glance/abc/')
        self.assertEqual(
            ('swift+https', 'host', '/v1/c/o'),
            urls.data_key('swift+https://a:u:k/ey@host/v1/c/o'))

    def test_swift_objects_on_another_host_are_other_data(self):
        self.assertOtherData('swift://host/v1/c/o',
                             'swift://other/v1/c/o',
                             'swift://u:k/ey@other/v1/c/o')

    # RBD: the cluster (fsid), pool, image and snapshot.

    def test_rbd_names_the_data_by_cluster_pool_image_and_snapshot(self):
        url = 'rbd://fsid-1/images/abc/snap'

        self.assertEqual(('rbd', 'fsid-1', '/images/abc/snap'),
                         urls.data_key(url))
        self.assertSameData(url, 'rbd://fsid-1/images/abc/snap/')
        self.assertOtherData(url, 'rbd://fsid-2/images/abc/snap',
                             'rbd://fsid-1/other/abc/snap',
                             'rbd://fsid-1/images/def/snap',
                             'rbd://fsid-1/images/abc/snap2')

    # File: glance_store's file store answers to file:// and filesystem://.

    def test_file_and_filesystem_urls_name_the_same_file(self):
        self.assertEqual(('file', '/srv/images/abc'),
                         urls.data_key('filesystem:///srv/images/abc'))
        self.assertSameData('file:///srv/images/abc',
                            'filesystem:///srv/images/abc',
                            'filesystem:///srv/images/x/../abc/')

    def test_a_file_url_host_part_is_part_of_the_path(self):
        # file://srv/images/abc is the relative path srv/images/abc.
        self.assertEqual(('file', 'srv/images/abc'),
                         urls.data_key('file://srv/images/abc'))
        self.assertOtherData('file:///srv/images/abc',
                             'file://srv/images/abc',
                             'filesystem://srv/images/abc')


# --- DataUsers --------------------------------------------------------------


def besides(users, location, image_id):
    """DataUsers.users_besides() for a PendingLocation."""
    return users.users_besides(users.digest_of(location), image_id)


class TestDataUsers(DatabaseTestCase):

    def deleter_with_data_users(self, encryption_key):
        return store_deleter.StoreDeleter(
            self.context, encryption_key=encryption_key,
            data_users=data_users.DataUsers(
                urls.LocationUrls(encryption_key)))

    def data_users(self):
        users = data_users.DataUsers(urls.LocationUrls())
        # Every refresh reads: the tests of the interval set it back.
        users.REFRESH_INTERVAL = 0
        return users

    def test_data_of_another_live_image_is_in_use(self):
        live = self.live_image('s3://host/bucket/key')
        pending = self.pending_image('s3://host/bucket/key')
        users = self.data_users()

        users.refresh(self.context)

        self.assertEqual({live.id}, besides(
            users, store_location('s3://access:secret@host/bucket/key/'),
            pending.id))
        self.assertEqual({pending.id}, besides(
            users, store_location('s3://host/bucket/key'), live.id))
        self.assertEqual(set(), besides(
            users, store_location('s3://host/bucket/other'), pending.id))

    def test_a_restorable_image_is_a_user_of_its_data(self):
        # pending_delete, so a restore can still bring it back: young or
        # eligible alike, until a pass claims it.
        young = self.pending_image('file:///srv/images/a',
                                   deleted_seconds_ago=5)
        eligible = self.pending_image('file:///srv/images/a')
        users = self.data_users()

        users.refresh(self.context)

        self.assertEqual({young.id}, besides(
            users, store_location('file:///srv/images/a'), eligible.id))
        self.assertEqual({eligible.id}, besides(
            users, store_location('file:///srv/images/a'), young.id))

    def test_a_claimed_image_is_not_a_user_of_its_data(self):
        # A pass claimed it (deleted, its locations still pending_delete):
        # nothing restores it.
        seed.insert(self.db.engine, [seed.Image(
            [seed.Location('file:///srv/images/a')], status='deleted')])
        users = self.data_users()

        users.refresh(self.context)

        self.assertEqual(set(), besides(
            users, store_location('file:///srv/images/a'), 'another-image'))

    def test_locations_already_deleted_are_not_users(self):
        seed.insert(self.db.engine, [
            seed.Image([seed.Location('file:///srv/images/a',
                                      status='deleted')]),
            seed.Image([seed.Location('file:///srv/images/a',
                                      status='deleted')],
                       status='active', deleted=False)])
        users = self.data_users()

        users.refresh(self.context)

        self.assertEqual(set(), besides(
            users, store_location('file:///srv/images/a'), 'another-image'))

    def test_images_claimed_in_one_batch_no_longer_need_their_data(self):
        # Two eligible images share data and are claimed together: neither
        # keeps it for the other, so the first worker deletes it.
        first = self.pending_image('file:///srv/images/shared')
        second = self.pending_image('file:///srv/images/shared')
        users = self.data_users()
        users.refresh(self.context)

        users.claimed(self.claim(first, second))

        self.assertEqual(set(), besides(
            users, self.location_of(first), first.id))
        self.assertEqual(set(), besides(
            users, self.location_of(second), second.id))

    def test_claimed_keeps_the_users_that_were_not_claimed(self):
        claimed = self.pending_image('file:///srv/images/shared')
        young = self.pending_image('file:///srv/images/shared',
                                   deleted_seconds_ago=5)
        live = self.live_image('file:///srv/images/shared')
        users = self.data_users()
        users.refresh(self.context)

        users.claimed(self.claim(claimed))

        self.assertEqual({young.id, live.id}, besides(
            users, self.location_of(claimed), claimed.id))

    def test_an_image_claimed_in_an_earlier_batch_no_longer_counts(self):
        earlier = self.pending_image('file:///srv/images/shared')
        later = self.pending_image('file:///srv/images/shared')
        users = self.data_users()
        users.refresh(self.context)
        users.claimed(self.claim(earlier))
        # The earlier one's worker keeps the data for the later image.
        self.assertEqual({later.id}, besides(
            users, self.location_of(earlier), earlier.id))

        users.refresh(self.context)
        users.claimed(self.claim(later))

        self.assertEqual(set(), besides(
            users, self.location_of(later), later.id))

    def test_a_refresh_sees_the_locations_added_since(self):
        users = self.data_users()
        users.refresh(self.context)
        live = self.live_image('file:///srv/images/new')
        young = self.pending_image('file:///srv/images/young',
                                   deleted_seconds_ago=5)

        users.refresh(self.context)

        self.assertEqual({live.id}, besides(
            users, store_location('file:///srv/images/new'), 'another-image'))
        self.assertEqual({young.id}, besides(
            users, store_location('file:///srv/images/young'),
            'another-image'))

    def test_a_refresh_reads_only_the_locations_added_since(self):
        self.live_image('file:///srv/images/old')
        users = self.data_users()
        calls = []
        real = db_api.data_users

        def data_users(context, after_id=None, limit=None):
            rows, highest = real(context, after_id=after_id, limit=limit)
            calls.append((after_id, [value for _i, _im, value in rows]))
            return rows, highest

        self.useFixture(fixtures.MockPatchObject(db_api, 'data_users',
                                                 data_users))
        # The first refresh of a pass only notes where the table ends.
        users.refresh(self.context)
        besides(users, store_location('file:///srv/images/new'),
                'another-image')
        self.live_image('file:///srv/images/new')

        users.refresh(self.context)

        [(after, new_rows)] = calls
        self.assertEqual(['file:///srv/images/new'], new_rows)
        self.assertIsNotNone(after)

    def test_refreshes_read_at_most_once_an_interval(self):
        self.live_image('file:///srv/images/old')
        users = data_users.DataUsers(urls.LocationUrls())
        users.REFRESH_INTERVAL = 3600
        users.refresh(self.context)
        # The data is at stake: its users are known, none yet.
        besides(users, store_location('file:///srv/images/new'),
                'another-image')
        live = self.live_image('file:///srv/images/new')

        users.refresh(self.context)
        too_soon = besides(users, store_location('file:///srv/images/new'),
                           'another-image')
        # A new pass starts over: its first refresh always reads.
        users.forget()
        users.refresh(self.context)

        self.assertEqual(set(), too_soon)
        self.assertEqual({live.id}, besides(
            users, store_location('file:///srv/images/new'), 'another-image'))

    def test_the_first_refresh_of_a_pass_always_reads(self):
        users = data_users.DataUsers(urls.LocationUrls())
        users.REFRESH_INTERVAL = 3600
        live = self.live_image('file:///srv/images/a')
        users.refresh(self.context)
        users.forget()
        other = self.live_image('file:///srv/images/a')

        users.refresh(self.context)

        self.assertEqual({live.id, other.id}, besides(
            users, store_location('file:///srv/images/a'), 'another-image'))

    def test_an_image_restored_since_the_first_refresh_is_still_a_user(self):
        # Restored on another host mid-pass: its location keeps its id, so
        # no later refresh reads it again; it was a user from the start.
        restored = self.pending_image('file:///srv/images/shared',
                                      deleted_seconds_ago=5)
        users = self.data_users()
        users.refresh(self.context)
        candidate = db_api.find_restorable(self.context, restored.id)
        db_api.restore_image(self.context, candidate,
                             [loc.id for loc in candidate.locations])

        users.refresh(self.context)

        self.assertEqual({restored.id}, besides(
            users, store_location('file:///srv/images/shared'),
            'another-image'))

    def test_forget_drops_what_an_earlier_refresh_saw(self):
        live = self.live_image('file:///srv/images/a')
        users = self.data_users()
        users.refresh(self.context)
        # glance-api deletes the image and a pass scrubs it.
        with self.db.engine.begin() as connection:
            connection.execute(seed.IMAGES.update()
                               .where(seed.IMAGES.c.id == live.id)
                               .values(status='deleted', deleted=True))
            connection.execute(seed.LOCATIONS.update()
                               .where(seed.LOCATIONS.c.image_id == live.id)
                               .values(status='deleted', deleted=True))

        users.forget()
        users.refresh(self.context)

        self.assertEqual(set(), besides(
            users, store_location('file:///srv/images/a'), 'another-image'))

    def test_forget_drops_the_images_claimed(self):
        # What claimed() removed comes back with the next pass's read, if
        # the image is a user again (its claim was given back).
        image = self.pending_image('file:///srv/images/a')
        users = self.data_users()
        users.refresh(self.context)
        the_claim = self.claim(image)[0]
        users.claimed([the_claim])
        db_api.record_scrubs(self.context, [db_api.ScrubRecord(
            image.id, the_claim.token, (), finished=False)])

        users.forget()
        users.refresh(self.context)

        self.assertEqual({image.id}, besides(
            users, self.location_of(image), 'another-image'))

    def test_encrypted_values_are_compared_decrypted(self):
        live = self.live_image(crypt.urlsafe_encrypt(
            KEY, 'file:///srv/images/a'))
        pending = self.pending_image(crypt.urlsafe_encrypt(
            KEY, 'file:///srv/images/a'))
        deleter = self.deleter_with_data_users(KEY)

        deleter.data_users.refresh(self.context)
        deleter.data_users.claimed(self.claim(pending))

        self.assertEqual({live.id}, besides(
            deleter.data_users, self.location_of(pending), pending.id))
        self.assertEqual({live.id}, besides(
            deleter.data_users,
            store_location(crypt.urlsafe_encrypt(KEY, 'file:///srv/images/a')),
            'another-image'))

    def test_a_value_that_does_not_decrypt_is_left_out(self):
        self.live_image('not encrypted at all')
        live = self.live_image(crypt.urlsafe_encrypt(
            KEY, 'file:///srv/images/a'))
        deleter = self.deleter_with_data_users(KEY)

        deleter.data_users.refresh(self.context)

        self.assertEqual({live.id}, besides(
            deleter.data_users,
            store_location(crypt.urlsafe_encrypt(KEY, 'file:///srv/images/a')),
            'another-image'))


# --- StoreDeleter, single store ---------------------------------------------


class TestStoreDeleter(SingleStoreTestCase):

    def test_deletes_the_data_of_a_location(self):
        url = self.in_datadir('image-1')
        decoy = self.in_datadir('image-2')

        self.assertIs(Deletion.DELETED, self.delete(url))

        self.assertFalse(os.path.exists(url[len('file://'):]))
        self.assertTrue(os.path.exists(decoy[len('file://'):]))

    def test_data_already_gone(self):
        missing = 'file://' + os.path.join(self.datadir, 'never-there')

        self.assertIs(Deletion.ALREADY_GONE, self.delete(missing))

    def test_data_another_live_image_uses_is_kept(self):
        url = self.in_datadir('shared')
        live = self.live_image(url)
        self.deleter.data_users.refresh(self.context)

        self.assertIs(Deletion.SHARED, self.delete(url, image_id='pending'))
        self.assertTrue(os.path.exists(url[len('file://'):]))
        # Its own live location does not keep an image's data.
        self.assertIs(Deletion.DELETED, self.delete(url, image_id=live.id))

    def test_data_a_restorable_image_may_need_is_kept(self):
        url = self.in_datadir('shared')
        young = self.pending_image(url, deleted_seconds_ago=5)
        eligible = self.pending_image(url)
        self.deleter.data_users.refresh(self.context)
        self.deleter.data_users.claimed(self.claim(eligible))

        self.assertIs(Deletion.SHARED, self.deleter.delete(
            eligible.id, self.location_of(eligible)))
        self.assertTrue(os.path.exists(url[len('file://'):]))
        self.assertTrue(self.deleter.data_present(self.location_of(young)))

    def test_shared_data_of_images_claimed_together_is_deleted_once(self):
        # Neither keeps the data for the other: the first worker deletes
        # it, the second finds it gone, and knows why (no sign of a wrong
        # store for the guard).
        url = self.in_datadir('shared')
        first = self.pending_image(url)
        second = self.pending_image(url)
        self.deleter.data_users.refresh(self.context)
        self.deleter.data_users.claimed(self.claim(first, second))

        self.assertIs(Deletion.DELETED, self.deleter.delete(
            first.id, self.location_of(first)))
        self.assertFalse(os.path.exists(url[len('file://'):]))
        self.assertIs(Deletion.GONE_WITH_ANOTHER, self.deleter.delete(
            second.id, self.location_of(second)))

    def test_shared_data_goes_with_the_last_image_claimed(self):
        url = self.in_datadir('shared')
        earlier = self.pending_image(url)
        later = self.pending_image(url)
        users = self.deleter.data_users
        users.refresh(self.context)

        users.claimed(self.claim(earlier))
        kept = self.deleter.delete(earlier.id, self.location_of(earlier))
        users.claimed(self.claim(later))

        self.assertIs(Deletion.SHARED, kept)
        self.assertIs(Deletion.DELETED, self.deleter.delete(
            later.id, self.location_of(later)))
        self.assertFalse(os.path.exists(url[len('file://'):]))

    def test_http_data_is_let_go_without_a_request(self):
        self.useFixture(NoNetwork())

        self.assertIs(Deletion.NOT_OWNED,
                      self.delete('http://images.example.com/ubuntu.img'))

    def test_a_file_outside_every_datadir_is_refused(self):
        elsewhere = self.useFixture(fixtures.TempDir()).path
        path = put(elsewhere, 'not-glances')

        error = self.assertRaises(errors.LocationError, self.delete,
                                  'file://' + path)

        self.assertIn('%s is outside every filesystem_store_datadir' % path,
                      str(error))
        self.assertTrue(os.path.exists(path))

    def test_a_symlink_in_the_datadir_to_a_file_outside_is_refused(self):
        elsewhere = self.useFixture(fixtures.TempDir()).path
        target = put(elsewhere, 'not-glances')
        link = os.path.join(self.datadir, 'image-1')
        os.symlink(target, link)

        self.assertRaises(errors.LocationError, self.delete,
                          'file://' + link)
        self.assertTrue(os.path.exists(target))
        self.assertTrue(os.path.islink(link))

    def test_dot_dot_out_of_the_datadir_is_refused(self):
        parent = os.path.dirname(self.datadir)
        escaped = put(parent, 'beside-the-datadir-%s'
                      % os.path.basename(self.datadir))
        self.addCleanup(os.unlink, escaped)
        url = 'file://%s/../%s' % (self.datadir, os.path.basename(escaped))

        self.assertRaises(errors.LocationError, self.delete, url)
        self.assertTrue(os.path.exists(escaped))

    def test_a_filesystem_url_outside_every_datadir_is_refused(self):
        # glance_store's file store also deletes through filesystem://
        # (CVE-2015-1195).
        elsewhere = self.useFixture(fixtures.TempDir()).path
        path = put(elsewhere, 'not-glances')

        error = self.assertRaises(errors.LocationError, self.delete,
                                  'filesystem://' + path)

        self.assertIn('%s is outside every filesystem_store_datadir' % path,
                      str(error))
        self.assertTrue(os.path.exists(path))

    def test_a_filesystem_url_escaping_the_datadir_is_refused(self):
        parent = os.path.dirname(self.datadir)
        escaped = put(parent, 'beside-the-datadir-%s'
                      % os.path.basename(self.datadir))
        self.addCleanup(os.unlink, escaped)

        self.assertRaises(errors.LocationError, self.delete,
                          'filesystem://%s/../%s' % (
                              self.datadir, os.path.basename(escaped)))
        self.assertTrue(os.path.exists(escaped))

    def test_a_filesystem_url_in_the_datadir_is_deleted(self):
        path = put(self.datadir, 'image-1')

        self.assertIs(Deletion.DELETED, self.delete('filesystem://' + path))
        self.assertFalse(os.path.exists(path))

    def test_a_filesystem_url_shares_data_with_a_file_url(self):
        url = self.in_datadir('shared')
        self.live_image(url)
        self.deleter.data_users.refresh(self.context)

        self.assertIs(Deletion.SHARED, self.delete(
            'filesystem://' + url[len('file://'):], image_id='pending'))
        self.assertTrue(os.path.exists(url[len('file://'):]))

    def test_a_file_url_with_a_host_part_is_checked_as_deleted(self):
        # glance_store's file store deletes host part + path, relative to
        # the working directory: file://victim/<datadir>/image-1 is
        # victim/<datadir>/image-1 there, outside every datadir.
        cwd = self.useFixture(fixtures.TempDir()).path
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(cwd)
        victim_dir = os.path.join(cwd, 'victim' + self.datadir)
        os.makedirs(victim_dir)
        victim = put(victim_dir, 'image-1')

        self.assertRaises(errors.LocationError, self.delete,
                          'file://victim%s/image-1' % self.datadir)
        self.assertTrue(os.path.exists(victim))

    def test_unknown_scheme_fails_the_location(self):
        error = self.assertRaises(errors.LocationError, self.delete,
                                  'gopher://somewhere/image')

        self.assertIn('the store refused', str(error))
        self.assertIn('gopher', str(error))

    def test_data_the_store_cannot_delete_fails_the_location(self):
        # unlink() of a directory: glance_store's Forbidden.
        folder = os.path.join(self.datadir, 'a-directory')
        os.mkdir(folder)

        error = self.assertRaises(errors.LocationError, self.delete,
                                  'file://' + folder)

        self.assertIn('the store refused', str(error))
        self.assertTrue(os.path.isdir(folder))

    def test_encrypted_location_is_decrypted_then_deleted(self):
        url = self.in_datadir('secret-image')
        deleter = self.make_deleter(encryption_key=KEY)

        self.assertIs(Deletion.DELETED, self.delete(
            crypt.urlsafe_encrypt(KEY, url), deleter=deleter))
        self.assertFalse(os.path.exists(url[len('file://'):]))

    def test_location_that_does_not_decrypt_is_left_alone(self):
        url = self.in_datadir('secret-image')
        deleter = self.make_deleter(encryption_key=KEY)

        for bad in (url, 'not base64 at all!'):
            error = self.assertRaises(errors.LocationError,
                                      self.delete, bad, deleter=deleter)
            self.assertIn('cannot decrypt the location', str(error))
        # The format carries no MAC: under another key the padding comes
        # out valid about once in 256 tries, and the garbage is then
        # refused as a URL instead. Either way nothing is deleted.
        self.assertRaises(errors.LocationError, self.delete,
                          crypt.urlsafe_encrypt('another key of16', url),
                          deleter=deleter)
        self.assertTrue(os.path.exists(url[len('file://'):]))

    def test_data_present_tells_whether_the_store_has_the_data(self):
        url = self.in_datadir('image-1')
        missing = 'file://' + os.path.join(self.datadir, 'never-there')

        self.assertTrue(self.deleter.data_present(store_location(url)))
        self.assertFalse(self.deleter.data_present(store_location(missing)))

    def test_data_present_when_the_store_cannot_tell(self):
        error = self.assertRaises(errors.LocationError,
                                  self.deleter.data_present,
                                  store_location('gopher://somewhere/image'))

        self.assertIn('cannot tell whether it has the data', str(error))


class TestStoreAnswers(SingleStoreTestCase):
    """Answers only remote stores give, raised where glance_store would."""

    def delete_raising(self, error):
        self.useFixture(fixtures.MockPatch(
            'glance_store.delete_from_backend', side_effect=error))
        return self.delete('swift+https://acct:user:key@auth/glance/image-1')

    def test_data_in_use_is_kept_for_a_later_pass(self):
        for error in (store_exceptions.InUseByStore(),
                      store_exceptions.HasSnapshot()):
            raised = self.assertRaises(errors.LocationInUse,
                                       self.delete_raising, error)
            self.assertEqual(exception.one_line(error), str(raised))

    def test_client_library_errors_fail_the_location_in_one_line(self):
        throttled = boto_exceptions.ClientError(
            {'Error': {'Code': 'SlowDown', 'Message': 'Reduce your rate'}},
            'DeleteObject')
        for error, expected in (
                (throttled, 'store error ClientError: An error occurred '
                            '(SlowDown)'),
                (OSError('first line\nsecond line'),
                 'store error OSError: first line')):
            raised = self.assertRaises(errors.LocationError,
                                       self.delete_raising, error)
            self.assertTrue(str(raised).startswith(expected), str(raised))
            self.assertNotIn('\n', str(raised))

    def test_a_store_out_of_reach_is_an_outage_of_the_store_named(self):
        for error, outage in (
                (boto_exceptions.ReadTimeoutError(endpoint_url='http://s3'),
                 errors.StoreTimeout),
                (ConnectionRefusedError(111, 'Connection refused'),
                 errors.StoreUnavailable)):
            raised = self.assertRaises(outage, self.delete_raising, error)
            self.assertEqual('swift', raised.store)
            self.assertNotIn('\n', str(raised))
        # Counted for the pass's breaker, by store.
        self.assertEqual('swift', self.deleter.outages.out_of_reach(2)[0])
        self.deleter.start_pass()
        self.assertIsNone(self.deleter.outages.out_of_reach(1))

    def test_an_error_no_store_raises_is_not_hidden(self):
        self.assertRaises(RuntimeError, self.delete_raising,
                          RuntimeError('a bug'))

    def test_s3_locations_go_through_the_shared_s3_stores(self):
        class SharedS3:
            def __init__(self):
                self.deleted = []

            def handles(self, url, backend):
                return url.startswith('s3')

            def delete(self, url, backend, context):
                if url.endswith('gone'):
                    raise store_exceptions.NotFound()
                self.deleted.append(url)

        shared = SharedS3()
        deleter = self.make_deleter(s3_stores=shared)
        file_url = self.in_datadir('image-1')

        self.assertIs(Deletion.DELETED, self.delete('s3://h/b/k',
                                                    deleter=deleter))
        self.assertIs(Deletion.ALREADY_GONE,
                      self.delete('s3://h/b/gone', deleter=deleter))
        self.assertIs(Deletion.DELETED, self.delete(file_url,
                                                    deleter=deleter))
        self.assertEqual(['s3://h/b/k'], shared.deleted)


class TestOneLine(testtools.TestCase):

    def test_first_line_or_the_type(self):
        self.assertEqual('first', exception.one_line(
            ValueError('\n first\nsecond')))
        self.assertEqual('KeyError', exception.one_line(KeyError()))


# --- StoreDeleter, multiple stores ------------------------------------------


class TestMultiStore(DatabaseTestCase):

    def setUp(self):
        super().setUp()
        self.conf = self.useFixture(config_fixture.Config(cfg.CONF)).conf
        self.fast = self.useFixture(fixtures.TempDir()).path
        self.cheap = self.useFixture(fixtures.TempDir()).path
        if 'enabled_backends' not in self.conf:
            self.conf.register_opt(cfg.DictOpt('enabled_backends'))
        self.conf.set_override('enabled_backends',
                               {'fast': 'file', 'cheap': 'file'})
        glance_store.register_store_opts(self.conf)
        self.conf.set_override('default_backend', 'fast',
                               group='glance_store')
        self.conf.set_override('filesystem_store_datadir', self.fast,
                               group='fast')
        self.conf.set_override('filesystem_store_datadir', self.cheap,
                               group='cheap')
        glance_store.create_multi_stores(self.conf)
        self.deleter = store_deleter.StoreDeleter(
            self.context,
            store_layout=layout.StoreLayout.from_config(self.conf),
            datadirs=layout.FileDatadirs(
                datadirs_of(self.conf)))

    def delete(self, url, meta_data):
        return self.deleter.delete('image-1', store_location(url, meta_data))

    def test_deletes_from_the_backend_named_in_the_metadata(self):
        on_fast = put(self.fast, 'image')
        on_cheap = put(self.cheap, 'image')

        self.assertIs(Deletion.DELETED, self.delete('file://' + on_cheap,
                                                    '{"store": "cheap"}'))

        self.assertFalse(os.path.exists(on_cheap))
        self.assertTrue(os.path.exists(on_fast))

    def test_a_file_outside_every_backend_datadir_is_refused(self):
        elsewhere = self.useFixture(fixtures.TempDir()).path
        path = put(elsewhere, 'image')

        self.assertRaises(errors.LocationError, self.delete,
                          'file://' + path, '{"store": "fast"}')
        self.assertTrue(os.path.exists(path))

    def test_unknown_backend_fails_the_location(self):
        path = put(self.fast, 'image')

        self.assertRaises(errors.LocationError, self.delete,
                          'file://' + path, '{"store": "nosuch"}')
        self.assertTrue(os.path.exists(path))

    def test_corrupt_metadata_fails_the_location(self):
        path = put(self.fast, 'image')

        for meta_data in ('{not json', '["a list"]'):
            error = self.assertRaises(errors.LocationError,
                                      self.delete, 'file://' + path,
                                      meta_data)
            self.assertIn('cannot read the location metadata', str(error))
        self.assertTrue(os.path.exists(path))

    def test_data_present_asks_the_backend_named(self):
        path = put(self.cheap, 'image')

        self.assertTrue(self.deleter.data_present(
            store_location('file://' + path, '{"store": "cheap"}')))
        self.assertFalse(self.deleter.data_present(
            store_location('file://' + os.path.join(self.cheap, 'nothing'),
                           '{"store": "cheap"}')))


class TestWorkerWithTheRealDeleter(SingleStoreTestCase):
    """The worker turns each of StoreDeleter's answers into an outcome."""

    def test_each_answer_of_the_store(self):
        deleted = self.in_datadir('deleted')
        shared = self.in_datadir('shared')
        self.live_image(shared)
        self.deleter.data_users.refresh(self.context)
        locations = [store_location(deleted, location_id=1),
                     store_location('file://%s/gone' % self.datadir,
                                    location_id=2),
                     store_location(shared, location_id=3),
                     store_location('http://web.example.com/x', location_id=4)]
        self.useFixture(NoNetwork())

        outcome = scrubber.Worker(self.deleter)(db_api.Claim(
            'image-1', 100, db_api.claim_token(), tuple(locations)))

        self.assertEqual(scrubber.Result.SCRUBBED, outcome.result)
        self.assertEqual([(1, Deletion.DELETED), (2, Deletion.ALREADY_GONE),
                          (3, Deletion.SHARED), (4, Deletion.NOT_OWNED)],
                         outcome.deletions)
        self.assertEqual(100, outcome.bytes_reclaimed)
        self.assertTrue(os.path.exists(shared[len('file://'):]))


class TestNoNetwork(testtools.TestCase):

    def test_no_network_fixture_refuses_connections(self):
        # The guard the http tests rely on does guard.
        self.useFixture(NoNetwork())

        self.assertRaises(AssertionError, socket.create_connection,
                          ('127.0.0.1', 9))
