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

"""Small helpers shared by the unit, functional and interop tests."""

import os
import shutil
import sys
import tempfile

from glance.tests import databases


def console_script(name):
    """The path of a console script of this virtualenv.

    The one beside the running Python first (tox's environment), then the
    one on PATH.
    """
    beside_python = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(beside_python):
        return beside_python
    found = shutil.which(name)
    if found is None:
        raise RuntimeError('%s is not installed' % name)
    return found


def unwritable_directory(tmp_path):
    """A directory in which this process cannot create a file, root or not.

    A directory of the test's own, mode 0555, stops every user but root
    (whose CAP_DAC_OVERRIDE passes over modes), and CI runs the tests as
    root. The kernel's own file systems, procfs (/proc) and sysfs (/sys),
    let nobody create a file in them, root included, read-write mounts
    included. Each is tried by creating a file, as the code under test
    does, and the first that refuses is the answer. None refusing is
    databases.unavailable(): a skip, and an error under CI.
    """
    own = os.path.join(os.fspath(tmp_path), 'read-only')
    os.mkdir(own)
    os.chmod(own, 0o555)
    for folder in (own, '/proc', '/sys'):
        if not _can_create_in(folder):
            return folder
    raise databases.unavailable(
        'no directory refuses a new file to this process (uid %d): not %s, '
        'nor /proc or /sys' % (os.geteuid(), own))


def _can_create_in(folder):
    try:
        descriptor, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(descriptor)
    os.unlink(probe)
    return True
