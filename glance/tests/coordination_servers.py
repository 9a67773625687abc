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

"""Coordination backends for the several-scrubbers tests: real servers.

- the machine's Redis (127.0.0.1:6379, or GLANCE_TEST_REDIS_URL), shared:
  each test uses a group name of its own; when it does not answer, a
  redis-server this test process starts once instead;
- a redis-server or an etcd (Debian's redis-server and etcd-server) the
  test starts on ports of its own, in a folder of its own, to stop and
  start again on purpose.

A missing program or server skips the test, except under CI (CI=true),
where it fails it (tools/backends/install_backends.sh installs them).
"""

import atexit
import os
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
import uuid

import fixtures

from glance.tests import databases
from glance.tests.harness.fixtures import free_port
from glance.tests.harness.fixtures import LOOPBACK
from glance.tests.harness.fixtures import wait_until

SHARED_REDIS_URL = os.environ.get('GLANCE_TEST_REDIS_URL',
                                  'redis://127.0.0.1:6379')
# How soon a silent member is thought dead, in the tests: short, so that a
# killed member's share moves within seconds.
MEMBERSHIP_TIMEOUT = 3
START_TIMEOUT = 30


unavailable = databases.unavailable


def unique_group():
    return 'glance-scrubber-test-%s' % uuid.uuid4().hex[:12]


def with_membership_timeout(url):
    separator = '&' if '?' in url else '?'
    return '%s%smembership_timeout=%d' % (url, separator, MEMBERSHIP_TIMEOUT)


def shared_redis_url():
    """The machine's Redis if it answers, else a redis-server of our own.

    The machine's Redis is a service the tests share, not one they own: if
    it is down, the tests still run against a real Redis, started once for
    this test process and killed when it exits.
    """
    parts = urllib.parse.urlsplit(SHARED_REDIS_URL)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379),
                                      timeout=2):
            pass
    except OSError:
        return _process_redis().url
    return with_membership_timeout(SHARED_REDIS_URL)


_PROCESS_REDIS = []


def _process_redis():
    if not _PROCESS_REDIS:
        redis = RedisServer()
        redis.setUp()
        atexit.register(redis.cleanUp)
        _PROCESS_REDIS.append(redis)
    return _PROCESS_REDIS[0]


def _program(name):
    path = shutil.which(name)
    if path is None:
        raise unavailable('%s not installed: run '
                          'tools/backends/install_backends.sh as root' % name)
    return path


class _Server(fixtures.Fixture):
    """A server process of the test's own; stop() and start() at will."""

    def _setUp(self):
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.port = free_port()
        self.process = None
        self.addCleanup(self.stop)
        self.start()

    def start(self):
        log = open(os.path.join(self.folder, 'server.log'), 'a')
        try:
            self.process = subprocess.Popen(
                self.command(), cwd=self.folder, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        wait_until(self._ready, START_TIMEOUT, interval=0.1,
                   what='%s on port %d' % (type(self).__name__, self.port))

    def stop(self):
        """SIGKILL: the backend is gone, as a crash would leave it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _ready(self):
        if self.process.poll() is not None:
            with open(os.path.join(self.folder, 'server.log')) as log:
                raise RuntimeError('%s exited: %s' % (type(self).__name__,
                                                      log.read()[-2000:]))
        return self.answers()


class RedisServer(_Server):
    """redis-server on a free port, keeping nothing on disk."""

    def command(self):
        return [_program('redis-server'), '--port', str(self.port),
                '--bind', LOOPBACK, '--save', '', '--appendonly', 'no']

    def answers(self):
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) \
                    as connection:
                connection.sendall(b'PING\r\n')
                return connection.recv(16).startswith(b'+PONG')
        except OSError:
            return False

    @property
    def url(self):
        return with_membership_timeout('redis://%s:%d' % (LOOPBACK,
                                                          self.port))


class EtcdServer(_Server):
    """A one-member etcd on free ports, its data in the test's folder."""

    def command(self):
        # The same peer port at every start: the data dir remembers it.
        if not hasattr(self, 'peer_port'):
            self.peer_port = free_port()
        peer_port = self.peer_port
        return [_program('etcd'), '--name', 'test',
                '--data-dir', os.path.join(self.folder, 'data'),
                '--listen-client-urls', self.endpoint,
                '--advertise-client-urls', self.endpoint,
                '--listen-peer-urls', 'http://%s:%d' % (LOOPBACK, peer_port),
                '--initial-advertise-peer-urls',
                'http://%s:%d' % (LOOPBACK, peer_port),
                '--initial-cluster',
                'test=http://%s:%d' % (LOOPBACK, peer_port)]

    @property
    def endpoint(self):
        return 'http://%s:%d' % (LOOPBACK, self.port)

    def answers(self):
        try:
            with urllib.request.urlopen(self.endpoint + '/health',
                                        timeout=1) as response:
                return b'true' in response.read()
        except OSError:
            return False

    @property
    def url(self):
        return with_membership_timeout('etcd3+http://%s:%d' % (LOOPBACK,
                                                               self.port))
