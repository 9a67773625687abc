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


"""What the scrubber's unit tests share: fakes, images, test cases.

RecordingDeleter and FakeDataUsers stand for the store side in tests of
the pass; ScrubberTestCase gives a migrated SQLite database and a
Scrubber factory; DatabaseTestCase and SingleStoreTestCase give images as
glance-api leaves them and glance_store's real file store.
"""

import datetime
import os
import threading
import time

from botocore import exceptions as boto_exceptions
import fixtures
import glance_store
from glance_store import exceptions as store_exceptions
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_utils import timeutils
import requests
import sqlalchemy as sa

from glance.db.sqlalchemy import api as db_api
from glance import scrubber
from glance.scrubber import data_users
from glance.scrubber.stores import deleter as store_deleter
from glance.scrubber.stores import errors
from glance.scrubber.stores import gate as store_gate
from glance.scrubber.stores import layout
from glance.scrubber.stores import sending
from glance.scrubber.stores import urls
from glance.tests import seed
from glance.tests import unit

Deletion = store_deleter.Deletion


CLAIM_TIMEOUT = 600


class FakeDataUsers:
    """Stands for data_users.DataUsers: records calls, runs a hook.

    :ivar events: 'forget', 'refresh' and ('claimed', [image ids]), in
        the order the pass made them.
    :ivar looked_ahead: the image ids of each look_ahead(), in order.
    """

    def __init__(self, on_refresh=None):
        self.on_refresh = on_refresh
        self.events = []
        self.looked_ahead = []
        self.lookup_seconds = 0.0

    def forget(self):
        self.events.append('forget')

    def look_ahead(self, context, image_ids):
        self.looked_ahead.append(list(image_ids))

    def finished(self, claim):
        pass

    def refresh(self, context):
        self.events.append('refresh')
        if self.on_refresh:
            self.on_refresh()

    def claimed(self, claims):
        self.events.append(('claimed', [claim.image_id for claim in claims]))


class RecordingDeleter:
    """Stands for StoreDeleter: records deletes, fails and sleeps on cue.

    :param fail_urls: URLs whose delete raises LocationError.
    :param missing_urls: URLs the store does not have (ALREADY_GONE).
    :param in_use_urls: URLs whose data is in use (LocationInUse).
    :param shared_urls: URLs another image may need (SHARED).
    :param not_owned_urls: URLs of a store that cannot delete (NOT_OWNED).
    :param crash_urls: URLs whose delete raises an unexpected error.
    :param silent_urls: URLs whose delete the store leaves unanswered
        (StoreTimeout), counted in ``outages`` for the store ``fake``.
    :param gone_urls: URLs whose data a restore finds gone.
    :param unknowable_urls: URLs whose presence the store cannot tell.
    :param delay: seconds each delete takes.
    :param sleep: the sleep function (eventlet.sleep for green threads).
    :param on_delete: called with (image id, location) before each delete.
    :ivar deleted: the URLs the store was asked to delete (found or not).
    :ivar asked: every URL the deleter was handed, in order.
    """

    STORE = 'fake'

    def __init__(self, fail_urls=(), missing_urls=(), in_use_urls=(),
                 shared_urls=(), not_owned_urls=(), crash_urls=(),
                 gone_urls=(), unknowable_urls=(), silent_urls=(), delay=0.0,
                 sleep=time.sleep, on_delete=None, on_refresh=None):
        self.fail_urls = set(fail_urls)
        self.missing_urls = set(missing_urls)
        self.in_use_urls = set(in_use_urls)
        self.shared_urls = set(shared_urls)
        self.not_owned_urls = set(not_owned_urls)
        self.crash_urls = set(crash_urls)
        self.gone_urls = set(gone_urls)
        self.unknowable_urls = set(unknowable_urls)
        self.silent_urls = set(silent_urls)
        self.outages = sending.StoreOutages()
        self.delay = delay
        self.sleep = sleep
        self.on_delete = on_delete
        self.data_users = FakeDataUsers(on_refresh)
        # The real gate, never throttled: the pass reports its pacing.
        self.gate = store_gate.StoreGate(store_deleter.UNBOUNDED)
        self.passes_started = 0
        self.deleted = []
        self.asked = []
        self.spans = []
        self.busy = 0
        self.most_busy = 0
        self._lock = threading.Lock()

    def start_pass(self):
        self.passes_started += 1
        self.outages.forget()

    def delete(self, image_id, location):
        with self._lock:
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
            self.asked.append(location.url)
        started = time.monotonic()
        try:
            return self._delete(image_id, location)
        finally:
            with self._lock:
                self.busy -= 1
                self.spans.append((location.url, started, time.monotonic()))

    def _delete(self, image_id, location):
        if self.on_delete:
            self.on_delete(image_id, location)
        if self.delay:
            self.sleep(self.delay)
        url = location.url
        outage = errors.StoreTimeout('no answer for %s' % url) \
            if url in self.silent_urls else None
        self.outages.note(self.STORE, outage)
        if outage:
            outage.store = self.STORE
            raise outage
        if url in self.crash_urls:
            raise RuntimeError('driver bug for %s' % url)
        if url in self.fail_urls:
            raise errors.LocationError('store said no to %s' % url)
        if url in self.in_use_urls:
            raise errors.LocationInUse('%s has clones' % url)
        if url in self.shared_urls:
            return Deletion.SHARED
        if url in self.not_owned_urls:
            return Deletion.NOT_OWNED
        self.deleted.append(url)
        if url in self.missing_urls:
            return Deletion.ALREADY_GONE
        return Deletion.DELETED

    def data_present(self, location):
        if location.url in self.silent_urls:
            outage = errors.StoreTimeout('no answer for %s' % location.url)
            outage.store = self.STORE
            raise outage
        if location.url in self.unknowable_urls:
            raise errors.LocationError('store unreachable')
        return location.url not in self.gone_urls


def pending_image(name, count=1, **kwargs):
    """A pending_delete image whose location URLs name the image."""
    urls = ['file:///store/%s-%d' % (name, index) for index in range(count)]
    return seed.Image(locations=[seed.Location(url) for url in urls],
                      **kwargs)


def ordered_id(number):
    """An image id that sorts by *number* (the queue's order)."""
    return '00000000-0000-0000-0000-%012d' % number


def urls_of(image):
    return [location.url for location in image.locations]


class ScrubberTestCase(unit.SQLiteTestCase):
    """A migrated SQLite database and a Scrubber factory."""

    backend = 'threading'

    def setUp(self):
        super().setUp()
        self.lock_path = self.useFixture(fixtures.TempDir()).path
        # What a restore on another host uses: the database, not the lock.
        self.other_host_lock_path = self.useFixture(fixtures.TempDir()).path
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='glance.scrubber', level='DEBUG'))

    def settings(self, pool_size=1, scrub_time=0, claim_timeout=CLAIM_TIMEOUT,
                 not_found_ratio=0.5, report_interval=60.0):
        return scrubber.Settings(
            scrub_pool_size=pool_size, scrub_time=scrub_time,
            lock_path=self.lock_path, scrub_claim_timeout=claim_timeout,
            scrub_not_found_ratio=not_found_ratio,
            report_interval=report_interval)

    def make_scrubber(self, deleter, pool_size=1, scrub_time=0,
                      executors=None, membership=None, page_size=None,
                      **settings):
        return scrubber.Scrubber(
            self.context, self.settings(pool_size, scrub_time, **settings),
            deleter, deleter.data_users, deleter.gate,
            executors or scrubber.Executors(self.backend),
            membership=membership, page_size=page_size)

    def insert(self, *images):
        return seed.insert(self.db.engine, images)

    def status_of(self, image):
        return seed.image_status(self.db.engine, image.id).status

    def location_statuses(self, image):
        return [status for _url, status, _deleted
                in seed.location_states(self.db.engine, image.id)]

    def set_image(self, image, **values):
        with self.db.engine.begin() as connection:
            connection.execute(seed.IMAGES.update()
                               .where(seed.IMAGES.c.id == image.id)
                               .values(**values))

    def move_clock(self, seconds):
        """From now on, the scrubber and the database API see this time."""
        timeutils.set_time_override(
            timeutils.utcnow() + datetime.timedelta(seconds=seconds))
        self.addCleanup(timeutils.clear_time_override)


def claim_of(image, locations=(), token=None, retaken=False, size=1000):
    """A Claim of *image* as the pass hands it to the worker."""
    return db_api.Claim(image, size, token or db_api.claim_token(),
                        tuple(locations), retaken)


def store_location(url, meta_data=None, location_id=1):
    return db_api.PendingLocation(location_id, url, meta_data)


def put(folder, name, data=b'image data'):
    path = os.path.join(folder, name)
    with open(path, 'wb') as image_file:
        image_file.write(data)
    return path


class DatabaseTestCase(unit.SQLiteTestCase):
    """With images as glance-api leaves them."""

    def live_image(self, *urls):
        return seed.insert(self.db.engine, [seed.Image(
            [seed.Location(url, status='active') for url in urls],
            status='active', deleted=False)])[0]

    def pending_image(self, *urls, **kwargs):
        return seed.insert(self.db.engine, [seed.Image(
            [seed.Location(url) for url in urls], **kwargs)])[0]

    def claim(self, *images):
        """Claim *images* as a pass does: the Claims of one batch."""
        now = timeutils.utcnow()
        claims = db_api.claim_images(
            self.context, [db_api.Candidate(image.id) for image in images],
            now, now)
        self.assertEqual(sorted(image.id for image in images),
                         [one.image_id for one in claims])
        return claims

    def location_of(self, image, index=0):
        """The PendingLocation of *image*'s location, as a claim has it."""
        with self.db.engine.connect() as connection:
            location_id = list(connection.scalars(
                sa.select(seed.LOCATIONS.c.id)
                .where(seed.LOCATIONS.c.image_id == image.id)
                .order_by(seed.LOCATIONS.c.id)))[index]
        return store_location(image.locations[index].url,
                              location_id=location_id)


class NoNetwork(fixtures.Fixture):
    """Fails any attempt to open a network connection."""

    def _setUp(self):
        def connect(sock, address):
            raise AssertionError('network connection to %s' % (address,))

        self.useFixture(fixtures.MonkeyPatch('socket.socket.connect',
                                             connect))


class SingleStoreTestCase(DatabaseTestCase):
    """glance_store's file and http stores, as [glance_store] stores."""

    def setUp(self):
        super().setUp()
        self.conf = self.useFixture(config_fixture.Config(cfg.CONF)).conf
        self.datadir = self.useFixture(fixtures.TempDir()).path
        glance_store.register_opts(self.conf)
        self.conf.set_override('stores', ['file', 'http'],
                               group='glance_store')
        self.conf.set_override('default_store', 'file', group='glance_store')
        self.conf.set_override('filesystem_store_datadir', self.datadir,
                               group='glance_store')
        glance_store.create_stores(self.conf)
        self.deleter = self.make_deleter()

    def make_deleter(self, **kwargs):
        datadirs = layout.FileDatadirs(
            datadirs_of(self.conf))
        # Throttled deletes are sent again without the waits.
        kwargs.setdefault('gate', store_gate.StoreGate(
            store_deleter.UNBOUNDED, sleep=lambda seconds: None))
        kwargs.setdefault('data_users', data_users.DataUsers(
            urls.LocationUrls(kwargs.get('encryption_key')), self.context))
        return store_deleter.StoreDeleter(self.context, datadirs=datadirs,
                                          **kwargs)

    def in_datadir(self, name):
        return 'file://' + put(self.datadir, name)

    def delete(self, url, image_id='image-1', deleter=None):
        return (deleter or self.deleter).delete(image_id, store_location(url))


def datadirs_of(conf):
    """The file datadirs of the stores *conf* configures."""
    return layout.configured_datadirs(conf,
                                      layout.StoreLayout.from_config(conf))


# --- what stores answer, as the store side sees it -------------------------


def client_error(code, status):
    return boto_exceptions.ClientError(
        {'Error': {'Code': code, 'Message': code},
         'ResponseMetadata': {'HTTPStatusCode': status}}, 'DeleteObject')


def http_error(status):
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError('%d' % status, response=response)


class SwiftLikeError(Exception):
    """swiftclient's ClientException carries the status this way."""

    def __init__(self, status):
        super().__init__('swift said %d' % status)
        self.http_status = status


def wrapped(error):
    """*error* as glance_store may re-raise it: the cause of another."""
    try:
        try:
            raise error
        except Exception as cause:
            raise store_exceptions.BackendException('delete failed') \
                from cause
    except store_exceptions.BackendException as outer:
        return outer
