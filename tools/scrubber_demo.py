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

"""Show glance-scrubber at work: files, a slow store in parallel, a restore.

Lays down, under DIR (default: the current directory), a folder
``glance-scrubber-demo`` holding a SQLite database made by
``glance-manage db sync``, a local file store and a scrubber config, and
starts a local S3 server (moto) behind a proxy that adds 25 ms to every
request, as a remote object store does. It fills them the way glance-api
with ``delayed_delete = True`` leaves deleted images (pending_delete
rows, the data still in the store), next to active images that must
survive, then runs the real ``glance-scrubber``:

1. one pass over images in the local file store (the embedded default:
   SQLite and a file store);
2. one pass at ``scrub_pool_size = 1`` (serial, upstream's default) over
   images in the slow S3 store, then the same number at
   ``scrub_pool_size = 8``, and compares their times;
3. ``--restore`` of one more deleted image: it comes back ``active``, its
   object still there.

Usage: python tools/scrubber_demo.py [DIR] [--images N] [--pool-size P]
"""

import argparse
import functools
import os
import shutil
import subprocess
import sys

import sqlalchemy as sa

from glance.tests.harness import fixtures as harness
from glance.tests import seed

BACKEND = 'objects'
FILE_BACKEND = 'local'
FILE_IMAGES = 10
BUCKET = 'glance-demo'
LATENCY = 0.025

# Multi-store options only: the single-store [glance_store] stores and
# default_store are deprecated.
CONFIG = """[DEFAULT]
scrub_pool_size = {pool_size}
scrub_time = 0
enabled_backends = {file_backend}:file, {backend}:s3

[database]
connection = sqlite:///{folder}/glance.sqlite

[glance_store]
default_backend = {file_backend}

[{file_backend}]
filesystem_store_datadir = {folder}/images

[{backend}]
{store_options}

[oslo_concurrency]
lock_path = {folder}/locks
"""

# The scrubber's output and ours share the terminal: flush each line so
# that they come out in the order they happened.
say = functools.partial(print, flush=True)


def write_config(folder, pool_size, endpoint):
    store_options = harness.s3_store_options(endpoint, BUCKET)
    path = os.path.join(folder, 'glance-scrubber.conf')
    with open(path, 'w') as config_file:
        config_file.write(CONFIG.format(
            folder=folder, pool_size=pool_size, backend=BACKEND,
            file_backend=FILE_BACKEND,
            store_options='\n'.join('%s = %s' % item
                                    for item in store_options.items())))
    return path


def prepare(folder, endpoint):
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(os.path.join(folder, 'locks'))
    os.makedirs(os.path.join(folder, 'images'))
    config = write_config(folder, 1, endpoint)
    subprocess.run([harness.console_script('glance-manage'), '--config-file',
                    config, 'db', 'sync'], check=True, capture_output=True)
    return sa.create_engine('sqlite:///%s/glance.sqlite' % folder)


def deleted_images(bucket, count, prefix):
    """*count* images as glance-api leaves them, their objects stored."""
    return [seed.Image(size=1024, locations=[seed.Location(
        bucket.put('%s-%03d' % (prefix, index)), store=BACKEND)])
        for index in range(count)]


def active_image(bucket):
    return seed.Image(status='active', deleted=False, size=1024,
                      locations=[seed.Location(bucket.put('active-image'),
                                               store=BACKEND,
                                               status='active')])


def image_counts(engine):
    """'active=1, pending_delete=10': the images by status."""
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            'SELECT status, count(*) FROM images GROUP BY status '
            'ORDER BY status')).all()
    return ', '.join('%s=%d' % tuple(row) for row in rows)


def show(engine, bucket, title):
    say('   %s: images %s; objects in the bucket: %d' % (
        title, image_counts(engine), len(bucket.keys())))


def say_summary(output):
    """The scrubber's summary line, without the log prefix."""
    for line in output.splitlines():
        if harness.SUMMARY_MARKER in line:
            say('   ' + harness.SUMMARY_MARKER +
                line.split(harness.SUMMARY_MARKER, 1)[1])


def scrubber(config, *args):
    """Run glance-scrubber; return its exit status and output."""
    command = harness.scrubber_command(config, *args)
    say('$ ' + ' '.join(['glance-scrubber', '--config-file',
                         os.path.basename(config)] + list(args)))
    result = subprocess.run(command, capture_output=True, text=True,
                            env=harness.scrubber_environment(), timeout=300)
    return result.returncode, result.stdout + result.stderr


def scrub_round(engine, bucket, folder, endpoint, pool_size, count):
    """Delete *count* images, scrub them at *pool_size*; the pass time."""
    seed.insert(engine, deleted_images(bucket, count, 'pool%d' % pool_size))
    config = write_config(folder, pool_size, endpoint)
    say('\n== %d deleted images, scrub_pool_size = %d ==' % (
        count, pool_size))
    show(engine, bucket, 'before')
    status, output = scrubber(config)
    summary = harness.parse_summaries(output)
    say_summary(output)
    show(engine, bucket, 'after (exit status %d)' % status)
    if status != 0 or not summary:
        say(output)
        raise SystemExit('glance-scrubber failed')
    return summary[-1]['seconds']


def file_round(engine, folder, endpoint, pool_size):
    """Images in the local file store: deleted ones go, the active stays."""
    store = harness.FileStore(os.path.join(folder, 'images'))
    images = [seed.Image(size=1024, locations=[seed.Location(
        store.put('deleted-%03d' % index), store=FILE_BACKEND)])
        for index in range(FILE_IMAGES)]
    images.append(seed.Image(
        status='active', deleted=False, size=1024,
        locations=[seed.Location(store.put('active-image'),
                                 store=FILE_BACKEND, status='active')]))
    seed.insert(engine, images)
    config = write_config(folder, pool_size, endpoint)
    say('\n== %d deleted images in the local file store ==' % FILE_IMAGES)
    show_files(engine, store, 'before')
    status, output = scrubber(config)
    say_summary(output)
    show_files(engine, store, 'after (exit status %d)' % status)
    if status != 0:
        say(output)
        raise SystemExit('glance-scrubber failed')


def show_files(engine, store, title):
    say('   %s: images %s; files in %s: %s' % (
        title, image_counts(engine), store.datadir,
        ', '.join(sorted(os.listdir(store.datadir))) or 'none'))


def restore_round(engine, bucket, folder, endpoint):
    image = deleted_images(bucket, 1, 'restored')[0]
    seed.insert(engine, [image])
    config = write_config(folder, 1, endpoint)
    say('\n== restore: image %s was deleted by mistake ==' % image.id)
    say('   status %s, its object in the bucket: %s' % (
        image_status(engine, image.id),
        bucket.exists(image.locations[0].url)))
    status, output = scrubber(config, '--restore', image.id)
    # Its answer, without the log lines around it.
    for line in output.strip().splitlines():
        if ' INFO ' not in line:
            say('   ' + line)
    say('   status %s, its object in the bucket: %s (exit status %d)' % (
        image_status(engine, image.id),
        bucket.exists(image.locations[0].url), status))
    return status


def image_status(engine, image_id):
    with engine.connect() as connection:
        return connection.execute(sa.text(
            'SELECT status FROM images WHERE id = :id'),
            {'id': image_id}).scalar_one()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('dir', nargs='?', default=os.getcwd())
    parser.add_argument('--images', type=int, default=40)
    parser.add_argument('--pool-size', type=int, default=8)
    args = parser.parse_args()
    folder = os.path.join(os.path.abspath(args.dir), 'glance-scrubber-demo')
    say('Starting a local S3 server (moto) behind a proxy adding %d ms '
        'to each request...' % (LATENCY * 1000))
    with harness.MotoServer() as moto, \
            harness.CountingProxy(moto.endpoint, delay=LATENCY) as proxy:
        bucket = harness.S3Bucket(moto.endpoint, BUCKET,
                                  url_netloc=proxy.netloc).create()
        engine = prepare(folder, proxy.endpoint)
        file_round(engine, folder, proxy.endpoint, args.pool_size)
        seed.insert(engine, [active_image(bucket)])
        serial = scrub_round(engine, bucket, folder, proxy.endpoint, 1,
                             args.images)
        parallel = scrub_round(engine, bucket, folder, proxy.endpoint,
                               args.pool_size, args.images)
        say('\n%d images: %.2f s at scrub_pool_size = 1, %.2f s at '
            'scrub_pool_size = %d (%.1fx faster); the active image and its '
            'object were left alone.' % (args.images, serial, parallel,
                                         args.pool_size, serial / parallel))
        status = restore_round(engine, bucket, folder, proxy.endpoint)
    say('\nThe database and config are in %s (the S3 server is gone).'
        % folder)
    return status


if __name__ == '__main__':
    sys.exit(main())
