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

"""Upstream Glance, released and real, for the interop tests.

Upstream's glance-manage lays the schema down and upstream's glance-api
serves the images API in front of it, both run by the python of a
virtualenv of their own (tools/upstream_glance_venv.py builds it): this
tree's distribution is named ``glance`` too, so the two never share one.
"""

import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import unittest
import urllib.error
import urllib.request

import fixtures
import sqlalchemy as sa

from glance.tests import databases

TREE = pathlib.Path(__file__).resolve().parents[3]
VENV_TOOL = TREE / 'tools' / 'upstream_glance_venv.py'
SERVER_SCRIPT = pathlib.Path(__file__).with_name('upstream_api_server.py')

START_TIMEOUT = 60
CALL_TIMEOUT = 60


def upstream_python():
    """The python of the upstream Glance venv.

    Outside CI a missing venv skips the test (building it takes minutes);
    under CI=true it is built, and a failed build fails the test.
    """
    if not VENV_TOOL.exists():
        _unavailable('%s is missing (not a source tree?)' % VENV_TOOL)
    command = [sys.executable, str(VENV_TOOL)]
    if not databases.under_ci():
        command.append('--check')
    result = subprocess.run(command, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = result.stdout.strip().splitlines() or ['(no output)']
    if result.returncode != 0:
        _unavailable('upstream Glance virtualenv not ready: %s. Build it '
                     'with "python tools/upstream_glance_venv.py" or run '
                     '"tox -e interop".' % lines[-1])
    return pathlib.Path(lines[-1])


def _unavailable(reason):
    if databases.under_ci():
        raise AssertionError(reason)
    raise unittest.SkipTest(reason)


def check_driver(python, database_url):
    """Make sure upstream's python can load the driver of *database_url*.

    tools/upstream_glance_venv.py installs upstream Glance and the drivers
    it names; a database whose driver is missing there skips the test
    (fails it under CI), with the reason.
    """
    driver = sa.engine.make_url(database_url).get_driver_name()
    module = {'pysqlite': 'sqlite3'}.get(driver, driver)
    result = subprocess.run(
        [str(python), '-I', '-c', 'import %s' % module],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        _unavailable('the upstream Glance virtualenv of %s cannot import '
                     '%s, the driver of %s: add it to EXTRA_PACKAGES in '
                     'tools/upstream_glance_venv.py'
                     % (python, module, database_url))


def isolated(python, script, *args):
    """Run a script of the upstream venv, blind to this tree's env (-I)."""
    return [str(python), '-I', str(script), *args]


def md5(data):
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class UpstreamGlanceAPI(fixtures.Fixture):
    """Upstream glance-api on 127.0.0.1, delayed_delete on, file store.

    The database at *database_url* gets its schema from upstream's own
    ``glance-manage db sync``; no Keystone (the paste pipeline's
    unauthenticated admin context), a free port.

    :ivar url: the API's base URL.
    :ivar datadir: the file store's folder.
    :ivar log_file: upstream's log, quoted when something goes wrong.
    """

    def __init__(self, python, database_url):
        super().__init__()
        self.python = pathlib.Path(python)
        self.venv = self.python.parent.parent
        self.database_url = database_url

    def _setUp(self):
        self.workdir = pathlib.Path(self.useFixture(fixtures.TempDir()).path)
        self.datadir = self.workdir / 'images'
        self.log_file = self.workdir / 'glance-api.log'
        self.config_dir = self._write_config()
        self.db_sync()
        self._start()

    def _write_config(self):
        config_dir = self.workdir / 'etc'
        config_dir.mkdir()
        paste = self.venv / 'etc' / 'glance' / 'glance-api-paste.ini'
        if not paste.exists():
            raise AssertionError('upstream Glance installed no %s' % paste)
        shutil.copy(paste, config_dir)
        for folder in ('images', 'staging', 'cache', 'locks'):
            (self.workdir / folder).mkdir(exist_ok=True)
        (config_dir / 'glance-api.conf').write_text(textwrap.dedent("""\
            [DEFAULT]
            delayed_delete = True
            node_staging_uri = file://{work}/staging
            image_cache_dir = {work}/cache
            log_file = {log}
            [database]
            connection = {db}
            [glance_store]
            stores = file
            default_store = file
            filesystem_store_datadir = {work}/images
            [oslo_policy]
            # Without Keystone every call is admin; the new policy
            # defaults would still refuse them all (403).
            enforce_new_defaults = False
            [oslo_concurrency]
            lock_path = {work}/locks
            """).format(work=self.workdir, log=self.log_file,
                        db=self.database_url))
        return config_dir

    def db_sync(self):
        manage = self.venv / 'bin' / 'glance-manage'
        result = subprocess.run(
            isolated(self.python, manage, '--config-file',
                     str(self.config_dir / 'glance-api.conf'), 'db', 'sync'),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=CALL_TIMEOUT)
        if result.returncode != 0:
            raise AssertionError('upstream glance-manage db sync failed '
                                 '(%d):\n%s' % (result.returncode,
                                                result.stdout[-4000:]))

    def _start(self):
        port_file = self.workdir / 'port'
        env = dict(os.environ, OS_GLANCE_CONFIG_DIR=str(self.config_dir))
        self.server_log = self.workdir / 'server.stderr'
        with open(self.server_log, 'wb') as stderr:
            self.process = subprocess.Popen(
                isolated(self.python, SERVER_SCRIPT,
                         '--port-file', str(port_file)),
                cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=stderr, stderr=stderr)
        self.addCleanup(self.stop)
        port = self._wait_for_port(port_file)
        self.url = 'http://127.0.0.1:%d' % port
        self._wait_until_answering()

    def _wait_for_port(self, port_file):
        deadline = time.monotonic() + START_TIMEOUT
        while not port_file.exists():
            self._check_running('starting')
            if time.monotonic() > deadline:
                self._fail('did not listen within %ds' % START_TIMEOUT)
            time.sleep(0.1)
        return int(port_file.read_text())

    def _wait_until_answering(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            self._check_running('answering')
            try:
                status, _ = ApiClient(self.url).call('GET', '/')
            except OSError:
                status = None
            if status in (200, 300):  # the version list: 300 Multiple
                return
            if time.monotonic() > deadline:
                self._fail('did not answer GET / within %ds (last status '
                           '%s)' % (START_TIMEOUT, status))
            time.sleep(0.1)

    def _check_running(self, doing):
        if self.process.poll() is not None:
            self._fail('exited with %d while %s' % (self.process.returncode,
                                                    doing))

    def _fail(self, what):
        raise AssertionError('upstream glance-api %s.\n%s' % (
            what, self.logs()))

    def logs(self):
        """The tail of the server's stderr and upstream's log file."""
        parts = []
        for path in (self.server_log, self.log_file):
            if path.exists():
                text = path.read_text(errors='replace')
                parts.append('--- %s ---\n%s' % (path.name, text[-4000:]))
        return '\n'.join(parts)

    @property
    def running(self):
        return self.process.poll() is None

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ApiClient:
    """The calls of the images API v2 the tests make, on urllib."""

    JSON = 'application/json'
    JSON_PATCH = 'application/openstack-images-v2.1-json-patch'

    def __init__(self, url):
        self.url = url

    def call(self, method, path, body=None, content_type=None):
        """Return (status, body bytes), for error statuses too."""
        headers = {'Content-Type': content_type} if content_type else {}
        request = urllib.request.Request(self.url + path, data=body,
                                         headers=headers, method=method)
        try:
            with urllib.request.urlopen(request,
                                        timeout=CALL_TIMEOUT) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def expect(self, status, method, path, **kwargs):
        got, body = self.call(method, path, **kwargs)
        if got != status:
            raise AssertionError('%s %s: expected %d, got %d: %s' % (
                method, path, status, got, body[:500]))
        return body

    def expect_json(self, status, method, path, document=None,
                    content_type=JSON):
        """Send *document* as JSON (if any); return the decoded answer."""
        body = None if document is None else json.dumps(document).encode()
        answer = self.expect(status, method, path, body=body,
                             content_type=content_type if body else None)
        return json.loads(answer) if answer else None

    # --- images

    def create_image(self, name, **fields):
        """Create a raw/bare image; *fields* add to it (visibility=...)."""
        document = dict({'name': name, 'disk_format': 'raw',
                         'container_format': 'bare'}, **fields)
        return self.expect_json(201, 'POST', '/v2/images', document)['id']

    def upload(self, image_id, data):
        self.expect(204, 'PUT', '/v2/images/%s/file' % image_id, body=data,
                    content_type='application/octet-stream')

    def show(self, image_id):
        return self.expect_json(200, 'GET', '/v2/images/%s' % image_id)

    def status_of(self, image_id):
        """The HTTP status of showing the image (404 once deleted)."""
        return self.call('GET', '/v2/images/%s' % image_id)[0]

    def download(self, image_id):
        return self.expect(200, 'GET', '/v2/images/%s/file' % image_id)

    def delete(self, image_id):
        self.expect(204, 'DELETE', '/v2/images/%s' % image_id)

    def list_ids(self):
        listing = self.expect_json(200, 'GET', '/v2/images')
        return {image['id'] for image in listing['images']}

    def patch(self, image_id, operations):
        """Apply JSON-patch *operations*; return the updated image."""
        return self.expect_json(200, 'PATCH', '/v2/images/%s' % image_id,
                                operations, content_type=self.JSON_PATCH)

    def add_properties(self, image_id, **properties):
        return self.patch(image_id, [
            {'op': 'add', 'path': '/%s' % name, 'value': value}
            for name, value in sorted(properties.items())])

    def remove_properties(self, image_id, *names):
        return self.patch(image_id, [
            {'op': 'remove', 'path': '/%s' % name} for name in names])

    # --- tags

    def add_tag(self, image_id, tag):
        self.expect(204, 'PUT', '/v2/images/%s/tags/%s' % (image_id, tag))

    # --- members (images with visibility 'shared')

    def add_member(self, image_id, member):
        return self.expect_json(200, 'POST', '/v2/images/%s/members'
                                % image_id, {'member': member})

    def set_member_status(self, image_id, member, status):
        """Accept or reject a share (upstream lets an admin do it too)."""
        return self.expect_json(200, 'PUT', '/v2/images/%s/members/%s'
                                % (image_id, member), {'status': status})

    def members(self, image_id):
        return self.expect_json(200, 'GET', '/v2/images/%s/members'
                                % image_id)['members']
