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

"""Complete upstream Glance's schema and take its revision id.

The revision id is the head that released upstream Glance (33.0.0, and
every release back to 2024.1) records in ``alembic_version`` after its own
``glance-manage db sync``. A database at this revision therefore belongs
to upstream's migration history: upstream's ``db sync`` finds it up to
date, and its later releases upgrade it from here like one of their own.

So the revision must leave exactly the schema upstream has at that head.
The image tables come from ``scrubber_initial``; this adds the tables the
scrubber never reads but upstream's glance-api does (tasks, metadata
definitions, the image cache's bookkeeping), with upstream's names, types,
keys and indexes on each backend. What still differs, and cannot matter to
either side: the order of the image tables' columns, and the CHECK
constraints upstream's booleans carry on the image tables in SQLite and
MySQL. Databases stamped ``scrubber_initial`` by earlier releases of this
tree reach upstream's history through this revision too.

Revision ID: 2024_1_contract01
Revises: scrubber_initial
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = '2024_1_contract01'
down_revision = 'scrubber_initial'
branch_labels = None
depends_on = None

MYSQL_OPTIONS = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8'}

# SQLite autoincrements only an INTEGER primary key.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _boolean():
    # Upstream's booleans carry a CHECK (value IN (0, 1)) where the backend
    # has no boolean type of its own.
    return sa.Boolean(create_constraint=True)


def _timestamps():
    return [sa.Column('created_at', sa.DateTime(), nullable=False),
            sa.Column('updated_at', sa.DateTime())]


def _indexes(table, *columns, prefix=None):
    """One single-column index per column, named ix_<table>_<column>."""
    for column in columns:
        op.create_index('ix_%s_%s' % (prefix or table, column), table,
                        [column])


def _create_tasks():
    op.create_table(
        'tasks',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('type', sa.String(30), nullable=False),
        sa.Column('status', sa.String(30), nullable=False),
        sa.Column('owner', sa.String(255), nullable=False),
        sa.Column('expires_at', sa.DateTime()),
        *_timestamps(),
        sa.Column('deleted_at', sa.DateTime()),
        sa.Column('deleted', _boolean(), nullable=False),
        sa.Column('image_id', sa.String(36)),
        sa.Column('request_id', sa.String(64)),
        sa.Column('user_id', sa.String(64)),
        **MYSQL_OPTIONS)
    _indexes('tasks', 'type', 'status', 'owner', 'updated_at', 'deleted',
             'image_id')
    op.create_table(
        'task_info',
        sa.Column('task_id', sa.String(36), sa.ForeignKey('tasks.id'),
                  primary_key=True),
        sa.Column('input', sa.Text()),
        sa.Column('result', sa.Text()),
        sa.Column('message', sa.Text()),
        **MYSQL_OPTIONS)


def _namespace_id():
    return sa.Column('namespace_id', sa.Integer(),
                     sa.ForeignKey('metadef_namespaces.id'), nullable=False)


def _create_metadef_namespaces():
    op.create_table(
        'metadef_namespaces',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('namespace', sa.String(80), nullable=False),
        sa.Column('display_name', sa.String(80)),
        sa.Column('description', sa.Text()),
        sa.Column('visibility', sa.String(32)),
        sa.Column('protected', _boolean()),
        sa.Column('owner', sa.String(255), nullable=False),
        *_timestamps(),
        sa.UniqueConstraint('namespace',
                            name='uq_metadef_namespaces_namespace'),
        **MYSQL_OPTIONS)
    _indexes('metadef_namespaces', 'owner')


def _create_metadef_resource_types():
    op.create_table(
        'metadef_resource_types',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(80), nullable=False),
        sa.Column('protected', _boolean(), nullable=False),
        *_timestamps(),
        sa.UniqueConstraint('name', name='uq_metadef_resource_types_name'),
        **MYSQL_OPTIONS)
    op.create_table(
        'metadef_namespace_resource_types',
        sa.Column('resource_type_id', sa.Integer(), primary_key=True),
        sa.Column('namespace_id', sa.Integer(), primary_key=True),
        sa.Column('properties_target', sa.String(80)),
        sa.Column('prefix', sa.String(80)),
        *_timestamps(),
        # In this order, so that MySQL numbers the keys as upstream's.
        sa.ForeignKeyConstraint(['namespace_id'], ['metadef_namespaces.id']),
        sa.ForeignKeyConstraint(['resource_type_id'],
                                ['metadef_resource_types.id']),
        **MYSQL_OPTIONS)
    _indexes('metadef_namespace_resource_types', 'namespace_id',
             prefix='metadef_ns_res_types')


def _create_named_metadef(table, *columns):
    """A metadata definition named uniquely within its namespace."""
    op.create_table(
        table,
        sa.Column('id', sa.Integer(), primary_key=True),
        _namespace_id(),
        sa.Column('name', sa.String(80), nullable=False),
        *columns,
        *_timestamps(),
        sa.UniqueConstraint('namespace_id', 'name',
                            name='uq_%s_namespace_id_name' % table),
        **MYSQL_OPTIONS)
    _indexes(table, 'name')


def _create_metadefs():
    _create_metadef_namespaces()
    _create_metadef_resource_types()
    _create_named_metadef(
        'metadef_objects',
        sa.Column('description', sa.Text()),
        sa.Column('required', sa.Text()),
        sa.Column('json_schema', sa.Text(), nullable=False))
    _create_named_metadef(
        'metadef_properties',
        sa.Column('json_schema', sa.Text(), nullable=False))
    _create_named_metadef('metadef_tags')


def _create_image_cache_tables():
    op.create_table(
        'node_reference',
        sa.Column('node_reference_id', BIG_ID, primary_key=True,
                  autoincrement=True),
        sa.Column('node_reference_url', sa.String(255), nullable=False),
        sa.UniqueConstraint('node_reference_url',
                            name='uq_node_reference_node_reference_url'),
        **MYSQL_OPTIONS)
    op.create_table(
        'cached_images',
        sa.Column('id', BIG_ID, primary_key=True, autoincrement=True),
        sa.Column('image_id', sa.String(36), nullable=False),
        sa.Column('last_accessed', sa.DateTime(), nullable=False),
        sa.Column('last_modified', sa.DateTime(), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False),
        sa.Column('checksum', sa.String(32)),
        sa.Column('node_reference_id', BIG_ID,
                  sa.ForeignKey('node_reference.node_reference_id'),
                  nullable=False),
        sa.UniqueConstraint(
            'image_id', 'node_reference_id',
            name='ix_cached_images_image_id_node_reference_id'),
        **MYSQL_OPTIONS)


def upgrade():
    _create_tasks()
    _create_metadefs()
    _create_image_cache_tables()
