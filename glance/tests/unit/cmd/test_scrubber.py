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

"""glance-scrubber's start-up checks: bad input is refused before work."""

import logging
import os
import signal
import sys
import threading

import fixtures
from oslo_config import cfg
import testtools

from glance import cmd as glance_cmd
from glance.cmd import scrubber as cmd
from glance.common import exception
from glance import scrubber


IMAGE_ID = '6b5c4d3e-2f1a-4b9c-8d7e-0f1a2b3c4d5e'


class TestSettings(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.folder = self.useFixture(fixtures.TempDir()).path
        self.conf = cfg.ConfigOpts()
        cmd.register_opts(self.conf)
        self.lock_path = os.path.join(self.folder, 'locks')

    def parse(self, *lines, args=()):
        path = os.path.join(self.folder, 'glance-scrubber.conf')
        with open(path, 'w') as config_file:
            config_file.write('\n'.join(lines) + '\n')
        self.conf(['--config-file', path] + list(args), project='glance')
        return self.conf

    def settings(self, *lines, args=()):
        lock = ['[oslo_concurrency]', 'lock_path = %s' % self.lock_path]
        return scrubber.Settings.from_conf(
            self.parse('[DEFAULT]', *lines, *lock, args=args))

    def test_defaults(self):
        settings = self.settings()

        self.assertEqual(1, settings.scrub_pool_size)
        self.assertEqual(0, settings.scrub_time)
        self.assertEqual(300, settings.wakeup_time)
        self.assertEqual(3600, settings.scrub_claim_timeout)
        self.assertEqual(0.5, settings.scrub_not_found_ratio)
        self.assertFalse(settings.daemon)
        self.assertTrue(os.path.isdir(self.lock_path))

    def test_pool_size_must_be_a_positive_integer(self):
        for value in ('0', '-3', 'abc', '2.5'):
            error = self.assertRaises(
                exception.InvalidConfiguration, self.settings,
                'scrub_pool_size = %s' % value)
            self.assertIn('scrub_pool_size', str(error))
            self.conf.reset()
            self.conf.clear()

    def test_claim_timeout_is_read_and_bounded(self):
        self.assertEqual(7200, self.settings(
            'scrub_claim_timeout = 7200').scrub_claim_timeout)
        self.conf.reset()
        self.conf.clear()

        error = self.assertRaises(exception.InvalidConfiguration,
                                  self.settings, 'scrub_claim_timeout = 59')
        self.assertIn('scrub_claim_timeout', str(error))

    def test_not_found_ratio_is_a_share_between_zero_and_one(self):
        self.assertEqual(0.25, self.settings(
            'scrub_not_found_ratio = 0.25').scrub_not_found_ratio)
        for value in ('-0.1', '1.5', 'half'):
            self.conf.reset()
            self.conf.clear()
            error = self.assertRaises(
                exception.InvalidConfiguration, self.settings,
                'scrub_not_found_ratio = %s' % value)
            self.assertIn('scrub_not_found_ratio', str(error))

    def test_restore_cannot_be_combined_with_daemon(self):
        error = self.assertRaises(exception.InvalidConfiguration,
                                  self.settings,
                                  args=['--daemon', '--restore', IMAGE_ID])
        self.assertIn('--restore cannot be combined with --daemon',
                      str(error))

    def test_lock_path_is_required(self):
        conf = self.parse('[DEFAULT]', 'scrub_pool_size = 2')
        conf.set_override('lock_path', None, group='oslo_concurrency')

        error = self.assertRaises(exception.InvalidConfiguration,
                                  scrubber.Settings.from_conf, conf)
        self.assertIn('lock_path is not set', str(error))

    def test_encryption_key_must_be_an_aes_key(self):
        error = self.assertRaises(exception.InvalidConfiguration,
                                  self.settings,
                                  'metadata_encryption_key = short')
        self.assertIn('16, 24 or 32 bytes', str(error))


class TestSettingsDefaults(testtools.TestCase):

    def test_each_setting_defaults_to_its_option(self):
        # Settings() stands for a configuration with nothing set (tests
        # build it so): its defaults must be the options' own.
        options = {option.dest: option.default for option in
                   scrubber.scrubber_opts + scrubber.scrubber_cmd_cli_opts}
        for name in ('scrub_pool_size', 'scrub_time', 'wakeup_time',
                     'report_interval', 'metrics_file', 'daemon', 'list',
                     'dry_run', 'restore', 'scrub_claim_timeout',
                     'scrub_not_found_ratio', 'scrub_store_rate_limit',
                     'scrub_store_timeout'):
            self.assertEqual(options[name], getattr(scrubber.Settings(),
                                                    name), name)


class TestStoreTypes(testtools.TestCase):

    def conf_with(self, stores=None, backends=None):
        conf = cfg.ConfigOpts()
        cmd.register_opts(conf)
        conf([], project='glance')
        if stores:
            conf.set_override('stores', stores, group='glance_store')
        if backends:
            conf.set_override('enabled_backends', backends)
        return conf

    def test_unknown_store_type_is_refused(self):
        error = self.assertRaises(
            exception.InvalidConfiguration, cmd.setup_stores,
            self.conf_with(stores=['file', 'nosuch']), 0)
        self.assertIn('[glance_store] stores names unknown store types: '
                      'nosuch', str(error))

    def test_unknown_backend_type_is_refused(self):
        error = self.assertRaises(
            exception.InvalidConfiguration, cmd.setup_stores,
            self.conf_with(backends={'fast': 'file', 'odd': 'floppy'}), 0)
        self.assertIn('enabled_backends names unknown store types: '
                      'odd:floppy', str(error))


class TestStopSignals(testtools.TestCase):

    def test_the_handler_asks_for_a_stop_and_logs_nothing(self):
        # A handler that logs can interrupt a log write of the pass, and
        # the stream then fails with a traceback ("reentrant call").
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.addCleanup(signal.signal, signum, signal.getsignal(signum))
        logs = self.useFixture(fixtures.FakeLogger(level='DEBUG'))
        requests = []

        cmd._on_stop_signals(requests.append)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)

        self.assertEqual(['SIGTERM', 'SIGINT'], requests)
        self.assertEqual('', logs.output)


class OnePass:
    """Stands for the Scrubber: its pass ends with *summary*."""

    def __init__(self, summary):
        self.summary = summary

    def stop(self, reason=None):
        pass

    def run_once(self):
        return self.summary


class TestExitOfOnePass(testtools.TestCase):

    def setUp(self):
        super().setUp()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.addCleanup(signal.signal, signum, signal.getsignal(signum))
        self.stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', self.stderr))

    def run_pass(self, **counts):
        self.stderr.seek(0)
        self.stderr.truncate()
        code = cmd.run_once(OnePass(scrubber.Summary(**counts)))
        self.stderr.seek(0)
        return code, self.stderr.read().splitlines()

    def test_a_clean_pass_exits_0_and_says_nothing(self):
        self.assertEqual((0, []), self.run_pass(found=3, scrubbed=2,
                                                in_use=1))

    def test_images_left_claimed_are_not_a_clean_pass(self):
        self.assertEqual((1, [
            'glance-scrubber: 2 images could not be scrubbed and stay '
            'pending_delete for the next pass; 1 images stay claimed until '
            'a later pass takes them over (scrub_claim_timeout); the log '
            'says why']), self.run_pass(found=4, scrubbed=1, failed=2,
                                        left_claimed=1))
        self.assertEqual((1, [
            'glance-scrubber: 1 images stay claimed until a later pass '
            'takes them over (scrub_claim_timeout); the log says why']),
            self.run_pass(found=1, left_claimed=1))

    def test_a_pass_stopped_early_says_why_and_which_is_which_in_a_line(self):
        self.assertEqual((1, [
            'glance-scrubber: the store s3 stopped answering; 2 images stay '
            'claimed until a later pass takes them over '
            '(scrub_claim_timeout); 5 images claimed and never attempted '
            'were given back: pending_delete and restorable, for the next '
            'pass; the log says why']), self.run_pass(
                found=10, scrubbed=3, left_claimed=2, given_back=5,
                aborted='the store s3 stopped answering'))

    def test_a_pass_stopped_early_with_nothing_left_says_only_why(self):
        self.assertEqual(
            (1, ['glance-scrubber: 3 of the first 5 deletes found no data']),
            self.run_pass(found=2, scrubbed=2,
                          aborted='3 of the first 5 deletes found no data'))


class StoppedInItsFirstPass:
    """Stands for the Scrubber of a daemon stopped by SIGTERM in a pass.

    The pass is left behind (waiting on a database that does not answer)
    when *left_behind*.
    """

    report_interval = 60

    def __init__(self, left_behind):
        self.left_behind = left_behind
        self.last_pass_left_behind = False
        self.stopping = threading.Event()

    def stop(self, reason=None):
        self.stopping.set()

    def report_idle(self):
        pass

    def run_once(self):
        # What the SIGTERM handler run_daemon set up does.
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        self.stopping.wait(10)
        self.last_pass_left_behind = self.left_behind
        return scrubber.Summary()


class TestExitOfTheDaemon(testtools.TestCase):

    def setUp(self):
        super().setUp()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self.addCleanup(signal.signal, signum, signal.getsignal(signum))
        self.stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', self.stderr))

    def run_daemon(self, left_behind):
        code = cmd.run_daemon(StoppedInItsFirstPass(left_behind),
                              wakeup_time=3600)
        self.stderr.seek(0)
        return code, self.stderr.read().splitlines()

    def test_a_daemon_stopped_cleanly_exits_0_and_says_nothing(self):
        self.assertEqual((0, []), self.run_daemon(left_behind=False))

    def test_a_daemon_that_left_its_pass_behind_exits_1(self):
        # Stopped on request, but what the pass claimed stays claimed
        # until scrub_claim_timeout, as after a kill: not a clean stop.
        self.assertEqual((1, [
            'glance-scrubber: stopped while the database was not '
            'answering: what the last pass claimed and did not record '
            'stays claimed until a later pass takes it over '
            '(scrub_claim_timeout)']), self.run_daemon(left_behind=True))


class TestUnexpectedErrors(testtools.TestCase):

    def test_an_uncaught_error_is_logged_and_said_in_one_line(self):
        logged = []
        self.useFixture(fixtures.MonkeyPatch(
            'sys.excepthook', lambda *info: logged.append(info)))
        stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        cmd._say_crashes_on_stderr()

        try:
            raise TypeError('no good\nsecond line')
        except TypeError:
            sys.excepthook(*sys.exc_info())

        self.assertEqual(1, len(logged))  # oslo.log's hook still runs
        stderr.seek(0)
        self.assertEqual(['glance-scrubber: unexpected error (the log has '
                          'the traceback): TypeError: no good'],
                         stderr.read().splitlines())


class TestWarningsBeforeTheLog(testtools.TestCase):

    def setUp(self):
        super().setUp()
        # A logger and a holder of the test's own, in place of the
        # process's 'py.warnings' and its holder.
        self.log = logging.getLogger('glance-test-warnings-%s' % self.id())
        self.log.propagate = False
        self.held = glance_cmd._HeldWarnings()
        self.held.LIMIT = 2
        self.log.addHandler(self.held)
        self.useFixture(fixtures.MonkeyPatch(
            'glance.cmd._WARNINGS_LOG', self.log))
        self.useFixture(fixtures.MonkeyPatch(
            'glance.cmd._HELD_WARNINGS', self.held))

    def set_up_the_log(self):
        logged = []
        handler = logging.Handler()
        handler.emit = lambda record: logged.append(record.getMessage())
        self.log.addHandler(handler)
        return logged

    def test_held_until_the_log_is_set_up_then_logged_in_order(self):
        for number in range(3):
            self.log.warning('warning %d', number)
        logged = self.set_up_the_log()
        self.assertEqual([], logged)

        glance_cmd.log_held_warnings()
        glance_cmd.log_held_warnings()  # once only
        self.log.warning('warning 3')

        self.assertEqual(['warning 0', 'warning 1',
                          '1 more warnings raised before the log was set '
                          'up were not kept', 'warning 3'], logged)
        self.assertNotIn(self.held, self.log.handlers)
        self.assertTrue(self.log.propagate)
