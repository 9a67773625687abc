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

Exit codes, each with its constant below and the word the pages give it:

* 0 (EXIT_OK) done: every image the pass took on was scrubbed, skipped,
  or kept because its data is in use; a restore succeeded; --list or
  --dry-run printed the whole listing; the daemon stopped on SIGTERM or
  SIGINT with every image it had claimed recorded or given back.
* 1 (EXIT_IMAGES_FAILED) unfinished: the command started and did not
  finish. Some images could not be scrubbed (they stay pending_delete
  for the next pass) or are left claimed (until scrub_claim_timeout), or
  the pass stopped early; the daemon's stop had to leave its pass behind
  on a database that did not answer; the database went away under
  --list or --dry-run (the listing is incomplete) or --restore (whether
  the restore was written is not known).
* 2 (EXIT_REFUSED) refused: bad configuration or request, refused at
  start, or a restore refused; nothing was deleted, no image changed.
* 3 (EXIT_BUSY) busy: --restore refused because a scrub pass or another
  restore holds the scrub lock on this host.
* 4 (EXIT_STORE_UNAVAILABLE) unavailable: a store did not answer within
  scrub_store_timeout or could not be reached, at start (its check) or
  under --restore (the look-up of the data); refused, nothing was
  deleted, no image changed: try again once the store answers.

1 rather than 2 when the database goes away after the start: 2 promises
that nothing began, and a listing was under way, a restore may have been
written.
"""

import logging as std_logging
import os
import signal
import sys

from glance import cmd as glance_cmd

import glance_store
from oslo_concurrency import opts as concurrency_opts
from oslo_config import cfg
from oslo_log import log as logging

from glance import _compat
from glance.common import config
from glance.common import exception
from glance import context
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _
from glance import scrubber
from glance.scrubber import backlog
from glance.scrubber import coordination
from glance.scrubber import data_users as data_users_index
from glance.scrubber.stores import calls as store_calls
from glance.scrubber.stores import checks as store_checks
from glance.scrubber.stores import deleter as store_deleter
from glance.scrubber.stores import gate as store_gate
from glance.scrubber.stores import layout
from glance.scrubber.stores import s3
from glance.scrubber.stores import sending
from glance.scrubber.stores import swift
from glance.scrubber.stores import urls

CONF = cfg.CONF
LOG = logging.getLogger('glance.scrubber')

EXIT_OK = 0
EXIT_IMAGES_FAILED = 1
EXIT_REFUSED = 2
EXIT_BUSY = 3
EXIT_STORE_UNAVAILABLE = 4


def register_opts(conf):
    config.register_opts(conf)
    scrubber.register_opts(conf)
    scrubber.register_cli_opts(conf)
    coordination.register_opts(conf)
    logging.register_options(conf)
    for group, options in concurrency_opts.list_opts():
        conf.register_opts(options, group=group)
    with _compat.driver_import_errors_unsaid():
        glance_store.register_opts(conf)


def _check_store_types(store_layout):
    known = _compat.store_driver_names()
    if store_layout.multistore:
        option = 'enabled_backends'
        wanted = {'%s:%s' % backend: backend[1]
                  for backend in store_layout.backends}
    else:
        option = '[glance_store] stores'
        wanted = {kind: kind for _name, kind in store_layout.backends}
    unknown = sorted(name for name, kind in wanted.items()
                     if kind not in known)
    if unknown:
        raise exception.InvalidConfiguration(
            reason=_('%(option)s names unknown store types: %(names)s')
            % {'option': option, 'names': ', '.join(unknown)})


def setup_stores(conf, store_timeout):
    """Load the store drivers; fail on an unknown store before any delete.

    A file datadir must exist before the drivers are loaded (the file
    store would create it empty).

    :param store_timeout: ``scrub_store_timeout``: glance_store's own
        timeouts left unset default to it.
    :returns: the StoreLayout of the configured backends.
    """
    store_layout = layout.StoreLayout.from_config(conf)
    _check_store_types(store_layout)
    if store_layout.multistore:
        with _compat.driver_import_errors_unsaid():
            glance_store.register_store_opts(conf)
    store_checks.check_datadirs(conf, store_layout)
    store_calls.bound_library_timeouts(conf, store_layout, store_timeout)
    try:
        _create_stores(conf, store_layout.multistore)
    except (RuntimeError, glance_store.exceptions.GlanceStoreException,
            glance_store.exceptions.BackendException) as error:
        raise exception.InvalidConfiguration(reason=str(error))
    except (cfg.Error, ValueError) as error:
        # A store option's value, read only when its driver loads.
        raise exception.InvalidConfiguration(
            reason=_compat.option_error_text(error))
    store_checks.check_can_delete(store_layout)
    return store_layout


def _create_stores(conf, multistore):
    if multistore:
        glance_store.create_multi_stores(conf)
        glance_store.verify_store()
    else:
        glance_store.create_stores(conf)
        glance_store.verify_default_store()


class StoreSide:
    """What a command deletes with: the deleter and what it is built of."""

    def __init__(self, deleter, data_users, gate):
        self.deleter = deleter
        self.data_users = data_users
        self.gate = gate


def build_store_side(admin_context, settings, store_layout):
    """The StoreDeleter, its S3 clients built, its stores checked.

    :param settings: the options.Settings; the S3 clients are built for
        its ``workers``.
    """
    shared_s3 = s3.SharedS3Stores.from_config(CONF, store_layout)
    workers = settings.workers
    try:
        clients = shared_s3.prepare(workers)
    except ValueError as error:
        # botocore's word for an endpoint it cannot use.
        raise exception.InvalidConfiguration(
            reason=_('cannot make an S3 client: %s') % error)
    if clients:
        LOG.info('%d S3 client(s) ready for %d workers', clients, workers)
    gate = _store_gate(settings, workers)
    calls = store_calls.StoreCalls(glance_cmd.BACKEND,
                                   settings.scrub_store_timeout, workers)
    store_checks.check_stores(store_layout, shared_s3,
                              sending.StoreSender(gate, calls))
    data_users = data_users_index.DataUsers(
        urls.LocationUrls(settings.metadata_encryption_key), admin_context)
    deleter = store_deleter.StoreDeleter(
        admin_context, store_layout=store_layout,
        encryption_key=settings.metadata_encryption_key,
        datadirs=layout.FileDatadirs(
            layout.configured_datadirs(CONF, store_layout)),
        data_users=data_users, s3_stores=shared_s3,
        swift_stores=swift.SharedSwiftConnections.from_config(
            CONF, store_layout),
        gate=gate, calls=calls)
    return StoreSide(deleter, data_users, gate)


def _store_gate(settings, workers):
    rate = settings.scrub_store_rate_limit
    return store_gate.StoreGate(
        workers, rate_cap=store_gate.RateCap(rate) if rate else None)


def build_scrubber(admin_context, settings, stores, membership):
    return scrubber.Scrubber(
        admin_context, settings, stores.deleter, stores.data_users,
        stores.gate, scrubber.Executors(glance_cmd.BACKEND),
        membership=membership)


def restore(admin_context, image_id, lock_path, deleter):
    restored, error = _attempt(
        lambda: scrubber.restore(admin_context, image_id, lock_path,
                                 deleter),
        exception.ScrubberBusy, exception.NotFound, exception.Conflict,
        exception.StoreUnavailable)
    if isinstance(error, exception.ScrubberBusy):
        _fail(error)
        return EXIT_BUSY
    if isinstance(error, exception.StoreUnavailable):
        _fail(error)
        return EXIT_STORE_UNAVAILABLE
    if error is not None:
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
    if settings.list:
        names = backlog.StoreNames(bool(CONF.enabled_backends),
                                   settings.metadata_encryption_key)

        def show():
            backlog.print_backlog(
                admin_context, settings.scrub_time, names, sys.stdout,
                claim_timeout=settings.scrub_claim_timeout,
                coordinated=bool(CONF.coordination.backend_url))
    else:
        store_layout = setup_stores(CONF, settings.scrub_store_timeout)
        names = backlog.StoreNames(store_layout.multistore,
                                   settings.metadata_encryption_key)
        stores = build_store_side(admin_context, settings, store_layout)
        show = backlog.DryRun(admin_context, stores.deleter,
                              stores.data_users, settings.scrub_time,
                              names, sys.stdout).run

    def show_from_the_database():
        with db_api.database_errors():
            show()

    try:
        _shown, error = _attempt(show_from_the_database,
                                 exception.DatabaseUnavailable)
    except BrokenPipeError:
        # Piped into head(1) or a pager that quit: it has what it wanted.
        # Python's own flush at exit would fail again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    if error is not None:
        # Begun and not finished: what was printed is part of the listing
        # only. Not EXIT_REFUSED, which says nothing began.
        _fail(error)
        return EXIT_IMAGES_FAILED
    return EXIT_OK


def run_once(the_scrubber):
    _on_stop_signals(the_scrubber.stop)
    summary = the_scrubber.run_once()
    # The log may be on stdout or in a file: cron mails stderr, one line.
    said = [summary.aborted] if summary.aborted else []
    if summary.failed or summary.left_claimed or summary.given_back:
        said.append(_unfinished(summary))
    if said:
        _say('; '.join(said))
    return EXIT_OK if summary.succeeded else EXIT_IMAGES_FAILED


def _unfinished(summary):
    """One line on the images a pass that ran to its end did not finish."""
    parts = []
    if summary.failed:
        parts.append(_('%d images could not be scrubbed and stay '
                       'pending_delete for the next pass') % summary.failed)
    if summary.left_claimed:
        parts.append(_('%d images stay claimed until a later pass takes '
                       'them over (scrub_claim_timeout)')
                     % summary.left_claimed)
    if summary.given_back:
        parts.append(_('%d images claimed and never attempted were given '
                       'back: pending_delete and restorable, for the next '
                       'pass') % summary.given_back)
    return _('%s; the log says why') % '; '.join(parts)


def run_daemon(the_scrubber, wakeup_time):
    """Run the Daemon service until SIGTERM or SIGINT.

    The service is driven here rather than by an oslo.service launcher:
    the launchers end the process at once on SIGINT, while both signals
    must let the images in flight finish.

    :returns: EXIT_OK once stopped, every image it claimed recorded or
        given back (the images its passes failed are for the log and the
        metrics, as while it runs); EXIT_IMAGES_FAILED when the stop had
        to leave the last pass behind, waiting on a database that did not
        answer: what it claimed and did not record stays claimed until a
        later pass takes it over (scrub_claim_timeout), as after a kill,
        and the metrics file was not updated at its end. The stop was
        asked for, but the daemon did not stop cleanly; a single pass
        stopped so exits 1 too.
    """
    daemon = scrubber.Daemon(the_scrubber, wakeup_time,
                             report_interval=the_scrubber.report_interval)
    _on_stop_signals(daemon.request_stop)
    signal.signal(signal.SIGHUP, _ignore_hangup)
    daemon.start()
    daemon.wait()
    daemon.stop()
    if the_scrubber.last_pass_left_behind:
        _say(_('stopped while the database was not answering: what the '
               'last pass claimed and did not record stays claimed until '
               'a later pass takes it over (scrub_claim_timeout)'))
        return EXIT_IMAGES_FAILED
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
    """One line on stderr (cron mails it) and, once there is one, the log.

    Before the log is set up Python would print a logged error to stderr
    a second time: it is then said on stderr only.
    """
    _say(error)
    if _compat.oslo_log_is_set_up():
        LOG.error('%s', error)


def _say(error):
    """One line on stderr, for what the log has already said."""
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
    if not conf.debug:
        _database_errors_in_one_line()
    _say_crashes_on_stderr()


class _OneLineDatabaseErrors(std_logging.Filter):
    """oslo.db's own records of a database error, without the traceback.

    oslo.db logs a traceback for an error it wraps or gives up retrying;
    the scrubber says the same in one line of its own (the refusal, the
    image that failed, or the pass stopped early). With ``debug`` on the
    tracebacks are kept.
    """

    def filter(self, record):
        if record.name.startswith('oslo_db'):
            record.exc_info = None
            record.exc_text = None
            record.msg = exception.one_line(record.getMessage())
            record.args = None
        return True


def _database_errors_in_one_line():
    for handler in std_logging.getLogger().handlers:
        handler.addFilter(_OneLineDatabaseErrors())


def _say_crashes_on_stderr():
    """An unexpected error: its traceback in the log, one line on stderr.

    oslo.log logs an uncaught exception, and the log is on stdout or in a
    file unless configured otherwise: cron would report nothing.
    """
    log_crash = sys.excepthook

    def excepthook(exc_type, value, tb):
        log_crash(exc_type, value, tb)
        _say(_('unexpected error (the log has the traceback): '
               '%(type)s: %(error)s')
             % {'type': exc_type.__name__,
                'error': exception.one_line(value)})

    sys.excepthook = excepthook


def _start(argv):
    register_opts(CONF)
    try:
        config.parse_args(CONF, args=argv)
    except cfg.Error as error:
        raise exception.InvalidConfiguration(reason=str(error))
    _setup_logging(CONF)
    settings = scrubber.Settings.from_conf(CONF)
    if settings.read_only and not CONF.debug:
        # The report is the output, on stdout where the log goes too by
        # default: only warnings and errors join it.
        std_logging.getLogger().setLevel(std_logging.WARNING)
    LOG.info('glance-scrubber on the %s backend', glance_cmd.BACKEND)
    admin_context = context.get_admin_context()
    db_api.configure()
    db_api.check_schema(admin_context)
    return settings, admin_context


REFUSALS = (exception.InvalidConfiguration, exception.DatabaseUnavailable,
            exception.StoreUnavailable)


def main(argv=None):
    started, error = _attempt(lambda: _start(argv), *REFUSALS)
    if error is not None:
        return _refused(error)
    settings, admin_context = started
    if settings.read_only:
        code, error = _attempt(
            lambda: show_backlog(admin_context, settings), *REFUSALS)
        return code if error is None else _refused(error)
    prepared, error = _attempt(
        lambda: _prepare(admin_context, settings), *REFUSALS)
    if error is not None:
        return _refused(error)
    stores, membership = prepared
    try:
        code, error = _attempt(
            lambda: _run(admin_context, settings, stores, membership),
            exception.DatabaseUnavailable)
    finally:
        stores.deleter.close()
        # The others take this scrubber's share at once, rather than when
        # its heartbeat has expired.
        membership.leave()
    if error is not None:
        # The database went away after start: begun and not finished, not
        # refused. Whatever a pass deleted and did not record is finished
        # by the next pass; a restore may or may not have been written.
        _fail(error)
        return EXIT_IMAGES_FAILED
    return code


def _prepare(admin_context, settings):
    """The stores loaded and checked, and this scrubber's membership."""
    store_layout = setup_stores(CONF, settings.scrub_store_timeout)
    stores = build_store_side(admin_context, settings, store_layout)
    membership = coordination.from_config(CONF,
                                          settings.scrub_claim_timeout)
    if not settings.restoring:
        # A backend down at start is refused in seconds, not after the
        # driver's retries; a restore does not use it.
        membership.start()
    return stores, membership


def _run(admin_context, settings, stores, membership):
    with db_api.database_errors():
        if settings.restoring:
            return restore(admin_context, settings.restore,
                           settings.lock_path, stores.deleter)
        the_scrubber = build_scrubber(admin_context, settings, stores,
                                      membership)
        if settings.daemon:
            return run_daemon(the_scrubber, settings.wakeup_time)
        return run_once(the_scrubber)


def _refused(error):
    _fail(error)
    if isinstance(error, exception.StoreUnavailable):
        return EXIT_STORE_UNAVAILABLE
    return EXIT_REFUSED


def _attempt(call, *errors):
    """(call(), None), or (None, the error) when it raised one of *errors*.

    The caller reports the error after the except block: logged inside
    it, oslo.log would append the active exception to the line, saying
    it twice.
    """
    try:
        return call(), None
    except errors as error:
        return None, error
