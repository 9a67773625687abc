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

"""Tests of the database layer, on real SQLite, MariaDB and PostgreSQL."""

import unittest

import fixtures

from glance.tests import databases


def set_up_database(backend, migrate=True):
    """A set-up databases.Database for pytest code; the caller cleans up.

    fixtures wraps any failure of setUp() in MultipleExceptions, which
    would turn a missing server's skip into an error outside testtools:
    unwrap it so that a skip stays a skip (CI still fails, as it should).
    """
    database = databases.Database(backend, migrate=migrate)
    try:
        database.setUp()
    except fixtures.MultipleExceptions as error:
        first = error.args[0][1]
        if isinstance(first, unittest.SkipTest):
            raise unittest.SkipTest(str(first))
        raise
    return database
