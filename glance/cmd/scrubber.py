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

"""glance-scrubber: reclaim the data of images deleted with delayed_delete.

Runs one scrub pass and exits (for cron or a systemd timer), runs as a
daemon with ``--daemon``, restores one image with ``--restore``, or shows
the backlog without changing anything with ``--list`` or ``--dry-run``.

Exit codes: 0 done, every eligible image scrubbed (or kept because its
data is in use); 1 some images could not be scrubbed (they stay
pending_delete for the next pass), or the pass stopped early; 2 refused:
bad configuration or request, nothing was deleted; 3 --restore refused
because a scrub pass is running on this host.
"""

import contextlib
from importlib import metadata as importlib_metadata
import logging as std_logging
import math
import os
import re
import signal
import sys

from glance import cmd as glance_cmd

import glance_store
from oslo_concurrency import opts as concurrency_opts
from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import uuidutils

from glance import backlog
from glance.common import config
from glance.common import coordination
from glance.common import crypt
from glance.common import exception
from glance.common import metrics
from glance.common import s3_stores
from glance.common import store_checks
from glance.common import store_policy
from glance.common import swift_stores
from glance.common import throttle
from glance import context
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _
from glance import scrubber

CONF = cfg.CONF
LOG = logging.getLogger('glance.scrubber')

EXIT_OK = 0
EXIT_IMAGES_FAILED = 1
EXIT_REFUSED = 2
EXIT_BUSY = 3


def register_opts(conf):
    config.register_opts(conf)
    scrubber.register_opts(conf)
    scrubber.register_cli_opts(conf)
    coordination.register_opts(conf)
    logging.register_options(conf)
    for group, options in concurrency_opts.list_opts():
        conf.register_opts(options, group=group)
    with _missing_drivers_unsaid():
        glance_store.register_opts(conf)


@contextlib.contextmanager
def _missing_drivers_unsaid():
    """Silence stevedore while glance_store lists every driver's options.

    A driver whose optional library is missing (cinder without os-brick)
    is of no concern unless it is configured, and then loading the stores
    says so; otherwise stevedore would log an ERROR on every run.
    """
    stevedore_log = std_logging.getLogger('stevedore.extension')
    level = stevedore_log.level
    stevedore_log.setLevel(std_logging.CRITICAL)
    try:
        yield
    finally:
        stevedore_log.setLevel(level)


def _known_store_types():
    # Entry point names only: loading every driver would import the
    # optional libraries of stores this deployment does not use.
    return {entry_point.name for entry_point in
            importlib_metadata.entry_points(group='glance_store.drivers')}


def _check_store_types(conf):
    known = _known_store_types()
    if conf.enabled_backends:
        wanted = {'%s:%s' % item: item[1]
                  for item in conf.enabled_backends.items()}
        option = 'enabled_backends'
    else:
        wanted = {name: name for name in conf.glance_store.stores}
        option = '[glance_store] stores'
    unknown = sorted(name for name, kind in wanted.items()
                     if kind not in known)
    if unknown:
        raise exception.InvalidConfiguration(
            reason=_('%(option)s names unknown store types: %(names)s')
            % {'option': option, 'names': ', '.join(unknown)})


def setup_stores(conf):
    """Load the store drivers; fail on an unknown store before any delete.

    A file datadir must exist before the drivers are loaded (the file
    store would create it empty).

    :returns: True when multiple backends (``enabled_backends``) are on.
    """
    _check_store_types(conf)
    multistore = bool(conf.enabled_backends)
    if multistore:
        with _missing_drivers_unsaid():
            glance_store.register_store_opts(conf)
    store_checks.check_datadirs(conf, multistore)
    store_policy.bound_library_timeouts(conf, multistore,
                                        conf.scrub_store_timeout)
    try:
        _create_stores(conf, multistore)
    except (RuntimeError, glance_store.exceptions.GlanceStoreException,
            glance_store.exceptions.BackendException) as error:
        raise exception.InvalidConfiguration(reason=str(error))
    except (cfg.Error, ValueError) as error:
        # A store option's value, read only when its driver loads.
        raise exception.InvalidConfiguration(reason=_option_error(error))
    store_checks.check_can_delete(conf, multistore)
    return multistore


def _create_stores(conf, multistore):
    if multistore:
        glance_store.create_multi_stores(conf)
        glance_store.verify_store()
    else:
        glance_store.create_stores(conf)
        glance_store.verify_default_store()


def read_settings(conf):
    """Read and check, once, every option the command needs.

    :raises InvalidConfiguration: a value is missing or out of range.
    """
    try:
        settings = {
            'daemon': conf.daemon,
            'restore': conf.restore,
            'list': conf.list,
            'dry_run': conf.dry_run,
            'pool_size': conf.scrub_pool_size,
            'scrub_time': conf.scrub_time,
            'wakeup_time': conf.wakeup_time,
            'report_interval': conf.report_interval,
            'metrics_file': conf.metrics_file,
            'encryption_key': conf.metadata_encryption_key,
            'claim_timeout': conf.scrub_claim_timeout,
            'not_found_ratio': conf.scrub_not_found_ratio,
            'store_rate_limit': conf.scrub_store_rate_limit,
            'store_timeout': conf.scrub_store_timeout,
            'lock_path': conf.oslo_concurrency.lock_path,
        }
    except (cfg.Error, ValueError) as error:
        raise exception.InvalidConfiguration(reason=_option_error(error))
    _check_values(settings)
    _check_restore_id(settings['restore'])
    if settings['daemon'] and restoring(settings):
        raise exception.InvalidConfiguration(
            reason=_('--restore cannot be combined with --daemon'))
    _check_read_only_modes(settings)
    if not read_only(settings):
        _check_lock_path(settings['lock_path'])
    # Only passes write metrics: not a restore, --list nor --dry-run.
    if settings['metrics_file'] and not (restoring(settings) or
                                         read_only(settings)):
        try:
            metrics.check_writable(settings['metrics_file'])
        except ValueError as error:
            raise exception.InvalidConfiguration(reason=str(error))
    if settings['encryption_key']:
        try:
            crypt.validate_key(settings['encryption_key'])
        except ValueError as error:
            raise exception.InvalidConfiguration(reason=str(error))
    return settings


def restoring(settings):
    """Whether --restore was given, whatever its value.

    Never a truth test on the value: ``--restore ""`` (an empty shell
    variable) must be refused, not run a scrub pass.
    """
    return settings['restore'] is not None


def _check_restore_id(image_id):
    if image_id is not None and not uuidutils.is_uuid_like(image_id):
        raise exception.InvalidConfiguration(
            reason=_('--restore needs the ID of an image (a UUID), not '
                     '%r') % image_id)


def read_only(settings):
    """Whether the command only reads (--list, --dry-run): no lock."""
    return settings['list'] or settings['dry_run']


def _check_read_only_modes(settings):
    """--list and --dry-run are modes of their own: refuse a mix."""
    for mode, excluded in (('list', ('dry_run', 'restore', 'daemon')),
                           ('dry_run', ('restore', 'daemon'))):
        clash = [_flag(name) for name in excluded
                 if settings[name] not in (None, False)]
        if settings[mode] and clash:
            raise exception.InvalidConfiguration(
                reason=_('%(mode)s cannot be combined with %(others)s')
                % {'mode': _flag(mode), 'others': ', '.join(clash)})


def _flag(setting):
    return '--' + setting.replace('_', '-')


# Settings with no meaning when empty: an ``option =`` line in a file
# gives None, not the option's default.
_NEEDS_A_VALUE = {
    'pool_size': 'scrub_pool_size',
    'scrub_time': 'scrub_time',
    'wakeup_time': 'wakeup_time',
    'report_interval': 'report_interval',
    'claim_timeout': 'scrub_claim_timeout',
    'store_timeout': 'scrub_store_timeout',
    'not_found_ratio': 'scrub_not_found_ratio',
}


# Float settings: nan passes oslo.config's min and max checks.
_FINITE = {
    'not_found_ratio': 'scrub_not_found_ratio',
    'store_rate_limit': 'scrub_store_rate_limit',
}


def _check_values(settings):
    for key, option in _NEEDS_A_VALUE.items():
        if settings[key] is None:
            raise exception.InvalidConfiguration(
                reason=_('%s is empty: give it a value, or remove the line '
                         'to use its default') % option)
    for key, option in _FINITE.items():
        value = settings[key]
        if value is not None and not math.isfinite(value):
            raise exception.InvalidConfiguration(
                reason=_('%(option)s must be a finite number, not %(value)s')
                % {'option': option, 'value': value})


def _option_error(error):
    # oslo.config names the source of a bad value by the repr of its
    # LocationInfo; an operator wants the file.
    return re.sub(r"from LocationInfo\(.*?detail='([^']*)'\)", r'in \1',
                  str(error))


def _check_lock_path(lock_path):
    if not lock_path:
        raise exception.InvalidConfiguration(
            reason=_('[oslo_concurrency] lock_path is not set: scrub '
                     'passes and --restore share a lock file there'))
    try:
        os.makedirs(lock_path, exist_ok=True)
    except OSError as error:
        raise exception.InvalidConfiguration(
            reason=_('[oslo_concurrency] lock_path %(path)s cannot be '
                     'created: %(error)s')
            % {'path': lock_path, 'error': error.strerror})
    if not os.access(lock_path, os.W_OK | os.X_OK):
        raise exception.InvalidConfiguration(
            reason=_('[oslo_concurrency] lock_path %s is not writable')
            % lock_path)


def build_deleter(admin_context, settings, multistore):
    """The StoreDeleter, its S3 clients built, its stores checked.

    :param settings: read_settings()'s; the S3 clients are built for
        ``pool_size`` workers (one for a restore).
    """
    shared_s3 = s3_stores.SharedS3Stores.from_config(CONF, multistore)
    workers = 1 if restoring(settings) else settings['pool_size']
    try:
        clients = shared_s3.prepare(workers)
    except ValueError as error:
        # botocore's word for an endpoint it cannot use.
        raise exception.InvalidConfiguration(
            reason=_('cannot make an S3 client: %s') % error)
    if clients:
        LOG.info('%d S3 client(s) ready for %d workers', clients, workers)
    store_checks.check_stores(CONF, multistore, shared_s3)
    datadirs = store_policy.FileDatadirs(
        store_policy.configured_datadirs(CONF, multistore))
    return store_policy.StoreDeleter(
        admin_context, multistore=multistore,
        encryption_key=settings['encryption_key'], datadirs=datadirs,
        s3_stores=shared_s3, gate=_store_gate(settings, workers),
        calls=store_policy.StoreCalls(glance_cmd.BACKEND,
                                      settings['store_timeout'], workers),
        swift_stores=swift_stores.SharedSwiftConnections.from_config(
            CONF, multistore))


def _store_gate(settings, workers):
    rate = settings['store_rate_limit']
    return throttle.StoreGate(workers,
                              rate_cap=throttle.RateCap(rate) if rate
                              else None)


def build_scrubber(admin_context, settings, deleter, membership):
    return scrubber.Scrubber(
        admin_context, scrubber.Worker(deleter), deleter,
        scrubber.Executors(glance_cmd.BACKEND), settings['pool_size'],
        settings['scrub_time'], settings['lock_path'],
        claim_timeout=settings['claim_timeout'],
        not_found_ratio=settings['not_found_ratio'],
        membership=membership,
        report_interval=settings['report_interval'],
        metrics_file=settings['metrics_file'])


def restore(admin_context, image_id, lock_path, deleter):
    try:
        restored = scrubber.restore(admin_context, image_id, lock_path,
                                    deleter)
    except exception.ScrubberBusy as error:
        _fail(error)
        return EXIT_BUSY
    except (exception.NotFound, exception.Conflict) as error:
        _fail(error)
        return EXIT_REFUSED
    print(_('Image %(id)s restored to active; locations restored: '
            '%(locations)d; properties: %(properties)d, tags: %(tags)d, '
            'members: %(members)d.') % {
        'id': image_id, 'locations': restored.locations,
        'properties': restored.properties, 'tags': restored.tags,
        'members': restored.members})
    if restored.property_names:
        # glance-api's delete erases which properties were removed before
        # it: the operator is the one who can tell.
        print(_('Properties restored (check none was removed on purpose '
                'before the delete): %s.')
              % ', '.join(restored.property_names))
    if restored.locations_gone:
        print(_('Not restored: %d locations whose data is gone from their '
                'store (now recorded deleted).') % restored.locations_gone)
    return EXIT_OK


def show_backlog(admin_context, settings):
    """--list or --dry-run: print the backlog; only reads, takes no lock.

    --list needs the database only. --dry-run loads and checks the stores
    as a pass does (so it is refused where a pass would be), and only
    asks the pass's StoreDeleter what it would decide.
    """
    if settings['list']:
        names = backlog.StoreNames(bool(CONF.enabled_backends),
                                   settings['encryption_key'])

        def show():
            backlog.print_backlog(admin_context, settings['scrub_time'],
                                  names, sys.stdout)
    else:
        multistore = setup_stores(CONF)
        names = backlog.StoreNames(multistore, settings['encryption_key'])
        deleter = build_deleter(admin_context, settings, multistore)
        show = backlog.DryRun(admin_context, deleter, settings['scrub_time'],
                              names, sys.stdout).run
    try:
        with db_api.database_errors():
            show()
    except exception.DatabaseUnavailable as error:
        _fail(error)
        return EXIT_IMAGES_FAILED
    except BrokenPipeError:
        # Piped into head(1) or a pager that quit: it has what it wanted.
        # Python's own flush at exit would fail again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def run_once(the_scrubber):
    _on_stop_signals(the_scrubber.stop)
    summary = the_scrubber.run_once()
    if summary.aborted:
        _fail(summary.aborted)
    elif summary.failed:
        # The log may be on stdout or in a file: cron mails stderr.
        _fail(_('%d images could not be scrubbed and stay pending_delete '
                'for the next pass; the log says why') % summary.failed)
    # Images in use are kept on purpose: not a failure.
    return EXIT_IMAGES_FAILED if summary.failed or summary.aborted \
        else EXIT_OK


def run_daemon(the_scrubber, wakeup_time):
    """Run the Daemon service until SIGTERM or SIGINT.

    The service is driven here rather than by an oslo.service launcher:
    the launchers end the process at once on SIGINT, while both signals
    must let the images in flight finish.
    """
    daemon = scrubber.Daemon(the_scrubber, wakeup_time,
                             report_interval=the_scrubber.report_interval)
    _on_stop_signals(daemon.request_stop)
    signal.signal(signal.SIGHUP, _ignore_hangup)
    daemon.start()
    daemon.wait()
    daemon.stop()
    return EXIT_OK


def _on_stop_signals(request_stop):
    # No logging in the handler: it may interrupt a log write, and the
    # stream would refuse the reentrant call. The pass logs the stop.
    def handle(signum, frame):
        request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _ignore_hangup(signum, frame):
    LOG.warning('SIGHUP ignored: restart glance-scrubber to read a changed '
                'configuration')


def _fail(error):
    print('glance-scrubber: %s' % error, file=sys.stderr)


def _setup_logging(conf):
    try:
        logging.setup(conf, 'glance')
    except OSError as error:
        raise exception.InvalidConfiguration(
            reason=_('cannot open the log file %(path)s (log_file, '
                     'log_dir): %(error)s')
            % {'path': error.filename, 'error': error.strerror})
    except logging.LogConfigError as error:
        raise exception.InvalidConfiguration(reason=str(error))
    # Those raised while the libraries were imported, held until now.
    glance_cmd.log_held_warnings()
    _say_crashes_on_stderr()


def _say_crashes_on_stderr():
    """An unexpected error: its traceback in the log, one line on stderr.

    oslo.log logs an uncaught exception, and the log is on stdout or in a
    file unless configured otherwise: cron would report nothing.
    """
    log_crash = sys.excepthook

    def excepthook(exc_type, value, tb):
        log_crash(exc_type, value, tb)
        _fail(_('unexpected error (the log has the traceback): '
                '%(type)s: %(error)s')
              % {'type': exc_type.__name__,
                 'error': store_policy.one_line(value)})

    sys.excepthook = excepthook


def _start(argv):
    register_opts(CONF)
    try:
        config.parse_args(CONF, args=argv)
    except cfg.Error as error:
        raise exception.InvalidConfiguration(reason=str(error))
    _setup_logging(CONF)
    settings = read_settings(CONF)
    if read_only(settings) and not CONF.debug:
        # The report is the output, on stdout where the log goes too by
        # default: only warnings and errors join it.
        std_logging.getLogger().setLevel(std_logging.WARNING)
    LOG.info('glance-scrubber on the %s backend', glance_cmd.BACKEND)
    admin_context = context.get_admin_context()
    db_api.configure()
    db_api.check_schema(admin_context)
    return settings, admin_context


def main(argv=None):
    try:
        settings, admin_context = _start(argv)
        if read_only(settings):
            return show_backlog(admin_context, settings)
        multistore = setup_stores(CONF)
        deleter = build_deleter(admin_context, settings, multistore)
        membership = coordination.from_config(CONF,
                                              settings['claim_timeout'])
        if not restoring(settings):
            # A backend down at start is refused in seconds, not after
            # the driver's retries; a restore does not use it.
            membership.start()
    except (exception.InvalidConfiguration,
            exception.DatabaseUnavailable) as error:
        _fail(error)
        return EXIT_REFUSED
    try:
        with db_api.database_errors():
            if restoring(settings):
                return restore(admin_context, settings['restore'],
                               settings['lock_path'], deleter)
            the_scrubber = build_scrubber(admin_context, settings, deleter,
                                          membership)
            if settings['daemon']:
                return run_daemon(the_scrubber, settings['wakeup_time'])
            return run_once(the_scrubber)
    except exception.DatabaseUnavailable as error:
        # The database went away after start: whatever was deleted and
        # not recorded is finished by the next pass.
        _fail(error)
        return EXIT_IMAGES_FAILED
    finally:
        # The others take this scrubber's share at once, rather than when
        # its heartbeat has expired.
        membership.leave()
