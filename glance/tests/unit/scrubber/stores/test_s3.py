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

"""Shared S3 stores, against glance_store's real S3 driver and moto.

The first tests pin the driver behaviour glance.scrubber.stores.s3 relies on
and works around; if glance_store changes it, they fail.
"""

import contextlib
import http.server
import inspect
import threading
import uuid

import boto3
from botocore import exceptions as boto_exceptions
import fixtures
import glance_store
from glance_store._drivers import s3 as s3_driver
from glance_store import exceptions as store_exceptions
from moto.server import ThreadedMotoServer
from oslo_config import cfg
from oslo_config import fixture as config_fixture
import testtools

from glance import _compat
from glance.common import exception
from glance import context
from glance.scrubber.stores import checks as store_checks
from glance.scrubber.stores import gate as store_gate
from glance.scrubber.stores import layout
from glance.scrubber.stores import s3

ACCESS, SECRET = 'scrubber-access', 'scrubber-secret'


class MotoS3(testtools.TestCase):
    """A real S3 endpoint on loopback and a single S3 store using it."""

    def setUp(self):
        super().setUp()
        server = ThreadedMotoServer(ip_address='127.0.0.1', port=0,
                                    verbose=False)
        server.start()
        self.addCleanup(server.stop)
        host, port = server.get_host_and_port()
        self.endpoint = '%s:%d' % (host, port)
        self.bucket = 'images-%s' % uuid.uuid4().hex[:8]
        self.client = boto3.client(
            's3', endpoint_url='http://' + self.endpoint,
            region_name='us-east-1', aws_access_key_id=ACCESS,
            aws_secret_access_key=SECRET)
        self.client.create_bucket(Bucket=self.bucket)
        self.configure_store()
        self.context = context.get_admin_context()
        self.clients_built = []
        self.factory = getattr(s3_driver.Store, _compat.S3_CLIENT_FACTORY)
        self.useFixture(fixtures.MonkeyPatch(
            'glance_store._drivers.s3.Store.%s' % _compat.S3_CLIENT_FACTORY,
            self.counting(self.factory)))

    def configure_store(self):
        conf = self.useFixture(config_fixture.Config(cfg.CONF)).conf
        glance_store.register_opts(conf)
        for name, value in (('stores', ['s3']), ('default_store', 's3'),
                            ('s3_store_host', 'http://' + self.endpoint),
                            ('s3_store_access_key', ACCESS),
                            ('s3_store_secret_key', SECRET),
                            ('s3_store_bucket', self.bucket),
                            ('s3_store_bucket_url_format', 'path')):
            conf.set_override(name, value, group='glance_store')
        glance_store.create_stores(conf)

    def counting(self, build):
        def build_and_count(store):
            self.clients_built.append(threading.get_ident())
            return build(store)
        return build_and_count

    def put_objects(self, count):
        urls = []
        for index in range(count):
            key = 'image-%d' % index
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b'x')
            urls.append('s3://%s:%s@%s/%s/%s' % (
                ACCESS, SECRET, self.endpoint, self.bucket, key))
        return urls

    def keys_left(self):
        listing = self.client.list_objects_v2(Bucket=self.bucket)
        return [item['Key'] for item in listing.get('Contents', [])]


class TestDriverBehaviour(MotoS3):
    """What glance_store does, which SharedS3Stores relies on."""

    def test_client_factory_takes_nothing_but_the_store(self):
        self.assertEqual(['self'],
                         list(inspect.signature(self.factory).parameters))

    def test_every_lookup_loads_a_new_store_instance(self):
        first = glance_store.get_store_from_scheme('s3')
        second = glance_store.get_store_from_scheme('s3')

        self.assertIsNot(first, second)

    def test_every_delete_through_glance_store_builds_a_client(self):
        for url in self.put_objects(3):
            glance_store.delete_from_backend(url, context=self.context)

        self.assertEqual(3, len(self.clients_built))
        self.assertEqual([], self.keys_left())


class TestSharedS3Stores(MotoS3):

    def setUp(self):
        super().setUp()
        self.stores = s3.SharedS3Stores()

    def test_serial_deletes_share_one_client(self):
        for url in self.put_objects(4):
            self.stores.delete(url, None, self.context)

        self.assertEqual(1, len(self.clients_built))
        self.assertEqual([], self.keys_left())

    def test_deletes_from_several_threads_share_one_client(self):
        urls = self.put_objects(6)

        def delete_some(some):
            for url in some:
                self.stores.delete(url, None, self.context)

        threads = [threading.Thread(target=delete_some, args=(urls[i::3],))
                   for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        self.assertEqual(1, len(self.clients_built))
        self.assertEqual([], self.keys_left())

    def test_a_client_serves_no_more_users_than_it_has_connections(self):
        with contextlib.ExitStack() as leases:
            for _ in range(11):
                leases.enter_context(self.stores._lease('s3'))
            self.assertEqual(2, self.stores.clients())

        self.stores.delete(self.put_objects(1)[0], None, self.context)
        self.assertEqual(2, len(self.clients_built))

    def test_prepare_builds_the_clients_the_workers_need_up_front(self):
        self.assertEqual(3, self.stores.prepare(workers=25))

        with contextlib.ExitStack() as leases:
            for _ in range(25):
                leases.enter_context(self.stores._lease('s3'))
            self.assertEqual(3, self.stores.clients())
        self.assertEqual(3, len(self.clients_built))

    def test_s3_urls_of_every_scheme_share_the_clients(self):
        urls = self.put_objects(2)
        self.stores.delete(urls[0], None, self.context)
        self.stores.delete(urls[1].replace('s3://', 's3+http://'), None,
                           self.context)

        self.assertEqual(1, len(self.clients_built))
        self.assertEqual([], self.keys_left())

    def test_missing_object_is_glance_stores_not_found(self):
        url = self.put_objects(1)[0]
        self.stores.delete(url, None, self.context)

        self.assertRaises(store_exceptions.NotFound, self.stores.delete,
                          url, None, self.context)

    def test_missing_buckets_is_empty_when_the_bucket_exists(self):
        self.assertEqual([], self.stores.missing_buckets())

    def test_a_configured_bucket_that_does_not_exist_is_named(self):
        cfg.CONF.set_override('s3_store_bucket', 'no-such-bucket',
                              group='glance_store')
        stores = s3.SharedS3Stores()

        self.assertEqual(['S3 bucket no-such-bucket does not exist'],
                         stores.missing_buckets())
        error = self.assertRaises(exception.InvalidConfiguration,
                                  store_checks.check_stores,
                                  layout.StoreLayout.from_config(cfg.CONF),
                                  stores)
        self.assertIn('no-such-bucket', str(error))

    def test_handles_s3_urls_only(self):
        self.assertTrue(self.stores.handles('s3://a:b@host/bucket/key', None))
        self.assertTrue(self.stores.handles('s3+https://host/b/k', None))
        self.assertFalse(self.stores.handles('file:///var/lib/x', None))


class _SlowDownHandler(http.server.BaseHTTPRequestHandler):
    """An S3 over its request rate: every request answered SlowDown."""

    protocol_version = 'HTTP/1.1'

    def do_HEAD(self):
        self.server.requests += 1
        self.send_response(503)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, format, *args):
        pass


class TestThrottledAnswers(MotoS3):

    def test_a_throttled_answer_reaches_the_caller_at_once(self):
        # botocore would send it again itself (three times in standard
        # mode); the pass's StoreGate must see each one to back off.
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                 _SlowDownHandler)
        server.requests = 0
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        self.endpoint = '127.0.0.1:%d' % server.server_address[1]
        self.configure_store()
        url = 's3://%s:%s@%s/%s/key' % (ACCESS, SECRET, self.endpoint,
                                        self.bucket)

        # glance_store re-raises the HEAD's answer as a configuration
        # error, raised while handling botocore's.
        error = self.assertRaises(
            store_exceptions.BadStoreConfiguration,
            s3.SharedS3Stores().delete, url, None, self.context)

        self.assertTrue(store_gate.is_throttled(error))
        self.assertEqual(1, server.requests)


class TestStoreOutOfReach(testtools.TestCase):

    def test_botocore_does_not_retry_a_store_that_is_silent_or_away(self):
        # One timeout is one timeout: scrub_store_timeout and the pass's
        # breaker see it, not botocore's retries after it.
        for error in (boto_exceptions.ReadTimeoutError(endpoint_url='u'),
                      boto_exceptions.ConnectTimeoutError(endpoint_url='u'),
                      boto_exceptions.EndpointConnectionError(
                          endpoint_url='u')):
            self.assertIs(False, s3._no_retry_when_out_of_reach(
                caught_exception=error))

    def test_other_failures_are_left_to_botocore(self):
        self.assertIsNone(s3._no_retry_when_out_of_reach(
            caught_exception=boto_exceptions.ConnectionClosedError(
                endpoint_url='u')))


class TestMultiStoreSelection(testtools.TestCase):

    def test_only_backends_of_type_s3_are_handled(self):
        conf = self.useFixture(config_fixture.Config(cfg.ConfigOpts())).conf
        conf.register_opt(cfg.DictOpt('enabled_backends'))
        conf.set_override('enabled_backends', {'fast': 'file',
                                               'cheap': 's3'})

        stores = s3.SharedS3Stores.from_config(
            conf, layout.StoreLayout.from_config(conf))

        self.assertTrue(stores.handles('s3://h/b/k', 'cheap'))
        self.assertFalse(stores.handles('file:///x', 'fast'))
        self.assertFalse(stores.handles('s3://h/b/k', None))
