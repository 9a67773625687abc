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

"""The scrubber's metrics, as a file for node_exporter's textfile collector.

``metrics_file`` names a file that the scrubber rewrites after each pass,
at each progress report during a pass and, in a daemon, every
``report_interval`` seconds between passes: the Prometheus text
exposition format, written to a temporary file in the same directory and
renamed over the old one, so that the collector never reads half a file.

Every metric is a gauge. The scrubber is often a cron job: a new process
each pass, with nothing to keep a counter's running total in but this
file, and a counter rebuilt from a file that was lost or rewritten by
hand would go backwards. What an operator alerts on is the last pass
(did it fail, how long did it take), the backlog and the time of the last
successful pass; ``sum_over_time`` or recording rules make totals from
the gauges where they are wanted.

The time of the last successful pass must survive a failed pass and a
new process: it is read back from the existing file at start and kept in
memory from then on.
"""

import dataclasses
import os
import tempfile
import time

from oslo_db import exception as db_exception
from oslo_log import log as logging
from oslo_utils import timeutils
from sqlalchemy import exc as sa_exc

from glance.i18n import _

LOG = logging.getLogger(__name__)

PREFIX = 'glance_scrubber_'
LAST_SUCCESS = PREFIX + 'last_success_timestamp_seconds'
FILE_MODE = 0o644

# The results a pass counts, as the Summary attributes that hold them
# (Summary.OUTCOME_COUNTS): every image a pass found is in one of them.
RESULTS = ('scrubbed', 'failed', 'skipped', 'in_use', 'left_claimed',
           'given_back')


@dataclasses.dataclass(frozen=True)
class Gauge:
    """One metric family: a name, its help and its samples.

    ``samples`` holds (labels, value) pairs, labels a tuple of (name,
    value) pairs.
    """

    name: str
    help: str
    samples: tuple

    @classmethod
    def single(cls, name, help_text, value):
        return cls(name, help_text, (((), value),))


# --- the text format --------------------------------------------------------


def render(gauges):
    """The Prometheus text exposition format (version 0.0.4) of *gauges*."""
    lines = []
    for gauge in gauges:
        lines.append('# HELP %s %s' % (gauge.name, _escape_help(gauge.help)))
        lines.append('# TYPE %s gauge' % gauge.name)
        for labels, value in gauge.samples:
            lines.append('%s%s %s' % (gauge.name, _labels(labels),
                                      _number(value)))
    return ''.join(line + '\n' for line in lines)


def _escape_help(text):
    return text.replace('\\', '\\\\').replace('\n', '\\n')


def _labels(labels):
    if not labels:
        return ''
    return '{%s}' % ','.join('%s="%s"' % (name, _escape_label(value))
                             for name, value in labels)


def _escape_label(value):
    return (str(value).replace('\\', '\\\\').replace('"', '\\"')
            .replace('\n', '\\n'))


def _number(value):
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


# --- what is measured -------------------------------------------------------


def pass_gauges(summary, seconds, running):
    """The gauges of one pass, finished or (*running*) in progress.

    :param summary: a glance.scrubber.Summary, or anything with its
        counts.
    :param seconds: how long the pass has run.
    """
    return [
        Gauge(PREFIX + 'pass_images',
              'Images handled by the last scrub pass, or by the pass in '
              'progress so far, by result.',
              tuple(((('result', result),), getattr(summary, result))
                    for result in RESULTS)),
        Gauge.single(PREFIX + 'pass_locations_deleted',
                     'Image locations the last scrub pass recorded deleted.',
                     summary.locations_deleted),
        Gauge.single(PREFIX + 'pass_reclaimed_bytes',
                     'Bytes of image data the last scrub pass deleted.',
                     summary.bytes_reclaimed),
        Gauge.single(PREFIX + 'pass_duration_seconds',
                     'How long the last scrub pass took, or the pass in '
                     'progress has run.', float(seconds)),
        Gauge.single(PREFIX + 'pass_running',
                     '1 while a scrub pass runs (the pass_ gauges are its '
                     'counts so far), 0 once it has ended.',
                     1 if running else 0),
    ]


def backlog_gauges(totals, now):
    """The gauges of the images waiting for a scrub.

    :param totals: a glance.db.sqlalchemy.api.BacklogTotals.
    :param now: the current UTC time, naive like the database's.
    """
    oldest_age = 0.0
    if totals.oldest_deleted_at is not None:
        oldest_age = max(0.0,
                         (now - totals.oldest_deleted_at).total_seconds())
    return [
        Gauge.single(PREFIX + 'backlog_images',
                     'Images deleted with delayed_delete whose data still '
                     'waits for a scrub (status pending_delete).',
                     totals.count),
        Gauge.single(PREFIX + 'backlog_oldest_age_seconds',
                     'Seconds since the oldest pending_delete image was '
                     'deleted; 0 when there is none.', oldest_age),
    ]


def claims_gauges(elsewhere, now):
    """The gauges of the images claimed and not yet takeable.

    :param elsewhere: a glance.scrubber.model.ClaimsElsewhere.
    :param now: the current UTC time, naive like the database's.
    """
    return [
        Gauge.single(PREFIX + 'claimed_images',
                     'Images a scrub pass claimed and has not finished '
                     '(deleted, with pending_delete locations) whose claim '
                     'no pass may take over yet: a pass works on them, the '
                     'running one included, or one stopped and they wait. '
                     'They can be neither scrubbed nor restored meanwhile.',
                     elsewhere.count),
        Gauge.single(PREFIX + 'claimed_next_takeable_seconds',
                     'Seconds until the first of the claimed images may be '
                     'taken over by a pass; 0 when there is none.',
                     elsewhere.seconds_until_takeable(now)),
    ]


def last_success_gauge(timestamp):
    return Gauge.single(
        LAST_SUCCESS,
        'Unix time at which the last scrub pass that succeeded ended (no '
        'image failed or left claimed, not stopped early); 0 when none '
        'has yet.', timestamp or 0.0)


# --- the file ---------------------------------------------------------------


def check_writable(path):
    """Refuse a metrics file that could not be written, before any work.

    A file is created and removed in its directory: that answers for
    read-only file systems and permissions alike, root included.

    :raises ValueError: with a message that names the problem.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(_('metrics_file %(path)s: the directory %(dir)s '
                           'does not exist') % {'path': path,
                                                'dir': directory})
    if os.path.isdir(path):
        raise ValueError(_('metrics_file %s is a directory') % path)
    try:
        descriptor, probe = tempfile.mkstemp(dir=directory, suffix='.tmp')
    except OSError as error:
        raise ValueError(_('metrics_file %(path)s: the directory %(dir)s is '
                           'not writable: %(error)s') % {
            'path': path, 'dir': directory, 'error': error.strerror})
    os.close(descriptor)
    os.unlink(probe)


def write_atomically(path, text):
    """Replace the file at *path* with *text*, readers seeing old or new.

    The temporary file is in the same directory (a rename across file
    systems is not atomic) and does not end in ``.prom``, which the
    textfile collector would read.
    """
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(
        dir=directory, prefix='.%s.' % os.path.basename(path), suffix='.tmp')
    try:
        with os.fdopen(descriptor, 'w') as stream:
            # mkstemp makes the file 0600: the collector may run as
            # another user.
            os.fchmod(stream.fileno(), FILE_MODE)
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise


def _remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def read_last_success(path):
    """The last success time a previous run wrote to *path*, or None."""
    try:
        with open(path) as stream:
            lines = stream.read().splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        LOG.warning('Could not read the last success time back from the '
                    'metrics file %(path)s: %(error)s',
                    {'path': path, 'error': error})
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == LAST_SUCCESS:
            try:
                timestamp = float(fields[1])
            except ValueError:
                return None
            return timestamp if timestamp > 0 else None
    return None


class MetricsFile:
    """Writes the scrubber's metrics to *path*; never fails a pass.

    :param path: the ``metrics_file``.
    :param read_backlog: returns the current BacklogTotals (a database
        query); when the database cannot answer, the backlog gauges are
        left out of that write.
    :param clock: the wall clock (unix time), for the last success time.
    :param read_claims: returns the current ClaimsElsewhere (a database
        query), left out like the backlog when the database cannot
        answer; no claims gauges when None.
    """

    def __init__(self, path, read_backlog, clock=time.time,
                 read_claims=None):
        self.path = path
        self._read_backlog = read_backlog
        self._read_claims = read_claims
        self._clock = clock
        self.last_success = read_last_success(path)
        self._last_pass = []
        self._failing = False

    def pass_progress(self, summary, seconds):
        """At a progress report: the pass's counts so far."""
        self._write(pass_gauges(summary, seconds, running=True))

    def pass_finished(self, summary, succeeded):
        """After a pass; *succeeded* moves the last success time on."""
        if succeeded:
            self.last_success = self._clock()
        self._last_pass = pass_gauges(summary, summary.seconds,
                                      running=False)
        self._write(self._last_pass)

    def refresh(self):
        """Between passes: the backlog anew, the last pass as it was."""
        self._write(self._last_pass)

    def _write(self, gauges):
        gauges = list(gauges) + self._backlog() + self._claims() + [
            last_success_gauge(self.last_success)]
        try:
            write_atomically(self.path, render(gauges))
        except OSError as error:
            # Said once until a write succeeds again, rather than at
            # every report.
            if not self._failing:
                LOG.warning('Could not write the metrics file %(path)s: '
                            '%(error)s', {'path': self.path, 'error': error})
            self._failing = True
            return
        self._failing = False

    def _backlog(self):
        try:
            totals = self._read_backlog()
        except (db_exception.DBError, sa_exc.SQLAlchemyError) as error:
            LOG.warning('Metrics: could not count the backlog, left out of '
                        'the metrics file: %s', error)
            return []
        return backlog_gauges(totals, timeutils.utcnow())

    def _claims(self):
        if self._read_claims is None:
            return []
        try:
            elsewhere = self._read_claims()
        except (db_exception.DBError, sa_exc.SQLAlchemyError) as error:
            LOG.warning('Metrics: could not count the claimed images, left '
                        'out of the metrics file: %s', error)
            return []
        return claims_gauges(elsewhere, timeutils.utcnow())


class NoMetrics:
    """What the scrubber reports to when no ``metrics_file`` is set."""

    def pass_progress(self, summary, seconds):
        pass

    def pass_finished(self, summary, succeeded):
        pass

    def refresh(self):
        pass
