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

"""S3 store instances and boto3 clients shared by the scrub workers.

glance_store's S3 driver is not reusable in glance_store's sense: each call
of its top-level helpers (``delete_from_backend``, ``delete``) loads a new
store instance, and the instance builds a new boto3 session and client for
every request (``Store._create_s3_client``). Building a client costs about
0.2 s of CPU here, far more than the HEAD and DELETE that scrubbing one
location sends, so a scrubber on S3 is CPU-bound under the GIL and a larger
``scrub_pool_size`` makes it no faster, only bigger.

A delete needs nothing of an instance but its configuration and its client,
and the client depends only on the store's configuration (endpoint,
credentials, addressing style), never on the location. boto3 clients are
thread-safe, with a connection pool of their own (10 connections by
default). So the workers share a few instances per store: each instance
builds its client once and serves at most as many deletes at once as its
client has connections; another instance is opened only when all are busy.
With a pool of P workers that is ceil(P / 10) clients for the life of the
process instead of one per request.

The driver is reached into (the client factory method) through
glance._compat only; its tests pin the driver behaviour this relies on, so
a change in glance_store shows up as a failing test, not a slow scrubber.
"""

import collections
import contextlib
import threading

from botocore import exceptions as boto_exceptions
import glance_store
from oslo_config import cfg

from glance import _compat
from glance.i18n import _
from glance.scrubber.stores import gate as store_gate
from glance.scrubber.stores import layout
from glance.scrubber.stores import sending
from glance.scrubber.stores import urls

# The single store serves every S3 scheme with one configuration.
SINGLE_STORE = layout.S3_TYPE


class _SharedStore:
    """A store instance with its one client, and how many use it now."""

    def __init__(self, store):
        client = _compat.pin_s3_client(store)
        _compat.on_s3_retry_decision(client, _no_retry_when_out_of_reach)
        self.store = store
        self.client = client
        self.capacity = _compat.s3_client_connections(client)
        self.users = 0


# What botocore retries and the pass must see at once: the store does not
# answer, or cannot be reached.
_OUT_OF_REACH = (boto_exceptions.ReadTimeoutError,
                 boto_exceptions.ConnectTimeoutError,
                 boto_exceptions.EndpointConnectionError)


def _no_retry_when_out_of_reach(response=None, caught_exception=None,
                                **kwargs):
    """botocore's needs-retry hook: throttled or silent, no retry.

    botocore would send a throttled request again at once, hiding the
    answer from the pass; the pass's StoreGate lowers its concurrency
    and sends it again later instead. A request the store did not answer
    in time, or a store that cannot be reached, botocore would try again
    up to four times with waits between: one store call would outlast
    ``scrub_store_timeout`` several times over in the thread left to it,
    and the pass's breaker could not count one timeout as one. False
    ends botocore's retry handling for this answer; None leaves it to
    botocore.
    """
    if isinstance(caught_exception, _OUT_OF_REACH):
        return False
    if response is None:
        return None
    http_response, parsed = response
    code = (parsed or {}).get('Error', {}).get('Code')
    if code in store_gate.THROTTLE_CODES or \
            http_response.status_code in store_gate.THROTTLE_STATUSES:
        return False
    return None


def _bucket_problem(key, shared, sender):
    bucket = _compat.s3_bucket(shared.store)
    try:
        sender.send(layout.S3_TYPE,
                    lambda: shared.client.head_bucket(Bucket=bucket),
                    store=key)
    except boto_exceptions.ClientError as error:
        code = error.response.get('Error', {}).get('Code')
        if code in ('404', 'NoSuchBucket'):
            return _('S3 bucket %s does not exist') % bucket
        return _('cannot look S3 bucket %(bucket)s up: %(error)s') % {
            'bucket': bucket, 'error': error}
    except boto_exceptions.BotoCoreError as error:
        return _('cannot look S3 bucket %(bucket)s up: %(error)s') % {
            'bucket': bucket, 'error': error}
    return None


class SharedS3Stores:
    """Deletes S3 locations through shared store instances.

    :param multistore: locations name their backend (``enabled_backends``);
        otherwise the URL scheme picks the single S3 store.
    :param s3_backends: with multistore, the backends whose type is s3.
    :param conf: the configuration glance_store parses locations with.
    """

    def __init__(self, multistore=False, s3_backends=(), conf=None):
        self._conf = conf if conf is not None else cfg.CONF
        self._multistore = multistore
        self._s3_backends = set(s3_backends)
        self._lock = threading.Lock()
        self._stores = collections.defaultdict(list)

    @classmethod
    def from_config(cls, conf, store_layout):
        return cls(store_layout.multistore,
                   store_layout.named_backends(layout.S3_TYPE), conf)

    def handles(self, url, backend):
        """Whether this location is on an S3 store this class serves."""
        if self._multistore:
            return backend in self._s3_backends
        return layout.scheme(url) in layout.S3_SCHEMES

    def delete(self, url, backend, context):
        """Delete one S3 location's data; glance_store's errors pass on."""
        location = self._location(url, backend)
        key = backend if self._multistore else SINGLE_STORE
        with self._lease(key) as store:
            return store.delete(location, context=context)

    def prepare(self, workers):
        """Build, before any pass, the clients *workers* workers will use.

        Building a client costs about 0.2 s of CPU; done here, it is off
        the path of the first pass, where workers would wait for it.

        :returns: how many clients were built.
        :raises ValueError: botocore refuses the store's configuration (an
            endpoint, an addressing style, a bucket name that virtual
            addressing cannot use).
        """
        with self._lock:
            try:
                for key in self._configured_keys():
                    while self._room(key) < workers:
                        self._open(key)
            except boto_exceptions.BotoCoreError as error:
                # Making a client sends no request: whatever botocore
                # objects to here is in the configuration.
                raise ValueError(str(error)) from error
        return self.clients()

    def missing_buckets(self, sender=None):
        """One line for each configured bucket that cannot be found.

        glance_store takes the bucket of a delete from the location URL,
        but a store configured with a bucket that does not exist is not
        the store that holds this cloud's images.

        :param sender: the sending.StoreSender the look-ups go through
            (the gate, scrub_store_timeout); by default one that lets
            everything through, unbounded.
        :raises StoreOutage: a store is out of reach (its name set).
        """
        sender = sender or sending.StoreSender()
        with self._lock:
            shared = [(key, self._spare(key) or self._open(key))
                      for key in self._configured_keys()]
        return [problem for problem in
                (_bucket_problem(key, store, sender) for key, store in shared)
                if problem]

    def _configured_keys(self):
        if self._multistore:
            return sorted(self._s3_backends)
        try:
            glance_store.get_store_from_scheme(SINGLE_STORE)
        except glance_store.exceptions.UnknownScheme:
            return []
        return [SINGLE_STORE]

    def _room(self, key):
        return sum(shared.capacity for shared in self._stores[key])

    def clients(self):
        """How many clients (store instances) have been built so far."""
        with self._lock:
            return sum(len(shared) for shared in self._stores.values())

    def _location(self, url, backend):
        return urls.parse(url, backend if self._multistore else None,
                          self._conf)

    @contextlib.contextmanager
    def _lease(self, key):
        with self._lock:
            shared = self._spare(key) or self._open(key)
            shared.users += 1
        try:
            yield shared.store
        finally:
            with self._lock:
                shared.users -= 1

    def _spare(self, key):
        for shared in self._stores[key]:
            if shared.users < shared.capacity:
                return shared
        return None

    def _open(self, key):
        # Opened under the lock on purpose: at the start of a pass every
        # worker wants a store at once, and one client serves ten of them.
        if self._multistore:
            store = glance_store.get_store_from_store_identifier(key)
        else:
            store = glance_store.get_store_from_scheme(key)
        shared = _SharedStore(store)
        self._stores[key].append(shared)
        return shared
