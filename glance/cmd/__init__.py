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
"""

import os
import sys
import warnings

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
                            message=r'.*eventlet')
else:
    # futurist imports eventlet whenever it is installed, and eventlet's
    # deprecation warning would then reach cron's mail on every run of a
    # backend that does not use it.
    warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')

from oslo_service import backend as service_backend  # noqa: E402

service_backend.init_backend(service_backend.BackendType(BACKEND))
