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


class DataUsers:
    """Which images may still need the data a URL points to.

    Users are the images with a location that is not deleted (they are
    live) and the pending_delete images with a pending_delete location
    (a restore can still bring them back). A pass forgets what it knew
    when it starts, reads them all before its first claim and, before
    later claims, the locations added since (their ids grow), at most once
    a second; the images it claims stop being users, since nothing
    restores a claimed image.

    Kept compact, as the backlog itself is among the users: a 64-bit
    digest of each location's data (stores.urls.data_digest) maps to its
    users' ids.

    The StoreDeleter asks it, through users_besides(), claimed_together()
    and digest_of(); the pass keeps it up to date (forget(), refresh(),
    claimed()).

    :param location_urls: a stores.urls.LocationUrls: decrypts stored
        values; a value it cannot read is left out.
    """

    REFRESH_INTERVAL = 1.0

    def __init__(self, location_urls):
        self._urls = location_urls
        self._lock = threading.Lock()
        self._refreshed = None
        self.forget()

    def forget(self):
        with self._lock:
            self._users = {}
            self._claimed = {}
            self._claimed_together = set()
            self._last_id = None

    def refresh(self, context):
        """Read the locations added since the last refresh.

        At most once every REFRESH_INTERVAL seconds after the first of a
        pass: a claim costs a transaction, and this would be another one.
        """
        now = time.monotonic()
        if self._last_id is not None and \
                now - self._refreshed < self.REFRESH_INTERVAL:
            return
        self._refreshed = now
        rows, highest = db_api.data_users(context, after_id=self._last_id)
        added = []
        for _location_id, image_id, value in rows:
            digest = self._digest(value)
            if digest is not None:
                added.append((digest, image_id))
        with self._lock:
            for digest, image_id in added:
                self._users.setdefault(digest, set()).add(image_id)
            if highest is not None:
                self._last_id = highest

    def claimed(self, claims):
        """The images of *claims* no longer need their data."""
        gone = [(location.id, self._digest(location.url), claim.image_id)
                for claim in claims for location in claim.locations]
        claimers = {}
        for _location_id, digest, image_id in gone:
            claimers.setdefault(digest, set()).add(image_id)
        with self._lock:
            self._claimed_together.update(
                digest for digest, images in claimers.items()
                if len(images) > 1)
            for location_id, digest, image_id in gone:
                # Kept for digest_of(), which comes next.
                self._claimed[location_id] = digest
                users = self._users.get(digest)
                if users is not None:
                    users.discard(image_id)
                    if not users:
                        del self._users[digest]

    def digest_of(self, location):
        """What names a claimed location's data here (see users_besides)."""
        with self._lock:
            digest = self._claimed.pop(location.id, None)
        return self._digest(location.url) if digest is None else digest

    def users_besides(self, digest, image_id):
        """Other images than *image_id* that may need the data."""
        with self._lock:
            return self._users.get(digest, set()) - {image_id}

    def claimed_together(self, digest):
        """Whether images claimed in one batch share the data.

        The first of their workers deletes it; the others find it gone.
        """
        with self._lock:
            return digest in self._claimed_together

    def _digest(self, value):
        return self._urls.digest_of(value)
