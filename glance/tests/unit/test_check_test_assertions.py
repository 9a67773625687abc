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

"""tools/check_test_assertions.py, the pep8 scan of the tests' rules.

Fed source text; what it finds is compared with what is written there.
"""

import importlib.util
import io
import os
import textwrap

import fixtures
import testtools

from glance.tests import unit

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                      os.pardir, 'tools', 'check_test_assertions.py')

# Each form the docstring says counts as an assertion.
ASSERTING_FORMS = (
    'assert run.returncode == 0',
    'self.assertEqual(1, len(runs))',
    'self.assertTrue(done.wait(10))',
    'self.assertRaises(ValueError, parse, "x")',
    'self.fail("never reached")',
    'pytest.fail("never reached")',
    'deleter.delete.assert_called_once_with("file:///1")',
    'with pytest.raises(ValueError):\n        parse("x")',
    'with self.assertRaises(ValueError):\n        parse("x")',
    'error = pytest.raises(ValueError, parse, "x")',
    'check_image_scrubbed(engine, stores, image)',
    'scenario.check_image_scrubbed(engine, stores, image)',
    'expect_refused(run)',
    'assert_active(engine, image)',
    'for image in images:\n        check_active(engine, image)',
    'def later():\n        assert done\n    run(later)',
)


def load_script():
    spec = importlib.util.spec_from_file_location('check_test_assertions',
                                                  SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write(folder, relative, source):
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


class ScanTestCase(testtools.TestCase):
    """The script, loaded once, and a folder to write a tree in."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.scan = load_script()

    def setUp(self):
        super().setUp()
        self.folder = unit.temporary_folder(self)

    def offenders(self, source):
        return self.scan.offenders(textwrap.dedent(source))

    def check_tree(self, exceptions=None, unit_functions=None):
        """check() of the tree written in self.folder."""
        return self.scan.check([str(self.folder / 'glance')],
                               str(self.folder), exceptions=exceptions or {},
                               unit_functions=unit_functions or {})


class TestAssertions(ScanTestCase):
    """A test that asserts nothing is found; every asserting form counts."""

    def test_a_test_function_without_an_assertion_is_found(self):
        source = '''
            import time


            def test_sleeps():
                time.sleep(0)


            def test_compares():
                assert 1 + 1 == 2
            '''

        self.assertEqual([(5, 'test_sleeps')], self.offenders(source))

    def test_a_test_method_without_an_assertion_is_found(self):
        source = '''
            class TestDaemon(testtools.TestCase):

                def setUp(self):
                    super().setUp()

                def test_stopping_returns(self):
                    daemon = make_daemon()
                    daemon.stop()
                    daemon.wait()
            '''

        self.assertEqual([(7, 'TestDaemon::test_stopping_returns')],
                         self.offenders(source))

    def test_calls_that_only_wait_or_look_are_no_assertion(self):
        source = '''
            def test_waits(proxy):
                fixtures.wait_until(lambda: proxy.requests, 60)
                checked = proxy.checked()
                assertion = 'assert x'
                return checked, assertion
            '''

        self.assertEqual([(2, 'test_waits')], self.offenders(source))

    def test_each_documented_form_counts_as_an_assertion(self):
        for statement in ASSERTING_FORMS:
            source = 'def test_something(self):\n    %s\n' % statement

            self.assertEqual([], self.offenders(source), statement)

    def test_only_test_functions_and_methods_are_scanned(self):
        source = '''
            def helper():
                return 1


            class FakeScrubber:

                def run_once(self):
                    pass


            class TestDaemon:

                def run_daemon(self):
                    pass

                def test_real(self):
                    assert helper() == 1
            '''

        self.assertEqual([], self.offenders(source))

    def test_the_tree_scan_reports_each_offender_with_its_place(self):
        write(self.folder, 'glance/tests/unit/test_a.py', '''
            class TestA(testtools.TestCase):
                def test_nothing(self):
                    pass
            ''')
        write(self.folder, 'glance/tests/unit/test_b.py', '''
            class TestB(testtools.TestCase):
                def test_something(self):
                    self.assertTrue(True)
            ''')
        # Not a test module: not scanned.
        write(self.folder, 'glance/tests/unit/helpers.py', '''
            def test_like_helper():
                pass
            ''')

        found, stale = self.check_tree()

        self.assertEqual(['glance/tests/unit/test_a.py:3: TestA::test_nothing '
                          'asserts nothing'], found)
        self.assertEqual([], stale)

    def test_a_listed_exception_is_excused_and_a_stale_one_reported(self):
        write(self.folder, 'glance/tests/test_a.py', '''
            def test_nothing():
                pass


            def test_fixed():
                assert True
            ''')
        exceptions = {
            'glance/tests/test_a.py::test_nothing': 'the reason',
            'glance/tests/test_a.py::test_fixed': 'asserts now',
        }

        found, stale = self.check_tree(exceptions=exceptions)

        self.assertEqual([], found)
        self.assertEqual(['glance/tests/test_a.py::test_fixed'], stale)

    def test_the_command_fails_on_an_offender_and_names_it(self):
        stdout = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', stdout))
        bad = write(self.folder, 'test_bad.py', '''
            def test_nothing():
                pass
            ''')
        good = write(self.folder, 'test_good.py', '''
            def test_something():
                assert True
            ''')

        self.assertEqual(0, self.scan.main([str(good)]))
        self.assertEqual(1, self.scan.main([str(bad)]))
        self.assertIn('test_bad.py:2: test_nothing asserts nothing',
                      stdout.getvalue())


class TestShapeOfTheTests(ScanTestCase):
    """Unit tests are methods; no test module imports another."""

    def test_a_module_level_unit_test_is_found(self):
        write(self.folder, 'glance/tests/unit/scrubber/test_a.py', '''
            import testtools


            def test_alone():
                assert True


            class TestA(testtools.TestCase):
                def test_method(self):
                    self.assertTrue(True)
            ''')

        found, _stale = self.check_tree()

        self.assertEqual(['glance/tests/unit/scrubber/test_a.py:5: '
                          'test_alone is a function: a unit test is a '
                          'method of a testtools class'], found)

    def test_a_module_level_functional_test_is_left_alone(self):
        write(self.folder, 'glance/tests/functional/test_a.py', '''
            def test_with_a_server(server):
                assert server.answers()
            ''')

        self.assertEqual(([], []), self.check_tree())

    def test_a_listed_unit_function_is_excused_and_a_stale_one_reported(
            self):
        write(self.folder, 'glance/tests/unit/test_a.py', '''
            def test_waiting():
                assert True
            ''')
        unit_functions = {
            'glance/tests/unit/test_a.py::test_waiting': 'the reason',
            'glance/tests/unit/test_a.py::test_converted': 'a method now',
        }

        found, stale = self.check_tree(unit_functions=unit_functions)

        self.assertEqual([], found)
        self.assertEqual(['glance/tests/unit/test_a.py::test_converted'],
                         stale)

    def test_each_import_of_a_test_module_is_found(self):
        write(self.folder, 'glance/tests/functional/test_a.py', '''
            from glance.tests.unit.scrubber.test_run import TestPass
            from glance.tests.unit.scrubber import test_run
            import glance.tests.unit.test_docs
            from . import test_b
            from .test_c import helper
            ''')

        found, _stale = self.check_tree()

        self.assertEqual([
            'glance/tests/functional/test_a.py:%d: imports %s, a test '
            'module: what tests share goes in base.py, conftest.py or '
            '__init__.py' % (line, module) for line, module in (
                (2, 'glance.tests.unit.scrubber.test_run'),
                (3, 'glance.tests.unit.scrubber.test_run'),
                (4, 'glance.tests.unit.test_docs'),
                (5, '.test_b'),
                (6, '.test_c'))], found)

    def test_the_shared_places_may_be_imported(self):
        write(self.folder, 'glance/tests/unit/scrubber/test_a.py', '''
            from glance.tests.functional import conftest
            from glance.tests.unit import db as db_tests
            from glance.tests.unit.scrubber import base
            from glance.tests.unit.scrubber.base import ScrubberTestCase
            from glance.tests import utils
            ''')

        self.assertEqual(([], []), self.check_tree())
