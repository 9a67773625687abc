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

"""tools/bench/check_pages.py: pages and figures against saved results."""

import os
import pathlib
import sys

import fixtures
import testtools

BENCH = pathlib.Path(__file__).resolve().parents[3] / 'tools' / 'bench'


def _bench_module(name):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return __import__(name)


class TestCheckPages(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.check = _bench_module('check_pages')
        self.pages = _bench_module('pages')
        self.folder = pathlib.Path(self.useFixture(fixtures.TempDir()).path)
        self.results = self.folder / 'results.json'
        self.results.write_text('{}')
        self.figures = self.folder / 'figures.inc'

    def page(self, text, name='page.rst'):
        path = self.folder / name
        path.write_text(text)
        return path

    def agreeing(self, figures):
        self.figures.write_text(self.check.figures_text(figures))

    def problems(self, wanted, figures, documents=()):
        return self.check.problems(wanted, figures, self.figures,
                                   documents=documents)

    def test_a_page_as_its_results_give_it_passes(self):
        page = self.page('rows\n')
        self.agreeing({'members-a-1-seconds': '3.5'})

        self.assertEqual([], self.problems(
            {page: ('rows\n', self.results)}, {'members-a-1-seconds': '3.5'},
            documents=[self.page('took |members-a-1-seconds| s\n',
                                 'guide.rst')]))

    def test_a_page_edited_by_hand_is_found(self):
        page = self.page('rows, one figure typed in\n')
        self.agreeing({})

        found = self.problems({page: ('rows\n', self.results)}, {})

        self.assertEqual(1, len(found))
        self.assertIn('differs from what', found[0])
        self.assertIn('+rows', found[0])

    def test_a_page_naming_no_results_file_is_found(self):
        self.agreeing({})

        found = self.problems({self.page('rows\n'): (None, None)}, {})

        self.assertEqual(1, len(found))
        self.assertIn('names no results file', found[0])

    def test_a_figures_file_behind_its_results_is_found(self):
        self.agreeing({'scrub-memory-10000-rss': '120'})

        found = self.problems({}, {'scrub-memory-10000-rss': '121'})

        self.assertEqual(1, len(found))
        self.assertIn('figures.inc is not what', found[0])

    def test_a_quoted_figure_no_results_file_holds_is_found(self):
        self.agreeing({'scrub-memory-10000-rss': '120'})
        guide = self.page('|scrub-memory-10000-rss| MB, and '
                          '|scrub-memory-99-rss| MB; |not-a-figure| and '
                          '|name| are not benchmark figures\n', 'guide.rst')

        found = self.problems({}, {'scrub-memory-10000-rss': '120'},
                              documents=[guide])

        self.assertEqual(['%s quotes |scrub-memory-99-rss|, which no '
                          'results file holds' % guide], found)

    def test_a_page_names_its_results_file_in_its_header(self):
        header = self.pages.generated_header(
            BENCH / 'scrub_bench.py', self.pages.RESULTS_DIR / 'x.json')

        found = self.pages.results_of('\n'.join(header + ['Title', '']))

        self.assertEqual(self.pages.RESULTS_DIR / 'x.json', found)
        self.assertIsNone(self.pages.results_of('Title\n=====\n'))


class TestTheTreesPages(testtools.TestCase):
    """The check itself, on this tree (also run by tox -e pep8)."""

    def test_pages_and_figures_agree_with_their_results(self):
        check = _bench_module('check_pages')
        wanted, figures = check.expected_pages()

        self.assertEqual([], check.problems(wanted, figures),
                         'run tools/bench/check_pages.py --write after '
                         'rewriting results, or fix the page')
        self.assertTrue(os.path.exists(check.FIGURES))
