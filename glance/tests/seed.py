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

"""Rows as glance-api leaves them, for the tests and the benchmark.

glance-api, deleting an image with delayed_delete on, leaves the image row
pending_delete, deleted, with deleted_at set, and each of its location rows
pending_delete and deleted. These helpers write such rows (and decoys)
straight into a database, in bulk, and read the outcome back.
"""

import dataclasses
import datetime
import uuid

from oslo_utils import timeutils
import sqlalchemy as sa

from glance.db.sqlalchemy import models

IMAGES = models.Image.__table__
LOCATIONS = models.ImageLocation.__table__
PROPERTIES = models.ImageProperty.__table__
TAGS = models.ImageTag.__table__
MEMBERS = models.ImageMember.__table__


@dataclasses.dataclass
class Location:
    url: str
    store: str = None
    status: str = 'pending_delete'

    @property
    def metadata(self):
        return {'store': self.store} if self.store else {}


@dataclasses.dataclass
class Image:
    """An image row and its location rows, pending_delete by default."""

    locations: list = dataclasses.field(default_factory=list)
    id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    status: str = 'pending_delete'
    deleted: bool = True
    deleted_seconds_ago: int = 3600
    size: int = 1024
    visibility: str = 'shared'
    # What the image had when it was deleted: glance-api soft-deletes
    # these with the image's own deleted_at.
    properties: dict = dataclasses.field(default_factory=dict)
    tags: list = dataclasses.field(default_factory=list)
    members: dict = dataclasses.field(default_factory=dict)  # name: status
    # Removed while the image was still active, a day before its deletion.
    removed_properties: dict = dataclasses.field(default_factory=dict)


def _image_row(image, now):
    deleted_at = (now - datetime.timedelta(seconds=image.deleted_seconds_ago)
                  if image.deleted else None)
    return {
        'id': image.id, 'name': 'image-%s' % image.id[:8],
        'disk_format': 'raw', 'container_format': 'bare',
        'size': image.size, 'status': image.status,
        'visibility': image.visibility, 'min_disk': 0, 'min_ram': 0,
        'owner': 'tenant-1', 'protected': False, 'os_hidden': False,
        'created_at': now - datetime.timedelta(days=1),
        'updated_at': deleted_at, 'deleted_at': deleted_at,
        'deleted': image.deleted,
    }


def _location_rows(image, now):
    for location in image.locations:
        deleted = location.status in ('pending_delete', 'deleted')
        yield {
            'image_id': image.id, 'value': location.url,
            'meta_data': location.metadata,
            'status': location.status, 'deleted': deleted,
            'deleted_at': now if deleted else None,
            'created_at': now - datetime.timedelta(days=1),
            'updated_at': now,
        }


def _child_rows(image, now):
    """{table: rows} of the image's properties, tags and members."""
    deleted_at = (now - datetime.timedelta(seconds=image.deleted_seconds_ago)
                  if image.deleted else None)
    removed_at = now - datetime.timedelta(days=1,
                                          seconds=image.deleted_seconds_ago)
    # glance-api purges the properties in a transaction of its own just
    # before it deletes the image; tags and members share its deleted_at.
    purged_at = (deleted_at - datetime.timedelta(milliseconds=5)
                 if deleted_at else None)

    def row(deleted_at, **values):
        return dict(values, image_id=image.id, created_at=removed_at,
                    deleted=deleted_at is not None, deleted_at=deleted_at)

    return {
        PROPERTIES: [row(purged_at, name=name, value=value)
                     for name, value in image.properties.items()] +
        [row(removed_at, name=name, value=value)
         for name, value in image.removed_properties.items()],
        TAGS: [row(deleted_at, value=tag) for tag in image.tags],
        MEMBERS: [row(deleted_at, member=member, status=status,
                      can_share=False)
                  for member, status in image.members.items()],
    }


def insert(engine, images, batch=1000):
    """Write *images* (seed.Image) and their locations, in batches."""
    now = timeutils.utcnow()
    images = list(images)
    with engine.begin() as connection:
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch]
            connection.execute(IMAGES.insert(),
                               [_image_row(image, now) for image in chunk])
            rows = [row for image in chunk
                    for row in _location_rows(image, now)]
            if rows:
                connection.execute(LOCATIONS.insert(), rows)
            children = {}
            for image in chunk:
                for table, rows in _child_rows(image, now).items():
                    children.setdefault(table, []).extend(rows)
            for table, rows in children.items():
                if rows:
                    connection.execute(table.insert(), rows)
    return images


def image_status(engine, image_id):
    with engine.connect() as connection:
        return connection.execute(
            sa.select(IMAGES.c.status, IMAGES.c.deleted,
                      IMAGES.c.deleted_at)
            .where(IMAGES.c.id == image_id)).one()


def location_states(engine, image_id):
    """[(url, status, deleted)] of an image's locations, in id order."""
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(
            sa.select(LOCATIONS.c.value, LOCATIONS.c.status,
                      LOCATIONS.c.deleted)
            .where(LOCATIONS.c.image_id == image_id)
            .order_by(LOCATIONS.c.id))]


def count_images(engine, status):
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.count()).select_from(IMAGES)
            .where(IMAGES.c.status == status)).scalar_one()


def live_children(engine, image_id):
    """The image's properties, tags and members that are not deleted."""
    with engine.connect() as connection:
        def live(table, *columns):
            return sorted(tuple(row) for row in connection.execute(
                sa.select(*columns).where(table.c.image_id == image_id,
                                          table.c.deleted == sa.false())))
        return {
            'properties': dict(live(PROPERTIES, PROPERTIES.c.name,
                                    PROPERTIES.c.value)),
            'tags': [tag for (tag,) in live(TAGS, TAGS.c.value)],
            'members': dict(live(MEMBERS, MEMBERS.c.member,
                                 MEMBERS.c.status)),
        }
