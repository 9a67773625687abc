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

"""A Ceph RADOS Gateway (S3) on the cluster of ceph_cluster.py.

    python tools/backends/ceph_cluster.py start DIR
    python tools/backends/rgw_gateway.py start DIR
    python tools/backends/rgw_gateway.py stop DIR
    python tools/backends/rgw_gateway.py check

``start`` runs one radosgw on the cluster already running under DIR (its
files go there too), serving S3 on a free loopback port, creates the S3
user ``glance`` with the access and secret keys of the functional tests'
S3 fixtures, waits until the gateway answers HTTP and prints one JSON
object::

    {"endpoint": "http://127.0.0.1:PORT", "access_key": ...,
     "secret_key": ..., "user": "glance", "dir": ..., "pids": {...}}

The gateway creates its pools on its first start (the cluster's defaults,
one copy and 8 placement groups each, suit it); buckets are the client's
to create, with path-style addressing and the region ``us-east-1``.

``stop`` kills the gateway only, with SIGKILL, and leaves the cluster
running; ``ceph_cluster.py stop DIR`` kills the gateway with the rest.
``check`` only tells whether radosgw and the Ceph programs are installed.

Exit status as ceph_cluster.py: 0 done; 1 the gateway did not come up
(one line on stderr says why; the gateway is killed again) or would not
die; 2 bad usage; 3 a program is missing (tools/backends/
install_backends.sh installs them).

Standard library only, so any Python 3 can run it.
"""

import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request

import backend_daemons as daemons
from backend_daemons import ClusterError
from backend_daemons import LOOPBACK
import ceph_cluster

BINARIES = ('radosgw', 'radosgw-admin')
# A client name of its own: the gateway's log, admin socket and pid file
# are told from the cluster's by it.
NAME = 'client.rgw.a'
DAEMON = 'ceph-' + NAME
# The S3 user, and the keys the functional tests sign their requests
# with (glance.tests.harness.fixtures.S3_ACCESS_KEY, S3_SECRET_KEY).
S3_USER = 'glance'
ACCESS_KEY = 'AKIAGLANCETEST'
SECRET_KEY = 'glance-test-secret'
START_TIMEOUT = 60
# radosgw and radosgw-admin want a secure connection mode by default, and
# a cluster without authentication cannot give one: without these they
# retry their monitor session forever ("get_initial_auth_request returned
# -13") and the gateway never serves. The ceph and rbd tools do not need
# them.
CONNECTION_MODES = ('--ms-mon-client-mode', 'crc', '--ms-client-mode', 'crc')
# The gateway's request threads (512 by default): a test gateway on a
# small machine serves a few requests at a time.
THREADS = 64
PROBE_TIMEOUT = 2
# Loopback: never through a proxy the environment may name.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Layout(ceph_cluster.Layout):
    """The cluster's folder, in which only the gateway's pid file counts.

    So that stop() kills the gateway and drops its pid file alone, while
    the cluster's stop, which reads every pid file under DIR, kills the
    gateway too.
    """

    def __init__(self, root):
        super().__init__(root)
        self.rgw_data = os.path.join(self.root, 'rgw.a')

    def pid_files(self):
        pid_file = self.pid_file(DAEMON)
        return [pid_file] if os.path.exists(pid_file) else []


def check_programs():
    ceph_cluster.check_programs()
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        raise daemons.Missing('Ceph RGW programs not found: %s (run '
                              'tools/backends/install_backends.sh)'
                              % ' '.join(missing))


def running_daemons(layout):
    return daemons.running_daemons(
        layout, lambda pid_file: ceph_cluster.ours(layout, pid_file))


def require_cluster(layout):
    cluster = ceph_cluster.running_daemons(ceph_cluster.Layout(layout.root))
    if not any(name.startswith('ceph-mon.') for name in cluster):
        raise ClusterError('no Ceph cluster runs under %s: start one with '
                           'ceph_cluster.py start %s' % (layout.root,
                                                         layout.root))
    if running_daemons(layout):
        raise ClusterError('a gateway already runs under %s' % layout.root)
    # Left by a gateway that died on its own: the start waits for a new one.
    for stale in layout.pid_files():
        os.remove(stale)


def start_gateway(layout, deadline, port):
    os.makedirs(layout.rgw_data, exist_ok=True)
    ceph_cluster.start_daemon(
        layout, deadline, 'radosgw', NAME, '--name', NAME,
        *CONNECTION_MODES,
        '--pid-file', layout.pid_file(DAEMON),
        '--rgw-data', layout.rgw_data,
        '--rgw-frontends', 'beast endpoint=%s:%d' % (LOOPBACK, port),
        '--rgw-thread-pool-size', str(THREADS))


def answers(endpoint):
    """Whether the gateway answers HTTP at *endpoint* (any status)."""
    try:
        with OPENER.open(endpoint + '/', timeout=PROBE_TIMEOUT):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def wait_for_gateway(layout, deadline, endpoint):
    """Wait until the gateway serves: it connects to the cluster first.

    Unlike the monitor and the OSD, radosgw's first process exits as soon
    as it has forked, before the daemon writes its pid file: no pid file
    yet is no failure.
    """
    while not answers(endpoint):
        if layout.pid_files() and not running_daemons(layout):
            raise ClusterError('radosgw exited: %s (see %s)' % (
                daemons.last_line(read_log(layout)), layout.log_dir))
        deadline.left('waiting for radosgw on %s' % endpoint)
        time.sleep(0.1)


def read_log(layout):
    path = os.path.join(layout.log_dir, 'ceph-%s.log' % NAME)
    try:
        with open(path, errors='replace') as log:
            return log.read()
    except OSError:
        return ''


def radosgw_admin(layout, deadline, *arguments):
    return ceph_cluster.run(
        ['radosgw-admin', '--conf', layout.conf, '--name', NAME]
        + list(CONNECTION_MODES) + list(arguments),
        deadline, 'radosgw-admin ' + ' '.join(arguments[:2]))


def make_user(layout, deadline):
    """The S3 user with the tests' keys; kept if a former start made it."""
    users = json.loads(radosgw_admin(layout, deadline, 'user', 'list'))
    if S3_USER in users:
        return
    radosgw_admin(layout, deadline, 'user', 'create', '--uid', S3_USER,
                  '--display-name', S3_USER, '--access-key', ACCESS_KEY,
                  '--secret-key', SECRET_KEY)


def start(root, timeout=START_TIMEOUT):
    check_programs()
    layout = Layout(root)
    deadline = daemons.Deadline(timeout)
    require_cluster(layout)
    port = daemons.free_port_block(1)
    endpoint = 'http://%s:%d' % (LOOPBACK, port)
    try:
        start_gateway(layout, deadline, port)
        wait_for_gateway(layout, deadline, endpoint)
        make_user(layout, deadline)
    except BaseException:
        stop(root)
        raise
    return {'endpoint': endpoint, 'access_key': ACCESS_KEY,
            'secret_key': SECRET_KEY, 'user': S3_USER, 'dir': layout.root,
            'pids': running_daemons(layout)}


def stop(root):
    layout = Layout(root)
    return daemons.kill(layout, running_daemons(layout))


def main(argv=None):
    return daemons.command_line(
        'rgw_gateway.py', 'Start or stop a Ceph RADOS Gateway (S3) on the '
        'cluster that ceph_cluster.py runs under DIR, or check that it is '
        'installed.', start, stop, check_programs, argv)


if __name__ == '__main__':
    sys.exit(main())
