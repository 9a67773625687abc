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

"""pytest fixtures the unit tests share: a migrated database per server.

Only the data_users tests of db/test_api.py use them still, until they are
classes on glance.tests.unit.db.DatabaseTestCase like every other test;
then this module goes.
"""

import pytest

from glance.db.sqlalchemy import api
from glance.tests import databases
from glance.tests.unit.db import clear
from glance.tests.unit.db import set_up_database


@pytest.fixture(scope='module', params=databases.BACKENDS)
def database(request):
    """A migrated database on each server (SQLite, MariaDB, PostgreSQL)."""
    database = set_up_database(request.param)
    request.addfinalizer(database.cleanUp)
    return database


@pytest.fixture
def db(database):
    """The database emptied, and the database API configured on it."""
    clear(database.engine)
    api.configure(connection=database.url, max_retries=1, retry_interval=0)
    yield database
    api.reset()
