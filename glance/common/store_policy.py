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

import enum
import functools
import hashlib
import os
import threading
import time
import urllib.parse

import glance_store
from glance_store import exceptions as store_exceptions
from oslo_log import log as logging

from glance.common import crypt
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _

LOG = logging.getLogger(__name__)

FILE_TYPE = 'file'
# The file store answers to both (CVE-2015-1195 went through the second).
FILE_SCHEMES = ('file', 'filesystem')
S3_SCHEMES = ('s3', 's3+http', 's3+https')


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
    """

    def __init__(self, context, multistore=False, encryption_key=None,
                 datadirs=None, s3_stores=None):
        self._context = context
        self._multistore = multistore
        self._encryption_key = encryption_key
        self._datadirs = datadirs or FileDatadirs([])
        self._s3_stores = s3_stores
        self._library_errors = _store_library_errors()
        self.data_users = DataUsers(self.url_of)

    def start_pass(self):
        """Forget what an earlier pass learnt of the stores and images."""
        self.data_users.forget()
        self._datadirs.forget()

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
        url = self.url_of(location.url)
        backend = self._backend_of(location) if self._multistore else None
        self._check_owned(url)
        digest = self.data_users.digest_of(location)
        if self.data_users.users_besides(digest, image_id):
            return Deletion.SHARED
        try:
            self._delete_url(url, backend)
        except store_exceptions.NotFound:
            if self.data_users.claimed_together(digest):
                return Deletion.GONE_WITH_ANOTHER
            return Deletion.ALREADY_GONE
        except store_exceptions.StoreDeleteNotSupported:
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

    def data_present(self, location):
        """Whether the store still has a location's data (for a restore).

        :raises LocationError: the store cannot tell.
        """
        url = self.url_of(location.url)
        backend = self._backend_of(location) if self._multistore else None
        try:
            if self._multistore:
                glance_store.get_size_from_uri_and_backend(
                    url, backend, context=self._context)
            else:
                glance_store.get_size_from_backend(url,
                                                   context=self._context)
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

    def _delete_url(self, url, backend):
        if self._s3_stores and self._s3_stores.handles(url, backend):
            self._s3_stores.delete(url, backend, self._context)
        elif self._multistore:
            glance_store.delete(url, backend, context=self._context)
        else:
            glance_store.delete_from_backend(url, context=self._context)
