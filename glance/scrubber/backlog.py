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

"""Seeing the backlog: ``glance-scrubber --list`` and ``--dry-run``.

Both only read. They page through the pending_delete images the way a
pass pages through its queue (by id, marker and limit), print as they go
and keep nothing but running totals, so memory stays flat however long
the backlog is. Neither claims an image, changes a row or takes the scrub
lock: they are safe while passes run, here or on another host.

``--list`` shows every pending_delete image, then the images passes
claimed and have not finished (their claim is taken over once it is old
enough); ``--dry-run`` shows what a pass would do with each image that is
due, as decided by the pass's own rules
(stores.deleter.StoreDeleter.plan()). Location URLs are never shown, as
they may hold credentials: only store names (the location's ``store``
metadata with several backends, the URL scheme otherwise).
"""

import dataclasses
import datetime
import math
import re
import time

from oslo_utils import timeutils

from glance.common import crypt
from glance.db.sqlalchemy import api as db_api
from glance.scrubber import coordination
from glance.scrubber import data_users as data_users_index
from glance.scrubber.stores import deleter as store_deleter
from glance.scrubber.stores import errors

# Images read per query by --list.
LIST_PAGE_SIZE = 500

# --dry-run takes as many images at a time as a pass claims at most, so
# that data shared by two due images is judged as a pass would judge it.
DRY_RUN_PAGE_SIZE = 100

UNREADABLE = '?'
_SCHEME = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*')
RBD_SCHEME = 'rbd'


def pages(context, page_size, deleted_before=None):
    """Yield the pending_delete images page by page (db_api.list_backlog).

    :param deleted_before: only the images deleted at or before it.
    """
    return _pages(db_api.list_backlog, context, page_size,
                  deleted_before=deleted_before)


def claimed_pages(context, page_size):
    """Yield the claimed, unfinished images page by page (list_claimed)."""
    return _pages(db_api.list_claimed, context, page_size)


def _pages(list_page, context, page_size, **filters):
    marker = None
    while True:
        page = list_page(context, marker=marker, limit=page_size, **filters)
        if page:
            yield page
        if len(page) < page_size:
            return
        marker = page[-1].id


# --- store names ------------------------------------------------------------


class StoreNames:
    """Names the store of a location without ever showing its URL.

    :param multistore: read the backend from the location's metadata
        (``enabled_backends`` is set); the URL scheme when there is none.
    :param encryption_key: ``metadata_encryption_key``, or None.
    """

    def __init__(self, multistore, encryption_key=None):
        self._multistore = multistore
        self._encryption_key = encryption_key

    def of(self, location):
        """The store name of a PendingLocation; UNREADABLE if unknown."""
        if self._multistore:
            try:
                backend = location.store_name()
            except ValueError:
                return UNREADABLE
            if backend:
                return backend
        return self._scheme(location.url)

    def of_image(self, image):
        """The distinct store names of an image's locations, in order."""
        names = []
        for location in image.locations:
            name = self.of(location)
            if name not in names:
                names.append(name)
        return names

    def _scheme(self, value):
        try:
            url = (crypt.urlsafe_decrypt(self._encryption_key, value)
                   if self._encryption_key else value)
        except ValueError:
            return UNREADABLE
        scheme, separator, _rest = url.partition('://')
        # A value with no scheme, or a wrong key's garbage, is not shown.
        return scheme if separator and _SCHEME.fullmatch(scheme) \
            else UNREADABLE


# --- --list -----------------------------------------------------------------


@dataclasses.dataclass
class ListTotals:
    """What --list counted, for its closing lines."""

    images: int = 0
    bytes: int = 0
    oldest: datetime.datetime = None
    due_images: int = 0
    due_bytes: int = 0

    def add(self, image, due):
        size = image.size or 0
        self.images += 1
        self.bytes += size
        if image.deleted_at is not None and (
                self.oldest is None or image.deleted_at < self.oldest):
            self.oldest = image.deleted_at
        if due:
            self.due_images += 1
            self.due_bytes += size


@dataclasses.dataclass
class ClaimedListTotals:
    """What --list counted of the claimed images, for their closing line.

    ``next_takeable_in`` is the time left before the first claim that
    cannot be taken over yet can be; None when every claim can be now.
    """

    images: int = 0
    bytes: int = 0
    takeable_now: int = 0
    next_takeable_in: float = None

    def add(self, image, takeable_in):
        self.images += 1
        self.bytes += image.size or 0
        if takeable_in <= 0:
            self.takeable_now += 1
        elif self.next_takeable_in is None or \
                takeable_in < self.next_takeable_in:
            self.next_takeable_in = takeable_in


LIST_HEADER = ('ID', 'DELETED_AT', 'DUE_IN', 'SIZE', 'LOCATIONS', 'STORES')
CLAIMED_HEADER = ('ID', 'CLAIMED_AT', 'TAKEABLE_IN', 'SIZE', 'LOCATIONS',
                  'STORES')
CLAIMED_TITLE = ('Claimed by a scrub pass and not finished: they cannot be '
                 'restored, and a pass takes them over once the claim is '
                 'old enough')


def print_backlog(context, scrub_time, store_names, out,
                  page_size=LIST_PAGE_SIZE, claim_timeout=3600,
                  coordinated=False):
    """Print one line per pending_delete image, then the totals.

    Then the images claimed by passes and not finished, and their totals.

    :param scrub_time: ``scrub_time``: an image is due this many seconds
        after its deletion.
    :param store_names: a StoreNames.
    :param out: the text stream to print to.
    :param claim_timeout: ``scrub_claim_timeout``: a claim may be taken
        over this many seconds after it was made.
    :param coordinated: ``[coordination] backend_url`` is set: a dead
        member's claims go sooner, which --list cannot tell (it joins no
        group), and says so.
    :returns: the ListTotals and the ClaimedListTotals.
    """
    now = timeutils.utcnow()
    totals = ListTotals()
    print(_columns(LIST_HEADER), file=out)
    for page in pages(context, page_size):
        for image in page:
            due_in = _due_in(image, scrub_time, now)
            totals.add(image, due_in is not None and due_in <= 0)
            print(_image_line(image, image.deleted_at, _describe_due(due_in),
                              store_names), file=out)
        out.flush()
    for line in _list_totals(totals, scrub_time, now):
        print(line, file=out)
    claimed = _print_claimed(context, claim_timeout, store_names, out,
                             page_size, now)
    for line in _claimed_totals(claimed, claim_timeout, coordinated):
        print(line, file=out)
    return totals, claimed


def _print_claimed(context, claim_timeout, store_names, out, page_size,
                   now):
    """One line per claimed image, under a title printed if there is any."""
    totals = ClaimedListTotals()
    timeout = datetime.timedelta(seconds=claim_timeout)
    for page in claimed_pages(context, page_size):
        for image in page:
            if not totals.images:
                print('', file=out)
                print(CLAIMED_TITLE + ':', file=out)
                print(_columns(CLAIMED_HEADER, CLAIMED_WIDTHS), file=out)
            takeable_in = (image.claimed_at + timeout - now).total_seconds()
            totals.add(image, takeable_in)
            print(_image_line(image, image.claimed_at,
                              _describe_due(takeable_in), store_names,
                              CLAIMED_WIDTHS), file=out)
        out.flush()
    return totals


# The id is 36 characters; the other columns are short.
LIST_WIDTHS = (36, 19, 9, 12, 9)
CLAIMED_WIDTHS = (36, 19, 11, 12, 9)


def _image_line(image, moment, wait, store_names, widths=LIST_WIDTHS):
    """An image's line: id, a time, how long it waits, size, locations."""
    return _columns((
        image.id, _timestamp(moment), wait,
        '-' if image.size is None else str(image.size),
        str(len(image.locations)),
        ','.join(store_names.of_image(image)) or '-'), widths)


def _columns(values, widths=LIST_WIDTHS):
    return '  '.join([value.ljust(width) for value, width
                      in zip(values, widths)] + list(values[len(widths):]))


def _due_in(image, scrub_time, now):
    """Seconds until a pass may take the image; None if it never will."""
    if image.deleted_at is None:
        return None
    due_at = image.deleted_at + datetime.timedelta(seconds=scrub_time)
    return (due_at - now).total_seconds()


def _describe_due(due_in):
    if due_in is None:
        return 'never'  # no deleted_at: no pass takes it
    if due_in <= 0:
        return 'now'
    return duration(due_in)


def _list_totals(totals, scrub_time, now):
    oldest = ''
    if totals.oldest is not None:
        oldest = '; oldest deleted %s (%s ago)' % (
            _timestamp(totals.oldest),
            duration((now - totals.oldest).total_seconds()))
    yield 'Backlog: %s, %s%s' % (_images(totals.images),
                                 _bytes(totals.bytes), oldest)
    yield 'Due now: %s, %s; inside scrub_time (%d s): %s, %s' % (
        _images(totals.due_images), _bytes(totals.due_bytes), scrub_time,
        _images(totals.images - totals.due_images),
        _bytes(totals.bytes - totals.due_bytes))


def _claimed_totals(totals, claim_timeout, coordinated):
    line = 'Claimed: %s' % _images(totals.images)
    if totals.images:
        line += ', %s; may be taken over now: %s' % (
            _bytes(totals.bytes), _images(totals.takeable_now))
        if totals.next_takeable_in is not None:
            line += '; the next in %s' % duration(totals.next_takeable_in)
        line += ' (scrub_claim_timeout: %d s)' % claim_timeout
    yield line
    if totals.images and coordinated:
        yield ('With [coordination] backend_url set, the claims of a '
               'scrubber that left the group are taken over %d s after they '
               'were made instead' % coordination.Member.ORPHAN_AGE)


# --- --dry-run --------------------------------------------------------------


class Decision:
    """The words --dry-run prints for what a pass would do to a location."""

    DELETE = 'delete'
    KEEP_SHARED = 'keep-shared'
    LET_GO = 'let-go'
    GONE = 'gone'
    REFUSE = 'refuse'
    NOT_REACHED = 'not-reached'

    ALL = (DELETE, KEEP_SHARED, LET_GO, GONE, REFUSE, NOT_REACHED)


_PLANNED = {
    store_deleter.Deletion.DELETED: (
        Decision.DELETE, 'the store is asked to delete the data'),
    store_deleter.Deletion.SHARED: (
        Decision.KEEP_SHARED, 'data kept, another image may need it (it is '
        'live, or pending_delete and restorable); the location is recorded '
        'deleted'),
    store_deleter.Deletion.NOT_OWNED: (
        Decision.LET_GO, 'data kept, the store cannot delete (Glance never '
        'owned it); the location is recorded deleted'),
    store_deleter.Deletion.ALREADY_GONE: (
        Decision.GONE, 'no configured backend matches the location: '
        'recorded deleted as already gone'),
}

IN_USE_CAVEAT = ('unless the store finds the data in use (RBD clones): it '
                 'only says so when asked to delete, and the image is then '
                 'kept for a later pass')


@dataclasses.dataclass
class DryRunTotals:
    """What --dry-run counted, for its closing line."""

    images: int = 0
    would_scrub: int = 0
    would_fail: int = 0
    bytes: int = 0
    rbd_deletes: int = 0
    decisions: dict = dataclasses.field(
        default_factory=lambda: dict.fromkeys(Decision.ALL, 0))


class DryRun:
    """Says what a pass would do with each due image, and does nothing.

    The images are read many at a time, and the users of their data
    looked up at once, as a pass looks ahead (data_users.LookAheadSize);
    then taken a page at a time, as a pass claims them: the images of a
    page stop being users of their data (DataUsers) as they would once
    claimed, in memory only. Each location is then judged by
    StoreDeleter.plan(), in order; as in a pass, the first refused
    location fails its image and the ones after it are not reached.

    :param deleter: a StoreDeleter (its stores loaded); only its plan()
        is used.
    :param data_users: the DataUsers that deleter asks.
    :param store_names: a StoreNames.
    :param out: the text stream to print to.
    """

    def __init__(self, context, deleter, data_users, scrub_time,
                 store_names, out, page_size=DRY_RUN_PAGE_SIZE):
        self._context = context
        self._deleter = deleter
        self._data_users = data_users
        self._scrub_time = scrub_time
        self._store_names = store_names
        self._out = out
        self._page_size = page_size

    def run(self):
        """Print the plan of every due image, then the totals."""
        totals = DryRunTotals()
        deleted_before = timeutils.utcnow() - datetime.timedelta(
            seconds=self._scrub_time)
        self._deleter.start_pass()
        self._data_users.forget()
        self._data_users.refresh(self._context)
        for chunk in self._looked_ahead(deleted_before):
            for start in range(0, len(chunk), self._page_size):
                self._plan_page(chunk[start:start + self._page_size],
                                totals)
        for line in self._closing_lines(totals):
            self._print(line)
        return totals

    def _looked_ahead(self, deleted_before):
        """The due images, many at a time, the users of their data known."""
        size = data_users_index.LookAheadSize()
        started = time.monotonic()
        planned = 0
        marker = None
        while True:
            wanted = max(size(), self._page_size)
            chunk = db_api.list_backlog(self._context, marker=marker,
                                        limit=wanted,
                                        deleted_before=deleted_before)
            if not chunk:
                return
            self._data_users.look_ahead(self._context,
                                        [image.id for image in chunk])
            size.took(self._data_users.lookup_seconds,
                      planned / (time.monotonic() - started))
            yield chunk
            planned += len(chunk)
            if len(chunk) < wanted:
                return
            marker = chunk[-1].id

    def _plan_page(self, page, totals):
        claims = [db_api.Claim(image.id, image.size or 0, None,
                               image.locations) for image in page]
        self._data_users.claimed(claims)
        for image, claim in zip(page, claims):
            self._plan_image(image, totals)
            self._data_users.finished(claim)
        self._out.flush()

    def _plan_image(self, image, totals):
        lines = []
        failed = False
        for location in image.locations:
            store = self._store_names.of(location)
            if failed:
                decision, detail = Decision.NOT_REACHED, (
                    'the image fails before it')
            else:
                decision, detail = self._plan_location(image, location)
                failed = decision == Decision.REFUSE
            totals.decisions[decision] += 1
            if decision == Decision.DELETE:
                totals.bytes += image.size or 0
                if self._is_rbd(location, store):
                    totals.rbd_deletes += 1
                    detail = '%s, %s' % (detail, IN_USE_CAVEAT)
            lines.append('  location %d %s: %s (%s)' % (
                location.id, store, decision, detail))
        totals.images += 1
        if failed:
            totals.would_fail += 1
            verdict = 'would fail, stays pending_delete for the next pass'
        else:
            totals.would_scrub += 1
            verdict = 'would be scrubbed'
        self._print('Image %s: %s (%s, size %s)' % (
            image.id, verdict, _locations(len(image.locations)),
            '-' if image.size is None else image.size))
        for line in lines:
            self._print(line)

    def _plan_location(self, image, location):
        try:
            deletion = self._deleter.plan(image.id, location)
        except errors.LocationError as error:
            return Decision.REFUSE, '%s; the image fails' % error
        return _PLANNED[deletion]

    def _is_rbd(self, location, store):
        if store == RBD_SCHEME:
            return True
        try:
            return self._deleter.url_of(location.url).startswith(
                RBD_SCHEME + '://')
        except errors.LocationError:
            return False

    def _closing_lines(self, totals):
        counts = ', '.join('%d %s' % (totals.decisions[decision], decision)
                           for decision in Decision.ALL)
        yield ('Dry run: %s due, %d would be scrubbed, %d would fail; '
               'locations: %s; up to %s reclaimed' % (
                   _images(totals.images), totals.would_scrub,
                   totals.would_fail, counts, _bytes(totals.bytes)))
        if totals.rbd_deletes:
            yield ('Note: %s on RBD: each would be deleted %s.'
                   % (_locations(totals.rbd_deletes), IN_USE_CAVEAT))
        yield ('Nothing was deleted and nothing was written to the '
               'database; the stores were not asked, so data already gone '
               'counts as a delete here.')

    def _print(self, line):
        print(line, file=self._out)


# --- formatting -------------------------------------------------------------


def duration(seconds):
    """A short duration: '45s', '9m12s', '3h05m', '2d04h' (rounded up)."""
    seconds = int(math.ceil(max(seconds, 0)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return '%dd%02dh' % (days, hours)
    if hours:
        return '%dh%02dm' % (hours, minutes)
    if minutes:
        return '%dm%02ds' % (minutes, seconds)
    return '%ds' % seconds


def _timestamp(moment):
    return '-' if moment is None else moment.strftime('%Y-%m-%dT%H:%M:%S')


def _images(count):
    return '%d image%s' % (count, '' if count == 1 else 's')


def _locations(count):
    return '%d location%s' % (count, '' if count == 1 else 's')


def _bytes(count):
    """'3072 bytes (3.0 KiB)'; the exact count first, for scripts."""
    if count < 1024:
        return '%d bytes' % count
    value = float(count)
    for unit in ('KiB', 'MiB', 'GiB', 'TiB', 'PiB'):
        value /= 1024
        if value < 1024:
            break
    return '%d bytes (%.1f %s)' % (count, value, unit)
