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

"""The Swift requests of a scrub pass, and nothing else: the ceiling.

    python tools/bench/plain_swift_client.py AUTH_URL USER PASSWORD
        PROJECT CONTAINER NAMES_FILE POOL

Logs in to Keystone once (v3, domain ``default``), then deletes every
object of NAMES_FILE (one per line) the way glance_store's swift driver
deletes a small image, HEAD then DELETE, from POOL threads sharing that
one token, each thread with a swiftclient connection of its own. Prints
the seconds the login and the deletes took, as a scrub pass logs in once
and deletes. No database, no glance_store, no scrubber: run through the
benchmark's proxies, its time is the best any scrubber could do there.
"""

import argparse
import concurrent.futures
import sys
import threading
import time

import swiftclient


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    for name in ('auth_url', 'user', 'password', 'project', 'container',
                 'names_file'):
        parser.add_argument(name)
    parser.add_argument('pool', type=int)
    return parser.parse_args(argv)


def log_in(args):
    options = {'project_name': args.project, 'user_domain_id': 'default',
               'project_domain_id': 'default'}
    return swiftclient.Connection(
        args.auth_url, args.user, args.password, auth_version='3',
        os_options=options).get_auth()


def main(argv):
    args = parse_args(argv)
    with open(args.names_file) as stream:
        names = stream.read().split()
    started = time.monotonic()
    storage_url, token = log_in(args)
    local = threading.local()

    def delete(name):
        if not hasattr(local, 'connection'):
            local.connection = swiftclient.Connection(
                preauthurl=storage_url, preauthtoken=token)
        local.connection.head_object(args.container, name)
        local.connection.delete_object(args.container, name)

    with concurrent.futures.ThreadPoolExecutor(args.pool) as executor:
        for _done in executor.map(delete, names):
            pass
    print('%.3f' % (time.monotonic() - started))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
