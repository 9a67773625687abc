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

"""Location values and URLs: decrypting them, and what data they name."""

import hashlib
import os
import urllib.parse

from glance_store import location as store_location

from glance.common import crypt
from glance.i18n import _
from glance.scrubber.stores import errors
from glance.scrubber.stores import layout


class LocationUrls:
    """Turns stored location values into URLs, and URLs into digests.

    :param encryption_key: ``metadata_encryption_key``, or None when
        location values are stored in the clear.
    """

    def __init__(self, encryption_key=None):
        self._encryption_key = encryption_key

    def url_of(self, value):
        """The URL a stored location value holds (decrypted if need be).

        :raises LocationError: the value cannot be decrypted.
        """
        if not self._encryption_key:
            return value
        try:
            return crypt.urlsafe_decrypt(self._encryption_key, value)
        except crypt.DecryptionError as error:
            raise errors.LocationError(_('cannot decrypt the location: %s')
                                       % error)

    def digest_of(self, value):
        """data_digest() of a stored value's URL; None when unreadable."""
        try:
            url = self.url_of(value)
        except errors.LocationError:
            return None
        return data_digest(url)


def parse(url, backend, conf):
    """glance_store's parsed location of *url*, in *backend* if named.

    :param backend: the location's backend (multi-store), or None.
    """
    if backend is not None:
        return store_location.get_location_from_uri_and_backend(
            url, backend, conf=conf)
    return store_location.get_location_from_uri(url, conf=conf)


def file_path(url):
    """The path glance_store's file store acts on for a file URL.

    It joins the URL's host part and path (``file://images/x`` is the
    relative path ``images/x``), and so must anything that checks it.
    """
    parts = urllib.parse.urlsplit(url)
    return (parts.netloc + parts.path).strip()


def data_key(url):
    """What identifies the data a URL points to, for comparing URLs.

    Two URLs with the same key name the same data: the same file (``file``
    or ``filesystem``, ``.`` and ``..`` resolved); the same S3 bucket and
    key (glance_store reaches every S3 location through the configured
    endpoint, whatever host and credentials the URL carries); the same
    object elsewhere, credentials embedded in the URL aside.
    """
    scheme, _sep, rest = url.partition('://')
    if scheme in layout.FILE_SCHEMES:
        return (layout.FILE_TYPE, os.path.normpath(file_path(url)))
    if scheme in layout.S3_SCHEMES:
        # As glance_store parses it: the last two parts of the path, the
        # query aside.
        path = rest.partition('?')[0].strip('/')
        return ('s3',) + tuple(path.split('/')[-2:])
    if '@' in rest.partition('/')[0] or scheme.startswith('swift'):
        # user:key@ before the host; a key may hold '/' (swift, old S3).
        rest = rest.rsplit('@', 1)[-1]
    host, _sep, path = rest.partition('/')
    return (scheme, host, os.path.normpath('/' + path))


def data_digest(url):
    """A 64-bit digest of data_key(url): compact, for large indexes.

    Two keys sharing a digest would only make data look shared, and be
    kept.
    """
    try:
        key = data_key(url)
    except ValueError:
        # urlsplit() refuses some malformed URLs: compare them whole.
        key = (url,)
    packed = '\0'.join(key).encode('utf-8', 'surrogateescape')
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(),
                          'big')
