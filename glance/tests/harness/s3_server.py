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

"""moto's S3 as a server process, for the functional tests and the benchmark.

    python -m glance.tests.harness.s3_server --port PORT [--host HOST]

``python -m moto.server`` serves every AWS service moto knows through
werkzeug's development server, which closes the connection after each
response (a new connection and a new thread per request) and works out
the service of each request by listing moto's packages on disk. Here
moto's S3 application, and its ``/moto-api`` (reset, state), are served
by waitress, which keeps connections alive: about 1 ms of server CPU per
S3 request instead of 2.5 ms, measured on HEAD and DELETE. The S3 server
is the same moto code either way.
"""

import argparse

from moto.moto_server import werkzeug_app
import waitress

MOTO_API_PREFIX = '/moto-api'


def application():
    """A WSGI application: /moto-api to moto's API, the rest to S3."""
    s3 = werkzeug_app.create_backend_app('s3')
    moto_api = werkzeug_app.create_backend_app('moto_api')

    def dispatch(environ, start_response):
        path = environ.get('PATH_INFO', '')
        target = moto_api if path.startswith(MOTO_API_PREFIX) else s3
        return target(environ, start_response)

    return dispatch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--threads', type=int, default=16,
                        help='requests served at once (more wait)')
    args = parser.parse_args(argv)
    waitress.serve(application(), host=args.host, port=args.port,
                   threads=args.threads, connection_limit=1000,
                   _quiet=True)


if __name__ == '__main__':
    main()
