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

"""The image scrubber: reclaims the data of pending_delete images.

Its rooms, each with one job (layers only look down: the command uses
the scrubber, the scrubber uses the stores and the database, the stores
never use the database or the pass):

* options: the option declarations and the Settings read from them once;
* model: outcomes and the summary, the values a pass hands around;
* run: the pass, read top to bottom (Scrubber, Executors);
* claims: the queue of images a pass may claim;
* worker: deletes the locations of one claimed image, in order;
* recorder: the not-found guard, recording outcomes, progress lines;
* data_users: which other images may still need some data;
* lock, daemon: the scrub lock, and a pass every wakeup_time;
* restoring: --restore; backlog: --list and --dry-run;
* coordination: several scrubbers sharing the work (tooz); metrics;
* pass_watch: a pass that a stuck database cannot keep from stopping;
* stores: everything that talks to a store (glance.scrubber.stores).

The names below are the package's public ones, as they were when the
scrubber was one module.
"""

from glance.scrubber.claims import Queue  # noqa: F401
from glance.scrubber.daemon import Daemon  # noqa: F401
from glance.scrubber.lock import LOCK_NAME  # noqa: F401
from glance.scrubber.lock import LOCK_PREFIX  # noqa: F401
from glance.scrubber.lock import ScrubLock  # noqa: F401
from glance.scrubber.model import Outcome  # noqa: F401
from glance.scrubber.model import Result  # noqa: F401
from glance.scrubber.model import Summary  # noqa: F401
from glance.scrubber.options import MAX_POOL_SIZE  # noqa: F401
from glance.scrubber.options import MAX_SECONDS  # noqa: F401
from glance.scrubber.options import register_cli_opts  # noqa: F401
from glance.scrubber.options import register_opts  # noqa: F401
from glance.scrubber.options import scrubber_cmd_cli_opts  # noqa: F401
from glance.scrubber.options import scrubber_opts  # noqa: F401
from glance.scrubber.options import Settings  # noqa: F401
from glance.scrubber.restoring import restore  # noqa: F401
from glance.scrubber.run import Executors  # noqa: F401
from glance.scrubber.run import Scrubber  # noqa: F401
from glance.scrubber.worker import Worker  # noqa: F401
