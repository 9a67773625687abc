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

"""The worker, the scrub pass and restore, on a real SQLite database.

The store side is a recording deleter here (base.RecordingDeleter): it
answers with the deleter's Deletions and raises the store errors on cue,
so that a test can make one location fail, slow every delete down or
watch concurrency. The real StoreDeleter is exercised in
stores/test_deleter.py, and at the end
of this module (TestRealFileStore) a pass runs through it and glance_store's
file store.

Time is moved forward with oslo.utils' time override where a claim must
age past the claim timeout; nothing here sleeps to wait for something.
"""

import datetime
import functools
import os
import re
import threading
import time

import eventlet
import fixtures
import futurist
import glance_store
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_db import exception as db_exception
from oslo_utils import timeutils
import testtools

from glance.common import exception
from glance.db.sqlalchemy import api as db_api
from glance import scrubber
from glance.scrubber import coordination
from glance.scrubber import data_users
from glance.scrubber import metrics
from glance.scrubber import pass_watch
from glance.scrubber.stores import deleter as store_deleter
from glance.scrubber.stores import errors
from glance.scrubber.stores import layout
from glance.scrubber.stores import urls
from glance.tests import seed
from glance.tests.unit.scrubber.base import claim_of
from glance.tests.unit.scrubber.base import CLAIM_TIMEOUT
from glance.tests.unit.scrubber.base import ordered_id
from glance.tests.unit.scrubber.base import pending_image
from glance.tests.unit.scrubber.base import RecordingDeleter
from glance.tests.unit.scrubber.base import ScrubberTestCase
from glance.tests.unit.scrubber.base import urls_of

Deletion = store_deleter.Deletion


def location(location_id, url):
    return db_api.PendingLocation(location_id, url)


class TestWorker(testtools.TestCase):
    """The worker alone: it touches no database."""

    def setUp(self):
        super().setUp()
        self.logs = self.useFixture(fixtures.FakeLogger(
            name='glance.scrubber', level='DEBUG'))

    def test_deletes_the_locations_in_order_and_reports_each_deletion(self):
        locations = [location(i, 'file:///l%d' % i) for i in (3, 1, 2)]
        deleter = RecordingDeleter(missing_urls={'file:///l1'})

        outcome = scrubber.Worker(deleter)(claim_of('img', locations))

        self.assertEqual(scrubber.Result.SCRUBBED, outcome.result)
        self.assertEqual(['file:///l3', 'file:///l1', 'file:///l2'],
                         deleter.asked)
        self.assertEqual([(3, Deletion.DELETED), (1, Deletion.ALREADY_GONE),
                          (2, Deletion.DELETED)], outcome.deletions)
        self.assertEqual([3, 1, 2], outcome.deleted_location_ids)
        self.assertEqual([1], outcome.found_nothing_at())

    def test_bytes_reclaimed_count_only_data_the_store_deleted(self):
        locations = [location(1, 'file:///deleted'),
                     location(2, 'file:///missing'),
                     location(3, 'file:///shared'),
                     location(4, 'http://web/not-owned'),
                     location(5, 'file:///deleted-too')]
        deleter = RecordingDeleter(missing_urls={'file:///missing'},
                                   shared_urls={'file:///shared'},
                                   not_owned_urls={'http://web/not-owned'})

        outcome = scrubber.Worker(deleter)(claim_of('img', locations,
                                                    size=1000))

        self.assertEqual(2000, outcome.bytes_reclaimed)
        self.assertEqual([1, 2, 3, 4, 5], outcome.deleted_location_ids)

    def test_data_kept_or_let_go_is_logged_as_untouched(self):
        locations = [location(1, 'file:///shared'),
                     location(2, 'http://web/not-owned')]
        deleter = RecordingDeleter(shared_urls={'file:///shared'},
                                   not_owned_urls={'http://web/not-owned'})

        scrubber.Worker(deleter)(claim_of('img', locations))

        self.assertIn('location 1 points to data another image may still '
                      'need (it is live, or pending_delete and restorable)',
                      self.logs.output)
        self.assertIn('location 2 is in a store that cannot delete',
                      self.logs.output)

    def test_a_failing_location_fails_the_image_keeping_earlier_deletions(
            self):
        locations = [location(1, 'file:///ok'), location(2, 'file:///bad'),
                     location(3, 'file:///never')]
        deleter = RecordingDeleter(fail_urls={'file:///bad'})

        outcome = scrubber.Worker(deleter)(claim_of('img', locations))

        self.assertEqual(scrubber.Result.FAILED, outcome.result)
        self.assertEqual([1], outcome.deleted_location_ids)
        self.assertEqual(['file:///ok', 'file:///bad'], deleter.asked)
        self.assertEqual('location 2: store said no to file:///bad',
                         outcome.reason)

    def test_an_unexpected_error_keeps_the_deletions_before_it(self):
        locations = [location(1, 'file:///ok'), location(2, 'file:///boom')]
        deleter = RecordingDeleter(crash_urls={'file:///boom'})

        outcome = scrubber.Worker(deleter)(claim_of('img', locations))

        self.assertEqual(scrubber.Result.FAILED, outcome.result)
        self.assertEqual([1], outcome.deleted_location_ids)
        self.assertEqual('unexpected error: driver bug for file:///boom',
                         outcome.reason)
        self.assertIn('Scrubbing image img failed unexpectedly',
                      self.logs.output)

    def test_data_in_use_stops_the_image_keeping_earlier_deletions(self):
        locations = [location(1, 'rbd://ok'), location(2, 'rbd://cloned'),
                     location(3, 'rbd://never')]
        deleter = RecordingDeleter(in_use_urls={'rbd://cloned'})

        outcome = scrubber.Worker(deleter)(claim_of('img', locations))

        self.assertEqual(scrubber.Result.IN_USE, outcome.result)
        self.assertEqual([1], outcome.deleted_location_ids)
        self.assertEqual('location 2 is in use: rbd://cloned has clones',
                         outcome.reason)

    def test_a_claim_with_no_location_left_is_scrubbed(self):
        outcome = scrubber.Worker(RecordingDeleter())(claim_of('img'))

        self.assertEqual((scrubber.Result.SCRUBBED, []),
                         (outcome.result, outcome.deletions))


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
        expected_urls = sorted(url for image in images
                               for url in urls_of(image))
        self.assertEqual(expected_urls, sorted(deleter.deleted))
        self.assertEqual((10, 10, 0, 0, 0, len(expected_urls), None),
                         (summary.found, summary.scrubbed, summary.failed,
                          summary.skipped, summary.in_use,
                          summary.locations_deleted, summary.aborted))

    def test_bytes_reclaimed_counts_only_data_the_store_had(self):
        image = self.insert(pending_image('img', count=3, size=1000))[0]
        deleter = RecordingDeleter(missing_urls={image.locations[1].url})

        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual(2000, summary.bytes_reclaimed)
        self.assertEqual(3, summary.locations_deleted)
        self.assertEqual('deleted', self.status_of(image))

    def test_data_kept_or_let_go_is_recorded_deleted_without_a_delete(self):
        image = self.insert(pending_image('img', count=3, size=1000))[0]
        shared, not_owned, owned = urls_of(image)
        deleter = RecordingDeleter(shared_urls={shared},
                                   not_owned_urls={not_owned})

        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual([owned], deleter.deleted)
        self.assertEqual('deleted', self.status_of(image))
        self.assertEqual(['deleted'] * 3, self.location_statuses(image))
        self.assertEqual((1, 3, 1000), (summary.scrubbed,
                                        summary.locations_deleted,
                                        summary.bytes_reclaimed))

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
            urls = urls_of(image)
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

    def counting_scrubber(self, deleter, pool_size, **kwargs):
        """A Scrubber that notes how many images are unfinished at submit.

        :returns: (the scrubber, [unfinished images at each submit]).
        """
        counts = {'submitted': 0, 'finished': 0}
        unfinished_at_submit = []
        lock = threading.Lock()
        real_executors = scrubber.Executors(self.backend)

        def counting_executors(workers):
            executor = real_executors(workers)
            submit = executor.submit

            def counted_submit(fn, claim):
                with lock:
                    counts['submitted'] += 1
                    unfinished_at_submit.append(
                        counts['submitted'] - counts['finished'])

                def counted(claim):
                    try:
                        return fn(claim)
                    finally:
                        with lock:
                            counts['finished'] += 1

                return submit(counted, claim)

            executor.submit = counted_submit
            return executor

        counting_executors.backend = self.backend

        the_scrubber = self.make_scrubber(deleter, pool_size,
                                          executors=counting_executors,
                                          **kwargs)
        return the_scrubber, unfinished_at_submit

    def claimed_batches(self):
        """The size of each batch claim_images() is asked to claim."""
        batches = []
        real_claim = db_api.claim_images

        def claim_images(context, batch, *args, **kwargs):
            batches.append(len(batch))
            return real_claim(context, batch, *args, **kwargs)

        self.useFixture(fixtures.MockPatchObject(db_api, 'claim_images',
                                                 claim_images))
        return batches

    def test_in_flight_images_stay_within_the_pool_and_one_claim(self):
        self.useFixture(fixtures.MockPatchObject(scrubber.Scrubber,
                                                 'MAX_CLAIM', 5))
        self.insert(*[pending_image('img%d' % i) for i in range(40)])
        deleter = RecordingDeleter(delay=0.01)
        the_scrubber, unfinished_at_submit = self.counting_scrubber(
            deleter, 3, page_size=4)

        summary = the_scrubber.run_once()

        self.assertEqual(40, summary.scrubbed)
        self.assertEqual(3 + 5, the_scrubber.max_in_flight)
        self.assertLessEqual(max(unfinished_at_submit), 3 + 5)

    def test_a_pool_larger_than_one_claim_holds_no_more_in_flight(self):
        # The first claim gives each worker an image; the next ones never
        # take more than MAX_CLAIM images beyond the workers'.
        self.useFixture(fixtures.MockPatchObject(scrubber.Scrubber,
                                                 'MAX_CLAIM', 2))
        self.insert(*[pending_image('img%d' % i) for i in range(40)])
        deleter = RecordingDeleter(delay=0.01)
        the_scrubber, unfinished_at_submit = self.counting_scrubber(
            deleter, 6)

        summary = the_scrubber.run_once()

        self.assertEqual(40, summary.scrubbed)
        self.assertEqual(6 + 2, the_scrubber.max_in_flight)
        self.assertLessEqual(max(unfinished_at_submit), 6 + 2)

    def test_in_flight_images_are_bounded_by_default(self):
        the_scrubber = self.make_scrubber(RecordingDeleter(), pool_size=4)

        # scrub_pool_size plus 100, as doc/source/admin/scrubber.rst says.
        self.assertEqual(4 + 100, the_scrubber.max_in_flight)

    def test_claims_start_at_one_image_per_worker_then_follow_the_pace(
            self):
        # Until an image is finished the pace is unknown: one image per
        # worker at a time, one more batch claimed ahead. Then about
        # CLAIM_AHEAD seconds of work at the pace so far, at most
        # MAX_CLAIM images.
        self.useFixture(fixtures.MockPatchObject(scrubber.Scrubber,
                                                 'MAX_CLAIM', 10))
        self.useFixture(fixtures.MockPatchObject(scrubber.Scrubber,
                                                 'CLAIM_AHEAD', 3600.0))
        self.insert(*[pending_image('img%d' % i) for i in range(30)])
        batches = self.claimed_batches()

        summary = self.make_scrubber(RecordingDeleter(delay=0.01),
                                     pool_size=1).run_once()

        self.assertEqual(30, summary.scrubbed)
        self.assertEqual([1, 1, 10], batches[:3])
        self.assertLessEqual(max(batches), 10)
        self.assertEqual(30, sum(batches))

    def test_a_slow_pass_claims_no_more_than_the_pool_at_a_time(self):
        # A pace of a few images a second claims one image per worker.
        self.useFixture(fixtures.MockPatchObject(scrubber.Scrubber,
                                                 'CLAIM_AHEAD', 0.001))
        self.insert(*[pending_image('img%d' % i) for i in range(12)])
        batches = self.claimed_batches()

        self.make_scrubber(RecordingDeleter(delay=0.01),
                           pool_size=2).run_once()

        self.assertEqual(12, sum(batches))
        self.assertEqual(2, max(batches))

    def test_data_users_are_refreshed_before_each_claim_and_told_after(
            self):
        self.insert(*[pending_image('img%d' % i) for i in range(5)])
        deleter = RecordingDeleter()
        events = deleter.data_users.events
        real_claim = db_api.claim_images

        def claim_images(context, batch, *args, **kwargs):
            events.append('claim')
            claims = real_claim(context, batch, *args, **kwargs)
            events.append(('claims', [claim.image_id for claim in claims]))
            return claims

        self.useFixture(fixtures.MockPatchObject(db_api, 'claim_images',
                                                 claim_images))

        self.make_scrubber(deleter, pool_size=1).run_once()

        # Forgotten once, at the start; then, for each claim: refresh,
        # claim, and the same claims handed to claimed().
        self.assertEqual('forget', events[0])
        rounds = [events[start:start + 4]
                  for start in range(1, len(events), 4)]
        self.assertGreater(len(rounds), 1)
        for refresh, claim, (got, claimed_ids), (told, told_ids) in rounds:
            self.assertEqual(('refresh', 'claim', 'claims', 'claimed'),
                             (refresh, claim, got, told))
            self.assertEqual(claimed_ids, told_ids)
        self.assertEqual(5, sum(len(ids) for _r, _c, _g, (_t, ids)
                                in rounds))

    def test_data_users_are_forgotten_at_the_start_of_each_pass(self):
        self.insert(pending_image('img'))
        deleter = RecordingDeleter()
        the_scrubber = self.make_scrubber(deleter)

        the_scrubber.run_once()
        first_pass = list(deleter.data_users.events)
        the_scrubber.run_once()

        self.assertEqual(['forget'], [event for event in first_pass
                                      if event == 'forget'])
        self.assertEqual('forget', first_pass[0])
        self.assertEqual('forget',
                         deleter.data_users.events[len(first_pass)])

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

        self.assertEqual(['file:///store/m-pending'], deleter.asked)
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


class TestClaims(ScrubberTestCase):

    def abandoned_claim(self, name, count=2, done=1):
        """An image a stopped pass claimed, with *done* locations done."""
        locations = [seed.Location('file:///store/%s-%d' % (name, index),
                                   status='deleted' if index < done
                                   else 'pending_delete')
                     for index in range(count)]
        # seed stamps it (updated_at) an hour ago.
        return seed.Image(locations, status='deleted')

    def test_abandoned_claim_is_retaken_and_the_rest_of_its_data_deleted(
            self):
        image = self.insert(self.abandoned_claim('img', count=3, done=1))[0]
        deleter = RecordingDeleter()

        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual(urls_of(image)[1:], deleter.asked)
        self.assertEqual('deleted', self.status_of(image))
        self.assertEqual(['deleted'] * 3, self.location_statuses(image))
        self.assertEqual((1, 1), (summary.found, summary.scrubbed))

    def test_a_recent_claim_of_another_pass_is_left_alone(self):
        image = self.insert(self.abandoned_claim('img'))[0]
        self.set_image(image, updated_at=db_api.claim_token())
        deleter = RecordingDeleter()

        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual([], deleter.asked)
        self.assertEqual(0, summary.found)
        self.assertEqual(['deleted', 'pending_delete'],
                         self.location_statuses(image))

    def test_claims_no_pass_may_take_yet_are_counted_and_said(self):
        image = self.insert(self.abandoned_claim('img'))[0]
        stamp = db_api.claim_token() - datetime.timedelta(seconds=100)
        self.set_image(image, updated_at=stamp)
        started = time.monotonic()

        summary = self.make_scrubber(RecordingDeleter()).run_once()

        elapsed = time.monotonic() - started
        self.assertEqual((0, 1), (summary.found, summary.claimed_elsewhere))
        takeable_at = stamp + datetime.timedelta(seconds=CLAIM_TIMEOUT)
        self.assertEqual(takeable_at, summary.first_takeable_at)
        self.assertIn('claimed_elsewhere=1', self.logs.output)
        said = re.search(
            r'1 images are claimed by another scrub pass, running or '
            r'stopped, and were left to it: .* The first may be taken over '
            r'at %s UTC, in (\d+) s \(scrub_claim_timeout \(600 s\) '
            r'after the claim\)' % re.escape(takeable_at.isoformat()),
            self.logs.output)
        self.assertIsNotNone(said, self.logs.output)
        # 500 s from the stamp, less the time the pass took to say it.
        self.assertLessEqual(500 - elapsed - 1, int(said.group(1)))
        self.assertLessEqual(int(said.group(1)), 500)

    def test_a_pass_counts_the_claims_it_left_in_the_next_one(self):
        image = self.insert(pending_image('img'))[0]

        def store_hangs(image_id, location):
            raise errors.StoreTimeout('no answer within 3 seconds')

        first = self.make_scrubber(
            RecordingDeleter(on_delete=store_hangs)).run_once()
        second = self.make_scrubber(RecordingDeleter()).run_once()

        # Counted when the pass starts: its own claims are not elsewhere.
        self.assertEqual((1, 0), (first.left_claimed,
                                  first.claimed_elsewhere))
        self.assertEqual((0, 1), (second.found, second.claimed_elsewhere))
        self.assertEqual('deleted', self.status_of(image))

    def test_no_claim_elsewhere_says_nothing(self):
        self.insert(pending_image('img'))

        summary = self.make_scrubber(RecordingDeleter()).run_once()

        self.assertEqual((0, None), (summary.claimed_elsewhere,
                                     summary.first_takeable_at))
        self.assertNotIn('claimed by another scrub pass', self.logs.output)

    def test_image_claimed_by_another_pass_before_the_claim_is_skipped(self):
        image = self.insert(pending_image('img'))[0]

        def other_pass_claims():
            db_api.claim_images(self.context, [db_api.Candidate(image.id)],
                                timeutils.utcnow(), timeutils.utcnow())

        deleter = RecordingDeleter(on_refresh=other_pass_claims)
        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual([], deleter.asked)
        self.assertEqual((1, 0, 1), (summary.found, summary.scrubbed,
                                     summary.skipped))
        self.assertIn('Image %s skipped' % image.id, self.logs.output)

    def test_images_that_cannot_be_claimed_keep_their_data(self):
        images = self.insert(pending_image('a'), pending_image('b'))
        deleter = RecordingDeleter()
        the_scrubber = self.make_scrubber(deleter)
        # The queue was read; then the images table goes away under the
        # claim.
        listed = db_api.list_pending_delete_images(self.context,
                                                   timeutils.utcnow())
        self.useFixture(fixtures.MockPatchObject(
            scrubber.Queue, 'pages', lambda queue: iter([listed])))
        with self.db.engine.begin() as connection:
            connection.exec_driver_sql(
                'ALTER TABLE images RENAME TO images_away')

        summary = the_scrubber._run_pass(scrubber.Summary())

        self.assertEqual([], deleter.asked)
        # A pool of one claims one image at a time at first; once a claim
        # fails for want of the database, the pass takes no more images.
        self.assertEqual((1, 1), (summary.found, summary.failed))
        self.assertEqual(1, self.logs.output.count(
            'Could not claim 1 images, none of their data was touched'))
        self.assertIn('the database stopped answering', summary.aborted)
        with self.db.engine.begin() as connection:
            connection.exec_driver_sql(
                'ALTER TABLE images_away RENAME TO images')
        self.assertEqual(['pending_delete'] * 2,
                         [self.status_of(image) for image in images])

    def test_unrecorded_scrub_is_finished_once_its_claim_times_out(self):
        image = self.insert(pending_image('img', count=2))[0]
        with fixtures.MockPatchObject(
                db_api, 'record_scrubs',
                side_effect=db_exception.DBConnectionError('went away')):
            first = self.make_scrubber(RecordingDeleter()).run_once()
        # The data is gone, the record is not: the image stays claimed.
        self.assertEqual((0, 1, 0), (first.failed, first.left_claimed,
                                     first.locations_deleted))
        self.assertIn('Image %s not finished, left claimed' % image.id,
                      self.logs.output)
        self.assertEqual('deleted', self.status_of(image))
        self.assertEqual(['pending_delete'] * 2,
                         self.location_statuses(image))

        too_soon = self.make_scrubber(RecordingDeleter()).run_once()
        self.move_clock(CLAIM_TIMEOUT + 1)
        gone = RecordingDeleter(missing_urls=urls_of(image))
        later = self.make_scrubber(gone).run_once()

        self.assertEqual(0, too_soon.found)
        self.assertEqual(urls_of(image), gone.asked)
        self.assertEqual((1, None), (later.scrubbed, later.aborted))
        self.assertEqual('deleted', self.status_of(image))
        self.assertEqual(['deleted'] * 2, self.location_statuses(image))

    def test_a_claim_taken_over_meanwhile_is_not_given_back(self):
        image = self.insert(pending_image('img', count=2))[0]
        first_url, second_url = urls_of(image)

        def another_pass_takes_over(image_id, location):
            if location.url == first_url:
                self.set_image(image, updated_at=db_api.claim_token() +
                               datetime.timedelta(hours=1))

        deleter = RecordingDeleter(fail_urls={second_url},
                                   on_delete=another_pass_takes_over)
        self.make_scrubber(deleter).run_once()

        # Still the other pass's claim: it finishes the image.
        self.assertEqual('deleted', self.status_of(image))
        self.assertEqual(['deleted', 'pending_delete'],
                         self.location_statuses(image))
        self.assertIn('another pass took its claim over', self.logs.output)

    def test_an_image_changed_by_hand_while_scrubbed_is_a_failure(self):
        image = self.insert(pending_image('img'))[0]

        def reactivate(image_id, location):
            self.set_image(image, status='active', deleted=False)

        deleter = RecordingDeleter(on_delete=reactivate)
        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual((0, 1), (summary.scrubbed, summary.failed))
        self.assertIn('the image became active while its data was being '
                      'deleted; 1 locations deleted', self.logs.output)


class TestFailures(ScrubberTestCase):

    def test_one_failing_location_fails_its_image_only(self):
        bad, good = self.insert(pending_image('bad', count=3),
                                pending_image('good', count=2))
        deleter = RecordingDeleter(fail_urls={bad.locations[1].url})

        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual('pending_delete', self.status_of(bad))
        self.assertEqual(['deleted', 'pending_delete', 'pending_delete'],
                         self.location_statuses(bad))
        self.assertNotIn(bad.locations[2].url, deleter.asked)
        self.assertEqual('deleted', self.status_of(good))
        self.assertEqual((1, 1), (summary.scrubbed, summary.failed))
        self.assertIn('Image %s not scrubbed' % bad.id, self.logs.output)
        self.assertIn('store said no to %s' % bad.locations[1].url,
                      self.logs.output)

    def test_a_database_gone_while_reading_the_queue_ends_with_a_summary(
            self):
        first, second = self.insert(pending_image('a', id=ordered_id(1)),
                                    pending_image('b', id=ordered_id(2)))
        real_page = db_api.list_pending_delete_images
        pages = []

        def page_then_outage(context, before, marker=None, limit=100):
            pages.append(marker)
            if marker is None:
                return real_page(context, before, marker=marker, limit=1)
            raise db_exception.DBConnectionError('server has gone away')

        self.useFixture(fixtures.MockPatchObject(
            db_api, 'list_pending_delete_images', page_then_outage))

        summary = self.make_scrubber(RecordingDeleter(),
                                     page_size=1).run_once()

        self.assertEqual('deleted', self.status_of(first))
        self.assertEqual('pending_delete', self.status_of(second))
        self.assertEqual((1, 1), (summary.found, summary.scrubbed))
        self.assertIn('the database stopped answering', summary.aborted)
        self.assertIn('server has gone away', summary.aborted)
        self.assertIn('Scrub pass summary: found=1 scrubbed=1',
                      self.logs.output)
        self.assertIn('Scrub pass stopped early', self.logs.output)

    def test_failed_image_is_finished_by_a_later_pass(self):
        image = self.insert(pending_image('img', count=2))[0]
        failing = RecordingDeleter(fail_urls={image.locations[1].url})
        self.make_scrubber(failing).run_once()

        retry = RecordingDeleter()
        summary = self.make_scrubber(retry).run_once()

        self.assertEqual([image.locations[1].url], retry.asked)
        self.assertEqual('deleted', self.status_of(image))
        self.assertEqual(1, summary.scrubbed)

    def test_an_unexpected_error_in_a_job_is_reported_not_lost(self):
        image = self.insert(pending_image('img', count=2))[0]
        deleter = RecordingDeleter(crash_urls={image.locations[1].url})

        summary = self.make_scrubber(deleter, pool_size=2).run_once()

        self.assertEqual(1, summary.failed)
        self.assertEqual('pending_delete', self.status_of(image))
        # What was deleted before the error is recorded.
        self.assertEqual(['deleted', 'pending_delete'],
                         self.location_statuses(image))
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
        self.assertEqual([], deleter.asked)
        self.assertEqual(1, summary.scrubbed)

    def test_data_in_use_is_deferred_to_a_later_pass(self):
        image, other = self.insert(pending_image('img', count=3),
                                   pending_image('other'))
        first, cloned, _third = urls_of(image)
        in_use = RecordingDeleter(in_use_urls={cloned})

        summary = self.make_scrubber(in_use).run_once()

        self.assertEqual((1, 1, 0), (summary.scrubbed, summary.in_use,
                                     summary.failed))
        self.assertEqual('pending_delete', self.status_of(image))
        self.assertEqual(['deleted', 'pending_delete', 'pending_delete'],
                         self.location_statuses(image))
        self.assertEqual('deleted', self.status_of(other))
        self.assertIn('Image %s kept, its data is in use' % image.id,
                      self.logs.output)

        later = RecordingDeleter()
        self.make_scrubber(later).run_once()

        self.assertEqual(urls_of(image)[1:], later.asked)
        self.assertEqual('deleted', self.status_of(image))


class TestNotFoundGuard(ScrubberTestCase):

    def test_pass_stops_when_its_first_deletes_find_no_data(self):
        # Claims of 5 at most: once it trips, the pass has at most the
        # worker's image and one claim in flight, and takes no more.
        self.useFixture(fixtures.MockPatchObject(scrubber.Scrubber,
                                                 'MAX_CLAIM', 5))
        images = self.insert(*[pending_image('img%d' % i, count=1)
                               for i in range(30)])
        deleter = RecordingDeleter(missing_urls={
            url for image in images for url in urls_of(image)})

        summary = self.make_scrubber(deleter, not_found_ratio=0.5).run_once()

        self.assertLessEqual(summary.found, 11 + 1 + 5)
        # Every image claimed was given back, nothing about it recorded.
        self.assertEqual((0, summary.found), (summary.scrubbed,
                                              summary.failed))
        self.assertEqual(0, summary.locations_deleted)
        for image in images:
            self.assertEqual('pending_delete', self.status_of(image))
            self.assertEqual(['pending_delete'],
                             self.location_statuses(image))
        # More than half of the sample: the 11th missing data trips it
        # (with what was in flight then).
        self.assertGreaterEqual(summary.found, 11)
        self.assertIn('%d of the first %d deletes found no data'
                      % (summary.found, summary.found), summary.aborted)
        self.assertIn('Scrub pass stopped early', self.logs.output)

    def small_pass(self, count, missing):
        """A pass over *count* images, the first *missing* without data."""
        images = self.insert(*[pending_image('img%d' % i, id=ordered_id(i))
                               for i in range(count)])
        deleter = RecordingDeleter(missing_urls={
            image.locations[0].url for image in images[:missing]})
        summary = self.make_scrubber(deleter, not_found_ratio=0.5).run_once()
        return images, summary

    def test_a_small_pass_whose_four_deletes_find_nothing_is_recorded(self):
        # Four deletes are too few to judge the store.
        images, summary = self.small_pass(4, missing=4)

        self.assertEqual((4, 0, None), (summary.scrubbed, summary.failed,
                                        summary.aborted))
        for image in images:
            self.assertEqual('deleted', self.status_of(image))
            self.assertEqual(['deleted'], self.location_statuses(image))

    def test_a_small_pass_mostly_finding_nothing_is_withheld(self):
        # 3 of 5 deletes found nothing, more than half: judged at its end.
        images, summary = self.small_pass(5, missing=3)

        self.assertEqual((2, 3), (summary.scrubbed, summary.failed))
        self.assertIn('3 of the first 5 deletes found no data',
                      summary.aborted)
        self.assertIn('Scrub pass stopped early', self.logs.output)
        for image in images[:3]:
            self.assertEqual('pending_delete', self.status_of(image))
            self.assertEqual(['pending_delete'],
                             self.location_statuses(image))
        for image in images[3:]:
            self.assertEqual('deleted', self.status_of(image))
            self.assertEqual(['deleted'], self.location_statuses(image))

    def test_a_small_pass_finding_most_of_its_data_is_recorded(self):
        images, summary = self.small_pass(5, missing=2)

        self.assertEqual((5, 0, None), (summary.scrubbed, summary.failed,
                                        summary.aborted))
        self.assertEqual(['deleted'] * 5,
                         [self.status_of(image) for image in images])
        self.assertEqual(0, seed.count_images(self.db.engine,
                                              'pending_delete'))

    def test_missing_data_below_the_ratio_is_recorded_deleted(self):
        images = self.insert(*[pending_image('img%d' % i) for i in range(20)])
        missing = {image.locations[0].url for image in images[:5]}
        deleter = RecordingDeleter(missing_urls=missing)

        summary = self.make_scrubber(deleter, not_found_ratio=0.5).run_once()

        self.assertEqual((20, None), (summary.scrubbed, summary.aborted))
        self.assertEqual(0, seed.count_images(self.db.engine,
                                              'pending_delete'))

    def test_retaken_claims_finding_no_data_do_not_stop_the_pass(self):
        images = self.insert(*[seed.Image(
            [seed.Location('file:///store/retaken-%d' % i)],
            status='deleted') for i in range(25)])
        deleter = RecordingDeleter(missing_urls={
            url for image in images for url in urls_of(image)})

        summary = self.make_scrubber(deleter, not_found_ratio=0.0).run_once()

        self.assertEqual((25, None), (summary.scrubbed, summary.aborted))
        for image in images:
            self.assertEqual(['deleted'], self.location_statuses(image))


class TestRestoreRaces(ScrubberTestCase):

    def test_image_restored_before_its_claim_is_skipped_and_keeps_its_data(
            self):
        first, second, third = self.insert(*[
            pending_image('img%d' % i, id=ordered_id(i)) for i in range(3)])
        deleter = RecordingDeleter()

        def restore_third(image_id, location):
            # A pool of one claims two images at first; the third later.
            if image_id == first.id:
                scrubber.restore(self.context, third.id,
                                 self.other_host_lock_path, deleter)

        deleter.on_delete = restore_third
        summary = self.make_scrubber(deleter, pool_size=1).run_once()

        self.assertNotIn(third.locations[0].url, deleter.asked)
        self.assertEqual('active', self.status_of(third))
        self.assertEqual(['active'], self.location_statuses(third))
        self.assertEqual((3, 2, 1), (summary.found, summary.scrubbed,
                                     summary.skipped))

    def test_restore_landing_between_queue_and_claim_makes_it_skip(self):
        image = self.insert(pending_image('img', count=2))[0]
        deleter = RecordingDeleter()

        def restore_once_listed():
            if self.status_of(image) == 'pending_delete':
                scrubber.restore(self.context, image.id,
                                 self.other_host_lock_path, deleter)

        deleter.data_users.on_refresh = restore_once_listed
        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual([], deleter.asked)
        self.assertEqual('active', self.status_of(image))
        self.assertEqual(['active'] * 2, self.location_statuses(image))
        self.assertEqual((1, 0, 1), (summary.found, summary.scrubbed,
                                     summary.skipped))

    def test_image_claimed_cannot_be_restored_from_another_host(self):
        image = self.insert(pending_image('img', count=2))[0]
        refusals = []
        deleter = RecordingDeleter()

        def try_restore(image_id, location):
            try:
                scrubber.restore(self.context, image.id,
                                 self.other_host_lock_path, deleter)
            except exception.Conflict as error:
                refusals.append(str(error))

        deleter.on_delete = try_restore
        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual(2, len(refusals))
        self.assertIn('is being scrubbed', refusals[0])
        self.assertEqual(urls_of(image), deleter.deleted)
        self.assertEqual('deleted', self.status_of(image))
        self.assertEqual(['deleted'] * 2, self.location_statuses(image))
        self.assertEqual(1, summary.scrubbed)

    def test_restore_refuses_while_a_pass_holds_the_lock(self):
        image = self.insert(pending_image('img'))[0]
        refusals = []
        deleter = RecordingDeleter()

        def try_restore(image_id, location):
            try:
                scrubber.restore(self.context, image.id, self.lock_path,
                                 deleter)
            except exception.ScrubberBusy as error:
                refusals.append(str(error))

        deleter.on_delete = try_restore
        self.make_scrubber(deleter).run_once()

        self.assertEqual(1, len(refusals))
        self.assertIn('a scrub pass (process %d) holds the scrub lock %s'
                      % (os.getpid(), self.lock_file()), refusals[0])
        self.assertEqual('deleted', self.status_of(image))

    def test_a_restore_refused_by_another_restore_says_so(self):
        image = self.insert(pending_image('img'))[0]
        other = scrubber.ScrubLock(self.lock_path, 'restore')
        self.assertTrue(other.acquire(blocking=False))
        self.addCleanup(other.release)

        error = self.assertRaises(exception.ScrubberBusy, scrubber.restore,
                                  self.context, image.id, self.lock_path,
                                  RecordingDeleter())

        # The path as text, not a bytes repr, and no pass named.
        self.assertEqual('a restore (process %d) holds the scrub lock %s on '
                         'this host; try again when it has finished.'
                         % (os.getpid(), self.lock_file()), str(error))
        self.assertEqual('pending_delete', self.status_of(image))

    def lock_file(self):
        return os.path.join(self.lock_path, 'glance-glance-scrubber')


class TestRestore(ScrubberTestCase):

    def location_rows(self, image):
        return [(status, bool(deleted)) for _url, status, deleted
                in seed.location_states(self.db.engine, image.id)]

    def test_restore_brings_back_image_and_locations(self):
        image = self.insert(pending_image('img', count=2))[0]

        restored = scrubber.restore(self.context, image.id, self.lock_path,
                                    RecordingDeleter())

        self.assertEqual((2, 0), (restored.locations,
                                  restored.locations_gone))
        row = seed.image_status(self.db.engine, image.id)
        self.assertEqual(('active', False, None), tuple(row))
        self.assertEqual([('active', False)] * 2, self.location_rows(image))

    def test_restore_leaves_out_the_locations_whose_data_is_gone(self):
        image = self.insert(pending_image('img', count=3))[0]
        gone = image.locations[1].url

        restored = scrubber.restore(self.context, image.id, self.lock_path,
                                    RecordingDeleter(gone_urls={gone}))

        self.assertEqual((2, 1), (restored.locations,
                                  restored.locations_gone))
        self.assertEqual([('active', False), ('deleted', True),
                          ('active', False)], self.location_rows(image))
        self.assertIn('the data of location', self.logs.output)

    def test_restore_with_no_data_left_is_refused_and_writes_nothing(self):
        image = self.insert(pending_image('img', count=2))[0]
        deleter = RecordingDeleter(gone_urls=set(urls_of(image)))

        error = self.assertRaises(exception.Conflict, scrubber.restore,
                                  self.context, image.id, self.lock_path,
                                  deleter)

        self.assertIn('none of its pending_delete locations has data left',
                      str(error))
        self.assertEqual('pending_delete', self.status_of(image))
        self.assertEqual([('pending_delete', True)] * 2,
                         self.location_rows(image))

    def test_restore_when_the_store_cannot_tell_is_refused(self):
        image = self.insert(pending_image('img', count=2))[0]
        deleter = RecordingDeleter(unknowable_urls={urls_of(image)[1]})

        error = self.assertRaises(exception.Conflict, scrubber.restore,
                                  self.context, image.id, self.lock_path,
                                  deleter)

        self.assertIn('store unreachable', str(error))
        self.assertEqual('pending_delete', self.status_of(image))
        self.assertEqual([('pending_delete', True)] * 2,
                         self.location_rows(image))

    def test_restore_when_the_store_does_not_answer_is_unavailable(self):
        image = self.insert(pending_image('img', count=2))[0]
        deleter = RecordingDeleter(silent_urls={urls_of(image)[1]})

        error = self.assertRaises(exception.StoreUnavailable,
                                  scrubber.restore, self.context, image.id,
                                  self.lock_path, deleter)

        self.assertIn('store fake: no answer for', str(error))
        self.assertIn('stays pending_delete', str(error))
        self.assertEqual('pending_delete', self.status_of(image))
        self.assertEqual([('pending_delete', True)] * 2,
                         self.location_rows(image))

    def test_restore_of_unknown_or_active_image_is_refused(self):
        active = self.insert(seed.Image(status='active', deleted=False))[0]
        deleter = RecordingDeleter()

        self.assertRaises(exception.NotFound, scrubber.restore,
                          self.context, 'no-such-image', self.lock_path,
                          deleter)
        error = self.assertRaises(exception.Conflict, scrubber.restore,
                                  self.context, active.id, self.lock_path,
                                  deleter)
        self.assertIn("status 'active'", str(error))

    def test_restore_releases_the_lock_for_the_next_pass(self):
        image = self.insert(pending_image('img'))[0]
        self.assertRaises(exception.NotFound, scrubber.restore,
                          self.context, 'no-such-image', self.lock_path,
                          RecordingDeleter())

        lock = scrubber.ScrubLock(self.lock_path)
        self.assertTrue(lock.acquire(blocking=False))
        lock.release()
        self.assertEqual('pending_delete', self.status_of(image))


class TestStopAndProgress(ScrubberTestCase):

    def test_stop_takes_no_new_images_and_finishes_those_in_flight(self):
        images = self.insert(*[pending_image('img%d' % i) for i in range(20)])
        the_scrubber = None

        def stop_at_first(image_id, location):
            the_scrubber.stop()

        deleter = RecordingDeleter(on_delete=stop_at_first, delay=0.01)
        the_scrubber = self.make_scrubber(deleter, pool_size=2)
        summary = the_scrubber.run_once()

        statuses = [self.status_of(image) for image in images]
        self.assertEqual(summary.found, summary.scrubbed)
        self.assertEqual(summary.scrubbed, statuses.count('deleted'))
        self.assertLess(summary.found, 20)
        self.assertEqual(len(deleter.deleted), summary.scrubbed)
        self.assertEqual(20 - summary.found, statuses.count('pending_delete'))
        self.assertFalse(the_scrubber.last_pass_left_behind)

    def test_progress_is_logged_during_a_long_pass(self):
        self.insert(*[pending_image('img%d' % i) for i in range(6)])
        deleter = RecordingDeleter(delay=0.05)

        self.make_scrubber(deleter, report_interval=0.02).run_once()

        self.assertIn('Scrub pass in progress:', self.logs.output)
        self.assertIn('Scrub pass summary: found=6 scrubbed=6 failed=0 '
                      'skipped=0 in_use=0', self.logs.output)

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
        self.assertEqual([], deleter.asked)

    def test_a_pass_without_the_coordination_backend_is_not_started(self):
        image, = self.insert(pending_image('img'))
        membership = LostMembership(CLAIM_TIMEOUT)
        deleter = RecordingDeleter()

        summary = self.make_scrubber(deleter,
                                     membership=membership).run_once()

        self.assertIn('coordination backend is unreachable', summary.aborted)
        self.assertEqual(0, summary.found)
        self.assertEqual([], deleter.asked)
        self.assertEqual('pending_delete', self.status_of(image))
        # Only at debug: a daemon says it every wakeup_time.
        self.assertIn('Scrub pass not started: The coordination backend is '
                      'unreachable', self.logs.output)
        self.assertNotIn('Scrub pass starting', self.logs.output)


class LostMembership(coordination.Alone):
    """A backend gone before the pass: join() refuses."""

    def join(self):
        raise coordination.CoordinationLost(reason='no answer for 31 seconds')


class LosingMembership(coordination.Alone):
    """Alone until its second claim, which finds the backend gone."""

    def __init__(self):
        super().__init__(CLAIM_TIMEOUT)
        self.holds = 0
        self._lost = None

    @property
    def lost(self):
        return self._lost

    def hold(self, token, count):
        self.holds += 1
        if self.holds > 1:
            self._lost = 'no answer for 31 seconds'
            raise coordination.CoordinationLost(reason=self._lost)


def counted(summary):
    """Every image a summary puts in a count, added up by hand."""
    return (summary.scrubbed + summary.failed + summary.skipped +
            summary.in_use + summary.left_claimed + summary.given_back)


class TestEveryImageFoundIsCounted(ScrubberTestCase):
    """Every image found is in exactly one count of the summary.

    found == scrubbed + failed + skipped + in_use + left_claimed +
    given_back, however the pass ends: complete, stopped, tripped, cut off
    from the coordination backend, unable to claim or to record, left
    behind by a database that stopped answering.
    """

    def assertAddsUp(self, summary):
        self.assertEqual(summary.found, counted(summary), summary.describe())
        self.assertIn('Scrub pass summary: %s' % summary.describe(),
                      self.logs.output)

    def test_a_complete_pass_with_every_result(self):
        scrubbed, failing, in_use, restored, hung = self.insert(
            *[pending_image(name, id=ordered_id(number)) for number, name
              in enumerate(('ok', 'bad', 'cloned', 'restored', 'hung'))])

        def restore_before_the_claim():
            self.set_image(restored, status='active', deleted=False)

        def store_hangs(image_id, location):
            if image_id == hung.id:
                raise errors.StoreTimeout('no answer within 3 seconds')

        deleter = RecordingDeleter(fail_urls=urls_of(failing),
                                   in_use_urls=urls_of(in_use),
                                   on_refresh=restore_before_the_claim,
                                   on_delete=store_hangs)
        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual((5, 1, 1, 1, 1, 1), (
            summary.found, summary.scrubbed, summary.failed, summary.skipped,
            summary.in_use, summary.left_claimed))
        self.assertAddsUp(summary)
        # The hung image is neither given back nor restorable.
        self.assertEqual('deleted', self.status_of(hung))
        self.assertEqual(['pending_delete'], self.location_statuses(hung))

    def test_a_pass_stopped_by_a_signal(self):
        self.insert(*[pending_image('img%d' % i) for i in range(20)])
        the_scrubber = None

        def stop_at_first(image_id, location):
            the_scrubber.stop('SIGTERM')

        deleter = RecordingDeleter(on_delete=stop_at_first, delay=0.01)
        the_scrubber = self.make_scrubber(deleter, pool_size=2)
        summary = the_scrubber.run_once()

        self.assertLess(summary.found, 20)
        self.assertAddsUp(summary)

    def test_a_pass_the_not_found_guard_stops(self):
        self.useFixture(fixtures.MockPatchObject(scrubber.Scrubber,
                                                 'MAX_CLAIM', 5))
        images = self.insert(*[pending_image('img%d' % i) for i in range(30)])
        deleter = RecordingDeleter(missing_urls={
            url for image in images for url in urls_of(image)})

        summary = self.make_scrubber(deleter, pool_size=2).run_once()

        self.assertIsNotNone(summary.aborted)
        self.assertAddsUp(summary)

    def test_a_small_pass_whose_outcomes_are_withheld(self):
        images = self.insert(*[pending_image('img%d' % i, id=ordered_id(i))
                               for i in range(5)])
        deleter = RecordingDeleter(missing_urls={
            image.locations[0].url for image in images[:3]})

        summary = self.make_scrubber(deleter).run_once()

        self.assertEqual((5, 2, 3), (summary.found, summary.scrubbed,
                                     summary.failed))
        self.assertAddsUp(summary)

    def test_a_pass_that_loses_the_coordination_backend(self):
        self.insert(*[pending_image('img%d' % i) for i in range(6)])
        membership = LosingMembership()

        summary = self.make_scrubber(RecordingDeleter(),
                                     membership=membership).run_once()

        self.assertIn('coordination backend is unreachable', summary.aborted)
        self.assertEqual((1, 1), (summary.found, summary.scrubbed))
        self.assertAddsUp(summary)

    def test_a_pass_whose_claims_fail(self):
        images = self.insert(pending_image('a'), pending_image('b'))
        self.useFixture(fixtures.MockPatchObject(
            db_api, 'claim_images',
            side_effect=db_exception.DBConnectionError('went away')))
        deleter = RecordingDeleter()

        summary = self.make_scrubber(deleter).run_once()

        # Failed, not skipped as well: each image is counted once. The
        # first failed claim ends the pass: the second image is not found.
        self.assertEqual((1, 1, 0), (summary.found, summary.failed,
                                     summary.skipped))
        self.assertIn('the database stopped answering', summary.aborted)
        self.assertAddsUp(summary)
        self.assertEqual([], deleter.asked)
        self.assertEqual(['pending_delete'] * 2,
                         [self.status_of(image) for image in images])

    def test_a_pass_that_cannot_record(self):
        self.insert(*[pending_image('img%d' % i) for i in range(3)])
        self.useFixture(fixtures.MockPatchObject(
            db_api, 'record_scrubs',
            side_effect=db_exception.DBConnectionError('went away')))

        summary = self.make_scrubber(RecordingDeleter()).run_once()

        self.assertEqual((3, 3, 0, 0), (
            summary.found, summary.left_claimed, summary.failed,
            summary.locations_deleted))
        self.assertAddsUp(summary)

    def test_a_pass_left_behind_by_a_database_that_stopped_answering(self):
        images = self.insert(*[pending_image('img%d' % i)
                               for i in range(6)])
        the_scrubber = None
        frozen = threading.Event()

        def record_scrubs(context, records):
            the_scrubber.stop('SIGTERM')
            frozen.wait()
            return {}

        def thaw():
            frozen.set()
            for thread in threading.enumerate():
                if thread.name == 'scrub-pass':
                    thread.join(10)

        self.useFixture(fixtures.MockPatchObject(
            db_api, 'record_scrubs', side_effect=record_scrubs))
        # The watcher gives up as soon as it sees the stop.
        self.useFixture(fixtures.MockPatchObject(
            pass_watch, 'run_watched', functools.partial(
                pass_watch.run_watched, grace=0.0,
                call_under_way=lambda: ('record_scrubs', 1.0))))
        self.addCleanup(thaw)
        the_scrubber = self.make_scrubber(RecordingDeleter(),
                                          report_interval=0.05)

        summary = the_scrubber.run_once()

        self.assertTrue(the_scrubber.last_pass_left_behind)
        self.assertEqual('stopped while the database was not answering',
                         summary.aborted)
        self.assertEqual(summary.found, counted(summary))
        self.assertEqual(summary.found, summary.left_claimed)
        self.assertGreaterEqual(summary.found, 1)
        self.assertIn('Scrub pass summary: %s' % summary.describe(),
                      self.logs.output)
        self.assertEqual(summary.found, [self.status_of(image)
                                         for image in images].count(
                                             'deleted'))


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
        summary = scrubber.Summary(found=8, scrubbed=4, failed=1, skipped=1,
                                   in_use=1, locations_deleted=6,
                                   bytes_reclaimed=4096, seconds=2.0,
                                   throttled=3, concurrency=5,
                                   left_claimed=1, given_back=2)

        self.assertEqual(
            'found=8 scrubbed=4 failed=1 skipped=1 in_use=1 '
            'locations_deleted=6 bytes_reclaimed=4096 seconds=2.00 '
            'images_per_second=2.0 throttled=3 concurrency=5 '
            'left_claimed=1 claimed_elsewhere=0 given_back=2',
            summary.describe())
        self.assertEqual(0.0, scrubber.Summary().images_per_second)

    def test_each_result_is_counted_once(self):
        summary = scrubber.Summary()
        claim = claim_of('img')
        for result in scrubber.Result:
            summary.add(scrubber.Outcome(
                claim, result, deletions=[(1, Deletion.DELETED)],
                bytes_reclaimed=10))

        self.assertEqual((1, 1, 0, 1, 1, 1, 5, 50), (
            summary.scrubbed, summary.failed, summary.skipped,
            summary.in_use, summary.left_claimed, summary.given_back,
            summary.locations_deleted, summary.bytes_reclaimed))
        self.assertEqual(len(scrubber.Result), summary.accounted)

    def test_the_log_fields_keep_their_names_and_order(self):
        names = list(scrubber.Summary().fields())

        # Log pipelines and scripts read these: new counts are appended.
        self.assertEqual(
            ['found', 'scrubbed', 'failed', 'skipped', 'in_use',
             'locations_deleted', 'bytes_reclaimed', 'seconds', 'throttled',
             'concurrency', 'aborted', 'left_claimed'],
            names[:12])
        self.assertIn('images_per_second', names)

    def test_the_metrics_count_every_result_of_the_summary(self):
        self.assertEqual(scrubber.Summary.OUTCOME_COUNTS, metrics.RESULTS)

    def test_a_pass_left_behind_leaves_what_it_had_not_counted_claimed(self):
        running = scrubber.Summary(found=10, scrubbed=4, failed=1,
                                   skipped=1)

        left = running.left_behind()

        self.assertEqual((4, 10), (left.left_claimed, left.accounted))
        # The pass left behind may still count in its own.
        self.assertEqual(0, running.left_claimed)


class HookedDeleter(store_deleter.StoreDeleter):
    """The real StoreDeleter, with a hook run before each delete.

    :ivar answers: (image id, URL, Deletion) of each delete, in order.
    """

    before_delete = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.answers = []
        self._lock = threading.Lock()

    def delete(self, image_id, location):
        if self.before_delete:
            self.before_delete(image_id, location)
        deletion = super().delete(image_id, location)
        with self._lock:
            self.answers.append((image_id, location.url, deletion))
        return deletion


class TestRealFileStore(ScrubberTestCase):
    """A pass through the real StoreDeleter and glance_store's file store."""

    def setUp(self):
        super().setUp()
        conf = self.useFixture(config_fixture.Config(cfg.CONF)).conf
        self.datadir = self.useFixture(fixtures.TempDir()).path
        glance_store.register_opts(conf)
        conf.set_override('stores', ['file'], group='glance_store')
        conf.set_override('default_store', 'file', group='glance_store')
        conf.set_override('filesystem_store_datadir', self.datadir,
                          group='glance_store')
        glance_store.create_stores(conf)
        self.deleter = HookedDeleter(
            self.context, datadirs=layout.FileDatadirs([self.datadir]),
            data_users=data_users.DataUsers(urls.LocationUrls()))

    def put(self, name, folder=None):
        path = os.path.join(folder or self.datadir, name)
        with open(path, 'wb') as data:
            data.write(b'image data')
        return 'file://' + path

    def test_data_another_live_image_uses_is_kept(self):
        url = self.put('shared')
        live = seed.Image([seed.Location(url, status='active')],
                          status='active', deleted=False)
        scrubbed = seed.Image([seed.Location(url)])
        self.insert(live, scrubbed)

        summary = self.make_scrubber(self.deleter).run_once()

        self.assertTrue(os.path.exists(url[len('file://'):]))
        self.assertEqual('deleted', self.status_of(scrubbed))
        self.assertEqual(['deleted'], self.location_statuses(scrubbed))
        self.assertEqual((1, 0), (summary.scrubbed, summary.bytes_reclaimed))

    def test_data_a_live_image_let_go_since_the_last_pass_is_deleted(self):
        url = self.put('shared')
        live, _first = self.insert(
            seed.Image([seed.Location(url, status='active')],
                       status='active', deleted=False),
            seed.Image([seed.Location(self.put('first'))]))
        the_scrubber = self.make_scrubber(self.deleter)
        self.assertEqual(1, the_scrubber.run_once().scrubbed)
        # Between two passes of the daemon, the location is removed from
        # the live image, and an image using the same data is deleted.
        with self.db.engine.begin() as connection:
            connection.execute(seed.LOCATIONS.update()
                               .where(seed.LOCATIONS.c.image_id == live.id)
                               .values(status='deleted', deleted=True))
        other = self.insert(seed.Image([seed.Location(url)]))[0]

        summary = the_scrubber.run_once()

        self.assertFalse(os.path.exists(url[len('file://'):]))
        self.assertEqual((1, 1024), (summary.scrubbed,
                                     summary.bytes_reclaimed))
        self.assertEqual(['deleted'], self.location_statuses(other))

    def test_data_of_the_image_alone_is_deleted(self):
        url = self.put('own')
        image = self.insert(seed.Image([seed.Location(url)]))[0]

        summary = self.make_scrubber(self.deleter).run_once()

        self.assertFalse(os.path.exists(url[len('file://'):]))
        self.assertEqual('deleted', self.status_of(image))
        self.assertEqual(1024, summary.bytes_reclaimed)

    def test_a_file_outside_the_datadir_is_never_deleted(self):
        elsewhere = self.useFixture(fixtures.TempDir()).path
        url = self.put('not-glances', folder=elsewhere)
        image = self.insert(seed.Image([seed.Location(url)]))[0]

        summary = self.make_scrubber(self.deleter).run_once()

        self.assertTrue(os.path.exists(url[len('file://'):]))
        self.assertEqual(1, summary.failed)
        self.assertEqual('pending_delete', self.status_of(image))
        self.assertIn('is outside every filesystem_store_datadir',
                      self.logs.output)

    def test_shared_data_of_an_image_restored_mid_pass_is_kept(self):
        # Restored on another host during the pass, its location keeps its
        # id: no refresh reads it again, but as a pending_delete image it
        # was a user of the data from the start.
        url = self.put('shared')
        # Young: not scrubbed by this pass, restored during it.
        restored = seed.Image([seed.Location(url)], id=ordered_id(90),
                              deleted_seconds_ago=5)
        fillers = [seed.Image([seed.Location(self.put('filler%d' % i))],
                              id=ordered_id(i)) for i in (1, 2)]
        # A pool of one claims the two fillers first, this one after the
        # restore.
        scrubbed = seed.Image([seed.Location(url)], id=ordered_id(3))
        self.insert(restored, *fillers, scrubbed)

        def restore_on_another_host(image_id, location):
            if image_id == fillers[0].id:
                scrubber.restore(self.context, restored.id,
                                 self.other_host_lock_path, self.deleter)

        self.deleter.before_delete = restore_on_another_host
        self.make_scrubber(self.deleter, scrub_time=60).run_once()

        self.assertEqual('active', self.status_of(restored))
        self.assertTrue(os.path.exists(url[len('file://'):]),
                        'the data of the restored, active image was deleted')

    def shared_file_images(self, url, *images):
        """Insert *images* (seed.Image kwargs), each with a location of url."""
        return self.insert(*[seed.Image([seed.Location(url)], **kwargs)
                             for kwargs in images])

    def assert_shared_file_deleted_once(self, pool_size):
        url = self.put('shared')
        first, second = self.shared_file_images(url, {}, {})

        summary = self.make_scrubber(self.deleter,
                                     pool_size=pool_size).run_once()

        self.assertFalse(os.path.exists(url[len('file://'):]))
        answers = [deletion for _image, answered_url, deletion
                   in self.deleter.answers if answered_url == url]
        self.assertEqual(1, answers.count(Deletion.DELETED), answers)
        for image in (first, second):
            self.assertEqual('deleted', self.status_of(image))
            self.assertEqual(['deleted'], self.location_statuses(image))
        self.assertEqual((2, 0, 1024, None), (
            summary.scrubbed, summary.failed, summary.bytes_reclaimed,
            summary.aborted))

    def test_a_file_two_eligible_images_share_is_deleted_once(self):
        # A pool of one claims them one after the other: the first is
        # kept for the second, which deletes the file.
        self.assert_shared_file_deleted_once(pool_size=1)

    def test_a_file_two_images_claimed_together_share_is_deleted_once(self):
        # A pool of two claims both in its first batch: neither keeps the
        # file for the other, and it is deleted once.
        self.assert_shared_file_deleted_once(pool_size=2)

    def test_a_file_a_young_image_shares_is_kept_for_its_restore(self):
        url = self.put('shared')
        young, eligible = self.shared_file_images(
            url, {'deleted_seconds_ago': 5}, {})

        summary = self.make_scrubber(self.deleter, scrub_time=60).run_once()

        self.assertTrue(os.path.exists(url[len('file://'):]))
        self.assertEqual([(eligible.id, url, Deletion.SHARED)],
                         self.deleter.answers)
        self.assertEqual('deleted', self.status_of(eligible))
        self.assertEqual(['deleted'], self.location_statuses(eligible))
        self.assertEqual((1, 0), (summary.scrubbed, summary.bytes_reclaimed))
        self.assertEqual('pending_delete', self.status_of(young))

        restored = scrubber.restore(self.context, young.id, self.lock_path,
                                    self.deleter)

        self.assertEqual((1, 0), (restored.locations,
                                  restored.locations_gone))
        self.assertEqual('active', self.status_of(young))
        self.assertEqual(['active'], self.location_statuses(young))
        with open(url[len('file://'):], 'rb') as data:
            self.assertEqual(b'image data', data.read())

    def test_a_file_a_young_image_shares_goes_with_it_later(self):
        # Once the young image is eligible too, the next pass deletes the
        # file: nothing else needs it.
        url = self.put('shared')
        young, eligible = self.shared_file_images(
            url, {'deleted_seconds_ago': 5}, {})
        self.make_scrubber(self.deleter, scrub_time=60).run_once()

        summary = self.make_scrubber(self.deleter, scrub_time=0).run_once()

        self.assertFalse(os.path.exists(url[len('file://'):]))
        self.assertEqual((1, 1024), (summary.scrubbed,
                                     summary.bytes_reclaimed))
        self.assertEqual(['deleted', 'deleted'],
                         [self.status_of(image)
                          for image in (young, eligible)])

    def test_images_sharing_a_file_do_not_look_like_a_wrong_store(self):
        url = self.put('shared')
        sharing = self.shared_file_images(url, {}, {}, {}, {})
        own = self.insert(seed.Image([seed.Location(self.put('own'))]))[0]

        summary = self.make_scrubber(self.deleter, pool_size=5).run_once()

        self.assertIsNone(summary.aborted)
        self.assertEqual(['deleted'] * 5,
                         [self.status_of(image) for image in sharing + [own]])
