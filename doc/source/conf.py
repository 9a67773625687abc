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

"""Sphinx configuration of the glance scrubber documentation.

Built with ``tox -e docs`` (``sphinx-build -W``: a warning fails the
build). The configuration reference is generated from the option
definitions in the code by oslo_config.sphinxext, so it cannot drift from
what the scrubber reads.
"""

extensions = [
    'openstackdocstheme',
    'oslo_config.sphinxext',
]

# The theme and its links. The build needs no network: the theme's assets
# are installed with it.
html_theme = 'openstackdocs'
openstackdocs_repo_name = 'openstack/glance'
openstackdocs_bug_project = 'glance'
openstackdocs_bug_tag = 'doc'
openstackdocs_auto_name = False
# The tree is versioned by pbr from git; the pages describe this tree, not
# a numbered release, so no version is shown.
openstackdocs_auto_version = False
version = ''
release = ''

project = 'glance scrubber'
copyright = '2026, OpenStack Foundation'

master_doc = 'index'
source_suffix = {'.rst': 'restructuredtext'}
exclude_patterns = ['_build']
pygments_style = 'native'
# Headings in the option reference are anchored by the directive itself.
add_module_names = False

# Manual pages for the two commands: ``sphinx-build -b man``.
man_pages = [
    ('cli/glance-scrubber', 'glance-scrubber',
     'reclaim the storage of images deleted with delayed_delete',
     ['OpenStack'], 1),
    ('cli/glance-manage', 'glance-manage',
     'create or inspect the glance database schema',
     ['OpenStack'], 1),
]
