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

"""glance-scrubber, counting the SQL statements it sends.

Usage: PYTHON counted_scrubber.py --config-file FILE [scrubber options]

Runs the same entry point as the installed ``glance-scrubber`` console
script (``glance.cmd.scrubber:main``) of whichever Glance the interpreter
PYTHON holds: this tree or upstream's. ``glance.cmd.scrubber`` is imported
first, so the process is monkey patched (or not) exactly as the console
script would leave it. One SQLAlchemy listener, on the Engine class so it
sees every engine, counts each statement sent to the database and each
COMMIT / ROLLBACK, and another the rows each SELECT of the location
table returned (location_rows). When the environment names
BENCH_COUNT_FILE, the counts are written there as JSON at exit, with the
path of the glance package that ran (so the benchmark can check it ran
the Glance it meant to).

The counts are written by an atexit handler registered before anything
else: upstream's one-shot pass only submits its jobs to an executor and
returns, and the jobs run while the interpreter shuts down, after main().
"""

import atexit
import collections
import json
import os
import sys

from glance.cmd import scrubber as scrubber_command

import glance  # noqa: I100 - after the command: it picks the backend
import sqlalchemy
from sqlalchemy import event

COUNTS = collections.Counter()


def _statement(conn, cursor, statement, parameters, context, executemany):
    COUNTS['statements'] += 1
    if executemany:
        COUNTS['executemany'] += 1


def _rows(conn, cursor, statement, parameters, context, executemany):
    # The rows a SELECT of the location table returned (psycopg2 and
    # PyMySQL count them; SQLite does not, and says -1).
    if statement.lstrip().upper().startswith('SELECT') and \
            'image_locations' in statement and cursor.rowcount > 0:
        COUNTS['location_rows'] += cursor.rowcount


def _commit(conn):
    COUNTS['commits'] += 1


def _rollback(conn):
    COUNTS['rollbacks'] += 1


def _write_counts():
    path = os.environ.get('BENCH_COUNT_FILE')
    if not path:
        return
    with open(path, 'w') as counts_file:
        json.dump(dict(COUNTS, glance=os.path.dirname(glance.__file__)),
                  counts_file)


def main():
    engine = sqlalchemy.engine.Engine
    event.listen(engine, 'before_cursor_execute', _statement)
    event.listen(engine, 'after_cursor_execute', _rows)
    event.listen(engine, 'commit', _commit)
    event.listen(engine, 'rollback', _rollback)
    # Registered first, so run last: after the executors have drained.
    atexit.register(_write_counts)
    return scrubber_command.main()


if __name__ == '__main__':
    sys.exit(main())
