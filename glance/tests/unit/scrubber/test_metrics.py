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

import fixtures
from oslo_config import cfg
from oslo_db import exception as db_exception
from oslo_utils import timeutils
from prometheus_client import parser
import testtools

from glance.cmd import scrubber as cmd
from glance.common import exception
from glance.db.sqlalchemy import api
from glance import scrubber
from glance.scrubber import claims
from glance.scrubber import coordination
from glance.scrubber import metrics
from glance.scrubber import model
from glance.tests import seed
from glance.tests import unit
from glance.tests.unit import db as db_tests
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


class TempDirTestCase(testtools.TestCase):
    """A folder of the test's own: self.folder, a pathlib.Path."""

    def setUp(self):
        super().setUp()
        self.folder = unit.temporary_folder(self)
        self.path = str(self.folder / 'glance_scrubber.prom')


# --- the format -------------------------------------------------------------


class TestFormat(testtools.TestCase):
    """The text format, read back with prometheus_client's parser."""

    def test_the_pass_backlog_and_last_success_read_back(self):
        text = metrics.render(every_gauge())

        self.assertEqual(5, value_of(text, 'glance_scrubber_pass_images',
                                     result='scrubbed'))
        self.assertEqual(2, value_of(text, 'glance_scrubber_pass_images',
                                     result='failed'))
        self.assertEqual(1, value_of(text, 'glance_scrubber_pass_images',
                                     result='skipped'))
        self.assertEqual(1, value_of(text, 'glance_scrubber_pass_images',
                                     result='in_use'))
        self.assertEqual(7, value_of(
            text, 'glance_scrubber_pass_locations_deleted'))
        self.assertEqual(7168, value_of(
            text, 'glance_scrubber_pass_reclaimed_bytes'))
        self.assertEqual(12.5, value_of(
            text, 'glance_scrubber_pass_duration_seconds'))
        self.assertEqual(0, value_of(text, 'glance_scrubber_pass_running'))
        self.assertEqual(3, value_of(text, 'glance_scrubber_backlog_images'))
        self.assertEqual(7200, value_of(
            text, 'glance_scrubber_backlog_oldest_age_seconds'))
        self.assertEqual(4, value_of(text, 'glance_scrubber_claimed_images'))
        self.assertEqual(1800, value_of(
            text, 'glance_scrubber_claimed_next_takeable_seconds'))
        self.assertEqual(1764331200.25, value_of(
            text, 'glance_scrubber_last_success_timestamp_seconds'))
        self.assertEqual(0, value_of(text, 'glance_scrubber_pass_images',
                                     result='left_claimed'))

    def test_every_family_is_a_documented_gauge_named_by_the_conventions(
            self):
        text = metrics.render(every_gauge())

        self.assertTrue(text.endswith('\n'), text)
        seen = []
        lines = text.splitlines()
        for index, line in enumerate(lines):
            if line.startswith('# HELP '):
                name, help_text = line[len('# HELP '):].split(' ', 1)
                self.assertTrue(help_text.strip(), line)
                self.assertEqual('# TYPE %s gauge' % name, lines[index + 1])
                seen.append(name)
            elif not line.startswith('#'):
                # A sample comes after the HELP and TYPE of its family.
                self.assertEqual(seen[-1], re.split(r'[{ ]', line)[0], line)
        self.assertEqual(len(set(seen)), len(seen))
        self.assertEqual(len(families(text)), len(seen))
        for name in seen:
            self.assertTrue(NAME.match(name), name)
            self.assertTrue(name.startswith('glance_scrubber_'), name)
            # Gauges: _total is for counters; units are spelled out.
            self.assertFalse(name.endswith('_total'), name)
        for family in families(text).values():
            self.assertEqual('gauge', family.type, family.name)

    def test_a_running_pass_says_so(self):
        text = metrics.render(metrics.pass_gauges(a_summary(), 3.0,
                                                  running=True))

        self.assertEqual(1, value_of(text, 'glance_scrubber_pass_running'))
        self.assertEqual(3.0, value_of(
            text, 'glance_scrubber_pass_duration_seconds'))

    def test_no_claim_and_a_claim_already_takeable_wait_zero_seconds(self):
        none = metrics.render(metrics.claims_gauges(model.ClaimsElsewhere(),
                                                    NOW))
        overdue = metrics.render(metrics.claims_gauges(
            model.ClaimsElsewhere(2, NOW - datetime.timedelta(seconds=5)),
            NOW))

        self.assertEqual(0, value_of(none, 'glance_scrubber_claimed_images'))
        self.assertEqual(0, value_of(
            none, 'glance_scrubber_claimed_next_takeable_seconds'))
        self.assertEqual(2, value_of(overdue,
                                     'glance_scrubber_claimed_images'))
        self.assertEqual(0, value_of(
            overdue, 'glance_scrubber_claimed_next_takeable_seconds'))

    def test_no_backlog_has_no_age_and_never_succeeded_is_zero(self):
        text = metrics.render(
            metrics.backlog_gauges(api.BacklogTotals(0), NOW) +
            [metrics.last_success_gauge(None)])

        self.assertEqual(0, value_of(text, 'glance_scrubber_backlog_images'))
        self.assertEqual(0, value_of(
            text, 'glance_scrubber_backlog_oldest_age_seconds'))
        self.assertEqual(0, value_of(
            text, 'glance_scrubber_last_success_timestamp_seconds'))

    def test_help_and_label_values_are_escaped(self):
        awkward = 'a "quoted"\\ value\non two lines'
        text = metrics.render([metrics.Gauge(
            'glance_scrubber_test', 'help with a \\ and a\nnewline',
            ((((('what', awkward),)), 1),))])

        family = families(text)['glance_scrubber_test']
        self.assertEqual('help with a \\ and a\nnewline',
                         family.documentation)
        self.assertEqual({'what': awkward}, family.samples[0].labels)
        self.assertEqual(3, len(text.splitlines()))


# --- the atomic write -------------------------------------------------------


class TestAtomicWrite(TempDirTestCase):
    """write_atomically: a reader sees the old file or the new, whole."""

    def test_the_file_is_replaced_whole_with_mode_0644(self):
        metrics.write_atomically(self.path, 'old 1\n')
        old_umask = os.umask(0o077)
        try:
            with open(self.path) as reader:
                metrics.write_atomically(self.path, 'new 2\n')
                # A reader of the old file still reads it whole.
                self.assertEqual('old 1\n', reader.read())
        finally:
            os.umask(old_umask)

        with open(self.path) as stream:
            self.assertEqual('new 2\n', stream.read())
        self.assertEqual(0o644, stat.S_IMODE(os.stat(self.path).st_mode))
        self.assertEqual(['glance_scrubber.prom'], os.listdir(self.folder))

    def test_a_failed_write_leaves_the_old_file_and_no_temporary(self):
        metrics.write_atomically(self.path, 'old 1\n')

        self.assertRaises(UnicodeEncodeError, metrics.write_atomically,
                          self.path, 'half written \udc80\n')

        with open(self.path) as stream:
            self.assertEqual('old 1\n', stream.read())
        self.assertEqual(['glance_scrubber.prom'], os.listdir(self.folder))


# --- the last success time --------------------------------------------------


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def no_backlog():
    return api.BacklogTotals(0)


def unreachable():
    raise db_exception.DBConnectionError('gone')


class TestMetricsFile(TempDirTestCase):
    """MetricsFile: what it writes, and the last success it remembers."""

    def read(self):
        with open(self.path) as stream:
            return stream.read()

    def test_last_success_survives_a_failed_pass_and_a_new_process(self):
        clock = Clock(1000.0)
        first = metrics.MetricsFile(self.path, no_backlog, clock=clock)
        self.assertIsNone(first.last_success)

        first.pass_finished(a_summary(failed=0), succeeded=True)
        clock.now = 2000.0
        first.pass_finished(a_summary(failed=2), succeeded=False)
        text = self.read()
        self.assertEqual(1000.0, value_of(text, metrics.LAST_SUCCESS))
        self.assertEqual(2, value_of(text, 'glance_scrubber_pass_images',
                                     result='failed'))

        # A cron job: the next run reads it back, and a failure keeps it.
        clock.now = 3000.0
        second = metrics.MetricsFile(self.path, no_backlog, clock=clock)
        self.assertEqual(1000.0, second.last_success)
        second.pass_finished(a_summary(failed=1), succeeded=False)
        self.assertEqual(1000.0, value_of(self.read(), metrics.LAST_SUCCESS))
        clock.now = 4000.0
        second.pass_finished(a_summary(failed=0), succeeded=True)
        self.assertEqual(4000.0, value_of(self.read(), metrics.LAST_SUCCESS))

    def check_no_success_known_from(self, content):
        path = self.folder / 'glance_scrubber.prom'
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

        self.assertIsNone(metrics.read_last_success(str(path)))

    def test_an_empty_old_file_means_no_success_known(self):
        self.check_no_success_known_from('')

    def test_an_old_file_of_garbage_means_no_success_known(self):
        self.check_no_success_known_from('garbage\n')

    def test_an_old_success_not_a_number_means_no_success_known(self):
        self.check_no_success_known_from(
            '%s not-a-number\n' % metrics.LAST_SUCCESS)

    def test_an_old_success_of_zero_means_no_success_known(self):
        self.check_no_success_known_from('%s 0\n' % metrics.LAST_SUCCESS)

    def test_an_old_file_not_in_utf_8_means_no_success_known(self):
        self.check_no_success_known_from(b'\xff\xfe')

    def test_progress_and_refresh_keep_the_last_pass(self):
        backlog = [api.BacklogTotals(4, timeutils.utcnow())]
        metrics_file = metrics.MetricsFile(self.path, lambda: backlog[0])

        metrics_file.pass_progress(a_summary(scrubbed=2), 1.5)
        text = self.read()
        self.assertEqual(1, value_of(text, 'glance_scrubber_pass_running'))
        self.assertEqual(2, value_of(text, 'glance_scrubber_pass_images',
                                     result='scrubbed'))
        self.assertEqual(0, value_of(text, metrics.LAST_SUCCESS))

        metrics_file.pass_finished(a_summary(scrubbed=6), succeeded=True)
        backlog[0] = api.BacklogTotals(9, timeutils.utcnow())
        metrics_file.refresh()
        text = self.read()
        self.assertEqual(0, value_of(text, 'glance_scrubber_pass_running'))
        self.assertEqual(6, value_of(text, 'glance_scrubber_pass_images',
                                     result='scrubbed'))
        self.assertEqual(9, value_of(text, 'glance_scrubber_backlog_images'))
        self.assertGreater(value_of(text, metrics.LAST_SUCCESS), 0)

    def test_a_database_error_leaves_the_backlog_out(self):
        metrics.MetricsFile(self.path, unreachable).pass_finished(
            a_summary(), succeeded=True)

        names = families(self.read())
        self.assertNotIn('glance_scrubber_backlog_images', names)
        self.assertIn('glance_scrubber_pass_images', names)

    def test_the_claims_are_written_and_left_out_when_they_cannot_be_read(
            self):
        read = [lambda: model.ClaimsElsewhere(
            7, timeutils.utcnow() + datetime.timedelta(seconds=90))]
        metrics_file = metrics.MetricsFile(self.path, no_backlog,
                                           read_claims=lambda: read[0]())

        metrics_file.refresh()
        text = self.read()
        self.assertEqual(7, value_of(text, 'glance_scrubber_claimed_images'))
        takeable = value_of(text,
                            'glance_scrubber_claimed_next_takeable_seconds')
        self.assertTrue(85 < takeable <= 90, takeable)

        read[0] = unreachable
        metrics_file.refresh()
        names = families(self.read())
        self.assertNotIn('glance_scrubber_claimed_images', names)
        self.assertIn('glance_scrubber_backlog_images', names)

    def test_a_write_that_fails_is_logged_once_and_never_raised(self):
        logged = self.useFixture(fixtures.FakeLogger())
        folder = self.folder / 'gone'
        folder.mkdir()
        path = str(folder / 'glance_scrubber.prom')
        metrics_file = metrics.MetricsFile(path, no_backlog)
        folder.rmdir()

        for _ in range(3):
            metrics_file.pass_progress(a_summary(), 1.0)
        metrics_file.pass_finished(a_summary(), succeeded=True)

        self.assertEqual(1, logged.output.count(
            'Could not write the metrics file'), logged.output)
        folder.mkdir()
        metrics_file.refresh()
        self.assertTrue(os.path.exists(path))

    def test_no_metrics_file_writes_nothing(self):
        nothing = metrics.NoMetrics()
        nothing.pass_progress(a_summary(), 1.0)
        nothing.pass_finished(a_summary(), succeeded=True)
        nothing.refresh()
        self.assertEqual([], os.listdir(self.folder))


# --- the backlog, on every database -----------------------------------------


class BacklogTests:
    """The queries behind the backlog and claims gauges."""

    def test_backlog_counts_the_pending_delete_images_and_the_oldest(self):
        self.assertEqual(api.BacklogTotals(0, None),
                         api.backlog_totals(self.context))
        before = timeutils.utcnow().replace(microsecond=0)
        seed.insert(self.engine, [
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

        totals = api.backlog_totals(self.context)

        self.assertEqual(3, totals.count)
        age = (before - totals.oldest_deleted_at).total_seconds()
        self.assertTrue(7198 <= age <= 7202, age)

    def test_claims_elsewhere_count_the_claims_not_yet_takeable(self):
        now = timeutils.utcnow()
        recent, old = [seed.Image([seed.Location('file:///%s' % name)],
                                  status='deleted')
                       for name in ('recent', 'old')]
        seed.insert(self.engine, [recent, old])
        stamp = now.replace(microsecond=0) - datetime.timedelta(seconds=100)
        with self.engine.begin() as connection:
            connection.execute(seed.IMAGES.update()
                               .where(seed.IMAGES.c.id == recent.id)
                               .values(updated_at=stamp))

        elsewhere = claims.claimed_elsewhere(
            self.context, coordination.Alone(600), now)

        # The other claim, an hour old (seed's), can be taken over now.
        self.assertEqual(model.ClaimsElsewhere(
            1, stamp + datetime.timedelta(seconds=600)), elsewhere)
        self.assertEqual(model.ClaimsElsewhere(), claims.claimed_elsewhere(
            self.context, coordination.Alone(60), now))


class TestBacklogOnSQLite(BacklogTests, db_tests.SQLiteTestCase):
    pass


class TestBacklogOnMySQL(BacklogTests, db_tests.MySQLTestCase):
    pass


class TestBacklogOnPostgreSQL(BacklogTests, db_tests.PostgreSQLTestCase):
    pass


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


class TestOptions(TempDirTestCase):
    """report_interval and metrics_file, checked as the command starts."""

    def setUp(self):
        super().setUp()
        self.settings = Settings(str(self.folder))

    def assert_refused(self, words, *lines, args=()):
        refused = self.assertRaises(exception.InvalidConfiguration,
                                    self.settings, *lines, args=args)
        self.assertIn(words, str(refused))

    def test_report_interval_defaults_to_a_minute_and_is_at_least_one(self):
        self.assertEqual(60, self.settings().report_interval)
        self.assertEqual(
            5, self.settings('report_interval = 5').report_interval)
        for value in ('0', '-1', '1.5', 'often'):
            self.assert_refused('report_interval',
                                'report_interval = %s' % value)

    def test_no_metrics_file_by_default(self):
        self.assertIsNone(self.settings().metrics_file)

    def test_a_metrics_file_in_a_writable_directory_is_taken(self):
        self.assertEqual(self.path, self.settings(
            'metrics_file = %s' % self.path).metrics_file)
        # Checked by writing, and nothing left behind.
        self.assertEqual(['glance-scrubber.conf', 'locks'],
                         sorted(os.listdir(self.folder)))

    def test_a_metrics_file_in_a_missing_directory_is_refused(self):
        path = str(self.folder / 'nowhere' / 'glance_scrubber.prom')

        self.assert_refused('does not exist', 'metrics_file = %s' % path)
        # A restore does not write metrics: not refused for them.
        self.assertEqual(IMAGE_ID, self.settings(
            'metrics_file = %s' % path,
            args=['--restore', IMAGE_ID]).restore)

    def test_a_metrics_file_that_is_a_directory_is_refused(self):
        self.assert_refused('is a directory',
                            'metrics_file = %s' % self.folder)

    def test_a_metrics_file_in_an_unwritable_directory_is_refused(self):
        folder = utils.unwritable_directory(self.folder)

        self.assert_refused('not writable', 'metrics_file = %s'
                            % os.path.join(folder, 'x.prom'))


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


class TestIdleDaemon(testtools.TestCase):
    """The daemon reports between passes, at its report_interval."""

    def test_a_sleeping_daemon_reports_every_report_interval(self):
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

        self.assertEqual(1, idle.passes)
        self.assertGreaterEqual(len(idle.idle_reports), 5)
        gaps = [later - earlier for earlier, later
                in zip(idle.idle_reports, idle.idle_reports[1:])]
        self.assertGreaterEqual(min(gaps), 0.19)

    def test_a_daemon_without_report_interval_does_not_report_while_idle(
            self):
        idle = IdleScrubber()
        daemon = scrubber.Daemon(idle, wakeup_time=30)
        daemon.start()
        time.sleep(1.5)
        daemon.stop()
        daemon.wait()

        self.assertEqual(1, idle.passes)
        self.assertEqual([], idle.idle_reports)
