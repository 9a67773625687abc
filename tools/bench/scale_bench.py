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

"""A pass against the size of the cloud and of the backlog.

    python tools/bench/scale_bench.py [--live N ...] [--due N ...]
        [--empty-cloud-due N ...] [--upstream-due N ...] [--pool P]
        [--json FILE] [--write-docs] [--from-json FILE]

On PostgreSQL and the file store, with pool P (16) on the threading
backend: for each number of live images (one location each, no data) and
each number of due images (pending_delete, their data really in the
store; --empty-cloud-due adds backlogs measured with no live images
only, such as the million, whose pass alone takes ten minutes), one
pass of the real glance-scrubber, run as a process of its own
through tools/bench/counted_scrubber.py, and for this tree also
``--list`` and ``--dry-run`` of the same backlog. Per cell: the peak RSS
of the process (VmHWM), its wall time, images per second (this tree: of
the pass time its summary line gives; upstream, which logs none: of the
wall time), and the location rows the process read (the rows of every
SELECT of image_locations, counted in the process). Upstream Glance
33.0.0 runs the --upstream-due cells side by side (its python from
tools/bench/upstream_env.py, or --upstream-python).

Rows are written with INSERT ... SELECT FROM generate_series, in
seconds. ``--from-json FILE --write-docs`` rewrites the page
(doc/source/admin/scrubber-scale-benchmark.rst) and its plot from stored
results without running anything; it needs only matplotlib.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pages

BENCH = pathlib.Path(__file__).resolve().parent
TREE = BENCH.parent.parent
DOC_DIR = TREE / 'doc' / 'source' / 'admin'
RST_PATH = DOC_DIR / 'scrubber-scale-benchmark.rst'
PNG_PATH = DOC_DIR / 'scrubber-scale.png'
RESULTS_DIR = BENCH / 'results'
COUNTED_SCRUBBER = BENCH / 'counted_scrubber.py'
# --list and --dry-run first: the pass empties the backlog.
MODES = ('list', 'dry-run', 'pass')


# --- the database -----------------------------------------------------------


def _sql(engine, statement, **parameters):
    import sqlalchemy as sa
    with engine.begin() as connection:
        connection.execute(sa.text(statement), parameters)


def _vacuum(engine):
    import sqlalchemy as sa
    with engine.connect().execution_options(
            isolation_level='AUTOCOMMIT') as connection:
        for table in ('images', 'image_locations'):
            connection.execute(sa.text('VACUUM ANALYZE %s' % table))


# An image row as glance-api writes it; :kind names the rows of a seeding.
_IMAGES = """
INSERT INTO images (id, name, disk_format, container_format, size, status,
                    visibility, min_disk, min_ram, owner, protected,
                    os_hidden, created_at, updated_at, deleted_at, deleted)
SELECT md5(:kind || g)::uuid::text, :kind || g, 'raw', 'bare', 1024,
       :status, 'shared', 0, 0, 'tenant-1', false, false,
       now() - interval '1 day', {deleted_at}, {deleted_at}, :deleted
FROM generate_series(1, :count) AS g
"""
_LOCATIONS = """
INSERT INTO image_locations (image_id, value, meta_data, status, deleted,
                             deleted_at, created_at, updated_at)
SELECT id, 'file://' || :datadir || '/' || id, '{{}}', :status, :deleted,
       {deleted_at}, created_at, now()
FROM images WHERE name LIKE :kind || '%'
"""


def seed_live(engine, count, datadir):
    """*count* active images, one location each (no data: never read)."""
    for template in (_IMAGES, _LOCATIONS):
        _sql(engine, template.format(deleted_at='NULL'), kind='live-',
             status='active', deleted=False, count=count, datadir=datadir)


def seed_due(engine, count, datadir, kind):
    """*count* images as glance-api leaves them deleted an hour ago.

    Their data is an empty file each in *datadir*.
    """
    deleted_at = "now() - interval '1 hour'"
    for template in (_IMAGES, _LOCATIONS):
        _sql(engine, template.format(deleted_at=deleted_at), kind=kind,
             status='pending_delete', deleted=True, count=count,
             datadir=datadir)
    import sqlalchemy as sa
    with engine.connect() as connection:
        for (image_id,) in connection.execute(sa.text(
                "SELECT id FROM images WHERE name LIKE :kind || '%'"),
                {'kind': kind}):
            os.close(os.open(os.path.join(datadir, image_id),
                             os.O_CREAT | os.O_WRONLY, 0o644))


def left_behind(engine, kind):
    """Images of *kind* not scrubbed."""
    import sqlalchemy as sa
    with engine.connect() as connection:
        return connection.execute(sa.text(
            "SELECT count(*) FROM images WHERE name LIKE :kind || '%' "
            "AND status != 'deleted'"), {'kind': kind}).scalar()


def drop_due(engine, kind):
    _sql(engine, "DELETE FROM image_locations WHERE image_id IN "
         "(SELECT id FROM images WHERE name LIKE :kind || '%')", kind=kind)
    _sql(engine, "DELETE FROM images WHERE name LIKE :kind || '%'",
         kind=kind)


# --- one cloud --------------------------------------------------------------


class Cloud:
    """A Glance database on PostgreSQL and a file store, for one Glance.

    :param impl: 'ours' (this tree's migrations) or 'upstream' (its
        glance-manage db sync).
    """

    def __init__(self, impl, python, workdir, pool):
        from glance.tests import databases
        from glance.tests.harness import fixtures as harness
        self.impl = impl
        self.python = python
        self.workdir = workdir
        os.makedirs(workdir)
        self.database = databases.Database('postgresql',
                                           migrate=impl == 'ours')
        self.database.setUp()
        self.engine = self.database.engine
        self.datadir = os.path.join(workdir, 'images')
        os.makedirs(self.datadir)
        self.config = harness.ScrubberConfig(
            os.path.join(workdir, 'scrubber.conf'), self.database.url,
            os.path.join(workdir, 'locks'), scrub_pool_size=pool,
            scrub_time=0)
        self.config.use_file_store(self.datadir)
        self.config.write()
        if impl == 'upstream':
            self._db_sync()
        self.live = 0
        self.runs = 0

    def _db_sync(self):
        from glance.tests.harness import fixtures as harness
        code = ('import sys; from glance.cmd.manage import main; '
                'sys.exit(main())')
        subprocess.run([self.python, '-c', code, '--config-file',
                        self.config.path, 'db', 'sync'], check=True,
                       cwd=self.workdir, capture_output=True,
                       env=harness.scrubber_environment(
                           {'PYTHONDONTWRITEBYTECODE': '1'}))

    def grow_live(self, count):
        """Bring the live images to *count* (only ever more)."""
        if count > self.live:
            _sql(self.engine, "DELETE FROM image_locations WHERE image_id "
                 "IN (SELECT id FROM images WHERE name LIKE 'live-%')")
            _sql(self.engine, "DELETE FROM images WHERE name LIKE 'live-%'")
            seed_live(self.engine, count, self.datadir)
            _vacuum(self.engine)
            self.live = count

    def close(self):
        self.database.cleanUp()

    def measure(self, due, modes):
        """Seed *due* images, run each mode: {mode: measurement}."""
        self.runs += 1
        kind = 'due%d-' % self.runs
        seed_due(self.engine, due, self.datadir, kind)
        _vacuum(self.engine)
        found = {}
        for mode in modes:
            found[mode] = self._run(mode, '%s-%s' % (kind, mode))
        if 'pass' in modes:
            found['pass']['left_behind'] = left_behind(self.engine, kind)
        drop_due(self.engine, kind)
        shutil.rmtree(self.datadir)
        os.makedirs(self.datadir)
        return found

    def _run(self, mode, tag):
        from glance.tests.harness import fixtures as harness
        import scrub_bench
        prefix = os.path.join(self.workdir, tag)
        env = harness.scrubber_environment({
            harness.BACKEND_VARIABLE: 'threading',
            'BENCH_COUNT_FILE': prefix + '.counts',
            'PYTHONPATH': str(TREE) if self.impl == 'ours' else None,
            'PYTHONDONTWRITEBYTECODE': '1',
            'PYTHONWARNINGS': 'ignore'})
        command = [self.python, str(COUNTED_SCRUBBER), '--config-file',
                   self.config.path]
        if mode != 'pass':
            command.append('--' + mode)
        returncode, wall, cpu, rss = scrub_bench.measure(
            command, env, self.workdir, prefix)
        with open(prefix + '.err') as err:
            output = err.read()
        with open(prefix + '.out') as out:
            output += out.read() if mode == 'pass' else ''
        if returncode != 0 and self.impl == 'ours':
            raise RuntimeError('%s: exit %s\n%s' % (tag, returncode,
                                                    output[-3000:]))
        with open(prefix + '.counts') as counts_file:
            counts = json.load(counts_file)
        summaries = harness.parse_summaries(output)
        return {'wall_s': round(wall, 2), 'cpu_s': round(cpu, 2),
                'peak_rss_mb': round(rss, 1), 'returncode': returncode,
                'location_rows': counts.get('location_rows', 0),
                'statements': counts.get('statements', 0),
                'pass_s': summaries[-1]['seconds'] if summaries else None}


# --- the cells --------------------------------------------------------------


def run_all(args):
    import upstream_env
    pythons = {'ours': sys.executable}
    if args.upstream_due:
        pythons['upstream'] = (args.upstream_python or
                               str(upstream_env.ensure()))
    results = []
    workdir = tempfile.mkdtemp(prefix='glance-scale-')
    try:
        for impl, python in pythons.items():
            cloud = Cloud(impl, python, os.path.join(workdir, impl),
                          args.pool)
            try:
                for live in sorted(args.live):
                    cloud.grow_live(live)
                    for due in dues_at(impl, live, args):
                        modes = MODES if impl == 'ours' else ('pass',)
                        cell = {'impl': impl, 'live': live, 'due': due,
                                'pool': args.pool}
                        cell.update(cloud.measure(due, modes))
                        results.append(cell)
                        print(json.dumps(cell), flush=True)
            finally:
                cloud.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def dues_at(impl, live, args):
    """The backlogs measured against *live* live images."""
    if impl == 'upstream':
        return sorted(args.upstream_due)
    extra = args.empty_cloud_due if live == 0 else []
    return sorted(set(args.due) | set(extra))


def images_per_s(cell):
    run = cell['pass']
    seconds = run['pass_s'] or run['wall_s']
    return cell['due'] / seconds if seconds else None


def machine():
    model = platform.machine()
    with open('/proc/cpuinfo') as cpuinfo:
        for line in cpuinfo:
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    with open('/proc/meminfo') as meminfo:
        memory_kib = int(meminfo.readline().split()[1])
    return {'cpu': model, 'cores': os.cpu_count(),
            'memory_gib': round(memory_kib / 2 ** 20, 1),
            'python': platform.python_version(),
            'load_before': os.getloadavg()}


# --- the page ---------------------------------------------------------------


def _find(results, **wanted):
    for cell in results:
        if all(cell.get(name) == value for name, value in wanted.items()):
            return cell
    return None


def goals(results):
    """(goal, met, measured) of the issue's goals that the results cover."""
    checks = []
    small = {due: _find(results, impl='ours', live=0, due=due)
             for due in (10000, 100000, 1000000)}
    for due, cell in small.items():
        big = _find(results, impl='ours', live=1000000, due=due)
        if cell and big:
            memory = big['pass']['peak_rss_mb'] / cell['pass']['peak_rss_mb']
            time_ = big['pass']['wall_s'] / cell['pass']['wall_s']
            checks.append(('%d due: 1,000,000 live within 1.25x memory and '
                           '2x time of none' % due,
                           memory <= 1.25 and time_ <= 2,
                           '%.2fx memory, %.2fx time' % (memory, time_)))
    base = small[10000]
    for due, bound in ((100000, 150), (1000000, 200)):
        cell = small[due]
        if base and cell:
            ratio = images_per_s(cell) / images_per_s(base)
            checks.append(('%d due: images/s within 0.8 of 10,000' % due,
                           ratio >= 0.8, '%.2f' % ratio))
            rss = cell['pass']['peak_rss_mb']
            checks.append(('%d due: pass peak RSS <= %d MB' % (due, bound),
                           rss <= bound, '%.0f MB' % rss))
    if base and small[100000]:
        for mode in ('dry-run', 'list'):
            ratio = small[100000][mode]['wall_s'] / base[mode]['wall_s']
            checks.append(('--%s at 100,000 within 12x the time of 10,000'
                           % mode, ratio <= 12, '%.1fx' % ratio))
    return checks


def page_text(data, results_path):
    results = data['results']
    title = 'Scrubber benchmark: cloud and backlog'
    intro = (
        'One pass of ``glance-scrubber`` on PostgreSQL and the file store, '
        '``scrub_pool_size = %d``, threading backend, against a database '
        'holding some live images (one location each) besides the due '
        'images (``tox -e bench-scale``), with ``--list`` and ``--dry-run`` '
        'of the same backlog. Measured %s on %s (%d cores, %s GiB), load '
        'average %s before the run; the machine was shared with other '
        'work. Peak RSS is the process\'s VmHWM; wall is the process\'s '
        'time, start-up included; images/s is of the pass time the summary '
        'line gives (upstream logs none: of its wall time); rows are the '
        'location rows the process read. %s' % (
            data['pool'], data['date'], data['machine']['cpu'],
            data['machine']['cores'], data['machine']['memory_gib'],
            ', '.join('%.2f' % load
                      for load in data['machine']['load_before']),
            data.get('note', '')))
    lines = pages.generated_header(__file__, results_path) + [
        '=' * len(title),
        title,
        '=' * len(title),
        '',
    ] + textwrap.wrap(intro.strip(), 76) + [
        '',
        '.. image:: scrubber-scale.png',
        '   :alt: images per second against due images, per live images',
        '',
        '.. list-table::',
        '   :header-rows: 1',
        '',
        '   * - Glance',
        '     - live images',
        '     - due images',
        '     - pass peak RSS',
        '     - pass wall',
        '     - images/s',
        '     - location rows read',
        '     - --list wall',
        '     - --dry-run wall',
    ]
    for cell in sorted(results, key=lambda c: (c['impl'] != 'ours',
                                               c['live'], c['due'])):
        run = cell['pass']
        lines += [
            '   * - %s' % ('this tree' if cell['impl'] == 'ours'
                           else 'upstream 33.0.0'),
            '     - %s' % '{:,}'.format(cell['live']),
            '     - %s' % '{:,}'.format(cell['due']),
            '     - %.0f MB' % run['peak_rss_mb'],
            '     - %.1f s' % run['wall_s'],
            '     - %.0f' % images_per_s(cell),
            '     - %s' % '{:,}'.format(run['location_rows']),
            '     - %s' % ('%.1f s' % cell['list']['wall_s']
                           if 'list' in cell else '-'),
            '     - %s' % ('%.1f s' % cell['dry-run']['wall_s']
                           if 'dry-run' in cell else '-'),
        ]
    checks = goals(results)
    if checks:
        lines += ['', 'The goals of the design (issue 18):', '']
        for goal, met, measured in checks:
            lines += textwrap.wrap('* **%s** %s: %s' % (
                'met' if met else 'missed', goal, measured), 76,
                subsequent_indent='  ')
    lines.append('')
    return '\n'.join(lines)


def rendered_pages(data, results_path):
    """{page path: text} this tool makes from a results file."""
    return {RST_PATH: page_text(data, results_path)}


def figures(data):
    """{name: text} of the figures the guide may quote (check_pages.py).

    scale-IMPL-liveL-dueD-rss (pass peak RSS, MB), -wall (s), -rate
    (images/s), -rows (location rows read), -list and -dry-run (wall s),
    -dry-run-rss (MB); and the goals' ratios: scale-dueD-rate-ratio (over
    10,000 due, no live images), scale-dueD-live-memory and -live-time
    (1,000,000 live images over none).
    """
    results = data['results']
    named = {}
    for cell in results:
        name = 'scale-%s-live%d-due%d' % (cell['impl'], cell['live'],
                                          cell['due'])
        run = cell['pass']
        named[name + '-rss'] = '%.0f' % run['peak_rss_mb']
        named[name + '-wall'] = '%.1f' % run['wall_s']
        named[name + '-rate'] = '{:,.0f}'.format(images_per_s(cell))
        named[name + '-rows'] = '{:,}'.format(run['location_rows'])
        for mode in ('list', 'dry-run'):
            if mode in cell:
                named['%s-%s' % (name, mode)] = '%.1f' % cell[mode]['wall_s']
                named['%s-%s-rss' % (name, mode)] = '%.0f' % (
                    cell[mode]['peak_rss_mb'])
    base = _find(results, impl='ours', live=0, due=10000)
    for cell in results:
        if cell['impl'] != 'ours' or cell['live'] != 0 or base is None:
            continue
        named['scale-due%d-rate-ratio' % cell['due']] = '%.2f' % (
            images_per_s(cell) / images_per_s(base))
        big = _find(results, impl='ours', live=1000000, due=cell['due'])
        if big:
            named['scale-due%d-live-memory' % cell['due']] = '%.2fx' % (
                big['pass']['peak_rss_mb'] / cell['pass']['peak_rss_mb'])
            named['scale-due%d-live-time' % cell['due']] = '%.2fx' % (
                big['pass']['wall_s'] / cell['pass']['wall_s'])
    return named


def plot(data, path=PNG_PATH):
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=110)
    results = data['results']
    for impl, style in (('ours', '-'), ('upstream', '--')):
        for live, marker in ((0, 's'), (100000, 'o'), (1000000, '^')):
            cells = sorted((cell for cell in results
                            if cell['impl'] == impl and cell['live'] == live),
                           key=lambda cell: cell['due'])
            if cells:
                axes.plot([cell['due'] for cell in cells],
                          [images_per_s(cell) for cell in cells],
                          marker + style,
                          label='%s, %s live' % (
                              'this tree' if impl == 'ours'
                              else 'upstream 33.0.0',
                              '{:,}'.format(live)))
    axes.set_xscale('log')
    axes.set_yscale('log')
    axes.set_xlabel('due images in the pass')
    axes.set_ylabel('images scrubbed per second')
    axes.set_title('A pass against the backlog and the cloud '
                   '(PostgreSQL, file store, pool %d)' % data['pool'])
    axes.grid(True, which='both', alpha=0.3)
    axes.legend(fontsize='small')
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


# --- main -------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--live', nargs='+', type=int,
                        default=[0, 100000, 1000000])
    parser.add_argument('--due', nargs='+', type=int,
                        default=[10000, 100000])
    parser.add_argument('--empty-cloud-due', nargs='*', type=int,
                        default=[],
                        help='due images run with no live images only')
    parser.add_argument('--upstream-due', nargs='*', type=int,
                        default=[10000],
                        help='the due images upstream runs (none: skip it)')
    parser.add_argument('--upstream-python',
                        help='the python of an upstream Glance 33.0.0 venv')
    parser.add_argument('--pool', type=int, default=16)
    parser.add_argument('--json', help='write the results there')
    parser.add_argument('--write-docs', action='store_true',
                        help='rewrite the page and the plot')
    parser.add_argument('--from-json', help='stored results: run nothing')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        source = pathlib.Path(args.from_json)
        data = pages.load(source)
    else:
        sys.path.insert(0, str(TREE))
        data = {'date': datetime.date.today().isoformat(),
                'machine': machine(), 'pool': args.pool}
        data['results'] = run_all(args)
        source = pathlib.Path(args.json or RESULTS_DIR / (
            'scale-%s.json' % data['date']))
        pages.save(source, data)
    for goal, met, measured in goals(data['results']):
        print('%s %s: %s' % ('met' if met else 'MISSED', goal, measured))
    if args.write_docs:
        for path, text in rendered_pages(data, source).items():
            path.write_text(text)
        plot(data)


if __name__ == '__main__':
    sys.exit(main())
