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

"""A throw-away Swift all-in-one behind Keystone, for tests that use Swift.

    python tools/backends/swift_cluster.py start DIR
    python tools/backends/swift_cluster.py stop DIR
    python tools/backends/swift_cluster.py check

``start`` runs, as plain processes on the loopback interface with free
ports and every file under DIR (created if needed):

* Keystone (SQLite, fernet tokens) served by gunicorn, bootstrapped with
  the user ``admin`` (project ``admin``, domain ``default``) and an
  ``object-store`` endpoint pointing at the proxy;
* memcached, for the proxy's cache;
* Swift's account, container and object servers (one device, one
  replica, ``workers = 0``) and its proxy, which takes Keystone tokens
  (authtoken and keystoneauth).

It prints on stdout one JSON object::

    {"auth_url": "http://127.0.0.1:K/v3", "user": "admin",
     "password": ..., "project": "admin", "proxy_url": ...,
     "dir": ..., "pids": {...}}

Swift and Keystone run from the virtualenvs of swift_venvs.py.

``stop`` kills the process group of each daemon recorded under DIR (a
daemon is known by its pid and start time, so a reused pid is never
killed), and leaves the files (logs) in DIR.

``check`` only tells whether the virtualenvs and memcached are there.

Exit status: 0 done; 1 the servers did not come up (one line on stderr
says why; whatever was started is killed again) or would not die; 2 bad
usage; 3 something is missing (run swift_venvs.py build, or
install_backends.sh for memcached).

Standard library only, so any Python 3 can run it.
"""

import base64
import concurrent.futures
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import backend_daemons as daemons
from backend_daemons import ClusterError
from backend_daemons import LOOPBACK
from backend_daemons import Missing
import swift_venvs

USER = 'admin'
PROJECT = 'admin'
DOMAIN = 'default'
REGION = 'RegionOne'
START_TIMEOUT = 90
SERVERS = ('account', 'container', 'object')
# Keystone, memcached, the proxy and the three storage servers.
PORT_NAMES = ('keystone', 'memcached', 'proxy') + SERVERS


class Layout(daemons.DaemonFolder):
    """Where everything lives under *root*."""

    def __init__(self, root):
        super().__init__(root)
        self.devices = os.path.join(self.root, 'srv')
        self.keystone_dir = os.path.join(self.root, 'keystone')
        self.keystone_conf = os.path.join(self.keystone_dir, 'keystone.conf')
        self.password_file = os.path.join(self.root, 'admin-password')

    def conf(self, server):
        return os.path.join(self.root, '%s-server.conf' % server)


# --- programs ---------------------------------------------------------------


def venvs():
    """(swift venv, keystone venv), or Missing."""
    paths = []
    for name in ('swift', 'keystone'):
        path = swift_venvs.venv_dir(name)
        if not swift_venvs.is_built(path):
            raise Missing('%s virtualenv not built: run python '
                          'tools/backends/swift_venvs.py build' % name)
        paths.append(path)
    return tuple(paths)


def check_programs():
    venvs()
    if shutil.which('memcached') is None:
        raise Missing('memcached not found (run '
                      'tools/backends/install_backends.sh)')


def run(command, deadline, what, **options):
    """Run *command* to completion; its stdout, or ClusterError."""
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True,
                              timeout=deadline.left(what), **options)
    except subprocess.TimeoutExpired:
        raise ClusterError('%s: not done within %s s' % (what,
                                                         deadline.seconds))
    if done.returncode != 0:
        raise ClusterError('%s failed (exit %s): %s' % (
            what, done.returncode,
            daemons.last_line(done.stderr or done.stdout)))
    return done.stdout


def run_together(steps, deadline):
    """Run the (command, what) *steps* at once; ClusterError if one fails."""
    with concurrent.futures.ThreadPoolExecutor(len(steps)) as pool:
        runs = [pool.submit(run, command, deadline, what)
                for command, what in steps]
    for done in runs:
        done.result()


def start_daemon(layout, name, command, **options):
    """Start *command* in a session of its own; record it in a pid file."""
    with open(layout.output_of(name), 'w') as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                   stdout=output, stderr=output,
                                   start_new_session=True, **options)
    with open(layout.pid_file(name), 'w') as pid_file:
        pid_file.write('%d %s\n' % (process.pid, start_time(process.pid)))
    return process


def start_time(pid):
    """When *pid* started (clock ticks since boot), or None if gone."""
    try:
        with open('/proc/%d/stat' % pid) as source:
            stat = source.read()
    except OSError:
        return None
    # Fields after the parenthesised command name, which may hold spaces;
    # the start time is field 22 of the whole line.
    return stat[stat.rindex(')') + 2:].split()[19]


# --- ports and configuration ------------------------------------------------


def free_ports(names):
    """{name: port} of loopback ports free right now, one block."""
    first = daemons.free_port_block(len(names))
    return dict(zip(names, range(first, first + len(names))))


def url(port, path=''):
    return 'http://%s:%d%s' % (LOOPBACK, port, path)


def write(path, *parts):
    """Write the text of *parts*, each dedented on its own."""
    with open(path, 'w') as target:
        for part in parts:
            target.write(textwrap.dedent(part).lstrip() + '\n')


def server_defaults(layout, server, port):
    """The [DEFAULT] section every Swift server shares."""
    return '''
        [DEFAULT]
        bind_ip = %(ip)s
        bind_port = %(port)d
        workers = 0
        user = %(user)s
        swift_dir = %(root)s
        devices = %(devices)s
        mount_check = false
        disable_fallocate = true
        log_name = %(server)s-server
        ''' % dict(ip=LOOPBACK, port=port, user=getpass.getuser(),
                   root=layout.root, devices=layout.devices, server=server)


def write_swift_confs(layout, ports):
    write(os.path.join(layout.root, 'swift.conf'), '''
        [swift-hash]
        swift_hash_path_prefix = glance-scrubber-tests
        swift_hash_path_suffix = glance-scrubber-tests

        [storage-policy:0]
        name = only
        default = yes
        ''')
    for server in SERVERS:
        write(layout.conf(server), server_defaults(
            layout, server, ports[server]), '''
            [pipeline:main]
            pipeline = %(server)s-server

            [app:%(server)s-server]
            use = egg:swift#%(server)s
            ''' % dict(server=server))
    write(layout.conf('proxy'), server_defaults(
        layout, 'proxy', ports['proxy']), '''
        [pipeline:main]
        pipeline = catch_errors gatekeeper healthcheck proxy-logging cache
            listing_formats authtoken keystoneauth copy dlo proxy-logging
            proxy-server

        [app:proxy-server]
        use = egg:swift#proxy
        account_autocreate = true

        [filter:catch_errors]
        use = egg:swift#catch_errors

        [filter:gatekeeper]
        use = egg:swift#gatekeeper

        [filter:healthcheck]
        use = egg:swift#healthcheck

        [filter:proxy-logging]
        use = egg:swift#proxy_logging

        [filter:cache]
        use = egg:swift#memcache
        memcache_servers = %(ip)s:%(memcached)d

        [filter:listing_formats]
        use = egg:swift#listing_formats

        [filter:copy]
        use = egg:swift#copy

        [filter:dlo]
        use = egg:swift#dlo

        # memcached_servers is left unset: the memcache module authtoken
        # would need is not in Swift's virtualenv.
        [filter:authtoken]
        paste.filter_factory = keystonemiddleware.auth_token:filter_factory
        www_authenticate_uri = %(keystone)s
        auth_url = %(keystone)s
        auth_type = password
        username = %(user)s
        password = %(password)s
        project_name = %(project)s
        user_domain_id = %(domain)s
        project_domain_id = %(domain)s
        delay_auth_decision = true

        [filter:keystoneauth]
        use = egg:swift#keystoneauth
        operator_roles = admin, member
        ''' % dict(ip=LOOPBACK, memcached=ports['memcached'],
                   keystone=url(ports['keystone'], '/v3'), user=USER,
                   password=admin_password(layout), project=PROJECT,
                   domain=DOMAIN))


def admin_password(layout):
    with open(layout.password_file) as source:
        return source.read().strip()


def write_keystone_conf(layout):
    os.makedirs(layout.keystone_dir, exist_ok=True)
    write(layout.keystone_conf, '''
        [DEFAULT]
        log_file = %(log)s

        [database]
        connection = sqlite:///%(dir)s/keystone.db

        [token]
        provider = fernet

        [fernet_tokens]
        key_repository = %(dir)s/fernet-keys

        [fernet_receipts]
        key_repository = %(dir)s/fernet-keys

        [credential]
        key_repository = %(dir)s/credential-keys
        ''' % dict(dir=layout.keystone_dir,
                   log=os.path.join(layout.log_dir, 'keystone.log')))
    for repository in ('fernet-keys', 'credential-keys'):
        write_key_repository(os.path.join(layout.keystone_dir, repository))
    # What gunicorn serves: Keystone's application. Its configuration
    # parser would take gunicorn's own arguments for its own and fail.
    write(os.path.join(layout.keystone_dir, 'keystone_app.py'), '''
        import sys

        sys.argv = sys.argv[:1]

        from keystone.server import wsgi

        application = wsgi.initialize_public_application()
        ''')


def write_key_repository(folder):
    """What keystone-manage fernet_setup and credential_setup make.

    A staged key (0) and a primary key (1), each 32 random bytes in
    URL-safe base64: written here, it spares two runs of keystone-manage,
    which take seconds each only to import Keystone.
    """
    os.makedirs(folder, mode=0o700)
    for index in (0, 1):
        path = os.path.join(folder, str(index))
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o600)
        with os.fdopen(descriptor, 'wb') as key:
            key.write(base64.urlsafe_b64encode(os.urandom(32)))


# --- the steps of start -----------------------------------------------------


def prepare(layout):
    for folder in (layout.root, layout.run_dir, layout.log_dir,
                   os.path.join(layout.devices, 'd1')):
        os.makedirs(folder, exist_ok=True)
    if layout.pid_files():
        raise ClusterError('%s already holds servers: stop them and use '
                           'an empty directory' % layout.root)
    with open(layout.password_file, 'w') as target:
        target.write(os.urandom(12).hex())
    ports = free_ports(PORT_NAMES)
    write_swift_confs(layout, ports)
    write_keystone_conf(layout)
    return ports


# Swift's ring builder, run once in Swift's virtualenv for the three rings
# (swift-ring-builder would take nine runs, each importing Swift).
RING_SCRIPT = """
import json, os, sys
from swift.common.ring import RingBuilder
root, devices = sys.argv[1], json.loads(sys.argv[2])
for server, device in devices.items():
    builder = RingBuilder(6, 1, 1)  # 2**6 partitions, 1 replica, 1 hour
    builder.add_dev(device)
    builder.rebalance()
    builder.save(os.path.join(root, server + '.builder'))
    builder.get_ring().save(os.path.join(root, server + '.ring.gz'))
"""


def make_rings_step(layout, swift_venv, ports):
    """The command that writes a ring of one device for each server."""
    devices = {server: {'region': 1, 'zone': 1, 'ip': LOOPBACK,
                        'port': ports[server], 'device': 'd1',
                        'weight': 100, 'meta': ''}
               for server in SERVERS}
    return ([os.path.join(swift_venv, 'bin', 'python'), '-c', RING_SCRIPT,
             layout.root, json.dumps(devices)], 'swift rings')


def start_swift(layout, swift_venv, ports):
    start_daemon(layout, 'memcached',
                 ['memcached', '-l', LOOPBACK, '-p', str(ports['memcached']),
                  '-U', '0', '-m', '64', '-u', getpass.getuser()])
    for server in SERVERS + ('proxy',):
        program = os.path.join(swift_venv, 'bin', 'swift-%s-server' % server)
        start_daemon(layout, server, [program, layout.conf(server),
                                      '--verbose'])


def keystone_manage_step(layout, keystone_venv, action, *arguments):
    """A keystone-manage command, and what it does."""
    return ([os.path.join(keystone_venv, 'bin', 'keystone-manage'),
             '--config-file', layout.keystone_conf, action]
            + list(arguments), 'keystone-manage ' + action)


def bootstrap_keystone(layout, deadline, keystone_venv, ports):
    """The admin user, project and role, and Keystone's own endpoint."""
    public = url(ports['keystone'], '/v3')
    command, what = keystone_manage_step(
        layout, keystone_venv, 'bootstrap',
        '--bootstrap-password', admin_password(layout),
        '--bootstrap-username', USER,
        '--bootstrap-project-name', PROJECT,
        '--bootstrap-admin-url', public,
        '--bootstrap-public-url', public,
        '--bootstrap-internal-url', public,
        '--bootstrap-region-id', REGION)
    run(command, deadline, what)


def start_keystone(layout, keystone_venv, ports):
    environment = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=(
        layout.keystone_conf))
    start_daemon(layout, 'keystone',
                 [os.path.join(keystone_venv, 'bin', 'gunicorn'),
                  '--bind', '%s:%d' % (LOOPBACK, ports['keystone']),
                  '--workers', '1', '--threads', '4',
                  '--chdir', layout.keystone_dir, 'keystone_app:application'],
                 env=environment)


def wait_for(deadline, what, address, layout, expected=(200,)):
    """Poll *address* until it answers one of *expected*."""
    while True:
        check_daemons(layout)
        try:
            with urllib.request.urlopen(address, timeout=2) as response:
                if response.status in expected:
                    return
        except urllib.error.HTTPError as error:
            if error.code in expected:
                return
        except OSError:
            pass
        deadline.left(what)
        time.sleep(0.1)


def wait_for_port(deadline, what, port, layout):
    while True:
        check_daemons(layout)
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return
        except OSError:
            deadline.left(what)
            time.sleep(0.1)


def check_daemons(layout):
    """ClusterError when a daemon started has already died."""
    for pid_file in layout.pid_files():
        if ours(pid_file) is None:
            name = os.path.basename(pid_file)[:-len('.pid')]
            with open(layout.output_of(name), errors='replace') as output:
                reason = daemons.last_line(output.read())
            raise ClusterError('%s died: %s (see %s)' % (
                name, reason, layout.log_dir))


def call_keystone(address, token=None, body=None):
    """A JSON request to Keystone; (headers, decoded body)."""
    request = urllib.request.Request(
        address, data=json.dumps(body).encode() if body else None,
        headers={'Content-Type': 'application/json'})
    if token:
        request.add_header('X-Auth-Token', token)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers, json.loads(response.read() or b'{}')


def register_swift(layout, ports):
    """The object-store service and its endpoints, in Keystone's catalog."""
    keystone = url(ports['keystone'], '/v3')
    headers, _ = call_keystone(keystone + '/auth/tokens', body={'auth': {
        'identity': {'methods': ['password'], 'password': {'user': {
            'name': USER, 'domain': {'id': DOMAIN},
            'password': admin_password(layout)}}},
        'scope': {'project': {'name': PROJECT, 'domain': {'id': DOMAIN}}}}})
    token = headers['X-Subject-Token']
    _, created = call_keystone(keystone + '/services', token, {'service': {
        'type': 'object-store', 'name': 'swift', 'enabled': True}})
    endpoint = url(ports['proxy'], '/v1/AUTH_%(tenant_id)s')
    for interface in ('public', 'internal', 'admin'):
        call_keystone(keystone + '/endpoints', token, {'endpoint': {
            'service_id': created['service']['id'], 'interface': interface,
            'region_id': REGION, 'url': endpoint, 'enabled': True}})


def start(root, timeout=START_TIMEOUT):
    check_programs()
    swift_venv, keystone_venv = venvs()
    layout = Layout(root)
    deadline = daemons.Deadline(timeout)
    ports = prepare(layout)
    try:
        # Most of a start is Python importing Swift or Keystone: what
        # does not depend on another step runs at the same time.
        run_together([
            make_rings_step(layout, swift_venv, ports),
            keystone_manage_step(layout, keystone_venv, 'db_sync'),
        ], deadline)
        # The Swift servers boot while Keystone is bootstrapped.
        start_swift(layout, swift_venv, ports)
        bootstrap_keystone(layout, deadline, keystone_venv, ports)
        start_keystone(layout, keystone_venv, ports)
        for server in SERVERS + ('memcached',):
            wait_for_port(deadline, server, ports[server], layout)
        wait_for(deadline, 'proxy', url(ports['proxy'], '/healthcheck'),
                 layout)
        wait_for(deadline, 'keystone', url(ports['keystone'], '/v3'),
                 layout)
        register_swift(layout, ports)
    except BaseException:
        stop(root)
        raise
    return {'auth_url': url(ports['keystone'], '/v3'), 'user': USER,
            'password': admin_password(layout), 'project': PROJECT,
            'domain': DOMAIN, 'proxy_url': url(ports['proxy']),
            'dir': layout.root, 'pids': running_daemons(layout)}


# --- stop -------------------------------------------------------------------


def ours(pid_file):
    """The pid in *pid_file* if that process is still the one started.

    A pid can be reused once its process died: the start time recorded
    with it tells the daemon from a stranger.
    """
    try:
        with open(pid_file) as source:
            pid, started = source.read().split()
        pid = int(pid)
    except (OSError, ValueError):
        return None
    if start_time(pid) == started and daemons.alive(pid):
        return pid
    return None


def running_daemons(layout):
    """{daemon name: pid} of the live daemons started under *layout*."""
    return daemons.running_daemons(layout, ours)


def stop(root):
    """Kill each daemon's process group (gunicorn has a worker)."""
    layout = Layout(root)
    # Each daemon leads a session, so its group is its pid.
    return daemons.kill(layout, running_daemons(layout),
                        process_groups=True)


def main(argv=None):
    return daemons.command_line(
        'swift_cluster.py', 'Start or stop a Swift all-in-one with '
        'Keystone under DIR, or check that what it needs is installed.',
        start, stop, check_programs, argv)


if __name__ == '__main__':
    sys.exit(main())
