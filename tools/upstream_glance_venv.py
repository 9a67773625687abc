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

"""Build, or reuse, the virtualenv holding released upstream Glance.

The interop tests (glance/tests/interop) run upstream's real glance-api and
glance-manage against this tree's glance-scrubber. Both distributions are
named ``glance``, so upstream lives in a virtualenv of its own, never in
the one that runs the tests.

    python tools/upstream_glance_venv.py [--check] [VENV]

VENV defaults to $GLANCE_UPSTREAM_VENV, else .tox/upstream-glance in this
tree. A venv is reused when its stamp says it holds the pinned release;
otherwise it is built (a few minutes the first time). --check builds
nothing: it exits 1 with the reason when the venv is not ready. On success
the last line printed is the venv's python.

Standard library only: it runs before anything is installed.
"""

import argparse
import contextlib
import fcntl
import os
import pathlib
import shutil
import subprocess
import sys
import venv

# The one pin: the newest upstream release that installs on Python 3.11.
UPSTREAM_GLANCE = 'glance==33.0.0'
# Database drivers upstream needs for the MariaDB/MySQL and PostgreSQL
# variants.
EXTRA_PACKAGES = ('PyMySQL', 'psycopg2-binary')

STAMP = 'upstream-glance.stamp'
TREE = pathlib.Path(__file__).resolve().parent.parent


class NotReady(Exception):
    pass


def default_venv():
    return pathlib.Path(os.environ.get(
        'GLANCE_UPSTREAM_VENV', TREE / '.tox' / 'upstream-glance'))


def wanted_stamp():
    return ' '.join((UPSTREAM_GLANCE,) + EXTRA_PACKAGES) + '\n'


def python_of(venv_dir):
    return venv_dir / 'bin' / 'python'


def check(venv_dir):
    """Return the venv's python, or raise NotReady saying why not."""
    python = python_of(venv_dir)
    stamp = venv_dir / STAMP
    if not python.exists():
        raise NotReady('no upstream Glance virtualenv at %s' % venv_dir)
    if not stamp.exists() or stamp.read_text() != wanted_stamp():
        raise NotReady('%s does not hold %s' % (venv_dir, UPSTREAM_GLANCE))
    return python


def _discard(venv_dir):
    # Only ever remove what is recognisably a virtualenv, never a folder
    # someone pointed GLANCE_UPSTREAM_VENV at by mistake.
    if not venv_dir.exists():
        return
    if not (venv_dir / 'pyvenv.cfg').exists() and any(venv_dir.iterdir()):
        raise SystemExit('%s exists and is not a virtualenv; not touching '
                         'it' % venv_dir)
    shutil.rmtree(venv_dir)


def build(venv_dir):
    _discard(venv_dir)
    print('Building %s in %s' % (UPSTREAM_GLANCE, venv_dir), flush=True)
    venv.EnvBuilder(with_pip=True).create(venv_dir)
    python = str(python_of(venv_dir))
    subprocess.run([python, '-m', 'pip', 'install', '--quiet',
                    UPSTREAM_GLANCE, *EXTRA_PACKAGES], check=True)
    # Prove the install is whole before stamping it: the WSGI module and
    # the glance-manage console script are what the tests run.
    subprocess.run([python, '-I', '-c', 'import glance.common.wsgi_app'],
                   check=True)
    if not (venv_dir / 'bin' / 'glance-manage').exists():
        raise SystemExit('%s installed no glance-manage' % UPSTREAM_GLANCE)
    (venv_dir / STAMP).write_text(wanted_stamp())


@contextlib.contextmanager
def exclusive(venv_dir):
    """Serialise builders of one venv (two tox runs at once)."""
    venv_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv_dir.parent / (venv_dir.name + '.lock')
    with open(lock_path, 'w') as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield


def ensure(venv_dir):
    """Return the venv's python, building the venv when needed."""
    with exclusive(venv_dir):
        try:
            return check(venv_dir)
        except NotReady as reason:
            print('%s: building it' % reason, flush=True)
        build(venv_dir)
        return check(venv_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Build or reuse the upstream Glance virtualenv.')
    parser.add_argument('venv', nargs='?', type=pathlib.Path,
                        default=default_venv())
    parser.add_argument('--check', action='store_true',
                        help='build nothing; exit 1 when not ready')
    args = parser.parse_args(argv)
    venv_dir = args.venv.absolute()
    if args.check:
        try:
            python = check(venv_dir)
        except NotReady as reason:
            print(reason)
            return 1
    else:
        python = ensure(venv_dir)
    print(python)
    return 0


if __name__ == '__main__':
    sys.exit(main())
