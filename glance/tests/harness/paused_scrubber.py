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

"""The real glance-scrubber, paused once at a named step of a scrub.

    python -m glance.tests.harness.paused_scrubber STEP FOLDER ARGS...

runs glance-scrubber's own main() with ARGS, in this process, on the
concurrency backend the environment picks. The first time the pass
reaches STEP it writes FOLDER/reached and waits until FOLDER/go exists;
a test lands whatever it wants there (a restore from another host, a
kill -9) and then lets it go, or not. Nothing else is changed: each step
wraps the function that begins it.

Steps, in the order a scrub goes through them:

* ``claim``: the pass is about to claim a batch of images;
* ``delete``: an image is claimed, its worker is about to ask the store
  to delete its first location;
* ``store``: inside the file store's delete, the first file just
  unlinked, the call not yet returned;
* ``record``: the pass is about to record finished images.
"""

import functools
import os
import sys
import time

# First: picks the concurrency backend (and monkey patches for eventlet).
from glance.cmd import scrubber as scrubber_cmd  # noqa: I100

from glance_store._drivers import filesystem  # noqa: I100

from glance.db.sqlalchemy import api as db_api
from glance.scrubber.stores import deleter as store_deleter

POLL = 0.02


def _pause_once(function, folder, after=False):
    paused = []

    @functools.wraps(function)
    def paused_function(*args, **kwargs):
        if after:
            result = function(*args, **kwargs)
        if not paused:
            paused.append(True)
            _wait_for_go(folder)
        return result if after else function(*args, **kwargs)

    return paused_function


def _wait_for_go(folder):
    with open(os.path.join(folder, 'reached'), 'w') as reached:
        reached.write(str(os.getpid()))
    go = os.path.join(folder, 'go')
    while not os.path.exists(go):
        time.sleep(POLL)


def _unlink_then_pause(folder):
    original = filesystem.Store.delete

    def delete(store, location, context=None):
        return original(store, location, context=context)

    return _pause_once(delete, folder, after=True)


STEPS = {
    'claim': lambda folder: _patch(db_api, 'claim_images', folder),
    'delete': lambda folder: _patch(store_deleter.StoreDeleter, 'delete',
                                    folder),
    'store': lambda folder: setattr(filesystem.Store, 'delete',
                                    _unlink_then_pause(folder)),
    'record': lambda folder: _patch(db_api, 'record_scrubs', folder),
}


def _patch(owner, name, folder):
    setattr(owner, name, _pause_once(getattr(owner, name), folder))


def main(argv):
    step, folder, args = argv[0], argv[1], argv[2:]
    STEPS[step](folder)
    return scrubber_cmd.main(args)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
