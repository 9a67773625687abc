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

"""The store side of a scrub: what may be deleted, and deleting it.

Everything here talks to glance_store or the client libraries under it,
and nothing here imports the database layer or the pass: what the stores
need to know of the database (which other images use some data) is handed
to them (glance.scrubber.data_users). An import test holds the rule.

* layout: the configured backends by type, the file datadirs, URL schemes;
  read once from the configuration;
* urls: location values to URLs (decrypted) and what data a URL names;
* deleter: StoreDeleter, the rules and the delete of one location;
* calls: each store call bounded by ``scrub_store_timeout``;
* gate: the throttling gate every delete goes through;
* s3, swift, rbd: what one store needs beyond glance_store's defaults;
* checks: the start-up checks of the configured stores.

Every private or version-dependent detail of the libraries under them is
reached through glance._compat, where a test pins each one.
"""
