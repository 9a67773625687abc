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

"""Images planted in a database and stores, and what a pass must leave.

A Backlog is the scene most tests scrub: many eligible images with one or
several locations, and around them everything a scrubber must not touch
(young images, active images, images already deleted, ...). It knows the
exact rows and store contents a correct pass leaves, and the summary line
it logs.
"""

import dataclasses
import itertools
import urllib.parse
import uuid

import sqlalchemy as sa

from glance.tests.harness import fixtures
from glance.tests import seed

SCRUB_TIME = 600  # the tests' scrub_time: seed's images are older
YOUNG_SECONDS_AGO = 60
IMAGE_SIZE = 1024
VISIBILITIES = ('shared', 'public', 'private', 'community')


@dataclasses.dataclass
class Placement:
    """Where a location's data goes.

    ``store`` is a store helper (FileStore, S3Bucket); ``backend``, with
    several backends, the name written in the location's metadata.
    """

    store: object
    backend: str = None


class StoreSet:
    """Finds a location's data in the store of its URL scheme."""

    def __init__(self, **stores_by_scheme):
        self._stores = stores_by_scheme

    def exists(self, url):
        return self._stores[urllib.parse.urlsplit(url).scheme].exists(url)


def new_image_id():
    return str(uuid.uuid4())


def image_of(path):
    """The image of an object (named IMAGE_ID.N), from a request path."""
    name = urllib.parse.urlsplit(path).path.rsplit('/', 1)[-1]
    return name.split('.', 1)[0]


def location_of(path):
    """The index N of a location, from a request path ending IMAGE_ID.N."""
    return int(urllib.parse.urlsplit(path).path.rsplit('.', 1)[-1])


def put_locations(placements, image_id, count, first=0, data=True):
    """Make *count* locations of an image, spread over *placements*.

    :param data: write the data (False: a location whose data is gone).
    """
    locations = []
    for index in range(count):
        placement = placements[(first + index) % len(placements)]
        name = '%s.%d' % (image_id, index)
        url = (placement.store.put(name, b'x' * IMAGE_SIZE) if data
               else placement.store.url(name))
        locations.append(seed.Location(url, store=placement.backend))
    return locations


def pending_images(placements, count, locations_each, **image_options):
    """*count* eligible images, each with its data in the stores."""
    images = []
    for number in range(count):
        image_id = new_image_id()
        images.append(seed.Image(
            id=image_id, size=IMAGE_SIZE,
            visibility=VISIBILITIES[number % len(VISIBILITIES)],
            locations=put_locations(placements, image_id, locations_each,
                                    first=number),
            **image_options))
    return images


# --- reading the database back ----------------------------------------------


def rows_of(engine, image_ids):
    """Every column of the images and their locations, for comparison."""
    ids = list(image_ids)
    with engine.connect() as connection:
        images = {row.id: dict(row._mapping) for row in connection.execute(
            sa.select(seed.IMAGES).where(seed.IMAGES.c.id.in_(ids)))}
        locations = connection.execute(
            sa.select(seed.LOCATIONS)
            .where(seed.LOCATIONS.c.image_id.in_(ids))
            .order_by(seed.LOCATIONS.c.id)).all()
    for row in locations:
        images[row.image_id].setdefault('locations', []).append(
            dict(row._mapping))
    return images


def data_present(stores, images, url_of=lambda url: url):
    """{stored location value: data still in its store}."""
    return {location.url: stores.exists(url_of(location.url))
            for image in images for location in image.locations}


# --- the backlog ------------------------------------------------------------


class Backlog:
    """A backlog of pending_delete images and the decoys around it.

    :param placements: where location data goes (see Placement).
    :param stores: a StoreSet to look data up.
    :param count: eligible images with one, two and three locations.
    :param encrypt: makes a location's stored value from its URL.
    """

    def __init__(self, placements, stores, count=(20, 10, 10),
                 encrypt=None):
        self.placements = placements
        self.stores = stores
        self._plain = {}
        self._encrypt = encrypt
        self.eligible = list(itertools.chain.from_iterable(
            pending_images(placements, number, locations)
            for locations, number in enumerate(count, start=1)))
        self.stranded = self._stranded_image()
        self.data_gone = self._image_whose_data_is_gone()
        self.mixed = self._image_with_locations_of_every_status()
        self.young = pending_images(
            placements, 3, 2, deleted_seconds_ago=YOUNG_SECONDS_AGO)
        self.decoys = self._decoys()
        self._protect_urls()

    # the scene

    def _stranded_image(self):
        """An image a stopped pass stranded; the next pass finishes it.

        Its locations were all deleted by a pass that stopped before it
        recorded the image.
        """
        image_id = new_image_id()
        locations = put_locations(self.placements, image_id, 2, data=False)
        for location in locations:
            location.status = 'deleted'
        return seed.Image(id=image_id, locations=locations)

    def _image_whose_data_is_gone(self):
        image_id = new_image_id()
        return seed.Image(id=image_id, locations=put_locations(
            self.placements, image_id, 1, data=False))

    def _image_with_locations_of_every_status(self):
        """Only the pending_delete location may be touched."""
        image_id = new_image_id()
        locations = put_locations(self.placements, image_id, 3)
        locations[1].status = 'active'
        locations[2].status = 'deleted'
        return seed.Image(id=image_id, locations=locations)

    def _decoys(self):
        active = pending_images(self.placements, 1, 2, status='active',
                                deleted=False)
        for location in active[0].locations:
            location.status = 'active'
        already_deleted = pending_images(self.placements, 1, 1,
                                         status='deleted')
        already_deleted[0].locations[0].status = 'deleted'
        not_soft_deleted = pending_images(self.placements, 1, 1,
                                          deleted=False)
        return active + already_deleted + not_soft_deleted

    def _protect_urls(self):
        for image in self.all_images:
            for location in image.locations:
                stored = (self._encrypt(location.url) if self._encrypt
                          else location.url)
                self._plain[stored] = location.url
                location.url = stored

    def plain_url(self, stored):
        return self._plain[stored]

    @property
    def to_scrub(self):
        return self.eligible + [self.stranded, self.data_gone, self.mixed]

    @property
    def untouchable(self):
        return self.young + self.decoys

    @property
    def all_images(self):
        return self.to_scrub + self.untouchable

    # before and after

    def insert(self, engine):
        seed.insert(engine, self.all_images)
        self.rows_before = rows_of(engine, self.image_ids(self.untouchable))
        self.data_before = data_present(self.stores, self.all_images,
                                        self.plain_url)
        return self

    @staticmethod
    def image_ids(images):
        return [image.id for image in images]

    def expected_summary(self):
        pending = [(image, location) for image in self.to_scrub
                   for location in image.locations
                   if location.status == 'pending_delete']
        with_data = [image for image, location in pending
                     if self.data_before[location.url]]
        return {'found': len(self.to_scrub),
                'scrubbed': len(self.to_scrub), 'failed': 0, 'skipped': 0,
                'in_use': 0, 'locations_deleted': len(pending),
                'bytes_reclaimed': sum(image.size for image in with_data)}

    def check_scrubbed(self, engine, run):
        """The exact state a successful pass leaves, and its summary."""
        assert run.returncode == 0, run.describe()
        assert 'Traceback' not in run.output, run.describe()
        assert summary_counts(run.summary) == self.expected_summary()
        for image in self.to_scrub:
            check_image_scrubbed(engine, self.stores, image, self.plain_url)
        self.check_untouched(engine)

    def check_untouched(self, engine):
        """Young images and decoys: rows and data exactly as planted."""
        assert rows_of(engine, self.image_ids(self.untouchable)) == \
            self.rows_before
        for image in self.untouchable:
            check_data(self.stores, image, self.plain_url,
                       expected=self.data_before)


# The counts every image a pass found lands in, exactly one each.
OUTCOME_COUNTS = ('scrubbed', 'failed', 'skipped', 'in_use', 'left_claimed',
                  'given_back')
# Counts added after most tests were written: left out when zero, so that
# a test names them only where it expects some.
NEWER_COUNTS = ('left_claimed', 'claimed_elsewhere', 'given_back')


def check_adds_up(summary):
    """found is the sum of the outcome counts, however the pass ended."""
    assert summary['found'] == sum(summary.get(name, 0)
                                   for name in OUTCOME_COUNTS), summary


def summary_counts(summary):
    """The summary without its timings and the store's pacing.

    Every summary read here must add up (check_adds_up).
    """
    assert summary is not None, 'no "Scrub pass summary:" line'
    check_adds_up(summary)
    return {name: value for name, value in summary.items()
            if name not in ('seconds', 'images_per_second', 'throttled',
                            'concurrency') and
            not (name in NEWER_COUNTS and value == 0)}


CLAIMED_TITLE = 'Claimed by a scrub pass and not finished'


def claimed_listed(run):
    """{image id: (claimed_at, takeable_in)} of --list's claimed images."""
    lines = run.stdout.splitlines()
    start = [index for index, line in enumerate(lines)
             if line.startswith(CLAIMED_TITLE)]
    assert len(start) == 1, run.describe()
    assert lines[start[0] + 1].split() == [
        'ID', 'CLAIMED_AT', 'TAKEABLE_IN', 'SIZE', 'LOCATIONS', 'STORES']
    rows = {}
    for line in lines[start[0] + 2:]:
        if line.startswith('Claimed:'):
            break
        image_id, claimed_at, takeable_in, _size, _count, _stores = \
            line.split()
        rows[image_id] = (claimed_at, takeable_in)
    return rows


def is_scrubbed(engine, image):
    """Whether a pass finished the image: deleted, no location pending.

    A claimed image is deleted already while its data is being deleted.
    """
    return (seed.image_status(engine, image.id).status == 'deleted' and
            all(status != 'pending_delete' for _url, status, _deleted
                in seed.location_states(engine, image.id)))


def check_image_scrubbed(engine, stores, image, url_of=lambda url: url):
    """The image and its pending_delete locations are deleted.

    The data of those locations is gone; its other locations are as they
    were.
    """
    status, deleted, deleted_at = seed.image_status(engine, image.id)
    assert (image.id, status, deleted) == (image.id, 'deleted', True)
    assert deleted_at is not None
    expected = []
    for location in image.locations:
        if location.status == 'pending_delete':
            expected.append((location.url, 'deleted', True))
            assert not stores.exists(url_of(location.url)), location
        else:
            expected.append((location.url, location.status,
                             location.status == 'deleted'))
    assert seed.location_states(engine, image.id) == expected, image.id


def check_data(stores, image, url_of, expected):
    """Each location's data is present exactly when *expected* says."""
    for location in image.locations:
        assert stores.exists(url_of(location.url)) == \
            expected[location.url], location


def check_pending(engine, image, location_statuses):
    """The image is still pending_delete with these location statuses."""
    status, deleted, _deleted_at = seed.image_status(engine, image.id)
    assert (status, deleted) == ('pending_delete', True), image.id
    assert [state[1] for state in seed.location_states(engine, image.id)] \
        == location_statuses, image.id


def check_next_pass_finishes(config, engine, stores, stuck, locations_left):
    """A later pass scrubs an image an earlier one left pending_delete.

    The earlier pass deleted the first location of *stuck* and failed on
    the next; *locations_left* remained.
    """
    run = fixtures.run_scrubber(config)

    assert run.returncode == 0, run.describe()
    assert summary_counts(run.summary) == {
        'found': 1, 'scrubbed': 1, 'failed': 0, 'skipped': 0,
        'in_use': 0, 'locations_deleted': locations_left,
        'bytes_reclaimed': locations_left * IMAGE_SIZE}
    stuck.locations[0].status = 'deleted'  # as the first pass left it
    check_image_scrubbed(engine, stores, stuck)


def run_with_one_failure(config, found, locations_deleted):
    """Run a pass in which exactly one of *found* images fails.

    It must exit 1 without a traceback, and count every location it did
    delete (each IMAGE_SIZE bytes); returns the run.
    """
    run = fixtures.run_scrubber(config)

    assert run.returncode == 1, run.describe()
    assert 'Traceback' not in run.output, run.describe()
    assert summary_counts(run.summary) == {
        'found': found, 'scrubbed': found - 1, 'failed': 1, 'skipped': 0,
        'in_use': 0, 'locations_deleted': locations_deleted,
        'bytes_reclaimed': locations_deleted * IMAGE_SIZE}
    return run


def claimed_ids(engine):
    """Images claimed and not finished: deleted, a location pending."""
    with engine.connect() as connection:
        return set(connection.scalars(
            sa.select(seed.LOCATIONS.c.image_id).distinct()
            .join(seed.IMAGES,
                  seed.IMAGES.c.id == seed.LOCATIONS.c.image_id)
            .where(seed.IMAGES.c.status == 'deleted',
                   seed.LOCATIONS.c.status == 'pending_delete')))
