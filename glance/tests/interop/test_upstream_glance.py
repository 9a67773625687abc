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

"""This tree's glance-scrubber behind released upstream Glance.

Upstream's glance-manage creates the database and upstream's real
glance-api, with delayed_delete on, creates, uploads and deletes images
through its HTTP API, so every row and file the scrubber meets was
written by upstream itself. Then this tree's glance-scrubber restores
images, which upstream must serve again as it did before the delete
(properties, tags, members, data byte for byte), refuses to restore an
image whose data is gone or that a scrub pass claimed, and scrubs the
rest; upstream must treat a claimed image as deleted.

Run with ``tox -e interop`` (builds upstream's virtualenv once), or with
pytest once tools/upstream_glance_venv.py has built it.
"""

import datetime
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import fixtures
from oslo_utils import timeutils
import sqlalchemy as sa
import testtools
from testtools import matchers

from glance.tests import databases
from glance.tests.interop import upstream
from glance.tests import seed

SCRUBBER_TIMEOUT = 120

# The projects a shared image is offered to: one accepts, one does not.
ACCEPTING_MEMBER = 'project-accepting'
PENDING_MEMBER = 'project-pending'

# What GET /v2/images/{id} may show differently after a restore: the time
# of the last change to the image row (upstream's delete had already
# changed it, and the restore writes the row again).
CHANGED_BY_RESTORE = ('updated_at',)

# The rows upstream's delete soft-deletes with an image, and the column
# naming each row within its image.
CHILD_TABLES = (('image_properties', 'name'), ('image_tags', 'value'),
                ('image_members', 'member'))


def scrubber_command():
    """This tree's glance-scrubber: the console script of the test env."""
    beside_python = pathlib.Path(sys.executable).parent / 'glance-scrubber'
    found = (str(beside_python) if beside_python.exists()
             else shutil.which('glance-scrubber'))
    if found is None:
        raise AssertionError('this tree\'s glance-scrubber is not installed '
                             'in the test environment')
    return found


class Uploaded:
    """An image created and uploaded through upstream's API."""

    def __init__(self, image_id, data):
        self.id = image_id
        self.data = data
        self.checksum = upstream.md5(data)


def as_shown(image):
    """An image document, less what a restore may change, for comparing.

    Upstream lists the tags in the database's row order (no ORDER BY):
    PostgreSQL, for one, returns them in another order once their rows
    are written again, so they are compared sorted.
    """
    shown = {name: value for name, value in image.items()
             if name not in CHANGED_BY_RESTORE}
    shown['tags'] = sorted(shown['tags'])
    return shown


def members_as_shown(members):
    """The member documents by member, less their ``updated_at``.

    Upstream's delete stamps the member rows, and the restore writes them
    again: only the time of that last change may differ.
    """
    return {member['member_id']: {name: value
                                  for name, value in member.items()
                                  if name != 'updated_at'}
            for member in members}


class _UpstreamInterop:
    """The scenario; the TestCase subclasses below pick the database."""

    backend = None

    def setUp(self):
        super().setUp()
        python = upstream.upstream_python()
        self.db = self.useFixture(
            databases.Database(self.backend, migrate=False))
        upstream.check_driver(python, self.db.url)
        self.glance_api = self.useFixture(
            upstream.UpstreamGlanceAPI(python, self.db.url))
        self.api = upstream.ApiClient(self.glance_api.url)
        self.scrubber_config = self._write_scrubber_config()

    def _write_scrubber_config(self):
        work = pathlib.Path(self.useFixture(fixtures.TempDir()).path)
        config = work / 'glance-scrubber.conf'
        config.write_text(textwrap.dedent("""\
            [DEFAULT]
            scrub_pool_size = 4
            [database]
            connection = {db}
            [glance_store]
            stores = file
            default_store = file
            filesystem_store_datadir = {datadir}
            [oslo_concurrency]
            lock_path = {work}
            """).format(db=self.db.url, datadir=self.glance_api.datadir,
                        work=work))
        return config

    def run_scrubber(self, *args):
        """Run glance-scrubber to its end; stdout and stderr apart."""
        return subprocess.run(
            [scrubber_command(), '--config-file', str(self.scrubber_config),
             *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL, timeout=SCRUBBER_TIMEOUT)

    def scrubber(self, *args):
        """Run glance-scrubber, which must succeed; return its output."""
        result = self.run_scrubber(*args)
        output = result.stdout + result.stderr
        self.assertEqual(0, result.returncode,
                         'glance-scrubber %s failed:\n%s' % (
                             ' '.join(args), output[-4000:]))
        return output

    def assert_refused(self, result, *words):
        """Exit 2, one ``glance-scrubber:`` line naming *words*, no trace.

        :returns: that line.
        """
        output = result.stdout + result.stderr
        self.assertEqual(2, result.returncode, output[-4000:])
        self.assertNotIn('Traceback', output)
        lines = [line for line in result.stderr.splitlines()
                 if line.startswith('glance-scrubber:')]
        self.assertEqual(1, len(lines), output[-4000:])
        for word in words:
            self.assertIn(word, lines[0])
        return lines[0]

    def upload(self, name, size, **fields):
        image_id = self.api.create_image(name, **fields)
        data = os.urandom(size)
        self.api.upload(image_id, data)
        shown = self.api.show(image_id)
        self.assertEqual(('active', size, upstream.md5(data)),
                         (shown['status'], shown['size'], shown['checksum']))
        return Uploaded(image_id, data)

    def stored_file(self, image):
        return self.glance_api.datadir / image.id

    def location_url(self, image):
        return 'file://%s' % self.stored_file(image)

    def assert_pending_delete(self, image):
        self.assertEqual(404, self.api.status_of(image.id))
        status, deleted, deleted_at = seed.image_status(self.db.engine,
                                                        image.id)
        self.assertEqual(('pending_delete', True), (status, deleted))
        self.assertIsNotNone(deleted_at)
        self.assertEqual([(self.location_url(image), 'pending_delete', True)],
                         seed.location_states(self.db.engine, image.id))
        self.assertEqual(image.data, self.stored_file(image).read_bytes())

    def assert_active_and_served(self, image):
        self.assertEqual(('active', False, None),
                         tuple(seed.image_status(self.db.engine, image.id)))
        self.assertEqual([(self.location_url(image), 'active', False)],
                         seed.location_states(self.db.engine, image.id))
        self.assertEqual(image.data, self.stored_file(image).read_bytes())
        shown = self.api.show(image.id)
        self.assertEqual(('active', image.checksum),
                         (shown['status'], shown['checksum']))
        downloaded = self.api.download(image.id)
        self.assertEqual(image.checksum, upstream.md5(downloaded))
        self.assertEqual(image.data, downloaded)

    def assert_claimed(self, image):
        """The image as a scrub pass's claim leaves it, data untouched."""
        status, deleted, deleted_at = seed.image_status(self.db.engine,
                                                        image.id)
        self.assertEqual(('deleted', True), (status, deleted))
        self.assertIsNotNone(deleted_at)
        self.assertEqual([(self.location_url(image), 'pending_delete', True)],
                         seed.location_states(self.db.engine, image.id))
        self.assertEqual(image.data, self.stored_file(image).read_bytes())
        self.assertEqual(404, self.api.status_of(image.id))

    def claim(self, image, claimed_at):
        """Leave the rows of *image* as a scrub pass's claim does.

        Plain SQL: the image row becomes ``deleted``, stamped with the
        time of the claim; its locations stay ``pending_delete``.
        """
        with self.db.engine.begin() as connection:
            claimed = connection.execute(
                sa.text("UPDATE images SET status = 'deleted', "
                        "updated_at = :claimed_at "
                        "WHERE id = :id AND status = 'pending_delete'"),
                {'id': image.id, 'claimed_at': claimed_at}).rowcount
        self.assertEqual(1, claimed)

    def backdate_claim(self, image, by):
        with self.db.engine.begin() as connection:
            stamp = connection.execute(
                sa.text('SELECT updated_at FROM images WHERE id = :id')
                .columns(updated_at=sa.DateTime()),
                {'id': image.id}).scalar_one()
            connection.execute(
                sa.text('UPDATE images SET updated_at = :stamp '
                        'WHERE id = :id'),
                {'id': image.id, 'stamp': stamp - by})

    def child_rows(self, image_id):
        """{(table, name): deleted} of an image's properties, tags, members.

        Read with plain SQL from the tables upstream's schema defines.
        """
        rows = {}
        with self.db.engine.connect() as connection:
            for table, name in CHILD_TABLES:
                for key, deleted in connection.execute(
                        sa.text('SELECT %s, deleted FROM %s '
                                'WHERE image_id = :id' % (name, table)),
                        {'id': image_id}):
                    rows[(table, key)] = bool(deleted)
        return rows

    def assert_scrubbed(self, image):
        status, deleted, deleted_at = seed.image_status(self.db.engine,
                                                        image.id)
        self.assertEqual(('deleted', True), (status, deleted))
        self.assertIsNotNone(deleted_at)
        self.assertEqual([(self.location_url(image), 'deleted', True)],
                         seed.location_states(self.db.engine, image.id))
        self.assertFalse(self.stored_file(image).exists())
        self.assertEqual(404, self.api.status_of(image.id))

    def test_scrubber_restores_and_reclaims_what_upstream_api_deleted(self):
        decoy = self.upload('decoy', 48 * 1024)
        restored = self.upload('restored', 64 * 1024 + 1)
        doomed = [self.upload('doomed-%d' % n, 32 * 1024 + n)
                  for n in range(3)]

        for image in [restored] + doomed:
            self.api.delete(image.id)
        for image in [restored] + doomed:
            self.assert_pending_delete(image)
        self.assert_active_and_served(decoy)

        output = self.scrubber('--restore', restored.id)
        self.assertIn(restored.id, output)
        self.assert_active_and_served(restored)

        summary = self.scrubber()
        self.assertRegex(summary, (
            r'Scrub pass summary: found=3 scrubbed=3 failed=0 skipped=0 '
            r'in_use=0 locations_deleted=3 bytes_reclaimed=%d ' %
            sum(len(image.data) for image in doomed)))
        for image in doomed:
            self.assert_scrubbed(image)
        for image in (decoy, restored):
            self.assert_active_and_served(image)
        self.assertEqual({decoy.id, restored.id}, self.api.list_ids())
        self.assertEqual(
            {decoy.id, restored.id},
            {path.name for path in self.glance_api.datadir.iterdir()})
        self.assertTrue(self.glance_api.running,
                        'upstream glance-api died:\n%s'
                        % self.glance_api.logs())

    def test_restore_brings_the_image_back_as_upstream_showed_it(self):
        image = self.upload('faithful', 40 * 1024 + 7, visibility='shared')
        self.api.add_properties(image.id, hw_firmware_type='uefi',
                                os_type='linux')
        for tag in ('golden', 'linux'):
            self.api.add_tag(image.id, tag)
        for member in (ACCEPTING_MEMBER, PENDING_MEMBER):
            self.api.add_member(image.id, member)
        # Without Keystone every call is upstream's admin, whom upstream
        # lets accept a share on a member's behalf.
        self.api.set_member_status(image.id, ACCEPTING_MEMBER, 'accepted')
        shown_before = self.api.show(image.id)
        members_before = self.api.members(image.id)
        rows_before = self.child_rows(image.id)
        self.assertEqual(
            ('shared', 'uefi', 'linux', ['golden', 'linux']),
            (shown_before['visibility'], shown_before.get('hw_firmware_type'),
             shown_before.get('os_type'), sorted(shown_before['tags'])))
        self.assertEqual(
            {ACCEPTING_MEMBER: 'accepted', PENDING_MEMBER: 'pending'},
            {member: shown['status'] for member, shown
             in members_as_shown(members_before).items()})
        self.assertEqual({('image_properties', 'hw_firmware_type'): False,
                          ('image_properties', 'os_type'): False,
                          ('image_tags', 'golden'): False,
                          ('image_tags', 'linux'): False,
                          ('image_members', ACCEPTING_MEMBER): False,
                          ('image_members', PENDING_MEMBER): False},
                         rows_before)

        self.api.delete(image.id)
        self.assert_pending_delete(image)
        self.assertEqual({row: True for row in rows_before},
                         self.child_rows(image.id))

        output = self.scrubber('--restore', image.id)

        self.assertIn(image.id, output)
        # Each of these is checked even when another fails, so that one
        # run tells everything a restore got wrong.
        self.expectThat(as_shown(self.api.show(image.id)),
                        matchers.Equals(as_shown(shown_before)),
                        'GET /v2/images/%s after the restore' % image.id)
        self.expectThat(members_as_shown(self.api.members(image.id)),
                        matchers.Equals(members_as_shown(members_before)),
                        'GET /v2/images/%s/members after the restore'
                        % image.id)
        self.expectThat(self.child_rows(image.id),
                        matchers.Equals(rows_before),
                        '{(table, name): deleted} after the restore')
        self.assert_active_and_served(image)

    def test_a_property_removed_before_the_delete_comes_back_named(self):
        """What upstream's delete leaves cannot tell it from the others.

        Upstream 33.0.0's delete purges every property row of the image,
        those removed earlier too, each with a deleted_at of its own just
        before the image's. A restore brings them all back and names them,
        so that the operator can remove again what was removed on purpose.
        """
        image = self.upload('removed-property', 8 * 1024 + 1)
        self.api.add_properties(image.id, os_type='linux',
                                os_distro='fedora')
        self.api.remove_properties(image.id, 'os_distro')
        self.assertNotIn('os_distro', self.api.show(image.id))
        self.api.delete(image.id)

        output = self.scrubber('--restore', image.id)

        shown = self.api.show(image.id)
        self.assertEqual(('linux', 'fedora'),
                         (shown.get('os_type'), shown.get('os_distro')))
        self.assertIn('Properties restored', output)
        self.assertIn('os_distro, os_type', output)

    def test_no_restore_when_the_data_is_gone_from_the_store(self):
        image = self.upload('data-gone', 24 * 1024 + 5)
        self.api.delete(image.id)
        self.assert_pending_delete(image)
        self.stored_file(image).unlink()

        self.assert_refused(self.run_scrubber('--restore', image.id),
                            image.id)

        status, deleted, deleted_at = seed.image_status(self.db.engine,
                                                        image.id)
        self.assertEqual(('pending_delete', True), (status, deleted))
        self.assertIsNotNone(deleted_at)
        # Its location is not brought back (it may be recorded deleted).
        [(_, location_status, location_deleted)] = seed.location_states(
            self.db.engine, image.id)
        self.assertIn(location_status, ('pending_delete', 'deleted'))
        self.assertTrue(location_deleted)
        self.assertEqual(404, self.api.status_of(image.id))
        self.assertNotIn(image.id, self.api.list_ids())

    def test_an_image_a_scrub_pass_claimed_is_deleted_for_upstream(self):
        decoy = self.upload('decoy', 16 * 1024)
        image = self.upload('claimed', 20 * 1024 + 3)
        self.api.delete(image.id)
        self.assert_pending_delete(image)

        self.claim(image, claimed_at=timeutils.utcnow())

        self.assert_claimed(image)
        self.assertEqual({decoy.id}, self.api.list_ids())
        self.assert_refused(self.run_scrubber('--restore', image.id),
                            image.id, 'claimed')
        self.assert_claimed(image)
        # A claim younger than scrub_claim_timeout (an hour) may be a
        # pass at work: another pass leaves it alone.
        self.assertRegex(self.scrubber(),
                         r'Scrub pass summary: found=0 scrubbed=0 failed=0 ')
        self.assert_claimed(image)

        # The pass that claimed it stopped two hours ago.
        self.backdate_claim(image, by=datetime.timedelta(hours=2))
        summary = self.scrubber()

        self.assertRegex(summary, (
            r'Scrub pass summary: found=1 scrubbed=1 failed=0 skipped=0 '
            r'in_use=0 locations_deleted=1 bytes_reclaimed=%d '
            % len(image.data)))
        self.assert_scrubbed(image)
        self.assert_active_and_served(decoy)
        self.assertEqual({decoy.id}, self.api.list_ids())


class TestUpstreamGlanceSQLite(_UpstreamInterop, testtools.TestCase):
    backend = 'sqlite'


class TestUpstreamGlanceMySQL(_UpstreamInterop, testtools.TestCase):
    backend = 'mysql'


class TestUpstreamGlancePostgreSQL(_UpstreamInterop, testtools.TestCase):
    backend = 'postgresql'
