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

"""RBD: one cluster connection per store, and the in-use look.

glance_store's rbd driver is not reusable in glance_store's sense: each
call of its top-level helpers loads and configures a new store instance
(which, for a named backend, connects to the cluster to read its fsid),
and each call of an instance opens a new RADOS connection (a monitor
handshake and the maps: most of a delete on a networked cluster) and
shuts it down after. The scrubber keeps one instance per store and one
connection per instance for the life of the process, opened at the first
delete and shared by every worker (librados is thread-safe); the driver
uses it too (glance._compat.route_rbd_connections). It is opened by the
driver's own code, so ``rados_connect_timeout`` (which the scrubber
defaults to ``scrub_store_timeout``) bounds the connection and each of
its monitor and OSD operations.

glance_store's delete goes in steps: it unprotects and removes the
image's snapshot, then removes the image. Two uses of an image slip
through those steps:

* a copy-on-write clone in format 2 (``rbd_default_clone_format = 2``, or
  Ceph choosing it): the snapshot goes, the image cannot, so the driver
  moves it to the RBD trash and reports success. The scrubber would
  record the data deleted and reclaimed while a clone still reads it and
  nothing ever purges it, and the image could no longer be restored;
* an image opened read-write by another client (a watch): the snapshot is
  removed before the image refuses, so the data stays but can no longer
  be cloned, nor the image restored.

So the image is looked at first, through the same connection: clones of
any of its snapshots (in any format, in the trash or not) or watchers make
it in use, and nothing is touched. A clone made between the look and the
delete is still refused by the driver in format 1; in format 2 that
window of a few milliseconds remains.
"""

import contextlib
import urllib.parse

import glance_store
from glance_store import exceptions as store_exceptions
from oslo_config import cfg

from glance import _compat
from glance.i18n import _
from glance.scrubber.stores import urls

try:
    import rbd
except ImportError:  # no Ceph here: no rbd store can be configured
    rbd = None


class ImageInUse(store_exceptions.InUseByStore):
    """The image has clones or watchers; nothing was deleted."""

    def __init__(self, reason):
        super().__init__()
        self.reason = reason

    def __str__(self):
        return self.reason


class SharedRbdStores:
    """Deletes RBD locations through one store instance and connection each.

    On the eventlet backend every RBD call runs in a native thread
    (stores.calls), so the locks the calls take are native ones.

    :param multistore: locations name their backend (``enabled_backends``);
        otherwise the URL scheme picks the single rbd store.
    :param conf: the configuration glance_store parses locations with.
    """

    def __init__(self, multistore=False, conf=None):
        self._conf = conf if conf is not None else cfg.CONF
        self._multistore = multistore
        # Taken by the workers on either backend: native.
        self._lock = _compat.native_lock()
        self._stores = {}

    def delete(self, url, backend, context):
        """Delete one location's data unless the image is in use.

        :param backend: the location's backend (multi-store), or None.
        :raises ImageInUse: the image has clones or watchers; nothing was
            deleted. glance_store's own errors pass on.
        """
        store, cluster = self._store(url, backend)
        location = urls.parse(url, backend if self._multistore else None,
                              self._conf)
        pool, name = _pool_and_image(store, url)
        with cluster.connection() as client:
            with client.open_ioctx(pool) as ioctx:
                _check_image(ioctx, name)
        # Through the same connection, routed to the driver.
        return store.delete(location, context=context)

    def close(self):
        """Shut the connections down, but those a call still uses.

        A call the scrubber gave up on (scrub_store_timeout) may still be
        inside librados: that connection is left to the process's exit.

        :returns: how many connections were left open.
        """
        with self._lock:
            clusters = [cluster for _store, cluster in self._stores.values()]
        return sum(not cluster.close() for cluster in clusters)

    def _store(self, url, backend):
        with self._lock:
            if backend not in self._stores:
                store = self._load_store(url, backend)
                self._stores[backend] = (store, _SharedCluster(store))
            return self._stores[backend]

    def _load_store(self, url, backend):
        if self._multistore:
            return glance_store.get_store_from_store_identifier(backend)
        return glance_store.get_store_from_uri(url)


class _SharedCluster:
    """One store's RADOS connection: opened at first use, then shared."""

    def __init__(self, store):
        self._lock = _compat.native_lock()
        self._client = None
        self._closing = None
        self._users = 0
        self._open_own = _compat.route_rbd_connections(store,
                                                       self.connection)

    @contextlib.contextmanager
    def connection(self, conffile=None, rados_id=None):
        """The shared rados.Rados (the driver's get_connection's shape).

        Opening it under the lock: the workers of a pass's start wait for
        one connection instead of each making its own.
        """
        with self._lock:
            if self._client is None:
                self._open()
            self._users += 1
            client = self._client
        try:
            yield client
        finally:
            with self._lock:
                self._users -= 1

    def _open(self):
        opened = self._open_own()
        self._client = opened.__enter__()
        self._closing = opened

    def close(self):
        """Shut the connection down unless a call is still inside it."""
        with self._lock:
            if self._users:
                return False
            if self._client is not None:
                self._client = None
                self._closing.__exit__(None, None, None)
            return True


def _check_image(ioctx, name):
    try:
        # Read-only: a watch of our own would make it "in use".
        with rbd.Image(ioctx, name, read_only=True) as image:
            clones = _clones(image)
            watchers = len(list(image.watchers_list()))
    except rbd.ImageNotFound:
        return
    if clones:
        raise ImageInUse(_('RBD image %(name)s is the parent of %(count)d '
                           'image(s) (its clones and theirs), e.g. '
                           '%(clone)s') % {
            'name': name, 'count': len(clones), 'clone': clones[0]})
    if watchers:
        raise ImageInUse(_('RBD image %(name)s is open by %(count)d other '
                           'client(s)') % {'name': name, 'count': watchers})


def _clones(image):
    # One listing for every snapshot, clones in the trash included (and
    # clones of clones, which keep the data as much).
    return ['%s/%s' % (child['pool'], child['image'])
            for child in image.list_descendants()]


def _pool_and_image(store, url):
    """(pool, image) of ``rbd://FSID/POOL/IMAGE/SNAP`` or ``rbd://IMAGE``."""
    parts = urllib.parse.urlsplit(url)
    pieces = [urllib.parse.unquote(piece) for piece in
              [parts.netloc] + parts.path.lstrip('/').split('/') if piece]
    if len(pieces) == 4:
        return pieces[1], pieces[2]
    return _compat.rbd_pool(store), pieces[0]
