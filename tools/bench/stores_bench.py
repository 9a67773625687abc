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

"""Scrub throughput on real stores: Ceph RBD, and an S3 that throttles.

    python tools/bench/stores_bench.py [--quick] [--groups GROUP ...]
        [--runs N] [--json FILE] [--from-json FILE] [--carry FILE]
        [--write-docs]

Each run seeds N pending_delete images in PostgreSQL with their data
really in the store, runs one pass of the real glance-scrubber (this tree
on both backends, or upstream Glance 33.0.0), checks what it scrubbed and
prints a row per cell (the median of the runs).

Groups:

* rbd: a one-node Ceph cluster (tools/backends/ceph_cluster.py); images of
  64 MiB with 8 MiB written, made as glance_store makes them (a protected
  snapshot); OSD replies delayed 4 ms on the scrubber's side (``ms inject
  delay`` in its ceph.conf), as a networked cluster would; pools 1, 4, 8
  and 16. Beside the passes, what a delete costs besides the cluster's
  work (rbd_steps): this tree's in-use look, timed and its OSD requests
  counted, and a RADOS connection opened and shut down, which upstream
  pays per delete.
* swift: a Swift all-in-one with Keystone (tools/backends/swift_cluster.py),
  single tenant, objects written by glance_store; pools 1, 4 and 8.
* swift-net: the same behind proxies that add 20 ms to every request to
  Swift and to Keystone, whose catalog names the proxied Swift; 120 images
  of 4 KiB (40 with --quick), one of them segmented; pools 1, 4 and 8, and
  the ceiling: tools/bench/plain_swift_client.py, plain swiftclient
  threads sharing one token, sending the same HEAD and DELETE through the
  same proxies. ``servers CPU``: CPU seconds of the Swift and Keystone
  processes over the run.
* s3-throttled: moto behind a proxy that adds 25 ms to each request and
  answers ``503 SlowDown`` above 100 requests per second; 300 images,
  pool 32. The share of throttled requests is the proxy's count.

--carry FILE keeps the cells of the groups not run now from an earlier
results file (the page names it).

Pass time: this tree's summary line; upstream logs none, so its pass time
is its wall time minus the median wall time of the same command on an
empty queue. --write-docs writes doc/source/admin/scrubber-stores-
benchmark.rst and a plot per store. Not part of the test suite;
tox -e bench-stores runs it.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import uuid

BENCH = pathlib.Path(__file__).resolve().parent
TREE = BENCH.parent.parent
sys.path.insert(0, str(TREE))

from glance.tests import databases  # noqa: E402
from glance.tests.harness import ceph  # noqa: E402
from glance.tests.harness import fixtures as harness  # noqa: E402
from glance.tests.harness import swift  # noqa: E402
from glance.tests import seed  # noqa: E402

import pages  # noqa: E402
import scrub_bench  # noqa: E402
import upstream_env  # noqa: E402

DOC_DIR = TREE / 'doc' / 'source' / 'admin'
RST_PATH = DOC_DIR / 'scrubber-stores-benchmark.rst'
PLOTS = {'rbd': ('scrubber-rbd-throughput.png',
                 'glance-scrubber on Ceph RBD, 4 ms OSD delay, PostgreSQL'),
         'swift': ('scrubber-swift-throughput.png',
                   'glance-scrubber on Swift with Keystone, PostgreSQL'),
         'swift-net': ('scrubber-swift-net-throughput.png',
                       'glance-scrubber on Swift and Keystone, 20 ms per '
                       'request, PostgreSQL')}
RESULTS_DIR = BENCH / 'results'
GROUPS = ('rbd', 'swift', 'swift-net', 's3-throttled')
PLAIN_SWIFT_CLIENT = BENCH / 'plain_swift_client.py'

RBD_IMAGE_SIZE = 64 * 2 ** 20
RBD_WRITTEN = 8 * 2 ** 20
RBD_CLIENT_OPTIONS = {'ms inject delay type': 'osd',
                      'ms inject delay max': '0.004',
                      'ms inject delay probability': '1',
                      'rbd concurrent management ops': '1'}
S3_LATENCY = 0.025
SWIFT_NET_LATENCY = 0.020
S3_RATE = 100
BUCKET = 'glance-bench-throttled'
SCRUBBER_MAIN = ('import sys; from glance.cmd.scrubber import main; '
                 'sys.exit(main())')


@dataclasses.dataclass
class Cell:
    group: str
    impl: str      # 'ours', 'upstream' or 'ceiling' (no scrubber)
    backend: str   # 'eventlet' or 'threading'
    n: int
    pool: int
    runs: int

    def label(self):
        return '%s %s %s N=%d pool=%d' % (self.group, self.impl,
                                          self.backend, self.n, self.pool)


def plan(quick, groups, runs):
    runs = runs or (1 if quick else 3)
    cells = []
    rbd_n = 8 if quick else 32
    for pool in (1, 4, 8, 16):
        for backend in ('threading', 'eventlet'):
            cells.append(Cell('rbd', 'ours', backend, rbd_n, pool, runs))
        # Upstream's scrubber has used native threads since 31.0.0.
        cells.append(Cell('rbd', 'upstream', 'threading', rbd_n, pool,
                          runs))
    swift_n = 8 if quick else 32
    for pool in (1, 4, 8):
        for backend in ('threading', 'eventlet'):
            cells.append(Cell('swift', 'ours', backend, swift_n, pool,
                              runs))
        if pool in (1, 8):
            cells.append(Cell('swift', 'upstream', 'threading', swift_n,
                              pool, runs))
    net_n = 40 if quick else 120
    for pool in (1, 4, 8):
        for backend in ('threading', 'eventlet'):
            cells.append(Cell('swift-net', 'ours', backend, net_n, pool,
                              runs))
        if pool in (1, 8):
            cells.append(Cell('swift-net', 'ceiling', 'threading', net_n,
                              pool, runs))
    cells.append(Cell('swift-net', 'upstream', 'threading', net_n, 8, runs))
    s3_n = 100 if quick else 300
    for backend in ('threading', 'eventlet'):
        cells.append(Cell('s3-throttled', 'ours', backend, s3_n, 32, runs))
    cells.append(Cell('s3-throttled', 'upstream', 'threading', s3_n, 32,
                      runs))
    return [cell for cell in cells if cell.group in groups]


# --- the stores -------------------------------------------------------------


class RbdStore:
    """The cluster, a pool handle for seeding and checks, the client conf."""

    def __init__(self, workdir):
        self.cluster = ceph.CephCluster()
        self.cluster.setUp()
        self.pool = self.cluster.rbd_pool()
        self.client_conf = ceph.client_conf(
            self.cluster, os.path.join(workdir, 'scrubber-ceph.conf'),
            RBD_CLIENT_OPTIONS)

    def configure(self, config):
        ceph.use_rbd_store(config, self.cluster)
        config.set('glance_store', rbd_store_ceph_conf=self.client_conf)

    def put(self, name):
        # glance_store's layout, at the benchmark's size: a sparse image
        # with the first 8 MiB written, and its protected snapshot.
        return self.pool.put_sparse(name, RBD_IMAGE_SIZE,
                                    b'x' * RBD_WRITTEN)

    def left(self, urls):
        return sum(self.pool.exists(url) for url in urls)

    def throttled(self):
        return None

    def close(self):
        self.pool.close()
        self.cluster.cleanUp()


class SwiftStore:
    """Swift all-in-one with Keystone; glance_store writes the objects."""

    CONTAINER = 'glance-bench'

    def __init__(self, workdir):
        self.cluster = swift.SwiftCluster()
        self.cluster.setUp()
        self.reference = self.cluster.write_reference_file(
            os.path.join(workdir, 'swift-store.conf'))
        self.writer = swift.GlanceStoreWriter(self.reference,
                                              self.CONTAINER)
        self.account = self.cluster.account()

    def configure(self, config):
        config.set('glance_store', **swift.store_options(self.reference,
                                                         self.CONTAINER))

    def put(self, name):
        return self.writer.put(name, b'x' * 4096)

    def left(self, urls):
        return sum(self.account.exists(url) for url in urls)

    def throttled(self):
        return None

    def close(self):
        self.account.close()
        self.cluster.cleanUp()


class SwiftOverNetworkStore:
    """Swift and Keystone each behind a proxy adding 20 ms per request.

    Keystone's catalog names the proxied Swift, so whatever logs in
    through the proxied Keystone reaches Swift through its proxy. The
    benchmark itself seeds and checks straight at Swift. The first image
    of each seeding is segmented (two segments of one glance_store MB).
    """

    CONTAINER = 'glance-bench-net'

    def __init__(self, workdir):
        self.cluster = swift.SwiftCluster()
        self.cluster.setUp()
        self.account = self.cluster.account()
        direct = urllib.parse.urlsplit(self.account.storage_url)
        self.swift_proxy = harness.CountingProxy(
            '%s://%s' % (direct.scheme, direct.netloc), SWIFT_NET_LATENCY)
        self.swift_proxy.setUp()
        self.keystone_proxy = harness.CountingProxy(
            self.cluster.auth_url.rsplit('/v3', 1)[0], SWIFT_NET_LATENCY)
        self.keystone_proxy.setUp()
        self.account.route_catalog(self.swift_proxy.endpoint)
        self.auth_url = self.keystone_proxy.endpoint + '/v3'
        self.reference = self.cluster.write_reference_file(
            os.path.join(workdir, 'swift-net-store.conf'),
            auth_url=self.auth_url)
        self.segmented_writer = swift.GlanceStoreWriter(
            self.cluster.write_reference_file(
                os.path.join(workdir, 'swift-net-writer.conf')),
            self.CONTAINER, segment_mb=1)
        self._segmented_due = True

    def configure(self, config):
        config.set('glance_store', **swift.store_options(self.reference,
                                                         self.CONTAINER))

    def put(self, name):
        if self._segmented_due:
            self._segmented_due = False
            return self.segmented_writer.put(name, b'x' * 2 * swift.STORE_MB)
        return self.account.put(self.CONTAINER, name, b'x' * 4096)

    def start_run(self):
        self._segmented_due = True
        self.servers_cpu_started = servers_cpu(self.cluster)

    def servers_cpu(self):
        return servers_cpu(self.cluster) - self.servers_cpu_started

    def objects(self):
        return self.account.objects(self.CONTAINER)

    def left(self, urls):
        return sum(self.account.exists(url) for url in urls)

    def throttled(self):
        return None

    def close(self):
        self.keystone_proxy.cleanUp()
        self.swift_proxy.cleanUp()
        self.account.close()
        self.cluster.cleanUp()


def servers_cpu(cluster):
    """CPU seconds so far of every process of the cluster's daemons.

    Each daemon runs in a process group of its own (gunicorn's workers
    too), named by its pid file.
    """
    run_dir = os.path.join(cluster.dir, 'run')
    groups = set()
    for entry in os.listdir(run_dir):
        with open(os.path.join(run_dir, entry)) as pid_file:
            groups.add(int(pid_file.read().split()[0]))
    ticks = os.sysconf('SC_CLK_TCK')
    total = 0
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/stat' % pid) as stat:
                fields = stat.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp, ..., utime, stime.
        if int(fields[2]) in groups:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


# --- what an RBD delete costs besides the cluster's work --------------------


RBD_STEP_IMAGES = 16


def rbd_steps(store, workdir):
    """The in-use look and a RADOS connection, through the scrubber's conf.

    Medians over RBD_STEP_IMAGES images made as glance_store makes them,
    with the scrubber's OSD delay: look_ms, this tree's look
    (glance.scrubber.stores.rbd) through a connection kept open, as the
    scrubber's is; connection_ms, a connection opened, the pool opened
    and the connection shut down, what upstream pays for each delete
    besides; look_requests, the OSD requests one look sends.
    """
    from glance.scrubber.stores import rbd as scrubber_rbd
    import rados

    cluster = store.cluster
    names = ['steps-%s' % uuid.uuid4().hex[:12]
             for _image in range(RBD_STEP_IMAGES)]
    urls = [store.put(name) for name in names]
    looks, connections = [], []
    client = rados.Rados(conffile=store.client_conf, rados_id=cluster.user)
    client.connect()
    try:
        with client.open_ioctx(cluster.pool) as ioctx:
            for name in names:
                started = time.perf_counter()
                scrubber_rbd._check_image(ioctx, name)
                looks.append(time.perf_counter() - started)
    finally:
        client.shutdown()
    for _connection in range(RBD_STEP_IMAGES):
        started = time.perf_counter()
        other = rados.Rados(conffile=store.client_conf,
                            rados_id=cluster.user)
        other.connect()
        other.open_ioctx(cluster.pool).close()
        other.shutdown()
        connections.append(time.perf_counter() - started)
    counted = _osd_requests(store, workdir, scrubber_rbd._check_image,
                            names[0])
    baseline = _osd_requests(store, workdir, lambda ioctx, name: None,
                             names[0])
    for url in urls:
        store.pool.remove(url)
    return {'images': RBD_STEP_IMAGES,
            'look_ms': 1000 * statistics.median(looks),
            'connection_ms': 1000 * statistics.median(connections),
            'look_requests': counted - baseline}


def _osd_requests(store, workdir, action, name):
    """OSD requests a connection sends for action(ioctx, name).

    Counted in the client's message log (``debug ms = 1``), which is
    whole once the connection is shut down.
    """
    import rados

    log = os.path.join(workdir, 'rbd-requests-%s.log' % uuid.uuid4().hex)
    conf = ceph.client_conf(store.cluster, log + '.conf',
                            {'debug ms': '1', 'log file': log})
    client = rados.Rados(conffile=conf, rados_id=store.cluster.user)
    client.connect()
    try:
        with client.open_ioctx(store.cluster.pool) as ioctx:
            action(ioctx, name)
    finally:
        client.shutdown()
    with open(log) as lines:
        return sum(' --> ' in line and ' osd_op(' in line for line in lines)


class ThrottledS3Store:
    """moto behind the counting proxy, rate limited."""

    def __init__(self, workdir):
        self.moto = harness.MotoServer(
            log_path=os.path.join(workdir, 'moto.log'))
        self.moto.setUp()
        self.proxy = harness.CountingProxy(self.moto.endpoint, S3_LATENCY)
        self.proxy.setUp()
        self.bucket = harness.S3Bucket(self.moto.endpoint, BUCKET,
                                       url_netloc=self.proxy.netloc)
        self.bucket.create()

    def configure(self, config):
        config.use_s3_store(self.proxy.endpoint, BUCKET)

    def put(self, name):
        return self.bucket.put(name, b'x' * 64)

    def start_run(self):
        self.proxy.reset()
        self.proxy.limit_rate(S3_RATE)

    def left(self, urls):
        keys = set(self.bucket.keys())
        return sum(url.rsplit('/', 1)[1] in keys for url in urls)

    def throttled(self):
        requests = len(self.proxy.requests)
        return self.proxy.throttled / requests if requests else 0.0

    def close(self):
        self.proxy.cleanUp()
        self.moto.cleanUp()


STORES = {'rbd': RbdStore, 'swift': SwiftStore,
          'swift-net': SwiftOverNetworkStore,
          's3-throttled': ThrottledS3Store}


# --- one cell ---------------------------------------------------------------


def run_cell(cell, store, workdir, pythons):
    os.makedirs(workdir)
    if cell.impl == 'ceiling':
        return run_ceiling(cell, store, workdir)
    database = databases.Database('postgresql', migrate=cell.impl == 'ours')
    database.setUp()
    try:
        config = harness.ScrubberConfig(
            os.path.join(workdir, 'scrubber.conf'), database.url,
            os.path.join(workdir, 'locks'), scrub_pool_size=cell.pool)
        config.set('glance_store', filesystem_store_datadir=None)
        store.configure(config)
        config.write()
        python = pythons[cell.impl]
        if cell.impl == 'upstream':
            upstream_db_sync(python, config.path, workdir)
        idle = [run_scrubber(cell, python, config, workdir, store,
                             'idle-%d' % attempt)
                for attempt in range(2 if cell.impl == 'upstream' else 0)]
        runs = []
        for attempt in range(cell.runs):
            urls = seed_images(database.engine, store, cell.n)
            run = run_scrubber(cell, python, config, workdir, store,
                               'run-%d' % attempt)
            run['left'] = store.left(urls)
            if cell.impl == 'ours' and (run['left'] or run['exit'] != 0):
                raise AssertionError('%s: exit %s, %d images left'
                                     % (cell.label(), run['exit'],
                                        run['left']))
            runs.append(run)
    finally:
        database.cleanUp()
    return result_of(cell, idle, runs)


def run_ceiling(cell, store, workdir):
    """plain_swift_client.py over the same objects and proxies."""
    runs = []
    for attempt in range(cell.runs):
        urls = [store.put(str(uuid.uuid4())) for _image in range(cell.n)]
        names = os.path.join(workdir, 'names-%d' % attempt)
        with open(names, 'w') as stream:
            stream.write('\n'.join(store.objects()))
        store.start_run()
        cluster = store.cluster
        seconds = subprocess.run(
            [sys.executable, str(PLAIN_SWIFT_CLIENT), store.auth_url,
             cluster.user, cluster.password, cluster.project,
             store.CONTAINER, names, str(cell.pool)],
            check=True, capture_output=True, text=True,
            env=harness.scrubber_environment()).stdout.split()[-1]
        runs.append({'exit': 0, 'wall': float(seconds), 'cpu': 0.0,
                     'rss': 0.0, 'left': store.left(urls),
                     'summary': {'seconds': float(seconds)},
                     'throttled_share': None,
                     'servers_cpu': store.servers_cpu()})
    return result_of(cell, [], runs)


def upstream_db_sync(python, config_path, workdir):
    code = SCRUBBER_MAIN.replace('scrubber', 'manage')
    subprocess.run([python, '-c', code, '--config-file', config_path, 'db',
                    'sync'], check=True, cwd=workdir, capture_output=True,
                   env=harness.scrubber_environment())


def seed_images(engine, store, count):
    images = []
    for _ in range(count):
        image_id = str(uuid.uuid4())
        url = store.put(image_id)
        images.append(seed.Image(id=image_id,
                                 locations=[seed.Location(url)]))
    seed.insert(engine, images)
    return [image.locations[0].url for image in images]


def run_scrubber(cell, python, config, workdir, store, tag):
    if hasattr(store, 'start_run'):
        store.start_run()
    prefix = os.path.join(workdir, tag)
    # This tree's glance is the tree of this file, whatever glance the
    # venv running the benchmark has installed; upstream's is its venv's.
    env = harness.scrubber_environment({
        harness.BACKEND_VARIABLE: cell.backend,
        'PYTHONPATH': str(TREE) if cell.impl == 'ours' else None,
        'PYTHONWARNINGS': 'ignore'})
    # Run from the work folder, where no glance is.
    command = [python, '-c', SCRUBBER_MAIN, '--config-file', config.path]
    returncode, wall, cpu, rss = scrub_bench.measure(command, env, workdir,
                                                     prefix)
    with open(prefix + '.out') as out, open(prefix + '.err') as err:
        summaries = harness.parse_summaries(out.read() + err.read())
    run = {'exit': returncode, 'wall': wall, 'cpu': cpu, 'rss': rss,
           'summary': summaries[-1] if summaries else None,
           'throttled_share': store.throttled()}
    if hasattr(store, 'servers_cpu'):
        run['servers_cpu'] = store.servers_cpu()
    return run


def result_of(cell, idle, runs):
    if cell.impl != 'upstream':
        passes = [run['summary']['seconds'] for run in runs]
    else:
        startup = statistics.median(run['wall'] for run in idle)
        passes = [max(run['wall'] - startup, 1e-3) for run in runs]
    scrubbed = [cell.n - run['left'] for run in runs]
    rates = [done / seconds for done, seconds in zip(scrubbed, passes)]
    result = dataclasses.asdict(cell)
    result.update(
        pass_s=statistics.median(passes),
        images_per_s=statistics.median(rates), images_per_s_all=rates,
        unscrubbed=max(run['left'] for run in runs),
        exit_codes=sorted({run['exit'] for run in runs}),
        cpu_s=statistics.median(run['cpu'] for run in runs),
        wall_s=statistics.median(run['wall'] for run in runs),
        peak_rss_mb=max(run['rss'] for run in runs))
    if 'servers_cpu' in runs[0]:
        result['servers_cpu_s'] = statistics.median(
            run['servers_cpu'] for run in runs)
    shares = [run['throttled_share'] for run in runs
              if run['throttled_share'] is not None]
    if shares:
        result['throttled_share'] = max(shares)
    return result


# --- reporting --------------------------------------------------------------


def speedups(results):
    """images/s of each cell over the same store, impl, backend at pool 1."""
    base = {(r['group'], r['impl'], r['backend']): r['images_per_s']
            for r in results if r['pool'] == 1}
    return {(r['group'], r['impl'], r['backend'], r['pool']):
            r['images_per_s'] / base[r['group'], r['impl'], r['backend']]
            for r in results
            if (r['group'], r['impl'], r['backend']) in base}


IMPLS = {'ours': 'this tree', 'upstream': 'upstream 33.0.0',
         'ceiling': 'plain swiftclient'}


def rows(results):
    gains = speedups(results)
    header = ['store', 'scrubber', 'backend', 'N', 'pool', 'pass s',
              'img/s', 'x pool 1', 'not scrubbed', 'exit', 'throttled',
              'CPU s', 'process s', 'servers CPU s', 'peak MB']
    table = [header]
    for r in results:
        gain = gains.get((r['group'], r['impl'], r['backend'], r['pool']))
        share = r.get('throttled_share')
        scrubber = r['impl'] != 'ceiling'
        table.append([
            r['group'], IMPLS[r['impl']], r['backend'], str(r['n']),
            str(r['pool']), '%.1f' % r['pass_s'],
            '%.2f' % r['images_per_s'],
            '%.1f' % gain if gain is not None else '',
            str(r['unscrubbed']), ','.join(map(str, r['exit_codes'])),
            '%.0f%%' % (100 * share) if share is not None else '',
            '%.1f' % r['cpu_s'] if scrubber else '',
            '%.1f' % r['wall_s'] if 'wall_s' in r and scrubber else '',
            '%.1f' % r['servers_cpu_s'] if 'servers_cpu_s' in r else '',
            '%.0f' % r['peak_rss_mb'] if scrubber else ''])
    return table


def _cell(results, group, impl, backend, pool):
    for r in results:
        if (r['group'], r['impl'], r['backend'], r['pool']) == (
                group, impl, backend, pool):
            return r
    return None


def checks(results):
    """The issue's goals, each with its verdict."""
    found = []
    gain = speedups(results).get(('rbd', 'ours', 'threading', 8))
    if gain is not None:
        found.append(('RBD: pool 8 at least 2.5x pool 1 on the default '
                      '(threading) backend', '%.1fx' % gain, gain >= 2.5))
    for pool in (1, 4, 8, 16):
        ours = _cell(results, 'rbd', 'ours', 'threading', pool)
        upstream = _cell(results, 'rbd', 'upstream', 'threading', pool)
        if ours and upstream:
            found.append((
                'RBD, pool %d: this tree at least as fast as upstream'
                % pool, '%.2f against %.2f images/s' % (
                    ours['images_per_s'], upstream['images_per_s']),
                ours['images_per_s'] >= upstream['images_per_s']))
    found.extend(_swift_net_checks(results))
    for r in results:
        if r['group'] == 's3-throttled' and r['impl'] == 'ours':
            ok = (r['unscrubbed'] == 0 and r['exit_codes'] == [0]
                  and r['throttled_share'] <= 0.2)
            found.append((
                'S3 at 100 req/s, pool 32, %s: all %d scrubbed, exit 0, '
                'at most 20%% throttled' % (r['backend'], r['n']),
                '%d left, exit %s, %.0f%% throttled' % (
                    r['unscrubbed'], ','.join(map(str, r['exit_codes'])),
                    100 * r['throttled_share']), ok))
    return found


def _swift_net_checks(results):
    """Swift over a network, pool 8: against pool 1, ceiling, upstream."""
    one = _cell(results, 'swift-net', 'ours', 'threading', 1)
    eight = _cell(results, 'swift-net', 'ours', 'threading', 8)
    ceiling = _cell(results, 'swift-net', 'ceiling', 'threading', 8)
    upstream = _cell(results, 'swift-net', 'upstream', 'threading', 8)
    if not (one and eight):
        return []
    gain = eight['images_per_s'] / one['images_per_s']
    measured = '%.1fx pool 1' % gain
    met = gain >= 4
    if ceiling:
        share = eight['images_per_s'] / ceiling['images_per_s']
        measured += ', %.2f of the ceiling' % share
        met = met or share >= 0.8
    found = [('Swift over a network, pool 8: at least 4x pool 1, or '
              'within 0.8 of the plain swiftclient ceiling', measured, met)]
    if upstream:
        ratio = upstream['wall_s'] / eight['wall_s']
        found.append(('Swift over a network, pool 8: process time at '
                      'least 5x shorter than upstream\'s',
                      '%.1fx (%.1f s against %.1f s)' % (
                          ratio, eight['wall_s'], upstream['wall_s']),
                      ratio >= 5))
    return found


def print_report(results, stream=sys.stdout):
    table = rows(results)
    widths = [max(len(row[column]) for row in table)
              for column in range(len(table[0]))]
    for row in table:
        print('  '.join(value.rjust(width)
                        for value, width in zip(row, widths)), file=stream)
    print(file=stream)
    for goal, measured, ok in checks(results):
        print('%s  %s: %s' % ('MET    ' if ok else 'NOT MET', goal,
                              measured), file=stream)


def page_text(data, results_path):
    results, meta = data['results'], data['meta']
    table = rows(results)
    lines = pages.generated_header(__file__, results_path) + [
        '==========================================================',
        'Scrubber benchmark: Ceph RBD, Swift and a throttling S3',
        '==========================================================',
        '',
        'Generated by ``tools/bench/stores_bench.py --write-docs`` '
        '(``tox -e bench-stores``) on %s: %s, %d run(s) per '
        'cell, the median shown. PostgreSQL; every cell runs the real '
        '``glance-scrubber`` as a process of its own.' % (
            meta['date'], pages.describe(meta), meta['runs']),
        '',
    ]
    if meta.get('note'):
        lines += [meta['note'][0].upper() + meta['note'][1:] + '.', '']
    if meta.get('carried'):
        carried = meta['carried']
        lines += ['The %s rows are carried over from ``%s`` (measured on '
                  '%s with the tree of then); the others were measured on '
                  '%s.' % (', '.join(carried['groups']), carried['from'],
                           carried['date'], meta['date']), '']
    lines += [
        '* **rbd**: a one-node Ceph cluster (memstore OSD); images of 64 '
        'MiB with 8 MiB written, made as glance_store makes them; OSD '
        'replies delayed 4 ms on the scrubber\'s side, as a networked '
        'cluster would. ``x pool 1``: images per second over the same '
        'scrubber and backend at pool 1. Upstream opens a RADOS connection '
        'per delete; this tree keeps one per store, shared by its workers, '
        'and looks for clones and watchers through it before each delete.'
        + _rbd_steps_text(data.get('rbd_steps')),
        '* **swift**: a Swift all-in-one with Keystone '
        '(``tools/backends/swift_cluster.py``), single tenant; objects of 4 '
        'KiB written by glance_store. glance_store alone (upstream) logs in '
        'to Keystone for every delete; this tree\'s workers share one '
        'login, and a delete is a round trip to a local Swift: pools above '
        '1 did not pay on this loopback Swift.',
        '* **swift-net**: the same Swift and Keystone, each behind a proxy '
        'adding 20 ms to every request, Keystone\'s catalog naming the '
        'proxied Swift; objects of 4 KiB, the first of each run segmented '
        '(two segments). ``plain swiftclient``: the ceiling of this '
        'harness: one login, then threads sharing its token and sending the '
        'same HEAD and DELETE through the same proxies, with no database '
        'and no glance_store (``tools/bench/plain_swift_client.py``). '
        '``process s``: the whole process, start-up included. ``servers '
        'CPU s``: CPU of the Swift and Keystone processes over the run, on '
        'the same %d cores.' % meta['cores'],
        '* **s3-throttled**: moto behind a proxy adding 25 ms per request '
        'and answering ``503 SlowDown`` above 100 requests per second. '
        '``throttled``: the share of requests the proxy answered so, '
        'the worst run.',
        '',
        'Goals:',
        '',
    ]
    for goal, measured, ok in checks(results):
        verdict = 'met' if ok else 'not met'
        lines.append('* %s: %s, **%s**.' % (goal, measured, verdict))
    lines += ['', '.. list-table::', '   :header-rows: 1', '']
    for row in table:
        lines.append('   * - ' + row[0])
        lines.extend(('     - ' + value).rstrip() for value in row[1:])
    for group, (file_name, title) in PLOTS.items():
        if any(r['group'] == group for r in results):
            lines += ['', '.. image:: %s' % file_name,
                      '   :alt: %s: images per second against '
                      'scrub_pool_size' % title]
    lines.append('')
    return '\n'.join(_folded(line) for line in lines)


def _rbd_steps_text(steps):
    if not steps:
        return ''
    return (' Besides the cluster\'s work, measured on %d images: the look '
            'is %d OSD requests (opening the image read-only is most of '
            'them), %.0f ms; a RADOS connection opened and shut down, which '
            'upstream pays for every delete, %.0f ms.' % (
                steps['images'], steps['look_requests'], steps['look_ms'],
                steps['connection_ms']))


def rendered_pages(data, results_path):
    """{page path: text} this tool makes from a results file."""
    return {RST_PATH: page_text(data, results_path)}


def figures(data):
    """{name: text} of the figures the guide may quote (check_pages.py).

    stores-GROUP-IMPL-BACKEND-poolN-rate: images per second; -xpool1:
    over the same scrubber and backend at pool 1; -pass and -per-image:
    pass seconds, in all and per image; -wall: the process's seconds;
    -vs-upstream and -of-ceiling: images per second over upstream's, or
    the plain client's, at the same pool; -throttled: the share of
    requests answered 503, the worst run (s3-throttled).
    stores-rbd-look-ms, -look-requests and -connection-ms: rbd_steps().
    """
    results = data['results']
    named = {}
    for result in results:
        name = 'stores-%s-%s-%s-pool%d' % (result['group'], result['impl'],
                                           result['backend'], result['pool'])
        named[name + '-rate'] = '%.2f' % result['images_per_s']
        alone = [other for other in results
                 if (other['group'], other['impl'], other['backend'],
                     other['pool']) == (result['group'], result['impl'],
                                        result['backend'], 1)]
        if alone:
            named[name + '-xpool1'] = '%.1fx' % (
                result['images_per_s'] / alone[0]['images_per_s'])
        named[name + '-pass'] = '%.1f' % result['pass_s']
        named[name + '-per-image'] = '%.3f' % (result['pass_s'] /
                                               result['n'])
        if result.get('wall_s'):
            named[name + '-wall'] = '%.1f' % result['wall_s']
        for other, suffix in (('upstream', '-vs-upstream'),
                              ('ceiling', '-of-ceiling')):
            peers = [peer for peer in results
                     if (peer['group'], peer['impl'], peer['pool']) ==
                     (result['group'], other, result['pool'])]
            if peers and result['impl'] == 'ours':
                named[name + suffix] = '%.2f' % (
                    result['images_per_s'] / peers[0]['images_per_s'])
        if result.get('throttled_share') is not None:
            named[name + '-throttled'] = '%.1f%%' % (
                100 * result['throttled_share'])
    steps = data.get('rbd_steps')
    if steps:
        named['stores-rbd-look-ms'] = '%.0f' % steps['look_ms']
        named['stores-rbd-look-requests'] = '%d' % steps['look_requests']
        named['stores-rbd-connection-ms'] = '%.0f' % steps['connection_ms']
    return named


def _folded(line):
    """A prose line or bullet folded at 79 columns (doc8's limit)."""
    if len(line) <= 79 or line.startswith((' ', '..', '=')):
        return line
    indent = '  ' if line.startswith('* ') else ''
    return textwrap.fill(line, 79, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def plot(results, group):
    file_name, title = PLOTS[group]
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=110)
    series = (('ours', 'threading', 'this tree, threading (default)', 's-'),
              ('ours', 'eventlet', 'this tree, eventlet', 'o-'),
              ('upstream', 'threading', 'upstream 33.0.0', 'v-'),
              ('ceiling', 'threading', 'plain swiftclient, one token '
               '(ceiling)', 'k--'))
    pools = set()
    for impl, backend, label, style in series:
        cells = sorted((r for r in results if r['group'] == group and
                        r['impl'] == impl and r['backend'] == backend),
                       key=lambda r: r['pool'])
        if cells:
            pools.update(r['pool'] for r in cells)
            axes.plot([r['pool'] for r in cells],
                      [r['images_per_s'] for r in cells], style,
                      label=label)
    axes.set_xscale('log', base=2)
    axes.set_xticks(sorted(pools))
    axes.set_xticklabels([str(pool) for pool in sorted(pools)])
    axes.set_xlabel('scrub_pool_size')
    axes.set_ylabel('images scrubbed per second (pass time)')
    axes.set_title(title)
    axes.grid(True, which='both', alpha=0.3)
    axes.legend(loc='upper left', fontsize='small')
    figure.tight_layout()
    figure.savefig(DOC_DIR / file_name)
    pyplot.close(figure)


# --- main -------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer images, one run per cell')
    parser.add_argument('--groups', nargs='+', choices=GROUPS,
                        default=list(GROUPS))
    parser.add_argument('--runs', type=int)
    parser.add_argument('--json', help='save the results there')
    parser.add_argument('--from-json', help='report saved results')
    parser.add_argument('--carry', help='keep the cells of the groups not '
                        'run now from this earlier results file')
    parser.add_argument('--write-docs', action='store_true')
    return parser.parse_args(argv)


def run_all(args):
    cells = plan(args.quick, args.groups, args.runs)
    pythons = {'ours': sys.executable}
    if any(cell.impl == 'upstream' for cell in cells):
        pythons['upstream'] = str(upstream_env.ensure(with_ceph=True))
    workdir = tempfile.mkdtemp(prefix='stores-bench-')
    print('work folder: %s' % workdir, flush=True)
    results = []
    steps = None
    for group in args.groups:
        group_cells = [cell for cell in cells if cell.group == group]
        if not group_cells:
            continue
        store = STORES[group](workdir)
        try:
            if group == 'rbd':
                steps = rbd_steps(store, workdir)
                print('rbd steps: %s' % json.dumps(steps), flush=True)
            for cell in group_cells:
                started = time.monotonic()
                results.append(run_cell(
                    cell, store, os.path.join(workdir, 'cell-%02d'
                                              % len(results)), pythons))
                # Kept as it goes: a late failure loses no cell.
                save(args.json, results)
                print('%5.0f s  %s' % (time.monotonic() - started,
                                       '  '.join(rows(results)[-1])),
                      flush=True)
        finally:
            store.close()
    meta = dict(pages.machine(), runs=args.runs or (1 if args.quick else 3),
                quick=args.quick)
    data = {'meta': meta, 'results': results}
    if steps:
        data['rbd_steps'] = steps
    return data


def carry(data, path):
    """Add the cells of the groups not measured now from *path*."""
    with open(path) as saved:
        earlier = json.load(saved)
    measured = {r['group'] for r in data['results']}
    kept = [r for r in earlier['results'] if r['group'] not in measured]
    groups = [group for group in GROUPS
              if any(r['group'] == group for r in kept)]
    data['results'] = sorted(data['results'] + kept,
                             key=lambda r: GROUPS.index(r['group']))
    if 'rbd' in groups and 'rbd_steps' in earlier:
        data['rbd_steps'] = earlier['rbd_steps']
    data['meta']['carried'] = {'from': os.path.basename(path),
                               'date': earlier['meta']['date'],
                               'groups': groups}


def save(path, results):
    if path:
        with open(path, 'w') as saved:
            json.dump({'partial': results}, saved, indent=1)


def run_and_carry(args):
    """A new run, with the groups it did not run carried (--carry)."""
    data = run_all(args)
    if args.carry:
        carry(data, args.carry)
    return data


def main(argv=None):
    args = parse_args(argv)
    data, results_path = pages.saved_or_run(args, run_and_carry, 'stores')
    print_report(data['results'])
    if args.write_docs:
        pages.write(rendered_pages(data, results_path))
        for group in PLOTS:
            if any(r['group'] == group for r in data['results']):
                plot(data['results'], group)
    return 0


if __name__ == '__main__':
    sys.exit(main())
