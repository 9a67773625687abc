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

"""Alembic migrations that create the glance schema on a fresh database.

The head is a revision id of upstream Glance's own history, and the schema
at it is upstream's at that revision, so that upstream's glance-manage
takes over any database this tree created. A later revision here must
likewise be one upstream released, reproducing upstream's schema at it.
"""

import os

from alembic import command as alembic_command
from alembic import config as alembic_config
from alembic import migration as alembic_migration
from alembic import script as alembic_script

SCRIPT_LOCATION = os.path.dirname(os.path.abspath(__file__))


def _config(connection=None):
    config = alembic_config.Config()
    config.set_main_option('script_location', SCRIPT_LOCATION)
    config.attributes['connection'] = connection
    return config


def known_revisions():
    """Every revision id the migrations of this tree define."""
    scripts = alembic_script.ScriptDirectory.from_config(_config())
    return {revision.revision for revision in scripts.walk_revisions()}


def head_revision():
    scripts = alembic_script.ScriptDirectory.from_config(_config())
    return scripts.get_current_head()


def current_revisions(engine):
    """The revisions recorded in the database's alembic_version table."""
    with engine.connect() as connection:
        context = alembic_migration.MigrationContext.configure(connection)
        return set(context.get_current_heads())


def upgrade(engine, revision='heads'):
    with engine.begin() as connection:
        alembic_command.upgrade(_config(connection), revision)
