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

"""Deleting one location's data, safely.

The scrubber deletes only data Glance owns, in the stores it is
configured for:

* a ``file://`` location whose path resolves outside every configured
  ``filesystem_store_datadir(s)`` is never deleted (old clouds hold such
  rows: CVE-2014-9493 and CVE-2015-1195 let users set file locations);
* data that a location of another image still points to is not deleted
  while that image is live or can be restored: it needs the data (the
  pass hands the deleter what the database says: DataUsers);
* data Glance never owned (the http store cannot delete) is let go.

StoreDeleter applies these rules to one location, then asks glance_store
to delete what is left to delete, and turns every answer of the store
into a Deletion or an exception of glance.scrubber.stores.errors.
"""

import enum

import glance_store
from glance_store import capabilities
from glance_store import exceptions as store_exceptions

from glance.common.exception import one_line
from glance.i18n import _
from glance.scrubber.stores import calls as store_calls
from glance.scrubber.stores import errors
from glance.scrubber.stores import gate as store_gate
from glance.scrubber.stores import layout
from glance.scrubber.stores import rbd
from glance.scrubber.stores import sending
from glance.scrubber.stores import urls

UNBOUNDED = sending.UNBOUNDED


class Deletion(enum.Enum):
    """What became of one location's data; each is recorded deleted."""

    DELETED = 'deleted'  # the store deleted it
    ALREADY_GONE = 'already gone'  # the store did not have it
    # Another image of the batch that claimed this one shares the data and
    # deleted it first: no sign of a wrong store.
    GONE_WITH_ANOTHER = 'deleted with another image'

    SHARED = 'kept: another image may need it'  # not touched
    NOT_OWNED = 'let go: the store cannot delete it'  # not touched


class NoOtherUsers:
    """The data users of a deleter told nothing: no data looks shared."""

    def users_besides(self, digest, image_id):
        return set()

    def claimed_together(self, digest):
        return False

    def digest_of(self, location):
        return urls.LocationUrls().digest_of(location.url)


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
    :param store_layout: the configured backends (layout.StoreLayout);
        with ``multistore``, a location is deleted from the backend its
        ``store`` metadata names, otherwise the single store picks the
        driver from the URL scheme.
    :param encryption_key: ``metadata_encryption_key``, or None.
    :param datadirs: a FileDatadirs: file locations outside it are
        refused.
    :param data_users: which other images may need some data
        (glance.scrubber.data_users.DataUsers, kept up to date by the
        pass); by default nothing looks shared.
    :param s3_stores: an s3.SharedS3Stores serving the S3 locations, or
        None to leave every location to glance_store's own helpers.
    :param swift_stores: a swift.SharedSwiftConnections serving the
        single-tenant Swift locations, or None.
    :param gate: a gate.StoreGate every store delete goes through
        (adaptive concurrency, retries of throttled requests, rate cap);
        by default one that lets everything through.
    :param calls: the calls.StoreCalls that runs each store call
        (backend, ``scrub_store_timeout``); by default unbounded, in the
        caller's native thread.
    :param rbd_stores: an rbd.SharedRbdStores serving the RBD locations
        (one store instance and cluster connection each, and the in-use
        look); by default a new one.
    """

    def __init__(self, context, store_layout=None, encryption_key=None,
                 datadirs=None, data_users=None, s3_stores=None,
                 swift_stores=None, gate=None, calls=None,
                 rbd_stores=None):
        self._context = context
        self._layout = store_layout or layout.StoreLayout()
        self._multistore = self._layout.multistore
        self._urls = urls.LocationUrls(encryption_key)
        self._datadirs = datadirs or layout.FileDatadirs([])
        self.data_users = data_users or NoOtherUsers()
        self._s3_stores = s3_stores
        self._swift_stores = swift_stores
        self.gate = gate or store_gate.StoreGate(UNBOUNDED)
        self.calls = calls or store_calls.StoreCalls()
        self._rbd_stores = rbd_stores or rbd.SharedRbdStores(
            self._multistore)
        self._sender = sending.StoreSender(self.gate, self.calls)
        # Which store has left its last calls without an answer.
        self.outages = self._sender.outages
        self._library_errors = _store_library_errors()

    def close(self):
        """Let go of the store connections kept open (RBD clusters)."""
        self._rbd_stores.close()

    def start_pass(self):
        """Forget what an earlier pass learnt of the stores."""
        self._datadirs.forget()
        self.gate.start_pass()
        self.outages.forget()

    def url_of(self, value):
        """The URL a stored location value holds (decrypted if need be)."""
        return self._urls.url_of(value)

    def delete(self, image_id, location):
        """Delete a location's data, if it may be deleted.

        :returns: a Deletion.
        :raises LocationError: nothing was deleted, or the data may still
            be there; the reason is the message. StoreTimeout and
            StoreUnavailable (naming the store) when the store is out of
            reach.
        :raises LocationInUse: the store keeps the data because it is in
            use; nothing was deleted.
        """
        url, backend, digest = self._checked(location)
        if self.data_users.users_besides(digest, image_id):
            return Deletion.SHARED
        try:
            self._send(url, backend, lambda: self._send_delete(url, backend))
        except store_exceptions.NotFound:
            if self.data_users.claimed_together(digest):
                return Deletion.GONE_WITH_ANOTHER
            return Deletion.ALREADY_GONE
        except store_exceptions.StoreDeleteNotSupported:
            if layout.scheme(url) not in layout.READ_ONLY_SCHEMES:
                # A driver that failed to configure, not a store that
                # never owned the data: letting it go would leak it.
                raise errors.LocationError(
                    _('the store cannot delete: its driver is not '
                      'configured for writing'))
            return Deletion.NOT_OWNED
        except (store_exceptions.InUseByStore,
                store_exceptions.HasSnapshot) as error:
            raise errors.LocationInUse(one_line(error))
        except (store_exceptions.GlanceStoreException,
                store_exceptions.BackendException) as error:
            raise errors.LocationError(
                _('the store refused: %s') % one_line(error))
        except self._library_errors as error:
            raise errors.LocationError(_('store error %(type)s: %(error)s') % {
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
            raise errors.LocationError(
                _('no configured store serves it: %s') % one_line(error))
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
        return glance_store.get_store_from_store_identifier(
            self._named_backend(url, backend))

    def _named_backend(self, url, backend):
        """The multi-store backend of a location, or NotFound."""
        if backend:
            return backend
        # As glance_store.delete() does without a backend.
        name = self._layout.backend_for_url(url)
        if name is None:
            raise store_exceptions.NotFound()
        return name

    def data_present(self, location):
        """Whether the store still has a location's data (for a restore).

        :raises StoreOutage: the store is out of reach.
        :raises LocationError: the store cannot tell.
        """
        url = self.url_of(location.url)
        backend = self._backend_of(location) if self._multistore else None
        try:
            self._send(url, backend, lambda: self._get_size(url, backend))
        except store_exceptions.NotFound:
            return False
        except (store_exceptions.GlanceStoreException,
                store_exceptions.BackendException) + \
                self._library_errors as error:
            raise errors.LocationError(
                _('the store cannot tell whether it has the data: %s')
                % one_line(error))
        return True

    def _backend_of(self, location):
        try:
            return location.store_name()
        except ValueError as error:
            raise errors.LocationError(
                _('cannot read the location metadata: %s') % error)

    def _check_owned(self, url):
        if layout.scheme(url) not in layout.FILE_SCHEMES:
            return
        path = urls.file_path(url)
        if not self._datadirs.contains(path):
            raise errors.LocationError(
                _('%s is outside every filesystem_store_datadir: not '
                  'deleted') % path)

    def _get_size(self, url, backend):
        if self._multistore:
            return glance_store.get_size_from_uri_and_backend(
                url, backend, context=self._context)
        return glance_store.get_size_from_backend(url, context=self._context)

    def _send(self, url, backend, request):
        """request() to the store of a location, its outages counted."""
        return self._sender.send(layout.scheme(url), request,
                                 store=self._layout.store_name(url, backend))

    def _send_delete(self, url, backend):
        if layout.scheme(url) == layout.RBD_SCHEME:
            # glance_store would break an image in use before refusing.
            if self._multistore:
                backend = self._named_backend(url, backend)
            self._rbd_stores.delete(url, backend, self._context)
        elif self._s3_stores and self._s3_stores.handles(url, backend):
            self._s3_stores.delete(url, backend, self._context)
        elif self._swift_stores and self._swift_stores.handles(url,
                                                               backend):
            self._swift_stores.delete(url, backend, self._context)
        elif self._multistore:
            glance_store.delete(url, backend, context=self._context)
        else:
            glance_store.delete_from_backend(url, context=self._context)
