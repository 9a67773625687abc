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

"""Several scrubbers on one database: who scrubs which image.

What keeps data safe whatever runs where is the claim in the database:
an image is scrubbed only by the pass whose compare-and-set moved it from
pending_delete to deleted, and a restore is the opposite compare-and-set.
A coordination backend (tooz) adds what the database cannot tell:

- which scrubbers are alive (a tooz group whose members heartbeat), so
  that each eligible image is proposed to one of them only (a hash ring
  over the members) and the others do not race for the same claims;
- which claims are still being worked on: each member announces, in its
  group capabilities, the claim tokens (``updated_at`` stamps) of the
  images it holds, before it claims them. A claim no live member
  announces belongs to a scrubber that died; another member takes it
  over once it is ORPHAN_AGE old, instead of after
  ``scrub_claim_timeout``. A claim a live member announces is never taken
  over, however long its deletes take.

Without a backend (``Alone``) a scrubber proposes every image to itself,
as on one host.

When the backend goes away, a member takes no new images: its pass
finishes the images in flight and ends, and later passes wait for the
backend. The claims stay safe meanwhile; what is lost is only the sharing.
"""

import datetime
import os
import socket
import threading
import time
import urllib.parse
import uuid

from oslo_config import cfg
from oslo_log import log as logging
import tooz
from tooz import coordination as tooz_coordination
from tooz import hashring

from glance.common import exception
from glance.i18n import _

LOG = logging.getLogger(__name__)

GROUP = 'coordination'

coordination_opts = [
    cfg.StrOpt('backend_url', secret=True, help=_("""
The coordination backend the scrubbers sharing one database use to share
its images, as a tooz URL.

Unset, this scrubber works alone: it proposes every eligible image to
itself. Several scrubbers on one database are safe even then (each image
is claimed in the database by exactly one pass), but they race for the
same images and the claim of a scrubber that died is only taken over after
``scrub_claim_timeout``. Set, the scrubbers that use the same backend and
``group_name`` divide the eligible images among the live ones, and take
over the claims of one that died a minute after they were made, once
its heartbeat has expired, at their next pass.

Every scrubber on the database must use the same backend and group. The
backend's client library must be installed (``redis`` for Redis,
``etcd3gw`` for etcd, ``kazoo`` for ZooKeeper).

Possible values:
    * ``redis://HOST:PORT`` (add ``?membership_timeout=SECONDS`` to change
      how soon a silent member is thought dead; tooz's default is 30)
    * ``etcd3+http://HOST:PORT``
    * ``zookeeper://HOST:PORT``
    * ``file:///PATH`` (scrubbers on one host only)
    * any other tooz backend URL that supports groups

Related options:
    * group_name
    * scrub_claim_timeout
""")),
    cfg.StrOpt('group_name', default='glance-scrubber', help=_("""
The tooz group the scrubbers of one Glance database join.

Scrubbers of different Glance databases that share one coordination
backend need different group names.

Related options:
    * backend_url
""")),
]


def register_opts(conf):
    conf.register_opts(coordination_opts, group=GROUP)


class CoordinationLost(exception.GlanceException):
    message = _("The coordination backend is unreachable, no new image is "
                "taken until it is back: %(reason)s")


class CoordinationUnavailable(exception.InvalidConfiguration):
    """The backend cannot be reached at start: refused like bad options."""

    message = _("[coordination] backend_url: the coordination backend is "
                "unreachable, nothing was scrubbed: %(reason)s")


def _claim_timeout_rule(claim_timeout):
    return _('scrub_claim_timeout (%d s) after the claim') % claim_timeout


def _token_text(token):
    return token.replace(microsecond=0).isoformat()


class Alone:
    """No coordination backend: every image is this scrubber's to propose.

    A stopped pass's claim is taken over after the claim timeout.
    """

    def __init__(self, claim_timeout):
        self._claim_timeout = claim_timeout

    def start(self):
        """Called at the start of the process; nothing to reach."""

    def join(self):
        """Called at the start of a pass; nothing to join."""

    @property
    def lost(self):
        return None

    def takeover_cutoff(self, now):
        """Claims stamped at or before this may be taken over."""
        return now - datetime.timedelta(seconds=self._claim_timeout)

    def takeover_rule(self):
        """When a claim of another pass is taken over, in words."""
        return _claim_timeout_rule(self._claim_timeout)

    def proposes(self, candidate):
        return True

    def hold(self, token, count):
        """*count* claims stamped *token* are about to be taken."""

    def release(self, token, count=1):
        """*count* claims stamped *token* are recorded or given up."""

    def release_all(self):
        """The pass is over."""

    def leave(self):
        """Called when the process ends."""


class Member:
    """This scrubber's membership of its tooz group.

    A thread of its own (the watcher) heartbeats and reads the members and
    their announced claims about once a second; the pass only reads what
    it found, and announces its claims. The calls to the backend are made
    outside the lock: a driver may take a minute to give up on a dead
    backend (tooz's Redis driver retries), and meanwhile the pass must see
    that the backend is silent. Silent for longer than the membership
    timeout (the others think this member dead by then), the backend is
    taken for lost.

    A backend that cannot hold capabilities (tooz's file driver) cannot
    announce claims: abandoned claims are then taken over after the claim
    timeout, as without coordination.

    :param coordinator: a tooz coordinator, not started.
    :param group: the group name.
    :param member_id: this member's id (bytes), unique in the group.
    :param claim_timeout: ``scrub_claim_timeout``.
    """

    # A claim no live member announces is taken over once this old: long
    # enough for a member cut off from the backend to finish the images it
    # had in flight (it takes no new ones from the moment it notices).
    ORPHAN_AGE = 60
    # How often the watcher heartbeats and reads the group, at most.
    WATCH_INTERVAL = 1.0
    # How long the backend may stay silent before it is taken for lost,
    # until a heartbeat has said what its membership timeout is.
    DEFAULT_SILENCE = 10.0
    # How long the first join, at start, may take. The drivers' own
    # retries are for a backend lost once running: tooz's Redis driver
    # gives up on a closed port after about a minute, and on a port that
    # accepts connections and never answers after several minutes.
    START_TIMEOUT = 10.0

    def __init__(self, coordinator, group, member_id, claim_timeout,
                 address=None):
        self._coordinator = coordinator
        self._address = address
        self._group = group.encode()
        self.member_id = member_id
        self._claim_timeout = claim_timeout
        self._announces = True
        self._lock = threading.Lock()
        self._started = False
        self._joined = False
        self._lost = None
        self._last_answer = None
        self._silence = self.DEFAULT_SILENCE
        self._ring = None
        self._members = frozenset()
        self._announced = frozenset()
        self._held = {}
        self._stop = threading.Event()
        self._watcher = None

    @classmethod
    def from_url(cls, backend_url, group, claim_timeout):
        """A Member for *backend_url*, not yet connected.

        :raises InvalidConfiguration: the URL names no usable tooz driver.
        """
        member_id = '%s-%d-%s' % (socket.gethostname(), os.getpid(),
                                  uuid.uuid4().hex[:8])
        try:
            coordinator = tooz_coordination.get_coordinator(
                backend_url, member_id.encode())
        except Exception as error:  # noqa: BLE001 - drivers raise anything
            raise exception.InvalidConfiguration(
                reason=_('[coordination] backend_url cannot be used: '
                         '%(kind)s: %(error)s')
                % {'kind': type(error).__name__, 'error': error})
        return cls(coordinator, group, member_id.encode(), claim_timeout,
                   address=_address(backend_url))

    # --- membership ---------------------------------------------------------

    def start(self, timeout=None):
        """Join the group at the start of the process, or refuse.

        The first join is bounded: a backend that refuses the connection
        is refused at once, one that does not answer once *timeout*
        seconds (START_TIMEOUT) are over. The attempt is then left to end
        in its thread, which leaves the group if it joins after all.

        :raises CoordinationUnavailable: the backend cannot be reached.
        """
        timeout = self.START_TIMEOUT if timeout is None else timeout
        ended = threading.Lock()
        done = threading.Event()
        abandoned = []
        failure = []

        def first_join():
            try:
                if self._address:
                    _connect(self._address, timeout)
                self._join()
                self._read_group()
            except Exception as error:  # noqa: BLE001 - drivers raise any
                failure.append(exception.one_line(error))
            with ended:
                done.set()
            if abandoned:
                self.leave()

        attempt = threading.Thread(target=first_join, daemon=True,
                                   name='scrubber-coordination-start')
        attempt.start()
        done.wait(timeout)
        with ended:
            if not done.is_set():
                abandoned.append(True)
        if abandoned:
            raise CoordinationUnavailable(
                reason=_('no answer within %d seconds') % timeout)
        if failure:
            self.leave()
            raise CoordinationUnavailable(reason=failure[0])
        self._start_watcher()

    def join(self):
        """Make sure this member is in the group, at the start of a pass.

        Once joined, the watcher keeps this member in the group, and joins
        it again after the backend was lost.

        :raises CoordinationLost: the backend cannot be reached.
        """
        try:
            if self._watcher is None:
                self._call(self._join)
                self._call(self._read_group)
        finally:
            self._start_watcher()
        reason = self.lost
        if reason:
            raise CoordinationLost(reason=reason)

    def _join(self):
        if not self._started:
            self._coordinator.start(start_heart=False)
            self._started = True
        try:
            self._coordinator.create_group(self._group).get()
        except tooz_coordination.GroupAlreadyExist:
            pass
        try:
            self._coordinator.join_group(
                self._group, self._capabilities()).get()
        except tooz_coordination.MemberAlreadyExist:
            self._publish()
        self._check_announcements()
        self._beat()
        with self._lock:
            self._joined = True
        LOG.info('Joined scrubber group %(group)s as %(member)s',
                 {'group': self._group.decode(),
                  'member': self.member_id.decode()})

    @property
    def lost(self):
        """Why the backend is taken for lost, or None."""
        with self._lock:
            if self._lost is None and self._last_answer is not None:
                silent = time.monotonic() - self._last_answer
                if silent > self._silence:
                    self._lose_locked(_('no answer for %.0f seconds')
                                      % silent)
            return self._lost

    def leave(self):
        self._stop.set()
        if not self._started:
            return
        try:
            if self._joined:
                self._coordinator.leave_group(self._group).get()
            self._coordinator.stop()
        except Exception as error:  # noqa: BLE001 - leaving is best effort
            LOG.debug('Leaving the scrubber group: %s', error)
        self._started = self._joined = False

    # --- sharing the images -------------------------------------------------

    def takeover_cutoff(self, now):
        age = self.ORPHAN_AGE if self._announces else self._claim_timeout
        return now - datetime.timedelta(seconds=age)

    def takeover_rule(self):
        if not self._announces:
            return _claim_timeout_rule(self._claim_timeout)
        return _('%d s after the claim, once no live member of the group '
                 'announces it') % self.ORPHAN_AGE

    def proposes(self, candidate):
        """Whether this member is to claim *candidate* now.

        An eligible image: when the ring gives it to this member. A claim
        left behind: when, besides, no live member announces its token.
        """
        if self.lost:
            return False
        with self._lock:
            ring, announced = self._ring, self._announced
        if ring is None or self.member_id not in ring.get_nodes(
                candidate.id.encode()):
            return False
        return (not candidate.retaken or
                _token_text(candidate.claimed_at) not in announced)

    # --- claims in flight ---------------------------------------------------

    def hold(self, token, count):
        """Announce *token* before *count* claims stamped with it are taken.

        :raises CoordinationLost: it could not be announced; claim nothing.
        """
        reason = self.lost
        if reason:
            raise CoordinationLost(reason=reason)
        text = _token_text(token)
        with self._lock:
            first = text not in self._held
            self._held[text] = self._held.get(text, 0) + count
        if not first:
            return
        try:
            self._call(self._publish)
        except CoordinationLost:
            with self._lock:
                del self._held[text]
            raise

    def release(self, token, count=1):
        """*count* claims stamped *token* are recorded or given up."""
        text = _token_text(token)
        with self._lock:
            left = self._held.get(text, 0) - count
            if left > 0:
                self._held[text] = left
                return
            self._held.pop(text, None)
        self._publish_quietly()

    def release_all(self):
        """The pass is over: whatever it did not record is left behind."""
        with self._lock:
            if not self._held:
                return
            self._held.clear()
        self._publish_quietly()

    def _capabilities(self):
        with self._lock:
            return {'claims': sorted(self._held)}

    def _publish(self):
        if not self._announces:
            return
        self._coordinator.update_capabilities(
            self._group, self._capabilities()).get()
        self._answered()

    def _check_announcements(self):
        try:
            self._publish()
        except tooz.NotImplemented:
            self._announces = False
            LOG.info('The coordination backend cannot announce claims: the '
                     'claims of a scrubber that stopped are taken over '
                     'after scrub_claim_timeout')

    def _publish_quietly(self):
        # Announcing a claim for too long is harmless: it only keeps it from
        # being taken over until this member is gone.
        if self.lost or not self._joined:
            return
        try:
            self._call(self._publish)
        except CoordinationLost:
            pass

    # --- the watcher --------------------------------------------------------

    def _start_watcher(self):
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(
                target=self._watch, name='scrubber-coordination', daemon=True)
            self._watcher.start()

    def _watch(self):
        while not self._stop.wait(self.WATCH_INTERVAL):
            try:
                self._call(self._watch_once)
            except CoordinationLost:
                pass

    def _watch_once(self):
        if self._lost or not self._joined:
            self._recover()
        self._beat()
        self._read_group()

    def _beat(self):
        period = self._coordinator.heartbeat()
        with self._lock:
            if period:
                # The membership timeout: silent longer than this, this
                # member is dead in the others' eyes.
                self._silence = float(period)
        self._answered()

    def _read_group(self):
        members = self._coordinator.get_members_with_capabilities(
            self._group).get()
        self._answered()
        # The backend may not list this member yet (or any more, after it
        # was thought dead): it still takes its share.
        names = frozenset(members) | {self.member_id}
        announced = frozenset(
            token for capabilities in members.values()
            for token in (capabilities or {}).get('claims', ()))
        with self._lock:
            changed = names != self._members
            self._members = names
            self._announced = announced
            if changed:
                self._ring = hashring.HashRing(names)
        if changed:
            LOG.info('Scrubber group %(group)s: %(count)d members '
                     '(%(names)s)',
                     {'group': self._group.decode(), 'count': len(names),
                      'names': ', '.join(sorted(m.decode() for m in names))})

    def _recover(self):
        # A backend that restarted may have forgotten the group and this
        # member: join again before taking images again.
        with self._lock:
            self._joined = False
        self._join()
        self._read_group()
        with self._lock:
            was_lost, self._lost = self._lost, None
        if was_lost:
            LOG.info('Coordination backend reachable again: scrubber '
                     'group %s rejoined', self._group.decode())

    def _answered(self):
        with self._lock:
            self._last_answer = time.monotonic()

    def _call(self, action):
        """Run a backend call; a failure takes the backend for lost."""
        try:
            action()
        except Exception as error:  # noqa: BLE001 - drivers raise their own
            with self._lock:
                self._lose_locked(exception.one_line(error))
                reason = self._lost
            raise CoordinationLost(reason=reason)

    def _lose_locked(self, reason):
        first = self._lost is None
        self._lost = reason
        self._ring = None
        self._members = frozenset()
        if first:
            LOG.warning('Coordination backend unreachable: this scrubber '
                        'takes no new image until it is back (images in '
                        'flight are finished): %s', reason)


def _address(backend_url):
    """(host, port) of a URL that names one server and its port, or None.

    Not for a URL that names several servers, or servers it does not
    name (a Redis sentinel's fallbacks).
    """
    try:
        parts = urllib.parse.urlsplit(backend_url)
        port = parts.port
    except ValueError:
        return None
    if not (parts.hostname and port) or 'sentinel' in parts.query:
        return None
    return parts.hostname, port


def _connect(address, timeout):
    """Open and close a TCP connection: a closed port fails at once."""
    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError as error:
        # eventlet's sockets give the errno's name as strerror.
        reason = (os.strerror(error.errno) if (error.errno or 0) > 0
                  else error.strerror or str(error))
        raise ConnectionError(
            _('cannot connect to %(host)s:%(port)d: %(error)s')
            % {'host': address[0], 'port': address[1],
               'error': reason}) from None


def from_config(conf, claim_timeout):
    """Alone, or a Member of ``[coordination] group_name``.

    :raises InvalidConfiguration: the backend URL cannot be used.
    """
    url = conf.coordination.backend_url
    if not url:
        return Alone(claim_timeout)
    return Member.from_url(url, conf.coordination.group_name, claim_timeout)
