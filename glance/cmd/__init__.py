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

"""Command line entry points.

Importing this package picks the process's concurrency backend, before
anything else is imported, from the ``OS_GLANCE_SCRUBBER_BACKEND``
environment variable:

* ``threading`` (the default): no monkey patching; images are scrubbed
  by native threads (``futurist.ThreadPoolExecutor``);
* ``eventlet``: the process is monkey patched and images are scrubbed by
  green threads (``futurist.GreenThreadPoolExecutor``); the store calls
  that block in C (librbd) run in eventlet's native thread pool
  (glance.scrubber.stores.calls.StoreCalls).

Threading is the default because every store scales on it: librbd holds
eventlet's hub while it works, so green workers delete RBD images one at
a time whatever ``scrub_pool_size`` says.

The choice is made once per process and applies to oslo.service too.

Importing this package also sends Python's warnings to the log, whatever
the installed libraries warn about: the commands run from cron, which
mails whatever reaches stderr.
"""

import atexit
import logging
import os
import sys
import warnings

from glance import _compat


class _HeldWarnings(logging.Handler):
    """The warnings raised before the log is set up, kept for it."""

    LIMIT = 100

    def __init__(self):
        super().__init__()
        self.records = []
        self.dropped = 0

    def emit(self, record):
        if len(self.records) < self.LIMIT:
            self.records.append(record)
        else:
            self.dropped += 1


_WARNINGS_LOG = logging.getLogger('py.warnings')
_HELD_WARNINGS = _HeldWarnings()


def log_held_warnings():
    """The log is set up: log the warnings held until now, and the next.

    Called by a command right after oslo.log's setup; otherwise at exit,
    if the process set its log up by then (glance-manage).
    """
    if _HELD_WARNINGS not in _WARNINGS_LOG.handlers:
        return
    _WARNINGS_LOG.removeHandler(_HELD_WARNINGS)
    _WARNINGS_LOG.propagate = True
    records, _HELD_WARNINGS.records = _HELD_WARNINGS.records, []
    for record in records:
        _WARNINGS_LOG.handle(record)
    if _HELD_WARNINGS.dropped:
        _WARNINGS_LOG.warning('%d more warnings raised before the log was '
                              'set up were not kept',
                              _HELD_WARNINGS.dropped)


def _log_held_warnings_at_exit():
    # Before oslo.log's setup() the root logger's one handler, on stderr
    # for what is logged too early, is not a log.
    if _compat.oslo_log_is_set_up():
        log_held_warnings()


# Python's warnings are logged by the 'py.warnings' logger, from now on:
# those that libraries raise as they are imported, too. Until the command
# has set up its log (oslo.log), they are held, then logged through it.
# A process that ends before it has a log (refused at start for a bad
# command line or configuration file) drops them: its one line on stderr
# is what cron must mail. Warnings the interpreter raises before this
# package is imported (in sitecustomize) are not caught.
_WARNINGS_LOG.addHandler(_HELD_WARNINGS)
_WARNINGS_LOG.propagate = False
logging.captureWarnings(True)
atexit.register(_log_held_warnings_at_exit)

BACKEND_VARIABLE = 'OS_GLANCE_SCRUBBER_BACKEND'
BACKENDS = ('eventlet', 'threading')
DEFAULT_BACKEND = 'threading'


def _selected_backend():
    value = os.environ.get(BACKEND_VARIABLE, '').strip().lower()
    if not value:
        return DEFAULT_BACKEND
    if value not in BACKENDS:
        print('%s: %s=%s is not a concurrency backend: use one of %s'
              % (os.path.basename(sys.argv[0]), BACKEND_VARIABLE, value,
                 ', '.join(BACKENDS)), file=sys.stderr)
        sys.exit(2)
    return value


BACKEND = _selected_backend()

if BACKEND == 'eventlet':
    # eventlet warns on import that it is deprecated; the operator chose it
    # knowingly, and the threading backend is the way off it.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import eventlet
    eventlet.monkey_patch()
    # The same choice is then reported again by every library that has an
    # eventlet mode (oslo.log, oslo.service, oslo.utils, futurist's green
    # executor). Only their deprecation of eventlet is silenced, so that a
    # clean pass leaves stderr, and cron's mail, empty even when Python
    # shows every warning (-W default, development mode).
    warnings.filterwarnings('ignore', category=DeprecationWarning,
                            message=_compat.EVENTLET_MODE_DEPRECATED)
else:
    # futurist imports eventlet whenever it is installed, and eventlet's
    # deprecation warning would then reach cron's mail on every run of a
    # backend that does not use it.
    warnings.filterwarnings('ignore', message=_compat.EVENTLET_DEPRECATED)

from oslo_service import backend as service_backend  # noqa: E402

service_backend.init_backend(service_backend.BackendType(BACKEND))
