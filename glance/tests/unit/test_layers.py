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

"""Layers only look down: the imports of every module, read from source.

cmd -> scrubber -> stores -> glance_store; scrubber -> db. The store side
never imports the database layer or the pass; common and db never import
the scrubber; nothing imports the command line.
"""

import ast
import pathlib

import testtools

from glance.tests import unit

ROOT = pathlib.Path(__file__).resolve().parents[2]

# (modules whose imports are checked, prefixes they must not import)
RULES = [
    ('glance.scrubber.stores', ('glance.db', 'glance.scrubber.run',
                                'glance.scrubber.recorder',
                                'glance.scrubber.claims',
                                'glance.scrubber.worker',
                                'glance.scrubber.data_users',
                                'glance.scrubber.daemon',
                                'glance.cmd')),
    ('glance.common', ('glance.scrubber', 'glance.db', 'glance.cmd')),
    ('glance.db', ('glance.scrubber', 'glance.cmd')),
    ('glance.scrubber', ('glance.cmd',)),
    ('glance._compat', ('glance.',)),
]


def module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix('').parts
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def imported(path):
    """Every glance module *path* imports, by full name."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update('%s.%s' % (node.module, alias.name)
                         for alias in node.names)
    return {name for name in names if name.startswith('glance.')}


def sources():
    for path in sorted(ROOT.rglob('*.py')):
        if 'tests' not in path.relative_to(ROOT).parts:
            yield module_name(path), path


def violations(sources_by_name):
    found = []
    for name, path in sources_by_name:
        for owner, forbidden in RULES:
            if name != owner and not name.startswith(owner + '.'):
                continue
            for target in sorted(imported(path)):
                if target.startswith(forbidden):
                    found.append('%s imports %s' % (name, target))
    return found


class TestLayers(testtools.TestCase):
    """Layers only look down: the rule, and that it sees every room."""

    def test_layers_only_look_down(self):
        self.assertEqual([], violations(sources()))

    def test_the_rule_catches_a_store_module_importing_the_database(self):
        module = unit.temporary_folder(self) / 'bad.py'
        module.write_text('from glance.db.sqlalchemy import api as db_api\n')

        self.assertEqual(
            ['glance.scrubber.stores.bad imports glance.db.sqlalchemy.api'],
            violations([('glance.scrubber.stores.bad', module)]))

    def test_every_room_is_seen(self):
        seen = dict(sources())
        for name in ('glance.scrubber.stores.deleter', 'glance.scrubber.run',
                     'glance.scrubber.data_users'):
            self.assertIn(name, seen)
