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

"""Encryption of image location URLs (``metadata_encryption_key``).

glance-api stores a location's URL encrypted when
``metadata_encryption_key`` is set. The stored text is the URL-safe
base64 of a 16-byte random IV followed by the AES-CBC ciphertext of::

    url || 0x00 || filler up to a multiple of 16 bytes

The filler holds no zero byte, so the URL is whatever precedes the last
zero byte. The key's UTF-8 bytes are the AES key: 16, 24 or 32 of them.
"""

import base64
import binascii
import os

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers import modes

from glance.i18n import _

BLOCK_SIZE = 16
AES_KEY_LENGTHS = (16, 24, 32)


class DecryptionError(ValueError):
    """The stored text is not a URL encrypted with this key."""


def _cipher(key, iv):
    key_bytes = key.encode('utf-8')
    if len(key_bytes) not in AES_KEY_LENGTHS:
        raise ValueError(_('metadata_encryption_key must be 16, 24 or 32 '
                           'bytes long, not %d') % len(key_bytes))
    return Cipher(algorithms.AES(key_bytes), modes.CBC(iv))


def validate_key(key):
    """Raise ValueError when *key* cannot be an AES key."""
    _cipher(key, bytes(BLOCK_SIZE))


def urlsafe_encrypt(key, plaintext):
    """Encrypt *plaintext* (str) the way glance-api stores locations."""
    data = plaintext.encode('utf-8') + b'\0'
    filler_length = -len(data) % BLOCK_SIZE
    data += os.urandom(filler_length).replace(b'\0', b'\1')
    iv = os.urandom(BLOCK_SIZE)
    encryptor = _cipher(key, iv).encryptor()
    ciphertext = encryptor.update(data) + encryptor.finalize()
    return base64.urlsafe_b64encode(iv + ciphertext).decode('ascii')


def urlsafe_decrypt(key, ciphertext):
    """Return the URL (str) that *ciphertext* holds.

    :raises DecryptionError: the text is not base64, is not whole blocks,
        or does not decrypt to a URL with this key.
    """
    try:
        raw = base64.urlsafe_b64decode(ciphertext.encode('ascii'))
    except (binascii.Error, UnicodeEncodeError) as error:
        raise DecryptionError(_('not URL-safe base64: %s') % error)
    if len(raw) < 2 * BLOCK_SIZE or len(raw) % BLOCK_SIZE:
        raise DecryptionError(_('%d bytes is not an IV and whole AES '
                                'blocks') % len(raw))
    decryptor = _cipher(key, raw[:BLOCK_SIZE]).decryptor()
    padded = decryptor.update(raw[BLOCK_SIZE:]) + decryptor.finalize()
    plaintext, separator, _filler = padded.rpartition(b'\0')
    if not separator:
        raise DecryptionError(_('no end marker: wrong key?'))
    try:
        return plaintext.decode('utf-8')
    except UnicodeDecodeError:
        raise DecryptionError(_('not UTF-8 text: wrong key?'))
