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
written by upstream itself. Then this tree's glance-scrubber restores one
image, which upstream must serve again byte for byte, and scrubs the rest.

Run with ``tox -e interop`` (builds upstream's virtualenv once), or with
pytest once tools/upstream_glance_venv.py has built it.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import fixtures
import testtools

from glance.tests import databases
from glance.tests.interop import upstream
from glance.tests import seed

SCRUBBER_TIMEOUT = 120


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


class _UpstreamInterop:
    """The scenario; the TestCase subclasses below pick the database."""

    backend = None

    def setUp(self):
        super().setUp()
        python = upstream.upstream_python()
        self.db = self.useFixture(
            databases.Database(self.backend, migrate=False))
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

    def scrubber(self, *args):
        result = subprocess.run(
            [scrubber_command(), '--config-file', str(self.scrubber_config),
             *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, timeout=SCRUBBER_TIMEOUT)
        self.assertEqual(0, result.returncode,
                         'glance-scrubber %s failed:\n%s' % (
                             ' '.join(args), result.stdout[-4000:]))
        return result.stdout

    def upload(self, name, size):
        image_id = self.api.create_image(name)
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
            r'locations_deleted=3 bytes_reclaimed=%d ' %
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


class TestUpstreamGlanceSQLite(_UpstreamInterop, testtools.TestCase):
    backend = 'sqlite'


class TestUpstreamGlanceMySQL(_UpstreamInterop, testtools.TestCase):
    backend = 'mysql'
