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

"""Upstream Glance with the drivers the benchmark needs, layered on top.

tools/upstream_glance_venv.py builds (or reuses) the virtualenv holding
released upstream Glance for the interop tests; it carries the MariaDB
driver only. The benchmark also runs upstream on PostgreSQL and on S3, so
it needs psycopg2 and boto3 there. Rather than installing into a venv that
another tool owns and stamps, this builds a thin venv of its own whose
site-packages sees upstream's through a .pth file, and installs just
those two drivers into it.
"""

import os
import pathlib
import subprocess
import sys
import venv

BENCH = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

import upstream_glance_venv  # noqa: E402

EXTRA = ('psycopg2-binary', 'boto3', 'python-swiftclient')
CEPH_BINDINGS = BENCH.parent / 'backends' / 'ceph_bindings.py'
STAMP = 'bench-upstream.stamp'


def default_dir():
    return pathlib.Path(os.environ.get(
        'GLANCE_BENCH_UPSTREAM_VENV',
        upstream_glance_venv.TREE / '.tox' / 'bench-upstream'))


def _site_packages(python):
    return subprocess.run(
        [str(python), '-I', '-c',
         'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        check=True, capture_output=True, text=True).stdout.strip()


def _stamp_text(base_python):
    return '%s on %s %s\n' % (upstream_glance_venv.wanted_stamp().strip(),
                              base_python, ' '.join(EXTRA))


def ensure(layer_dir=None, with_ceph=False):
    """Return the python of the layered venv, building it when needed.

    :param with_ceph: also make Debian's rados and rbd bindings importable
        there (tools/backends/ceph_bindings.py), for upstream on RBD.
    """
    python = _ensure(layer_dir)
    if with_ceph:
        subprocess.run([str(python), str(CEPH_BINDINGS)], check=True)
    return python


def _ensure(layer_dir):
    base_python = upstream_glance_venv.ensure(
        upstream_glance_venv.default_venv().absolute())
    layer_dir = pathlib.Path(layer_dir or default_dir()).absolute()
    python = layer_dir / 'bin' / 'python'
    stamp = layer_dir / STAMP
    with upstream_glance_venv.exclusive(layer_dir):
        if stamp.exists() and stamp.read_text() == _stamp_text(base_python):
            return python
        venv.EnvBuilder(with_pip=True, clear=True).create(layer_dir)
        # Upstream's packages after the layer's own: the layer only adds.
        (pathlib.Path(_site_packages(python)) / 'upstream-glance.pth'
         ).write_text(_site_packages(base_python) + '\n')
        subprocess.run([str(python), '-m', 'pip', 'install', '--quiet',
                        *EXTRA], check=True)
        subprocess.run([str(python), '-I', '-c',
                        'import glance.cmd.scrubber, psycopg2, boto3'],
                       check=True)
        stamp.write_text(_stamp_text(base_python))
    return python


if __name__ == '__main__':
    print(ensure())
