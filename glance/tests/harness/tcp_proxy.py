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

"""A TCP proxy in front of a database server, to take it away on purpose.

The database servers of the machine are shared: a test cannot restart or
freeze them. Seen from the scrubber, what matters is the connection, so
the proxy plays the outage:

* cut(): every connection is closed at once and new ones are refused
  (the listening socket is closed) until restore(), as a server restart
  does;
* freeze(): connections stay open and new ones are accepted, but no byte
  moves either way until thaw(), as a server stopped with SIGSTOP or a
  network that drops everything.
"""

import select
import socket
import threading

import fixtures
import sqlalchemy as sa

from glance.tests.harness.fixtures import LOOPBACK

CHUNK = 65536


class TcpProxy(fixtures.Fixture):
    """Forwards 127.0.0.1:port to *upstream* (host, port)."""

    def __init__(self, upstream):
        super().__init__()
        self.upstream = upstream
        self._lock = threading.Lock()
        self._moving = threading.Event()
        self._moving.set()
        self._sockets = set()
        self._listener = None
        self.connections = 0

    def _setUp(self):
        self.port = None
        self._listen()
        self.addCleanup(self._close_all)
        self.addCleanup(self._stop_listening)
        self.addCleanup(self.thaw)

    # outages

    def cut(self):
        """Close every connection and refuse new ones until restore()."""
        self._stop_listening()
        self._close_all()

    def restore(self):
        self._listen()

    def freeze(self):
        self._moving.clear()

    def thaw(self):
        self._moving.set()

    # the proxy

    def _listen(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port or 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,),
                         daemon=True).start()

    def _stop_listening(self):
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown() wakes the thread blocked in accept().
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _close_all(self):
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener):
        while True:
            try:
                client, _address = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, server),
                             daemon=True).start()

    def _pump(self, client, server):
        peers = {client: server, server: client}
        try:
            while True:
                readable, _w, _x = select.select(list(peers), [], [], 0.5)
                if not self._moving.is_set():
                    self._moving.wait()
                    continue
                for sock in readable:
                    data = sock.recv(CHUNK)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._sockets.discard(client)
                self._sockets.discard(server)
            client.close()
            server.close()

    def url_for(self, database_url):
        """*database_url* with its host and port replaced by the proxy's."""
        url = sa.engine.make_url(database_url)
        return url.set(host=LOOPBACK, port=self.port).render_as_string(
            hide_password=False)
