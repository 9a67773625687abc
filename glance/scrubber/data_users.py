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

"""Which images may still need some data: asked of the database.

The store side decides whether a location's data may go; whether another
image still needs it is a question for the database, answered here and
handed to the StoreDeleter.
"""

import threading
import time

from glance.db.sqlalchemy import api as db_api
from glance.scrubber.stores import urls

# Encrypted values are read this many at a time (see DataUsers).
ENCRYPTED_PAGE = 10000


class LookAheadSize:
    """How many images to look ahead at next.

    Each look-up reads the whole location table, so its cost follows the
    cloud while what it serves follows the page: on a large cloud, pages
    grow until a look-up (DataUsers.lookup_seconds: the query and the
    comparison of what it found) takes about SHARE of the time the pass
    spends on the images, within LEAST and MOST (which bounds the memory:
    about a kilobyte an image).
    """

    LEAST = 5000
    MOST = 25000
    SHARE = 0.1

    def __init__(self):
        self._size = self.LEAST

    def __call__(self):
        return self._size

    def took(self, seconds, images_per_second):
        """A look-up took *seconds*; the pass goes at this pace."""
        wanted = round(seconds / self.SHARE * images_per_second)
        self._size = max(self.LEAST, min(self.MOST, wanted))


class DataUsers:
    """Which images may still need the data a URL points to.

    Users are the images with a location that is not deleted (they are
    live) and the pending_delete images with a pending_delete location
    (a restore can still bring them back).

    Only the data at stake is asked about, so what is read and kept
    follows the backlog, not the cloud: the pass looks ahead at a page of
    images it may claim (look_ahead()), and one query finds the users of
    all their data. The values are narrowed in SQL by their ending
    (stores.urls.data_suffixes) and compared here by a 64-bit digest of
    the data they name (stores.urls.data_digest). Encrypted values cannot
    be narrowed in SQL: they are read a page at a time, decrypted and
    compared, so memory stays bounded while the time of a look-ahead
    follows the size of the location table. Data never looked ahead at
    is looked up when digest_of() meets it. What is kept is the data of
    the page looked ahead at and of the images claimed and not finished
    (finished()).

    Locations added while the pass runs are read by id (new rows get
    higher ids, found by the primary key): before a claim, at most once
    every REFRESH_INTERVAL seconds (refresh()), and right after each claim
    (claimed()), so every location committed before a claim is seen
    before the claimed data is deleted. The images claimed stop being
    users, since nothing restores a claimed image.

    The StoreDeleter asks it, through users_besides(), claimed_together()
    and digest_of(); the pass keeps it up to date (forget(), look_ahead(),
    refresh(), claimed(), finished()).

    :param location_urls: a stores.urls.LocationUrls: decrypts stored
        values; a value it cannot read is left out.
    :param context: the admin context of the look-ups of data met late;
        by default that of the last refresh() or look_ahead().
    """

    REFRESH_INTERVAL = 1.0

    def __init__(self, location_urls, context=None):
        self._urls = location_urls
        self._lock = threading.Lock()
        self._refreshed = None
        self._context = context
        # How long the last look-up took, from its query to the users.
        self.lookup_seconds = 0.0
        self.forget()

    def forget(self):
        """Start a pass: nothing is known, and no location was read."""
        with self._lock:
            # digest of the data -> ids of the images that may need it.
            self._users = {}
            # Claimed images not finished -> digests of their data.
            self._in_flight = {}
            # Claimed locations -> digest, until their worker asks.
            self._claimed = {}
            # Data shared by images claimed in one batch.
            self._claimed_together = set()
            # Claimed images that shared their data: a later look-up must
            # not count them (the dry run claims nothing for real).
            self._claimed_sharers = set()
            self._last_id = None

    def look_ahead(self, context, image_ids):
        """Put the data of these images at stake: read its users.

        What was known of other data is dropped, but for the images in
        flight.
        """
        locations = db_api.list_pending_locations(context, image_ids)
        with self._lock:
            kept = set().union(*self._in_flight.values())
            self._users = {digest: users for digest, users
                           in self._users.items() if digest in kept}
            self._claimed_together &= kept
        self._watch(context, [location.url for found in locations.values()
                              for location in found])

    def refresh(self, context):
        """Read the locations added since the last read.

        At most once every REFRESH_INTERVAL seconds after the first of a
        pass: a claim costs a transaction, and this would be another one.
        """
        now = time.monotonic()
        if self._last_id is not None and self._refreshed is not None and \
                now - self._refreshed < self.REFRESH_INTERVAL:
            return
        self._read_added(context)

    def claimed(self, claims):
        """The images of *claims* no longer need their data.

        Reads the locations added up to now first: the claims are
        committed, and what was added before them must be seen.
        """
        gone = [(location.id, self._digest(location.url), location.url,
                 claim.image_id)
                for claim in claims for location in claim.locations]
        if self._context is not None:
            self._watch(self._context, [url for _id, digest, url, _image
                                        in gone if not self._known(digest)])
            self._read_added(self._context)
        claimers = {}
        for _location_id, digest, _url, image_id in gone:
            claimers.setdefault(digest, set()).add(image_id)
        with self._lock:
            self._claimed_together.update(
                digest for digest, images in claimers.items()
                if len(images) > 1)
            for claim in claims:
                self._in_flight.setdefault(claim.image_id, set())
            for location_id, digest, _url, image_id in gone:
                # Kept for digest_of(), which comes next.
                self._claimed[location_id] = digest
                self._in_flight[image_id].add(digest)
                users = self._users.get(digest)
                if users is not None:
                    if users - {image_id}:
                        self._claimed_sharers.add(image_id)
                    users.discard(image_id)

    def finished(self, claim):
        """The worker of *claim* is done: its data need not be kept."""
        with self._lock:
            self._in_flight.pop(claim.image_id, None)
            for location in claim.locations:
                self._claimed.pop(location.id, None)

    def digest_of(self, location):
        """What names a location's data here (see users_besides).

        Data not looked up yet is looked up now.
        """
        with self._lock:
            digest = self._claimed.pop(location.id, None)
        if digest is None:
            digest = self._digest(location.url)
        if not self._known(digest):
            self._watch(self._context, [location.url])
        return digest

    def users_besides(self, digest, image_id):
        """Other images than *image_id* that may need the data.

        :raises LookupError: the data was never looked up (digest_of()
            looks it up): never "no other users" for unknown data.
        """
        with self._lock:
            users = self._users.get(digest)
        if users is None:
            raise LookupError('data %x was never looked up' % digest)
        return users - {image_id}

    def claimed_together(self, digest):
        """Whether images claimed in one batch share the data.

        The first of their workers deletes it; the others find it gone.
        """
        with self._lock:
            return digest in self._claimed_together

    def _known(self, digest):
        with self._lock:
            return digest in self._users

    def _watch(self, context, values):
        """Find the users of the data *values* name; keep them."""
        self._context = context
        at_stake = {}
        for value in values:
            digest = self._digest(value)
            if digest is not None:
                at_stake[digest] = value
        if not at_stake:
            return
        if self._last_id is None:
            # Before the first read: whatever is added after it has a
            # higher id, and a refresh reads it.
            self._last_id = db_api.highest_location_id(context) or 0
            self._refreshed = time.monotonic()
        found = {digest: set() for digest in at_stake}
        started = time.monotonic()
        for _location_id, image_id, value in self._users_of(
                context, at_stake.values()):
            users = found.get(self._digest(value))
            if users is not None:
                users.add(image_id)
        self.lookup_seconds = time.monotonic() - started
        with self._lock:
            self._users.update((digest, users - self._claimed_sharers)
                               for digest, users in found.items())

    def _users_of(self, context, urls_at_stake):
        """Rows of the data users that may name the data of these URLs."""
        if self._urls.encrypted:
            return self._every_data_user(context)
        suffixes = set()
        for url in urls_at_stake:
            endings = urls.data_suffixes(url)
            if endings is None:
                return self._every_data_user(context)
            suffixes.update(endings)
        return db_api.find_data_users(context, suffixes, urls.PLAIN_ENDINGS,
                                      urls.IRREGULAR_CHARACTERS)

    def _every_data_user(self, context):
        """Every data user, read a page at a time (a generator)."""
        after = None
        while True:
            rows, _highest = db_api.data_users(context, after_id=after,
                                               limit=ENCRYPTED_PAGE)
            yield from rows
            if len(rows) < ENCRYPTED_PAGE:
                return
            after = rows[-1][0]

    def _read_added(self, context):
        """Read the locations added since the last read; keep those at stake.

        The first read of a pass only notes where the table ends.
        """
        self._context = context
        self._refreshed = time.monotonic()
        if self._last_id is None:
            self._last_id = db_api.highest_location_id(context) or 0
            return
        rows, highest = db_api.data_users(context, after_id=self._last_id)
        added = [(self._digest(value), image_id)
                 for _location_id, image_id, value in rows]
        with self._lock:
            for digest, image_id in added:
                users = self._users.get(digest)
                if users is not None:
                    users.add(image_id)
            if highest is not None:
                self._last_id = max(self._last_id, highest)

    def _digest(self, value):
        return self._urls.digest_of(value)
