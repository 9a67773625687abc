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

"""Whether an RBD image is in use, asked before glance_store deletes it.

glance_store's rbd driver deletes in steps: it unprotects and removes the
image's snapshot, then removes the image. Two uses of an image slip
through those steps:

* a copy-on-write clone in format 2 (``rbd_default_clone_format = 2``, or
  Ceph choosing it): the snapshot goes, the image cannot, so the driver
  moves it to the RBD trash and reports success. The scrubber would
  record the data deleted and reclaimed while a clone still reads it and
  nothing ever purges it, and the image could no longer be restored;
* an image opened read-write by another client (a watch): the snapshot is
  removed before the image refuses, so the data stays but can no longer
  be cloned, nor the image restored.

So the image is looked at first, with the store's own connection
settings: clones of any of its snapshots (in any format, in the trash or
not) or watchers make it in use, and nothing is touched. A clone made
between the look and the delete is still refused by the driver in format
1; in format 2 that window of a few milliseconds remains.
"""

import urllib.parse

from glance_store import exceptions as store_exceptions

from glance import _compat
from glance.i18n import _

try:
    import rbd
except ImportError:  # no Ceph here: no rbd store can be configured
    rbd = None


class ImageInUse(store_exceptions.InUseByStore):
    """The image has clones or watchers; nothing was deleted."""

    def __init__(self, reason):
        super().__init__()
        self.reason = reason

    def __str__(self):
        return self.reason


def check_not_in_use(store, url):
    """Raise ImageInUse when the image of *url* has clones or watchers.

    :param store: the glance_store rbd Store that would delete it.
    :param url: an ``rbd://`` location URL.
    A missing image passes: the delete then reports it not found.
    """
    pool, name = _pool_and_image(store, url)
    with _compat.rbd_connection(store) as client:
        with client.open_ioctx(pool) as ioctx:
            try:
                # Read-only: a watch of our own would make it "in use".
                with rbd.Image(ioctx, name, read_only=True) as image:
                    clones = _clones(image)
                    watchers = len(list(image.watchers_list()))
            except rbd.ImageNotFound:
                return
    if clones:
        raise ImageInUse(_('RBD image %(name)s has %(count)d clone(s), '
                           'e.g. %(clone)s') % {
            'name': name, 'count': len(clones), 'clone': clones[0]})
    if watchers:
        raise ImageInUse(_('RBD image %(name)s is open by %(count)d other '
                           'client(s)') % {'name': name, 'count': watchers})


def _clones(image):
    clones = []
    for snapshot in list(image.list_snaps()):
        image.set_snap(snapshot['name'])
        clones.extend('%s/%s' % (child['pool'], child['image'])
                      for child in image.list_children2())
    image.set_snap(None)
    return clones


def _pool_and_image(store, url):
    """(pool, image) of ``rbd://FSID/POOL/IMAGE/SNAP`` or ``rbd://IMAGE``."""
    parts = urllib.parse.urlsplit(url)
    pieces = [urllib.parse.unquote(piece) for piece in
              [parts.netloc] + parts.path.lstrip('/').split('/') if piece]
    if len(pieces) == 4:
        return pieces[1], pieces[2]
    return _compat.rbd_pool(store), pieces[0]
