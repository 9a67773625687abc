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

"""The migrated schema against upstream Glance's, on every backend.

The contract is written out below as a literal table, independently of
models.py and of the migration: it is what a database made by upstream
Glance holds, so the scrubber must find exactly that after ``db sync``.
The real database is inspected (sqlalchemy.inspect); types are compared
by generic family, since each backend spells them its own way.
"""

from alembic import autogenerate
from alembic import migration
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from glance.db.sqlalchemy import models
from glance.tests.unit import db as db_tests

VISIBILITIES = ('private', 'public', 'shared', 'community')

# Type families: ('string', length), ('text',), ('bigint',), ('int',),
# ('datetime',), ('bool',), ('enum', values).
STRING = 'string'
TEXT = ('text',)
BIGINT = ('bigint',)
INT = ('int',)
DATETIME = ('datetime',)
BOOL = ('bool',)
VISIBILITY_ENUM = ('enum', VISIBILITIES)
NULL, NOT_NULL = True, False


def _string(length):
    return (STRING, length)


SOFT_DELETE_COLUMNS = {
    'created_at': (DATETIME, NOT_NULL),
    'updated_at': (DATETIME, NULL),
    'deleted_at': (DATETIME, NULL),
    'deleted': (BOOL, NOT_NULL),
}

# table -> {column: (type family, nullable)}, primary key, server defaults.
CONTRACT = {
    'images': {
        'columns': {
            'id': (_string(36), NOT_NULL),
            'name': (_string(255), NULL),
            'disk_format': (_string(20), NULL),
            'container_format': (_string(20), NULL),
            'size': (BIGINT, NULL),
            'virtual_size': (BIGINT, NULL),
            'status': (_string(30), NOT_NULL),
            'visibility': (VISIBILITY_ENUM, NOT_NULL),
            'checksum': (_string(32), NULL),
            'os_hash_algo': (_string(64), NULL),
            'os_hash_value': (_string(128), NULL),
            'min_disk': (INT, NOT_NULL),
            'min_ram': (INT, NOT_NULL),
            'owner': (_string(255), NULL),
            'protected': (BOOL, NOT_NULL),
            'os_hidden': (BOOL, NOT_NULL),
            **SOFT_DELETE_COLUMNS,
        },
        'primary_key': ['id'],
        'server_defaults': {'visibility': 'shared'},
    },
    'image_locations': {
        'columns': {
            'id': (INT, NOT_NULL),
            'image_id': (_string(36), NOT_NULL),
            'value': (TEXT, NOT_NULL),
            'meta_data': (TEXT, NULL),
            'status': (_string(30), NOT_NULL),
            **SOFT_DELETE_COLUMNS,
        },
        'primary_key': ['id'],
        'server_defaults': {'status': 'active'},
    },
    'image_properties': {
        'columns': {
            'id': (INT, NOT_NULL),
            'image_id': (_string(36), NOT_NULL),
            'name': (_string(255), NOT_NULL),
            'value': (TEXT, NULL),
            **SOFT_DELETE_COLUMNS,
        },
        'primary_key': ['id'],
        'server_defaults': {},
    },
    'image_tags': {
        'columns': {
            'id': (INT, NOT_NULL),
            'image_id': (_string(36), NOT_NULL),
            'value': (_string(255), NOT_NULL),
            **SOFT_DELETE_COLUMNS,
        },
        'primary_key': ['id'],
        'server_defaults': {},
    },
    'image_members': {
        'columns': {
            'id': (INT, NOT_NULL),
            'image_id': (_string(36), NOT_NULL),
            'member': (_string(255), NOT_NULL),
            'can_share': (BOOL, NOT_NULL),
            'status': (_string(20), NOT_NULL),
            **SOFT_DELETE_COLUMNS,
        },
        'primary_key': ['id'],
        'server_defaults': {'status': 'pending'},
    },
}

CHILD_TABLES = ('image_locations', 'image_properties', 'image_tags',
                'image_members')


def type_family(column_type):
    """The generic family of a reflected type, comparable across backends.

    The order matters: Enum and Text are Strings, BigInteger is an
    Integer, and MySQL spells Boolean as TINYINT(1).
    """
    if isinstance(column_type, sa.Enum):
        return ('enum', tuple(column_type.enums))
    if isinstance(column_type, sa.Boolean):
        return BOOL
    if (isinstance(column_type, mysql.TINYINT)
            and column_type.display_width == 1):
        return BOOL
    if isinstance(column_type, sa.Text):
        return TEXT
    if isinstance(column_type, sa.String):
        return _string(column_type.length)
    if isinstance(column_type, sa.BigInteger):
        return BIGINT
    if isinstance(column_type, sa.Integer):
        return INT
    if isinstance(column_type, sa.DateTime):
        return DATETIME
    return ('unknown', repr(column_type))


def _family_matches(backend, expected, actual):
    if expected == VISIBILITY_ENUM and backend == 'sqlite':
        # SQLite has no ENUM: a VARCHAR wide enough for every value.
        longest = max(len(value) for value in VISIBILITIES)
        return actual[0] == STRING and (actual[1] or 0) >= longest
    return expected == actual


def _plain_default(reflected):
    """"'shared'::image_visibility" (PostgreSQL) or "'shared'" -> shared."""
    if reflected is None:
        return None
    return reflected.split('::')[0].strip().strip("'")


def column_mismatches(backend, inspector, table):
    """Every difference between the contract and one reflected table."""
    expected = CONTRACT[table]['columns']
    reflected = {column['name']: column
                 for column in inspector.get_columns(table)}
    problems = []
    missing = sorted(set(expected) - set(reflected))
    extra = sorted(set(reflected) - set(expected))
    if missing or extra:
        problems.append((table, 'columns', 'missing', missing,
                         'unexpected', extra))
    for name in sorted(set(expected) & set(reflected)):
        family, nullable = expected[name]
        actual_family = type_family(reflected[name]['type'])
        if not _family_matches(backend, family, actual_family):
            problems.append((table, name, 'type', family, actual_family))
        if reflected[name]['nullable'] != nullable:
            problems.append((table, name, 'nullable', nullable,
                             reflected[name]['nullable']))
    for name, value in CONTRACT[table]['server_defaults'].items():
        actual = _plain_default(reflected.get(name, {}).get('default'))
        if actual != value:
            problems.append((table, name, 'server default', value, actual))
    return problems


def foreign_key_mismatches(inspector, table):
    if table not in CHILD_TABLES:
        return []
    references = [(fk['constrained_columns'], fk['referred_table'],
                   fk['referred_columns'])
                  for fk in inspector.get_foreign_keys(table)]
    expected = [(['image_id'], 'images', ['id'])]
    if references != expected:
        return [(table, 'foreign keys', expected, references)]
    return []


def primary_key_mismatches(inspector, table):
    primary_key = inspector.get_pk_constraint(table)['constrained_columns']
    if primary_key != CONTRACT[table]['primary_key']:
        return [(table, 'primary key', CONTRACT[table]['primary_key'],
                 primary_key)]
    return []


def _same_default(context, inspected_column, metadata_column,
                  inspected_default, metadata_default, rendered_default):
    """Treat MySQL's '0' and SQLAlchemy's false() as the same default.

    Returns False (no difference) for defaults equal once quoting, casts
    and the boolean spelling are set aside; None lets alembic decide.
    """
    def plain(text):
        value = _plain_default(text)
        return {'false': '0', 'true': '1'}.get(
            value.lower() if value else value, value)

    if plain(inspected_default) == plain(rendered_default):
        return False
    return None


def _only_the_tables_of_the_models(name, type_, parent_names):
    """The scrubber's tables; db sync adds the rest for upstream's API."""
    return type_ != 'table' or name in models.Base.metadata.tables


class SchemaTests:
    """The migrated schema is upstream's, read back from the server."""

    def test_tables_match_contract(self):
        """Table by table: columns, types, nullability, defaults, keys."""
        inspector = sa.inspect(self.engine)
        self.assertTrue(set(CONTRACT) <= set(inspector.get_table_names()),
                        inspector.get_table_names())
        problems = []
        for table in sorted(CONTRACT):
            problems += column_mismatches(self.backend, inspector, table)
            problems += primary_key_mismatches(inspector, table)
            problems += foreign_key_mismatches(inspector, table)
        self.assertEqual([], problems)

    def test_models_match_migrated_database(self):
        """No drift: autogenerate finds nothing between models.py and it."""
        with self.engine.connect() as connection:
            context = migration.MigrationContext.configure(connection, opts={
                'compare_type': True,
                'compare_server_default': _same_default,
                'include_name': _only_the_tables_of_the_models,
            })
            differences = autogenerate.compare_metadata(
                context, models.Base.metadata)
        self.assertEqual([], differences)


class ServerSchemaTests(SchemaTests):
    """What a server stores as a type of its own (SQLite: a VARCHAR)."""

    def test_visibility_is_an_enum_of_the_four_values(self):
        column = {column['name']: column for column in
                  sa.inspect(self.engine).get_columns('images')}['visibility']
        self.assertIsInstance(column['type'], sa.Enum)
        self.assertEqual(VISIBILITIES, tuple(column['type'].enums))
        images = models.Image.__table__
        row = {'id': 'bad-visibility', 'status': 'active', 'min_disk': 0,
               'min_ram': 0, 'deleted': False, 'created_at': sa.func.now()}
        with self.engine.connect() as connection:
            # A non-strict MySQL would store '' instead of refusing;
            # glance's own engines run with oslo.db's TRADITIONAL sql_mode,
            # so does this.
            if self.backend == 'mysql':
                connection.exec_driver_sql(
                    "SET SESSION sql_mode='TRADITIONAL'")
            self.assertRaises(
                sa.exc.DBAPIError, connection.execute,
                images.insert().values(visibility='galactic', **row))


class TestSchemaOnSQLite(SchemaTests, db_tests.SQLiteTestCase):
    pass


class TestSchemaOnMySQL(ServerSchemaTests, db_tests.MySQLTestCase):
    pass


class TestSchemaOnPostgreSQL(ServerSchemaTests,
                             db_tests.PostgreSQLTestCase):
    pass
