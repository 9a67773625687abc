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

"""Sending a store request: the gate, the bound, and what a failure means.

Every request the scrubber sends a store, from the start-up checks to the
deletes of a pass and the look-ups of ``--restore``, goes through
StoreSender.send(): the throttling gate first (gate.StoreGate: requests in
flight, throttled answers sent again, the rate cap), then the bound of
``scrub_store_timeout`` (calls.StoreCalls). A failure that says nothing
of the data but that the store is out of reach ends in one of the two
errors.StoreOutage errors:

* StoreTimeout: no answer in time (the bound, or the client library's own
  read timeout); the store may still act on the request;
* StoreUnavailable: the store could not be reached (connection refused or
  reset, a name that does not resolve) or answered with a server error
  (5xx), throttled answers included once the gate's retries are spent.

Any other error passes on unchanged, for the caller to judge.
"""

import collections
import importlib
import threading

from glance.common.exception import one_line
from glance.i18n import _
from glance.scrubber.stores import calls as store_calls
from glance.scrubber.stores import errors
from glance.scrubber.stores import gate as store_gate

# A throttled request is sent again, after growing waits (0.1 s doubling,
# at most 10 s: about a minute in all), before it fails.
STORE_ATTEMPTS = 10
# The ceiling of a gate that never holds a request back.
UNBOUNDED = 2 ** 31


def _library_classes(spec):
    """The exception classes *spec* names, in the libraries installed."""
    classes = []
    for module_name, names in spec:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        classes.extend(getattr(module, name) for name in names
                       if hasattr(module, name))
    return tuple(classes)


# Nothing reached the store. Checked before the timeouts: botocore's and
# requests' connect timeouts are connection errors as well.
_UNREACHABLE = (ConnectionError,) + _library_classes((
    ('socket', ('gaierror',)),
    ('botocore.exceptions', ('EndpointConnectionError',
                             'ConnectTimeoutError')),
    ('requests.exceptions', ('ConnectionError',)),
    # Swift's logins to Keystone.
    ('keystoneauth1.exceptions', ('ConnectionError',)),
    ('rados', ('ConnectionShutdown',)),
))
# The request may have reached the store, which did not answer in time.
_SILENT = (TimeoutError,) + _library_classes((
    ('botocore.exceptions', ('ReadTimeoutError',)),
    ('requests.exceptions', ('Timeout',)),
    ('urllib3.exceptions', ('TimeoutError',)),
    ('rados', ('TimedOut',)),
))


def outage_of(error):
    """The StoreOutage *error* amounts to, or None when it is no outage.

    Looks at *error* and the chain of causes glance_store may wrap the
    client library's error in.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, errors.StoreOutage):
            return error
        if isinstance(error, _UNREACHABLE):
            return errors.StoreUnavailable(
                _('the store cannot be reached: %s') % one_line(error))
        if isinstance(error, _SILENT):
            return errors.StoreTimeout(
                _('the store gave no answer in time: %s') % one_line(error))
        status = store_gate.http_status(error)
        if isinstance(status, int) and status >= 500:
            return errors.StoreUnavailable(
                _('the store answered with a server error (HTTP %(status)d): '
                  '%(error)s') % {'status': status,
                                  'error': one_line(error)})
        error = error.__cause__ or error.__context__
    return None


class StoreOutages:
    """How many calls in a row each store has left without an answer.

    Counted in the order the calls end, whichever worker made them: a
    call the store answered, whatever the answer, sets its store's count
    back to 0. What a pass makes of the counts is its own business
    (glance.scrubber.breaker).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._in_a_row = collections.Counter()
        self._last = {}

    def forget(self):
        with self._lock:
            self._in_a_row.clear()
            self._last.clear()

    def note(self, store, outage):
        """A call to *store* ended: answered (*outage* None) or not."""
        with self._lock:
            if outage is None:
                self._in_a_row[store] = 0
            else:
                self._in_a_row[store] += 1
                self._last[store] = outage

    def out_of_reach(self, calls):
        """A store whose last *calls* calls all went unanswered.

        :returns: (store, its last StoreOutage), or None.
        """
        with self._lock:
            for store, count in sorted(self._in_a_row.items()):
                if count >= calls:
                    return store, self._last[store]
        return None


class StoreSender:
    """Sends store requests through the gate, bounded, failures sorted.

    :param gate: the gate.StoreGate of the process; by default one that
        lets everything through.
    :param calls: the calls.StoreCalls that bounds each request; by
        default unbounded, in the caller's thread.
    :ivar outages: the StoreOutages of the calls that named their store.
    """

    def __init__(self, gate=None, calls=None):
        self.gate = gate or store_gate.StoreGate(UNBOUNDED)
        self.calls = calls or store_calls.StoreCalls()
        self.outages = StoreOutages()

    def send(self, scheme, request, attempts=STORE_ATTEMPTS, store=None):
        """request(), through the gate and bounded.

        :param scheme: the URL scheme of the store (how to run the call).
        :param attempts: the most sends of a throttled request.
        :param store: the store's name, to count its outages and to name
            it in them; None for neither.
        :raises StoreTimeout, StoreUnavailable: the store is out of reach;
            any other error of request() is raised as it is.
        """
        try:
            answer = self.gate.call(lambda: self.calls.run(scheme, request),
                                    attempts)
        except Exception as error:
            outage = outage_of(error)
            if store is not None:
                self.outages.note(store, outage)
            if outage is None:
                raise
            outage.store = store
            if outage is error:
                raise
            raise outage from error
        if store is not None:
            self.outages.note(store, None)
        return answer
