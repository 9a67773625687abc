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
import string
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

    @property
    def encrypted(self):
        """Whether stored values are encrypted: no SQL can read them."""
        return bool(self._encryption_key)

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


# A URL whose last character is one of these, and that holds none of the
# IRREGULAR_CHARACTERS, ends the way data_suffixes() says.
PLAIN_ENDINGS = frozenset(string.ascii_letters + string.digits + '-_')
# A query or fragment (left out of some keys), and what urlsplit() drops.
IRREGULAR_CHARACTERS = ('?', '#', '\t', '\r', '\n')


def irregular(url):
    """Whether *url* may end otherwise than data_suffixes() expects.

    A trailing '/', '.', '..' or blank, a query or a fragment: the few
    forms of a URL whose ending says nothing of the data it names. The
    database asks the same of every stored value.
    """
    return (not url or url[-1] not in PLAIN_ENDINGS or
            any(character in url for character in IRREGULAR_CHARACTERS))


def data_suffixes(url):
    """Endings one of which every regular URL naming *url*'s data has.

    Whatever form another URL takes, if data_key() finds it names the
    same data, it either ends with one of these or is irregular(): so a
    database can narrow "who else uses this data" to the values ending so,
    and data_digest() decides. The ending is the last part of the key's
    path (the object, file or image name), the last two for paths that
    share their last part (RBD's ``<image>/snap``), with the forms of a
    ``//``, ``/./`` or ``/../`` before it.

    :returns: a tuple of suffixes; None when no ending narrows it (every
        value must be compared).
    """
    scheme, _sep, rest = url.partition('://')
    if scheme in layout.FILE_SCHEMES:
        try:
            path = os.path.normpath(file_path(url))
        except ValueError:
            return (url,)  # data_digest() compares it whole
        return _nonempty(path.rsplit('/', 1)[-1])
    if scheme in layout.S3_SCHEMES:
        return _nonempty(rest.partition('?')[0].strip('/').rsplit('/', 1)[-1])
    if '@' in rest.partition('/')[0] or scheme.startswith('swift'):
        rest = rest.rsplit('@', 1)[-1]
    host, _sep, path = rest.partition('/')
    names = [name for name in os.path.normpath('/' + path).split('/')
             if name]
    if len(names) >= 2:
        last = names[-1]
        return ('%s/%s' % (names[-2], last),) + tuple(
            between + last for between in ('//', '/./', '/../'))
    if names:
        return (names[-1],)
    return _nonempty(host)


def _nonempty(suffix):
    return (suffix,) if suffix else None
