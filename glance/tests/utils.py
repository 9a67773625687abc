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

"""Small helpers shared by the unit, functional and interop tests."""

import os
import shutil
import sys


def console_script(name):
    """The path of a console script of this virtualenv.

    The one beside the running Python first (tox's environment), then the
    one on PATH.
    """
    beside_python = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.exists(beside_python):
        return beside_python
    found = shutil.which(name)
    if found is None:
        raise RuntimeError('%s is not installed' % name)
    return found
