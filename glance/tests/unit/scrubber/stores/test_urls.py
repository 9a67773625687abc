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

"""The endings a database narrows "who else uses this data" down to."""

import testtools

from glance.scrubber.stores import urls

URLS = ('file:///srv/images/abc', 'filesystem://srv/images/abc',
        'file://abc', 's3://access:secret@host/bucket/key1',
        's3+https://host:80/bucket/key1', 'rbd://fsid/pool/image1/snap',
        'swift+https://tenant%3Auser:k/ey@auth/v3/container/object1',
        'swift://user:key@host/object', 'http://host/x', 'rbd://fsid',
        'file://[bad/abc')


def other_forms(url):
    """Other ways of writing *url*: some name the same data, some not."""
    head, _sep, last = url.rpartition('/')
    before, _sep, middle = head.rpartition('/')
    scheme, _sep, rest = url.partition('://')
    forms = {url + ending for ending in ('/', '/.', '//', '?x=1', '#f',
                                         ' ', '\n', '/x/..', '\t')}
    forms |= {head + between + last
              for between in ('//', '/./', '/q/../', '/\t')}
    forms |= {before + '/' + middle + between + last
              for between in ('/./', '//')}
    forms |= {before + '//' + middle + '/' + last,
              before + '/a/../' + middle + '/' + last,
              scheme + '://x@' + rest}
    forms |= {other + '://' + rest
              for other in ('file', 'filesystem', 's3', 's3+http')}
    return forms


class TestDataSuffixes(testtools.TestCase):

    def test_every_form_of_the_same_data_ends_so_or_is_irregular(self):
        forms = set(URLS).union(*[other_forms(url) for url in URLS])
        missed = []
        for url in forms:
            suffixes = urls.data_suffixes(url)
            for other in forms:
                if urls.data_digest(other) != urls.data_digest(url) or \
                        suffixes is None or urls.irregular(other):
                    continue
                if not other.endswith(tuple(suffixes)):
                    missed.append((url, other))

        self.assertEqual([], missed)

    def test_the_ending_names_the_object(self):
        self.assertEqual(('abc',),
                         urls.data_suffixes('file:///srv/images/abc'))
        self.assertEqual(('key1',), urls.data_suffixes(
            's3://access:secret@host/bucket/key1?x'))
        # Every RBD image ends with its snapshot: two parts narrow it.
        self.assertEqual(('image1/snap', '//snap', '/./snap', '/../snap'),
                         urls.data_suffixes('rbd://fsid/pool/image1/snap'))

    def test_no_ending_when_nothing_narrows(self):
        self.assertIsNone(urls.data_suffixes('s3://'))
        self.assertIsNone(urls.data_suffixes('swift://user@'))

    def test_irregular_endings(self):
        for url in ('file:///a/', 'file:///a/.', 'file:///a ', 's3://b/k?v',
                    'file:///a#b', 'file:///a\tb', ''):
            self.assertTrue(urls.irregular(url), url)
        self.assertFalse(urls.irregular('file:///srv/images/abc-1_2'))
