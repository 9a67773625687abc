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

"""Fail on a test that asserts nothing: every test must be able to fail.

Usage: check_test_assertions.py [PATH...] (default: glance/tests beside
this script). Each ``test_*.py`` file under a PATH is parsed, not run.

The rule, on the source of each ``test_*`` function or method (nested
functions and lambdas in it included), is that it has one of:

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

Exit status 0 when every test passes the rule, 1 otherwise (each offender
on a line of its own, as ``path:line: name``).
"""

import ast
import os
import sys

# "path relative to the tree::[Class::]test_name": why it asserts nothing.
EXCEPTIONS = {}

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


def check(paths, root, exceptions=None):
    """The offenders in *paths*, and the stale EXCEPTIONS.

    :returns: (["path:line: name asserts nothing", ...], [the keys of
        *exceptions* that name no offender]).
    """
    exceptions = EXCEPTIONS if exceptions is None else exceptions
    found = []
    excused = set()
    for path in test_files(paths):
        with open(path, encoding='utf-8') as stream:
            source = stream.read()
        relative = os.path.relpath(path, root)
        for line, name in offenders(source, path):
            key = '%s::%s' % (relative, name)
            if key in exceptions:
                excused.add(key)
            else:
                found.append('%s:%d: %s asserts nothing' % (relative, line,
                                                            name))
    return found, sorted(set(exceptions) - excused)


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
        print('%s: listed in EXCEPTIONS but asserts something, or is gone'
              % key)
    if found:
        print('A test must be able to fail: assert something, or list it '
              'in EXCEPTIONS of %s with the reason.' % os.path.relpath(
                  __file__, root))
    return 1 if found or stale else 0


if __name__ == '__main__':
    sys.exit(main())
