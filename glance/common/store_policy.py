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
* data that a location of another, live image still points to is not
  deleted: that image needs it (LiveUrls);
* data Glance never owned (the http store cannot delete) is let go.

StoreDeleter applies these rules to one location, then asks glance_store
to delete what is left to delete, and turns every answer of the store
into a Deletion or an exception of this module.
"""

import enum
import os
import threading
import urllib.parse

import glance_store
from glance_store import exceptions as store_exceptions
from oslo_log import log as logging

from glance.common import crypt
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _

LOG = logging.getLogger(__name__)

FILE_TYPE = 'file'
FILE_SCHEME = 'file'


class Deletion(enum.Enum):
    """What became of one location's data; each is recorded deleted."""

    DELETED = 'deleted'  # the store deleted it
    ALREADY_GONE = 'already gone'  # the store did not have it
    SHARED = 'kept: another image uses it'  # not touched
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
            # "PATH:PRIORITY" entries; the priority is optional.
            datadirs.extend(entry.rsplit(':', 1)[0]
                            if entry.rsplit(':', 1)[-1].isdigit() else entry
                            for entry in section.filesystem_store_datadirs)
        elif section.filesystem_store_datadir:
            datadirs.append(section.filesystem_store_datadir)
    return datadirs


def _single_store_types(conf):
    return set(conf.glance_store.stores or ())


class FileDatadirs:
    """Tells whether a file location lies inside a configured datadir."""

    def __init__(self, datadirs):
        self._roots = [os.path.realpath(path) for path in datadirs]

    def contains(self, path):
        """Whether *path*, resolved (symlinks, ``..``), is in a datadir."""
        real = os.path.realpath(path)
        return any(os.path.commonpath([real, root]) == root
                   for root in self._roots)


# --- live locations ---------------------------------------------------------


def file_path(url):
    """The path glance_store's file store acts on for a file:// URL.

    It joins the URL's host part and path (``file://images/x`` is the
    relative path ``images/x``), and so must anything that checks it.
    """
    parts = urllib.parse.urlsplit(url)
    return (parts.netloc + parts.path).strip()


def data_key(url):
    """What identifies the data a URL points to, for comparing URLs.

    Credentials embedded in older S3 and Swift URLs and a trailing slash
    do not change the data a URL names, nor do ``.`` and ``..`` in a path.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == FILE_SCHEME:
        return (FILE_SCHEME, '', os.path.normpath(file_path(url)), '')
    host = parts.netloc.rpartition('@')[2]
    path = os.path.normpath(parts.path) if parts.path else ''
    return (parts.scheme, host, path, parts.query)


class LiveUrls:
    """The data that live (not deleted) locations point to, by image.

    A pass forgets what it knew when it starts, then refreshes before each
    claim: the first refresh reads every live location, the next ones only
    the locations added since (their ids grow). A location made live again
    by a restore during the pass keeps its id and is seen by the next
    pass.

    :param url_of: turns a stored location value into its URL (decrypts
        it); a value it cannot read is left out.
    """

    def __init__(self, url_of):
        self._url_of = url_of
        self._lock = threading.Lock()
        self.forget()

    def forget(self):
        with self._lock:
            self._images = {}
            self._last_id = None

    def refresh(self, context):
        rows, highest = db_api.live_locations(context,
                                              after_id=self._last_id)
        added = {}
        for _location_id, image_id, value in rows:
            try:
                key = data_key(self._url_of(value))
            except LocationError:
                continue
            added.setdefault(key, set()).add(image_id)
        with self._lock:
            for key, images in added.items():
                self._images.setdefault(key, set()).update(images)
            if highest is not None:
                self._last_id = highest

    def users_besides(self, url, image_id):
        """The live images other than *image_id* using the data of *url*."""
        with self._lock:
            return self._images.get(data_key(url), set()) - {image_id}


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
        self.live_urls = LiveUrls(self.url_of)

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
        if self.live_urls.users_besides(url, image_id):
            return Deletion.SHARED
        try:
            self._delete_url(url, backend)
        except store_exceptions.NotFound:
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
        if scheme != FILE_SCHEME:
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
