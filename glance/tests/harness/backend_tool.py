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

"""Servers a script of tools/backends starts: the fixture around it.

ceph_cluster.py and swift_cluster.py take ``start|stop|check DIR``; start
prints what clients need as JSON, check exits EXIT_MISSING when something
is not installed. ceph.CephCluster and swift.SwiftCluster are this
fixture with their own tool.
"""

import json
import os
import pathlib
import subprocess
import sys

import fixtures

from glance.tests import databases

TOOLS = pathlib.Path(__file__).resolve().parents[3] / 'tools' / 'backends'
# The tools' exit status when something they need is missing.
EXIT_MISSING = 3
LOG_LINES = 20


def check_tool(tool):
    """Raise unavailable() when *tool* says what it needs is missing."""
    check = subprocess.run(
        [sys.executable, str(tool), 'check'],
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=30)
    if check.returncode == EXIT_MISSING:
        raise databases.unavailable(check.stderr.strip())
    if check.returncode != 0:
        raise RuntimeError('%s check failed: %s'
                           % (tool, check.stderr.strip()))


class ToolServers(fixtures.Fixture):
    """Servers started by TOOL in a temporary directory, killed at cleanup.

    Subclasses name TOOL and START_TIMEOUT, and define require() (raise
    unavailable() when the servers cannot run here) and started(facts)
    (keep what start printed).

    :param base_dir: where the servers' files go; a temporary directory,
        removed at cleanup, by default.
    :ivar dir: the directory holding the servers' files and logs.
    """

    TOOL = None
    START_TIMEOUT = 60

    def __init__(self, base_dir=None):
        super().__init__()
        self._base_dir = base_dir

    def setUp(self):
        # Checked before Fixture.setUp, which would wrap a SkipTest raised
        # from _setUp in MultipleExceptions: an error, not a skip, to
        # pytest and testtools alike.
        self.require()
        super().setUp()

    def _setUp(self):
        self.dir = (self._base_dir
                    or self.useFixture(fixtures.TempDir()).path)
        # Registered before the start: the tool kills what it started
        # when it fails, but not when it is itself killed on a timeout.
        self.addCleanup(self._run, 'stop')
        self.started(json.loads(self._run(
            'start', '--timeout', str(self.START_TIMEOUT)).stdout))

    def require(self):
        check_tool(self.TOOL)

    def started(self, facts):
        raise NotImplementedError

    def _run(self, action, *arguments):
        try:
            done = subprocess.run(
                [sys.executable, str(self.TOOL), action, self.dir]
                + list(arguments),
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=self.START_TIMEOUT + 30)
        except subprocess.TimeoutExpired:
            raise RuntimeError('%s %s did not return' % (self.TOOL, action))
        if done.returncode != 0:
            raise RuntimeError('%s%s' % (done.stderr.strip(),
                                         self._log_tails()))
        return done

    def _log_tails(self):
        """The last lines of the servers' logs, which cleanup removes."""
        log_dir = os.path.join(self.dir, 'log')
        if not os.path.isdir(log_dir):
            return ''
        tails = []
        for name in sorted(os.listdir(log_dir)):
            with open(os.path.join(log_dir, name), errors='replace') as log:
                lines = log.read().splitlines()[-LOG_LINES:]
            if lines:
                tails.append('\n--- %s (last lines) ---\n%s'
                             % (name, '\n'.join(lines)))
        return ''.join(tails)
