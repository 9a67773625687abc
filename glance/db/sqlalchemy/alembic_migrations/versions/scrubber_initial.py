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

"""Create the image tables the scrubber shares with glance-api.

The tables are written out here rather than taken from the models, so this
revision stays what it is when the models change later.

Revision ID: scrubber_initial
Revises:
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = 'scrubber_initial'
down_revision = None
branch_labels = None
depends_on = None

MYSQL_OPTIONS = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8'}


def _soft_delete_columns():
    return [
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime()),
        sa.Column('deleted_at', sa.DateTime()),
        sa.Column('deleted', sa.Boolean(), nullable=False),
    ]


def _image_fk():
    return sa.Column('image_id', sa.String(36), sa.ForeignKey('images.id'),
                     nullable=False)


def _create_images():
    op.create_table(
        'images',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('name', sa.String(255)),
        sa.Column('disk_format', sa.String(20)),
        sa.Column('container_format', sa.String(20)),
        sa.Column('size', sa.BigInteger()),
        sa.Column('virtual_size', sa.BigInteger()),
        sa.Column('status', sa.String(30), nullable=False),
        sa.Column('visibility',
                  sa.Enum('private', 'public', 'shared', 'community',
                          name='image_visibility'),
                  nullable=False, server_default='shared'),
        sa.Column('checksum', sa.String(32)),
        sa.Column('os_hash_algo', sa.String(64)),
        sa.Column('os_hash_value', sa.String(128)),
        sa.Column('min_disk', sa.Integer(), nullable=False),
        sa.Column('min_ram', sa.Integer(), nullable=False),
        sa.Column('owner', sa.String(255)),
        sa.Column('protected', sa.Boolean(), nullable=False,
                  server_default=sa.false()),
        sa.Column('os_hidden', sa.Boolean(), nullable=False,
                  server_default=sa.false()),
        *_soft_delete_columns(),
        **MYSQL_OPTIONS)
    for name, column in (('checksum_image_idx', 'checksum'),
                         ('visibility_image_idx', 'visibility'),
                         ('ix_images_deleted', 'deleted'),
                         ('owner_image_idx', 'owner'),
                         ('created_at_image_idx', 'created_at'),
                         ('updated_at_image_idx', 'updated_at'),
                         ('os_hidden_image_idx', 'os_hidden'),
                         ('os_hash_value_image_idx', 'os_hash_value')):
        op.create_index(name, 'images', [column])


def _create_image_locations():
    op.create_table(
        'image_locations',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        _image_fk(),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('meta_data', sa.Text()),
        sa.Column('status', sa.String(30), nullable=False,
                  server_default='active'),
        *_soft_delete_columns(),
        **MYSQL_OPTIONS)
    op.create_index('ix_image_locations_image_id', 'image_locations',
                    ['image_id'])
    op.create_index('ix_image_locations_deleted', 'image_locations',
                    ['deleted'])


def _create_image_properties():
    op.create_table(
        'image_properties',
        sa.Column('id', sa.Integer(), primary_key=True),
        _image_fk(),
        sa.Column('name', sa.String(255), nullable=False),
        sa.Column('value', sa.Text()),
        *_soft_delete_columns(),
        sa.UniqueConstraint('image_id', 'name',
                            name='ix_image_properties_image_id_name'),
        **MYSQL_OPTIONS)
    op.create_index('ix_image_properties_image_id', 'image_properties',
                    ['image_id'])
    op.create_index('ix_image_properties_deleted', 'image_properties',
                    ['deleted'])


def _create_image_tags():
    op.create_table(
        'image_tags',
        sa.Column('id', sa.Integer(), primary_key=True),
        _image_fk(),
        sa.Column('value', sa.String(255), nullable=False),
        *_soft_delete_columns(),
        **MYSQL_OPTIONS)
    op.create_index('ix_image_tags_image_id', 'image_tags', ['image_id'])
    op.create_index('ix_image_tags_image_id_tag_value', 'image_tags',
                    ['image_id', 'value'])


def _create_image_members():
    op.create_table(
        'image_members',
        sa.Column('id', sa.Integer(), primary_key=True),
        _image_fk(),
        sa.Column('member', sa.String(255), nullable=False),
        sa.Column('can_share', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(20), nullable=False,
                  server_default='pending'),
        *_soft_delete_columns(),
        sa.UniqueConstraint(
            'image_id', 'member', 'deleted_at',
            name='image_members_image_id_member_deleted_at_key'),
        **MYSQL_OPTIONS)
    op.create_index('ix_image_members_deleted', 'image_members', ['deleted'])
    op.create_index('ix_image_members_image_id', 'image_members',
                    ['image_id'])
    op.create_index('ix_image_members_image_id_member', 'image_members',
                    ['image_id', 'member'])


def upgrade():
    _create_images()
    _create_image_locations()
    _create_image_properties()
    _create_image_tags()
    _create_image_members()
