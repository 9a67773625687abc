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

"""Metrics: the metrics file, JSON logs and report_interval, for real.

The real glance-scrubber writes ``metrics_file``; it is read back with
prometheus_client's parser, and its numbers compared with what the pass
did and with the database.
"""

import json
import os
import stat
import time

from prometheus_client import parser
import pytest

from glance.tests.harness import fixtures
from glance.tests.harness import scenario
from glance.tests import seed
from glance.tests import utils

LIVENESS = 60  # seconds to wait for what must happen; never asserted
LAST_SUCCESS = 'glance_scrubber_last_success_timestamp_seconds'
YOUNG = 2  # images deleted YOUNG_SECONDS_AGO: pending, not yet eligible


def read_metrics(path):
    """{(name, ((label, value), ...)): value} of the metrics file."""
    with open(path) as stream:
        text = stream.read()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in parser.text_string_to_metric_families(text)
            for sample in family.samples}


def metric(values, name, **labels):
    return values[('glance_scrubber_' + name, tuple(sorted(labels.items())))]


def images_by_result(values):
    return {result: metric(values, 'pass_images', result=result)
            for result in ('scrubbed', 'failed', 'skipped', 'in_use')}


def failing_image():
    """An image whose only location names a store nobody configured."""
    return seed.Image(locations=[seed.Location(
        'swift+https://tenant:key@swift.example.com/v1/images/%s'
        % scenario.new_image_id())])


@pytest.fixture
def metrics_path(tmp_path, config):
    path = str(tmp_path / 'textfile' / 'glance_scrubber.prom')
    os.makedirs(os.path.dirname(path))
    config.set('DEFAULT', metrics_file=path)
    return path


@pytest.mark.parametrize('database', ('sqlite', 'mysql', 'postgresql'),
                         indirect=True)
def test_a_pass_writes_its_numbers_and_a_failed_one_keeps_the_success(
        database, config, file_store, metrics_path):
    placements = [scenario.Placement(file_store)]
    eligible = scenario.pending_images(placements, 5, 1)
    young = scenario.pending_images(
        placements, YOUNG, 1,
        deleted_seconds_ago=scenario.YOUNG_SECONDS_AGO)
    seed.insert(database.engine, eligible + young)

    started = time.time()
    run = fixtures.run_scrubber(config)
    ended = time.time()

    assert run.returncode == 0, run.describe()
    values = read_metrics(metrics_path)
    assert images_by_result(values) == {
        'scrubbed': 5, 'failed': 0, 'skipped': 0, 'in_use': 0}
    assert metric(values, 'pass_reclaimed_bytes') == \
        5 * scenario.IMAGE_SIZE == run.summary['bytes_reclaimed']
    assert metric(values, 'pass_locations_deleted') == 5
    assert metric(values, 'pass_running') == 0
    assert metric(values, 'pass_duration_seconds') == pytest.approx(
        run.summary['seconds'], abs=0.01)
    assert metric(values, 'backlog_images') == YOUNG
    assert scenario.YOUNG_SECONDS_AGO <= metric(
        values, 'backlog_oldest_age_seconds') <= \
        scenario.YOUNG_SECONDS_AGO + (ended - started) + 2
    succeeded_at = metric(values, 'last_success_timestamp_seconds')
    assert started <= succeeded_at <= ended
    assert stat.S_IMODE(os.stat(metrics_path).st_mode) == 0o644
    assert os.listdir(os.path.dirname(metrics_path)) == [
        'glance_scrubber.prom']

    # The next run (cron) fails one image: its numbers, the same success.
    broken = failing_image()
    seed.insert(database.engine, [broken])

    run = fixtures.run_scrubber(config)

    assert run.returncode == 1, run.describe()
    values = read_metrics(metrics_path)
    assert images_by_result(values) == {
        'scrubbed': 0, 'failed': 1, 'skipped': 0, 'in_use': 0}
    assert metric(values, 'pass_reclaimed_bytes') == 0
    assert metric(values, 'backlog_images') == YOUNG + 1
    assert metric(values, 'backlog_oldest_age_seconds') >= \
        broken.deleted_seconds_ago
    assert metric(values, 'last_success_timestamp_seconds') == succeeded_at


def test_a_daemon_keeps_the_backlog_current_between_passes(
        database, config, file_store, metrics_path):
    config.set('DEFAULT', wakeup_time=600, report_interval=1)
    placements = [scenario.Placement(file_store)]
    seed.insert(database.engine, scenario.pending_images(placements, 3, 1))

    with fixtures.RunningScrubber(config, '--daemon') as daemon:
        daemon.wait_for_passes(1, LIVENESS)
        first = read_metrics(metrics_path)
        # Deleted while the daemon sleeps: no pass before ten minutes.
        later = scenario.pending_images(
            placements, 4, 1, deleted_seconds_ago=scenario.YOUNG_SECONDS_AGO)
        seed.insert(database.engine, later)
        fixtures.wait_until(
            lambda: metric(read_metrics(metrics_path),
                           'backlog_images') == 4 or not daemon.running(),
            LIVENESS, interval=0.1, what='the backlog of 4 images shown')
        rewrites = count_rewrites(metrics_path, seconds=3.5)
        run = daemon.stop()

    assert run.returncode == 0, run.describe()
    assert len(run.summaries) == 1
    assert metric(first, 'backlog_images') == 0
    values = read_metrics(metrics_path)
    assert images_by_result(values) == images_by_result(first) == {
        'scrubbed': 3, 'failed': 0, 'skipped': 0, 'in_use': 0}
    assert metric(values, 'last_success_timestamp_seconds') == \
        metric(first, 'last_success_timestamp_seconds')
    # About one rewrite a second.
    assert 2 <= rewrites <= 5


def count_rewrites(path, seconds):
    """How many times *path* was replaced in the next *seconds*."""
    seen = {os.stat(path).st_ino}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(os.stat(path).st_ino)
        time.sleep(0.02)
    return len(seen) - 1


def test_json_logs_carry_the_summary_numbers(database, config, file_store):
    config.set('DEFAULT', use_json=True, report_interval=1)
    placements = [scenario.Placement(file_store)]
    seed.insert(database.engine, scenario.pending_images(placements, 4, 2) +
                [failing_image()])

    run = fixtures.run_scrubber(config)

    assert run.returncode == 1, run.describe()
    records = [json.loads(line) for line in run.output.splitlines()
               if line.startswith('{')]
    summaries = [record for record in records
                 if record['message'].startswith('Scrub pass summary: ')]
    assert len(summaries) == 1
    fields = summaries[0]['extra']
    assert {name: fields[name] for name in (
        'found', 'scrubbed', 'failed', 'skipped', 'in_use',
        'locations_deleted', 'bytes_reclaimed')} == {
        'found': 5, 'scrubbed': 4, 'failed': 1, 'skipped': 0, 'in_use': 0,
        'locations_deleted': 8, 'bytes_reclaimed': 8 * scenario.IMAGE_SIZE}
    assert fields['seconds'] > 0
    # The text of the line is what it always was.
    assert summaries[0]['message'].startswith(
        'Scrub pass summary: found=5 scrubbed=4 failed=1 skipped=0 '
        'in_use=0 locations_deleted=8 bytes_reclaimed=8192 seconds=%.2f '
        'images_per_second=' % fields['seconds'])


@pytest.fixture
def slow_proxy(proxy):
    proxy.delay = 0.05
    return proxy


def test_report_interval_paces_the_progress_lines_and_the_file(
        database, config, slow_proxy, s3_bucket, metrics_path):
    """A pass of several seconds, a report (and a rewrite) each second."""
    config.set('glance_store', filesystem_store_datadir=None)
    config.use_s3_store(slow_proxy.endpoint, s3_bucket.name)
    config.set('DEFAULT', scrub_pool_size=1, report_interval=1,
               use_json=True)
    s3_bucket.url_netloc = slow_proxy.netloc
    images = scenario.pending_images([scenario.Placement(s3_bucket)], 40, 1)
    seed.insert(database.engine, images)

    running_counts = []
    with fixtures.RunningScrubber(config) as scrub:
        while scrub.running():
            running_counts.append(running_scrubbed(metrics_path))
            time.sleep(0.1)
        run = scrub.wait()

    assert run.returncode == 0, run.describe()
    records = [json.loads(line) for line in run.output.splitlines()
               if line.startswith('{')]
    progress = [record for record in records
                if record['message'].startswith('Scrub pass in progress: ')]
    seconds = run.summary['seconds']
    assert seconds >= 3, 'the pass was too short to show the pacing'
    # Never more often than report_interval; late by half of it at most,
    # on a busy machine.
    assert int(seconds / 1.5) <= len(progress) <= int(seconds)
    times = [record['created'] for record in progress]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert all(gap >= 0.99 for gap in gaps), gaps
    assert sorted(gaps)[len(gaps) // 2] < 1.5, gaps
    # The progress lines carry their numbers, growing.
    scrubbed = [record['extra']['scrubbed'] for record in progress]
    assert scrubbed == sorted(scrubbed) and scrubbed[-1] > 0
    assert all(record['extra']['in_flight'] >= 0 for record in progress)
    # The file was rewritten at the reports, mid-pass.
    seen = [count for count in running_counts if count is not None]
    assert len(set(seen)) >= 2, running_counts
    assert images_by_result(read_metrics(metrics_path))['scrubbed'] == 40


def running_scrubbed(path):
    """The images scrubbed so far, while the file says a pass runs."""
    try:
        values = read_metrics(path)
    except FileNotFoundError:
        return None
    if not metric(values, 'pass_running'):
        return None
    return metric(values, 'pass_images', result='scrubbed')


def test_a_pass_shorter_than_report_interval_logs_no_progress(
        database, config, file_store):
    # The first progress line is due report_interval after the start, not
    # at it nor at the end. At the default (a minute) any short pass would
    # show nothing; at 2 s, a line at the start or at the end would show.
    config.set('DEFAULT', report_interval=2)
    placements = [scenario.Placement(file_store)]
    seed.insert(database.engine, scenario.pending_images(placements, 3, 1))

    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert run.summary['seconds'] < 2, 'the pass was too long to show it'
    assert 'Scrub pass in progress' not in run.output


@pytest.mark.parametrize('where', ('missing', 'unwritable'))
def test_a_metrics_file_that_cannot_be_written_is_refused_at_start(
        where, database, config, file_store, tmp_path):
    if where == 'missing':
        path = str(tmp_path / 'nowhere' / 'glance_scrubber.prom')
    else:
        path = os.path.join(utils.unwritable_directory(tmp_path),
                            'glance_scrubber.prom')
    config.set('DEFAULT', metrics_file=path)
    image = scenario.pending_images([scenario.Placement(file_store)], 1,
                                    1)[0]
    seed.insert(database.engine, [image])

    run = fixtures.run_scrubber(config)

    assert run.returncode == 2, run.describe()
    assert 'Traceback' not in run.output
    errors = run.stderr.strip().splitlines()
    assert len(errors) == 1 and 'metrics_file' in errors[0], run.describe()
    assert path in errors[0]
    assert seed.image_status(database.engine, image.id).status == \
        'pending_delete'
    assert file_store.exists(image.locations[0].url)


@pytest.mark.parametrize('mode', ('--list', '--dry-run'))
def test_the_read_only_modes_do_not_need_the_metrics_file(
        mode, database, config, file_store, tmp_path):
    # Only passes write it: a broken metrics_file is no reason to refuse
    # a look at the backlog.
    config.set('DEFAULT',
               metrics_file=str(tmp_path / 'nowhere' / 'scrubber.prom'))
    image = scenario.pending_images([scenario.Placement(file_store)], 1,
                                    1)[0]
    seed.insert(database.engine, [image])

    run = fixtures.run_scrubber(config, mode)

    assert run.returncode == 0, run.describe()
    assert image.id in run.stdout
    assert not os.path.exists(tmp_path / 'nowhere')
