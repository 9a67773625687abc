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

"""The metrics file: its format, its atomic write, what it remembers.

The format is read back with prometheus_client's own parser, and checked
line by line for what that parser forgives (HELP and TYPE lines, names).
The backlog query runs on real SQLite, MariaDB and PostgreSQL.
"""

import datetime
import os
import re
import stat
import time

from oslo_config import cfg
from oslo_db import exception as db_exception
from oslo_utils import timeutils
from prometheus_client import parser
import pytest

from glance.cmd import scrubber as cmd
from glance.common import exception
from glance import context as glance_context
from glance.db.sqlalchemy import api
from glance import scrubber
from glance.scrubber import claims
from glance.scrubber import coordination
from glance.scrubber import metrics
from glance.scrubber import model
from glance.tests import seed
from glance.tests import utils

NAME = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*$')
NOW = datetime.datetime(2026, 11, 28, 12, 0, 0)


def a_summary(**counts):
    values = dict(found=9, scrubbed=5, failed=2, skipped=1, in_use=1,
                  locations_deleted=7, bytes_reclaimed=7 * 1024,
                  seconds=12.5)
    values.update(counts)
    return scrubber.Summary(**values)


def families(text):
    return {family.name: family
            for family in parser.text_string_to_metric_families(text)}


def value_of(text, name, **labels):
    for sample in families(text)[name].samples:
        if sample.labels == labels:
            return sample.value
    raise KeyError((name, labels))


def every_gauge():
    return (metrics.pass_gauges(a_summary(), 12.5, running=False) +
            metrics.backlog_gauges(
                api.BacklogTotals(3, NOW - datetime.timedelta(hours=2)),
                NOW) +
            metrics.claims_gauges(
                model.ClaimsElsewhere(4, NOW + datetime.timedelta(minutes=30)),
                NOW) +
            [metrics.last_success_gauge(1764331200.25)])


# --- the format -------------------------------------------------------------


def test_the_pass_backlog_and_last_success_read_back():
    text = metrics.render(every_gauge())

    assert value_of(text, 'glance_scrubber_pass_images',
                    result='scrubbed') == 5
    assert value_of(text, 'glance_scrubber_pass_images', result='failed') == 2
    assert value_of(text, 'glance_scrubber_pass_images',
                    result='skipped') == 1
    assert value_of(text, 'glance_scrubber_pass_images', result='in_use') == 1
    assert value_of(text, 'glance_scrubber_pass_locations_deleted') == 7
    assert value_of(text, 'glance_scrubber_pass_reclaimed_bytes') == 7168
    assert value_of(text, 'glance_scrubber_pass_duration_seconds') == 12.5
    assert value_of(text, 'glance_scrubber_pass_running') == 0
    assert value_of(text, 'glance_scrubber_backlog_images') == 3
    assert value_of(text, 'glance_scrubber_backlog_oldest_age_seconds') == \
        7200
    assert value_of(text, 'glance_scrubber_claimed_images') == 4
    assert value_of(text, 'glance_scrubber_claimed_next_takeable_seconds') \
        == 1800
    assert value_of(
        text, 'glance_scrubber_last_success_timestamp_seconds') == \
        1764331200.25
    assert value_of(text, 'glance_scrubber_pass_images',
                    result='left_claimed') == 0


def test_every_family_is_a_documented_gauge_named_by_the_conventions():
    text = metrics.render(every_gauge())

    assert text.endswith('\n')
    seen = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith('# HELP '):
            name, help_text = line[len('# HELP '):].split(' ', 1)
            assert help_text.strip()
            assert lines[index + 1] == '# TYPE %s gauge' % name
            seen.append(name)
        elif not line.startswith('#'):
            # A sample comes after the HELP and TYPE of its family.
            assert re.split(r'[{ ]', line)[0] == seen[-1], line
    assert len(seen) == len(set(seen)) == len(families(text))
    for name in seen:
        assert NAME.match(name) and name.startswith('glance_scrubber_')
        # Gauges: _total is for counters; units are spelled out.
        assert not name.endswith('_total')
    for family in families(text).values():
        assert family.type == 'gauge'


def test_a_running_pass_says_so():
    text = metrics.render(metrics.pass_gauges(a_summary(), 3.0,
                                              running=True))

    assert value_of(text, 'glance_scrubber_pass_running') == 1
    assert value_of(text, 'glance_scrubber_pass_duration_seconds') == 3.0


def test_no_claim_and_a_claim_already_takeable_wait_zero_seconds():
    none = metrics.render(metrics.claims_gauges(model.ClaimsElsewhere(),
                                                NOW))
    overdue = metrics.render(metrics.claims_gauges(
        model.ClaimsElsewhere(2, NOW - datetime.timedelta(seconds=5)), NOW))

    assert value_of(none, 'glance_scrubber_claimed_images') == 0
    assert value_of(none,
                    'glance_scrubber_claimed_next_takeable_seconds') == 0
    assert value_of(overdue, 'glance_scrubber_claimed_images') == 2
    assert value_of(overdue,
                    'glance_scrubber_claimed_next_takeable_seconds') == 0


def test_no_backlog_has_no_age_and_never_succeeded_is_zero():
    text = metrics.render(
        metrics.backlog_gauges(api.BacklogTotals(0), NOW) +
        [metrics.last_success_gauge(None)])

    assert value_of(text, 'glance_scrubber_backlog_images') == 0
    assert value_of(text, 'glance_scrubber_backlog_oldest_age_seconds') == 0
    assert value_of(
        text, 'glance_scrubber_last_success_timestamp_seconds') == 0


def test_help_and_label_values_are_escaped():
    awkward = 'a "quoted"\\ value\non two lines'
    text = metrics.render([metrics.Gauge(
        'glance_scrubber_test', 'help with a \\ and a\nnewline',
        ((((('what', awkward),)), 1),))])

    family = families(text)['glance_scrubber_test']
    assert family.documentation == 'help with a \\ and a\nnewline'
    assert family.samples[0].labels == {'what': awkward}
    assert len(text.splitlines()) == 3


# --- the atomic write -------------------------------------------------------


def test_the_file_is_replaced_whole_with_mode_0644(tmp_path):
    path = str(tmp_path / 'glance_scrubber.prom')
    metrics.write_atomically(path, 'old 1\n')
    old_umask = os.umask(0o077)
    try:
        with open(path) as reader:
            metrics.write_atomically(path, 'new 2\n')
            # A reader of the old file still reads it whole.
            assert reader.read() == 'old 1\n'
    finally:
        os.umask(old_umask)

    with open(path) as stream:
        assert stream.read() == 'new 2\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(tmp_path) == ['glance_scrubber.prom']


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = str(tmp_path / 'glance_scrubber.prom')
    metrics.write_atomically(path, 'old 1\n')

    with pytest.raises(UnicodeEncodeError):
        metrics.write_atomically(path, 'half written \udc80\n')

    with open(path) as stream:
        assert stream.read() == 'old 1\n'
    assert os.listdir(tmp_path) == ['glance_scrubber.prom']


# --- the last success time --------------------------------------------------


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def no_backlog():
    return api.BacklogTotals(0)


def test_last_success_survives_a_failed_pass_and_a_new_process(tmp_path):
    path = str(tmp_path / 'glance_scrubber.prom')
    clock = Clock(1000.0)
    first = metrics.MetricsFile(path, no_backlog, clock=clock)
    assert first.last_success is None

    first.pass_finished(a_summary(failed=0), succeeded=True)
    clock.now = 2000.0
    first.pass_finished(a_summary(failed=2), succeeded=False)
    text = open(path).read()
    assert value_of(text, metrics.LAST_SUCCESS) == 1000.0
    assert value_of(text, 'glance_scrubber_pass_images',
                    result='failed') == 2

    # A cron job: the next run reads it back, and a failure keeps it.
    clock.now = 3000.0
    second = metrics.MetricsFile(path, no_backlog, clock=clock)
    assert second.last_success == 1000.0
    second.pass_finished(a_summary(failed=1), succeeded=False)
    assert value_of(open(path).read(), metrics.LAST_SUCCESS) == 1000.0
    clock.now = 4000.0
    second.pass_finished(a_summary(failed=0), succeeded=True)
    assert value_of(open(path).read(), metrics.LAST_SUCCESS) == 4000.0


@pytest.mark.parametrize('content', [
    '', 'garbage\n', '%s not-a-number\n' % metrics.LAST_SUCCESS,
    '%s 0\n' % metrics.LAST_SUCCESS, b'\xff\xfe'])
def test_an_unusable_old_file_means_no_success_known(tmp_path, content):
    path = tmp_path / 'glance_scrubber.prom'
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)

    assert metrics.read_last_success(str(path)) is None


def test_progress_and_refresh_keep_the_last_pass(tmp_path):
    path = str(tmp_path / 'glance_scrubber.prom')
    backlog = [api.BacklogTotals(4, timeutils.utcnow())]
    metrics_file = metrics.MetricsFile(path, lambda: backlog[0])

    metrics_file.pass_progress(a_summary(scrubbed=2), 1.5)
    text = open(path).read()
    assert value_of(text, 'glance_scrubber_pass_running') == 1
    assert value_of(text, 'glance_scrubber_pass_images',
                    result='scrubbed') == 2
    assert value_of(text, metrics.LAST_SUCCESS) == 0

    metrics_file.pass_finished(a_summary(scrubbed=6), succeeded=True)
    backlog[0] = api.BacklogTotals(9, timeutils.utcnow())
    metrics_file.refresh()
    text = open(path).read()
    assert value_of(text, 'glance_scrubber_pass_running') == 0
    assert value_of(text, 'glance_scrubber_pass_images',
                    result='scrubbed') == 6
    assert value_of(text, 'glance_scrubber_backlog_images') == 9
    assert value_of(text, metrics.LAST_SUCCESS) > 0


def test_a_database_error_leaves_the_backlog_out(tmp_path):
    path = str(tmp_path / 'glance_scrubber.prom')

    def unreachable():
        raise db_exception.DBConnectionError('gone')

    metrics.MetricsFile(path, unreachable).pass_finished(
        a_summary(), succeeded=True)

    names = families(open(path).read())
    assert 'glance_scrubber_backlog_images' not in names
    assert 'glance_scrubber_pass_images' in names


def test_the_claims_are_written_and_left_out_when_they_cannot_be_read(
        tmp_path):
    path = str(tmp_path / 'glance_scrubber.prom')
    read = [lambda: model.ClaimsElsewhere(
        7, timeutils.utcnow() + datetime.timedelta(seconds=90))]
    metrics_file = metrics.MetricsFile(path, no_backlog,
                                       read_claims=lambda: read[0]())

    metrics_file.refresh()
    text = open(path).read()
    assert value_of(text, 'glance_scrubber_claimed_images') == 7
    assert 85 < value_of(
        text, 'glance_scrubber_claimed_next_takeable_seconds') <= 90

    def unreachable():
        raise db_exception.DBConnectionError('gone')

    read[0] = unreachable
    metrics_file.refresh()
    names = families(open(path).read())
    assert 'glance_scrubber_claimed_images' not in names
    assert 'glance_scrubber_backlog_images' in names


def test_a_write_that_fails_is_logged_once_and_never_raised(
        tmp_path, caplog):
    folder = tmp_path / 'gone'
    folder.mkdir()
    path = str(folder / 'glance_scrubber.prom')
    metrics_file = metrics.MetricsFile(path, no_backlog)
    folder.rmdir()

    for _ in range(3):
        metrics_file.pass_progress(a_summary(), 1.0)
    metrics_file.pass_finished(a_summary(), succeeded=True)

    warnings = [record for record in caplog.records
                if 'Could not write the metrics file' in record.getMessage()]
    assert len(warnings) == 1
    folder.mkdir()
    metrics_file.refresh()
    assert os.path.exists(path)


def test_no_metrics_file_writes_nothing(tmp_path):
    nothing = metrics.NoMetrics()
    nothing.pass_progress(a_summary(), 1.0)
    nothing.pass_finished(a_summary(), succeeded=True)
    nothing.refresh()
    assert os.listdir(tmp_path) == []


# --- the backlog, on every database -----------------------------------------


def test_backlog_counts_the_pending_delete_images_and_the_oldest(db):
    context = glance_context.get_admin_context()
    assert api.backlog_totals(context) == api.BacklogTotals(0, None)
    before = timeutils.utcnow().replace(microsecond=0)
    seed.insert(db.engine, [
        seed.Image(deleted_seconds_ago=7200),
        seed.Image(deleted_seconds_ago=60),
        seed.Image(deleted_seconds_ago=10),
        # Neither waits for a scrubber.
        seed.Image(status='deleted', deleted_seconds_ago=86400),
        seed.Image(status='active', deleted=False),
        # Never scrubbed (not soft-deleted): not counted either, or its
        # age would grow for ever.
        seed.Image(deleted=False, deleted_seconds_ago=86400),
    ])

    totals = api.backlog_totals(context)

    assert totals.count == 3
    age = (before - totals.oldest_deleted_at).total_seconds()
    assert 7198 <= age <= 7202


def test_claims_elsewhere_count_the_claims_not_yet_takeable(db):
    context = glance_context.get_admin_context()
    now = timeutils.utcnow()
    recent, old = [seed.Image([seed.Location('file:///%s' % name)],
                              status='deleted')
                   for name in ('recent', 'old')]
    seed.insert(db.engine, [recent, old])
    stamp = now.replace(microsecond=0) - datetime.timedelta(seconds=100)
    with db.engine.begin() as connection:
        connection.execute(seed.IMAGES.update()
                           .where(seed.IMAGES.c.id == recent.id)
                           .values(updated_at=stamp))

    elsewhere = claims.claimed_elsewhere(context, coordination.Alone(600),
                                         now)

    # The other claim, an hour old (seed's), can be taken over now.
    assert elsewhere == model.ClaimsElsewhere(
        1, stamp + datetime.timedelta(seconds=600))
    assert claims.claimed_elsewhere(
        context, coordination.Alone(60), now) == model.ClaimsElsewhere()


# --- the options ------------------------------------------------------------


class Settings:
    def __init__(self, folder):
        self.folder = folder
        self.conf = cfg.ConfigOpts()
        cmd.register_opts(self.conf)

    def __call__(self, *lines, args=()):
        path = os.path.join(self.folder, 'glance-scrubber.conf')
        with open(path, 'w') as config_file:
            config_file.write('\n'.join(
                ['[DEFAULT]'] + list(lines) +
                ['[oslo_concurrency]',
                 'lock_path = %s' % os.path.join(self.folder, 'locks')]) +
                '\n')
        self.conf.reset()
        self.conf.clear()
        self.conf(['--config-file', path] + list(args), project='glance')
        return scrubber.Settings.from_conf(self.conf)


IMAGE_ID = '6b5c4d3e-2f1a-4b9c-8d7e-0f1a2b3c4d5e'


@pytest.fixture
def settings(tmp_path):
    return Settings(str(tmp_path))


def test_report_interval_defaults_to_a_minute_and_is_at_least_one(settings):
    assert settings().report_interval == 60
    assert settings('report_interval = 5').report_interval == 5
    for value in ('0', '-1', '1.5', 'often'):
        with pytest.raises(exception.InvalidConfiguration,
                           match='report_interval'):
            settings('report_interval = %s' % value)


def test_no_metrics_file_by_default(settings):
    assert settings().metrics_file is None


def test_a_metrics_file_in_a_writable_directory_is_taken(settings,
                                                         tmp_path):
    path = str(tmp_path / 'glance_scrubber.prom')
    assert settings('metrics_file = %s' % path).metrics_file == path
    # Checked by writing, and nothing left behind.
    assert sorted(os.listdir(tmp_path)) == ['glance-scrubber.conf', 'locks']


def test_a_metrics_file_in_a_missing_directory_is_refused(settings,
                                                          tmp_path):
    path = str(tmp_path / 'nowhere' / 'glance_scrubber.prom')

    with pytest.raises(exception.InvalidConfiguration,
                       match='does not exist'):
        settings('metrics_file = %s' % path)
    # A restore does not write metrics: not refused for them.
    assert settings('metrics_file = %s' % path,
                    args=['--restore', IMAGE_ID]).restore == IMAGE_ID


def test_a_metrics_file_that_is_a_directory_is_refused(settings, tmp_path):
    with pytest.raises(exception.InvalidConfiguration,
                       match='is a directory'):
        settings('metrics_file = %s' % tmp_path)


def test_a_metrics_file_in_an_unwritable_directory_is_refused(settings,
                                                              tmp_path):
    folder = utils.unwritable_directory(tmp_path)

    with pytest.raises(exception.InvalidConfiguration,
                       match='not writable'):
        settings('metrics_file = %s' % os.path.join(folder, 'x.prom'))


# --- the daemon between passes ----------------------------------------------


class IdleScrubber:
    """Stands for Scrubber: passes are instant; counts the idle reports."""

    def __init__(self):
        self.passes = 0
        self.idle_reports = []

    def run_once(self):
        self.passes += 1
        return scrubber.Summary()

    def report_idle(self):
        self.idle_reports.append(time.monotonic())

    def stop(self, reason=None):
        pass


def test_a_sleeping_daemon_reports_every_report_interval():
    idle = IdleScrubber()
    daemon = scrubber.Daemon(idle, wakeup_time=30, report_interval=0.2)
    daemon.start()
    try:
        deadline = time.monotonic() + 30
        while len(idle.idle_reports) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        daemon.stop()
        daemon.wait()

    assert idle.passes == 1
    assert len(idle.idle_reports) >= 5
    gaps = [later - earlier for earlier, later
            in zip(idle.idle_reports, idle.idle_reports[1:])]
    assert min(gaps) >= 0.19


def test_a_daemon_without_report_interval_does_not_report_while_idle():
    idle = IdleScrubber()
    daemon = scrubber.Daemon(idle, wakeup_time=30)
    daemon.start()
    time.sleep(1.5)
    daemon.stop()
    daemon.wait()

    assert idle.passes == 1
    assert idle.idle_reports == []
