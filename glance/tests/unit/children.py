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

"""An image's properties, tags and members, as glance-api writes them.

Upstream's ``image_destroy`` soft-deletes them together with the image,
with the image's own ``deleted_at``; a property or member removed while
the image was active carries an earlier one. These helpers write such rows
straight into a database and read back which ones are live (not deleted).
"""

import datetime

from oslo_utils import timeutils
import sqlalchemy as sa

from glance.db.sqlalchemy import models

PROPERTIES = models.ImageProperty.__table__
TAGS = models.ImageTag.__table__
MEMBERS = models.ImageMember.__table__
TABLES = (PROPERTIES, TAGS, MEMBERS)


def _common(image_id, deleted_at):
    return {'image_id': image_id, 'deleted': deleted_at is not None,
            'deleted_at': deleted_at,
            'created_at': timeutils.utcnow() - datetime.timedelta(days=2),
            'updated_at': deleted_at}


def insert(engine, image_id, deleted_at=None, properties=(), tags=(),
           members=()):
    """Write properties (names), tags and members of an image.

    :param deleted_at: None writes live rows; a time writes rows
        soft-deleted at that time.
    """
    with engine.begin() as connection:
        for name in properties:
            connection.execute(PROPERTIES.insert().values(
                name=name, value='value of %s' % name,
                **_common(image_id, deleted_at)))
        for value in tags:
            connection.execute(TAGS.insert().values(
                value=value, **_common(image_id, deleted_at)))
        for member in members:
            connection.execute(MEMBERS.insert().values(
                member=member, can_share=False, status='accepted',
                **_common(image_id, deleted_at)))


def live(engine, image_id):
    """{'properties': names, 'tags': values, 'members': members}, sorted.

    Only rows that are not deleted, with no deletion time left, count.
    """
    columns = {'properties': PROPERTIES.c.name, 'tags': TAGS.c.value,
               'members': MEMBERS.c.member}
    found = {}
    with engine.connect() as connection:
        for kind, column in columns.items():
            table = column.table
            found[kind] = sorted(connection.scalars(
                sa.select(column).where(table.c.image_id == image_id,
                                        table.c.deleted == sa.false(),
                                        table.c.deleted_at.is_(None))))
    return found


def clear(connection):
    """Delete every row of the three tables (before their images)."""
    for table in TABLES:
        connection.execute(table.delete())
