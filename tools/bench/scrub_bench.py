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

"""Scrub throughput, CPU and memory: this tree against upstream Glance.

    python tools/bench/scrub_bench.py [--quick] [--cells GROUP ...]
        [--runs N] [--json FILE] [--write-docs] [--from-results FILE]
        [--profile DIR]

A run saves its raw results in tools/bench/results/scrub-DATE.json (or
--json FILE); ``--from-results FILE --write-docs`` rewrites the page and
the plot from saved results without running anything (``--from-json`` is
the same option).

Each cell seeds N pending_delete images (rows written with
glance.tests.seed, data really in the store), runs one pass of the real
glance-scrubber as a process of its own, measures it, checks every image
was scrubbed (rows 'deleted', data gone) and prints one table row:

* pass s: this tree logs the pass time in its "Scrub pass summary" line;
  upstream logs none, so its pass time is the process wall time minus
  the median wall time of the same command on an empty queue (start-up
  and shut-down), measured in the same cell.
* CPU s: the child's own rusage (os.wait4), user + system; peak RSS: the
  child's VmHWM, read from /proc while it runs (ru_maxrss would carry
  this process's own high water mark across the exec).
* SQL/img: SQL statements plus COMMIT/ROLLBACK per image, counted in the
  scrubber process by tools/bench/counted_scrubber.py (one SQLAlchemy
  listener), minus those of the empty-queue run.
* k: S3 requests per image, counted by the proxy (minus the empty-queue
  run's); ideal = N * k * L / pool, the pass time if only the store's
  latency L mattered.
* ideal/plain: ideal over the time tools/bench/plain_s3_client.py (plain
  boto3, the same HEAD and DELETE per image, pool threads, no database,
  no scrubber) takes through the same proxy and server: the best
  ideal/actual this harness allows on this machine.

Groups (--cells): file, s3, memory (this tree), upstream-file,
upstream-s3. Default: all. The benchmark is not part of the test suite.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid

BENCH = pathlib.Path(__file__).resolve().parent
TREE = BENCH.parent.parent
sys.path.insert(0, str(TREE))

import sqlalchemy as sa  # noqa: E402

from glance.tests import databases  # noqa: E402
from glance.tests.harness import fixtures as harness  # noqa: E402
from glance.tests import seed  # noqa: E402

import pages  # noqa: E402
import upstream_env  # noqa: E402

COUNTED_SCRUBBER = BENCH / 'counted_scrubber.py'
PLAIN_S3_CLIENT = BENCH / 'plain_s3_client.py'
DOC_DIR = TREE / 'doc' / 'source' / 'admin'
RST_PATH = DOC_DIR / 'scrubber-benchmark.rst'
PNG_PATH = DOC_DIR / 'scrubber-throughput.png'
LATENCY = 0.025          # seconds the proxy adds to each S3 request
RUN_TIMEOUT = 3600
BUCKET = 'glance-bench'
GROUPS = ('file', 'upstream-file', 's3', 'upstream-s3', 'memory')
DB_NAMES = {'sqlite': 'SQLite', 'mysql': 'MariaDB',
            'postgresql': 'PostgreSQL'}


@dataclasses.dataclass
class Cell:
    group: str
    impl: str            # 'ours' or 'upstream'
    backend: str         # 'eventlet' or 'threading'
    store: str           # 'file' or 's3'
    database: str        # 'sqlite', 'mysql', 'postgresql'
    n: int
    pool: int
    runs: int
    locations: int = 1
    note: str = ''

    @property
    def key(self):
        return (self.store, self.database, self.backend, self.pool)

    def label(self):
        return '%s %s %s/%s N=%d pool=%d' % (
            self.impl, self.backend, self.store, self.database, self.n,
            self.pool)


@dataclasses.dataclass
class Run:
    wall: float
    cpu: float
    peak_rss_mb: float
    returncode: int
    summary: dict
    statements: int
    store_requests: int
    errors: int
    unscrubbed: int = 0
    service_ms: float = None


# --- the cells --------------------------------------------------------------


def plan(quick, groups, runs):
    """The cells to run, in order: ours next to upstream, per setup."""
    sizes = {
        'file': 200 if quick else 5000,
        'upstream-file': 200 if quick else 1000,
        's3': 60 if quick else 500,
        'upstream-s3': 30 if quick else 100,
        'memory': (1000, 10000) if quick else (10000, 100000),
    }
    runs = runs or (1 if quick else 3)
    cells = []
    for database in ('sqlite', 'mysql', 'postgresql'):
        for pool in (1, 16):
            # The default backend first, eventlet beside it.
            for backend in ('threading', 'eventlet'):
                cells.append(Cell('file', 'ours', backend, 'file', database,
                                  sizes['file'], pool, runs))
            cells.append(Cell('upstream-file', 'upstream', 'eventlet',
                              'file', database, sizes['upstream-file'], pool,
                              runs))
    for pool in (1, 4, 16, 64):
        for backend in ('eventlet', 'threading'):
            cells.append(Cell('s3', 'ours', backend, 's3', 'postgresql',
                              sizes['s3'], pool, runs))
        cells.append(Cell('upstream-s3', 'upstream', 'eventlet', 's3',
                          'postgresql', sizes['upstream-s3'], pool, runs))
    for n in sizes['memory']:
        cells.append(Cell('memory', 'ours', 'threading', 'file',
                          'postgresql', n, 16, 1))
    return [cell for cell in cells if cell.group in groups]


# --- measuring one process --------------------------------------------------


def measure(command, env, cwd, log_prefix, timeout=RUN_TIMEOUT):
    """Run *command* to its end: (returncode, wall s, CPU s, peak RSS MB).

    The child is reaped with os.wait4, whose rusage gives its own user +
    system CPU seconds. Its peak resident set is read from VmHWM in
    /proc while it runs, not from ru_maxrss: Linux carries the high water
    mark of the memory the child had before exec, which is this (large)
    benchmark process's. Output goes to files: a pipe could block it.
    """
    with open(log_prefix + '.out', 'w') as out, \
            open(log_prefix + '.err', 'w') as err:
        start = time.monotonic()
        process = subprocess.Popen(command, env=env, cwd=cwd,
                                   stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=err, start_new_session=True)
        watcher = _PeakWatcher(process.pid)
        watcher.start()
        timer = threading.Timer(timeout, _kill_group, (process.pid,))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
            watcher.stop()
        wall = time.monotonic() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return (process.returncode, wall, usage.ru_utime + usage.ru_stime,
            watcher.peak_kib / 1024.0)


class _PeakWatcher(threading.Thread):
    """Reads a process's VmHWM (peak RSS, KiB) every 20 ms until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self._path = '/proc/%d/status' % pid
        self._stopping = threading.Event()
        self.peak_kib = 0

    def run(self):
        while not self._stopping.wait(0.02):
            try:
                with open(self._path) as status:
                    for line in status:
                        if line.startswith('VmHWM:'):
                            self.peak_kib = max(self.peak_kib,
                                                int(line.split()[1]))
            except (OSError, ValueError):
                return  # gone (or a zombie without memory)

    def stop(self):
        self._stopping.set()
        self.join()


def _error_lines(output):
    # Upstream reports a failed image in its log only.
    return sum(1 for line in output.splitlines()
               if ' ERROR glance' in line)


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read(path):
    with open(path) as stream:
        return stream.read()


# --- one setup: database, store, config -------------------------------------


class Setup:
    """A database and a store for one cell, emptied and seeded per run."""

    def __init__(self, cell, workdir, s3, pythons):
        self.cell = cell
        self.workdir = workdir
        self.s3 = s3
        self.python = pythons[cell.impl]
        os.makedirs(workdir)
        self.database = databases.Database(cell.database,
                                           migrate=cell.impl == 'ours')
        self.database.setUp()
        self.engine = self.database.engine
        self.config = harness.ScrubberConfig(
            os.path.join(workdir, 'scrubber.conf'), self.database.url,
            os.path.join(workdir, 'locks'),
            scrub_pool_size=cell.pool)
        if cell.store == 'file':
            self.datadir = os.path.join(workdir, 'images')
            os.makedirs(self.datadir)
            self.config.use_file_store(self.datadir)
        else:
            self.config.use_s3_store(s3.proxy.endpoint, BUCKET)
        self.config.write()
        if cell.impl == 'upstream':
            self._upstream_db_sync()

    def close(self):
        self.database.cleanUp()

    def _upstream_db_sync(self):
        # Upstream's own migrations lay its schema down. cwd is the work
        # folder: upstream's commands put argv[0]'s grandparent on
        # sys.path when it holds a glance package.
        code = ('import sys; from glance.cmd.manage import main; '
                'sys.exit(main())')
        subprocess.run([self.python, '-c', code, '--config-file',
                        self.config.path, 'db', 'sync'], check=True,
                       cwd=self.workdir, capture_output=True,
                       env=harness.scrubber_environment())

    # data

    def empty(self):
        tables = ('image_locations', 'image_properties', 'image_tags',
                  'image_members', 'images')
        with self.engine.begin() as connection:
            for table in tables:
                connection.execute(sa.text('DELETE FROM %s' % table))
        if self.cell.database == 'postgresql':
            self._vacuum()
        if self.cell.store == 'file':
            shutil.rmtree(self.datadir)
            os.makedirs(self.datadir)
        else:
            self.s3.empty_bucket()

    def _vacuum(self):
        with self.engine.connect().execution_options(
                isolation_level='AUTOCOMMIT') as connection:
            connection.execute(sa.text('VACUUM ANALYZE images'))
            connection.execute(sa.text('VACUUM ANALYZE image_locations'))

    def seed(self):
        """N images, each with its locations' data in the store."""
        images = []
        for _ in range(self.cell.n):
            image_id = str(uuid.uuid4())
            urls = [self._put('%s-%d' % (image_id, index))
                    for index in range(self.cell.locations)]
            images.append(seed.Image(id=image_id, locations=[
                seed.Location(url) for url in urls]))
        seed.insert(self.engine, images)
        if self.cell.database == 'postgresql':
            self._vacuum()
        return [image.id for image in images]

    def _put(self, name):
        if self.cell.store == 'file':
            path = os.path.join(self.datadir, name)
            open(path, 'wb').close()
            return 'file://' + path
        return self.s3.put(name)

    def verify(self, image_ids):
        """How many images are not scrubbed: rows not 'deleted', data left.

        This tree must scrub them all (raises AssertionError); upstream
        failing some is a result, reported as such.
        """
        with self.engine.connect() as connection:
            images = dict(connection.execute(
                sa.select(seed.IMAGES.c.status, sa.func.count())
                .group_by(seed.IMAGES.c.status)).all())
            locations = dict(connection.execute(
                sa.select(seed.LOCATIONS.c.status, sa.func.count())
                .group_by(seed.LOCATIONS.c.status)).all())
        left = (len(os.listdir(self.datadir)) if self.cell.store == 'file'
                else len(self.s3.bucket.keys()))
        expected_locations = len(image_ids) * self.cell.locations
        if (images == {'deleted': len(image_ids)} and
                locations == {'deleted': expected_locations} and not left):
            return 0
        message = ('%s: not all scrubbed: images %s, locations %s, %d '
                   'objects left in the store' % (
                       self.cell.label(), images, locations, left))
        if self.cell.impl == 'ours':
            raise AssertionError(message)
        print(message, flush=True)
        return len(image_ids) - images.get('deleted', 0)

    # running

    def run_scrubber(self, tag):
        prefix = os.path.join(self.workdir, tag)
        env = harness.scrubber_environment({
            harness.BACKEND_VARIABLE: self.cell.backend,
            'BENCH_COUNT_FILE': prefix + '.counts',
            'PYTHONPATH': None,
            'PYTHONWARNINGS': 'ignore'})
        if self.s3:
            self.s3.proxy.reset()
        # The memory cells run the console script itself, without the
        # statement counter's listener, so that nothing but the scrubber
        # is measured.
        counting = self.cell.group != 'memory'
        if counting:
            command = [self.python, str(COUNTED_SCRUBBER)]
        else:
            command = [os.path.join(os.path.dirname(self.python),
                                    'glance-scrubber')]
        command += ['--config-file', self.config.path]
        returncode, wall, cpu, rss = measure(command, env, self.workdir,
                                             prefix)
        output = _read(prefix + '.out') + _read(prefix + '.err')
        if returncode != 0 and self.cell.impl == 'ours':
            raise RuntimeError('%s: exit %s\n%s' % (
                self.cell.label(), returncode, output[-3000:]))
        counts = {}
        if counting:
            with open(prefix + '.counts') as counts_file:
                counts = json.load(counts_file)
            self._check_glance(counts['glance'])
        summaries = harness.parse_summaries(output)
        statements = (counts.get('statements', 0) + counts.get('commits', 0)
                      + counts.get('rollbacks', 0))
        requests = len(self.s3.proxy.requests) if self.s3 else 0
        return Run(wall, cpu, rss, returncode,
                   summaries[-1] if summaries else None, statements,
                   requests, _error_lines(output),
                   service_ms=self._service_ms())

    def _service_ms(self):
        # What a request really took behind the proxy: its delay plus
        # moto's own time, as the scrubber saw it (less the loopback hops).
        done = self.s3.proxy.finished_requests() if self.s3 else []
        if not done:
            return None
        return 1000 * statistics.mean(request.end - request.start
                                      for request in done)

    def _check_glance(self, glance_dir):
        ours = glance_dir == str(TREE / 'glance')
        if ours != (self.cell.impl == 'ours'):
            raise RuntimeError('%s ran the glance at %s' % (
                self.cell.label(), glance_dir))


class S3Service:
    """moto behind the latency-adding CountingProxy, for every S3 cell."""

    def __init__(self, workdir):
        self.workdir = workdir
        self._plain_seconds = {}
        self.moto = harness.MotoServer(
            log_path=os.path.join(workdir, 'moto.log'))
        self.moto.setUp()
        self.proxy = harness.CountingProxy(self.moto.endpoint, LATENCY)
        self.proxy.setUp()
        # Seeding and checks talk to moto directly; URLs name the proxy.
        self.bucket = harness.S3Bucket(self.moto.endpoint, BUCKET,
                                       url_netloc=self.proxy.netloc)
        self.bucket.create()

    def put(self, key):
        return self.bucket.put(key, b'x' * 64)

    def empty_bucket(self):
        for key in self.bucket.keys():
            self.bucket.client.delete_object(Bucket=BUCKET, Key=key)

    def plain_client_seconds(self, n, pool, runs):
        """Median seconds plain boto3 takes to delete n objects (cached)."""
        if (n, pool) not in self._plain_seconds:
            self._plain_seconds[n, pool] = statistics.median(
                self._plain_client_run(n, pool) for _run in range(runs))
        return self._plain_seconds[n, pool]

    def _plain_client_run(self, n, pool):
        self.empty_bucket()
        keys = ['plain-%d' % index for index in range(n)]
        for key in keys:
            self.put(key)
        keys_file = os.path.join(self.workdir, 'plain-keys')
        with open(keys_file, 'w') as stream:
            stream.write('\n'.join(keys))
        done = subprocess.run(
            [sys.executable, str(PLAIN_S3_CLIENT), self.proxy.endpoint,
             BUCKET, keys_file, str(pool)], check=True, capture_output=True,
            text=True, env=harness.scrubber_environment())
        left = self.bucket.keys()
        if left:
            raise AssertionError('plain client left %d objects' % len(left))
        return float(done.stdout)

    def close(self):
        self.proxy.cleanUp()
        self.moto.cleanUp()


# --- one cell ---------------------------------------------------------------


def run_cell(cell, workdir, s3, pythons, profile_dir=None):
    setup = Setup(cell, workdir, s3 if cell.store == 's3' else None,
                  pythons)
    try:
        idle = []
        for attempt in range(max(cell.runs, 2 if cell.impl == 'upstream'
                                 else 1)):
            setup.empty()
            idle.append(setup.run_scrubber('idle-%d' % attempt))
        runs = []
        for attempt in range(cell.runs):
            setup.empty()
            image_ids = setup.seed()
            runs.append(setup.run_scrubber('run-%d' % attempt))
            runs[-1].unscrubbed = setup.verify(image_ids)
            _check_summary(cell, runs[-1])
        if profile_dir:
            setup.empty()
            setup.seed()
            profile(setup, profile_dir)
    finally:
        setup.close()
    result = result_of(cell, idle, runs)
    if cell.store == 's3' and cell.impl == 'ours':
        plain = s3.plain_client_seconds(cell.n, cell.pool, cell.runs)
        result.update(plain_s=plain, plain_ratio=result['ideal_s'] / plain)
    return result


def _check_summary(cell, run):
    if cell.impl != 'ours':
        return
    summary = run.summary or {}
    if summary.get('scrubbed') != cell.n or summary.get('failed'):
        raise AssertionError('%s: summary %s' % (cell.label(), summary))


def result_of(cell, idle, runs):
    startup = statistics.median(run.wall for run in idle)
    scrubbed = [cell.n] * len(runs)
    if cell.impl == 'ours':
        passes = [run.summary['seconds'] for run in runs]
    else:
        passes = [max(run.wall - startup, 1e-3) for run in runs]
    scrubbed = [cell.n - run.unscrubbed for run in runs]
    idle_statements = statistics.median(run.statements for run in idle)
    idle_requests = statistics.median(run.store_requests for run in idle)
    pass_median = statistics.median(passes)
    result = dict(dataclasses.asdict(cell))
    result.update(
        pass_s=pass_median, pass_min=min(passes), pass_max=max(passes),
        wall_s=statistics.median(run.wall for run in runs),
        startup_s=startup,
        images_per_s=statistics.median(scrubbed) / pass_median,
        images_per_s_all=[done / seconds
                          for done, seconds in zip(scrubbed, passes)],
        unscrubbed=max(cell.n - done for done in scrubbed),
        exit_codes=sorted({run.returncode for run in runs}),
        error_lines=max(run.errors for run in runs),
        cpu_s=statistics.median(run.cpu for run in runs),
        peak_rss_mb=max(run.peak_rss_mb for run in runs),
        idle_rss_mb=statistics.median(run.peak_rss_mb for run in idle),
        sql_per_image=statistics.median(
            (run.statements - idle_statements) / cell.n for run in runs))
    if cell.store == 's3':
        k = statistics.median((run.store_requests - idle_requests) /
                              (cell.n * cell.locations) for run in runs)
        ideal = cell.n * cell.locations * k * LATENCY / cell.pool
        result.update(k=k, ideal_s=ideal, ideal_ratio=ideal / pass_median,
                      service_ms=statistics.median(
                          run.service_ms for run in runs))
    return result


def profile(setup, profile_dir):
    """One more pass of the cell under py-spy: collapsed stacks to a file."""
    cell = setup.cell
    name = '%s-%s-%s-pool%d' % (cell.store, cell.database, cell.backend,
                                cell.pool)
    out = os.path.abspath(os.path.join(profile_dir, name + '.folded'))
    env = harness.scrubber_environment({
        harness.BACKEND_VARIABLE: cell.backend, 'PYTHONPATH': None,
        'PYTHONWARNINGS': 'ignore'})
    py_spy = shutil.which('py-spy') or os.path.join(
        os.path.dirname(sys.executable), 'py-spy')
    subprocess.run([py_spy, 'record', '--format', 'raw', '--rate', '250',
                    '--subprocesses', '-o', out, '--',
                    setup.python, str(COUNTED_SCRUBBER), '--config-file',
                    setup.config.path], env=env, cwd=setup.workdir,
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    print('profile of %s: %s' % (cell.label(), out), flush=True)


# --- reporting --------------------------------------------------------------


COLUMNS = ('impl', 'backend', 'store', 'db', 'N', 'locs', 'pool',
           'pass s (min-max)', 'wall s', 'start s', 'img/s', 'CPU s',
           'RSS MB', 'SQL/img', 'k', 'L ms', 'ideal s', 'ideal/act',
           'ideal/plain', 'ours/up', 'note')


# Upstream glance 33.0.0's scrubber ignores OS_GLANCE_SCRUBBER_BACKEND (the
# cells record what was asked) and scrubs in a concurrent.futures
# ThreadPoolExecutor, without monkey patching: native threads.
UPSTREAM_BACKEND = 'native threads'


def backend_of(result):
    """The concurrency backend the scrubber of *result* really ran on."""
    if result['impl'] == 'upstream':
        return UPSTREAM_BACKEND
    return result['backend']


def upstream_peer(result, results):
    """Upstream's cell on the same store, database and pool."""
    for other in results:
        if (other['impl'] == 'upstream' and other['store'] ==
                result['store'] and other['database'] == result['database']
                and other['pool'] == result['pool']):
            return other
    return None


def row_of(result, results):
    ratio = ''
    if result['impl'] == 'ours' and result['group'] != 'memory':
        peer = upstream_peer(result, results)
        if peer:
            ratio = '%.1fx' % (result['images_per_s'] / peer['images_per_s'])
    s3 = result['store'] == 's3'
    return (
        'this tree' if result['impl'] == 'ours' else 'upstream 33.0.0',
        backend_of(result), result['store'], DB_NAMES[result['database']],
        str(result['n']), str(result['locations']), str(result['pool']),
        '%.2f (%.2f-%.2f)%s' % (result['pass_s'], result['pass_min'],
                                result['pass_max'],
                                '' if result['impl'] == 'ours' else ' *'),
        '%.2f' % result['wall_s'], '%.2f' % result['startup_s'],
        '%.1f' % result['images_per_s'], '%.2f' % result['cpu_s'],
        '%.0f' % result['peak_rss_mb'],
        '..' if result['group'] == 'memory' else
        '%.1f' % result['sql_per_image'],
        '%.2f' % result['k'] if s3 else '',
        '%.1f' % result['service_ms'] if result.get('service_ms') else '',
        '%.2f' % result['ideal_s'] if s3 else '',
        '%.2f' % result['ideal_ratio'] if s3 else '',
        '%.2f' % result['plain_ratio'] if result.get('plain_ratio') else '',
        ratio, _note(result))


def _note(result):
    if result.get('unscrubbed'):
        return 'FAILED: %d of %d left pending_delete (%d ERROR lines)' % (
            result['unscrubbed'], result['n'], result['error_lines'])
    return ''


def print_table(results, stream=sys.stdout):
    rows = [COLUMNS] + [row_of(result, results) for result in results]
    widths = [max(len(row[index]) for row in rows)
              for index in range(len(COLUMNS))]
    for number, row in enumerate(rows):
        print('  '.join(value.rjust(width)
                        for value, width in zip(row, widths)), file=stream)
        if number == 0:
            print('  '.join('-' * width for width in widths), file=stream)


def _find(results, **wanted):
    return [result for result in results
            if all(result.get(name) == value
                   for name, value in wanted.items())]


def target_checks(results):
    """[(target, met: True/False/None, numbers)]."""
    checks = []
    ours_s3 = _find(results, impl='ours', store='s3', pool=16)
    upstream_s3 = _find(results, impl='upstream', store='s3')
    if ours_s3 and upstream_s3:
        best_up = max(result['images_per_s'] for result in upstream_s3)
        for result in ours_s3:
            checks.append((
                'S3, pool 16, %s: >= 10x upstream best' % result['backend'],
                result['images_per_s'] >= 10 * best_up,
                '%.1f vs 10 x %.1f img/s (%.1fx)' % (
                    result['images_per_s'], best_up,
                    result['images_per_s'] / best_up)))
    for result in _find(results, impl='ours', store='s3', pool=4):
        numbers = 'ideal %.2f s / pass %.2f s = %.2f' % (
            result['ideal_s'], result['pass_s'], result['ideal_ratio'])
        if result.get('plain_ratio'):
            numbers += ('; plain boto3 on the same harness: %.2f, this '
                        'tree at %.2f of it' % (
                            result['plain_ratio'], result['plain_s'] /
                            result['pass_s']))
        checks.append((
            'S3, pool 4, %s: ideal/actual >= 0.85' % result['backend'],
            result['ideal_ratio'] >= 0.85, numbers))
    for database in ('sqlite', 'mysql', 'postgresql'):
        ours = _find(results, impl='ours', store='file', database=database,
                     group='file')
        upstream = _find(results, impl='upstream', store='file',
                         database=database)
        if ours and upstream:
            mine = max(result['images_per_s'] for result in ours)
            theirs = max(result['images_per_s'] for result in upstream)
            checks.append((
                'file store on %s: >= 5x upstream (best pool of each)'
                % DB_NAMES[database], mine >= 5 * theirs,
                '%.0f vs %.0f img/s (%.1fx)' % (mine, theirs,
                                                mine / theirs)))
    memory = sorted(_find(results, group='memory'), key=lambda r: r['n'])
    if len(memory) >= 2:
        small, large = memory[0], memory[-1]
        checks.append((
            'peak RSS at N=%d <= 1.2x N=%d' % (large['n'], small['n']),
            large['peak_rss_mb'] <= 1.2 * small['peak_rss_mb'],
            '%.0f MB vs %.0f MB (%.2fx)' % (
                large['peak_rss_mb'], small['peak_rss_mb'],
                large['peak_rss_mb'] / small['peak_rss_mb'])))
    for result in _find(results, impl='ours', pool=1):
        peer = upstream_peer(result, results)
        if peer and result['group'] != 'memory':
            checks.append((
                'serial (pool 1) %s on %s, %s: not slower than upstream' % (
                    result['store'], DB_NAMES[result['database']],
                    result['backend']),
                result['images_per_s'] >= peer['images_per_s'],
                '%.1f vs %.1f img/s' % (result['images_per_s'],
                                        peer['images_per_s'])))
    return checks


def print_checks(checks, stream=sys.stdout):
    for target, met, numbers in checks:
        print('%-4s %s: %s' % ('MET' if met else 'NOT', target, numbers),
              file=stream)


# --- the documentation ------------------------------------------------------


def page_text(data, results_path):
    """The page: the summary table, how it was measured, all rows."""
    results, meta = data['results'], data['meta']
    checks = target_checks(results)
    lines = pages.generated_header(__file__, results_path) + [
        'Scrubber benchmark',
        '==================',
        '',
        'Measured %s on %s, shared with other jobs running tests at the '
        'same time: treat the numbers as indicative, compare the rows of '
        'one run with each other rather than with another machine.' % (
            meta['date'], pages.describe(meta)),
        '',
        'Summary',
        '-------',
        '',
        'Images scrubbed per second (N / pass time, the median of the '
        'runs) of this tree on each concurrency backend and of upstream '
        'Glance 33.0.0, whose scrubber runs on %s; *ours/up* is this '
        'tree\'s better backend over upstream. Each row is measured in '
        'the same run on the same kind of data; the full table and the '
        'method follow.' % UPSTREAM_BACKEND,
        '',
    ]
    lines += _summary_table(results)
    lines += ['', 'Method and all measurements',
              '---------------------------', '']
    if meta.get('note'):
        # Results merged from several runs say which row comes from which.
        lines += [meta['note'], '']
    lines += [
        'Method. Each cell seeds N images left ``pending_delete`` by '
        'glance-api (rows written directly, data really in the store: '
        'empty files for the file store, 64-byte objects in a local moto '
        'S3 server (moto\'s S3 served by waitress: '
        'glance/tests/harness/s3_server.py) reached through a proxy '
        'adding %d ms to each request), runs one pass of the real '
        '``glance-scrubber`` as a process of its own and checks that '
        'every image and location row is ``deleted`` and the store is '
        'empty. Upstream Glance 33.0.0 runs from a virtualenv of its own, '
        'on a schema created by its own ``glance-manage db sync``, in the '
        'same run on the same kind of data.' % (LATENCY * 1000),
        '',
        'Columns. *pass s*: median of %s runs (min-max); this tree logs '
        'it in its "Scrub pass summary" line; upstream logs no pass time, '
        'so for upstream (marked \\*) it is the process wall time minus '
        'the median wall time of the same command on an empty queue '
        '(*start s*). *img/s* = N / pass s. *CPU s* is the scrubber '
        'process\'s own user+system CPU time (``os.wait4`` rusage), *RSS '
        'MB* its peak resident set (``VmHWM``, read while it runs). '
        '*SQL/img*: SQL statements plus '
        'COMMIT/ROLLBACK per image, counted inside the scrubber by one '
        'SQLAlchemy listener (tools/bench/counted_scrubber.py), start-up '
        'excluded; an executemany counts once, BEGIN only where the '
        'driver sends it as a statement (SQLite), connection pings '
        '(pre-ping on checkout) are not counted. *k*: S3 requests per '
        'image delete, counted by '
        'the proxy. *L ms*: the mean time a request spent in the proxy '
        '(its %d ms delay plus moto\'s own time), when recorded. '
        '*ideal s* = N x k x L / pool: the pass time if only '
        'the store latency L counted. *ideal/plain*: ideal s over the '
        'time a plain boto3 client (tools/bench/plain_s3_client.py: the '
        'same HEAD and DELETE per image in pool threads, nothing else) '
        'takes through the same proxy and server, median of as many '
        'runs: the best ideal/actual the harness allows on this machine. '
        '*ours/up*: images/s of this tree '
        'over upstream\'s on the same store, database and pool.' % (
            meta['runs'], LATENCY * 1000),
        '',
        'Caveats. Upstream\'s S3 cells use smaller N (it scrubs a few '
        'images per second) and its file-store cells N=%s; '
        'images/s is what is compared. The moto server, the proxy and '
        'the scrubber share the machine\'s %d cores, so the high-pool S3 '
        'cells measure the harness as much as the scrubber. The memory '
        'cells run once.' % (meta.get('upstream_file_n', '?'),
                             meta['cores']),
        '',
        'One scrubber per cell here; several sharing a database: '
        ':doc:`scrubber-members-benchmark`.',
        '',
    ]
    if any(result.get('unscrubbed') for result in results):
        lines += [
            'A cell marked FAILED left images ``pending_delete`` (upstream '
            'on SQLite with a pool: "database is locked"); its img/s '
            'counts the images it did scrub. Where the store is empty but '
            'rows remain, the data was deleted and the image stranded.',
            '']
    lines += _rst_table(results)
    lines += ['', 'Targets:', '']
    for target, met, numbers in checks:
        lines.append('* %s %s: %s' % ('**met**' if met else '**not met**',
                                      target, numbers))
    lines += ['', '.. image:: scrubber-throughput.png',
              '   :alt: images per second against scrub_pool_size on S3',
              '']
    return '\n'.join(_wrapped(lines))


def rendered_pages(data, results_path):
    """{page path: text} this tool makes from a results file."""
    return {RST_PATH: page_text(data, results_path)}


def figures(data):
    """{name: text} of the figures the guide may quote (check_pages.py).

    scrub-IMPL-STORE-DATABASE-BACKEND-poolN-rate: images per second;
    -rss: peak RSS in MB; -cpu: CPU seconds; -vs-upstream: over upstream
    on the same store, database and pool; on S3, -ideal-ratio (ideal over
    pass time) and -plain-ratio (the same for a plain boto3 client). The
    memory cells are scrub-memory-N-rss and -rate.
    """
    results = data['results']
    named = {}
    for result in results:
        if result['group'] == 'memory':
            name = 'scrub-memory-%d' % result['n']
        else:
            name = 'scrub-%s-%s-%s-%s-pool%d' % (
                result['impl'], result['store'], result['database'],
                result['backend'], result['pool'])
        named[name + '-rate'] = _rate(result['images_per_s'])
        named[name + '-rss'] = '%.0f' % result['peak_rss_mb']
        named[name + '-cpu'] = '%.2f' % result['cpu_s']
        if result['store'] == 's3':
            named[name + '-ideal-ratio'] = '%.2f' % result['ideal_ratio']
        if result.get('plain_ratio'):
            named[name + '-plain-ratio'] = '%.2f' % result['plain_ratio']
        peer = upstream_peer(result, results)
        if result['impl'] == 'ours' and peer and \
                result['group'] != 'memory':
            named[name + '-vs-upstream'] = '%.1fx' % (
                result['images_per_s'] / peer['images_per_s'])
    return named


def _wrapped(lines):
    """*lines* with prose and bullets folded at 79 columns (doc8)."""
    folded = []
    for line in lines:
        if len(line) <= 79 or line.startswith(' '):
            folded.append(line)
            continue
        indent = '  ' if line.startswith('* ') else ''
        folded.extend(textwrap.wrap(line, 79, subsequent_indent=indent,
                                    break_on_hyphens=False,
                                    break_long_words=False))
    return folded


SUMMARY_COLUMNS = ('store', 'database', 'pool', 'this tree, threading',
                   'this tree, eventlet',
                   'upstream 33.0.0, %s' % UPSTREAM_BACKEND, 'ours/up')


def _summary_table(results):
    """One row per store, database and pool: images/s of each scrubber."""
    setups = {}
    for result in results:
        if result['group'] == 'memory':
            continue
        setup = (result['store'], result['database'], result['pool'])
        column = ('upstream' if result['impl'] == 'upstream'
                  else result['backend'])
        setups.setdefault(setup, {})[column] = result['images_per_s']
    rows = [SUMMARY_COLUMNS]
    for (store, database, pool), rates in sorted(
            setups.items(), key=lambda item: (item[0][0] != 'file',
                                              item[0])):
        ours = [rates[backend] for backend in ('threading', 'eventlet')
                if backend in rates]
        ratio = ('%.1fx' % (max(ours) / rates['upstream'])
                 if ours and rates.get('upstream') else '')
        rows.append((store, DB_NAMES[database], str(pool),
                     _rate(rates.get('threading')),
                     _rate(rates.get('eventlet')),
                     _rate(rates.get('upstream')), ratio))
    return _list_table(rows)


def _rate(images_per_s):
    return '' if images_per_s is None else '%.1f' % images_per_s


def _rst_table(results):
    return _list_table([COLUMNS] + [row_of(result, results)
                                    for result in results])


def _list_table(rows):
    lines = ['.. list-table::', '   :header-rows: 1', '']
    for row in rows:
        lines.append('   * - %s' % _rst_cell(row[0]))
        lines.extend('     - %s' % _rst_cell(value) for value in row[1:])
    return lines


def _rst_cell(value):
    return value.replace('*', '\\*') if value else '..'


def plot(results, path=PNG_PATH):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5.2), dpi=110)
    series = (('ours', 'eventlet', 'this tree, eventlet', 'o-'),
              ('ours', 'threading', 'this tree, threading', 's-'),
              ('upstream', 'eventlet',
               'upstream 33.0.0 (%s)' % UPSTREAM_BACKEND, 'v-'))
    pools = set()
    k = None
    for impl, backend, label, style in series:
        cells = sorted(_find(results, impl=impl, backend=backend,
                             store='s3'), key=lambda r: r['pool'])
        if not cells:
            continue
        x = [cell['pool'] for cell in cells]
        pools.update(x)
        y = [cell['images_per_s'] for cell in cells]
        low = [value - min(cell['images_per_s_all'])
               for value, cell in zip(y, cells)]
        high = [max(cell['images_per_s_all']) - value
                for value, cell in zip(y, cells)]
        axes.errorbar(x, y, yerr=[low, high], fmt=style, label=label,
                      capsize=3)
        k = k or statistics.median(cell['k'] for cell in cells)
    plain = sorted((cell for cell in _find(results, impl='ours', store='s3',
                                           backend='eventlet')
                    if cell.get('plain_s')), key=lambda r: r['pool'])
    if plain:
        axes.plot([cell['pool'] for cell in plain],
                  [cell['n'] / cell['plain_s'] for cell in plain], 'k:',
                  label='plain boto3, the same requests, nothing else')
    if pools and k:
        x = sorted(pools)
        axes.plot(x, [pool / (k * LATENCY) for pool in x], 'k--',
                  label='ideal: pool / (k x L), k=%.0f, L=%d ms' % (
                      k, LATENCY * 1000))
    axes.set_xscale('log', base=2)
    axes.set_yscale('log')
    axes.set_xticks(sorted(pools))
    axes.set_xticklabels([str(pool) for pool in sorted(pools)])
    axes.set_xlabel('scrub_pool_size')
    axes.set_ylabel('images scrubbed per second (pass time)')
    axes.set_title('glance-scrubber on S3, %d ms per request, PostgreSQL'
                   % (LATENCY * 1000))
    axes.grid(True, which='both', alpha=0.3)
    axes.legend(loc='upper left', fontsize='small')
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


# --- main -------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='small N, one run per cell')
    parser.add_argument('--cells', nargs='+', choices=GROUPS,
                        default=list(GROUPS))
    parser.add_argument('--pools', nargs='+', type=int,
                        help='only the cells of these scrub_pool_size')
    parser.add_argument('--n', type=int,
                        help='N of every cell (overrides the plan)')
    parser.add_argument('--runs', type=int,
                        help='runs per cell (default 3, 1 with --quick)')
    parser.add_argument('--json', help='write the results there')
    parser.add_argument('--write-docs', action='store_true',
                        help='write %s and %s' % (RST_PATH.name,
                                                  PNG_PATH.name))
    parser.add_argument('--from-json', '--from-results', dest='from_json',
                        metavar='FILE',
                        help='report saved results (tools/bench/results/'
                        '*.json) only, without running anything')
    parser.add_argument('--profile', metavar='DIR',
                        help='also record one py-spy profile per cell')
    parser.add_argument('--keep', action='store_true',
                        help='keep the work folder (logs of each run)')
    return parser.parse_args(argv)


def run_all(args):
    cells = [cell for cell in plan(args.quick, args.cells, args.runs)
             if not args.pools or cell.pool in args.pools]
    for cell in cells:
        cell.n = args.n or cell.n
    pythons = {'ours': sys.executable}
    if any(cell.impl == 'upstream' for cell in cells):
        pythons['upstream'] = str(upstream_env.ensure())
    workdir = tempfile.mkdtemp(prefix='scrub-bench-')
    print('work folder: %s' % workdir, flush=True)
    s3 = (S3Service(workdir) if any(cell.store == 's3' for cell in cells)
          else None)
    results = []
    try:
        for number, cell in enumerate(cells):
            started = time.monotonic()
            results.append(run_cell(
                cell, os.path.join(workdir, 'cell-%02d' % number), s3,
                pythons, args.profile))
            print('%5.0f s  ' % (time.monotonic() - started)
                  + ' | '.join(row_of(results[-1], results)), flush=True)
    finally:
        if s3:
            s3.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    upstream_file = _find(results, impl='upstream', store='file')
    meta = dict(pages.machine(), quick=args.quick,
                runs=args.runs or (1 if args.quick else 3),
                upstream_file_n=(upstream_file[0]['n'] if upstream_file
                                 else None))
    return {'meta': meta, 'results': results}


def main(argv=None):
    args = parse_args(argv)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    data, results_path = pages.saved_or_run(args, run_all, 'scrub')
    results = data['results']
    print()
    print_table(results)
    print()
    print_checks(target_checks(results))
    if args.write_docs:
        pages.write(rendered_pages(data, results_path))
        plot(results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
