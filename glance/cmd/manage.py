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

"""glance-manage: create the glance schema on a fresh database.

Only the ``db`` commands the scrubber tree needs: ``db sync`` lays down
the schema, ``db version`` prints the revision the database is at. The
scrubber never migrates; it works on any database with glance's schema,
including one made by upstream Glance's own migrations.

The schema ``db sync`` leaves is upstream Glance's, recorded under
upstream's own revision id, so that upstream's ``glance-manage`` takes
the database over as one of its own. A database at a revision only
upstream knows (older or newer) is left alone.
"""

import sys

from oslo_config import cfg
from oslo_log import log as logging

from glance import cmd as glance_cmd
from glance.common import config
from glance.common import exception
from glance.db.sqlalchemy import alembic_migrations
from glance.db.sqlalchemy import api as db_api
from glance.i18n import _

CONF = cfg.CONF
LOG = logging.getLogger(__name__)

EXIT_OK = 0


def _foreign_revisions(engine):
    """Revisions in the database that this tree does not know."""
    return alembic_migrations.current_revisions(engine) - \
        alembic_migrations.known_revisions()


def db_sync():
    engine = db_api.get_engine()
    foreign = _foreign_revisions(engine)
    if foreign:
        print(_('The database is at revision %s of another glance '
                'release; its schema is left as it is.')
              % ', '.join(sorted(foreign)))
        return EXIT_OK
    head = alembic_migrations.head_revision()
    if alembic_migrations.current_revisions(engine) == {head}:
        # Upstream's own db sync leaves this revision too.
        print(_('The database is already at revision %s; nothing to do.')
              % head)
        return EXIT_OK
    alembic_migrations.upgrade(engine)
    print(_('Database is at revision %s.') % head)
    return EXIT_OK


def db_version():
    revisions = alembic_migrations.current_revisions(db_api.get_engine())
    print(', '.join(sorted(revisions)) or _('None: the database has no '
                                            'glance schema yet.'))
    return EXIT_OK


DB_COMMANDS = {'sync': db_sync, 'version': db_version}


def _add_command_parsers(subparsers):
    db = subparsers.add_parser('db', help=_('Database schema commands.'))
    actions = db.add_subparsers(dest='action', metavar='{sync,version}')
    actions.required = True
    actions.add_parser('sync', help=_('Create the schema, or bring it '
                                      'to the latest revision.'))
    actions.add_parser('version', help=_('Print the schema revision.'))


command_opt = cfg.SubCommandOpt('command', title=_('Commands'),
                                handler=_add_command_parsers)


def main(argv=None):
    CONF.register_cli_opt(command_opt)
    config.register_opts(CONF)
    logging.register_options(CONF)
    # alembic logs its dialect at INFO for every connection; stdout is the
    # command's answer, which scripts read ("db version").
    logging.set_defaults(default_log_levels=(
        logging.get_default_log_levels() + ['alembic=WARN']))
    try:
        config.parse_args(CONF, args=argv)
    except cfg.Error as error:
        sys.exit(_('glance-manage: %s') % error)
    logging.setup(CONF, 'glance')
    # Those raised while the libraries were imported, held until now.
    glance_cmd.log_held_warnings()
    db_api.configure()
    try:
        with db_api.database_errors():
            return DB_COMMANDS[CONF.command.action]()
    except exception.DatabaseUnavailable as error:
        sys.exit(_('glance-manage: %s') % error)
