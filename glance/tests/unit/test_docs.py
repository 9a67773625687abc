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

"""The pages say what the code does.

Each figure the pages give that the code also holds (the exit codes, the
options' defaults, the concurrency backend by default, how many images a
pass keeps in flight, the fields of the summary) is read from the pages
and compared with the code: neither can change alone. The pages state
them in a few fixed forms, so that they can be read here; a sentence that
gives such a figure in another form fails the test rather than going
unchecked.
"""

import pathlib
import re

import testtools

import glance
from glance import cmd as glance_cmd
from glance.cmd import scrubber as scrubber_cmd
from glance.scrubber import model
from glance.scrubber import options
from glance.scrubber import recorder
from glance.scrubber import run

ROOT = pathlib.Path(glance.__file__).resolve().parent.parent
MAN_PAGE = 'doc/source/cli/glance-scrubber.rst'
GUIDE = 'doc/source/admin/scrubber.rst'
README = 'README.rst'
UNIT_FILE = 'etc/glance-scrubber.service'
RELEASE_NOTES = 'releasenotes/notes'

# The options the man page and the guide must both give the default of.
MAIN_OPTIONS = ('scrub_pool_size', 'scrub_time', 'wakeup_time',
                'scrub_claim_timeout', 'scrub_store_timeout',
                'report_interval')

_TITLE_UNDERLINE = re.compile(r'^([=\-~^"\'`#*+])\1+$')


def read(name):
    path = ROOT / name
    if not path.exists():
        raise AssertionError('%s is not in this tree (an installed package?)'
                             % name)
    return path.read_text(encoding='utf-8')


def unit_file_comments():
    """The unit file's comments, its options quoted as the pages do."""
    text = '\n'.join(re.sub(r'^# ?', '', line) if line.startswith('#')
                     else '' for line in read(UNIT_FILE).splitlines())
    names = '|'.join(sorted(declared_options(), key=len, reverse=True))
    return re.sub(r'(?<![`\w])(%s)(?![`\w])' % names, r'``\1``', text)


def release_notes():
    folder = ROOT / RELEASE_NOTES
    if not folder.is_dir():
        raise AssertionError('%s is not in this tree' % RELEASE_NOTES)
    return {'%s/%s' % (RELEASE_NOTES, path.name):
            path.read_text(encoding='utf-8')
            for path in sorted(folder.glob('*.yaml'))}


def stating_pages():
    """{name: text} of what an operator reads a figure in.

    The man page, the guide, the README, the unit file's comments and the
    release notes.
    """
    pages = {name: read(name) for name in (MAN_PAGE, GUIDE, README)}
    pages[UNIT_FILE] = unit_file_comments()
    pages.update(release_notes())
    return pages


def flat(text):
    """The text on one line: a statement may be folded anywhere."""
    return ' '.join(text.split())


def sentences(text):
    """The text cut where a sentence or a clause ends, each on one line."""
    return [part for part in re.split(r'(?<=[.;])\s+|\n\s*\n', text)
            if part.strip()]


def section(text, title):
    """The body of the reStructuredText section called *title*.

    It ends at the next title of the same level or above; levels are told
    by their underline, in the order the page first uses them.
    """
    lines = text.splitlines()
    levels = []
    titles = []
    for number, (line, under) in enumerate(zip(lines, lines[1:])):
        match = _TITLE_UNDERLINE.match(under)
        if (match and line.strip() and not _TITLE_UNDERLINE.match(line)
                and len(under) >= len(line.strip())):
            if match.group(1) not in levels:
                levels.append(match.group(1))
            titles.append((number, line.strip(),
                           levels.index(match.group(1))))
    for index, (number, name, level) in enumerate(titles):
        if name != title:
            continue
        end = len(lines)
        for later, _name, later_level in titles[index + 1:]:
            if later_level <= level:
                end = later
                break
        return '\n'.join(lines[number + 2:end])
    raise AssertionError('no section %r' % title)


def definitions(text):
    """The items of a definition list: (term, body on one line)."""
    items = re.findall(r'^(\S[^\n]*)\n((?:(?: {2,}[^\n]*)?\n)+)',
                       text + '\n', re.M)
    return [(term.strip(), flat(body)) for term, body in items
            if body.strip()]


def bullets_after(text, lead):
    """The items of the bullet list that follows the text *lead*."""
    paragraphs = re.split(r'\n\s*\n', text)
    for index, paragraph in enumerate(paragraphs):
        if flat(paragraph).endswith(flat(lead)):
            items = re.split(r'^\* ', paragraphs[index + 1], flags=re.M)
            return [flat(item) for item in items if item.strip()]
    raise AssertionError('%r does not end a paragraph' % lead)


# Exit codes.

def code_exit_constants():
    return {name: value for name, value in vars(scrubber_cmd).items()
            if name.startswith('EXIT_')}


def docstring_exit_codes():
    """(constant, code, word) from glance/cmd/scrubber.py's docstring."""
    return [(name, int(code), word.lower()) for code, name, word in
            re.findall(r'^\* (\d+) \((EXIT_\w+)\),? (\w+):',
                       scrubber_cmd.__doc__, re.M)]


def page_exit_codes(text, title):
    """{code: first word} of the definition list of section *title*."""
    codes = {}
    for term, body in definitions(section(text, title)):
        code = re.fullmatch(r'``(\d+)``', term)
        assert code, 'not an exit code: %r' % term
        word = re.match(r'(\w+)[:,]', body)
        assert word, ('exit code %s: start with the word the docstring of '
                      'glance.cmd.scrubber gives it, then a colon or a '
                      'comma: %r' % (term, body))
        codes[int(code.group(1))] = word.group(1).lower()
    return codes


class TestExitCodes(testtools.TestCase):
    """The exit codes: the docstring, the man page and the guide."""

    def test_the_docstring_names_every_exit_code_and_its_constant(self):
        documented = {name: code for name, code, _word in
                      docstring_exit_codes()}

        self.assertEqual(code_exit_constants(), documented)

    def test_the_pages_give_each_exit_code_its_meaning(self):
        # The docstring ties each constant to its code and a word (done,
        # refused...); each page's list must give the same codes the same
        # words.
        words = {code: word for _name, code, word in docstring_exit_codes()}

        for page, title in ((MAN_PAGE, 'Exit status'), (GUIDE, 'Exit codes')):
            self.assertEqual(words, page_exit_codes(read(page), title), page)
        self.assertEqual(set(code_exit_constants().values()), set(words))


# Option defaults.

_DEFAULT_FORMS = (
    # ``scrub_time = 0``, the default
    re.compile(r'``(?P<name>\w+) = (?P<value>[^`]+)``,? \(?the default\b'),
    # ``scrub_claim_timeout`` (3600 seconds, an hour, by default),
    # ``metrics_file`` (unset by default)
    re.compile(r'``(?P<name>\w+)`` \((?P<value>-?\d+(?:\.\d+)?|unset)'
               r'(?: seconds)?(?:, [^(),]+)?,? by default\b'),
    # ``scrub_pool_size`` (1, the default, ...)
    re.compile(r'``(?P<name>\w+)`` \((?P<value>-?\d+(?:\.\d+)?)'
               r'(?: seconds)?, the default\b'),
    # ``scrub_claim_timeout`` (default 3600 seconds), ``report_interval``
    # option (seconds, at least 1, default 60)
    re.compile(r'``(?P<name>\w+)``(?: option)? \((?:[^()]*?, )?default '
               r'(?P<value>-?\d+(?:\.\d+)?|unset)\b'),
)
# How near an option's name a default must be spoken of to be its.
_NEAR = 60
_DEFAULT_WORD = re.compile(r'\b[Dd]efault\b')


def declared_options():
    return {opt.dest: opt for opt in
            options.scrubber_opts + options.scrubber_cmd_cli_opts}


def stated_defaults(text):
    """[(option, value as written, sentence)], and unreadable sentences.

    A sentence that names one of the scrubber's options and speaks of a
    default near it (_NEAR) without one of _DEFAULT_FORMS is returned as
    unreadable.
    """
    names = declared_options()
    stated = []
    unreadable = []
    for sentence in sentences(text):
        line = flat(sentence)
        found = [(match.group('name'), match.group('value'), line)
                 for form in _DEFAULT_FORMS
                 for match in form.finditer(line)
                 if match.group('name') in names]
        stated.extend(found)
        if not found and _default_near_an_option(line, names):
            unreadable.append(line)
    return stated, unreadable


def _default_near_an_option(line, names):
    defaults = [match.start() for match in _DEFAULT_WORD.finditer(line)]
    options = [match.start() for match in re.finditer(
        r'``(\w+)(?:``| )', line) if match.group(1) in names]
    return any(abs(default - option) <= _NEAR
               for default in defaults for option in options)


def same_value(written, default):
    if written == 'unset' or default is None:
        return written == 'unset' and default is None
    if isinstance(default, bool):
        return written == str(default)
    return float(written) == float(default)


def default_pages():
    pages = stating_pages()
    for path in sorted((ROOT / 'doc/source').glob('**/*.rst')):
        name = str(path.relative_to(ROOT))
        pages.setdefault(name, read(name))
    return pages


class TestOptionDefaults(testtools.TestCase):
    """The defaults the pages give are the options' declared ones."""

    def test_the_defaults_the_pages_give_are_the_declared_ones(self):
        declared = declared_options()
        pages = default_pages()
        for page in (MAN_PAGE, GUIDE, README, UNIT_FILE, RELEASE_NOTES,
                     'doc/source'):
            text = '\n\n'.join(
                text for name, text in pages.items()
                if name == page or name.startswith(page + '/'))
            stated, unreadable = stated_defaults(text)

            self.assertEqual([], unreadable, (
                '%s: give a default as "``option`` (VALUE[ seconds][, '
                'words] by default)", "``option`` (VALUE, the default", '
                '"``option`` ([words, ]default VALUE" or "``option = '
                'VALUE``, the default":\n' % page + '\n'.join(unreadable)))
            wrong = ['%s: says %s, declared %s: %s'
                     % (name, value, declared[name].default, line)
                     for name, value, line in stated
                     if not same_value(value, declared[name].default)]
            self.assertEqual([], wrong, '%s:\n' % page + '\n'.join(wrong))

    def test_the_pages_give_the_main_defaults(self):
        for page in (MAN_PAGE, GUIDE):
            stated, _unreadable = stated_defaults(read(page))

            missing = set(MAIN_OPTIONS) - {name for name, _value, _line
                                           in stated}
            self.assertEqual(set(), missing, '%s: no default given for %s'
                             % (page, ', '.join(sorted(missing))))


# The concurrency backend by default.

_BACKEND_FORMS = (
    # ``threading`` (the default), the threading backend (the default)
    re.compile(r'\b(\w+)(?:``)?(?: backend)? \(the default\b'),
    # Threading is the default
    re.compile(r'\b(\w+)(?:``)? is the default\b'),
    # the default concurrency backend is now ``threading``
    re.compile(r'\bdefault (?:concurrency )?backend is (?:now )?'
               r'(?:``)?(\w+)'),
)
# Python's -W option, not a backend's default.
_NOT_A_DEFAULT = re.compile(r'-W default')


def stated_backends(text):
    """[(backend, sentence)], and the unreadable sentences."""
    stated = []
    unreadable = []
    for sentence in sentences(text):
        line = flat(_NOT_A_DEFAULT.sub('', sentence))
        found = [(match.group(1).lower(), line)
                 for form in _BACKEND_FORMS for match in form.finditer(line)
                 if match.group(1).lower() in glance_cmd.BACKENDS]
        stated.extend(found)
        if (not found and _DEFAULT_WORD.search(line) and
                any(re.search(r'\b%s\b' % name, line, re.I)
                    for name in glance_cmd.BACKENDS)):
            unreadable.append(line)
    return stated, unreadable


def backend_pages():
    pages = stating_pages()
    pages['glance/cmd/__init__.py'] = glance_cmd.__doc__
    pages['scrub_pool_size help'] = str(
        declared_options()['scrub_pool_size'].help)
    return pages


class TestDefaultBackend(testtools.TestCase):
    """The concurrency backend by default, wherever a page names it."""

    def test_the_pages_name_the_default_backend(self):
        pages = backend_pages()
        for page in (MAN_PAGE, GUIDE, README, UNIT_FILE,
                     'glance/cmd/__init__.py'):
            stated, _unreadable = stated_backends(pages[page])

            self.assertTrue(stated, '%s: no default backend stated' % page)

    def test_every_default_backend_stated_is_the_code_s(self):
        wrong = []
        unreadable = []
        for page, text in backend_pages().items():
            stated, unread = stated_backends(text)
            wrong.extend('%s: %s, not %s: %s'
                         % (page, backend, glance_cmd.DEFAULT_BACKEND, line)
                         for backend, line in stated
                         if backend != glance_cmd.DEFAULT_BACKEND)
            unreadable.extend('%s: %s' % (page, line) for line in unread)

        self.assertEqual([], wrong, '\n'.join(wrong))
        self.assertEqual([], unreadable, (
            'name the default backend as "``NAME`` (the default" or "NAME '
            'is the default":\n' + '\n'.join(unreadable)))


# What a pass keeps in flight.

_IN_FLIGHT = re.compile(r'``scrub_pool_size``(?: images)? (?:plus|\+) '
                        r'(\d+)')
_CLAIMED_AHEAD = re.compile(r'never more than (\d+) images? ahead of')
_MULTIPLE = re.compile(r'\b(?:\d+|two) ?(?:x|×|times) ``scrub_pool_size``|'
                       r'\btwice ``scrub_pool_size``')


class TestImagesInFlight(testtools.TestCase):
    """How many images a pass keeps in flight, and claims ahead."""

    def test_the_pages_bound_the_images_in_flight(self):
        pages = stating_pages()
        for page in (MAN_PAGE, GUIDE, UNIT_FILE):
            text = flat(pages[page])

            self.assertTrue(_IN_FLIGHT.findall(text),
                            '%s: no bound of the images in flight' % page)

    def test_the_images_in_flight_are_bounded_as_the_pass_does(self):
        wrong = []
        for page, text in stating_pages().items():
            text = flat(text)
            wrong.extend('%s: %s, not %d' % (page, bound,
                                             run.Scrubber.MAX_CLAIM)
                         for bound in
                         _IN_FLIGHT.findall(text) +
                         _CLAIMED_AHEAD.findall(text)
                         if int(bound) != run.Scrubber.MAX_CLAIM)
            wrong.extend('%s: %s, not scrub_pool_size plus %d'
                         % (page, multiple, run.Scrubber.MAX_CLAIM)
                         for multiple in _MULTIPLE.findall(text))

        self.assertEqual([], wrong, '\n'.join(wrong))

    def test_the_guide_says_how_far_a_pass_claims_ahead(self):
        text = flat(read(GUIDE))

        self.assertTrue([int(bound) for bound in
                         _CLAIMED_AHEAD.findall(text)])


# The summary.

def summary_line_names():
    return re.findall(r'(\w+)=', model.Summary().describe())


class TestSummaryLine(testtools.TestCase):
    """The summary line the pages show is the one a pass logs."""

    def test_the_guide_s_summary_line_is_the_code_s(self):
        example = re.search(r'Scrub pass summary: ([^\n]+)',
                            section(read(GUIDE), 'The summary line'))

        self.assertTrue(example, 'no example of the summary line')
        self.assertEqual(summary_line_names(),
                         re.findall(r'(\w+)=', example.group(1)))

    def test_every_example_of_the_summary_line_is_the_code_s(self):
        pages = {GUIDE: read(GUIDE), README: read(README)}
        pages.update(release_notes())
        examples = [(page, re.findall(r'(\w+)=', example))
                    for page, text in pages.items()
                    for example in re.findall(
                        r'Scrub pass summary: ((?:\w+=\S+ ?)+)', flat(text))]

        self.assertTrue(examples)
        wrong = ['%s: %s' % (page, ' '.join(names))
                 for page, names in examples
                 if names != summary_line_names()]
        self.assertEqual([], wrong, '\n'.join(wrong))

    def test_the_guide_explains_every_number_of_the_summary_line(self):
        terms = [term for term, _body in
                 definitions(section(read(GUIDE), 'The summary line'))]
        explained = [re.fullmatch(r'``(\w+)``', term).group(1)
                     for term in terms if re.fullmatch(r'``(\w+)``', term)]

        self.assertEqual(summary_line_names(), explained)


def json_keys(text, lead):
    keys = []
    for item in bullets_after(text, lead):
        named, _colon, _meaning = item.partition(': ')
        keys.extend(re.findall(r'``(\w+)``', named))
    return keys


class TestJsonLines(testtools.TestCase):
    """The guide lists the keys of the JSON summary and progress lines."""

    def test_the_guide_lists_every_key_of_the_json_summary(self):
        logs = section(read(GUIDE), 'Logs')
        keys = json_keys(logs, "The summary line's keys:")

        self.assertEqual(len(set(keys)), len(keys), keys)
        self.assertEqual(set(model.Summary().fields()), set(keys))

    def test_the_guide_lists_every_key_of_the_json_progress_line(self):
        logs = section(read(GUIDE), 'Logs')
        summary_keys = json_keys(logs, "The summary line's keys:")
        more = json_keys(logs, 'and one more:')

        self.assertEqual(
            set(recorder._progress_fields(model.Summary(), 0, 0.0)),
            set(summary_keys) | set(more))
