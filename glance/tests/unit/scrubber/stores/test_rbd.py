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

"""One RADOS connection per rbd store, shared by the workers.

The store here is a stand-in with the driver's get_connection (a context
manager per call); the real driver's side is pinned in
glance/tests/unit/test_compat.py, and the real cluster is in
glance/tests/functional/test_rbd.py (RADOS clients counted).
"""

import contextlib
import threading

import testtools

from glance.scrubber.stores import rbd

WORKERS = 8
WAIT = 10


class FakeRbdStore:
    """Opens numbered clients the way the driver does, and counts them."""

    conf_file = '/etc/ceph/ceph.conf'
    user = 'glance'

    def __init__(self, failures=0):
        self.opened = []
        self.shut_down = []
        self._failures = failures

    @contextlib.contextmanager
    def get_connection(self, conffile, rados_id):
        if self._failures:
            self._failures -= 1
            raise OSError('cluster unreachable')
        client = 'client-%d' % (len(self.opened) + 1)
        self.opened.append((conffile, rados_id))
        try:
            yield client
        finally:
            self.shut_down.append(client)


class TestSharedCluster(testtools.TestCase):

    def test_workers_share_one_connection_opened_at_first_use(self):
        store = FakeRbdStore()
        cluster = rbd._SharedCluster(store)
        self.assertEqual([], store.opened)
        barrier = threading.Barrier(WORKERS)
        seen = []

        def worker():
            barrier.wait(WAIT)
            with cluster.connection() as client:
                seen.append(client)

        threads = [threading.Thread(target=worker) for _n in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)

        self.assertEqual([('/etc/ceph/ceph.conf', 'glance')], store.opened)
        self.assertEqual(['client-1'] * WORKERS, seen)

    def test_the_driver_s_own_calls_take_the_shared_connection(self):
        store = FakeRbdStore()
        cluster = rbd._SharedCluster(store)
        with cluster.connection() as shared:
            pass

        with store.get_connection(conffile='other.conf',
                                  rados_id='other') as client:
            self.assertEqual(shared, client)
        self.assertEqual(1, len(store.opened))
        self.assertEqual([], store.shut_down)

    def test_close_shuts_the_connection_down(self):
        store = FakeRbdStore()
        cluster = rbd._SharedCluster(store)
        with cluster.connection():
            pass

        self.assertTrue(cluster.close())
        self.assertEqual(['client-1'], store.shut_down)

    def test_close_leaves_a_connection_a_call_is_still_inside(self):
        store = FakeRbdStore()
        cluster = rbd._SharedCluster(store)

        with cluster.connection():
            # A call given up on (scrub_store_timeout) still inside it.
            self.assertFalse(cluster.close())
        self.assertEqual([], store.shut_down)
        self.assertTrue(cluster.close())
        self.assertEqual(['client-1'], store.shut_down)

    def test_a_connection_that_failed_to_open_is_opened_at_the_next_use(
            self):
        store = FakeRbdStore(failures=1)
        cluster = rbd._SharedCluster(store)

        def use():
            with cluster.connection():
                pass

        self.assertRaises(OSError, use)
        with cluster.connection() as client:
            self.assertEqual('client-1', client)

    def test_closing_a_connection_never_opened_does_nothing(self):
        store = FakeRbdStore()

        self.assertTrue(rbd._SharedCluster(store).close())
        self.assertEqual([], store.opened)


class TestSharedRbdStores(testtools.TestCase):

    def test_close_counts_the_connections_left_open(self):
        stores = rbd.SharedRbdStores()
        busy, idle = FakeRbdStore(), FakeRbdStore()
        clusters = {'busy': (busy, rbd._SharedCluster(busy)),
                    'idle': (idle, rbd._SharedCluster(idle))}
        stores._stores.update(clusters)
        with clusters['idle'][1].connection():
            pass

        with clusters['busy'][1].connection():
            self.assertEqual(1, stores.close())
        self.assertEqual(['client-1'], idle.shut_down)
        self.assertEqual([], busy.shut_down)
