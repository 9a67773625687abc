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

"""StoreDeleter against glance_store's real file store driver."""

import os

import fixtures
import glance_store
from oslo_config import cfg
from oslo_config import fixture as config_fixture
import testtools

from glance.common import crypt
from glance import context
from glance.db.sqlalchemy import api as db_api
from glance import scrubber

KEY = 'sixteen byte key'


def location(url, meta_data=None, location_id=1):
    return db_api.PendingLocation(location_id, url, meta_data)


class StoreTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = self.useFixture(config_fixture.Config(cfg.CONF)).conf
        self.context = context.get_admin_context()

    def put(self, folder, name, data=b'image data'):
        path = os.path.join(folder, name)
        with open(path, 'wb') as image_file:
            image_file.write(data)
        return path


class TestSingleStore(StoreTestCase):

    def setUp(self):
        super().setUp()
        self.datadir = self.useFixture(fixtures.TempDir()).path
        glance_store.register_opts(self.conf)
        self.conf.set_override('stores', ['file'], group='glance_store')
        self.conf.set_override('default_store', 'file', group='glance_store')
        self.conf.set_override('filesystem_store_datadir', self.datadir,
                               group='glance_store')
        glance_store.create_stores(self.conf)

    def test_deletes_the_data_of_a_location(self):
        path = self.put(self.datadir, 'image-1')
        decoy = self.put(self.datadir, 'image-2')
        deleter = scrubber.StoreDeleter(self.context)

        self.assertTrue(deleter.delete(location('file://' + path)))

        self.assertFalse(os.path.exists(path))
        self.assertTrue(os.path.exists(decoy))

    def test_data_already_gone_counts_as_deleted(self):
        deleter = scrubber.StoreDeleter(self.context)
        missing = os.path.join(self.datadir, 'never-there')

        self.assertFalse(deleter.delete(location('file://' + missing)))

    def test_unknown_scheme_fails_the_location(self):
        deleter = scrubber.StoreDeleter(self.context)

        error = self.assertRaises(scrubber.LocationError, deleter.delete,
                                  location('gopher://somewhere/image'))
        self.assertIn('location 1', str(error))

    def test_encrypted_location_is_decrypted_then_deleted(self):
        path = self.put(self.datadir, 'secret-image')
        stored = crypt.urlsafe_encrypt(KEY, 'file://' + path)
        deleter = scrubber.StoreDeleter(self.context, encryption_key=KEY)

        self.assertTrue(deleter.delete(location(stored)))
        self.assertFalse(os.path.exists(path))

    def test_location_that_does_not_decrypt_is_left_alone(self):
        path = self.put(self.datadir, 'secret-image')
        stored = crypt.urlsafe_encrypt('another key of16', 'file://' + path)
        deleter = scrubber.StoreDeleter(self.context, encryption_key=KEY)

        for bad in (stored, 'file://' + path, 'not base64 at all!'):
            self.assertRaises(scrubber.LocationError, deleter.delete,
                              location(bad))
        self.assertTrue(os.path.exists(path))


class TestMultiStore(StoreTestCase):

    def setUp(self):
        super().setUp()
        self.fast = self.useFixture(fixtures.TempDir()).path
        self.cheap = self.useFixture(fixtures.TempDir()).path
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
        self.deleter = scrubber.StoreDeleter(self.context, multistore=True)

    def test_deletes_from_the_backend_named_in_the_metadata(self):
        on_fast = self.put(self.fast, 'image')
        on_cheap = self.put(self.cheap, 'image')

        self.deleter.delete(location('file://' + on_cheap,
                                     '{"store": "cheap"}'))

        self.assertFalse(os.path.exists(on_cheap))
        self.assertTrue(os.path.exists(on_fast))

    def test_unknown_backend_fails_the_location(self):
        path = self.put(self.fast, 'image')

        self.assertRaises(scrubber.LocationError, self.deleter.delete,
                          location('file://' + path, '{"store": "nosuch"}'))
        self.assertTrue(os.path.exists(path))

    def test_corrupt_metadata_fails_the_location(self):
        path = self.put(self.fast, 'image')

        for meta_data in ('{not json', '["a list"]'):
            error = self.assertRaises(scrubber.LocationError,
                                      self.deleter.delete,
                                      location('file://' + path, meta_data))
            self.assertIn('metadata of location 1', str(error))
        self.assertTrue(os.path.exists(path))
