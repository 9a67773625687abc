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
daemon with ``--daemon``, or restores one image with ``--restore``.

Exit codes: 0 done, every eligible image scrubbed (or kept because its
data is in use); 1 some images could not be scrubbed (they stay
pending_delete for the next pass), or the pass stopped early; 2 refused:
bad configuration or request, nothing was deleted; 3 --restore refused
because a scrub pass is running on this host.
"""

from importlib import metadata as importlib_metadata
import logging as std_logging
import os
import re
import signal
import sys

from glance import cmd as glance_cmd

import glance_store
from oslo_concurrency import opts as concurrency_opts
from oslo_config import cfg
from oslo_log import log as logging

from glance.common import config
from glance.common import coordination
from glance.common import crypt
from glance.common import exception
from glance.common import s3_stores
from glance.common import store_checks
from glance.common import store_policy
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
    # glance_store imports every driver to list their options; a driver
    # whose optional library is missing (cinder without os-brick) is of no
    # concern unless it is configured, and then loading the stores says so.
    stevedore_log = std_logging.getLogger('stevedore.extension')
    level = stevedore_log.level
    stevedore_log.setLevel(std_logging.CRITICAL)
    try:
        glance_store.register_opts(conf)
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
        glance_store.register_store_opts(conf)
    store_checks.check_datadirs(conf, multistore)
    try:
        _create_stores(conf, multistore)
    except (RuntimeError, glance_store.exceptions.GlanceStoreException,
            glance_store.exceptions.BackendException) as error:
        raise exception.InvalidConfiguration(reason=str(error))
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
            'pool_size': conf.scrub_pool_size,
            'scrub_time': conf.scrub_time,
            'wakeup_time': conf.wakeup_time,
            'encryption_key': conf.metadata_encryption_key,
            'claim_timeout': conf.scrub_claim_timeout,
            'not_found_ratio': conf.scrub_not_found_ratio,
            'lock_path': conf.oslo_concurrency.lock_path,
        }
    except (cfg.Error, ValueError) as error:
        raise exception.InvalidConfiguration(reason=_option_error(error))
    if settings['daemon'] and settings['restore']:
        raise exception.InvalidConfiguration(
            reason=_('--restore cannot be combined with --daemon'))
    _check_lock_path(settings['lock_path'])
    if settings['encryption_key']:
        try:
            crypt.validate_key(settings['encryption_key'])
        except ValueError as error:
            raise exception.InvalidConfiguration(reason=str(error))
    return settings


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
    workers = 1 if settings['restore'] else settings['pool_size']
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
        s3_stores=shared_s3)


def build_scrubber(admin_context, settings, deleter, membership):
    return scrubber.Scrubber(
        admin_context, scrubber.Worker(deleter), deleter,
        scrubber.Executors(glance_cmd.BACKEND), settings['pool_size'],
        settings['scrub_time'], settings['lock_path'],
        claim_timeout=settings['claim_timeout'],
        not_found_ratio=settings['not_found_ratio'],
        membership=membership)


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


def run_once(the_scrubber):
    _on_stop_signals(the_scrubber.stop)
    summary = the_scrubber.run_once()
    if summary.aborted:
        _fail(summary.aborted)
    # Images in use are kept on purpose: not a failure.
    return EXIT_IMAGES_FAILED if summary.failed or summary.aborted \
        else EXIT_OK


def run_daemon(the_scrubber, wakeup_time):
    """Run the Daemon service until SIGTERM or SIGINT.

    The service is driven here rather than by an oslo.service launcher:
    the launchers end the process at once on SIGINT, while both signals
    must let the images in flight finish.
    """
    daemon = scrubber.Daemon(the_scrubber, wakeup_time)
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


def _start(argv):
    register_opts(CONF)
    try:
        config.parse_args(CONF, args=argv)
    except cfg.Error as error:
        raise exception.InvalidConfiguration(reason=str(error))
    logging.setup(CONF, 'glance')
    settings = read_settings(CONF)
    LOG.info('glance-scrubber on the %s backend', glance_cmd.BACKEND)
    admin_context = context.get_admin_context()
    db_api.configure()
    db_api.check_schema(admin_context)
    return settings, admin_context


def main(argv=None):
    try:
        settings, admin_context = _start(argv)
        multistore = setup_stores(CONF)
        deleter = build_deleter(admin_context, settings, multistore)
        membership = coordination.from_config(CONF,
                                              settings['claim_timeout'])
    except (exception.InvalidConfiguration,
            exception.DatabaseUnavailable) as error:
        _fail(error)
        return EXIT_REFUSED
    try:
        with db_api.database_errors():
            if settings['restore']:
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
