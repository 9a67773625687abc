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

"""Options the scrubber shares with glance-api, and parse_args()."""

import argparse
import glob
import os
import sys

from oslo_config import cfg
from oslo_db import options as db_options

from glance import _compat
from glance.i18n import _
from glance import version

DEFAULT_SQL_CONNECTION = 'sqlite:///glance.sqlite'

common_opts = [
    cfg.BoolOpt('delayed_delete', default=False, help=_("""
Turn on or off delayed deletion of image data (read by glance-api).

When on, deleting an image leaves it in ``pending_delete`` with its data
still in the store, and glance-scrubber removes the data later. When off,
glance-api deletes the data at once and the scrubber has nothing to do.

Possible values:
    * True
    * False

Related options:
    * scrub_time
    * wakeup_time
    * scrub_pool_size
""")),
    cfg.StrOpt('metadata_encryption_key', secret=True, help=_("""
AES key with which glance-api encrypts image location URLs.

When glance-api stores locations encrypted, the scrubber needs the same key
to read them. An image whose location cannot be decrypted fails that
image only; its data is left alone.

Possible values:
    * A string of 16, 24 or 32 bytes (AES-128, AES-192 or AES-256)
    * Unset: locations are stored in clear text

Related options:
    * None
""")),
    cfg.DictOpt('enabled_backends', help=_("""
Named store backends and their types, for multiple stores.

A comma separated list of ``name:type`` pairs. Each name is a config
section holding that backend's glance_store options. When set, the
scrubber deletes each location from the backend recorded in the
location's ``store`` metadata; when unset, the single store of the
``[glance_store]`` section is used and the URL scheme picks the driver.

Possible values:
    * A comma separated list of name:type pairs, for example
      ``fast:rbd,cheap:file``; type is one of file, http, rbd, swift,
      cinder, vmware, s3
    * Unset: a single store

Related options:
    * [glance_store] default_backend
""")),
]


def register_opts(conf):
    conf.register_opts(common_opts)
    db_options.set_defaults(conf, connection=DEFAULT_SQL_CONNECTION)


class UnreadableConfigFile(cfg.Error):
    """A configuration file is a directory, unreadable, or not UTF-8."""


class BadValue(cfg.Error):
    """An option of the command line, set in a file, has a bad value."""


def parse_args(conf, args=None, usage=None, default_config_files=None):
    """Parse the command line and config files into *conf*.

    :raises cfg.Error: bad arguments or values (BadValue for one argparse
        refuses), UnreadableConfigFile for a file oslo.config cannot read
        as text.
    """
    try:
        _compat.parse_config(conf, args=args, project='glance', usage=usage,
                             version=version.release_string(),
                             default_config_files=default_config_files)
    except _compat.CommandLineValueError as error:
        raise BadValue(str(error)) from error
    except UnicodeDecodeError as error:
        # oslo.config does not say which file: find it.
        candidates = _config_files(conf, sys.argv[1:] if args is None
                                   else args)
        culprit = next((path for path in candidates
                        if not _decodes(path)), None)
        raise UnreadableConfigFile(
            _('configuration file %(path)s is not UTF-8 text (byte '
              '%(byte)s at offset %(offset)d)') % {
                'path': culprit or '(unknown)',
                'byte': hex(error.object[error.start]),
                'offset': error.start}) from error
    except OSError as error:
        raise UnreadableConfigFile(
            _('configuration file %(path)s cannot be read: %(error)s') % {
                'path': error.filename, 'error': error.strerror}) from error


def _config_files(conf, args):
    """The files oslo.config may have read: named, in a folder, default."""
    named = argparse.ArgumentParser(add_help=False)
    named.add_argument('--config-file', action='append', default=[])
    named.add_argument('--config-dir', action='append', default=[])
    known, _unknown = named.parse_known_args(args)
    folders = known.config_dir or list(conf.default_config_dirs or ())
    in_folders = [path for folder in folders
                  for path in sorted(glob.glob(os.path.join(folder,
                                                            '*.conf')))]
    return (known.config_file or list(conf.default_config_files or ())) + \
        in_folders


def _decodes(path):
    try:
        with open(path, encoding='utf-8') as config_file:
            config_file.read()
    except UnicodeDecodeError:
        return False
    except OSError:
        pass
    return True
