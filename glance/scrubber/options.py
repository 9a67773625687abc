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

"""The scrubber's options, and the settings read from them once at start.

The declarations are the documentation: the sample configuration and the
configuration reference are generated from their help texts
(oslo-config-generator namespace ``glance.scrubber``). Settings.from_conf()
reads and checks every value the command needs, once; no other piece of
the scrubber reads the configuration in the middle of its work.
"""

import dataclasses
import math
import os

from oslo_config import cfg
from oslo_utils import uuidutils

from glance import _compat
from glance.common import crypt
from glance.common import exception
from glance.i18n import _
from glance.scrubber import metrics

# The longest time the options in seconds accept, about 68 years: "now
# minus scrub_time" must still be a date the database can hold.
MAX_SECONDS = 2 ** 31 - 1
# Beyond a thousand workers, threads and store connections cost more than
# any store gains.
MAX_POOL_SIZE = 1000

scrubber_opts = [
    cfg.IntOpt('scrub_time', default=0, min=0, max=MAX_SECONDS, help=_("""
The time, in seconds, to keep an image's data after the image is deleted.

With ``delayed_delete`` on, a deleted image becomes eligible for
scrubbing this many seconds after its deletion; until then its data stays
in the store and an operator can still bring it back with
``glance-scrubber --restore``.

Possible values:
    * 0 (scrub as soon as the scrubber runs) or any number of seconds up
      to 2147483647 (68 years)

Related options:
    * delayed_delete
    * wakeup_time
""")),
    cfg.IntOpt('scrub_pool_size', default=1, min=1, max=MAX_POOL_SIZE,
               help=_("""
The number of images scrubbed at the same time.

A scrub pass hands each eligible image to a pool of this many workers; the
locations of one image are still deleted one after another. 1 scrubs
images one at a time, in a stable order. A larger pool keeps up with a
long backlog when each delete waits on the store (object stores, remote
back ends), at the cost of that many requests in flight against the store
at once: size it against the store's rate limits.

The workers are native threads under the threading backend (the default)
and green threads under the eventlet backend; the backend is chosen with
the ``OS_GLANCE_SCRUBBER_BACKEND`` environment variable.

Possible values:
    * An integer from 1 to 1000; 1 means serial scrubbing

Related options:
    * delayed_delete
    * wakeup_time
""")),
    cfg.IntOpt('scrub_claim_timeout', default=3600, min=60, max=MAX_SECONDS,
               help=_("""
The time, in seconds, after which a scrub pass's claim on an image is
considered abandoned.

Before deleting any of an image's data, a pass claims the image in the
database: the image becomes ``deleted`` at once (so it can no longer be
restored) and its locations stay ``pending_delete`` until their data is
gone. If the pass stops before it finishes (the process is killed, the
host fails), a later pass takes the claim over once it is this old and
deletes whatever data is left. Set it well above the time one image's
data can take to delete; a claim taken over too early only makes two
passes delete the same data.

Possible values:
    * Any number of seconds from 60 to 2147483647 (68 years)

Related options:
    * scrub_pool_size
    * wakeup_time
""")),
    cfg.FloatOpt('scrub_not_found_ratio', default=0.5, min=0.0, max=1.0,
                 help=_("""
The share of the first deletes of a pass that may find no data before the
pass stops.

A scrubber pointed at the wrong store (another S3 endpoint or bucket, a
file store whose file system is not mounted) finds no data anywhere, and
"not found" normally counts as already deleted. So the first 20 deletes
of each pass are watched: when more than this share of them find nothing,
the pass takes no more images, leaves those images ``pending_delete``
without recording anything about the missing data, and exits with an
error. Images a stopped pass had already claimed are not counted: their
data is expected to be gone.

Possible values:
    * A number from 0.0 (any missing data among the first deletes stops
      the pass) to 1.0 (never stop)

Related options:
    * scrub_claim_timeout
""")),
    cfg.FloatOpt('scrub_store_rate_limit', default=0.0, min=0.0, help=_("""
The most location deletes per second one scrubber asks its stores for, in
all.

Deletes are spaced evenly so that the cap holds over any second, however
many workers ``scrub_pool_size`` runs. One delete costs the store one or
more requests (two on S3: a HEAD, then the DELETE); size the cap against
the store's request limit accordingly, divided by the number of
scrubbers sharing the store.

Without a cap the scrubber still protects its store: a store that answers
"slow down" (S3 and Ceph RGW ``503 SlowDown``, Swift ``498`` or ``429``,
any ``503``) makes the pass lower the number of deletes it has in flight
(halved at each throttled round, raised again by about one per successful
round, never above ``scrub_pool_size``) and ask again for the throttled
delete after a jittered, growing wait.

Possible values:
    * 0 (no cap, the default) or any positive number of deletes per
      second

Related options:
    * scrub_pool_size
""")),
    cfg.IntOpt('scrub_store_timeout', default=600, min=0, max=MAX_SECONDS,
               help=_("""
The longest time, in seconds, one store call may take: the delete of one
location's data, the look-up of each S3 bucket and RBD pool at start, and
for ``--restore`` the look-up of the image's data.

A delete that gives no answer in time fails its image: the reason is
logged, the image is not scrubbed in this pass, the pass goes on with the
other images and exits 1. The timed-out call cannot be interrupted and may
still delete the data later, so the image is not handed back to
``pending_delete`` (where a restore could bring it back without its
data): it stays claimed, as after a crash, and a later pass takes it over
once the claim is ``scrub_claim_timeout`` old. The default leaves room for
the delete of a large RBD image or a Swift object of thousands of
segments, while a hung store still cannot hold a pass for more than ten
minutes; keep it well below ``scrub_claim_timeout``.

A store that leaves three calls in a row unanswered (timed out, or
unreachable, or answering with server errors) stops the pass: it claims
no more images and gives back, untouched and restorable, those it had
claimed and not started. At start, or under ``--restore``, such a store
is refused with exit status 4 ("store unavailable") within about this
bound.

When set, it is also the default of glance_store's
``rados_connect_timeout`` for the RBD stores where that option is unset,
so that librados ends a hung call by itself.

Possible values:
    * 0: no bound, a store call may wait forever
    * Any positive number of seconds

Related options:
    * scrub_claim_timeout
    * rados_connect_timeout
""")),
    cfg.IntOpt('wakeup_time', default=300, min=0, max=MAX_SECONDS, help=_("""
The time, in seconds, the scrubber daemon sleeps between two passes.

The daemon starts its next pass this long after the previous pass ended,
so passes never overlap however long one takes. It applies to
``glance-scrubber --daemon`` only; run once (the default), the scrubber
does a single pass and exits.

Possible values:
    * 0 (start the next pass at once) or any number of seconds up to
      2147483647 (68 years)

Related options:
    * daemon
    * scrub_time
""")),
    cfg.IntOpt('report_interval', default=60, min=1, max=MAX_SECONDS,
               help=_("""
The time, in seconds, between two progress lines of a scrub pass.

While a pass runs, the scrubber logs a "Scrub pass in progress" line this
often (images found, scrubbed, failed, skipped, in use, in flight, data
reclaimed), and rewrites the ``metrics_file``, when one is set, at the
same period; a daemon also rewrites it this often between passes, so
that the backlog it shows stays current.

Possible values:
    * Any number of seconds from 1 to 2147483647 (68 years)

Related options:
    * metrics_file
    * wakeup_time
""")),
    cfg.StrOpt('metrics_file', help=_("""
A file to write the scrubber's metrics to, for Prometheus.

When set, the scrubber writes the Prometheus text format to this file
after each pass and every ``report_interval`` seconds: the images the
last pass scrubbed, failed, skipped and kept in use, the bytes it
reclaimed and its duration, the images still pending_delete and the age
of the oldest, and the time of the last pass with no failed image. Point
it into the directory of node_exporter's textfile collector, with a name
ending in ``.prom``. The file is replaced atomically (a temporary file in
the same directory, then a rename) with mode 0644. Its directory must
exist and be writable, or the scrubber refuses to start; ``--restore``
does not use it. Unset (the default), no metrics are written.

Possible values:
    * Unset, or the path of a file in a writable directory

Related options:
    * report_interval
""")),
]

scrubber_cmd_cli_opts = [
    cfg.BoolOpt('daemon', short='D', default=False, help=_("""
Run the scrubber as a daemon.

By default the scrubber does one pass and exits, for cron or a systemd
timer; with this option it runs a pass every ``wakeup_time`` seconds
until it receives SIGTERM or SIGINT.

Possible values:
    * True
    * False

Related options:
    * wakeup_time
    * restore
""")),
    cfg.StrOpt('restore', metavar='IMAGE_ID', help=_("""
Restore an image that is waiting to be scrubbed.

Brings the pending_delete image IMAGE_ID back to active as it was before
its deletion, and exits: its locations whose data is still in their store,
and the properties, tags and members deleted with it. Only an image in
pending_delete with data left can be restored; an image a scrub pass has
claimed cannot, and the command refuses while a scrub pass runs on this
host. It cannot be combined with ``--daemon``.

Possible values:
    * An image ID (a UUID). Anything else, an empty value included, is
      refused at start (exit 2) before the database or a store is used.

Related options:
    * daemon
""")),
    cfg.BoolOpt('list', default=False, help=_("""
List the pending_delete images waiting to be scrubbed, and exit.

Prints one line per image (id, deletion time, time left before a pass may
take it given ``scrub_time``, size, number of pending_delete locations and
the names of their stores; never the location URLs, which may hold
credentials), then the totals: images, bytes, the oldest deletion, and how
many are due now or still inside ``scrub_time``. It only reads the
database: nothing is deleted or written and the scrub lock is not taken,
so it is safe while a pass runs on this or another host. It cannot be
combined with ``--daemon``, ``--restore`` or ``--dry-run``.

Possible values:
    * True
    * False

Related options:
    * scrub_time
    * dry_run
""")),
    cfg.BoolOpt('dry-run', default=False, help=_("""
Show what a scrub pass would do now, without doing it, and exit.

Goes through the images a pass would take (pending_delete for at least
``scrub_time`` seconds) and prints, for each of their pending_delete
locations in order, what the pass would decide: delete the data, keep it
because another image may need it, let it go because the store cannot
delete, or refuse it (outside every file datadir, no configured store,
undecryptable), in which case the image would fail; then the totals. The
stores are not asked, so data already gone or in use (RBD clones) shows as
a delete. Nothing is deleted or written to the database and the scrub lock
is not taken, so it is safe while a pass runs on this or another host. It
cannot be combined with ``--daemon`` or ``--restore``.

Possible values:
    * True
    * False

Related options:
    * scrub_time
    * list
""")),
]


def register_opts(conf):
    conf.register_opts(scrubber_opts)


def register_cli_opts(conf):
    conf.register_cli_opts(scrubber_cmd_cli_opts)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every option value a scrubber command uses, read and checked once.

    Named as the options are. ``restore`` is None when ``--restore`` was
    not given: never test it for truth (an empty id is refused).
    """

    daemon: bool = False
    restore: str = None
    list: bool = False
    dry_run: bool = False
    scrub_pool_size: int = 1
    scrub_time: int = 0
    wakeup_time: int = 300
    report_interval: float = 60.0
    metrics_file: str = None
    metadata_encryption_key: str = None
    scrub_claim_timeout: int = 3600
    scrub_not_found_ratio: float = 0.5
    scrub_store_rate_limit: float = 0.0
    scrub_store_timeout: int = 600
    lock_path: str = None

    @classmethod
    def from_conf(cls, conf):
        """Read and check the settings of *conf* (parsed).

        :raises InvalidConfiguration: a value is missing, out of range, or
            a combination of modes is refused.
        """
        try:
            values = {field.name: _read(conf, field.name)
                      for field in dataclasses.fields(cls)}
        except (cfg.Error, ValueError) as error:
            raise exception.InvalidConfiguration(
                reason=_compat.option_error_text(error))
        settings = cls(**values)
        settings.check()
        return settings

    @property
    def restoring(self):
        """Whether --restore was given, whatever its value."""
        return self.restore is not None

    @property
    def read_only(self):
        """Whether the command only reads (--list, --dry-run): no lock."""
        return self.list or self.dry_run

    @property
    def workers(self):
        """How many store calls may run at once: one for a restore."""
        return 1 if self.restoring else self.scrub_pool_size

    def check(self):
        """:raises InvalidConfiguration: see from_conf()."""
        self._check_values()
        self._check_restore_id()
        if self.daemon and self.restoring:
            raise exception.InvalidConfiguration(
                reason=_('--restore cannot be combined with --daemon'))
        self._check_read_only_modes()
        if not self.read_only:
            _check_lock_path(self.lock_path)
        # Only passes write metrics: not a restore, --list nor --dry-run.
        if self.metrics_file and not (self.restoring or self.read_only):
            try:
                metrics.check_writable(self.metrics_file)
            except ValueError as error:
                raise exception.InvalidConfiguration(reason=str(error))
        if self.metadata_encryption_key:
            try:
                crypt.validate_key(self.metadata_encryption_key)
            except ValueError as error:
                raise exception.InvalidConfiguration(reason=str(error))

    def _check_values(self):
        for name in _NEEDS_A_VALUE:
            if getattr(self, name) is None:
                raise exception.InvalidConfiguration(
                    reason=_('%s is empty: give it a value, or remove the '
                             'line to use its default') % name)
        for name in _FINITE:
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise exception.InvalidConfiguration(
                    reason=_('%(option)s must be a finite number, not '
                             '%(value)s') % {'option': name, 'value': value})

    def _check_restore_id(self):
        # An empty value (a restore script's unset variable) must not be
        # taken for no --restore at all: that would run a scrub pass.
        if self.restoring and not uuidutils.is_uuid_like(self.restore):
            raise exception.InvalidConfiguration(
                reason=_('--restore needs the ID of an image (a UUID), not '
                         '%r') % self.restore)

    def _check_read_only_modes(self):
        """--list and --dry-run are modes of their own: refuse a mix."""
        given = {'list': self.list, 'dry_run': self.dry_run,
                 'restore': self.restoring, 'daemon': self.daemon}
        for mode, excluded in (('list', ('dry_run', 'restore', 'daemon')),
                               ('dry_run', ('restore', 'daemon'))):
            clash = [_flag(name) for name in excluded if given[name]]
            if given[mode] and clash:
                raise exception.InvalidConfiguration(
                    reason=_('%(mode)s cannot be combined with %(others)s')
                    % {'mode': _flag(mode), 'others': ', '.join(clash)})


def _read(conf, name):
    if name == 'lock_path':
        return conf.oslo_concurrency.lock_path
    return conf[name]


def _flag(name):
    return '--' + name.replace('_', '-')


# Options with no meaning when empty: an ``option =`` line in a file gives
# None, not the option's default.
_NEEDS_A_VALUE = ('scrub_pool_size', 'scrub_time', 'wakeup_time',
                  'report_interval', 'scrub_claim_timeout',
                  'scrub_store_timeout', 'scrub_not_found_ratio')
# Float options: nan passes oslo.config's min and max checks.
_FINITE = ('scrub_not_found_ratio', 'scrub_store_rate_limit')


def _check_lock_path(lock_path):
    if not lock_path:
        raise exception.InvalidConfiguration(
            reason=_('[oslo_concurrency] lock_path is not set: scrub '
                     'passes and --restore share a lock file there'))
    try:
        os.makedirs(lock_path, exist_ok=True)
    except OSError as error:
        raise exception.InvalidConfiguration(
            reason=_('[oslo_concurrency] lock_path %(path)s cannot be '
                     'created: %(error)s')
            % {'path': lock_path, 'error': error.strerror})
    if not os.access(lock_path, os.W_OK | os.X_OK):
        raise exception.InvalidConfiguration(
            reason=_('[oslo_concurrency] lock_path %s is not writable')
            % lock_path)
