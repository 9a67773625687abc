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

"""Make Debian's Ceph bindings importable by the Python that runs this.

    .tox/functional/bin/python tools/backends/ceph_bindings.py

The ``rados`` and ``rbd`` modules are not on PyPI: they come with the
Debian packages python3-rados and python3-rbd, built for the system's
CPython 3.11 only. A virtualenv of another CPython 3.11 can load them, but
adding the whole of /usr/lib/python3/dist-packages to its path would
shadow the virtualenv's own packages with Debian's older ones. So this
links just those two extension modules into a directory of the
interpreter's prefix and names that directory in a ``.pth`` file of its
site-packages.

Exit status: 0 when done, or when Ceph's bindings are not installed (a tox
env may always call this; the tests then skip); 1 when they are installed
but this interpreter cannot load them.

Standard library only: it runs before anything is installed.
"""

import os
import subprocess
import sys
import sysconfig

DIST_PACKAGES = '/usr/lib/python3/dist-packages'
MODULES = ('rados', 'rbd')
# The ABI Debian 12 builds the bindings for.
EXT_SUFFIX = '.cpython-311-x86_64-linux-gnu.so'
LINK_DIR_NAME = 'ceph-bindings'
PTH_NAME = 'ceph-bindings.pth'


def binding_files():
    """The paths of the two extension modules, or None when one is absent."""
    paths = [os.path.join(DIST_PACKAGES, module + EXT_SUFFIX)
             for module in MODULES]
    if all(os.path.isfile(path) for path in paths):
        return paths
    return None


def link(target, link_path):
    """Point *link_path* at *target*, replacing what was there."""
    if os.path.islink(link_path) or os.path.exists(link_path):
        if os.path.realpath(link_path) == os.path.realpath(target):
            return
        os.remove(link_path)
    os.symlink(target, link_path)


def install(paths):
    """Link *paths* into the prefix and write the .pth file naming them."""
    link_dir = os.path.join(sys.prefix, LINK_DIR_NAME)
    os.makedirs(link_dir, exist_ok=True)
    for path in paths:
        link(path, os.path.join(link_dir, os.path.basename(path)))
    pth_path = os.path.join(sysconfig.get_paths()['purelib'], PTH_NAME)
    with open(pth_path, 'w') as pth_file:
        pth_file.write(link_dir + '\n')
    return pth_path


def importable():
    """Whether a fresh interpreter (which reads the .pth) imports them."""
    check = subprocess.run(
        [sys.executable, '-c', 'import %s' % ', '.join(MODULES)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return check.returncode == 0, check.stderr.strip()


def main():
    paths = binding_files()
    if paths is None:
        print('Ceph Python bindings not installed (%s): nothing to do.'
              % ' '.join(MODULES + (EXT_SUFFIX,)))
        return 0
    suffix = sysconfig.get_config_var('EXT_SUFFIX')
    if suffix != EXT_SUFFIX:
        print('%s cannot load the Ceph bindings: they are built for %s, '
              'this interpreter needs %s' % (sys.executable, EXT_SUFFIX,
                                             suffix), file=sys.stderr)
        return 1
    pth_path = install(paths)
    ok, error = importable()
    if not ok:
        print('%s written, but the bindings still fail to import: %s'
              % (pth_path, error.splitlines()[-1] if error else '?'),
              file=sys.stderr)
        return 1
    print('Ceph bindings (%s) importable by %s via %s'
          % (', '.join(MODULES), sys.executable, pth_path))
    return 0


if __name__ == '__main__':
    sys.exit(main())
