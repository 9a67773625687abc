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

"""A real one-node Ceph cluster for the functional tests, and RBD helpers.

* CephCluster runs tools/backends/ceph_cluster.py: a monitor and a
  memstore OSD as plain processes, with the pool ``images`` ready for RBD;
* RbdPool puts images in that pool and inspects them through the rados
  and rbd bindings directly, never through glance_store, so that what a
  test seeds and checks does not depend on the code under test;
* GlanceStoreRbd adds images through glance_store's own rbd driver, as
  glance-api does, for tests that want the images exactly as it makes
  them;
* RgwGateway runs tools/backends/rgw_gateway.py: a RADOS Gateway, a real
  S3 server, on a CephCluster.

Needs the Debian packages that tools/backends/install_backends.sh installs,
and the bindings made importable by tools/backends/ceph_bindings.py.
Without them the tests skip, except under CI (``CI=true``), where a
missing cluster is an error.
"""

import contextlib
import io
import sys
import urllib.parse

from glance_store._drivers import rbd as rbd_driver
from oslo_config import cfg

from glance.tests import databases
from glance.tests.harness import backend_tool
from glance.tests.harness import fixtures

try:
    import rados
    import rbd
except ImportError:
    rados = rbd = None

CLUSTER_TOOL = backend_tool.TOOLS / 'ceph_cluster.py'
GATEWAY_TOOL = backend_tool.TOOLS / 'rgw_gateway.py'
START_TIMEOUT = 60
# What glance_store's rbd driver names the snapshot of each image.
SNAPSHOT = 'snap'
# 8 MiB objects: glance_store's default rbd_store_chunk_size.
ORDER = 23
# Bounds librados's waits, which are infinite by default: a dead cluster
# then fails the test instead of hanging it.
CLIENT_TIMEOUT = 30


unavailable = databases.unavailable


def require_ceph():
    """Raise unavailable() unless the programs and bindings are there."""
    if rados is None or rbd is None:
        raise unavailable('Ceph Python bindings (rados, rbd) not importable: '
                          'run tools/backends/install_backends.sh, then '
                          'tools/backends/ceph_bindings.py with this '
                          'Python (%s)' % sys.executable)
    backend_tool.check_tool(CLUSTER_TOOL)


def require_rgw():
    """Raise unavailable() unless radosgw and the Ceph programs are there."""
    backend_tool.check_tool(GATEWAY_TOOL)


class CephCluster(backend_tool.ToolServers):
    """A one-node Ceph cluster in a temporary directory, killed at cleanup.

    Starting one takes a few seconds: share it between tests (a pytest
    session fixture), and give each test images of its own names.

    :param base_dir: where the cluster's files go; a temporary directory,
        removed at cleanup, by default.
    :param bindings: require the rados and rbd Python bindings as well as
        the Ceph programs; a cluster only for a RADOS Gateway (S3) does
        not need them.
    :ivar conf: the path of a ceph.conf for clients.
    :ivar fsid: the cluster's id, the host part of its rbd:// URLs.
    :ivar pool: the RBD pool, ``images``.
    :ivar user: the client name without ``client.``, ``admin``.
    :ivar dir: the directory holding the cluster's files and logs.
    """

    TOOL = CLUSTER_TOOL
    START_TIMEOUT = START_TIMEOUT

    def __init__(self, base_dir=None, bindings=True):
        super().__init__(base_dir)
        self.bindings = bindings

    def require(self):
        if self.bindings:
            require_ceph()
        else:
            backend_tool.check_tool(CLUSTER_TOOL)

    def started(self, cluster):
        self.conf = cluster['conf']
        self.fsid = cluster['fsid']
        self.pool = cluster['pool']
        self.user = cluster['user']
        self.keyring = cluster['keyring']

    def rbd_pool(self, clone_format=1):
        """An RbdPool on this cluster's pool; close() it when done."""
        return RbdPool(self.conf, self.pool, self.user,
                       clone_format=clone_format)


class RgwGateway(backend_tool.ToolServers):
    """A RADOS Gateway on *cluster*, killed at cleanup (the cluster stays).

    Its files go in the cluster's directory. It serves S3 on loopback,
    path-style, region ``us-east-1``, and has one user whose keys are the
    S3 test helpers' defaults: what a test does with the moto server it
    can do with this.

    :ivar endpoint: ``http://127.0.0.1:PORT``.
    :ivar access_key: the user's access key; ``secret_key`` its secret.
    :ivar pid: the radosgw process.
    """

    TOOL = GATEWAY_TOOL
    START_TIMEOUT = START_TIMEOUT

    def __init__(self, cluster):
        super().__init__(base_dir=cluster.dir)

    def started(self, gateway):
        self.endpoint = gateway['endpoint']
        self.access_key = gateway['access_key']
        self.secret_key = gateway['secret_key']
        [self.pid] = gateway['pids'].values()
        if (self.access_key, self.secret_key) != (fixtures.S3_ACCESS_KEY,
                                                  fixtures.S3_SECRET_KEY):
            raise RuntimeError('%s made a user whose keys are not the S3 '
                               'helpers\' defaults' % self.TOOL)


def parse_url(url):
    """(fsid, pool, image, snapshot) of a glance_store rbd:// URL."""
    parts = urllib.parse.urlsplit(url)
    pieces = [parts.netloc] + parts.path.lstrip('/').split('/')
    if parts.scheme != 'rbd' or len(pieces) != 4:
        raise ValueError('not an rbd://FSID/POOL/IMAGE/SNAP URL: %s' % url)
    return tuple(urllib.parse.unquote(piece) for piece in pieces)


def connect(conf, user, **options):
    """A connected rados.Rados client; shutdown() it when done."""
    client = rados.Rados(conffile=conf, rados_id=user)
    timeout = str(CLIENT_TIMEOUT)
    for name, value in dict(client_mount_timeout=timeout,
                            rados_mon_op_timeout=timeout,
                            rados_osd_op_timeout=timeout,
                            **options).items():
        client.conf_set(name, value)
    client.connect(timeout=CLIENT_TIMEOUT)
    return client


class RbdPool:
    """An RBD pool, reached with the rados and rbd bindings.

    Images are named by the test; put() returns the glance location URL.
    One client connection, held until close().

    :param clone_format: the format of the clones clone() makes
        (``rbd_default_clone_format``). Format 1, the default, is what
        Nova and Cinder get from a cluster like most in production: the
        parent's snapshot cannot be unprotected while a clone exists.
        With format 2 it can, and the parent goes to the RBD trash
        instead.
    """

    def __init__(self, conf, pool, user='admin', clone_format=1):
        self.conf = conf
        self.pool = pool
        self.user = user
        self._client = connect(conf, user,
                               rbd_default_clone_format=str(clone_format))
        try:
            self._ioctx = self._client.open_ioctx(pool)
            self.fsid = self._client.get_fsid()
        except Exception:
            self._client.shutdown()
            raise

    def close(self):
        self._ioctx.close()
        self._client.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def url(self, name):
        """The location URL glance_store gives image *name*."""
        return 'rbd://%s/%s/%s/%s' % tuple(
            urllib.parse.quote(piece, safe='')
            for piece in (self.fsid, self.pool, name, SNAPSHOT))

    def _name(self, url):
        _fsid, pool, name, _snapshot = parse_url(url)
        if pool != self.pool:
            raise ValueError('%s is not in pool %s' % (url, self.pool))
        return name

    def _features(self):
        # What glance_store's driver asks for: the cluster's default.
        return int(self._client.conf_get('rbd_default_features'))

    def put(self, name, data):
        """Store *data* as glance_store's rbd driver does; its URL.

        An image of exactly the data's size, the data written, then a
        protected snapshot (what clones are made from).
        """
        rbd.RBD().create(self._ioctx, name, len(data), order=ORDER,
                         old_format=False, features=self._features())
        with rbd.Image(self._ioctx, name) as image:
            if data:
                image.write(data, 0)
            image.create_snap(SNAPSHOT)
            image.protect_snap(SNAPSHOT)
        return self.url(name)

    def put_sparse(self, name, size, data):
        """An image of *size* bytes with *data* written at its start.

        Laid out as put() does; for images larger than what they hold,
        as most Glance images are once a sparse upload is done.
        """
        rbd.RBD().create(self._ioctx, name, size, order=ORDER,
                         old_format=False, features=self._features())
        with rbd.Image(self._ioctx, name) as image:
            image.write(data, 0)
            image.create_snap(SNAPSHOT)
            image.protect_snap(SNAPSHOT)
        return self.url(name)

    def exists(self, url):
        """Whether the image of *url* exists (its snapshot may not)."""
        try:
            with rbd.Image(self._ioctx, self._name(url), read_only=True):
                return True
        except rbd.ImageNotFound:
            return False

    def read(self, url):
        """The whole content of the image of *url*."""
        with rbd.Image(self._ioctx, self._name(url),
                       read_only=True) as image:
            return image.read(0, image.size())

    def snapshots(self, url):
        """The names of the snapshots of the image of *url*."""
        with rbd.Image(self._ioctx, self._name(url),
                       read_only=True) as image:
            return sorted(snap['name'] for snap in image.list_snaps())

    def clone(self, url, child_name):
        """A copy-on-write clone of the image's protected snapshot.

        What Nova and Cinder make for a VM disk or a volume: the parent is
        in use until remove_clone().
        """
        snapshot = parse_url(url)[3]
        rbd.RBD().clone(self._ioctx, self._name(url), snapshot,
                        self._ioctx, child_name, features=self._features(),
                        order=ORDER)
        return child_name

    def remove_clone(self, child_name):
        rbd.RBD().remove(self._ioctx, child_name)

    def trash_clone(self, child_name):
        """Move a clone to the RBD trash, where it still reads its parent."""
        rbd.RBD().trash_move(self._ioctx, child_name)

    @contextlib.contextmanager
    def open_by_another_client(self, url, exclusive_lock=False):
        """Keep the image open in a client connection of its own.

        Opening an image for writing registers a watch on its header, so
        the image is in use (as a running VM's disk is) for as long as
        the context lasts. A connection of its own: librbd does not count
        the watch of the client that asks for the removal.

        :param exclusive_lock: also take the image's exclusive lock and
            keep it (``rbd_lock_acquire``: not given up when another
            client asks for it).
        """
        client = connect(self.conf, self.user)
        try:
            with client.open_ioctx(self.pool) as ioctx:
                with rbd.Image(ioctx, self._name(url)) as image:
                    if exclusive_lock:
                        image.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
                    yield image
        finally:
            client.shutdown()

    def names(self):
        """The names of all images in the pool, sorted."""
        return sorted(rbd.RBD().list(self._ioctx))

    def remove(self, url):
        """Remove the image of *url* and its snapshots, behind Glance's back.

        What an operator cleaning the pool by hand does.
        """
        name = self._name(url)
        with rbd.Image(self._ioctx, name) as image:
            for snap in list(image.list_snaps()):
                if image.is_protected_snap(snap['name']):
                    image.unprotect_snap(snap['name'])
                image.remove_snap(snap['name'])
        rbd.RBD().remove(self._ioctx, name)

    def _trash(self):
        return {entry['name']: entry['id']
                for entry in rbd.RBD().trash_list(self._ioctx)}

    def in_trash(self, url):
        """Whether the image of *url* is in the pool's RBD trash.

        There its data is kept, out of list(), until the trash is purged.
        """
        return self._name(url) in self._trash()


def client_conf(cluster, path, options):
    """Write a ceph.conf for clients: the cluster's plus [client] *options*.

    For what only the scrubber's connection should see, such as a network
    delay injected on the client side (``ms inject delay ...``).

    :returns: *path*, as a string.
    """
    with open(cluster.conf) as conf:
        text = conf.read()
    with open(path, 'w') as conf:
        conf.write(text + '\n[client]\n' + ''.join(
            '%s = %s\n' % option for option in options.items()))
    return str(path)


def rbd_store_options(cluster):
    """glance_store's options for an rbd store in *cluster*'s pool."""
    return {'rbd_store_pool': cluster.pool, 'rbd_store_user': cluster.user,
            'rbd_store_ceph_conf': cluster.conf}


def use_rbd_store(config, cluster):
    """Make the single store of a ScrubberConfig the cluster's rbd store."""
    config.set('glance_store', stores='rbd', default_store='rbd',
               filesystem_store_datadir=None, **rbd_store_options(cluster))
    return config


class GlanceStoreRbd:
    """Images added by glance_store's rbd driver, as glance-api adds them.

    A protected snapshot ``snap`` on each, the URL
    ``rbd://FSID/POOL/IMAGE/snap`` and, with a backend name, the location
    metadata ``{'store': backend}``. The driver runs in the test process,
    on a configuration of its own. put(), url() and exists() make it a
    store helper for scenario.Placement; what it checks goes through
    *pool*, not glance_store.

    :param pool: an RbdPool of the same cluster and pool.
    :param backend: the backend name in a multi-store configuration;
        None for a single store.
    """

    def __init__(self, cluster, pool, backend=None):
        self._pool = pool
        group = backend or 'glance_store'
        conf = cfg.ConfigOpts()
        conf.register_opts(rbd_driver.Store.OPTIONS, group=group)
        conf([], project='glance', default_config_files=[],
             default_config_dirs=[])
        for name, value in rbd_store_options(cluster).items():
            conf.set_override(name, value, group=group)
        self._store = rbd_driver.Store(conf, backend=backend)
        self._store.configure(re_raise_bsc=True)

    def add(self, image_id, data):
        """Store *data* as image *image_id*: (URL, location metadata)."""
        url, _size, _checksum, _hash, metadata = self._store.add(
            image_id, io.BytesIO(data), len(data), 'sha256')
        return url, metadata

    def put(self, name, data):
        return self.add(name, data)[0]

    def url(self, name):
        return self._pool.url(name)

    def exists(self, url):
        return self._pool.exists(url)
