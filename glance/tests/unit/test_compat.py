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
import inspect
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import boto3
from botocore import awsrequest
from botocore import config as boto_config
from botocore import exceptions as boto_exceptions
import glance_store
from glance_store._drivers import rbd as rbd_driver
from glance_store._drivers import s3 as s3_driver
from glance_store._drivers.swift import store as swift_driver
from glance_store import location as store_location
from oslo_config import cfg
import pytest
import swiftclient

from glance import _compat
from glance.tests import databases

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


def test_the_driver_entry_points_name_the_store_types():
    assert {'file', 'http', 'rbd', 's3', 'swift', 'cinder'} <= \
        _compat.store_driver_names()


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


def broken_driver_errors(tmp_path, how):
    """What register_opts() logs of a driver that cannot be imported."""
    dist_info = tmp_path / 'dist' / 'glance_test_broken_driver-0.dist-info'
    dist_info.mkdir(parents=True)
    (dist_info / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: glance-test-broken-driver\n'
        'Version: 0\n')
    (dist_info / 'entry_points.txt').write_text(
        '[%s]\nglance_test_broken = glance_test_no_such_module:Store\n'
        % _compat.STORE_DRIVERS)
    # stevedore keeps a cache of the entry points it found.
    result = run_python(_REGISTER_OPTS, str(tmp_path / 'dist'), how,
                        env={'XDG_CACHE_HOME': str(tmp_path / 'cache')})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_stevedore_reports_a_driver_that_cannot_be_imported_on_its_log(
        tmp_path):
    found = broken_driver_errors(tmp_path, 'said')

    assert found['listed']
    assert [name for name, _message in found['errors']] == \
        [_compat._STEVEDORE_LOG]


def test_driver_import_errors_unsaid_silences_that_log(tmp_path):
    found = broken_driver_errors(tmp_path, 'unsaid')

    assert found == {'listed': True, 'errors': []}


# --- glance_store's S3 driver and botocore ---------------------------------


class _Body:
    """The raw body of an answer made up by a test (urllib3's shape)."""

    def __init__(self, content=b''):
        self._content = content

    def stream(self, **kwargs):
        yield self._content


@pytest.fixture
def s3_conf():
    return configured(stores=['s3'], default_store='s3',
                      s3_store_host='http://' + NOWHERE,
                      s3_store_access_key='access',
                      s3_store_secret_key='secret', s3_store_bucket=BUCKET,
                      s3_store_bucket_url_format='path')


@pytest.fixture
def s3_store(s3_conf):
    return glance_store.get_store_from_scheme('s3')


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


def test_the_s3_client_factory_is_a_method_of_the_store_alone():
    factory = getattr(s3_driver.Store, _compat.S3_CLIENT_FACTORY)

    assert callable(factory)
    assert list(inspect.signature(factory).parameters) == ['self']


def test_every_call_of_the_s3_client_factory_builds_a_new_client(s3_store):
    build = getattr(s3_store, _compat.S3_CLIENT_FACTORY)

    assert build() is not build()


def test_pin_s3_client_makes_the_store_reuse_one_client(s3_store):
    client = _compat.pin_s3_client(s3_store)

    build = getattr(s3_store, _compat.S3_CLIENT_FACTORY)
    assert build() is client
    assert build() is client


def test_the_s3_driver_deletes_through_the_pinned_client(s3_store,
                                                         s3_conf):
    client = _compat.pin_s3_client(s3_store)
    answers = Answers(client, (200, b''), (204, b''))

    s3_store.delete(s3_location(s3_conf))

    assert answers.sent == ['HEAD', 'DELETE']


def test_s3_bucket_is_the_configured_bucket(s3_store):
    assert _compat.s3_bucket(s3_store) == BUCKET


def plain_client(**config):
    return boto3.client(
        's3', endpoint_url='http://' + NOWHERE, region_name='us-east-1',
        aws_access_key_id='access', aws_secret_access_key='secret',
        config=boto_config.Config(**config))


def test_s3_client_connections_is_the_size_of_the_clients_pool(s3_store):
    assert _compat.s3_client_connections(plain_client(
        max_pool_connections=3)) == 3
    # What glance_store's clients get: botocore's default.
    assert _compat.s3_client_connections(
        _compat.pin_s3_client(s3_store)) == 10


SLOW_DOWN = (503, b'<?xml version="1.0" encoding="UTF-8"?><Error>'
                  b'<Code>SlowDown</Code><Message>Slow down</Message>'
                  b'</Error>')


def delete_one(client):
    client.delete_object(Bucket=BUCKET, Key='image-1')


def test_a_retry_hook_sees_each_answer_and_false_stops_the_retries(
        s3_store):
    client = _compat.pin_s3_client(s3_store)
    answers = Answers(client, SLOW_DOWN)
    seen = []

    def hook(response=None, **kwargs):
        if response is not None:
            http_response, parsed = response
            seen.append((http_response.status_code,
                         parsed['Error']['Code']))
        return False

    _compat.on_s3_retry_decision(client, hook)

    with pytest.raises(boto_exceptions.ClientError) as raised:
        delete_one(client)

    assert raised.value.response['Error']['Code'] == 'SlowDown'
    assert answers.sent == ['DELETE']
    assert seen == [(503, 'SlowDown')]


def test_a_retry_hook_sees_a_store_out_of_reach_and_false_stops_retries(
        s3_store):
    client = _compat.pin_s3_client(s3_store)  # NOWHERE refuses connections
    seen = []

    def hook(caught_exception=None, **kwargs):
        seen.append(type(caught_exception).__name__)
        return False

    _compat.on_s3_retry_decision(client, hook)

    with pytest.raises(boto_exceptions.EndpointConnectionError):
        delete_one(client)

    assert seen == ['EndpointConnectionError']


def test_a_retry_hook_that_answers_none_leaves_the_retry_to_botocore(
        s3_store):
    # The control of the test above: botocore does retry this answer.
    client = _compat.pin_s3_client(s3_store)
    answers = Answers(client, SLOW_DOWN, (204, b''))
    _compat.on_s3_retry_decision(client, lambda **kwargs: None)

    delete_one(client)

    assert answers.sent == ['DELETE', 'DELETE']


# --- glance_store's Swift driver --------------------------------------------


@pytest.fixture
def swift_conf(tmp_path):
    config_file = tmp_path / 'glance-swift.conf'
    config_file.write_text(textwrap.dedent('''
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
    ''' % {'nowhere': NOWHERE}))
    return configured(stores=['swift'], default_store='swift',
                      swift_store_config_file=str(config_file),
                      default_swift_reference='ref-user')


@pytest.fixture
def swift_store(swift_conf):
    return glance_store.get_store_from_scheme('swift')


def swift_location(conf, url='swift+config://ref-user/images/image-1'):
    return store_location.get_location_from_uri(url, conf=conf)


def test_the_swift_store_is_single_tenant_by_default(swift_store):
    assert _compat.is_single_tenant_swift(swift_store)


def test_a_multi_tenant_swift_store_is_not():
    configured(stores=['swift'], default_store='swift',
               swift_store_multi_tenant=True)

    store = glance_store.get_store_from_scheme('swift')

    assert isinstance(store, swift_driver.MultiTenantStore)
    assert not _compat.is_single_tenant_swift(store)


def test_swift_credentials_of_a_parsed_location(swift_conf):
    location = swift_location(
        swift_conf, 'swift+http://tenant:bob:pw@%s/v3/images/image-1'
        % NOWHERE).store_location

    assert _compat.swift_credentials(location)[:3] == (
        'http://%s/v3' % NOWHERE, 'tenant:bob', 'pw')


def test_swift_connection_is_a_swiftclient_connection_for_the_location(
        swift_store, swift_conf):
    location = swift_location(swift_conf).store_location

    connection = _compat.swift_connection(swift_store, location, None)

    assert isinstance(connection, swiftclient.Connection)
    assert (connection.authurl, connection.os_options['tenant_name'],
            connection.user, connection.key) == (
        'http://%s/v3/' % NOWHERE, 'tenant', 'alice', 'secret-a')
    connection.close()


class ReadAttributes:
    """A parsed location, and the names of its attributes read."""

    def __init__(self, location):
        object.__setattr__(self, '_location', location)
        object.__setattr__(self, 'read', set())

    def __getattr__(self, name):
        self.read.add(name)
        return getattr(self._location, name)


@pytest.mark.parametrize('reference', ['ref-user', 'ref-app-1'])
def test_a_swift_connection_depends_on_the_credentials_alone(
        swift_store, swift_conf, reference):
    location = ReadAttributes(swift_location(
        swift_conf, 'swift+config://%s/images/image-1' % reference)
        .store_location)

    _compat.swift_connection(swift_store, location, None).close()

    assert location.read <= set(_compat.SWIFT_CONNECTION_ATTRIBUTES)


def test_two_application_credentials_are_two_swift_credentials(swift_conf):
    first, second = [
        _compat.swift_credentials(swift_location(
            swift_conf, 'swift+config://%s/images/image-1' % reference)
            .store_location)
        for reference in ('ref-app-1', 'ref-app-2')]

    assert first != second


class HandedConnection:
    """The connection a caller hands the driver: what it was asked."""

    def __init__(self):
        self.calls = []

    def head_object(self, container, obj, **kwargs):
        self.calls.append(('HEAD', container, obj))
        return {}

    def delete_object(self, container, obj, **kwargs):
        self.calls.append(('DELETE', container, obj))


def test_swift_delete_uses_the_connection_it_is_handed(swift_store,
                                                       swift_conf):
    connection = HandedConnection()

    _compat.swift_delete(swift_store, swift_location(swift_conf),
                         connection, None)

    assert connection.calls == [('HEAD', 'images', 'image-1'),
                                ('DELETE', 'images', 'image-1')]


# --- glance_store's RBD driver ----------------------------------------------


def require_rados():
    if rados is None:
        raise databases.unavailable(
            'Ceph Python bindings (rados, rbd) not importable: glance_store '
            'cannot configure an rbd store without them; run '
            'tools/backends/install_backends.sh, then '
            'tools/backends/ceph_bindings.py with this Python (%s)'
            % sys.executable)


@pytest.fixture
def rbd_store(tmp_path):
    require_rados()
    configured(stores=['rbd'], default_store='rbd',
               rbd_store_pool='scrub-pool', rbd_store_user='scrubber',
               rbd_store_ceph_conf=str(tmp_path / 'missing-ceph.conf'),
               rados_connect_timeout=1)
    return glance_store.get_store_from_scheme('rbd')


def test_the_rbd_connection_takes_a_conf_file_and_a_rados_id():
    parameters = inspect.signature(rbd_driver.Store.get_connection).parameters

    assert {'conffile', 'rados_id'} <= set(parameters)


def test_rbd_pool_and_conf_file_are_the_configured_ones(rbd_store,
                                                        tmp_path):
    assert _compat.rbd_pool(rbd_store) == 'scrub-pool'
    assert _compat.rbd_conf_file(rbd_store) == \
        str(tmp_path / 'missing-ceph.conf')
    assert rbd_store.user == 'scrubber'


def test_rbd_connection_connects_only_when_entered(rbd_store):
    connection = _compat.rbd_connection(rbd_store)

    assert isinstance(connection, contextlib.AbstractContextManager)
    # Entered, librados reads the store's configuration file (missing).
    with pytest.raises(rados.ObjectNotFound, match='conf_read_file'):
        with connection:
            pass


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


def test_an_exit_leaves_a_native_thread_stuck_in_tpool():
    # eventlet's atexit hook would join the stuck thread for ever.
    result = run_python(_STUCK_NATIVE_THREAD, timeout=20)

    assert result.returncode == 0, result.stderr


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


def eventlet_warnings(filtered, mode):
    result = run_python(_WARNINGS_OF, filtered, mode)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_eventlet_warns_as_it_is_imported_in_the_words_filtered():
    warned = eventlet_warnings('unfiltered', 'import')
    assert warned and warned[0].startswith('Eventlet is deprecated'), warned

    assert eventlet_warnings('filtered', 'import') == []


def test_the_eventlet_modes_of_the_libraries_warn_in_the_words_filtered():
    warned = eventlet_warnings('unfiltered', 'green')
    # Besides eventlet's own: oslo.log, oslo.service, futurist...
    assert [line for line in warned
            if not line.startswith('Eventlet is deprecated')], warned

    assert eventlet_warnings('filtered', 'green') == []


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


def test_oslo_log_is_set_up_only_after_setup():
    result = run_python(_LOG_SETUP)

    assert result.returncode == 0, result.stderr
    # register_options() adds a handler for what is logged too early.
    assert json.loads(result.stdout.splitlines()[-1]) == {
        'handlers': 1, 'set_up': [False, False, True]}


# --- oslo.config ------------------------------------------------------------


def parsed_conf(tmp_path, text, opt, cli=False):
    path = tmp_path / 'glance-test.conf'
    path.write_text(text)
    conf = cfg.ConfigOpts()
    if cli:
        conf.register_cli_opt(opt)
    else:
        conf.register_opt(opt)
    return conf, path


def test_option_error_text_names_the_file_of_a_bad_value(tmp_path):
    conf, path = parsed_conf(tmp_path, '[DEFAULT]\nworkers = many\n',
                             cfg.IntOpt('workers'))
    conf(['--config-file', str(path)], default_config_files=[])

    with pytest.raises(cfg.ConfigFileValueError) as raised:
        conf.workers

    assert "from LocationInfo(" in str(raised.value)
    assert "detail='%s'" % path in str(raised.value)
    assert _compat.option_error_text(raised.value) == (
        "Value for option workers in %s is not valid: invalid literal for "
        "int() with base 10: 'many'" % path)


def test_parse_config_raises_a_bad_command_line_value_from_a_file(
        tmp_path, capsys):
    conf, path = parsed_conf(tmp_path, '[DEFAULT]\ndebug = maybe\n',
                             cfg.BoolOpt('debug'), cli=True)

    with pytest.raises(_compat.CommandLineValueError) as raised:
        _compat.parse_config(conf, args=['--config-file', str(path)],
                             default_config_files=[])

    assert str(raised.value) == \
        'argument --debug: Invalid Boolean value: maybe'
    assert capsys.readouterr().err == ''


def test_parse_config_leaves_argparse_its_exit_and_its_words(tmp_path,
                                                             capsys):
    conf, _path = parsed_conf(tmp_path, '', cfg.BoolOpt('debug'), cli=True)

    with pytest.raises(SystemExit) as raised:
        _compat.parse_config(conf, args=['--no-such-option'],
                             default_config_files=[])

    assert raised.value.code == 2
    assert 'unrecognized arguments: --no-such-option' in \
        capsys.readouterr().err


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


def test_nothing_else_reaches_into_a_private_name():
    sources = [path for path in sorted((ROOT / 'glance').rglob('*.py'))
               if 'tests' not in path.relative_to(ROOT).parts and
               path.name != '_compat.py']

    assert [reach for path in sources for reach in private_reaches(path)] \
        == []


def test_the_rule_sees_a_reach_into_a_driver(tmp_path):
    module = tmp_path / 'bad.py'
    module.write_text('from glance_store._drivers import s3\n'
                      'store._create_s3_client()\n')

    assert private_reaches(module) == [
        'bad.py:1 import glance_store._drivers',
        'bad.py:1 import glance_store._drivers.s3',
        'bad.py:2 store._create_s3_client']
