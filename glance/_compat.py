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

"""Every private or version-dependent library detail this tree relies on.

Each function names the detail it reaches for and the versions it was
checked on; glance/tests/unit/test_compat.py pins each one, so that an
upgrade that changes it fails one test here instead of a production pass.
Nothing else in the tree touches these details.

Checked on: glance_store 5.7.0, botocore 1.44.8, python-swiftclient
4.11.0, eventlet 0.41.3, oslo.config 10.7.0, oslo.log 8.3.2, stevedore
5.10.0, oslo.service 4.8.0, oslo.utils 10.2.0, futurist 3.5.0, Ceph 16.2
(python3-rbd).

Only the standard library is imported here at load time: glance.cmd reads
the eventlet warning texts before it decides whether to monkey patch.
"""

import atexit
import contextlib
import functools
import io
import logging
import re
import sys

# --- glance_store's drivers, as stevedore loads them ------------------------

# The entry point group of glance_store's drivers (its setup.cfg), which
# glance_store loads them from by name.
STORE_DRIVERS = 'glance_store.drivers'
# The logger stevedore reports a driver that fails to import on, at ERROR.
_STEVEDORE_LOG = 'stevedore.extension'


def store_driver_names():
    """Every store type glance_store can load, without loading any.

    The names of the entry points only: loading every driver would import
    the optional libraries of stores this deployment does not use.
    """
    from importlib import metadata
    return {entry_point.name for entry_point in
            metadata.entry_points(group=STORE_DRIVERS)}


@contextlib.contextmanager
def driver_import_errors_unsaid():
    """Silence stevedore while glance_store lists every driver's options.

    glance_store.register_opts() and register_store_opts() import every
    driver of STORE_DRIVERS through stevedore, which logs an ERROR for
    each one whose optional library is missing (cinder without os-brick).
    Such a driver is of no concern unless it is configured, and then
    loading the stores says so.
    """
    stevedore_log = logging.getLogger(_STEVEDORE_LOG)
    level = stevedore_log.level
    stevedore_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        stevedore_log.setLevel(level)


# --- glance_store's S3 driver and botocore ---------------------------------

# glance_store's S3 Store builds a new boto3 session and client for every
# request through this method (about 0.1 s of CPU each); replacing it on
# an instance makes the instance reuse one client.
S3_CLIENT_FACTORY = '_create_s3_client'


def s3_bucket(store):
    """The bucket an S3 store instance is configured with."""
    return store.bucket


def pin_s3_client(store):
    """Build one client for an S3 store instance and make it reuse it."""
    client = getattr(store, S3_CLIENT_FACTORY)()
    setattr(store, S3_CLIENT_FACTORY, lambda: client)
    return client


def s3_client_connections(client):
    """How many requests one botocore client can have in flight."""
    return client.meta.config.max_pool_connections or 1


def on_s3_retry_decision(client, hook):
    """Call *hook* first when botocore decides whether to retry.

    botocore's 'needs-retry.s3' event: *hook(response=(http, parsed))*
    for an answer, *hook(caught_exception=error)* for a request that got
    none (a read timeout, a connection refused); it returns False to stop
    retrying, None to leave it to botocore.
    """
    client.meta.events.register_first('needs-retry.s3', hook)


# --- glance_store's Swift driver --------------------------------------------


def is_single_tenant_swift(store):
    """Whether a Swift store keeps one account (its token is its own)."""
    from glance_store._drivers.swift import store as swift_driver
    return isinstance(store, swift_driver.SingleTenantStore)


def swift_connection(store, location, context):
    """A swiftclient connection the driver would open for *location*."""
    return store.get_connection(location, context=context)


def swift_delete(store, location, connection, context):
    """The driver's delete through a connection of the caller's."""
    return store.delete(location, connection=connection, context=context)


def swift_take_tokens_from(connection, token_source):
    """Make a swiftclient connection take its token from *token_source*.

    swiftclient's Connection calls its get_auth() for (storage URL,
    token) before its first request, and again when Swift answers 401
    (Connection._retry, with credentials to log in with); set on the
    instance, *token_source()* answers instead of a login of its own.
    """
    connection.get_auth = token_source


def swift_token_refused(error):
    """Whether *error* is swiftclient's for Swift's 401 Unauthorized."""
    import swiftclient
    return (isinstance(error, swiftclient.ClientException) and
            error.http_status == 401)


# What the single-tenant driver's get_connection() reads of a parsed
# location: a user and key, or (glance_store 5.x) an application
# credential and its project.
SWIFT_CONNECTION_ATTRIBUTES = (
    'swift_url', 'user', 'key', 'application_credential_id',
    'application_credential_secret', 'project_name', 'project_id')


def swift_credentials(location):
    """What a Swift connection depends on, from a parsed location."""
    return tuple(getattr(location, name, None)
                 for name in SWIFT_CONNECTION_ATTRIBUTES)


# --- glance_store's RBD driver ----------------------------------------------


def rbd_connection(store):
    """A RADOS connection with the store's own settings (a context)."""
    return store.get_connection(conffile=store.conf_file,
                                rados_id=store.user)


def route_rbd_connections(store, connection):
    """Make an rbd store's driver take its RADOS connections elsewhere.

    The driver opens a connection for every call through its
    get_connection(conffile, rados_id), a context manager; set on the
    instance, *connection* (the same shape) answers instead.

    :returns: what opens a connection the driver's own way, a context
        manager: its conf file and user, rados_connect_timeout applied to
        the connection and to each monitor and OSD operation, and its
        errors (BackendException when the cluster cannot be reached).
    """
    own = store.get_connection
    store.get_connection = connection
    return functools.partial(own, conffile=store.conf_file,
                             rados_id=store.user)


def rbd_pool(store):
    """The store's pool, for ``rbd://IMAGE`` URLs that name none."""
    return store.pool


def rbd_conf_file(store):
    return store.conf_file


# --- eventlet ---------------------------------------------------------------

# eventlet warns as it is imported (an EventletDeprecationWarning whose
# text starts with a newline, then this).
EVENTLET_DEPRECATED = r'\s*Eventlet is deprecated'
# oslo.log, oslo.service, oslo.utils and futurist each warn, with a
# DeprecationWarning naming eventlet ("Eventlet support is deprecated",
# "eventletutils module ..."), when used in their eventlet mode; a
# warnings filter matches its message regardless of case.
EVENTLET_MODE_DEPRECATED = r'.*eventlet'


def native_lock():
    """A lock of the operating system's, even after monkey patching.

    For what native threads share (eventlet.tpool's, where RBD calls run
    on the eventlet backend): eventlet's green lock would switch green
    threads of a hub that is not theirs.
    """
    if 'eventlet' in sys.modules:
        from eventlet import patcher
        return patcher.original('threading').Lock()
    import threading
    return threading.Lock()


def let_exit_leave_native_threads():
    """Keep eventlet from joining its native threads at exit.

    eventlet registers tpool.killall with atexit; a thread stuck in a
    store call would then keep the process from ever ending.
    """
    from eventlet import tpool
    atexit.unregister(tpool.killall)


# --- oslo.log ---------------------------------------------------------------


def oslo_log_is_set_up():
    """Whether oslo.log's setup() has run in this process.

    setup() gives each handler of the root logger a formatter; the one
    that register_options() adds before that (on stderr, for what is
    logged too early) has none.
    """
    return any(handler.formatter is not None
               for handler in logging.getLogger().handlers)


# --- oslo.config ------------------------------------------------------------

# oslo.config names the source of a bad value by the repr of its
# LocationInfo ("from LocationInfo(location=..., detail='/etc/x.conf')").
_LOCATION_INFO = re.compile(r"from LocationInfo\(.*?detail='([^']*)'\)")


def option_error_text(error):
    """oslo.config's message for a bad value, naming the file plainly."""
    return _LOCATION_INFO.sub(r'in \1', str(error))


class CommandLineValueError(Exception):
    """A command line option set to a bad value in a configuration file."""


def parse_config(conf, **kwargs):
    """conf(**kwargs), a bad command line option value raised, not exited.

    For an option of the command line given a bad value in a file
    ("debug = maybe"), oslo.config writes a line to stderr and exits 1.
    """
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            conf(**kwargs)
    except SystemExit as error:
        if error.code == 1 and said.getvalue().strip():
            raise CommandLineValueError(said.getvalue().strip()) from error
        sys.stderr.write(said.getvalue())
        raise
    # Anything else said (argparse's usage and errors) is the operator's.
    sys.stderr.write(said.getvalue())
