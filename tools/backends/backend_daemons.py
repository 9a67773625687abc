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

"""What the backend tools share: daemons under a folder, ports, the CLI.

ceph_cluster.py and swift_cluster.py each start servers as plain
processes, every file under one folder, and stop exactly those later
(from another process: the test fixture's cleanup). This module holds
their common ground: the folder's pid files and logs, a deadline for the
whole start, free loopback ports, telling a daemon from a stranger that
reused its pid, the stop, and the ``start|stop|check DIR`` command line.

Standard library only: it runs before anything is installed.
"""

import argparse
import json
import os
import random
import signal
import socket
import sys
import time

LOOPBACK = '127.0.0.1'
STOP_TIMEOUT = 10
# Below Linux's default ephemeral range (32768-60999), so the ports are
# not handed to some outgoing connection between the check and the bind.
PORT_FIRST, PORT_LAST = 10000, 32000
EXIT_FAILED = 1
EXIT_MISSING = 3


class ClusterError(Exception):
    """The servers could not be started or stopped; one line."""

    exit_status = EXIT_FAILED


class Missing(ClusterError):
    """A program or library the servers need is not installed."""

    exit_status = EXIT_MISSING


class DaemonFolder:
    """The pid files and outputs of the daemons started under *root*."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.run_dir = os.path.join(self.root, 'run')
        self.log_dir = os.path.join(self.root, 'log')

    def pid_file(self, name):
        return os.path.join(self.run_dir, '%s.pid' % name)

    def pid_files(self):
        if not os.path.isdir(self.run_dir):
            return []
        return sorted(os.path.join(self.run_dir, entry)
                      for entry in os.listdir(self.run_dir)
                      if entry.endswith('.pid'))

    def output_of(self, name):
        """Where a daemon's stdout and stderr go."""
        return os.path.join(self.log_dir, '%s.out' % name)


class Deadline:
    """The time left for the whole start, for each step to use."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, what):
        left = self.end - time.monotonic()
        if left <= 0:
            raise ClusterError('%s: not up within %s s'
                               % (what, self.seconds))
        return left


def free_port_block(size):
    """The first of *size* consecutive loopback ports free right now."""
    for _attempt in range(50):
        first = random.randint(PORT_FIRST, PORT_LAST - size)
        if all(port_is_free(port) for port in range(first, first + size)):
            return first
    raise ClusterError('no block of %d free ports found on %s'
                       % (size, LOOPBACK))


def port_is_free(port):
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def last_line(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else 'no output'


def alive(pid):
    """Whether *pid* runs; a zombie (killed, not yet reaped) does not."""
    try:
        with open('/proc/%d/stat' % pid) as source:
            stat = source.read()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself
    # hold spaces or parentheses.
    return stat[stat.rindex(')') + 2] not in 'ZX'


def running_daemons(folder, ours):
    """{daemon name: pid} of the live daemons started under *folder*.

    :param ours: pid file -> its pid if that process is still the daemon
        started (a pid may be reused once its process died), else None.
    """
    daemons = {}
    for pid_file in folder.pid_files():
        pid = ours(pid_file)
        if pid is not None:
            daemons[os.path.basename(pid_file)[:-len('.pid')]] = pid
    return daemons


def kill(folder, daemons, process_groups=False):
    """SIGKILL *daemons* ({name: pid}), wait for them, drop the pid files.

    SIGKILL on purpose: the tests want a backend gone as a crash leaves
    it, and a memstore OSD would write its whole content out on SIGTERM.

    :param process_groups: kill each daemon's group (a daemon that leads
        a session of its own, with workers of its own).
    """
    send = os.killpg if process_groups else os.kill
    for pid in daemons.values():
        try:
            send(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(alive(pid) for pid in daemons.values()):
        if time.monotonic() > deadline:
            raise ClusterError('daemons still running %s s after SIGKILL: '
                               '%s' % (STOP_TIMEOUT, daemons))
        time.sleep(0.05)
    for pid_file in folder.pid_files():
        os.remove(pid_file)
    return daemons


def command_line(tool, description, start, stop, check, argv=None):
    """``TOOL start|stop|check DIR``: run the action, return the status.

    ``start`` prints what it returns as JSON; errors are one line on
    stderr, with EXIT_MISSING when something is not installed.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('action', choices=('start', 'stop', 'check'))
    parser.add_argument('dir', metavar='DIR', nargs='?')
    parser.add_argument('--timeout', type=float,
                        help='bound on the start, in seconds')
    arguments = parser.parse_args(argv)
    if arguments.action != 'check' and arguments.dir is None:
        parser.error('%s needs DIR' % arguments.action)
    try:
        if arguments.action == 'start':
            options = ({'timeout': arguments.timeout}
                       if arguments.timeout else {})
            print(json.dumps(start(arguments.dir, **options)))
        elif arguments.action == 'stop':
            stop(arguments.dir)
        else:
            check()
    except ClusterError as error:
        print('%s %s: %s' % (tool, arguments.action, error),
              file=sys.stderr)
        return error.exit_status
    return 0
