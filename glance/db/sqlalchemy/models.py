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

"""SQLAlchemy models of the tables the scrubber shares with glance-api.

They describe upstream Glance's schema column for column (names, types,
nullability), so the scrubber works on a database created by upstream's
own migrations as well as on one made by ``glance-manage db sync``.
"""

from oslo_serialization import jsonutils
from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import Column
from sqlalchemy import DateTime
from sqlalchemy import Enum
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import orm
from sqlalchemy import sql
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import types
from sqlalchemy import UniqueConstraint

VISIBILITIES = ('private', 'public', 'shared', 'community')

TABLE_ARGS = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8'}


class JSONEncodedDict(types.TypeDecorator):
    """A dict stored as JSON text (``image_locations.meta_data``)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else jsonutils.dumps(value)

    def process_result_value(self, value, dialect):
        return {} if not value else jsonutils.loads(value)


class Base(orm.DeclarativeBase):
    pass


class SoftDeleteMixin:
    """Timestamps and the soft-delete flag every glance table carries."""

    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime)
    deleted_at = Column(DateTime)
    deleted = Column(Boolean, nullable=False, default=False)


class Image(SoftDeleteMixin, Base):
    __tablename__ = 'images'
    __table_args__ = (
        Index('checksum_image_idx', 'checksum'),
        Index('visibility_image_idx', 'visibility'),
        Index('ix_images_deleted', 'deleted'),
        Index('owner_image_idx', 'owner'),
        Index('created_at_image_idx', 'created_at'),
        Index('updated_at_image_idx', 'updated_at'),
        Index('os_hidden_image_idx', 'os_hidden'),
        Index('os_hash_value_image_idx', 'os_hash_value'),
        TABLE_ARGS,
    )

    id = Column(String(36), primary_key=True)
    name = Column(String(255))
    disk_format = Column(String(20))
    container_format = Column(String(20))
    size = Column(BigInteger)
    virtual_size = Column(BigInteger)
    status = Column(String(30), nullable=False)
    visibility = Column(Enum(*VISIBILITIES, name='image_visibility'),
                        nullable=False, server_default='shared')
    checksum = Column(String(32))
    os_hash_algo = Column(String(64))
    os_hash_value = Column(String(128))
    min_disk = Column(Integer, nullable=False, default=0)
    min_ram = Column(Integer, nullable=False, default=0)
    owner = Column(String(255))
    protected = Column(Boolean, nullable=False, default=False,
                       server_default=sql.false())
    os_hidden = Column(Boolean, nullable=False, default=False,
                       server_default=sql.false())


class ImageLocation(SoftDeleteMixin, Base):
    __tablename__ = 'image_locations'
    __table_args__ = (
        Index('ix_image_locations_image_id', 'image_id'),
        Index('ix_image_locations_deleted', 'deleted'),
        TABLE_ARGS,
    )

    id = Column(Integer, primary_key=True, autoincrement=True)
    image_id = Column(String(36), ForeignKey('images.id'), nullable=False)
    value = Column(Text, nullable=False)
    meta_data = Column(JSONEncodedDict, default={})
    status = Column(String(30), nullable=False, server_default='active')


class ImageProperty(SoftDeleteMixin, Base):
    __tablename__ = 'image_properties'
    __table_args__ = (
        UniqueConstraint('image_id', 'name',
                         name='ix_image_properties_image_id_name'),
        Index('ix_image_properties_image_id', 'image_id'),
        Index('ix_image_properties_deleted', 'deleted'),
        TABLE_ARGS,
    )

    id = Column(Integer, primary_key=True)
    image_id = Column(String(36), ForeignKey('images.id'), nullable=False)
    name = Column(String(255), nullable=False)
    value = Column(Text)


class ImageTag(SoftDeleteMixin, Base):
    __tablename__ = 'image_tags'
    __table_args__ = (
        Index('ix_image_tags_image_id', 'image_id'),
        Index('ix_image_tags_image_id_tag_value', 'image_id', 'value'),
        TABLE_ARGS,
    )

    id = Column(Integer, primary_key=True, nullable=False)
    image_id = Column(String(36), ForeignKey('images.id'), nullable=False)
    value = Column(String(255), nullable=False)


class ImageMember(SoftDeleteMixin, Base):
    __tablename__ = 'image_members'
    __table_args__ = (
        UniqueConstraint('image_id', 'member', 'deleted_at',
                         name='image_members_image_id_member_deleted_at_key'),
        Index('ix_image_members_deleted', 'deleted'),
        Index('ix_image_members_image_id', 'image_id'),
        Index('ix_image_members_image_id_member', 'image_id', 'member'),
        TABLE_ARGS,
    )

    id = Column(Integer, primary_key=True)
    image_id = Column(String(36), ForeignKey('images.id'), nullable=False)
    member = Column(String(255), nullable=False)
    can_share = Column(Boolean, nullable=False, default=False)
    status = Column(String(20), nullable=False, default='pending',
                    server_default='pending')
