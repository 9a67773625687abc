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

"""A throw-away one-node Ceph cluster, for tests that use RBD.

    python tools/backends/ceph_cluster.py start DIR
    python tools/backends/ceph_cluster.py stop DIR
    python tools/backends/ceph_cluster.py check

``start`` runs one monitor and one OSD as plain processes, with every file
they use under DIR (which it creates if needed), on the loopback
interface with free ports, without authentication. The OSD keeps its data
in memory (memstore): a test cluster holds little, and nothing survives
``stop``. It then creates the pool ``images`` and initialises it for RBD,
and prints on stdout one JSON object::

    {"conf": ..., "fsid": ..., "pool": "images", "keyring": ...,
     "user": "admin", "dir": ..., "pids": {...}}

``conf`` is a ceph.conf that clients (glance_store, the rbd tool, the
rados bindings) can use as is. No ceph-mgr runs: RBD does not need it
(only the usage statistics of ``ceph df`` stay at zero).

``stop`` kills the daemons whose pid files are under DIR, with SIGKILL:
a memstore OSD asked to stop writes its whole content to disk first, which
is slow and pointless here. It leaves the files (logs) in DIR.

``check`` only tells whether the Ceph programs are installed.

Exit status: 0 done; 1 the cluster did not come up (one line on stderr
says why; whatever was started is killed again) or a daemon would not
die; 2 bad usage; 3 a Ceph program is missing
(tools/backends/install_backends.sh installs them).

Standard library only, so any Python 3 can run it.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import backend_daemons as daemons
from backend_daemons import ClusterError
from backend_daemons import LOOPBACK

BINARIES = ('ceph-authtool', 'monmaptool', 'ceph-mon', 'ceph-osd', 'ceph',
            'rbd')
POOL = 'images'
PG_NUM = 8
USER = 'admin'
MON_ID = 'a'
START_TIMEOUT = 60
# The monitor's two ports (msgr2, then msgr1), then the range the OSD
# binds its eight sockets in (public, cluster and two heartbeat
# addresses, each for both protocols), with room to spare.
PORT_BLOCK = 2 + 16


class Layout(daemons.DaemonFolder):
    """Where everything of the cluster lives under *root*."""

    def __init__(self, root):
        super().__init__(root)
        self.conf = os.path.join(self.root, 'ceph.conf')
        self.keyring = os.path.join(self.root, 'keyring')
        self.monmap = os.path.join(self.root, 'monmap')
        self.mon_data = os.path.join(self.root, 'mon.' + MON_ID)

    def osd_data(self, osd_id):
        return os.path.join(self.root, 'osd.%s' % osd_id)


# --- configuration ----------------------------------------------------------


def mon_address(port):
    return '[v2:%s:%d,v1:%s:%d]' % (LOOPBACK, port, LOOPBACK, port + 1)


def ceph_conf(layout, fsid, first_port):
    """The text of the ceph.conf shared by the daemons and the clients."""
    osd_ports = first_port + 2
    sections = [
        ('global', [
            ('fsid', fsid),
            ('mon host', mon_address(first_port)),
            ('public addr', LOOPBACK),
            ('cluster addr', LOOPBACK),
            ('ms bind port min', osd_ports),
            ('ms bind port max', first_port + PORT_BLOCK - 1),
            # A test cluster on loopback: cephx would only add keys to
            # hand around.
            ('auth cluster required', 'none'),
            ('auth service required', 'none'),
            ('auth client required', 'none'),
            ('keyring', layout.keyring),
            ('run dir', layout.run_dir),
            ('log file', os.path.join(layout.log_dir, '$cluster-$name.log')),
            # One OSD: every pool has one copy, and placement picks OSDs,
            # not hosts.
            ('osd pool default size', 1),
            ('osd pool default min size', 1),
            ('osd pool default pg num', PG_NUM),
            ('osd pool default pgp num', PG_NUM),
            # The autoscaler lives in ceph-mgr, which does not run.
            ('osd pool default pg autoscale mode', 'off'),
            ('osd crush chooseleaf type', 0),
            ('mon allow pool size one', 'true'),
            ('mon allow pool delete', 'true'),
            # layering, exclusive-lock, object-map, fast-diff,
            # deep-flatten: what a production cluster gives RBD images.
            ('rbd default features', 61),
        ]),
        ('mon', [
            ('mon data', layout.mon_data),
            ('pid file', layout.pid_file('$cluster-$name')),
            # The monitor refuses to start on a disk less than 5 % free,
            # which a CI machine's may be; a test cluster writes little.
            ('mon data avail crit', 0),
            # The monitor batches map changes for a second by default;
            # a start makes a dozen changes one after the other.
            ('paxos propose interval', 0.1),
            # Expected of a one-copy cluster without cephx: silenced so
            # that "ceph health" says HEALTH_OK when all is well.
            ('mon warn on pool no redundancy', 'false'),
            ('mon warn on insecure global id reclaim allowed', 'false'),
        ]),
        ('osd', [
            ('osd data', os.path.join(layout.root, 'osd.$id')),
            ('pid file', layout.pid_file('$cluster-$name')),
            ('osd objectstore', 'memstore'),
            # The capacity the OSD reports; memory is used only as data
            # is written.
            ('memstore device bytes', 3 * 1024 ** 3),
            # The smallest target Ceph accepts, and one shard: the OSD of
            # a test needs neither big caches nor many threads.
            ('osd memory target', 896 * 1024 ** 2),
            ('osd op num shards', 1),
        ]),
    ]
    lines = []
    for section, options in sections:
        lines.append('[%s]' % section)
        lines.extend('%s = %s' % option for option in options)
        lines.append('')
    return '\n'.join(lines)


# --- running programs -------------------------------------------------------


def check_programs():
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        raise daemons.Missing('Ceph programs not found: %s (run '
                              'tools/backends/install_backends.sh)'
                              % ' '.join(missing))


def run(command, deadline, what):
    """Run *command* to completion; its stdout, or ClusterError."""
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True,
                              timeout=deadline.left(what))
    except subprocess.TimeoutExpired:
        raise ClusterError('%s: cluster not up within %s s'
                           % (what, deadline.seconds))
    if done.returncode != 0:
        raise ClusterError('%s failed (exit %s): %s' % (
            what, done.returncode,
            daemons.last_line(done.stderr or done.stdout)))
    return done.stdout


def ceph(layout, deadline, *arguments):
    """The ceph tool against this cluster; its stdout."""
    timeout = max(1, int(deadline.left('ceph ' + ' '.join(arguments))))
    return run(['ceph', '--conf', layout.conf, '--connect-timeout',
                str(timeout)] + list(arguments),
               deadline, 'ceph ' + ' '.join(arguments))


def start_daemon(layout, deadline, program, name, *arguments):
    """Start a daemon, which runs on in the background.

    A Ceph daemon forks, and its first process exits only once the daemon
    is initialised: one that cannot start fails here, with its reason.
    """
    with open(layout.output_of(name), 'w') as output:
        try:
            done = subprocess.run(
                [program, '--conf', layout.conf] + list(arguments),
                stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                start_new_session=True, timeout=deadline.left(name))
        except subprocess.TimeoutExpired:
            raise ClusterError('%s: not started within %s s'
                               % (name, deadline.seconds))
    if done.returncode != 0:
        with open(layout.output_of(name)) as output:
            reason = daemons.last_line(output.read())
        raise ClusterError('%s exited with %s: %s (see %s)' % (
            name, done.returncode, reason, layout.log_dir))


# --- the steps of start -----------------------------------------------------


def prepare(layout, fsid):
    for folder in (layout.root, layout.run_dir, layout.log_dir):
        os.makedirs(folder, exist_ok=True)
    if layout.pid_files() or os.path.exists(layout.mon_data):
        raise ClusterError('%s already holds a cluster: stop it and use '
                           'an empty directory' % layout.root)
    port = daemons.free_port_block(PORT_BLOCK)
    with open(layout.conf, 'w') as conf_file:
        conf_file.write(ceph_conf(layout, fsid, port))
    return port


def make_monitor(layout, deadline, fsid, port):
    run(['ceph-authtool', '--create-keyring', layout.keyring, '--gen-key',
         '-n', 'mon.', '--cap', 'mon', 'allow *'], deadline, 'keyring')
    run(['ceph-authtool', layout.keyring, '--gen-key', '-n',
         'client.' + USER, '--cap', 'mon', 'allow *', '--cap', 'osd',
         'allow *', '--cap', 'mds', 'allow *', '--cap', 'mgr', 'allow *'],
        deadline, 'keyring')
    run(['monmaptool', '--create', '--fsid', fsid, '--addv', MON_ID,
         mon_address(port), layout.monmap], deadline, 'monmap')
    run(['ceph-mon', '--conf', layout.conf, '--mkfs', '-i', MON_ID,
         '--monmap', layout.monmap, '--keyring', layout.keyring],
        deadline, 'ceph-mon --mkfs')
    start_daemon(layout, deadline, 'ceph-mon', 'mon.' + MON_ID,
                 '-i', MON_ID)


def make_osd(layout, deadline):
    """Register a new OSD with the monitor, then create and start it."""
    osd_uuid = str(uuid.uuid4())
    osd_id = ceph(layout, deadline, 'osd', 'new', osd_uuid).strip()
    os.makedirs(layout.osd_data(osd_id), exist_ok=True)
    run(['ceph-osd', '--conf', layout.conf, '-i', osd_id, '--mkfs',
         '--osd-uuid', osd_uuid], deadline, 'ceph-osd --mkfs')
    start_daemon(layout, deadline, 'ceph-osd', 'osd.' + osd_id,
                 '-i', osd_id)


def wait_for_osd(layout, deadline):
    while True:
        status = json.loads(ceph(layout, deadline, 'osd', 'stat',
                                 '--format', 'json'))
        if status.get('num_up_osds') == 1:
            return
        deadline.left('waiting for the OSD to be up')
        time.sleep(0.2)


def make_pool(layout, deadline):
    ceph(layout, deadline, 'osd', 'pool', 'create', POOL, str(PG_NUM),
         str(PG_NUM))
    run(['rbd', '--conf', layout.conf, 'pool', 'init', POOL], deadline,
        'rbd pool init ' + POOL)


def start(root, timeout=START_TIMEOUT):
    check_programs()
    layout = Layout(root)
    deadline = daemons.Deadline(timeout)
    fsid = str(uuid.uuid4())
    port = prepare(layout, fsid)
    try:
        make_monitor(layout, deadline, fsid, port)
        make_osd(layout, deadline)
        wait_for_osd(layout, deadline)
        make_pool(layout, deadline)
    except BaseException:
        stop(root)
        raise
    return {'conf': layout.conf, 'fsid': fsid, 'pool': POOL,
            'keyring': layout.keyring, 'user': USER, 'dir': layout.root,
            'pids': running_daemons(layout)}


# --- stop -------------------------------------------------------------------


def running_daemons(layout):
    """{daemon name: pid} of the live daemons of this cluster."""
    return daemons.running_daemons(
        layout, lambda pid_file: ours(layout, pid_file))


def ours(layout, pid_file):
    """The pid in *pid_file* if that process is a daemon of this cluster.

    The pid could have been reused since the daemon died: only a process
    started with this cluster's ceph.conf is ours.
    """
    try:
        with open(pid_file) as source:
            pid = int(source.read().strip())
        with open('/proc/%d/cmdline' % pid, 'rb') as source:
            arguments = source.read().split(b'\0')
    except (OSError, ValueError):
        return None
    if os.fsencode(layout.conf) in arguments and daemons.alive(pid):
        return pid
    return None


def stop(root):
    layout = Layout(root)
    return daemons.kill(layout, running_daemons(layout))


def main(argv=None):
    return daemons.command_line(
        'ceph_cluster.py', 'Start or stop a one-node Ceph cluster under '
        'DIR, or check that Ceph is installed.', start, stop,
        check_programs, argv)


if __name__ == '__main__':
    sys.exit(main())
