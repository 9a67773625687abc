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

"""The configured stores, read once: backends by type, datadirs, schemes.

A scrubber is configured either with one store per type
(``[glance_store] stores``) or with named backends
(``enabled_backends``, "multi-store"); StoreLayout answers the same
questions for both, so that no other module reads either option.
"""

import dataclasses
import functools
import os

FILE_TYPE = 'file'
RBD_TYPE = 'rbd'
S3_TYPE = 's3'
SWIFT_TYPE = 'swift'
# The file store answers to both (CVE-2015-1195 went through the second).
FILE_SCHEMES = ('file', 'filesystem')
S3_SCHEMES = ('s3', 's3+http', 's3+https')
SWIFT_SCHEMES = ('swift', 'swift+http', 'swift+https', 'swift+config')
RBD_SCHEME = 'rbd'
# Stores that cannot delete by design: their locations are let go.
READ_ONLY_STORE_TYPES = frozenset(['http'])
READ_ONLY_SCHEMES = frozenset(['http', 'https'])
SINGLE_STORE_GROUP = 'glance_store'


def scheme(url):
    """The scheme of a location URL (what comes before the first colon)."""
    return url.partition(':')[0]


def type_of_scheme(url_scheme):
    """The store type that serves a URL scheme (the scheme if unknown)."""
    for kind, schemes in ((FILE_TYPE, FILE_SCHEMES), (S3_TYPE, S3_SCHEMES),
                          (SWIFT_TYPE, SWIFT_SCHEMES)):
        if url_scheme in schemes:
            return kind
    return url_scheme


@dataclasses.dataclass(frozen=True)
class StoreLayout:
    """The configured backends, as (name, type) pairs in their order.

    With one store per type (not multistore) a backend's name is its type,
    and its options live in ``[glance_store]``; with
    ``enabled_backends`` each backend has a section of its own.
    """

    multistore: bool = False
    backends: tuple = ()

    @classmethod
    def from_config(cls, conf):
        # Registered by glance_store only where multi-store is used.
        enabled_backends = getattr(conf, 'enabled_backends', None)
        if enabled_backends:
            return cls(True, tuple(enabled_backends.items()))
        return cls(False, tuple((kind, kind)
                                for kind in conf.glance_store.stores or ()))

    def names_of_type(self, kind):
        """The backends of type *kind*, by name."""
        return [name for name, of_type in self.backends if of_type == kind]

    def named_backends(self, kind):
        """The backends of type *kind* that locations name (multi-store).

        With one store per type there are none: the URL scheme decides.
        """
        return self.names_of_type(kind) if self.multistore else []

    def has_type(self, kind):
        return bool(self.names_of_type(kind))

    def option_groups(self, kind):
        """The configuration sections of the backends of type *kind*."""
        if self.multistore:
            return self.names_of_type(kind)
        return [SINGLE_STORE_GROUP] if self.has_type(kind) else []

    def backend_for_url(self, url):
        """The backend glance_store picks for a URL that names none.

        The first backend whose type starts the URL; None when none does.
        """
        for name, kind in self.backends:
            if url.startswith(kind):
                return name
        return None

    def store_name(self, url, backend=None):
        """The name logs and summaries give the store serving a location.

        The backend name with multi-store, the store type otherwise.
        """
        if self.multistore:
            return backend or self.backend_for_url(url) or scheme(url)
        return type_of_scheme(scheme(url))


# --- file stores: the data directories -------------------------------------


def configured_datadirs(conf, layout):
    """Every data directory of the file stores of *layout*."""
    datadirs = []
    for group in layout.option_groups(FILE_TYPE):
        section = conf[group]
        if section.filesystem_store_datadirs:
            datadirs.extend(_datadir_path(entry)
                            for entry in section.filesystem_store_datadirs)
        elif section.filesystem_store_datadir:
            datadirs.append(section.filesystem_store_datadir)
    return datadirs


def _datadir_path(entry):
    # A "PATH:PRIORITY" entry, read as glance_store reads it: what comes
    # before the last colon, stripped, is the path.
    return entry.rsplit(':', 1)[0].strip()


class FileDatadirs:
    """Tells whether a file location lies inside a configured datadir."""

    def __init__(self, datadirs):
        self._roots = [os.path.realpath(path) for path in datadirs]
        self._real_folder = functools.lru_cache(maxsize=1024)(
            os.path.realpath)

    def forget(self):
        """Resolve folders anew: one may have become a link since."""
        self._real_folder.cache_clear()

    def contains(self, path):
        """Whether *path*, resolved (symlinks, ``..``), is in a datadir."""
        real = self._realpath(path)
        # Both sides are resolved and normalised: a prefix test is exact.
        return any(real == root or real.startswith(root.rstrip(os.sep) +
                                                   os.sep)
                   for root in self._roots)

    def _realpath(self, path):
        # The images of a store share a few folders: resolve each folder
        # once, and the file's own name only when it is a link.
        folder, name = os.path.split(path)
        if name in ('', '.', '..') or os.path.islink(path):
            return os.path.realpath(path)
        return os.path.join(self._real_folder(folder), name)
