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
