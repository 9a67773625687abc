#!/usr/bin/env python3
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

"""Show glance-scrubber at work on the embedded default: SQLite + file store.

Lays down, under DIR (default: the current directory), a folder
``glance-scrubber-demo`` holding a SQLite database made by
``glance-manage db sync``, a file store and a scrubber config. It fills
them the way glance-api with ``delayed_delete = True`` leaves deleted
images (pending_delete rows, data still in the store), next to an active
image that must survive, then runs the real ``glance-scrubber`` once and
shows what it did.

Usage: python tools/scrubber_demo.py [DIR] [--images N] [--pool-size P]
"""

import argparse
import os
import shutil
import subprocess
import sys

import sqlalchemy as sa

from glance.tests import seed

CONFIG = """[DEFAULT]
scrub_pool_size = {pool_size}
scrub_time = 0

[database]
connection = sqlite:///{folder}/glance.sqlite

[glance_store]
stores = file
default_store = file
filesystem_store_datadir = {folder}/images

[oslo_concurrency]
lock_path = {folder}/locks
"""


def console_script(name):
    beside_python = os.path.join(os.path.dirname(sys.executable), name)
    return beside_python if os.path.exists(beside_python) else name


def prepare(folder, pool_size):
    shutil.rmtree(folder, ignore_errors=True)
    for sub in ('images', 'locks'):
        os.makedirs(os.path.join(folder, sub))
    config = os.path.join(folder, 'glance-scrubber.conf')
    with open(config, 'w') as config_file:
        config_file.write(CONFIG.format(folder=folder, pool_size=pool_size))
    subprocess.run([console_script('glance-manage'), '--config-file', config,
                    'db', 'sync'], check=True, capture_output=True)
    return config


def store_file(folder, name, size):
    path = os.path.join(folder, 'images', name)
    with open(path, 'wb') as data:
        data.write(os.urandom(size))
    return 'file://' + path


def fill(folder, count):
    """pending_delete images (some with two copies) and one active image."""
    images = []
    for index in range(count):
        copies = 2 if index % 4 == 0 else 1
        urls = [store_file(folder, 'image-%02d-copy%d' % (index, copy), 4096)
                for copy in range(copies)]
        visibility = ('private', 'public', 'shared', 'community')[index % 4]
        images.append(seed.Image(
            locations=[seed.Location(url) for url in urls], size=4096,
            visibility=visibility))
    active = seed.Image(status='active', deleted=False, size=4096,
                        locations=[seed.Location(
                            store_file(folder, 'active-image', 4096),
                            status='active')])
    engine = sa.create_engine('sqlite:///%s/glance.sqlite' % folder)
    seed.insert(engine, images + [active])
    return engine


def show(engine, folder, title):
    print('\n== %s ==' % title)
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            'SELECT status, count(*) FROM images GROUP BY status '
            'ORDER BY status')).all()
    print('images by status: ' + ', '.join('%s=%d' % tuple(row)
                                           for row in rows))
    files = sorted(os.listdir(os.path.join(folder, 'images')))
    print('files in the store: %d (%s)' % (
        len(files), ', '.join(files[:4]) + (', ...' if len(files) > 4
                                            else '')))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('dir', nargs='?', default=os.getcwd())
    parser.add_argument('--images', type=int, default=12)
    parser.add_argument('--pool-size', type=int, default=4)
    args = parser.parse_args()
    folder = os.path.join(os.path.abspath(args.dir), 'glance-scrubber-demo')
    config = prepare(folder, args.pool_size)
    engine = fill(folder, args.images)
    show(engine, folder, 'before: as glance-api leaves deleted images')
    command = [console_script('glance-scrubber'), '--config-file', config]
    print('\n$ ' + ' '.join(command))
    result = subprocess.run(command)
    show(engine, folder, 'after: glance-scrubber exited %d'
         % result.returncode)
    print('\nThe demo lives in %s; its config is %s' % (folder, config))
    return result.returncode


if __name__ == '__main__':
    sys.exit(main())
