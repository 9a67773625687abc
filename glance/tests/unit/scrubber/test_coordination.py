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

"""The membership of several scrubbers, on tooz's real file driver.

The functional tests (test_several_scrubbers) run real processes on Redis
and etcd; these pin the rules: who proposes which image, which abandoned
claims may be taken over, when the backend counts as lost.
"""

import datetime
import socket
import time

import fixtures
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_utils import timeutils
import testtools

from glance.common import exception
from glance.db.sqlalchemy import api as db_api
from glance import scrubber
from glance.scrubber import coordination
from glance.tests import coordination_servers
from glance.tests import seed
from glance.tests.unit.scrubber import base

IMAGE_IDS = ['00000000-0000-0000-0000-%012d' % n for n in range(200)]
CLAIM_TIMEOUT = 600


def candidate(image_id, claimed_at=None):
    if claimed_at is None:
        return db_api.Candidate(image_id)
    return db_api.Candidate(image_id, retaken=True, claimed_at=claimed_at)


def file_backend(test):
    """tooz's file driver in a folder of the test's: no capabilities."""
    return 'file://%s' % test.useFixture(fixtures.TempDir()).path


def redis_backend(test):
    """The machine's Redis (a group of the test's own): capabilities."""
    return coordination_servers.shared_redis_url()


class MembersTestCase(testtools.TestCase):
    """Members of one group of the test's own."""

    backend = staticmethod(file_backend)

    def setUp(self):
        super().setUp()
        self.url = self.backend(self)
        self.group = coordination_servers.unique_group()

    def member(self):
        member = coordination.Member.from_url(self.url, self.group,
                                              CLAIM_TIMEOUT)
        self.addCleanup(member.leave)
        member.join()
        return member

    def proposed(self, member, candidates):
        return {c.id for c in candidates if member.proposes(c)}

    @staticmethod
    def read_group(*members):
        # What the watcher does about once a second.
        for member in members:
            member._read_group()


class TestAlone(testtools.TestCase):

    def test_proposes_every_image_and_takes_over_after_the_claim_timeout(
            self):
        alone = coordination.Alone(claim_timeout=600)
        now = timeutils.utcnow()

        assert all(alone.proposes(candidate(image_id))
                   for image_id in IMAGE_IDS)
        self.assertEqual(now - datetime.timedelta(seconds=600),
                         alone.takeover_cutoff(now))
        self.assertIsNone(alone.lost)
        self.assertEqual('scrub_claim_timeout (600 s) after the claim',
                         alone.takeover_rule())


class TestSharing(MembersTestCase):

    def test_members_split_the_images_between_them(self):
        first, second = self.member(), self.member()
        self.read_group(first, second)
        candidates = [candidate(image_id) for image_id in IMAGE_IDS]

        mine = self.proposed(first, candidates)
        theirs = self.proposed(second, candidates)

        self.assertEqual(set(), mine & theirs)
        self.assertEqual(set(IMAGE_IDS), mine | theirs)
        # A hash ring, not all-or-nothing.
        self.assertGreater(len(mine), 40)
        self.assertGreater(len(theirs), 40)

    def test_a_member_that_leaves_gives_its_share_to_the_others(self):
        first, second = self.member(), self.member()
        self.read_group(first, second)
        candidates = [candidate(image_id) for image_id in IMAGE_IDS]
        self.assertNotEqual(set(IMAGE_IDS), self.proposed(first, candidates))

        second.leave()
        self.read_group(first)

        self.assertEqual(set(IMAGE_IDS), self.proposed(first, candidates))

    def test_a_member_that_joins_takes_its_share(self):
        first = self.member()
        candidates = [candidate(image_id) for image_id in IMAGE_IDS]
        self.assertEqual(set(IMAGE_IDS), self.proposed(first, candidates))

        second = self.member()
        self.read_group(first)

        self.assertEqual(set(IMAGE_IDS) - self.proposed(second, candidates),
                         self.proposed(first, candidates))


class TestClaimsInFlight(MembersTestCase):

    backend = staticmethod(redis_backend)

    def setUp(self):
        super().setUp()
        self.holder, self.other = self.member(), self.member()
        self.token = db_api.claim_token()
        self.read_group(self.holder, self.other)
        # An abandoned claim stamped with the token, of an image the ring
        # gives to the other member.
        self.claim = next(
            candidate(image_id, claimed_at=self.token)
            for image_id in IMAGE_IDS
            if self.other.proposes(candidate(image_id)))

    def test_a_claim_a_live_member_announces_is_not_taken_over(self):
        self.holder.hold(self.token, 3)
        self.read_group(self.other)

        self.assertFalse(self.other.proposes(self.claim))

    def test_it_is_taken_over_once_every_claim_of_the_token_is_released(
            self):
        self.holder.hold(self.token, 2)
        self.holder.release(self.token)
        self.read_group(self.other)
        self.assertFalse(self.other.proposes(self.claim))

        self.holder.release(self.token)
        self.read_group(self.other)

        self.assertTrue(self.other.proposes(self.claim))

    def test_the_end_of_a_pass_releases_every_claim(self):
        self.holder.hold(self.token, 5)
        self.read_group(self.other)
        self.assertFalse(self.other.proposes(self.claim))

        self.holder.release_all()
        self.read_group(self.other)

        self.assertTrue(self.other.proposes(self.claim))

    def test_claims_of_a_member_that_is_gone_are_taken_over(self):
        self.holder.hold(self.token, 1)
        self.read_group(self.other)
        self.assertFalse(self.other.proposes(self.claim))

        self.holder.leave()
        self.read_group(self.other)

        self.assertTrue(self.other.proposes(self.claim))

    def test_a_claim_is_taken_over_after_a_minute_not_the_claim_timeout(
            self):
        now = timeutils.utcnow()

        # A minute, as doc/source/admin/scrubber.rst says.
        self.assertEqual(now - datetime.timedelta(seconds=60),
                         self.other.takeover_cutoff(now))
        self.assertEqual('60 s after the claim, once no live member of the '
                         'group announces it', self.other.takeover_rule())


class TestBackendWithoutCapabilities(MembersTestCase):

    def test_claims_are_taken_over_after_the_claim_timeout(self):
        member = self.member()
        now = timeutils.utcnow()

        self.assertEqual(now - datetime.timedelta(seconds=CLAIM_TIMEOUT),
                         member.takeover_cutoff(now))
        self.assertIn('scrub_claim_timeout', member.takeover_rule())
        # Nothing announced, so nothing is kept from a takeover: the
        # listing's cutoff is what protects live claims.
        self.assertTrue(member.proposes(candidate(
            IMAGE_IDS[0], claimed_at=db_api.claim_token())))


class TestLosingTheBackend(MembersTestCase):

    def test_a_silent_backend_is_lost_and_nothing_is_proposed(self):
        member = self.member()
        member._silence = 0.0  # as if the membership timeout had passed

        self.assertIn('no answer for', member.lost)
        self.assertFalse(member.proposes(candidate(IMAGE_IDS[0])))
        self.assertRaises(coordination.CoordinationLost, member.hold,
                          db_api.claim_token(), 1)

    def test_an_unreachable_backend_is_refused_in_one_line(self):
        # Nothing listens on port 9 of the loopback (discard).
        member = coordination.Member.from_url(
            'etcd3+http://127.0.0.1:9?timeout=2', self.group, CLAIM_TIMEOUT)
        self.addCleanup(member.leave)

        error = self.assertRaises(coordination.CoordinationLost, member.join)

        self.assertNotIn('\n', str(error))
        self.assertIn('unreachable', str(error))


class TestStarting(MembersTestCase):
    """The first join, at start: bounded, whatever the driver's retries."""

    def starting(self, url, timeout):
        member = coordination.Member.from_url(url, self.group, CLAIM_TIMEOUT)
        self.addCleanup(member.leave)
        started = time.monotonic()
        try:
            member.start(timeout=timeout)
        except coordination.CoordinationUnavailable as error:
            return str(error), time.monotonic() - started
        return member, time.monotonic() - started

    def silent_port(self):
        """A loopback port that accepts connections and never answers."""
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(('127.0.0.1', 0))
        listener.listen(64)
        return listener.getsockname()[1]

    def test_a_live_backend_is_joined_and_watched(self):
        member, _seconds = self.starting(self.url, timeout=10)

        self.assertIsNone(member.lost)
        self.assertIn(member.member_id, member._members)
        self.assertTrue(member._watcher.is_alive())
        member.join()  # a pass's join: already in the group

    def test_a_closed_port_is_refused_at_once(self):
        # tooz's Redis driver retries a refused connection for a minute.
        refusal, seconds = self.starting('redis://127.0.0.1:9', timeout=20)

        self.assertLess(seconds, 5)
        self.assertIn('[coordination] backend_url', refusal)
        self.assertIn('unreachable', refusal)
        self.assertIn('127.0.0.1:9: Connection refused', refusal)
        self.assertNotIn('\n', refusal)

    def test_a_port_that_never_answers_is_refused_after_the_bound(self):
        for scheme in ('redis', 'etcd3+http'):
            url = '%s://127.0.0.1:%d' % (scheme, self.silent_port())

            refusal, seconds = self.starting(url, timeout=1)

            self.assertLess(seconds, 5, url)
            self.assertIn('unreachable', refusal)
            self.assertIn('no answer within 1 seconds', refusal)

    def test_only_a_url_naming_one_server_is_probed_first(self):
        self.assertEqual(('127.0.0.1', 6379),
                         coordination._address('redis://127.0.0.1:6379'))
        self.assertEqual(('::1', 2379),
                         coordination._address('etcd3+http://[::1]:2379'))
        for url in ('file:///var/lib/glance/groups',
                    'redis://127.0.0.1',  # the driver's default port
                    'zookeeper://zk1:2181,zk2:2181',
                    'redis://sentinel1:26379?sentinel=main&'
                    'sentinel_fallback=sentinel2:26379'):
            self.assertIsNone(coordination._address(url), url)


class TestConfiguration(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = self.useFixture(config_fixture.Config(cfg.ConfigOpts()))
        coordination.register_opts(self.conf.conf)

    def test_no_backend_means_alone(self):
        membership = coordination.from_config(self.conf.conf, 600)

        self.assertIsInstance(membership, coordination.Alone)

    def test_an_unknown_backend_is_a_configuration_error(self):
        self.conf.config(group='coordination', backend_url='nosuch://x')

        error = self.assertRaises(exception.InvalidConfiguration,
                                  coordination.from_config,
                                  self.conf.conf, 600)

        self.assertIn('[coordination] backend_url cannot be used',
                      str(error))


class TestPassesOfTwoMembers(base.ScrubberTestCase):
    """Two scrubbers in one group, one database: each claims its share."""

    def setUp(self):
        super().setUp()
        self.url = redis_backend(self)
        self.group = coordination_servers.unique_group()

    def member_scrubber(self, deleter, lock_path):
        member = coordination.Member.from_url(self.url, self.group,
                                              CLAIM_TIMEOUT)
        self.addCleanup(member.leave)
        settings = scrubber.Settings(scrub_pool_size=2, lock_path=lock_path,
                                     scrub_claim_timeout=CLAIM_TIMEOUT)
        return member, scrubber.Scrubber(
            self.context, settings, deleter, deleter.data_users,
            deleter.gate, scrubber.Executors(self.backend),
            membership=member)

    def test_each_image_is_scrubbed_by_one_member_and_none_is_raced(self):
        images = [base.pending_image('img%d' % n)
                  for n in range(40)]
        self.insert(*images)
        first_deleter = base.RecordingDeleter()
        second_deleter = base.RecordingDeleter()
        first, first_scrubber = self.member_scrubber(first_deleter,
                                                     self.lock_path)
        second, second_scrubber = self.member_scrubber(
            second_deleter, self.other_host_lock_path)
        first.join()
        second.join()
        first._read_group()

        first_summary = first_scrubber.run_once()
        second_summary = second_scrubber.run_once()

        self.assertEqual(0, first_summary.skipped + second_summary.skipped)
        self.assertGreater(first_summary.scrubbed, 0)
        self.assertGreater(second_summary.scrubbed, 0)
        self.assertEqual(set(), set(first_deleter.deleted) &
                         set(second_deleter.deleted))
        self.assertEqual(40, first_summary.scrubbed + second_summary.scrubbed)
        self.assertEqual(
            40, seed.count_images(self.db.engine, 'deleted'))
