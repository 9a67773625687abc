#!/usr/bin/env python3
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

"""Fail on a test that cannot fail, or a test written against the rules.

Usage: check_test_assertions.py [PATH...] (default: glance/tests beside
this script). Each ``test_*.py`` file under a PATH is parsed, not run.

The first rule, on the source of each ``test_*`` function or method
(nested functions and lambdas in it included), is that it has one of:

* an ``assert`` statement;
* a call of a name starting with ``assert`` or ``fail``, as a method or
  not (``self.assertEqual``, ``self.fail``, ``mock.assert_called_once``,
  ``pytest.fail``), which covers ``assertRaises`` too;
* ``pytest.raises``, called or as a context manager;
* a call of a helper whose name starts with ``check_``, ``assert`` or
  ``expect`` (``check_image_scrubbed(...)``,
  ``scenario.check_image_scrubbed(...)``): helpers so named assert, by
  this tree's convention.

A name is trusted, not followed: a ``check_`` helper that checks nothing
passes. This is a tripwire for the test that cannot fail, not a proof
that the others can. A test that must stay as it is goes in EXCEPTIONS
below, with the reason.

Two more rules keep the tests in one shape (glance/tests/unit/__init__.py
says why that shape):

* a unit test (under glance/tests/unit) is a method of a testtools class,
  never a module-level ``test_*`` function (UNIT_FUNCTIONS lists the few
  allowed for now, with the reason);
* no test module imports another test module (``test_*``), nor anything
  from one: what tests share lives in a ``base.py``, a ``conftest.py`` or
  a package's ``__init__.py``, where both may import it.

Exit status 0 when every test passes the rules, 1 otherwise (each offender
on a line of its own, as ``path:line: what``).
"""

import ast
import os
import sys

# "path relative to the tree::[Class::]test_name": why it asserts nothing.
EXCEPTIONS = {}

UNIT_TESTS = 'glance/tests/unit/'
# "path relative to the tree::test_name": why it is a function for now.
UNIT_FUNCTIONS = {}

ASSERTING_PREFIXES = ('assert', 'fail')
HELPER_PREFIXES = ('check_', 'assert', 'expect')


def _called_name(call):
    """The name a call is made through: f(...) -> f, a.b.f(...) -> f."""
    function = call.func
    if isinstance(function, ast.Name):
        return function.id
    if isinstance(function, ast.Attribute):
        return function.attr
    return None


def _is_pytest_raises(call):
    function = call.func
    return (isinstance(function, ast.Attribute) and
            function.attr == 'raises' and
            isinstance(function.value, ast.Name) and
            function.value.id == 'pytest')


def asserts(function):
    """Whether the source of *function* (an ast node) can fail it."""
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            if _is_pytest_raises(node):
                return True
            name = _called_name(node)
            if name and name.startswith(ASSERTING_PREFIXES +
                                        HELPER_PREFIXES):
                return True
    return False


def tests_in(tree):
    """(qualified name, node) of each test function and method."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name.startswith('test_'):
                yield node.name, node
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if (isinstance(member, (ast.FunctionDef,
                                        ast.AsyncFunctionDef)) and
                        member.name.startswith('test_')):
                    yield '%s::%s' % (node.name, member.name), member


def offenders(source, filename='<source>'):
    """The tests in *source* that assert nothing: [(line, name)]."""
    tree = ast.parse(source, filename)
    return [(node.lineno, name) for name, node in tests_in(tree)
            if not asserts(node)]


def module_functions(tree):
    """(line, name) of each module-level test function."""
    return [(node.lineno, node.name) for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and
            node.name.startswith('test_')]


def _is_test_module(dotted):
    return dotted.split('.')[-1].startswith('test_')


def test_module_imports(tree):
    """(line, module) of each import of a test module, or from one."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names
                         if _is_test_module(alias.name))
        elif isinstance(node, ast.ImportFrom):
            module = '.' * node.level + (node.module or '')
            if node.module and _is_test_module(node.module):
                found.append((node.lineno, module))
            else:
                prefix = module if module.endswith('.') else module + '.'
                found.extend((node.lineno, prefix + alias.name)
                             for alias in node.names
                             if _is_test_module(alias.name))
    return found


def shape_offenders(source, relative, filename='<source>'):
    """[(key, line, what is wrong)] with the shape of a test module.

    :param relative: the module's path relative to the tree, with '/'.
    """
    tree = ast.parse(source, filename)
    found = [('%s::%s' % (relative, name), line,
              '%s is a function: a unit test is a method of a testtools '
              'class' % name)
             for line, name in module_functions(tree)
             if relative.startswith(UNIT_TESTS)]
    found.extend((None, line, 'imports %s, a test module: what tests '
                  'share goes in base.py, conftest.py or __init__.py'
                  % module) for line, module in test_module_imports(tree))
    return found


def test_files(paths):
    for path in paths:
        if os.path.isfile(path):
            yield path
            continue
        for folder, folders, files in os.walk(path):
            folders.sort()
            for name in sorted(files):
                if name.startswith('test_') and name.endswith('.py'):
                    yield os.path.join(folder, name)


def check(paths, root, exceptions=None, unit_functions=None):
    """The offenders in *paths*, and the stale exceptions.

    :returns: (["path:line: what is wrong", ...], [the keys of
        *exceptions* and *unit_functions* that name no offender]).
    """
    exceptions = EXCEPTIONS if exceptions is None else exceptions
    unit_functions = (UNIT_FUNCTIONS if unit_functions is None
                      else unit_functions)
    found = []
    excused = set()
    for path in test_files(paths):
        with open(path, encoding='utf-8') as stream:
            source = stream.read()
        relative = os.path.relpath(path, root).replace(os.sep, '/')
        for line, name in offenders(source, path):
            key = '%s::%s' % (relative, name)
            if key in exceptions:
                excused.add(key)
            else:
                found.append('%s:%d: %s asserts nothing' % (relative, line,
                                                            name))
        for key, line, what in shape_offenders(source, relative, path):
            if key in unit_functions:
                excused.add(key)
            else:
                found.append('%s:%d: %s' % (relative, line, what))
    stale = (set(exceptions) | set(unit_functions)) - excused
    return found, sorted(stale)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = argv or [os.path.join(root, 'glance', 'tests')]
    found, stale = check(paths, root)
    if argv:
        # Only part of the tree: an exception outside it is not stale.
        stale = []
    for line in found:
        print(line)
    for key in stale:
        print('%s: listed in EXCEPTIONS or UNIT_FUNCTIONS but keeps the '
              'rules, or is gone' % key)
    if found:
        print('A test must be able to fail, and keep the shape of the '
              'tests: see the docstring of %s (and list a test that must '
              'stay as it is in its EXCEPTIONS or UNIT_FUNCTIONS, with the '
              'reason).' % os.path.relpath(__file__, root))
    return 1 if found or stale else 0


if __name__ == '__main__':
    sys.exit(main())
