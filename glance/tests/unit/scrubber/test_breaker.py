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

"""The breaker: a pass whose store stops answering stops, and gives back."""

import fixtures
import testtools

from glance import scrubber
from glance.scrubber import breaker
from glance.scrubber.stores import errors
from glance.scrubber.stores import sending
from glance.tests.unit.scrubber.base import claim_of
from glance.tests.unit.scrubber.base import ordered_id
from glance.tests.unit.scrubber.base import pending_image
from glance.tests.unit.scrubber.base import RecordingDeleter
from glance.tests.unit.scrubber.base import ScrubberTestCase
from glance.tests.unit.scrubber.base import store_location
from glance.tests.unit.scrubber.base import urls_of

SILENT = errors.StoreTimeout('no answer within 3 seconds')


class TestStoreBreaker(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.outages = sending.StoreOutages()
        self.breaker = breaker.StoreBreaker(self.outages, trip_after=3)

    def test_trips_once_a_store_leaves_calls_in_a_row_unanswered(self):
        for _call in range(2):
            self.outages.note('s3', SILENT)
        self.assertFalse(self.breaker.tripped)
        self.assertIsNone(self.breaker.verdict())

        self.outages.note('s3', SILENT)

        self.assertTrue(self.breaker.tripped)
        self.assertIn('the store s3 stopped answering (3 calls in a row; '
                      'the last: no answer within 3 seconds)',
                      self.breaker.verdict())
        self.assertIn('the store s3 stopped answering',
                      self.breaker.reason_not_attempted())

    def test_an_answered_call_starts_the_count_again(self):
        for outage in (SILENT, SILENT, None, SILENT, SILENT):
            self.outages.note('s3', outage)

        self.assertFalse(self.breaker.tripped)

    def test_each_store_is_counted_apart(self):
        for _call in range(3):
            self.outages.note('fast', None)
            self.outages.note('cheap', errors.StoreUnavailable('refused'))

        self.assertTrue(self.breaker.tripped)
        self.assertIn('the store cheap', self.breaker.verdict())

    def test_once_tripped_it_stays_tripped_for_the_pass(self):
        for _call in range(3):
            self.outages.note('s3', SILENT)
        self.assertTrue(self.breaker.tripped)

        self.outages.note('s3', None)

        self.assertTrue(self.breaker.tripped)


class TestWorkerOnceTripped(testtools.TestCase):

    def test_gives_its_image_back_without_asking_the_store(self):
        deleter = RecordingDeleter()
        tripped = breaker.StoreBreaker(deleter.outages, trip_after=1)
        deleter.outages.note('s3', SILENT)

        outcome = scrubber.Worker(deleter)(
            claim_of('img', [store_location('file:///l1')]), tripped)

        self.assertEqual(scrubber.Result.GIVEN_BACK, outcome.result)
        self.assertIn('the store s3 stopped answering', outcome.reason)
        self.assertEqual([], deleter.asked)
        self.assertEqual([], outcome.deletions)


class TestPassOnASilentStore(ScrubberTestCase):

    IMAGES = 40
    ANSWERED = 6
    POOL = 2

    def setUp(self):
        super().setUp()
        # Claims of 10 images from the first answers on: the breaker trips
        # with images claimed that no worker has taken up yet.
        self.useFixture(fixtures.MockPatchObject(scrubber.Scrubber,
                                                 'CLAIM_AHEAD', 1000.0))
        self.useFixture(fixtures.MockPatchObject(scrubber.Scrubber,
                                                 'MAX_CLAIM', 10))

    def run_silent_pass(self):
        images = self.insert(*[pending_image('img%d' % i, id=ordered_id(i))
                               for i in range(self.IMAGES)])
        silent = {url for image in images[self.ANSWERED:]
                  for url in urls_of(image)}
        deleter = RecordingDeleter(silent_urls=silent, delay=0.01)
        summary = self.make_scrubber(deleter,
                                     pool_size=self.POOL).run_once()
        return images, deleter, summary

    def test_the_pass_stops_taking_images_and_gives_back_the_untouched(self):
        images, deleter, summary = self.run_silent_pass()

        self.assertIn('the store fake stopped answering', summary.aborted)
        self.assertLess(summary.found, self.IMAGES)
        silent_calls = len(deleter.asked) - self.ANSWERED
        # The third unanswered call trips it; the other worker may be in
        # a call of its own then.
        self.assertLessEqual(silent_calls,
                             breaker.StoreBreaker.TRIP_AFTER + self.POOL - 1)
        self.assertEqual(
            (self.ANSWERED, 0, silent_calls,
             summary.found - self.ANSWERED - silent_calls),
            (summary.scrubbed, summary.failed, summary.left_claimed,
             summary.given_back))
        self.assertGreater(summary.given_back, 0)
        self.assertIn('given_back=%d' % summary.given_back,
                      summary.describe())

    def test_images_given_back_are_pending_delete_and_restorable(self):
        images, deleter, summary = self.run_silent_pass()
        asked = set(deleter.asked)
        claimed = images[:summary.found]
        abandoned = [image for image in claimed[self.ANSWERED:]
                     if urls_of(image)[0] in asked]
        given_back = [image for image in claimed[self.ANSWERED:]
                      if urls_of(image)[0] not in asked]

        self.assertEqual(summary.given_back, len(given_back))
        for image in given_back:
            self.assertEqual('pending_delete', self.status_of(image))
            self.assertEqual(['pending_delete'],
                             self.location_statuses(image))
            self.assertIn('Image %s given back' % image.id,
                          self.logs.output)
        # An abandoned call may still delete the data: left claimed.
        for image in abandoned:
            self.assertEqual('deleted', self.status_of(image))
        restored = scrubber.restore(self.context, given_back[0].id,
                                    self.lock_path, RecordingDeleter())
        self.assertEqual(1, restored.locations)

    def test_a_store_that_answers_again_is_scrubbed_by_the_next_pass(self):
        images, deleter, _summary = self.run_silent_pass()
        deleter.silent_urls.clear()

        summary = self.make_scrubber(deleter, pool_size=self.POOL).run_once()

        self.assertIsNone(summary.aborted)
        self.assertEqual(0, summary.given_back)
