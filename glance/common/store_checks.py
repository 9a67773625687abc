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
  and RBD pools exist (check_datadirs(), check_stores());
* during a pass, NotFoundGuard watches the first deletes and stops the
  pass when too many of them find nothing.
"""

import os

import glance_store
from glance_store import capabilities

from glance.common import exception
from glance.common import store_policy
from glance.i18n import _


def check_datadirs(conf, multistore):
    """Refuse a file datadir that does not exist.

    Run before glance_store is loaded: its file store creates a missing
    datadir, and an empty one answers "not found" for every image.

    :raises InvalidConfiguration: a datadir is missing or not a directory.
    """
    for datadir in store_policy.configured_datadirs(conf, multistore):
        if not os.path.isdir(datadir):
            raise exception.InvalidConfiguration(reason=_(
                'filesystem_store_datadir %s does not exist or is not a '
                'directory: is its file system mounted? glance-scrubber '
                'does not create it') % datadir)


def check_stores(conf, multistore, s3_stores):
    """Refuse an S3 bucket or an RBD pool that does not exist.

    :param s3_stores: the SharedS3Stores that will serve the S3 locations.
    :raises InvalidConfiguration: a bucket or pool is missing, or cannot
        be looked up.
    """
    for problem in s3_stores.missing_buckets():
        raise exception.InvalidConfiguration(reason=problem)
    for problem in _missing_rbd_pools(conf, multistore):
        raise exception.InvalidConfiguration(reason=problem)


def _configured_stores(conf, multistore):
    """(name, type, store instance) of every configured store."""
    if multistore:
        return [(name, kind,
                 glance_store.get_store_from_store_identifier(name))
                for name, kind in (conf.enabled_backends or {}).items()]
    return [(kind, kind, glance_store.get_store_from_scheme(kind))
            for kind in (conf.glance_store.stores or ())]


def check_can_delete(conf, multistore):
    """Refuse a store that glance_store left unable to delete.

    A driver that fails to configure (a missing library or option) is
    still loaded, with its write access taken away: every delete would
    answer "not supported", as the http store does for data Glance never
    owned, and the data would be let go instead of deleted.

    :raises InvalidConfiguration: naming the first such store.
    """
    for name, kind, store in _configured_stores(conf, multistore):
        if kind in store_policy.READ_ONLY_STORE_TYPES:
            continue
        if not store.is_capable(capabilities.BitMasks.WRITE_ACCESS):
            raise exception.InvalidConfiguration(reason=_(
                'store %(name)s (%(type)s) failed to configure and cannot '
                'delete: see the warning glance_store logged about it')
                % {'name': name, 'type': kind})


def _rbd_stores(conf, multistore):
    return [store for _name, kind, store in _configured_stores(conf,
                                                               multistore)
            if kind == 'rbd']


def _missing_rbd_pools(conf, multistore):
    for store in _rbd_stores(conf, multistore):
        try:
            with store.get_connection(conffile=store.conf_file,
                                      rados_id=store.user) as connection:
                exists = connection.pool_exists(store.pool)
        except Exception as error:  # noqa: BLE001 - librados' many errors
            yield _('cannot reach the RBD cluster of %(conf)s: %(error)s') % {
                'conf': store.conf_file, 'error': store_policy.one_line(
                    error)}
            continue
        if not exists:
            yield _('RBD pool %(pool)s does not exist in the cluster of '
                    '%(conf)s') % {'pool': store.pool,
                                   'conf': store.conf_file}


class NotFoundGuard:
    """Stops a pass whose first deletes mostly find no data.

    The first SAMPLE location deletes of a pass that reach the store are
    the sample (images retaken from a stopped pass do not count: their
    data is expected to be gone). An outcome that found no data for some
    location is held back until the sample can no longer go wrong; if
    more than *ratio* of the sample finds nothing, the guard trips: the
    pass takes no more images, and every held or later outcome that found
    no data is withheld (see _withheld()). A pass with fewer deletes is
    judged on those at its end, from SMALLEST_SAMPLE deletes up: the
    steady state of a daemon is many small passes.

    :param ratio: ``scrub_not_found_ratio``; 1.0 never trips.
    """

    SAMPLE = 20
    SMALLEST_SAMPLE = 5

    def __init__(self, ratio):
        self._ratio = ratio
        self._limit = int(ratio * self.SAMPLE)
        self._seen = 0
        self._not_found = 0
        self._held = []
        self.tripped = False
        self._settled = False

    def admit(self, outcome):
        """Take a finished outcome; return the outcomes ready to record."""
        if outcome.claim.retaken:
            return [outcome]
        self._count(outcome)
        if self.tripped:
            return [self._withheld(held) for held in self._take_held()] + \
                [self._withheld(outcome)]
        if self._settled:
            return [outcome] + self._take_held()
        if not outcome.found_nothing_at():
            return [outcome]
        self._held.append(outcome)
        return []

    def release(self):
        """At the end of the pass: the held outcomes, settled or withheld.

        A pass that ended before its sample was complete is judged on the
        deletes it made, if it made at least SMALLEST_SAMPLE of them.
        """
        if not (self.tripped or self._settled):
            self.tripped = (self._seen >= self.SMALLEST_SAMPLE and
                            self._not_found > self._ratio * self._seen)
        if self.tripped:
            return [self._withheld(held) for held in self._take_held()]
        self._settled = True
        return self._take_held()

    def verdict(self):
        """Why the pass stopped early, or None."""
        if not self.tripped:
            return None
        return _('%(missing)d of the first %(seen)d deletes found no data in '
                 'the store: is glance-scrubber pointed at the stores that '
                 'hold the images? The pass stopped; those images and the '
                 'rest stay pending_delete (scrub_not_found_ratio).') % {
            'missing': self._not_found, 'seen': self._seen}

    def _count(self, outcome):
        for _location_id, deletion in outcome.deletions:
            if self._seen >= self.SAMPLE:
                break
            if deletion in (store_policy.Deletion.DELETED,
                            store_policy.Deletion.ALREADY_GONE):
                self._seen += 1
                if deletion is store_policy.Deletion.ALREADY_GONE:
                    self._not_found += 1
        if self._not_found > self._limit:
            self.tripped = True
        elif self._not_found + (self.SAMPLE - self._seen) <= self._limit:
            # Even if every delete left in the sample found nothing, it
            # would not trip.
            self._settled = True

    def _take_held(self):
        held, self._held = self._held, []
        return held

    @staticmethod
    def _withheld(outcome):
        """An outcome whose missing data is not recorded as deleted.

        The locations the store did delete are recorded; those it found
        nothing for stay pending_delete, and the claim is given back.
        """
        missing = set(outcome.found_nothing_at())
        if not missing:
            return outcome
        outcome.deletions = [(location_id, deletion) for location_id, deletion
                             in outcome.deletions
                             if location_id not in missing]
        outcome.fail(_('the store had no data for %d of its locations, '
                       'and the pass stopped: not recorded') % len(missing))
        return outcome
