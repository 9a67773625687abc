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

"""Is the scrubber looking at the store that holds the data?

A store answers "not found" for data it does not have, and the scrubber
counts "not found" as already deleted. Pointed at the wrong store (another
S3 endpoint or bucket, a file store whose file system is not mounted:
glance_store creates an empty datadir), it would mark every image deleted
and leave the data orphaned where it really is. Two checks stop that:

* at start, each configured store must be one that can hold the data:
  the file datadirs exist before glance_store is loaded, the S3 buckets
  and RBD pools exist (check_datadirs(), check_stores()); a store that
  does not answer in time or cannot be reached is not a configuration
  error but an outage, refused as such (StoreUnavailable);
* during a pass, the recorder's NotFoundGuard watches the first deletes
  and stops the pass when too many of them find nothing
  (glance.scrubber.recorder).
"""

import functools
import os

import glance_store
from glance_store import capabilities

from glance import _compat
from glance.common import exception
from glance.i18n import _
from glance.scrubber.stores import errors
from glance.scrubber.stores import layout
from glance.scrubber.stores import sending


def check_datadirs(conf, store_layout):
    """Refuse a file datadir that does not exist.

    Run before glance_store is loaded: its file store creates a missing
    datadir, and an empty one answers "not found" for every image.

    :raises InvalidConfiguration: a datadir is missing or not a directory.
    """
    for datadir in layout.configured_datadirs(conf, store_layout):
        if not os.path.isdir(datadir):
            raise exception.InvalidConfiguration(reason=_(
                'filesystem_store_datadir %s does not exist or is not a '
                'directory: is its file system mounted? glance-scrubber '
                'does not create it') % datadir)


def check_stores(store_layout, s3_stores, sender=None):
    """Refuse an S3 bucket or an RBD pool that does not exist.

    The look-ups are store requests like any other: throttled answers are
    sent again by the gate, each look-up is bounded by
    ``scrub_store_timeout``.

    :param s3_stores: the SharedS3Stores that will serve the S3 locations.
    :param sender: the sending.StoreSender of the command; by default one
        that lets everything through, unbounded.
    :raises InvalidConfiguration: a bucket or pool is missing, or cannot
        be looked up.
    :raises StoreUnavailable: a store did not answer in time, or could
        not be reached.
    """
    sender = sender or sending.StoreSender()
    try:
        for problem in s3_stores.missing_buckets(sender):
            raise exception.InvalidConfiguration(reason=problem)
        for problem in _missing_rbd_pools(store_layout, sender):
            raise exception.InvalidConfiguration(reason=problem)
    except errors.StoreOutage as outage:
        raise exception.StoreUnavailable(reason=_(
            'store %(store)s: %(error)s; nothing was deleted, try again '
            'once it answers') % {'store': outage.store, 'error': outage})


def _configured_stores(store_layout, of_type=None):
    """(name, type, store instance) of every configured store.

    :param of_type: only the stores of this type; None for all.
    """
    backends = [(name, kind) for name, kind in store_layout.backends
                if of_type in (None, kind)]
    if store_layout.multistore:
        return [(name, kind,
                 glance_store.get_store_from_store_identifier(name))
                for name, kind in backends]
    return [(kind, kind, glance_store.get_store_from_scheme(kind))
            for _name, kind in backends]


def check_can_delete(store_layout):
    """Refuse a store that glance_store left unable to delete.

    A driver that fails to configure (a missing library or option) is
    still loaded, with its write access taken away: every delete would
    answer "not supported", as the http store does for data Glance never
    owned, and the data would be let go instead of deleted.

    :raises InvalidConfiguration: naming the first such store.
    """
    for name, kind, store in _configured_stores(store_layout):
        if kind in layout.READ_ONLY_STORE_TYPES:
            continue
        if not store.is_capable(capabilities.BitMasks.WRITE_ACCESS):
            raise exception.InvalidConfiguration(reason=_(
                'store %(name)s (%(type)s) failed to configure and cannot '
                'delete: see the warning glance_store logged about it')
                % {'name': name, 'type': kind})


def _pool_exists(store, pool):
    with _compat.rbd_connection(store) as connection:
        return connection.pool_exists(pool)


def _missing_rbd_pools(store_layout, sender):
    for name, _kind, store in _configured_stores(store_layout,
                                                 layout.RBD_TYPE):
        pool = _compat.rbd_pool(store)
        conf_file = _compat.rbd_conf_file(store)
        try:
            exists = sender.send(layout.RBD_SCHEME,
                                 functools.partial(_pool_exists, store, pool),
                                 store=name)
        except errors.StoreOutage:
            raise
        except Exception as error:  # noqa: BLE001 - librados' many errors
            yield _('cannot reach the RBD cluster of %(conf)s: %(error)s') % {
                'conf': conf_file, 'error': exception.one_line(error)}
            continue
        if not exists:
            yield _('RBD pool %(pool)s does not exist in the cluster of '
                    '%(conf)s') % {'pool': pool, 'conf': conf_file}
