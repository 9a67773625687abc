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

"""Option lists for oslo-config-generator and oslo_config.sphinxext."""

import itertools

from glance.common import config
from glance import scrubber
from glance.scrubber import coordination


def list_scrubber_opts():
    """The options of glance-scrubber, by group (namespace glance.scrubber).

    glance_store, oslo.db, oslo.log and oslo.concurrency options come from
    their own namespaces.
    """
    return [
        (None, list(itertools.chain(config.common_opts,
                                    scrubber.scrubber_opts,
                                    scrubber.scrubber_cmd_cli_opts))),
        (coordination.GROUP, list(coordination.coordination_opts)),
    ]


def list_manage_opts():
    """The options of glance-manage (namespace glance.manage)."""
    return [(None, list(config.common_opts))]
