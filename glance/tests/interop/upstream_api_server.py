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

"""Serve upstream Glance's API (glance.wsgi.api) on loopback.

Run by the python of the upstream Glance virtualenv, never by this tree's:
it imports the released ``glance`` package installed there. Upstream's
``glance-api`` command no longer serves, so the WSGI application is put
behind the standard library's wsgiref server, one thread per request.

    python -I upstream_api_server.py --port-file PATH [--host 127.0.0.1]

The configuration is found through OS_GLANCE_CONFIG_DIR (glance-api.conf
and glance-api-paste.ini). Port 0 is bound, and the port the kernel chose
is written to --port-file once the application is loaded and the socket
listens, so the caller never races another process for a port. SIGTERM
stops the server cleanly.
"""

import argparse
# Upstream's exit hook (drain_workers) creates its task pool lazily, and
# concurrent.futures.thread cannot be first imported once the interpreter
# is shutting down; imported now, a stop is quiet.
import concurrent.futures.thread  # noqa: F401
import os
import signal
import socketserver
import sys
from wsgiref import simple_server


class ThreadingWSGIServer(socketserver.ThreadingMixIn,
                          simple_server.WSGIServer):
    # A download must not wait behind a slow upload; threads die with us.
    daemon_threads = True


class QuietHandler(simple_server.WSGIRequestHandler):
    """Logs each request to stderr (the caller's log file), no DNS."""

    def address_string(self):
        return self.client_address[0]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port-file', required=True,
                        help='where to write the port once listening')
    return parser.parse_args(argv)


def write_port(path, port):
    # Written then renamed, so a reader never sees a half-written number.
    partial = path + '.partial'
    with open(path + '.partial', 'w') as port_file:
        port_file.write('%d\n' % port)
    os.replace(partial, path)


def stop_on_sigterm(signum, frame):
    raise SystemExit(0)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Imported here: loading it reads the config and builds the stores.
    from glance.wsgi import api

    server = simple_server.make_server(
        args.host, 0, api.application,
        server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    write_port(args.port_file, server.server_address[1])
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()


if __name__ == '__main__':
    main()
