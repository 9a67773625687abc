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

"""Swift connections and Keystone logins shared by the scrub workers.

glance_store's single-tenant swift driver makes a new swiftclient
connection for every call it is not handed one, and a new connection
logs in to Keystone before its first request: a delete, a HEAD and a
DELETE of about 10 ms each, costs a token of a few hundred milliseconds,
and Keystone, not Swift, sets the pace of a pool of workers.

The driver's delete takes the connection to use. A swiftclient connection
is not safe to share between threads, so each is leased to one worker at
a time and given back after the call; one is opened only when all are
busy. Connections are kept per store and per credentials of the location,
which is all a connection depends on.

A token, unlike a connection, can be shared: the connections of one set
of credentials take theirs from one SharedLogin, which logs in to
Keystone once for the process. When Swift refuses a token (401, expired
or revoked), swiftclient asks the connection for a new one; the first
worker to ask logs in again, and the others that saw the same token
refused take the new one. The multi-tenant store is left to glance_store:
its connections carry the token of the request's context.

This module is the one place that hands the driver a connection, through
glance._compat, whose tests pin the driver and swiftclient behaviour it
relies on; the functional tests run it against a real Swift and Keystone.
"""

import collections
import contextlib
import threading

import glance_store
from glance_store import exceptions as store_exceptions
from oslo_config import cfg

from glance import _compat
from glance.scrubber.stores import layout
from glance.scrubber.stores import urls


class SharedLogin:
    """One Keystone login for a set of credentials, shared by connections.

    :param log_in: makes the login: returns (storage URL, token).
    """

    def __init__(self, log_in):
        self._log_in = log_in
        self._lock = threading.Lock()
        self._current = None
        self.logins = 0

    def credentials(self, refused=None):
        """(storage URL, token): the current ones, or a new login.

        :param refused: what the caller was handed before and Swift
            refused; a login is made only if it is still the current one
            (workers that saw the same token refused make one login).
        """
        with self._lock:
            if self._current is None or self._current == refused:
                # Under the lock: the other workers wait for this login
                # rather than make their own.
                self._current = self._log_in()
                self.logins += 1
            return self._current

    def forget(self, refused):
        """Swift refused these credentials: the next caller logs in."""
        with self._lock:
            if self._current == refused:
                self._current = None


class _TokenSource:
    """A connection's way to its token: the shared login of its credentials.

    swiftclient asks a connection for credentials before its first
    request and again after Swift answered 401 to them.
    """

    def __init__(self, login):
        self._login = login
        self._handed = None

    def __call__(self):
        self._handed = self._login.credentials(refused=self._handed)
        return self._handed

    def refused(self):
        """Swift refused the token and swiftclient did not ask again."""
        self._login.forget(self._handed)


class _Connection:
    """A swiftclient connection and where it takes its token from."""

    def __init__(self, client, token_source):
        self.client = client
        self.token_source = token_source


class SharedSwiftConnections:
    """Deletes Swift locations with connections the workers take turns on.

    :param multistore: locations name their backend (``enabled_backends``);
        otherwise the URL scheme picks the single Swift store.
    :param swift_backends: with multistore, the backends of type swift.
    :param conf: the configuration glance_store parses locations with.
    :ivar opened: connections opened so far.
    """

    def __init__(self, multistore=False, swift_backends=(), conf=None):
        self._conf = conf if conf is not None else cfg.CONF
        self._multistore = multistore
        self._swift_backends = set(swift_backends)
        self._lock = threading.Lock()
        self._parse_lock = threading.Lock()
        self._stores = {}
        self._idle = collections.defaultdict(list)
        self._logins = {}
        self.opened = 0

    @classmethod
    def from_config(cls, conf, store_layout):
        return cls(store_layout.multistore,
                   store_layout.named_backends(layout.SWIFT_TYPE), conf)

    @property
    def logins(self):
        """Keystone logins made so far, for every set of credentials."""
        with self._lock:
            return sum(login.logins for login in self._logins.values())

    def handles(self, url, backend):
        """Whether this location is on a single-tenant Swift store."""
        if self._multistore:
            if backend not in self._swift_backends:
                return False
        elif layout.scheme(url) not in layout.SWIFT_SCHEMES:
            return False
        return _compat.is_single_tenant_swift(self._store(url, backend))

    def delete(self, url, backend, context):
        """Delete one location's data; glance_store's errors pass on."""
        store = self._store(url, backend)
        location = self._location(url, backend)
        with self._lease(backend, store, location.store_location,
                         context) as connection:
            return _compat.swift_delete(store, location, connection,
                                        context)

    # glance_store reads the swift_store_config_file again for each store
    # it loads and each swift+config URL it parses, through state that
    # threads doing so at the same time corrupt ("'list' object has no
    # attribute 'find'", seen at pool 8): stores are loaded once per
    # backend, and URLs parsed one at a time.

    def _store(self, url, backend):
        with self._parse_lock:
            if backend not in self._stores:
                self._stores[backend] = self._load_store(url, backend)
            return self._stores[backend]

    def _load_store(self, url, backend):
        if self._multistore:
            return glance_store.get_store_from_store_identifier(backend)
        return glance_store.get_store_from_uri(url)

    def _location(self, url, backend):
        with self._parse_lock:
            return urls.parse(url, backend if self._multistore else None,
                              self._conf)

    @contextlib.contextmanager
    def _lease(self, backend, store, location, context):
        # The backend and the credentials are what a connection depends on.
        key = (backend,) + _compat.swift_credentials(location)
        with self._lock:
            idle = self._idle[key]
            connection = idle.pop() if idle else None
        if connection is None:
            connection = self._open(key, store, location, context)
        try:
            yield connection.client
        except store_exceptions.GlanceStoreException:
            # An answer of the store (not found, ...): the connection is
            # sound.
            self._give_back(key, connection)
            raise
        except Exception as error:
            if _compat.swift_token_refused(error):
                connection.token_source.refused()
            # Whatever state a failure left it in is not passed on.
            connection.client.close()
            raise
        self._give_back(key, connection)

    def _open(self, key, store, location, context):
        with self._lock:
            login = self._logins.get(key)
            if login is None:
                # The login is made by a connection of the driver's, with
                # the driver's settings (auth version, domains, region).
                login = self._logins[key] = SharedLogin(
                    _compat.swift_connection(store, location,
                                             context).get_auth)
            self.opened += 1
        token_source = _TokenSource(login)
        client = _compat.swift_connection(store, location, context)
        _compat.swift_take_tokens_from(client, token_source)
        return _Connection(client, token_source)

    def _give_back(self, key, connection):
        with self._lock:
            self._idle[key].append(connection)
