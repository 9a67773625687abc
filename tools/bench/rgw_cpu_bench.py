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

"""Scrubber CPU per image on Ceph RGW, against a plain boto3 client.

    python tools/bench/rgw_cpu_bench.py [--images N] [--pools P ...]
        [--runs R] [--backend threading|eventlet] [--json FILE]
        [--from-json FILE] [--write-docs]

Starts a one-node Ceph cluster and a RADOS Gateway on it
(tools/backends/ceph_cluster.py, rgw_gateway.py) and a PostgreSQL
database, then for each pool size, R times:

* scrubber: N pending_delete images, one 4 KiB object each, really in
  RGW; one pass of this tree's glance-scrubber, straight to RGW (no
  proxy), as a process of its own; every image must be scrubbed;
* plain: N objects deleted by tools/bench/plain_s3_client.py, the same
  HEAD and DELETE per object with one boto3 client shared by the pool's
  threads, no database, no glance_store.

CPU is each process's own user + system time (os.wait4). Start-up is
taken out the same way for both: the CPU of the same command with
nothing to do (an empty queue, an empty key list) is subtracted, and the
rest divided by N. Pass seconds: the scrubber's summary line; the
plain client's own clock. Prints a table and saves the raw results
(tools/bench/results/rgw-DATE.json unless --json says where); with
--write-docs it writes doc/source/admin/scrubber-rgw-benchmark.rst and
its plot (tox -e bench-rgw).
"""

import argparse
import concurrent.futures
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

BENCH = pathlib.Path(__file__).resolve().parent
TREE = BENCH.parent.parent
sys.path.insert(0, str(TREE))

from glance.tests import databases  # noqa: E402
from glance.tests.harness import ceph  # noqa: E402
from glance.tests.harness import fixtures as harness  # noqa: E402
from glance.tests import seed  # noqa: E402

import pages  # noqa: E402
import scrub_bench  # noqa: E402

PLAIN_S3_CLIENT = BENCH / 'plain_s3_client.py'
RST_PATH = pages.DOC_DIR / 'scrubber-rgw-benchmark.rst'
PNG_PATH = pages.DOC_DIR / 'scrubber-rgw-throughput.png'
OBJECT = b'x' * 4096
SEED_THREADS = 8


class Rgw:
    """A cluster, its gateway and one bucket; seeding and checks."""

    def __init__(self):
        self.cluster = ceph.CephCluster(bindings=False)
        self.cluster.setUp()
        try:
            started = time.monotonic()
            self.gateway = ceph.RgwGateway(self.cluster)
            self.gateway.setUp()
            self.start_seconds = time.monotonic() - started
            self.bucket = harness.S3Bucket(
                self.gateway.endpoint, 'bench-%s' % uuid.uuid4().hex[:8],
                credentials_in_url=False).create()
        except BaseException:
            self.cluster.cleanUp()
            raise

    @property
    def endpoint(self):
        return self.gateway.endpoint

    def put_all(self, keys):
        with concurrent.futures.ThreadPoolExecutor(SEED_THREADS) as pool:
            return list(pool.map(
                lambda key: self.bucket.put(key, OBJECT), keys))

    def close(self):
        self.gateway.cleanUp()
        self.cluster.cleanUp()


def measure(command, env, workdir, tag):
    returncode, wall, cpu, rss = scrub_bench.measure(
        command, env, workdir, os.path.join(workdir, tag))
    with open(os.path.join(workdir, tag + '.out')) as out, \
            open(os.path.join(workdir, tag + '.err')) as err:
        output = out.read() + err.read()
    if returncode != 0:
        raise AssertionError('%s exited %s:\n%s' % (tag, returncode,
                                                    output[-2000:]))
    return {'wall': wall, 'cpu': cpu, 'rss_mb': rss, 'output': output}


def check_tree(env):
    """The scrubber processes must import this tree's glance."""
    found = subprocess.run(
        [sys.executable, '-c', 'import glance; print(glance.__file__)'],
        env=env, cwd='/', capture_output=True, text=True, check=True)
    if not found.stdout.strip().startswith(str(TREE / 'glance')):
        raise RuntimeError('the scrubber would import %s, not this tree'
                           % found.stdout.strip())


def scrubber_runs(rgw, args, workdir, env):
    database = databases.Database('postgresql')
    database.setUp()
    results = {}
    try:
        for pool in args.pools:
            config = harness.ScrubberConfig(
                os.path.join(workdir, 'scrubber-%d.conf' % pool),
                database.url, os.path.join(workdir, 'locks'),
                scrub_pool_size=pool)
            config.use_s3_store(rgw.endpoint, rgw.bucket.name)
            config.write()
            command = harness.scrubber_command(config)
            idle = measure(command, env, workdir, 'idle-%d' % pool)
            runs = []
            for attempt in range(args.runs):
                ids = [str(uuid.uuid4()) for _ in range(args.images)]
                urls = rgw.put_all(['%s.0' % image_id for image_id in ids])
                seed.insert(database.engine, [
                    seed.Image(id=image_id, size=len(OBJECT),
                               locations=[seed.Location(url)])
                    for image_id, url in zip(ids, urls)])
                run = measure(command, env, workdir,
                              'scrub-%d-%d' % (pool, attempt))
                left = seed.count_images(database.engine, 'pending_delete')
                if left or rgw.bucket.keys():
                    raise AssertionError('pool %d: %d images left'
                                         % (pool, left))
                [summary] = harness.parse_summaries(run['output'])
                runs.append({'cpu': run['cpu'], 'wall': run['wall'],
                             'pass_s': summary['seconds'],
                             'rss_mb': run['rss_mb']})
            results[pool] = {'idle_cpu': idle['cpu'],
                             'idle_wall': idle['wall'], 'runs': runs}
            print('scrubber pool %2d: %s' % (pool, summarize(
                results[pool], args.images)), flush=True)
    finally:
        database.cleanUp()
    return results


def plain_runs(rgw, args, workdir, env):
    results = {}
    for pool in args.pools:
        def command(keys_file):
            return [sys.executable, str(PLAIN_S3_CLIENT), rgw.endpoint,
                    rgw.bucket.name, keys_file, str(pool), '--access-key',
                    rgw.gateway.access_key, '--secret-key',
                    rgw.gateway.secret_key, '--cpu']
        empty = os.path.join(workdir, 'no-keys')
        open(empty, 'w').close()
        idle = measure(command(empty), env, workdir, 'plain-idle-%d' % pool)
        runs = []
        for attempt in range(args.runs):
            keys = ['plain-%s' % uuid.uuid4() for _ in range(args.images)]
            rgw.put_all(keys)
            keys_file = os.path.join(workdir, 'keys-%d-%d' % (pool, attempt))
            with open(keys_file, 'w') as stream:
                stream.write('\n'.join(keys))
            run = measure(command(keys_file), env, workdir,
                          'plain-%d-%d' % (pool, attempt))
            if rgw.bucket.keys():
                raise AssertionError('plain client left objects')
            seconds, inner_cpu = (float(value) for value in
                                  run['output'].split()[:2])
            runs.append({'cpu': run['cpu'], 'wall': run['wall'],
                         'pass_s': seconds, 'inner_cpu': inner_cpu,
                         'rss_mb': run['rss_mb']})
        results[pool] = {'idle_cpu': idle['cpu'], 'idle_wall': idle['wall'],
                         'runs': runs}
        print('plain    pool %2d: %s' % (pool, summarize(
            results[pool], args.images)), flush=True)
    return results


def per_image_ms(result, images):
    """Median CPU ms per image, the idle run's CPU taken out."""
    return statistics.median(
        1000.0 * (run['cpu'] - result['idle_cpu']) / images
        for run in result['runs'])


def summarize(result, images):
    pass_s = statistics.median(run['pass_s'] for run in result['runs'])
    text = ('pass %.2f s (%.0f images/s), CPU %.2f s of which start-up '
            '%.2f s, %.2f ms per image' % (
                pass_s, images / pass_s,
                statistics.median(run['cpu'] for run in result['runs']),
                result['idle_cpu'], per_image_ms(result, images)))
    inner = [run['inner_cpu'] for run in result['runs'] if 'inner_cpu' in run]
    if inner:
        text += ' (%.2f ms by its own clock)' % (
            1000.0 * statistics.median(inner) / images)
    return text


def rows(data):
    """(pool, scrub img/s, plain img/s, scrub ms, plain ms, ratio)."""
    images = data['images']
    table = []
    for pool in data['pools']:
        scrub = data['scrubber'][str(pool)]
        plain = data['plain'][str(pool)]
        scrub_ms = per_image_ms(scrub, images)
        plain_ms = per_image_ms(plain, images)
        table.append((
            pool,
            images / statistics.median(r['pass_s'] for r in scrub['runs']),
            images / statistics.median(r['pass_s'] for r in plain['runs']),
            scrub_ms, plain_ms, scrub_ms / plain_ms))
    return table


def report(data):
    print()
    print('%5s  %12s  %12s  %12s  %12s  %6s' % (
        'pool', 'scrub img/s', 'plain img/s', 'scrub ms/img',
        'plain ms/img', 'ratio'))
    for row in rows(data):
        print('%5d  %12.0f  %12.0f  %12.2f  %12.2f  %6.1f' % row)


HEADER = ('scrub_pool_size', 'this tree, images/s', 'plain boto3, images/s',
          'this tree, CPU ms per image', 'plain boto3, CPU ms per image',
          'CPU ratio')


def page_text(data, results_path):
    meta = data['meta']
    lines = pages.generated_header(__file__, results_path) + [
        'Scrubber benchmark: Ceph RADOS Gateway (S3)',
        '===========================================',
        '',
        'Measured %s on %s; the cluster, the gateway, PostgreSQL and the '
        'scrubber share the machine.' % (meta['date'],
                                         pages.describe(meta)),
        '',
        'Method. A one-node Ceph cluster and a RADOS Gateway on it '
        '(``tools/backends/ceph_cluster.py``, ``rgw_gateway.py``). For '
        'each pool size, %d runs (median): %d pending_delete images, one '
        '4 KiB object each, scrubbed by one pass of this tree\'s '
        '``glance-scrubber`` (%s backend) straight to the gateway; then '
        'the same number of objects deleted by a plain boto3 client '
        '(``tools/bench/plain_s3_client.py``: the same HEAD and DELETE per '
        'object, one client shared by the pool\'s threads, no database, '
        'no glance_store): the best this harness allows. CPU is each '
        'process\'s own user and system time, less that of the same '
        'command with nothing to do, over the number of images.' % (
            data['runs'], data['images'], data['backend']),
        '',
        '.. list-table::',
        '   :header-rows: 1',
        '',
    ]
    formats = ('%d', '%.0f', '%.0f', '%.2f', '%.2f', '%.2fx')
    for row in [HEADER] + [tuple(f % v for f, v in zip(formats, row))
                           for row in rows(data)]:
        lines.append('   * - %s' % row[0])
        lines.extend('     - %s' % value for value in row[1:])
    lines += ['', '.. image:: %s' % PNG_PATH.name,
              '   :alt: images per second against scrub_pool_size on '
              'RGW, this tree and a plain boto3 client', '']
    return '\n'.join(pages.fold(line) for line in lines)


def rendered_pages(data, results_path):
    """{page path: text} this tool makes from a results file."""
    return {RST_PATH: page_text(data, results_path)}


def figures(data):
    """{name: text} of the figures the guide may quote (check_pages.py).

    rgw-poolN-rate and -plain-rate (images/s), -cpu-ms and -plain-cpu-ms
    (CPU ms per image), -cpu-ratio (this tree over plain boto3).
    """
    named = {}
    for pool, rate, plain, scrub_ms, plain_ms, ratio in rows(data):
        name = 'rgw-pool%d' % pool
        named[name + '-rate'] = '%.0f' % rate
        named[name + '-plain-rate'] = '%.0f' % plain
        named[name + '-cpu-ms'] = '%.2f' % scrub_ms
        named[name + '-plain-cpu-ms'] = '%.2f' % plain_ms
        named[name + '-cpu-ratio'] = '%.2fx' % ratio
    return named


def plot(data):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    table = rows(data)
    figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=110)
    pools = [row[0] for row in table]
    axes.plot(pools, [row[1] for row in table], 'o-', label='this tree')
    axes.plot(pools, [row[2] for row in table], 'k:',
              label='plain boto3, the same requests, nothing else')
    axes.set_xscale('log', base=2)
    axes.set_xticks(pools)
    axes.set_xticklabels([str(pool) for pool in pools])
    axes.set_xlabel('scrub_pool_size')
    axes.set_ylabel('images (objects) deleted per second')
    axes.set_title('Ceph RGW, one node, %d objects of 4 KiB' % data['images'])
    axes.grid(True, which='both', alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(PNG_PATH)
    pyplot.close(figure)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--images', type=int, default=1000)
    parser.add_argument('--pools', type=int, nargs='+', default=[1, 8, 16])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--backend', choices=('threading', 'eventlet'),
                        default='threading')
    parser.add_argument('--json', help='save the results there')
    parser.add_argument('--from-json', metavar='FILE',
                        help='report saved results only, running nothing')
    parser.add_argument('--write-docs', action='store_true',
                        help='write %s and its plot' % RST_PATH.name)
    return parser.parse_args(argv)


def run_all(args):
    env = harness.scrubber_environment({
        harness.BACKEND_VARIABLE: args.backend, 'PYTHONPATH': str(TREE),
        'PYTHONWARNINGS': 'ignore'})
    check_tree(env)
    workdir = tempfile.mkdtemp(prefix='rgw-cpu-bench-')
    print('work folder: %s' % workdir, flush=True)
    rgw = Rgw()
    print('gateway up in %.2f s (the cluster was up)' % rgw.start_seconds,
          flush=True)
    try:
        data = {'meta': pages.machine(), 'images': args.images,
                'pools': args.pools, 'backend': args.backend,
                'runs': args.runs, 'load_before': os.getloadavg()}
        data['scrubber'] = {str(pool): result for pool, result in
                            scrubber_runs(rgw, args, workdir, env).items()}
        data['plain'] = {str(pool): result for pool, result in
                         plain_runs(rgw, args, workdir, env).items()}
        data['load_after'] = os.getloadavg()
    finally:
        rgw.close()
    return data


def main(argv=None):
    args = parse_args(argv)
    data, results_path = pages.saved_or_run(args, run_all, 'rgw')
    report(data)
    if args.write_docs:
        pages.write(rendered_pages(data, results_path))
        plot(data)
    return 0


if __name__ == '__main__':
    sys.exit(main())
