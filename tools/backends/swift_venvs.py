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

"""Build the virtualenvs that run Swift and Keystone for the tests.

    python tools/backends/swift_venvs.py build [--optional]
    python tools/backends/swift_venvs.py path swift|keystone

Swift and Keystone each get a virtualenv of their own: their pinned
dependencies clash with glance's, and with each other's. The virtualenvs
live in a cache that outlives the test runs,
``$GLANCE_SCRUBBER_BACKENDS_CACHE`` or
``~/.cache/glance-scrubber-backends``, in folders named after a hash of
their pins: changing a pin builds a new one, and a build already made
costs nothing. A mark file written last tells a finished build from an
interrupted one (which the next build starts again), and a lock file
keeps two builds of the same virtualenv from running at once.

With ``--optional`` (what tox's functional environment passes), a failed
build is reported and exits 0: the Swift tests then skip, except under
CI (``CI=true``), where the flag is ignored and a failed build fails.

``path`` prints the folder of a finished virtualenv, or exits with
status 3 when it has not been built.

Standard library only, so any Python 3 can run it; the virtualenvs use
the Python that runs this script (its base interpreter when it runs from
a virtualenv).
"""

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time

# The versions the Swift tests were written and measured with.
PINS = {
    'swift': ['swift==2.38.3', 'keystonemiddleware==13.0.1'],
    'keystone': ['keystone==30.0.0', 'gunicorn==23.0.0'],
}
CACHE_VARIABLE = 'GLANCE_SCRUBBER_BACKENDS_CACHE'
DEFAULT_CACHE = os.path.join('~', '.cache', 'glance-scrubber-backends')
# What a finished virtualenv holds, written last.
DONE_MARK = 'glance-scrubber-venv-complete'
EXIT_FAILED = 1
EXIT_MISSING = 3


def under_ci():
    return os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def cache_dir():
    return os.path.expanduser(os.environ.get(CACHE_VARIABLE)
                              or DEFAULT_CACHE)


def venv_dir(name):
    """Where the virtualenv *name* of the current pins lives."""
    pins = '\n'.join(sorted(PINS[name]) + [python_version()])
    digest = hashlib.sha256(pins.encode()).hexdigest()[:12]
    return os.path.join(cache_dir(), '%s-%s' % (name, digest))


def python_version():
    return 'python%d.%d' % sys.version_info[:2]


def is_built(path):
    return os.path.exists(os.path.join(path, DONE_MARK))


def base_python():
    """The interpreter to make virtualenvs from: never a venv's own."""
    return getattr(sys, '_base_executable', None) or sys.executable


def build(name):
    """Make the virtualenv *name* unless it exists; its folder."""
    target = venv_dir(name)
    if is_built(target):
        return target
    os.makedirs(cache_dir(), exist_ok=True)
    with open(target + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Another build may have finished while this one waited.
        if not is_built(target):
            _install(name, target)
    return target


def _install(name, target):
    started = time.monotonic()
    # At its final path: a virtualenv's scripts name their interpreter
    # by absolute path, so it cannot be built elsewhere and moved.
    shutil.rmtree(target, ignore_errors=True)
    try:
        subprocess.run([base_python(), '-m', 'venv', target], check=True)
        subprocess.run([os.path.join(target, 'bin', 'python'), '-m', 'pip',
                        'install', '--quiet', '--disable-pip-version-check']
                       + PINS[name], check=True)
        with open(os.path.join(target, DONE_MARK), 'w') as mark:
            mark.write('\n'.join(PINS[name]) + '\n')
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    print('swift_venvs.py: built %s in %.0f s' % (
        target, time.monotonic() - started), file=sys.stderr)


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description='Build the Swift and Keystone virtualenvs of the '
                    'tests, or print where one is.')
    parser.add_argument('action', choices=('build', 'path'))
    parser.add_argument('name', nargs='?', choices=sorted(PINS))
    parser.add_argument('--optional', action='store_true',
                        help='exit 0 when a build fails, outside CI')
    arguments = parser.parse_args(argv)
    if arguments.action == 'path' and arguments.name is None:
        parser.error('path needs swift or keystone')
    return arguments


def main(argv=None):
    arguments = parse_arguments(argv)
    if arguments.action == 'path':
        path = venv_dir(arguments.name)
        if not is_built(path):
            print('swift_venvs.py: %s not built: run %s build'
                  % (path, sys.argv[0]), file=sys.stderr)
            return EXIT_MISSING
        print(path)
        return 0
    for name in [arguments.name] if arguments.name else sorted(PINS):
        try:
            build(name)
        except subprocess.CalledProcessError as error:
            print('swift_venvs.py: building %s failed: %s' % (name, error),
                  file=sys.stderr)
            if arguments.optional and not under_ci():
                print('swift_venvs.py: the Swift tests will skip',
                      file=sys.stderr)
                return 0
            return EXIT_FAILED
    return 0


if __name__ == '__main__':
    sys.exit(main())
