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

"""tools/check_test_assertions.py, the pep8 scan for tests that cannot fail.

Fed source text; what it finds is compared with what is written there.
"""

import importlib.util
import os
import textwrap

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                      os.pardir, 'tools', 'check_test_assertions.py')


@pytest.fixture(scope='module')
def scan():
    spec = importlib.util.spec_from_file_location('check_test_assertions',
                                                  SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def offenders(scan, source):
    return scan.offenders(textwrap.dedent(source))


def test_a_test_function_without_an_assertion_is_found(scan):
    source = '''
        import time


        def test_sleeps():
            time.sleep(0)


        def test_compares():
            assert 1 + 1 == 2
        '''

    assert offenders(scan, source) == [(5, 'test_sleeps')]


def test_a_test_method_without_an_assertion_is_found(scan):
    source = '''
        class TestDaemon(testtools.TestCase):

            def setUp(self):
                super().setUp()

            def test_stopping_returns(self):
                daemon = make_daemon()
                daemon.stop()
                daemon.wait()
        '''

    assert offenders(scan, source) == [
        (7, 'TestDaemon::test_stopping_returns')]


def test_calls_that_only_wait_or_look_are_no_assertion(scan):
    source = '''
        def test_waits(proxy):
            fixtures.wait_until(lambda: proxy.requests, 60)
            checked = proxy.checked()
            assertion = 'assert x'
            return checked, assertion
        '''

    assert offenders(scan, source) == [(2, 'test_waits')]


@pytest.mark.parametrize('statement', [
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
])
def test_each_documented_form_counts_as_an_assertion(scan, statement):
    source = 'def test_something(self):\n    %s\n' % statement

    assert offenders(scan, source) == []


def test_only_test_functions_and_methods_are_scanned(scan):
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

    assert offenders(scan, source) == []


def write(folder, relative, source):
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def test_the_tree_scan_reports_each_offender_with_its_place(scan, tmp_path):
    write(tmp_path, 'glance/tests/unit/test_a.py', '''
        def test_nothing():
            pass
        ''')
    write(tmp_path, 'glance/tests/unit/test_b.py', '''
        def test_something():
            assert True
        ''')
    # Not a test module: not scanned.
    write(tmp_path, 'glance/tests/unit/helpers.py', '''
        def test_like_helper():
            pass
        ''')

    found, stale = scan.check([str(tmp_path / 'glance')], str(tmp_path),
                              exceptions={})

    assert found == ['glance/tests/unit/test_a.py:2: test_nothing asserts '
                     'nothing']
    assert stale == []


def test_a_listed_exception_is_excused_and_a_stale_one_reported(
        scan, tmp_path):
    write(tmp_path, 'glance/tests/test_a.py', '''
        def test_nothing():
            pass


        def test_fixed():
            assert True
        ''')
    exceptions = {
        'glance/tests/test_a.py::test_nothing': 'the reason',
        'glance/tests/test_a.py::test_fixed': 'asserts now',
    }

    found, stale = scan.check([str(tmp_path / 'glance')], str(tmp_path),
                              exceptions=exceptions)

    assert found == []
    assert stale == ['glance/tests/test_a.py::test_fixed']


def test_the_command_fails_on_an_offender_and_names_it(
        scan, tmp_path, capsys):
    bad = write(tmp_path, 'test_bad.py', '''
        def test_nothing():
            pass
        ''')
    good = write(tmp_path, 'test_good.py', '''
        def test_something():
            assert True
        ''')

    assert scan.main([str(good)]) == 0
    assert scan.main([str(bad)]) == 1
    assert 'test_bad.py:2: test_nothing asserts nothing' in \
        capsys.readouterr().out
