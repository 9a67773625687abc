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

"""The scrub pass, the worker and the queue on a real SQLite database.

The store side is a recording deleter here, so that a test can make one
location fail, slow every delete down or watch concurrency; the real store
drivers are exercised in test_store_deleter.py and the functional tests.
"""

import threading
import time

import eventlet
import fixtures
import futurist
from oslo_utils import timeutils
import testtools

from glance.common import exception
from glance import context
from glance.db.sqlalchemy import api as db_api
from glance import scrubber
from glance.tests import databases
from glance.tests import seed


class RecordingDeleter:
    """Stands for StoreDeleter: records deletes, fails and sleeps on cue.

    :param fail_urls: URLs whose delete raises LocationError.
    :param missing_urls: URLs the store does not have (NotFound).
    :param crash_urls: URLs whose delete raises an unexpected error.
    :param delay: seconds each delete takes.
    :param sleep: the sleep function (eventlet.sleep for green threads).
    """

    def __init__(self, fail_urls=(), missing_urls=(), crash_urls=(),
                 delay=0.0, sleep=time.sleep, on_delete=None):
        self.fail_urls = set(fail_urls)
        self.missing_urls = set(missing_urls)
        self.crash_urls = set(crash_urls)
        self.delay = delay
        self.sleep = sleep
        self.on_delete = on_delete
        self.deleted = []
        self.spans = []
        self.busy = 0
        self.most_busy = 0
        self._lock = threading.Lock()

    def delete(self, location):
        with self._lock:
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
        started = time.monotonic()
        try:
            return self._delete(location)
        finally:
            with self._lock:
                self.busy -= 1
                self.spans.append((location.url, started, time.monotonic()))

    def _delete(self, location):
        if self.on_delete:
            self.on_delete(location)
        if self.delay:
            self.sleep(self.delay)
        if location.url in self.crash_urls:
            raise RuntimeError('driver bug for %s' % location.url)
        if location.url in self.fail_urls:
            raise scrubber.LocationError('store said no to %s' % location.url)
        self.deleted.append(location.url)
        return location.url not in self.missing_urls


def pending_image(name, count=1, **kwargs):
    """A pending_delete image whose location URLs name the image."""
    urls = ['file:///store/%s-%d' % (name, index) for index in range(count)]
    return seed.Image(locations=[seed.Location(url) for url in urls],
                      **kwargs)


class ScrubberTestCase(testtools.TestCase):
    """A migrated SQLite database and a Scrubber factory."""

    backend = 'threading'

    def setUp(self):
        super().setUp()
        self.db = self.useFixture(databases.Database('sqlite'))
        db_api.configure(connection=self.db.url)
        self.addCleanup(db_api.reset)
        self.context = context.get_admin_context()
        self.lock_path = self.useFixture(fixtures.TempDir()).path
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='glance.scrubber', level='DEBUG'))

    def make_scrubber(self, deleter, pool_size=1, scrub_time=0, **kwargs):
        worker = scrubber.Worker(deleter)
        return scrubber.Scrubber(
            self.context, worker, scrubber.Executors(self.backend),
            pool_size, scrub_time, self.lock_path, **kwargs)

    def insert(self, *images):
        return seed.insert(self.db.engine, images)

    def status_of(self, image):
        return seed.image_status(self.db.engine, image.id).status

    def location_statuses(self, image):
        return [status for _url, status, _deleted
                in seed.location_states(self.db.engine, image.id)]


class TestPass(ScrubberTestCase):

    def test_every_eligible_image_and_location_is_scrubbed(self):
        images = self.insert(*[pending_image('img%d' % i, count=i % 3 + 1)
                               for i in range(10)])
        deleter = RecordingDeleter()

        summary = self.make_scrubber(deleter, pool_size=4).run_once()

        for image in images:
            self.assertEqual('deleted', self.status_of(image))
            self.assertEqual(['deleted'] * len(image.locations),
                             self.location_statuses(image))
        expected_urls = sorted(loc.url for image in images
                               for loc in image.locations)
        self.assertEqual(expected_urls, sorted(deleter.deleted))
        self.assertEqual((10, 10, 0, 0, len(expected_urls)),
                         (summary.found, summary.scrubbed, summary.failed,
                          summary.skipped, summary.locations_deleted))

    def test_bytes_reclaimed_counts_only_data_the_store_had(self):
        image = self.insert(pending_image('img', count=3, size=1000))[0]
        deleter = RecordingDeleter(missing_urls={image.locations[1].url})

        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual(2000, summary.bytes_reclaimed)
        self.assertEqual(3, summary.locations_deleted)
        self.assertEqual('deleted', self.status_of(image))

    def test_pool_of_one_scrubs_serially_in_image_id_order(self):
        images = self.insert(*[pending_image('img%d' % i) for i in range(8)])
        deleter = RecordingDeleter(delay=0.005)

        self.make_scrubber(deleter, pool_size=1).run_once()

        self.assertEqual(1, deleter.most_busy)
        by_id = sorted(images, key=lambda image: image.id)
        self.assertEqual([image.locations[0].url for image in by_id],
                         deleter.deleted)

    def test_pool_scrubs_that_many_images_at_once_and_no_more(self):
        self.insert(*[pending_image('img%d' % i) for i in range(24)])
        deleter = RecordingDeleter(delay=0.05)

        self.make_scrubber(deleter, pool_size=6).run_once()

        self.assertEqual(6, deleter.most_busy)

    def test_locations_of_one_image_are_deleted_in_order_never_at_once(self):
        images = self.insert(*[pending_image('img%d' % i, count=3)
                               for i in range(6)])
        deleter = RecordingDeleter(delay=0.01)

        self.make_scrubber(deleter, pool_size=6).run_once()

        for image in images:
            urls = [loc.url for loc in image.locations]
            spans = [span for span in deleter.spans if span[0] in urls]
            self.assertEqual(urls, [url for url, _s, _e in spans])
            for (_u1, _s1, end), (_u2, start, _e2) in zip(spans, spans[1:]):
                self.assertLessEqual(end, start)

    def test_pages_through_the_queue(self):
        images = self.insert(*[pending_image('img%d' % i) for i in range(23)])
        deleter = RecordingDeleter()

        summary = self.make_scrubber(deleter, pool_size=2,
                                     page_size=5).run_once()

        self.assertEqual(23, summary.scrubbed)
        self.assertEqual(23, len(set(deleter.deleted)))
        self.assertEqual(0, seed.count_images(self.db.engine,
                                              'pending_delete'))
        self.assertEqual(len(images), seed.count_images(self.db.engine,
                                                        'deleted'))

    def test_in_flight_images_stay_within_a_small_multiple_of_the_pool(self):
        self.insert(*[pending_image('img%d' % i) for i in range(40)])
        counts = {'submitted': 0, 'finished': 0}
        unfinished_at_submit = []
        lock = threading.Lock()
        real_executors = scrubber.Executors(self.backend)

        def counting_executors(workers):
            executor = real_executors(workers)
            submit = executor.submit

            def counted_submit(fn, job):
                with lock:
                    counts['submitted'] += 1
                    unfinished_at_submit.append(
                        counts['submitted'] - counts['finished'])
                return submit(fn, job)

            executor.submit = counted_submit
            return executor

        counting_executors.backend = self.backend

        class CountedWorker(scrubber.Worker):
            def __call__(self, job):
                try:
                    return super().__call__(job)
                finally:
                    with lock:
                        counts['finished'] += 1

        the_scrubber = scrubber.Scrubber(
            self.context, CountedWorker(RecordingDeleter(delay=0.01)),
            counting_executors, 3, 0,
            self.lock_path, page_size=4)

        summary = the_scrubber.run_once()

        self.assertEqual(40, summary.scrubbed)
        self.assertEqual(6, the_scrubber.max_in_flight)
        self.assertEqual(6, max(unfinished_at_submit))

    def test_only_images_older_than_scrub_time_are_eligible(self):
        old, young = self.insert(
            pending_image('old', deleted_seconds_ago=7200),
            pending_image('young', deleted_seconds_ago=60))
        deleter = RecordingDeleter()

        self.make_scrubber(deleter, scrub_time=3600).run_once()

        self.assertEqual('deleted', self.status_of(old))
        self.assertEqual('pending_delete', self.status_of(young))
        self.assertEqual([old.locations[0].url], deleter.deleted)

    def test_decoys_are_never_touched(self):
        active = seed.Image(status='active', deleted=False, locations=[
            seed.Location('file:///store/active', status='active')])
        gone = seed.Image(status='deleted', locations=[
            seed.Location('file:///store/gone', status='deleted')])
        undeleted = seed.Image(status='pending_delete', deleted=False,
                               locations=[seed.Location('file:///store/u')])
        mixed = seed.Image(locations=[
            seed.Location('file:///store/m-done', status='deleted'),
            seed.Location('file:///store/m-active', status='active'),
            seed.Location('file:///store/m-pending')])
        self.insert(active, gone, undeleted, mixed)
        deleter = RecordingDeleter()

        self.make_scrubber(deleter).run_once()

        self.assertEqual(['file:///store/m-pending'], deleter.deleted)
        self.assertEqual('active', self.status_of(active))
        self.assertEqual('pending_delete', self.status_of(undeleted))
        self.assertEqual(['deleted', 'active', 'deleted'],
                         self.location_statuses(mixed))

    def test_images_of_every_visibility_are_scrubbed(self):
        images = self.insert(*[
            pending_image(visibility, visibility=visibility)
            for visibility in ('private', 'public', 'shared', 'community')])

        self.make_scrubber(RecordingDeleter()).run_once()

        self.assertEqual(['deleted'] * 4,
                         [self.status_of(image) for image in images])


class TestFailures(ScrubberTestCase):

    def test_one_failing_location_fails_its_image_only(self):
        bad, good = self.insert(pending_image('bad', count=3),
                                pending_image('good', count=2))
        deleter = RecordingDeleter(fail_urls={bad.locations[1].url})

        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual('pending_delete', self.status_of(bad))
        self.assertEqual(['deleted', 'pending_delete', 'pending_delete'],
                         self.location_statuses(bad))
        self.assertNotIn(bad.locations[2].url, deleter.deleted)
        self.assertEqual('deleted', self.status_of(good))
        self.assertEqual((1, 1), (summary.scrubbed, summary.failed))
        self.assertIn('Image %s not scrubbed' % bad.id, self.logs.output)
        self.assertIn('store said no to %s' % bad.locations[1].url,
                      self.logs.output)

    def test_failed_image_is_finished_by_a_later_pass(self):
        image = self.insert(pending_image('img', count=2))[0]
        failing = RecordingDeleter(fail_urls={image.locations[1].url})
        self.make_scrubber(failing).run_once()

        retry = RecordingDeleter()
        summary = self.make_scrubber(retry).run_once()

        self.assertEqual([image.locations[1].url], retry.deleted)
        self.assertEqual('deleted', self.status_of(image))
        self.assertEqual(1, summary.scrubbed)

    def test_an_unexpected_error_in_a_job_is_reported_not_lost(self):
        image = self.insert(pending_image('img'))[0]
        deleter = RecordingDeleter(crash_urls={image.locations[0].url})

        summary = self.make_scrubber(deleter, pool_size=2).run_once()

        self.assertEqual(1, summary.failed)
        self.assertEqual('pending_delete', self.status_of(image))
        self.assertIn('Scrubbing image %s failed unexpectedly' % image.id,
                      self.logs.output)
        self.assertIn('RuntimeError: driver bug', self.logs.output)

    def test_image_whose_locations_are_all_gone_is_finished(self):
        # An earlier pass deleted the data and recorded the locations but
        # died before recording the image: it must not stay stranded.
        stranded = self.insert(seed.Image(locations=[
            seed.Location('file:///store/s1', status='deleted'),
            seed.Location('file:///store/s2', status='deleted')]))[0]
        deleter = RecordingDeleter()

        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual('deleted', self.status_of(stranded))
        self.assertEqual([], deleter.deleted)
        self.assertEqual(1, summary.scrubbed)


class TestRestoreRaces(ScrubberTestCase):

    def test_image_restored_after_the_page_was_read_keeps_its_data(self):
        first, second = sorted(
            self.insert(pending_image('a'), pending_image('b')),
            key=lambda image: image.id)

        def restore_second(location):
            if location.url == first.locations[0].url:
                db_api.restore_image(self.context, second.id)

        deleter = RecordingDeleter(on_delete=restore_second)
        summary = self.make_scrubber(deleter, pool_size=1).run_once()

        self.assertNotIn(second.locations[0].url, deleter.deleted)
        self.assertEqual('active', self.status_of(second))
        self.assertEqual(['active'], self.location_statuses(second))
        self.assertEqual((1, 1), (summary.scrubbed, summary.skipped))

    def test_image_restored_while_its_data_is_deleted_stays_restored(self):
        image = self.insert(pending_image('img', count=2))[0]

        def restore_midway(location):
            if location.url == image.locations[1].url:
                db_api.restore_image(self.context, image.id)

        deleter = RecordingDeleter(on_delete=restore_midway)
        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual('active', self.status_of(image))
        self.assertEqual(1, summary.skipped)
        self.assertEqual(0, summary.scrubbed)

    def test_restore_refuses_while_a_pass_holds_the_lock(self):
        image = self.insert(pending_image('img'))[0]
        refusals = []

        def try_restore(location):
            try:
                scrubber.restore(self.context, image.id, self.lock_path)
            except exception.ScrubberBusy as error:
                refusals.append(str(error))

        self.make_scrubber(RecordingDeleter(on_delete=try_restore)).run_once()

        self.assertEqual(1, len(refusals))
        self.assertIn('scrub pass is running', refusals[0])
        self.assertEqual('deleted', self.status_of(image))

    def test_restore_brings_back_image_and_locations(self):
        image = self.insert(pending_image('img', count=2))[0]

        restored = scrubber.restore(self.context, image.id, self.lock_path)

        self.assertEqual(2, restored)
        row = seed.image_status(self.db.engine, image.id)
        self.assertEqual(('active', False, None), tuple(row))
        self.assertEqual([('active', False)] * 2,
                         [(status, deleted) for _u, status, deleted
                          in seed.location_states(self.db.engine, image.id)])

    def test_restore_of_unknown_or_active_image_is_refused(self):
        active = self.insert(seed.Image(status='active', deleted=False))[0]

        self.assertRaises(exception.NotFound, scrubber.restore,
                          self.context, 'no-such-image', self.lock_path)
        error = self.assertRaises(exception.Conflict, scrubber.restore,
                                  self.context, active.id, self.lock_path)
        self.assertIn("status 'active'", str(error))


class TestStopAndProgress(ScrubberTestCase):

    def test_stop_takes_no_new_images_and_finishes_those_in_flight(self):
        images = self.insert(*[pending_image('img%d' % i) for i in range(20)])
        the_scrubber = None

        def stop_at_first(location):
            the_scrubber.stop()

        deleter = RecordingDeleter(on_delete=stop_at_first, delay=0.01)
        the_scrubber = self.make_scrubber(deleter, pool_size=2)
        summary = the_scrubber.run_once()

        statuses = [self.status_of(image) for image in images]
        self.assertEqual(summary.found, summary.scrubbed)
        self.assertEqual(summary.scrubbed, statuses.count('deleted'))
        self.assertLess(summary.found, 20)
        self.assertEqual(len(deleter.deleted), summary.scrubbed)

    def test_progress_is_logged_during_a_long_pass(self):
        self.insert(*[pending_image('img%d' % i) for i in range(6)])
        deleter = RecordingDeleter(delay=0.05)

        self.make_scrubber(deleter, report_interval=0.02).run_once()

        self.assertIn('Scrub pass in progress:', self.logs.output)
        self.assertIn('Scrub pass summary: found=6 scrubbed=6 failed=0',
                      self.logs.output)

    def test_pass_waits_for_the_lock_and_gives_up_when_stopped(self):
        self.insert(pending_image('img'))
        lock = scrubber.ScrubLock(self.lock_path)
        self.assertTrue(lock.acquire(blocking=False))
        self.addCleanup(lock.release)
        deleter = RecordingDeleter()
        the_scrubber = self.make_scrubber(deleter)
        threading.Timer(0.5, the_scrubber.stop).start()

        summary = the_scrubber.run_once()

        self.assertEqual(0, summary.found)
        self.assertEqual([], deleter.deleted)


class TestGreenExecutor(ScrubberTestCase):
    """The same pass on green threads (GreenThreadPoolExecutor)."""

    backend = 'eventlet'

    def test_executor_kinds(self):
        green = scrubber.Executors('eventlet')(2)
        native = scrubber.Executors('threading')(2)
        self.addCleanup(green.shutdown)
        self.addCleanup(native.shutdown)
        self.assertIsInstance(green, futurist.GreenThreadPoolExecutor)
        self.assertIsInstance(native, futurist.ThreadPoolExecutor)
        self.assertRaises(ValueError, scrubber.Executors, 'asyncio')

    def test_pool_scrubs_that_many_images_at_once_on_green_threads(self):
        images = self.insert(*[pending_image('img%d' % i, count=2)
                               for i in range(12)])
        deleter = RecordingDeleter(delay=0.02, sleep=eventlet.sleep)

        summary = self.make_scrubber(deleter, pool_size=4).run_once()

        self.assertEqual(4, deleter.most_busy)
        self.assertEqual(12, summary.scrubbed)
        self.assertEqual(['deleted'] * 12,
                         [self.status_of(image) for image in images])

    def test_one_failure_among_green_jobs(self):
        bad, good = self.insert(pending_image('bad', count=2),
                                pending_image('good'))
        deleter = RecordingDeleter(fail_urls={bad.locations[0].url},
                                   sleep=eventlet.sleep, delay=0.01)

        summary = self.make_scrubber(deleter, pool_size=2).run_once()

        self.assertEqual((1, 1), (summary.scrubbed, summary.failed))
        self.assertEqual('pending_delete', self.status_of(bad))
        self.assertEqual('deleted', self.status_of(good))


class TestSummary(testtools.TestCase):

    def test_describe_names_every_count(self):
        summary = scrubber.Summary(found=5, scrubbed=4, failed=1,
                                   locations_deleted=6,
                                   bytes_reclaimed=4096, seconds=2.0)

        self.assertEqual(
            'found=5 scrubbed=4 failed=1 skipped=0 locations_deleted=6 '
            'bytes_reclaimed=4096 seconds=2.00 images_per_second=2.0',
            summary.describe())
        self.assertEqual(0.0, scrubber.Summary().images_per_second)


class TestDatabaseTrouble(ScrubberTestCase):

    def test_image_whose_status_cannot_be_read_keeps_its_data(self):
        image = self.insert(pending_image('img'))[0]
        deleter = RecordingDeleter()
        the_scrubber = self.make_scrubber(deleter)
        # The page is read, then the images table goes away under the
        # worker's status re-read.
        pages = iter([db_api.list_pending_delete_images(
            self.context, timeutils.utcnow())])
        self.useFixture(fixtures.MockPatchObject(
            scrubber.Queue, '__iter__',
            lambda queue: iter(next(pages))))
        with self.db.engine.begin() as connection:
            connection.exec_driver_sql(
                'ALTER TABLE images RENAME TO images_away')

        summary = the_scrubber._run_pass()

        self.assertEqual([], deleter.deleted)
        self.assertEqual(1, summary.failed)
        self.assertIn('Image %s not scrubbed' % image.id, self.logs.output)
        self.assertIn('cannot re-read its status', self.logs.output)
