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

"""The library details glance._compat relies on, pinned.

Each test holds one detail against the installed library itself (no
stand-in replaces any part of it), so that an upgrade that changes the
detail fails here, naming it, rather than a scrub pass in production.
The stores are configured for endpoints nothing listens on: building a
store, a boto3 client or a swiftclient connection sends no request, and
the requests the tests make are answered through botocore's own
``before-send`` event.

What a process does at its start or at its exit (warnings, atexit) is
looked at in a Python of its own.
"""

import ast
import contextlib
import http.server
import inspect
import io
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import boto3
from botocore import awsrequest
from botocore import config as boto_config
from botocore import exceptions as boto_exceptions
import fixtures
import glance_store
from glance_store._drivers import rbd as rbd_driver
from glance_store._drivers import s3 as s3_driver
from glance_store._drivers.swift import store as swift_driver
from glance_store import location as store_location
from oslo_config import cfg
import swiftclient
import testtools

from glance import _compat
from glance.tests import databases
from glance.tests import unit

try:
    import rados
except ImportError:  # Debian's python3-rados is not linked into this venv
    rados = None

ROOT = pathlib.Path(__file__).resolve().parents[3]
# Nothing listens there: a request that is not answered by a test fails.
NOWHERE = '127.0.0.1:9'
BUCKET = 'images'
SUBPROCESS_TIMEOUT = 60


def configured(**options):
    """A fresh ConfigOpts with glance_store's single store set up."""
    conf = cfg.ConfigOpts()
    glance_store.register_opts(conf)
    for name, value in options.items():
        conf.set_override(name, value, group='glance_store')
    conf([], default_config_files=[], default_config_dirs=[])
    glance_store.create_stores(conf)
    return conf


def run_python(script, *args, env=None, timeout=SUBPROCESS_TIMEOUT):
    """Run *script* in a Python of its own, with this tree importable."""
    environment = dict(os.environ)
    environment['PYTHONPATH'] = os.pathsep.join(
        [str(ROOT)] + [path for path in
                       [environment.get('PYTHONPATH')] if path])
    environment.pop('EVENTLET_TESTS', None)  # eventlet's own: no warning
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, '-c', textwrap.dedent(script)] + list(args),
        capture_output=True, text=True, env=environment, timeout=timeout,
        check=False)


# --- glance_store's drivers, as stevedore loads them ------------------------

_REGISTER_OPTS = '''
    import json
    import logging
    import sys

    sys.path.insert(0, sys.argv[1])
    from oslo_config import cfg
    import glance_store
    from glance import _compat

    records = []


    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)


    logging.getLogger().addHandler(Keep(logging.ERROR))
    listed = 'glance_test_broken' in _compat.store_driver_names()
    if sys.argv[2] == 'unsaid':
        with _compat.driver_import_errors_unsaid():
            glance_store.register_opts(cfg.ConfigOpts())
    else:
        glance_store.register_opts(cfg.ConfigOpts())
    print(json.dumps({'listed': listed, 'errors': [
        [record.name, record.getMessage()] for record in records
        if 'glance_test_broken' in record.getMessage()]}))
'''


class TestStoreDrivers(testtools.TestCase):
    """The drivers stevedore finds, and what it logs of a broken one."""

    def broken_driver_errors(self, how):
        """What register_opts() logs of a driver that cannot be imported."""
        folder = unit.temporary_folder(self)
        dist_info = folder / 'dist' / 'glance_test_broken_driver-0.dist-info'
        dist_info.mkdir(parents=True)
        (dist_info / 'METADATA').write_text(
            'Metadata-Version: 2.1\nName: glance-test-broken-driver\n'
            'Version: 0\n')
        (dist_info / 'entry_points.txt').write_text(
            '[%s]\nglance_test_broken = glance_test_no_such_module:Store\n'
            % _compat.STORE_DRIVERS)
        # stevedore keeps a cache of the entry points it found.
        result = run_python(_REGISTER_OPTS, str(folder / 'dist'), how,
                            env={'XDG_CACHE_HOME': str(folder / 'cache')})
        self.assertEqual(0, result.returncode, result.stderr)
        return json.loads(result.stdout.splitlines()[-1])

    def test_the_driver_entry_points_name_the_store_types(self):
        self.assertTrue({'file', 'http', 'rbd', 's3', 'swift', 'cinder'} <=
                        _compat.store_driver_names(),
                        _compat.store_driver_names())

    def test_stevedore_reports_a_driver_that_cannot_be_imported_on_its_log(
            self):
        found = self.broken_driver_errors('said')

        self.assertTrue(found['listed'], found)
        self.assertEqual([_compat._STEVEDORE_LOG],
                         [name for name, _message in found['errors']])

    def test_driver_import_errors_unsaid_silences_that_log(self):
        found = self.broken_driver_errors('unsaid')

        self.assertEqual({'listed': True, 'errors': []}, found)


# --- glance_store's S3 driver and botocore ---------------------------------


class _Body:
    """The raw body of an answer made up by a test (urllib3's shape)."""

    def __init__(self, content=b''):
        self._content = content

    def stream(self, **kwargs):
        yield self._content


class Answers:
    """Answers a botocore client's requests instead of the network."""

    def __init__(self, client, *answers):
        self.sent = []
        self._answers = list(answers)
        client.meta.events.register('before-send.s3', self._answer)

    def _answer(self, request, **kwargs):
        self.sent.append(request.method)
        status, body = self._answers.pop(0) if len(self._answers) > 1 \
            else self._answers[0]
        return awsrequest.AWSResponse(request.url, status, {}, _Body(body))


def s3_location(conf):
    return store_location.get_location_from_uri(
        's3://access:secret@%s/%s/image-1' % (NOWHERE, BUCKET), conf=conf)


def plain_client(**config):
    return boto3.client(
        's3', endpoint_url='http://' + NOWHERE, region_name='us-east-1',
        aws_access_key_id='access', aws_secret_access_key='secret',
        config=boto_config.Config(**config))


SLOW_DOWN = (503, b'<?xml version="1.0" encoding="UTF-8"?><Error>'
                  b'<Code>SlowDown</Code><Message>Slow down</Message>'
                  b'</Error>')


def delete_one(client):
    client.delete_object(Bucket=BUCKET, Key='image-1')


class TestS3Driver(testtools.TestCase):
    """glance_store's S3 store and botocore's client, as _compat uses them."""

    def setUp(self):
        super().setUp()
        self.conf = configured(stores=['s3'], default_store='s3',
                               s3_store_host='http://' + NOWHERE,
                               s3_store_access_key='access',
                               s3_store_secret_key='secret',
                               s3_store_bucket=BUCKET,
                               s3_store_bucket_url_format='path')
        self.store = glance_store.get_store_from_scheme('s3')

    def test_the_s3_client_factory_is_a_method_of_the_store_alone(self):
        factory = getattr(s3_driver.Store, _compat.S3_CLIENT_FACTORY)

        self.assertTrue(callable(factory))
        self.assertEqual(['self'],
                         list(inspect.signature(factory).parameters))

    def test_every_call_of_the_s3_client_factory_builds_a_new_client(self):
        build = getattr(self.store, _compat.S3_CLIENT_FACTORY)

        self.assertIsNot(build(), build())

    def test_pin_s3_client_makes_the_store_reuse_one_client(self):
        client = _compat.pin_s3_client(self.store)

        build = getattr(self.store, _compat.S3_CLIENT_FACTORY)
        self.assertIs(client, build())
        self.assertIs(client, build())

    def test_the_s3_driver_deletes_through_the_pinned_client(self):
        client = _compat.pin_s3_client(self.store)
        answers = Answers(client, (200, b''), (204, b''))

        self.store.delete(s3_location(self.conf))

        self.assertEqual(['HEAD', 'DELETE'], answers.sent)

    def test_s3_bucket_is_the_configured_bucket(self):
        self.assertEqual(BUCKET, _compat.s3_bucket(self.store))

    def test_s3_client_connections_is_the_size_of_the_clients_pool(self):
        self.assertEqual(3, _compat.s3_client_connections(plain_client(
            max_pool_connections=3)))
        # What glance_store's clients get: botocore's default.
        self.assertEqual(10, _compat.s3_client_connections(
            _compat.pin_s3_client(self.store)))

    def test_a_retry_hook_sees_each_answer_and_false_stops_the_retries(
            self):
        client = _compat.pin_s3_client(self.store)
        answers = Answers(client, SLOW_DOWN)
        seen = []

        def hook(response=None, **kwargs):
            if response is not None:
                http_response, parsed = response
                seen.append((http_response.status_code,
                             parsed['Error']['Code']))
            return False

        _compat.on_s3_retry_decision(client, hook)

        raised = self.assertRaises(boto_exceptions.ClientError, delete_one,
                                   client)

        self.assertEqual('SlowDown', raised.response['Error']['Code'])
        self.assertEqual(['DELETE'], answers.sent)
        self.assertEqual([(503, 'SlowDown')], seen)

    def test_a_retry_hook_sees_a_store_out_of_reach_and_false_stops_retries(
            self):
        client = _compat.pin_s3_client(self.store)  # NOWHERE refuses
        seen = []

        def hook(caught_exception=None, **kwargs):
            seen.append(type(caught_exception).__name__)
            return False

        _compat.on_s3_retry_decision(client, hook)

        self.assertRaises(boto_exceptions.EndpointConnectionError,
                          delete_one, client)
        self.assertEqual(['EndpointConnectionError'], seen)

    def test_a_retry_hook_that_answers_none_leaves_the_retry_to_botocore(
            self):
        # The control of the test above: botocore does retry this answer.
        client = _compat.pin_s3_client(self.store)
        answers = Answers(client, SLOW_DOWN, (204, b''))
        _compat.on_s3_retry_decision(client, lambda **kwargs: None)

        delete_one(client)

        self.assertEqual(['DELETE', 'DELETE'], answers.sent)


# --- glance_store's Swift driver --------------------------------------------

SWIFT_REFERENCES = textwrap.dedent('''
    [ref-user]
    auth_address = http://%(nowhere)s/v3
    user = tenant:alice
    key = secret-a

    [ref-app-1]
    auth_address = http://%(nowhere)s/v3
    application_credential_id = credential-1
    application_credential_secret = secret-1
    project_name = images

    [ref-app-2]
    auth_address = http://%(nowhere)s/v3
    application_credential_id = credential-2
    application_credential_secret = secret-2
    project_name = images
''' % {'nowhere': NOWHERE})


def swift_location(conf, url='swift+config://ref-user/images/image-1'):
    return store_location.get_location_from_uri(url, conf=conf)


class ReadAttributes:
    """A parsed location, and the names of its attributes read."""

    def __init__(self, location):
        object.__setattr__(self, '_location', location)
        object.__setattr__(self, 'read', set())

    def __getattr__(self, name):
        self.read.add(name)
        return getattr(self._location, name)


class HandedConnection:
    """The connection a caller hands the driver: what it was asked."""

    def __init__(self):
        self.calls = []

    def head_object(self, container, obj, **kwargs):
        self.calls.append(('HEAD', container, obj))
        return {}

    def delete_object(self, container, obj, **kwargs):
        self.calls.append(('DELETE', container, obj))


class TestSwiftDriver(testtools.TestCase):
    """glance_store's Swift store: its credentials and connections."""

    def setUp(self):
        super().setUp()
        config_file = unit.temporary_folder(self) / 'glance-swift.conf'
        config_file.write_text(SWIFT_REFERENCES)
        self.conf = configured(stores=['swift'], default_store='swift',
                               swift_store_config_file=str(config_file),
                               default_swift_reference='ref-user')
        self.store = glance_store.get_store_from_scheme('swift')

    def test_the_swift_store_is_single_tenant_by_default(self):
        self.assertTrue(_compat.is_single_tenant_swift(self.store))

    def test_a_multi_tenant_swift_store_is_not(self):
        configured(stores=['swift'], default_store='swift',
                   swift_store_multi_tenant=True)

        store = glance_store.get_store_from_scheme('swift')

        self.assertIsInstance(store, swift_driver.MultiTenantStore)
        self.assertFalse(_compat.is_single_tenant_swift(store))

    def test_swift_credentials_of_a_parsed_location(self):
        location = swift_location(
            self.conf, 'swift+http://tenant:bob:pw@%s/v3/images/image-1'
            % NOWHERE).store_location

        self.assertEqual(('http://%s/v3' % NOWHERE, 'tenant:bob', 'pw'),
                         _compat.swift_credentials(location)[:3])

    def test_swift_connection_is_a_swiftclient_connection_for_the_location(
            self):
        location = swift_location(self.conf).store_location

        connection = _compat.swift_connection(self.store, location, None)

        self.assertIsInstance(connection, swiftclient.Connection)
        self.assertEqual(
            ('http://%s/v3/' % NOWHERE, 'tenant', 'alice', 'secret-a'),
            (connection.authurl, connection.os_options['tenant_name'],
             connection.user, connection.key))
        connection.close()

    def check_connection_reads_the_credentials_alone(self, reference):
        location = ReadAttributes(swift_location(
            self.conf, 'swift+config://%s/images/image-1' % reference)
            .store_location)

        _compat.swift_connection(self.store, location, None).close()

        self.assertTrue(
            location.read <= set(_compat.SWIFT_CONNECTION_ATTRIBUTES),
            location.read)

    def test_a_swift_connection_of_a_user_depends_on_the_credentials_alone(
            self):
        self.check_connection_reads_the_credentials_alone('ref-user')

    def test_a_swift_connection_of_an_application_credential_depends_on_them(
            self):
        self.check_connection_reads_the_credentials_alone('ref-app-1')

    def test_two_application_credentials_are_two_swift_credentials(self):
        first, second = [
            _compat.swift_credentials(swift_location(
                self.conf, 'swift+config://%s/images/image-1' % reference)
                .store_location)
            for reference in ('ref-app-1', 'ref-app-2')]

        self.assertNotEqual(first, second)

    def test_swift_delete_uses_the_connection_it_is_handed(self):
        connection = HandedConnection()

        _compat.swift_delete(self.store, swift_location(self.conf),
                             connection, None)

        self.assertEqual([('HEAD', 'images', 'image-1'),
                          ('DELETE', 'images', 'image-1')], connection.calls)


class RefusingSwift(http.server.BaseHTTPRequestHandler):
    """Answers HEAD: 401 to the token ``stale``, 200 to any other."""

    protocol_version = 'HTTP/1.1'

    def do_HEAD(self):
        refused = self.headers.get('X-Auth-Token') == 'stale'
        self.server.tokens.append(self.headers.get('X-Auth-Token'))
        self.send_response(401 if refused else 200)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, format, *args):
        pass


class TestSwiftConnectionTokens(testtools.TestCase):
    """swiftclient asks get_auth() before a first request and after 401."""

    def setUp(self):
        super().setUp()
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                 RefusingSwift)
        server.tokens = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        self.server = server
        self.storage_url = 'http://127.0.0.1:%d/v1/AUTH_images' % (
            server.server_address[1])
        self.handed = []

    def connection(self):
        # Credentials, as the single-tenant driver's connections have:
        # swiftclient asks again after a 401 only when it has some.
        connection = swiftclient.Connection(
            'http://%s/v3/' % NOWHERE, 'alice', 'secret', retries=1,
            starting_backoff=0, auth_version='3')
        self.addCleanup(connection.close)
        return connection

    def token_source(self, *tokens):
        tokens = list(tokens)

        def source():
            self.handed.append(tokens[0])
            return self.storage_url, tokens.pop(0)
        return source

    def test_the_first_request_takes_the_token_source_s_token(self):
        connection = self.connection()
        _compat.swift_take_tokens_from(connection,
                                       self.token_source('fresh'))

        connection.head_object('images', 'image-1')
        connection.head_object('images', 'image-2')

        self.assertEqual(['fresh'], self.handed)
        self.assertEqual(['fresh', 'fresh'], self.server.tokens)

    def test_a_401_asks_the_token_source_again(self):
        connection = self.connection()
        _compat.swift_take_tokens_from(connection,
                                       self.token_source('stale', 'fresh'))

        connection.head_object('images', 'image-1')

        self.assertEqual(['stale', 'fresh'], self.handed)
        self.assertEqual(['stale', 'fresh'], self.server.tokens)

    def test_a_401_it_gives_up_on_is_a_refused_token(self):
        connection = self.connection()
        _compat.swift_take_tokens_from(connection,
                                       self.token_source('stale', 'stale'))

        error = self.assertRaises(swiftclient.ClientException,
                                  connection.head_object, 'images',
                                  'image-1')

        self.assertTrue(_compat.swift_token_refused(error))
        self.assertFalse(_compat.swift_token_refused(
            swiftclient.ClientException('gone', http_status=404)))


# --- glance_store's RBD driver ----------------------------------------------


def require_rados():
    if rados is None:
        raise databases.unavailable(
            'Ceph Python bindings (rados, rbd) not importable: glance_store '
            'cannot configure an rbd store without them; run '
            'tools/backends/install_backends.sh, then '
            'tools/backends/ceph_bindings.py with this Python (%s)'
            % sys.executable)


class TestRBDDriver(testtools.TestCase):
    """glance_store's RBD store, configured for a cluster that is not."""

    def rbd_store(self):
        require_rados()
        self.conf_file = str(unit.temporary_folder(self) /
                             'missing-ceph.conf')
        configured(stores=['rbd'], default_store='rbd',
                   rbd_store_pool='scrub-pool', rbd_store_user='scrubber',
                   rbd_store_ceph_conf=self.conf_file,
                   rados_connect_timeout=1)
        return glance_store.get_store_from_scheme('rbd')

    def test_the_rbd_connection_takes_a_conf_file_and_a_rados_id(self):
        parameters = inspect.signature(
            rbd_driver.Store.get_connection).parameters

        self.assertTrue({'conffile', 'rados_id'} <= set(parameters),
                        parameters)

    def test_rbd_pool_and_conf_file_are_the_configured_ones(self):
        store = self.rbd_store()

        self.assertEqual('scrub-pool', _compat.rbd_pool(store))
        self.assertEqual(self.conf_file, _compat.rbd_conf_file(store))
        self.assertEqual('scrubber', store.user)

    def test_rbd_connection_connects_only_when_entered(self):
        connection = _compat.rbd_connection(self.rbd_store())

        self.assertIsInstance(connection, contextlib.AbstractContextManager)

        def enter():
            with connection:
                pass

        # Entered, librados reads the store's configuration file (missing).
        raised = self.assertRaises(rados.ObjectNotFound, enter)
        self.assertIn('conf_read_file', str(raised))


class RoutedClient:
    """What a routed rbd driver is handed: it records the pool opened."""

    def __init__(self):
        self.pools = []

    def open_ioctx(self, pool):
        self.pools.append(pool)
        raise LookupError('routed')


class TestRbdConnectionsRouted(testtools.TestCase):
    """The driver opens each connection through its get_connection()."""

    def setUp(self):
        super().setUp()
        require_rados()
        self.conf_file = self.useFixture(
            fixtures.TempDir()).join('missing-ceph.conf')
        self.conf = configured(stores=['rbd'], default_store='rbd',
                               rbd_store_pool='scrub-pool',
                               rbd_store_user='scrubber',
                               rbd_store_ceph_conf=self.conf_file,
                               rados_connect_timeout=1)
        self.store = glance_store.get_store_from_scheme('rbd')
        self.client = RoutedClient()

    @contextlib.contextmanager
    def routed(self, conffile, rados_id):
        yield self.client

    def test_the_driver_s_delete_takes_the_routed_connection(self):
        _compat.route_rbd_connections(self.store, self.routed)
        location = store_location.get_location_from_uri(
            'rbd://fsid/scrub-pool/image-1/snap', conf=self.conf)

        self.assertRaises(LookupError, self.store.delete, location)
        self.assertEqual(['scrub-pool'], self.client.pools)

    def test_the_driver_s_own_opener_is_handed_back(self):
        own = _compat.route_rbd_connections(self.store, self.routed)

        def open_own():
            with own():
                pass

        # The store's conf file and user, read by librados (missing).
        error = self.assertRaises(rados.ObjectNotFound, open_own)
        self.assertIn('conf_read_file', str(error))

    def test_the_driver_s_get_connection_is_all_it_opens_with(self):
        # delete() and get_size() both reach the cluster through it.
        source = inspect.getsource(rbd_driver.Store)

        self.assertEqual(1, source.count('rados.Rados('))
        self.assertIn('def get_connection(self, conffile, rados_id)',
                      source)


# --- eventlet ---------------------------------------------------------------

_STUCK_NATIVE_THREAD = '''
    import threading

    import eventlet
    from eventlet import tpool

    from glance import _compat

    never = threading.Event()
    try:
        with eventlet.Timeout(0.1):
            tpool.execute(never.wait)  # a store call that never returns
    except eventlet.Timeout:
        pass
    _compat.let_exit_leave_native_threads()
'''


_NATIVE_LOCK = '''
    import eventlet
    eventlet.monkey_patch()

    import threading

    from eventlet import lock as green_lock
    from eventlet import patcher

    from glance import _compat

    native = patcher.original('_thread').LockType
    assert isinstance(threading.Lock(), green_lock.Lock)
    assert isinstance(_compat.native_lock(), native)
'''


class TestNativeLock(testtools.TestCase):

    def test_a_native_lock_after_monkey_patching(self):
        result = run_python(_NATIVE_LOCK)

        self.assertEqual(0, result.returncode, result.stderr)


_WARNINGS_OF = '''
    import json
    import sys
    import warnings

    from glance import _compat

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        if sys.argv[1] == 'filtered':
            warnings.filterwarnings('ignore',
                                    message=_compat.EVENTLET_DEPRECATED)
            warnings.filterwarnings(
                'ignore', category=DeprecationWarning,
                message=_compat.EVENTLET_MODE_DEPRECATED)
        import eventlet
        if sys.argv[2] == 'green':
            eventlet.monkey_patch()
            from oslo_service import backend
            backend.init_backend(backend.BackendType.EVENTLET)
            from oslo_service import service  # noqa: F401
            from oslo_config import cfg
            from oslo_log import log
            conf = cfg.ConfigOpts()
            log.register_options(conf)
            conf([], default_config_files=[], default_config_dirs=[])
            log.setup(conf, 'glance-test')
            import futurist
            with futurist.GreenThreadPoolExecutor(max_workers=2) as pool:
                pool.submit(int, 1).result()
    print(json.dumps([str(warning.message).strip().splitlines()[0]
                      for warning in seen
                      if 'eventlet' in str(warning.message).lower()]))
'''


class TestEventlet(testtools.TestCase):
    """eventlet's exit hook and deprecation warnings, in a new Python."""

    def eventlet_warnings(self, filtered, mode):
        result = run_python(_WARNINGS_OF, filtered, mode)
        self.assertEqual(0, result.returncode, result.stderr)
        return json.loads(result.stdout.splitlines()[-1])

    def test_an_exit_leaves_a_native_thread_stuck_in_tpool(self):
        # eventlet's atexit hook would join the stuck thread for ever.
        result = run_python(_STUCK_NATIVE_THREAD, timeout=20)

        self.assertEqual(0, result.returncode, result.stderr)

    def test_eventlet_warns_as_it_is_imported_in_the_words_filtered(self):
        warned = self.eventlet_warnings('unfiltered', 'import')
        self.assertTrue(warned, warned)
        self.assertTrue(warned[0].startswith('Eventlet is deprecated'),
                        warned)

        self.assertEqual([], self.eventlet_warnings('filtered', 'import'))

    def test_the_eventlet_modes_of_the_libraries_warn_in_the_words_filtered(
            self):
        warned = self.eventlet_warnings('unfiltered', 'green')
        # Besides eventlet's own: oslo.log, oslo.service, futurist...
        self.assertTrue([line for line in warned
                         if not line.startswith('Eventlet is deprecated')],
                        warned)

        self.assertEqual([], self.eventlet_warnings('filtered', 'green'))


# --- oslo.log ---------------------------------------------------------------

_LOG_SETUP = '''
    import json
    import logging

    from oslo_config import cfg
    from oslo_log import log

    from glance import _compat

    said = [_compat.oslo_log_is_set_up()]
    conf = cfg.ConfigOpts()
    log.register_options(conf)
    handlers = len(logging.getLogger().handlers)
    said.append(_compat.oslo_log_is_set_up())
    conf([], default_config_files=[], default_config_dirs=[])
    log.setup(conf, 'glance-test')
    said.append(_compat.oslo_log_is_set_up())
    print(json.dumps({'handlers': handlers, 'set_up': said}))
'''


class TestOsloLog(testtools.TestCase):

    def test_oslo_log_is_set_up_only_after_setup(self):
        result = run_python(_LOG_SETUP)

        self.assertEqual(0, result.returncode, result.stderr)
        # register_options() adds a handler for what is logged too early.
        self.assertEqual({'handlers': 1, 'set_up': [False, False, True]},
                         json.loads(result.stdout.splitlines()[-1]))


# --- oslo.config ------------------------------------------------------------


class TestOsloConfig(testtools.TestCase):
    """The words of oslo.config's errors, and argparse's exit."""

    def setUp(self):
        super().setUp()
        self.stderr = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', self.stderr))

    def parsed_conf(self, text, opt, cli=False):
        path = unit.temporary_folder(self) / 'glance-test.conf'
        path.write_text(text)
        conf = cfg.ConfigOpts()
        if cli:
            conf.register_cli_opt(opt)
        else:
            conf.register_opt(opt)
        return conf, path

    def test_option_error_text_names_the_file_of_a_bad_value(self):
        conf, path = self.parsed_conf('[DEFAULT]\nworkers = many\n',
                                      cfg.IntOpt('workers'))
        conf(['--config-file', str(path)], default_config_files=[])

        raised = self.assertRaises(cfg.ConfigFileValueError, getattr, conf,
                                   'workers')

        self.assertIn("from LocationInfo(", str(raised))
        self.assertIn("detail='%s'" % path, str(raised))
        self.assertEqual(
            "Value for option workers in %s is not valid: invalid literal "
            "for int() with base 10: 'many'" % path,
            _compat.option_error_text(raised))

    def test_parse_config_raises_a_bad_command_line_value_from_a_file(self):
        conf, path = self.parsed_conf('[DEFAULT]\ndebug = maybe\n',
                                      cfg.BoolOpt('debug'), cli=True)

        raised = self.assertRaises(
            _compat.CommandLineValueError, _compat.parse_config, conf,
            args=['--config-file', str(path)], default_config_files=[])

        self.assertEqual('argument --debug: Invalid Boolean value: maybe',
                         str(raised))
        self.assertEqual('', self.stderr.getvalue())

    def test_parse_config_leaves_argparse_its_exit_and_its_words(self):
        conf, _path = self.parsed_conf('', cfg.BoolOpt('debug'), cli=True)

        raised = self.assertRaises(
            SystemExit, _compat.parse_config, conf,
            args=['--no-such-option'], default_config_files=[])

        self.assertEqual(2, raised.code)
        self.assertIn('unrecognized arguments: --no-such-option',
                      self.stderr.getvalue())


# --- the rule ---------------------------------------------------------------


def private_reaches(path):
    """Private names of other objects or modules that *path* touches."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and _private(node.attr) and \
                ast.unparse(node.value) not in ('self', 'cls'):
            found.append('%s:%d %s.%s' % (path.name, node.lineno,
                                          ast.unparse(node.value), node.attr))
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split('.')[0] != 'glance':
            names = [node.module] + ['%s.%s' % (node.module, alias.name)
                                     for alias in node.names]
            found.extend('%s:%d import %s' % (path.name, node.lineno, name)
                         for name in names
                         if any(map(_private, name.split('.'))))
        elif isinstance(node, ast.Import):
            found.extend('%s:%d import %s' % (path.name, node.lineno,
                                              alias.name)
                         for alias in node.names
                         if any(map(_private, alias.name.split('.'))))
    return found


def _private(name):
    return name.startswith('_') and not name.startswith('__')


class TestPrivateNames(testtools.TestCase):
    """Only glance._compat reaches into a library's private names."""

    def test_nothing_else_reaches_into_a_private_name(self):
        sources = [path for path in sorted((ROOT / 'glance').rglob('*.py'))
                   if 'tests' not in path.relative_to(ROOT).parts and
                   path.name != '_compat.py']

        self.assertEqual([], [reach for path in sources
                              for reach in private_reaches(path)])

    def test_the_rule_sees_a_reach_into_a_driver(self):
        module = unit.temporary_folder(self) / 'bad.py'
        module.write_text('from glance_store._drivers import s3\n'
                          'store._create_s3_client()\n')

        self.assertEqual(['bad.py:1 import glance_store._drivers',
                          'bad.py:1 import glance_store._drivers.s3',
                          'bad.py:2 store._create_s3_client'],
                         private_reaches(module))
