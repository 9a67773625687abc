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

"""Scrub throughput with 1, 2 and 3 scrubbers sharing one database.

    python tools/bench/members_bench.py [--quick] [--runs N] [--json FILE]
        [--from-json FILE] [--write-docs]

(``tox -e bench-members``.) Each run starts M ``glance-scrubber --daemon``
processes (wakeup_time 1 s, each with a lock_path of its own, as on
separate hosts) in one tooz group on the machine's Redis, on a new
PostgreSQL database, waits until each sees M members, inserts N eligible
pending_delete images (their data already in the store) and times the
insert plus the scrub, until every image is scrubbed. It checks that the
store is empty, that every S3 object got exactly one DELETE and that each
daemon exits 0, prints one row per cell and member count and saves the
raw results (tools/bench/results/members-DATE.json unless --json says
where).

Cells: latency-bound (S3: moto behind the counting proxy, which adds
LATENCY to each request) and CPU-bound (the file store, empty files).
With --write-docs it also writes doc/source/admin/
scrubber-members-benchmark.rst. Not part of the test suite.
"""

import argparse
import collections
import contextlib
import dataclasses
import os
import pathlib
import statistics
import sys
import tempfile
import time

BENCH = pathlib.Path(__file__).resolve().parent
TREE = BENCH.parent.parent
sys.path.insert(0, str(TREE))

import sqlalchemy as sa  # noqa: E402

from glance.tests import coordination_servers  # noqa: E402
from glance.tests import databases  # noqa: E402
from glance.tests.harness import fixtures as harness  # noqa: E402
from glance.tests.harness import scenario  # noqa: E402
from glance.tests import seed  # noqa: E402

import pages  # noqa: E402

RST_PATH = TREE / 'doc' / 'source' / 'admin' / 'scrubber-members-benchmark.rst'
LATENCY = 0.025  # seconds the proxy adds to each S3 request
POOL_SIZE = 4
MEMBER_COUNTS = (1, 2, 3)
SCRUB_TIMEOUT = 900


@dataclasses.dataclass
class Cell:
    name: str
    store: str
    images: int


@dataclasses.dataclass
class Run:
    seconds: float
    per_member: list
    deletes_per_object: set
    clean: bool


def cells(quick):
    scale = 5 if quick else 1
    return [Cell('latency-bound', 's3', 1500 // scale),
            Cell('CPU-bound', 'file', 10000 // scale)]


class Stores:
    """The store of a cell, in *folder*; S3 through a counting proxy."""

    def __init__(self, cell, folder, stack):
        self.cell = cell
        if cell.store == 'file':
            self.store = harness.FileStore(os.path.join(folder, 'images'))
            self.proxy = None
            return
        moto = stack.enter_context(harness.MotoServer())
        self.proxy = stack.enter_context(
            harness.CountingProxy(moto.endpoint, delay=LATENCY))
        self.store = harness.S3Bucket(moto.endpoint, 'bench',
                                      url_netloc=self.proxy.netloc).create()

    def configure(self, config):
        if self.proxy is None:
            return config.use_file_store(self.store.datadir)
        config.set('glance_store', filesystem_store_datadir=None)
        return config.use_s3_store(self.proxy.endpoint, self.store.name)

    def left(self):
        if self.proxy is None:
            return self.store.names()
        return self.store.keys()

    def deletes_per_object(self):
        if self.proxy is None:
            return set()
        counts = collections.Counter(
            request.path for request in self.proxy.finished_requests()
            if request.method == 'DELETE')
        return set(counts.values())


def unfinished(engine):
    """Images not yet scrubbed: pending_delete, or claimed and not done."""
    with engine.connect() as connection:
        return connection.scalar(
            sa.select(sa.func.count()).select_from(seed.LOCATIONS)
            .where(seed.LOCATIONS.c.status == 'pending_delete'))


def run_once(cell, members, redis_url):
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        database = stack.enter_context(databases.Database('postgresql'))
        stores = Stores(cell, folder, stack)
        config = stores.configure(harness.ScrubberConfig(
            os.path.join(folder, 'base.conf'), database.url,
            os.path.join(folder, 'locks'), scrub_pool_size=POOL_SIZE,
            scrub_time=scenario.SCRUB_TIME, wakeup_time=1))
        config.set('coordination', backend_url=redis_url,
                   group_name=coordination_servers.unique_group())
        images = scenario.pending_images([scenario.Placement(stores.store)],
                                         cell.images, 1)
        daemons = [stack.enter_context(harness.RunningScrubber(
            config.on_another_host(os.path.join(folder, 'host%d' % n)),
            '--daemon')) for n in range(members)]
        line = ': %d members (' % members
        harness.wait_until(lambda: all(line in d.output() for d in daemons),
                           60, what='%d members' % members)
        started = time.monotonic()
        seed.insert(database.engine, images)
        harness.wait_until(lambda: unfinished(database.engine) == 0,
                           SCRUB_TIMEOUT, interval=0.05, what='scrubbed')
        seconds = time.monotonic() - started
        runs = [daemon.stop() for daemon in daemons]
        per_member = [sum(summary['scrubbed'] for summary in run.summaries)
                      for run in runs]
        clean = (all(run.returncode == 0 for run in runs) and
                 not stores.left() and sum(per_member) == cell.images)
        return Run(seconds, per_member, stores.deletes_per_object(), clean)


def result_of(cell, members, runs):
    """A results file's record of one cell and member count."""
    return {'cell': cell.name, 'store': cell.store, 'images': cell.images,
            'members': members, 'pool': POOL_SIZE,
            'seconds_all': [run.seconds for run in runs],
            'per_member_last': runs[-1].per_member,
            'deletes_per_object': sorted(
                set().union(*(run.deletes_per_object for run in runs))),
            'clean': all(run.clean for run in runs)}


def seconds(result):
    return statistics.median(result['seconds_all'])


def images_per_second(result):
    return result['images'] / seconds(result)


def speedup(result, results):
    """Images per second over the same cell's with one member."""
    alone = next(other for other in results
                 if other['cell'] == result['cell'] and
                 other['members'] == 1)
    return images_per_second(result) / images_per_second(alone)


def row(result, results):
    spread = '%.1f (%.1f-%.1f)' % (seconds(result),
                                   min(result['seconds_all']),
                                   max(result['seconds_all']))
    return [result['cell'], result['store'], str(result['members']),
            str(result['images']), str(result['pool']), spread,
            '%.0f' % images_per_second(result),
            '%.2fx' % speedup(result, results),
            ' / '.join(str(n) for n in result['per_member_last']),
            ', '.join(str(n) for n in result['deletes_per_object'])
            or 'n/a',
            'ok' if result['clean'] else 'FAILED']


HEADER = ['cell', 'store', 'members', 'N', 'pool', 'seconds (min-max)',
          'img/s', 'speedup', 'scrubbed per member (last run)',
          'DELETEs per object', 'check']


def measure(quick, runs):
    redis_url = coordination_servers.shared_redis_url()
    results = []
    for cell in cells(quick):
        for members in MEMBER_COUNTS:
            result = result_of(cell, members,
                               [run_once(cell, members, redis_url)
                                for _ in range(runs)])
            results.append(result)
            print('%s, %d members: %.1f s, %.0f img/s' % (
                cell.name, members, seconds(result),
                images_per_second(result)), flush=True)
    return results


def print_table(results):
    table = [HEADER] + [row(result, results) for result in results]
    widths = [max(len(line[i]) for line in table)
              for i in range(len(HEADER))]
    for line in table:
        print('  '.join(value.ljust(width)
                        for value, width in zip(line, widths)))


def page_text(data, results_path):
    results, meta = data['results'], data['meta']
    lines = pages.generated_header(__file__, results_path) + [
        'Several scrubbers: benchmark',
        '============================',
        '',
        'Measured %s on %s, shared by the scrubbers, PostgreSQL, Redis, '
        'moto and the proxy.' % (meta['date'], pages.describe(meta)),
        '',
        'Method. A member is a ``glance-scrubber --daemon`` with '
        '``wakeup_time = 1`` and a lock_path of its own (as on a host of its '
        'own), in one tooz group on Redis. For each cell and member count '
        '(%d runs, median), the members start on a new PostgreSQL database '
        'and an empty queue; once each sees all members, N eligible images '
        '(data already in the store, one location each) are inserted, and '
        'the time from the start of the insert until no location is '
        '``pending_delete`` is measured: it includes the insert and up to '
        'one wakeup_time (1 s). Each member scrubs ``scrub_pool_size = %d`` '
        'images at once. The latency-bound cell deletes from moto\'s S3 '
        'through a proxy adding %d ms to each request (a HEAD and a DELETE '
        'per image); the CPU-bound cell deletes empty files. Every run '
        'checks that the store is empty, that each member exited 0 and, on '
        'S3, that each object got exactly one DELETE.'
        % (meta['runs'], meta['pool'], meta['latency_ms']),
        '',
        '.. list-table::',
        '   :header-rows: 1',
        '',
    ]
    for line in [HEADER] + [row(result, results) for result in results]:
        lines.append('   * - %s' % line[0])
        lines.extend('     - %s' % value for value in line[1:])
    lines.append('')
    return '\n'.join(pages.fold(line) for line in lines) + '\n'


def rendered_pages(data, results_path):
    """{page path: text} this tool makes from a results file."""
    return {RST_PATH: page_text(data, results_path)}


def figures(data):
    """{name: text} of the figures the guide may quote (check_pages.py)."""
    results = data['results']
    named = {}
    for result in results:
        name = 'members-%s-%d' % (result['cell'].lower(), result['members'])
        named[name + '-seconds'] = '%.1f' % seconds(result)
        named[name + '-speedup'] = '%.1fx' % speedup(result, results)
        named[name + '-split'] = ', '.join(
            str(n) for n in result['per_member_last'])
    return named


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='N / 5 and one run: a quick check')
    parser.add_argument('--runs', type=int, default=None,
                        help='runs per cell (default 2; 1 with --quick)')
    parser.add_argument('--json', help='save the results there')
    parser.add_argument('--from-json', metavar='FILE',
                        help='report saved results only, running nothing')
    parser.add_argument('--write-docs', action='store_true',
                        help='write %s' % RST_PATH.relative_to(TREE))
    return parser.parse_args(argv)


def run_all(args):
    runs = args.runs or (1 if args.quick else 2)
    return {'meta': dict(pages.machine(), quick=args.quick, runs=runs,
                         pool=POOL_SIZE, latency_ms=LATENCY * 1000),
            'results': measure(args.quick, runs)}


def main(argv=None):
    args = parse_args(argv)
    data, results_path = pages.saved_or_run(args, run_all, 'members')
    print_table(data['results'])
    if args.write_docs:
        pages.write(rendered_pages(data, results_path))
    return 0 if all(result['clean'] for result in data['results']) else 1


if __name__ == '__main__':
    sys.exit(main())
