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

"""The store side of a scrub: what may be deleted, and deleting it.

The scrubber deletes only data Glance owns, in the stores it is
configured for:

* a ``file://`` location whose path resolves outside every configured
  ``filesystem_store_datadir(s)`` is never deleted (old clouds hold such
  rows: CVE-2014-9493 and CVE-2015-1195 let users set file locations);
* data that a location of another image still points to is not deleted
  while that image is live or can be restored: it needs the data
  (DataUsers);
* data Glance never owned (the http store cannot delete) is let go.

StoreDeleter applies these rules to one location, then asks glance_store
to delete what is left to delete, and turns every answer of the store
into a Deletion or an exception of this module.
"""

import atexit
import enum
import functools
import hashlib
import os
import queue
import threading
import time
import urllib.parse

import glance_store
from glance_store import capabilities
from glance_store import exceptions as store_exceptions
from oslo_log import log as logging

from glance.common import crypt
from glance.common import rbd_usage
from glance.common import throttle
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _

LOG = logging.getLogger(__name__)

FILE_TYPE = 'file'
# The file store answers to both (CVE-2015-1195 went through the second).
FILE_SCHEMES = ('file', 'filesystem')
S3_SCHEMES = ('s3', 's3+http', 's3+https')
RBD_SCHEME = 'rbd'
# Stores that cannot delete by design: their locations are let go.
READ_ONLY_STORE_TYPES = frozenset(['http'])
READ_ONLY_SCHEMES = frozenset(['http', 'https'])
# A throttled delete is sent again, after growing waits (0.1 s doubling,
# at most 10 s: about a minute in all), before its image fails.
STORE_ATTEMPTS = 10
UNBOUNDED = 2 ** 31


class Deletion(enum.Enum):
    """What became of one location's data; each is recorded deleted."""

    DELETED = 'deleted'  # the store deleted it
    ALREADY_GONE = 'already gone'  # the store did not have it
    # Another image of the batch that claimed this one shares the data and
    # deleted it first: no sign of a wrong store.
    GONE_WITH_ANOTHER = 'deleted with another image'

    SHARED = 'kept: another image may need it'  # not touched
    NOT_OWNED = 'let go: the store cannot delete it'  # not touched


class LocationError(Exception):
    """A location's data could not be deleted; its image fails."""


class LocationInUse(Exception):
    """The store keeps the data because something uses it (RBD clones)."""


class StoreTimeout(LocationError):
    """A store call gave no answer in time; it may still be running."""


def _scheme(url):
    return url.partition(':')[0]


def one_line(error):
    """The first line of an error's text, or its type when it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# --- file stores: the data directories -------------------------------------


def configured_datadirs(conf, multistore):
    """Every data directory of the file stores in *conf*.

    :param multistore: read the sections of the file backends of
        ``enabled_backends``; otherwise ``[glance_store]``.
    """
    if multistore:
        groups = [name for name, kind in (conf.enabled_backends or {}).items()
                  if kind == FILE_TYPE]
    else:
        groups = ['glance_store'] if FILE_TYPE in _single_store_types(
            conf) else []
    datadirs = []
    for group in groups:
        section = conf[group]
        if section.filesystem_store_datadirs:
            datadirs.extend(_datadir_path(entry)
                            for entry in section.filesystem_store_datadirs)
        elif section.filesystem_store_datadir:
            datadirs.append(section.filesystem_store_datadir)
    return datadirs


def _datadir_path(entry):
    # A "PATH:PRIORITY" entry, read as glance_store reads it: what comes
    # before the last colon, stripped, is the path.
    return entry.rsplit(':', 1)[0].strip()


def _single_store_types(conf):
    return set(conf.glance_store.stores or ())


class FileDatadirs:
    """Tells whether a file location lies inside a configured datadir."""

    def __init__(self, datadirs):
        self._roots = [os.path.realpath(path) for path in datadirs]
        self._real_folder = functools.lru_cache(maxsize=1024)(
            os.path.realpath)

    def forget(self):
        """Resolve folders anew: one may have become a link since."""
        self._real_folder.cache_clear()

    def contains(self, path):
        """Whether *path*, resolved (symlinks, ``..``), is in a datadir."""
        real = self._realpath(path)
        # Both sides are resolved and normalised: a prefix test is exact.
        return any(real == root or real.startswith(root.rstrip(os.sep) +
                                                   os.sep)
                   for root in self._roots)

    def _realpath(self, path):
        # The images of a store share a few folders: resolve each folder
        # once, and the file's own name only when it is a link.
        folder, name = os.path.split(path)
        if name in ('', '.', '..') or os.path.islink(path):
            return os.path.realpath(path)
        return os.path.join(self._real_folder(folder), name)


# --- live locations ---------------------------------------------------------


def file_path(url):
    """The path glance_store's file store acts on for a file URL.

    It joins the URL's host part and path (``file://images/x`` is the
    relative path ``images/x``), and so must anything that checks it.
    """
    parts = urllib.parse.urlsplit(url)
    return (parts.netloc + parts.path).strip()


def data_key(url):
    """What identifies the data a URL points to, for comparing URLs.

    Two URLs with the same key name the same data: the same file (``file``
    or ``filesystem``, ``.`` and ``..`` resolved); the same S3 bucket and
    key (glance_store reaches every S3 location through the configured
    endpoint, whatever host and credentials the URL carries); the same
    object elsewhere, credentials embedded in the URL aside.
    """
    scheme, _sep, rest = url.partition('://')
    if scheme in FILE_SCHEMES:
        return (FILE_TYPE, os.path.normpath(file_path(url)))
    if scheme in S3_SCHEMES:
        # As glance_store parses it: the last two parts of the path, the
        # query aside.
        path = rest.partition('?')[0].strip('/')
        return ('s3',) + tuple(path.split('/')[-2:])
    if '@' in rest.partition('/')[0] or scheme.startswith('swift'):
        # user:key@ before the host; a key may hold '/' (swift, old S3).
        rest = rest.rsplit('@', 1)[-1]
    host, _sep, path = rest.partition('/')
    return (scheme, host, os.path.normpath('/' + path))


class DataUsers:
    """Which images may still need the data a URL points to.

    Users are the images with a location that is not deleted (they are
    live) and the pending_delete images with a pending_delete location
    (a restore can still bring them back). A pass forgets what it knew
    when it starts, reads them all before its first claim and, before
    later claims, the locations added since (their ids grow), at most once
    a second; the images it claims stop being users, since nothing
    restores a claimed image.

    Kept compact, as the backlog itself is among the users: a 64-bit
    digest of each data_key() maps to its users' ids. Two keys sharing a
    digest would only make data look shared, and be kept.

    :param url_of: turns a stored location value into its URL (decrypts
        it); a value it cannot read is left out.
    """

    REFRESH_INTERVAL = 1.0

    def __init__(self, url_of):
        self._url_of = url_of
        self._lock = threading.Lock()
        self._refreshed = None
        self.forget()

    def forget(self):
        with self._lock:
            self._users = {}
            self._claimed = {}
            self._claimed_together = set()
            self._last_id = None

    def refresh(self, context):
        """Read the locations added since the last refresh.

        At most once every REFRESH_INTERVAL seconds after the first of a
        pass: a claim costs a transaction, and this would be another one.
        """
        now = time.monotonic()
        if self._last_id is not None and \
                now - self._refreshed < self.REFRESH_INTERVAL:
            return
        self._refreshed = now
        rows, highest = db_api.data_users(context, after_id=self._last_id)
        added = []
        for _location_id, image_id, value in rows:
            digest = self._digest(value)
            if digest is not None:
                added.append((digest, image_id))
        with self._lock:
            for digest, image_id in added:
                self._users.setdefault(digest, set()).add(image_id)
            if highest is not None:
                self._last_id = highest

    def claimed(self, claims):
        """The images of *claims* no longer need their data."""
        gone = [(location.id, self._digest(location.url), claim.image_id)
                for claim in claims for location in claim.locations]
        claimers = {}
        for _location_id, digest, image_id in gone:
            claimers.setdefault(digest, set()).add(image_id)
        with self._lock:
            self._claimed_together.update(
                digest for digest, images in claimers.items()
                if len(images) > 1)
            for location_id, digest, image_id in gone:
                # Kept for digest_of(), which comes next.
                self._claimed[location_id] = digest
                users = self._users.get(digest)
                if users is not None:
                    users.discard(image_id)
                    if not users:
                        del self._users[digest]

    def digest_of(self, location):
        """What names a claimed location's data here (see users_besides)."""
        with self._lock:
            digest = self._claimed.pop(location.id, None)
        return self._digest(location.url) if digest is None else digest

    def users_besides(self, digest, image_id):
        """Other images than *image_id* that may need the data."""
        with self._lock:
            return self._users.get(digest, set()) - {image_id}

    def claimed_together(self, digest):
        """Whether images claimed in one batch share the data.

        The first of their workers deletes it; the others find it gone.
        """
        with self._lock:
            return digest in self._claimed_together

    def _digest(self, value):
        try:
            url = self._url_of(value)
        except LocationError:
            return None
        try:
            return _digest(data_key(url))
        except ValueError:
            # urlsplit() refuses some malformed URLs: compare them whole.
            return _digest((url,))


def _digest(key):
    packed = '\0'.join(key).encode('utf-8', 'surrogateescape')
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(),
                          'big')


# --- calling a store --------------------------------------------------------

# The stores whose client library blocks in C without yielding to
# eventlet's hub (librbd and librados release the GIL, but a green thread
# in them holds the hub: the other workers and the heartbeat stop). On the
# eventlet backend their calls run in eventlet's pool of native threads.
# S3, Swift, HTTP and Cinder talk through Python sockets that monkey
# patching makes green: they stay in the hub, where they overlap already.
NATIVE_BLOCKING_SCHEMES = frozenset(['rbd'])
# eventlet's default number of native threads (EVENTLET_THREADPOOL_SIZE).
TPOOL_THREADS = 20


class StoreCalls:
    """Runs each store call of a worker, bounded in time.

    The one place that knows how a store call behaves on each concurrency
    backend:

    * threading: the call runs in the worker's thread; with a bound, in a
      daemon thread of its own that the worker waits for at most
      *timeout* seconds;
    * eventlet: calls to the stores of NATIVE_BLOCKING_SCHEMES go through
      eventlet.tpool, the others run in the green thread; the bound is an
      eventlet.Timeout.

    A call that outlives the bound is left running (no Python thread can
    be interrupted inside a C library) and StoreTimeout is raised; the
    caller must treat the data as possibly deleted later.

    :param backend: ``eventlet`` or ``threading``.
    :param timeout: ``scrub_store_timeout`` in seconds; 0 for no bound.
    :param workers: the most calls at once (``scrub_pool_size``): enough
        native threads are made for them on the eventlet backend.
    """

    def __init__(self, backend='threading', timeout=0, workers=1):
        self.timeout = timeout
        self._green = backend == 'eventlet'
        self.abandoned = 0
        self._threads = _CallThreads()
        if self._green:
            from eventlet import tpool
            # Read when the pool starts, at the first call.
            tpool.set_num_threads(max(TPOOL_THREADS, workers))

    def run(self, scheme, call):
        """call(), bounded; *scheme* is the URL scheme of its location.

        :raises StoreTimeout: no answer within the bound.
        """
        if self._green:
            return self._run_green(scheme in NATIVE_BLOCKING_SCHEMES, call)
        if not self.timeout:
            return call()
        return self._run_in_thread(call)

    def _run_in_thread(self, call):
        pending = self._threads.submit(call)
        if not pending.done.wait(self.timeout):
            raise self._timed_out()
        return pending.result()

    def _run_green(self, native, call):
        import eventlet
        from eventlet import tpool
        if native:
            call = functools.partial(tpool.execute, call)
        if not self.timeout:
            return call()
        timer = eventlet.Timeout(self.timeout)
        try:
            return call()
        except eventlet.Timeout as fired:
            if fired is not timer:
                raise
            if native:
                # eventlet joins its native threads at exit, and this one
                # may never return: the process would never end.
                atexit.unregister(tpool.killall)
            raise self._timed_out()
        finally:
            timer.cancel()

    def _timed_out(self):
        self.abandoned += 1
        return StoreTimeout(_('the store gave no answer within %d seconds '
                              '(scrub_store_timeout)') % self.timeout)


class _PendingCall:
    """One call handed to a _CallThreads thread, and its result."""

    def __init__(self, call):
        self._call = call
        self.done = threading.Event()
        self._value = self._error = None

    def run(self):
        try:
            self._value = self._call()
        except BaseException as error:  # noqa: BLE001 - handed over
            self._error = error
        finally:
            self.done.set()

    def result(self):
        if self._error is not None:
            raise self._error
        return self._value


class _CallThreads:
    """Daemon threads that run bounded store calls, kept for later calls.

    A new thread per call would cost more than a file store delete. A
    thread stuck in a store stays out of the pool; being a daemon, it
    cannot keep the process from exiting once the pass is over.
    """

    def __init__(self):
        self._calls = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, call):
        pending = _PendingCall(call)
        with self._lock:
            spare = self._idle > 0
            if spare:
                self._idle -= 1
        if not spare:
            threading.Thread(target=self._serve, name='store-call',
                             daemon=True).start()
        self._calls.put(pending)
        return pending

    def _serve(self):
        while True:
            self._calls.get().run()
            with self._lock:
                self._idle += 1


def bound_library_timeouts(conf, multistore, seconds):
    """Give glance_store's own store timeouts a default of *seconds*.

    Only where the operator left them unset: ``rados_connect_timeout``
    (glance_store applies it to the RADOS connection and to each monitor
    and OSD operation, which librados otherwise waits for without end).
    A call this scrubber gave up on then ends by itself instead of
    holding a thread for the life of the process. Nothing is changed when
    *seconds* is 0.
    """
    if not seconds:
        return
    if multistore:
        groups = [name for name, kind in (conf.enabled_backends or {}).items()
                  if kind == 'rbd']
    else:
        groups = ['glance_store'] if 'rbd' in _single_store_types(conf) \
            else []
    for group in groups:
        if conf[group].rados_connect_timeout < 0:
            conf.set_default('rados_connect_timeout', seconds, group=group)


# --- deleting ---------------------------------------------------------------


def _store_library_errors():
    """The errors store client libraries raise through glance_store.

    glance_store does not wrap every error of the libraries under it
    (botocore's ClientError or ReadTimeoutError, swiftclient's
    ClientException, librados errors); each of them fails one location,
    with its first line as the reason.
    """
    errors = [OSError]
    for module, names in (('botocore.exceptions', ('BotoCoreError',
                                                   'ClientError')),
                          ('swiftclient.exceptions', ('ClientException',)),
                          ('requests.exceptions', ('RequestException',)),
                          ('rados', ('Error',)), ('rbd', ('Error',))):
        try:
            loaded = __import__(module, fromlist=list(names))
        except ImportError:
            continue
        errors.extend(getattr(loaded, name) for name in names)
    return tuple(errors)


class StoreDeleter:
    """Deletes the data of one location through glance_store, safely.

    :param context: the admin request context handed to the drivers.
    :param multistore: delete from the backend named in the location's
        ``store`` metadata (``enabled_backends`` is set); otherwise
        the single store picks the driver from the URL scheme.
    :param encryption_key: ``metadata_encryption_key``, or None.
    :param datadirs: a FileDatadirs: file locations outside it are
        refused.
    :param s3_stores: a SharedS3Stores serving the S3 locations, or None
        to leave every location to glance_store's own helpers.
    :param swift_stores: a SharedSwiftConnections serving the
        single-tenant Swift locations, or None.
    :param gate: a throttle.StoreGate every store delete goes through
        (adaptive concurrency, retries of throttled requests, rate cap);
        by default one that lets everything through.
    :param calls: the StoreCalls that runs each store call (backend,
        ``scrub_store_timeout``); by default unbounded, in the caller's
        native thread.
    """

    def __init__(self, context, multistore=False, encryption_key=None,
                 datadirs=None, s3_stores=None, gate=None, calls=None,
                 swift_stores=None):
        self._context = context
        self._multistore = multistore
        self._encryption_key = encryption_key
        self._datadirs = datadirs or FileDatadirs([])
        self._s3_stores = s3_stores
        self._swift_stores = swift_stores
        self.gate = gate or throttle.StoreGate(UNBOUNDED)
        self.calls = calls or StoreCalls()
        self._library_errors = _store_library_errors()
        self.data_users = DataUsers(self.url_of)

    def start_pass(self):
        """Forget what an earlier pass learnt of the stores and images."""
        self.data_users.forget()
        self._datadirs.forget()
        self.gate.start_pass()

    def url_of(self, value):
        """The URL a stored location value holds (decrypted if need be)."""
        if not self._encryption_key:
            return value
        try:
            return crypt.urlsafe_decrypt(self._encryption_key, value)
        except crypt.DecryptionError as error:
            raise LocationError(_('cannot decrypt the location: %s')
                                % error)

    def delete(self, image_id, location):
        """Delete a location's data, if it may be deleted.

        :returns: a Deletion.
        :raises LocationError: nothing was deleted, or the data may still
            be there; the reason is the message.
        :raises LocationInUse: the store keeps the data because it is in
            use; nothing was deleted.
        """
        url, backend, digest = self._checked(location)
        if self.data_users.users_besides(digest, image_id):
            return Deletion.SHARED
        try:
            self.gate.call(lambda: self._delete_url(url, backend),
                           STORE_ATTEMPTS)
        except store_exceptions.NotFound:
            if self.data_users.claimed_together(digest):
                return Deletion.GONE_WITH_ANOTHER
            return Deletion.ALREADY_GONE
        except store_exceptions.StoreDeleteNotSupported:
            if _scheme(url) not in READ_ONLY_SCHEMES:
                # A driver that failed to configure, not a store that
                # never owned the data: letting it go would leak it.
                raise LocationError(_('the store cannot delete: its driver '
                                      'is not configured for writing'))
            return Deletion.NOT_OWNED
        except (store_exceptions.InUseByStore,
                store_exceptions.HasSnapshot) as error:
            raise LocationInUse(one_line(error))
        except (store_exceptions.GlanceStoreException,
                store_exceptions.BackendException) as error:
            raise LocationError(_('the store refused: %s') % one_line(error))
        except self._library_errors as error:
            raise LocationError(_('store error %(type)s: %(error)s') % {
                'type': type(error).__name__, 'error': one_line(error)})
        return Deletion.DELETED

    def plan(self, image_id, location):
        """What delete() would decide for a location, touching nothing.

        The same checks as delete(), then a look at the configured store
        that would serve it; the store itself is not asked, so data that
        is already gone or in use (RBD clones) cannot be told apart.

        :returns: DELETED (the store would be asked to delete it), SHARED,
            NOT_OWNED, or ALREADY_GONE (no backend matches, as delete()
            finds).
        :raises LocationError: delete() would refuse, for this reason.
        """
        url, backend, digest = self._checked(location)
        if self.data_users.users_besides(digest, image_id):
            return Deletion.SHARED
        try:
            store = self._store_for(url, backend)
        except store_exceptions.NotFound:
            return Deletion.ALREADY_GONE
        except store_exceptions.UnknownScheme as error:
            raise LocationError(_('no configured store serves it: %s')
                                % one_line(error))
        if not store.is_capable(capabilities.BitMasks.WRITE_ACCESS):
            return Deletion.NOT_OWNED
        return Deletion.DELETED

    def _checked(self, location):
        """The checks before the store: (url, backend, digest of the data).

        :raises LocationError: the location must not be deleted.
        """
        url = self.url_of(location.url)
        backend = self._backend_of(location) if self._multistore else None
        self._check_owned(url)
        return url, backend, self.data_users.digest_of(location)

    def _store_for(self, url, backend):
        """The store glance_store would delete *url* with."""
        if not self._multistore:
            return glance_store.get_store_from_uri(url)
        if backend:
            return glance_store.get_store_from_store_identifier(backend)
        # As glance_store.delete() does without a backend: the first
        # backend whose type starts the URL.
        for name, kind in glance_store.multi_backend.CONF.enabled_backends \
                .items():
            if url.startswith(kind):
                return glance_store.get_store_from_store_identifier(name)
        raise store_exceptions.NotFound()

    def data_present(self, location):
        """Whether the store still has a location's data (for a restore).

        :raises LocationError: the store cannot tell.
        """
        url = self.url_of(location.url)
        backend = self._backend_of(location) if self._multistore else None
        try:
            self.calls.run(_scheme(url),
                           lambda: self._get_size(url, backend))
        except store_exceptions.NotFound:
            return False
        except (store_exceptions.GlanceStoreException,
                store_exceptions.BackendException) + \
                self._library_errors as error:
            raise LocationError(_('the store cannot tell whether it has '
                                  'the data: %s') % one_line(error))
        return True

    def _backend_of(self, location):
        try:
            return location.store_name()
        except ValueError as error:
            raise LocationError(_('cannot read the location metadata: %s')
                                % error)

    def _check_owned(self, url):
        scheme = url.partition(':')[0]
        if scheme not in FILE_SCHEMES:
            return
        path = file_path(url)
        if not self._datadirs.contains(path):
            raise LocationError(_('%s is outside every filesystem_store_'
                                  'datadir: not deleted') % path)

    def _get_size(self, url, backend):
        if self._multistore:
            return glance_store.get_size_from_uri_and_backend(
                url, backend, context=self._context)
        return glance_store.get_size_from_backend(url, context=self._context)

    def _delete_url(self, url, backend):
        self.calls.run(_scheme(url),
                       lambda: self._send_delete(url, backend))

    def _send_delete(self, url, backend):
        if _scheme(url) == RBD_SCHEME:
            # glance_store would break an image in use before refusing.
            rbd_usage.check_not_in_use(self._store_for(url, backend), url)
        if self._s3_stores and self._s3_stores.handles(url, backend):
            self._s3_stores.delete(url, backend, self._context)
        elif self._swift_stores and self._swift_stores.handles(url,
                                                               backend):
            self._swift_stores.delete(url, backend, self._context)
        elif self._multistore:
            glance_store.delete(url, backend, context=self._context)
        else:
            glance_store.delete_from_backend(url, context=self._context)
