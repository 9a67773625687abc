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

"""What a store call can end in, besides a Deletion."""


class LocationError(Exception):
    """A location's data could not be deleted; its image fails."""


class LocationInUse(Exception):
    """The store keeps the data because something uses it (RBD clones)."""


class StoreOutage(LocationError):
    """The store, not the location, failed: it is silent or unavailable.

    :ivar store: the name of the store (its backend name with
        ``enabled_backends``, else its type), once the deleter knows it.
    """

    store = None


class StoreTimeout(StoreOutage):
    """A store call gave no answer in time; it may still be running."""


class StoreUnavailable(StoreOutage):
    """The store could not be reached, or answered with a server error.

    The call is over: unlike a timeout, nothing is left running.
    """
