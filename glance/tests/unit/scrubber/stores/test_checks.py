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

The start-up checks of the configured stores, and NotFoundGuard, which
watches the first deletes of a pass (fed with the worker's Outcomes).
"""

import os

import fixtures
import glance_store
from oslo_config import cfg
import testtools

from glance.cmd import scrubber as cmd
from glance.common import exception
from glance.db.sqlalchemy import api as db_api
from glance import scrubber
from glance.scrubber import recorder
from glance.scrubber.stores import checks as store_checks
from glance.scrubber.stores import deleter as store_deleter
from glance.scrubber.stores import errors
from glance.scrubber.stores import layout

Deletion = store_deleter.Deletion
DELETED = Deletion.DELETED
GONE = Deletion.ALREADY_GONE


# --- start-up checks --------------------------------------------------------


def check_datadirs_of(conf):
    return store_checks.check_datadirs(conf,
                                       layout.StoreLayout.from_config(conf))


class TestCheckDatadirs(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path

    def conf(self, backends=None, **datadirs):
        """Single store datadir(s), or a datadir per file backend."""
        conf = cfg.ConfigOpts()
        cmd.register_opts(conf)
        conf([], project='glance')
        if backends:
            conf.set_override('enabled_backends', backends)
            glance_store.register_store_opts(conf)
            for group, datadir in datadirs.items():
                conf.set_override('filesystem_store_datadir', datadir,
                                  group=group)
        else:
            glance_store.register_opts(conf)
            conf.set_override('stores', ['file'], group='glance_store')
            conf.set_override('filesystem_store_datadir',
                              datadirs['glance_store'], group='glance_store')
        return conf

    def test_an_existing_datadir_is_accepted(self):
        conf = self.conf(glance_store=self.root)

        self.assertIsNone(check_datadirs_of(conf))

    def test_a_missing_datadir_is_refused_and_not_created(self):
        missing = os.path.join(self.root, 'unmounted')

        error = self.assertRaises(exception.InvalidConfiguration,
                                  check_datadirs_of,
                                  self.conf(glance_store=missing))

        self.assertIn('filesystem_store_datadir %s does not exist' % missing,
                      str(error))
        self.assertFalse(os.path.exists(missing))

    def test_a_file_in_place_of_the_datadir_is_refused(self):
        not_a_dir = os.path.join(self.root, 'file')
        open(not_a_dir, 'w').close()

        self.assertRaises(exception.InvalidConfiguration,
                          check_datadirs_of,
                          self.conf(glance_store=not_a_dir))

    def test_datadirs_with_a_spaced_or_empty_priority_are_accepted(self):
        # glance-api accepts them: the path is what comes before the last
        # colon, stripped.
        fast = os.path.join(self.root, 'fast')
        slow = os.path.join(self.root, 'slow')
        os.mkdir(fast)
        os.mkdir(slow)
        conf = self.conf(glance_store=None)
        conf.set_override('filesystem_store_datadirs',
                          ['%s: 200' % fast, '%s:' % slow],
                          group='glance_store')

        self.assertIsNone(check_datadirs_of(conf))

    def test_every_file_backend_must_have_its_datadir(self):
        missing = os.path.join(self.root, 'cheap')
        conf = self.conf({'fast': 'file', 'cheap': 'file', 'web': 'http'},
                         fast=self.root, cheap=missing)

        error = self.assertRaises(exception.InvalidConfiguration,
                                  check_datadirs_of, conf)

        self.assertIn(missing, str(error))

    def test_start_up_refuses_a_missing_datadir_before_the_stores_load(self):
        # glance_store's file store would create it, empty.
        missing = os.path.join(self.root, 'unmounted')

        self.assertRaises(exception.InvalidConfiguration, cmd.setup_stores,
                          self.conf(glance_store=missing), 0)
        self.assertFalse(os.path.exists(missing))


class TestCheckStores(testtools.TestCase):

    class S3Stores:
        def __init__(self, problems):
            self.problems = problems

        def missing_buckets(self, sender=None):
            return self.problems

    def conf(self):
        conf = cfg.ConfigOpts()
        cmd.register_opts(conf)
        glance_store.register_opts(conf)
        conf([], project='glance')
        conf.set_override('stores', ['file'], group='glance_store')
        return conf

    def test_a_missing_bucket_is_refused(self):
        error = self.assertRaises(
            exception.InvalidConfiguration, store_checks.check_stores,
            layout.StoreLayout.from_config(self.conf()),
            self.S3Stores(['S3 bucket images does not exist']))

        self.assertIn('S3 bucket images does not exist', str(error))

    def test_a_store_out_of_reach_is_unavailable_not_misconfigured(self):
        class SilentS3(self.S3Stores):
            def missing_buckets(self, sender=None):
                outage = errors.StoreTimeout('no answer within 5 seconds')
                outage.store = 's3'
                raise outage

        error = self.assertRaises(
            exception.StoreUnavailable, store_checks.check_stores,
            layout.StoreLayout.from_config(self.conf()), SilentS3([]))

        self.assertIn('store s3: no answer within 5 seconds', str(error))

    def test_stores_without_buckets_or_pools_pass(self):
        self.assertIsNone(store_checks.check_stores(
            layout.StoreLayout.from_config(self.conf()), self.S3Stores([])))


# --- NotFoundGuard ----------------------------------------------------------


def outcome(*deletions, retaken=False, result=scrubber.Result.SCRUBBED):
    """An Outcome whose locations (ids 1, 2, ...) ended as *deletions*."""
    claim = db_api.Claim('image', 1024, db_api.claim_token(),
                         (), retaken)
    return scrubber.Outcome(claim, result, deletions=[
        (location_id, deletion)
        for location_id, deletion in enumerate(deletions, start=1)])


def found(count):
    return [outcome(DELETED) for _ in range(count)]


def missing(count):
    return [outcome(GONE) for _ in range(count)]


def admit_all(guard, outcomes):
    """The outcomes the guard lets through, in order."""
    admitted = []
    for one in outcomes:
        admitted += guard.admit(one)
    return admitted


class TestNotFoundGuard(testtools.TestCase):

    def test_an_outcome_that_found_its_data_is_recorded_at_once(self):
        guard = recorder.NotFoundGuard(0.5)
        one = outcome(DELETED, DELETED)

        self.assertEqual([one], guard.admit(one))

    def test_missing_data_is_held_until_the_sample_cannot_trip(self):
        guard = recorder.NotFoundGuard(0.5)
        held = outcome(GONE)

        self.assertEqual([], guard.admit(held))
        # 1 missing of 10 seen: ten more missing would still trip it.
        nine = found(9)
        self.assertEqual(nine, admit_all(guard, nine))
        # 11 seen, 1 missing: the other 9 missing too would make 10 of
        # 20, not more than half.
        last = outcome(DELETED)
        self.assertEqual([last, held], guard.admit(last))
        self.assertFalse(guard.tripped)
        self.assertEqual(scrubber.Result.SCRUBBED, held.result)
        self.assertEqual([(1, GONE)], held.deletions)

    def test_trips_once_more_than_the_ratio_of_the_sample_found_nothing(
            self):
        guard = recorder.NotFoundGuard(0.5)
        first_ten = missing(10)

        self.assertEqual([], admit_all(guard, first_ten))
        self.assertFalse(guard.tripped)
        eleventh = outcome(GONE)
        released = guard.admit(eleventh)

        self.assertTrue(guard.tripped)
        self.assertEqual(first_ten + [eleventh], released)
        for withheld in released:
            self.assertEqual(scrubber.Result.FAILED, withheld.result)
            self.assertEqual([], withheld.deletions)
            self.assertIn('the store had no data for 1 of its locations',
                          withheld.reason)

    def test_withheld_outcomes_keep_what_the_store_did_delete(self):
        guard = recorder.NotFoundGuard(0.0)

        mixed = guard.admit(outcome(DELETED, GONE, Deletion.SHARED))[0]

        self.assertTrue(guard.tripped)
        self.assertEqual(scrubber.Result.FAILED, mixed.result)
        self.assertEqual([(1, DELETED), (3, Deletion.SHARED)],
                         mixed.deletions)

    def test_after_tripping_only_outcomes_with_missing_data_are_withheld(
            self):
        guard = recorder.NotFoundGuard(0.0)
        guard.admit(outcome(GONE))
        whole = outcome(DELETED)
        failed = outcome(DELETED, result=scrubber.Result.IN_USE)

        self.assertEqual([whole], guard.admit(whole))
        self.assertEqual(scrubber.Result.SCRUBBED, whole.result)
        self.assertEqual([failed], guard.admit(failed))
        self.assertEqual(scrubber.Result.IN_USE, failed.result)
        later = guard.admit(outcome(GONE))[0]
        self.assertEqual(scrubber.Result.FAILED, later.result)
        self.assertEqual([], guard.release())

    def test_only_the_first_twenty_deletes_are_the_sample(self):
        guard = recorder.NotFoundGuard(0.5)
        admit_all(guard, found(20))

        late = missing(20)

        self.assertEqual(late, admit_all(guard, late))
        self.assertFalse(guard.tripped)
        self.assertIsNone(guard.verdict())

    def test_data_kept_or_let_go_is_not_in_the_sample(self):
        guard = recorder.NotFoundGuard(0.5)
        admit_all(guard, [outcome(Deletion.SHARED, Deletion.NOT_OWNED)
                          for _ in range(20)])

        admit_all(guard, missing(11))

        self.assertTrue(guard.tripped)

    def test_retaken_images_are_neither_counted_nor_held(self):
        guard = recorder.NotFoundGuard(0.0)
        retaken = [outcome(GONE, retaken=True) for _ in range(20)]

        self.assertEqual(retaken, admit_all(guard, retaken))
        self.assertFalse(guard.tripped)
        self.assertEqual([scrubber.Result.SCRUBBED] * 20,
                         [one.result for one in retaken])
        # The sample is still empty: the first missing data trips it.
        guard.admit(outcome(GONE))
        self.assertTrue(guard.tripped)

    def test_a_pass_of_fewer_deletes_than_the_smallest_sample_is_released(
            self):
        # Four deletes are too few to judge, even if all found nothing:
        # at the end of the pass what they found is recorded as it is.
        guard = recorder.NotFoundGuard(0.5)
        held = missing(recorder.NotFoundGuard.SMALLEST_SAMPLE - 1)

        self.assertEqual([], admit_all(guard, held))
        self.assertEqual(held, guard.release())
        self.assertFalse(guard.tripped)
        self.assertIsNone(guard.verdict())
        self.assertEqual([scrubber.Result.SCRUBBED] * 4,
                         [one.result for one in held])
        self.assertEqual([[(1, GONE)]] * 4,
                         [one.deletions for one in held])

    def test_a_small_pass_mostly_finding_nothing_trips_at_its_end(self):
        # 3 of 5 is more than half: the pass is judged on its 5 deletes.
        guard = recorder.NotFoundGuard(0.5)
        whole = found(2)
        held = missing(3)

        self.assertEqual(whole, admit_all(guard, whole))
        self.assertEqual([], admit_all(guard, held))
        self.assertFalse(guard.tripped)
        released = guard.release()

        self.assertTrue(guard.tripped)
        self.assertEqual(held, released)
        for withheld in released:
            self.assertEqual(scrubber.Result.FAILED, withheld.result)
            self.assertEqual([], withheld.deletions)
            self.assertIn('the store had no data for 1 of its locations',
                          withheld.reason)
        self.assertEqual([scrubber.Result.SCRUBBED] * 2,
                         [one.result for one in whole])
        self.assertIn('3 of the first 5 deletes found no data',
                      guard.verdict())

    def test_a_small_pass_finding_most_of_its_data_is_released(self):
        # 2 of 5 is not more than half.
        guard = recorder.NotFoundGuard(0.5)
        held = missing(2)
        whole = found(3)

        self.assertEqual(whole, admit_all(guard, held + whole))
        self.assertEqual(held, guard.release())
        self.assertFalse(guard.tripped)
        self.assertIsNone(guard.verdict())
        self.assertEqual([scrubber.Result.SCRUBBED] * 2,
                         [one.result for one in held])
        self.assertEqual([[(1, GONE)]] * 2, [one.deletions for one in held])

    def test_a_small_pass_at_exactly_the_ratio_is_released(self):
        # 2 of 5 at a ratio of 0.4: more than the ratio trips, not as many.
        guard = recorder.NotFoundGuard(0.4)
        held = missing(2)
        admit_all(guard, held + found(3))

        self.assertEqual(held, guard.release())
        self.assertFalse(guard.tripped)

    def test_a_small_pass_counts_deletes_not_images(self):
        # One image whose five locations all found nothing: five deletes.
        guard = recorder.NotFoundGuard(0.5)
        held = outcome(GONE, GONE, GONE, GONE, GONE)

        self.assertEqual([], guard.admit(held))
        self.assertEqual([held], guard.release())
        self.assertTrue(guard.tripped)
        self.assertEqual(scrubber.Result.FAILED, held.result)

    def test_data_kept_or_let_go_does_not_make_a_small_pass_judged(self):
        # Shared or not-owned locations are no deletes: 4 deletes, too
        # few to judge, however many locations were handled.
        guard = recorder.NotFoundGuard(0.5)
        held = missing(4)
        untouched = [outcome(Deletion.SHARED, Deletion.NOT_OWNED)
                     for _ in range(5)]

        admit_all(guard, untouched + held)

        self.assertEqual(held, guard.release())
        self.assertFalse(guard.tripped)

    def test_ratio_one_never_trips_nor_holds(self):
        guard = recorder.NotFoundGuard(1.0)
        gone = missing(20)

        self.assertEqual(gone, admit_all(guard, gone))
        self.assertFalse(guard.tripped)

    def test_ratio_zero_trips_on_the_first_missing_data(self):
        guard = recorder.NotFoundGuard(0.0)
        admit_all(guard, found(19))

        guard.admit(outcome(GONE))

        self.assertTrue(guard.tripped)

    def test_verdict_tells_how_many_deletes_found_nothing(self):
        guard = recorder.NotFoundGuard(0.5)
        admit_all(guard, found(2) + missing(11))

        self.assertIn('11 of the first 13 deletes found no data in the '
                      'store', guard.verdict())
        self.assertIn('scrub_not_found_ratio', guard.verdict())
