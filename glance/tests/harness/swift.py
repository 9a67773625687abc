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

"""A real Swift all-in-one behind Keystone for the functional tests.

* SwiftCluster runs tools/backends/swift_cluster.py: Keystone, memcached
  and Swift's proxy, account, container and object servers as plain
  processes, from the virtualenvs of tools/backends/swift_venvs.py;
* GlanceStoreWriter stores image data with glance_store's own swift
  driver, so that Swift holds exactly what glance-api would have left;
* SwiftAccount looks at the account with plain HTTP requests, never
  through glance_store, so that what a test checks does not depend on the
  code under test.

Without the virtualenvs or memcached the tests skip, except under CI
(``CI=true``), where a missing backend is an error.
"""

import io
import urllib.parse

import glance_store
from glance_store._drivers.swift import store as swift_store
from oslo_config import cfg
import requests

from glance.tests.harness import backend_tool

CLUSTER_TOOL = backend_tool.TOOLS / 'swift_cluster.py'
START_TIMEOUT = 120
REFERENCE = 'ref1'
# glance_store's "MB" in swift_store_large_object_(chunk_)size: 1000 KiB.
STORE_MB = 1000 * 1024
HTTP_TIMEOUT = 30


class SwiftCluster(backend_tool.ToolServers):
    """Swift and Keystone in a temporary directory, killed at cleanup.

    Starting them takes many seconds: share one between tests (a pytest
    session fixture), and give each test a container of its own.

    :ivar auth_url: Keystone's ``/v3`` URL.
    :ivar user, password, project: the admin credentials; the user and
        project are in the ``default`` domain.
    :ivar dir: the directory holding the servers' files and logs.
    """

    TOOL = CLUSTER_TOOL
    START_TIMEOUT = START_TIMEOUT

    def started(self, servers):
        self.auth_url = servers['auth_url']
        self.user = servers['user']
        self.password = servers['password']
        self.project = servers['project']
        self.domain = servers['domain']

    def write_reference_file(self, path, auth_url=None):
        """A swift_store_config_file naming this cluster as REFERENCE.

        :param auth_url: Keystone's ``/v3`` URL as the scrubber reaches
            it (through a proxy, say); by default its own.
        """
        with open(path, 'w') as target:
            target.write('[%s]\n' % REFERENCE)
            for name, value in (
                    ('user', '%s:%s' % (self.project, self.user)),
                    ('key', self.password),
                    ('auth_version', '3'),
                    ('auth_address', auth_url or self.auth_url),
                    ('user_domain_id', self.domain),
                    ('project_domain_id', self.domain)):
                target.write('%s = %s\n' % (name, value))
        return str(path)

    def account(self):
        return SwiftAccount(self)


def store_options(reference_file, container):
    """The [glance_store] options of a single tenant swift store."""
    return dict(stores='swift', default_store='swift',
                swift_store_config_file=reference_file,
                default_swift_reference=REFERENCE,
                swift_store_container=container,
                swift_store_multi_tenant=False)


class GlanceStoreWriter:
    """Stores images as glance-api does: through glance_store's driver.

    :param segment_mb: write images of this many glance_store MB
        (STORE_MB bytes) and more as a manifest and segments of that size;
        None for glance_store's defaults (5 GB, 200 MB segments).
    """

    def __init__(self, reference_file, container, segment_mb=None):
        conf = cfg.ConfigOpts()
        glance_store.register_opts(conf)
        conf([], project='glance-scrubber-tests')
        options = store_options(reference_file, container)
        options['swift_store_create_container_on_put'] = True
        if segment_mb is not None:
            options.update(swift_store_large_object_size=segment_mb,
                           swift_store_large_object_chunk_size=segment_mb)
        for name, value in options.items():
            conf.set_override(name, value, group='glance_store')
        self._store = swift_store.SingleTenantStore(conf)
        self._store.configure(re_raise_bsc=True)

    def put(self, image_id, data):
        """Store *data* as image *image_id*; the location URL."""
        url, size, _checksum, _multihash, _metadata = self._store.add(
            image_id, io.BytesIO(data), len(data), 'sha256')
        assert size == len(data), (size, len(data))
        return url


class SwiftAccount:
    """The admin's Swift account, reached with plain HTTP requests."""

    def __init__(self, cluster):
        self._session = requests.Session()
        self._session.trust_env = False
        self._auth_url = cluster.auth_url
        token, self.storage_url = self._log_in(cluster)
        self._session.headers['X-Auth-Token'] = token

    def _log_in(self, cluster):
        """A token and the object-store URL of Keystone's catalog."""
        domain = {'id': cluster.domain}
        response = self._session.post(
            cluster.auth_url + '/auth/tokens', timeout=HTTP_TIMEOUT,
            json={'auth': {
                'identity': {'methods': ['password'], 'password': {
                    'user': {'name': cluster.user, 'domain': domain,
                             'password': cluster.password}}},
                'scope': {'project': {'name': cluster.project,
                                      'domain': domain}}}})
        response.raise_for_status()
        catalog = response.json()['token']['catalog']
        storage_url = next(
            endpoint['url'] for service in catalog
            if service['type'] == 'object-store'
            for endpoint in service['endpoints']
            if endpoint['interface'] == 'public')
        return response.headers['X-Subject-Token'], storage_url

    def put(self, container, name, data):
        """Store an object as glance_store stores a small image.

        :returns: its ``swift+config://REFERENCE/CONTAINER/NAME`` URL.
        """
        self._session.put(self._url(container), timeout=HTTP_TIMEOUT
                          ).raise_for_status()
        self._session.put(self._url(container, name), data=data,
                          timeout=HTTP_TIMEOUT).raise_for_status()
        return 'swift+config://%s/%s/%s' % (
            REFERENCE, urllib.parse.quote(container, safe=''),
            urllib.parse.quote(name, safe=''))

    def route_catalog(self, storage_origin):
        """Name *storage_origin* (``http://host:port``) in the catalog.

        Every object-store endpoint of Keystone's catalog then points
        there (a proxy in front of Swift, say): clients that take the
        storage URL from their token reach Swift through it.
        """
        auth_url = self._auth_url
        token = self._session.headers['X-Auth-Token']
        endpoints = self._session.get(
            auth_url + '/endpoints', headers={'X-Auth-Token': token},
            timeout=HTTP_TIMEOUT)
        endpoints.raise_for_status()
        for endpoint in endpoints.json()['endpoints']:
            if '/v1/AUTH_' not in endpoint['url']:
                continue
            path = endpoint['url'][endpoint['url'].index('/v1/AUTH_'):]
            self._session.patch(
                auth_url + '/endpoints/' + endpoint['id'],
                json={'endpoint': {'url': storage_origin + path}},
                timeout=HTTP_TIMEOUT).raise_for_status()

    def _url(self, container, name=None):
        path = [container] + ([name] if name is not None else [])
        return '/'.join([self.storage_url] + [
            urllib.parse.quote(part, safe='') for part in path])

    def objects(self, container):
        """The names of the objects in *container*, sorted ([] if none)."""
        response = self._session.get(self._url(container),
                                     params={'format': 'json'},
                                     timeout=HTTP_TIMEOUT)
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return sorted(item['name'] for item in response.json())

    def exists(self, url):
        """Whether the object of a glance location URL exists."""
        container, name = parse_url(url)
        response = self._session.head(self._url(container, name),
                                      timeout=HTTP_TIMEOUT)
        if response.status_code == 404:
            return False
        response.raise_for_status()
        return True

    def read(self, url):
        """The content of the object (a manifest's: all its segments)."""
        container, name = parse_url(url)
        response = self._session.get(self._url(container, name),
                                     timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        return response.content

    def delete(self, url):
        """Delete the object behind glance's back."""
        container, name = parse_url(url)
        self._session.delete(self._url(container, name),
                             timeout=HTTP_TIMEOUT).raise_for_status()

    def close(self):
        self._session.close()


def parse_url(url):
    """(container, object) of a ``swift+config://REF/CONTAINER/OBJ`` URL."""
    parts = urllib.parse.urlsplit(url)
    pieces = parts.path.lstrip('/').split('/')
    if parts.scheme != 'swift+config' or len(pieces) != 2:
        raise ValueError('not a swift+config://REF/CONTAINER/OBJECT URL: %s'
                         % url)
    return tuple(urllib.parse.unquote(piece) for piece in pieces)
