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

"""The harness of the functional tests, and of the benchmark.

Nothing here depends on pytest, so that a benchmark script can import it:

* ScrubberConfig writes a glance-scrubber configuration file;
* run_scrubber() runs the installed ``glance-scrubber`` console script as
  a process of its own and parses its "Scrub pass summary:" line;
  RunningScrubber does the same for a process that keeps running (the
  daemon), to be signalled;
* MotoServer runs a local S3 server (moto) on a free loopback port;
* CountingProxy is an HTTP reverse proxy put in front of it, which adds a
  delay to each request, can hold or fail requests, and records when each
  request was in flight;
* FileStore and S3Bucket put image data in a store and tell whether it
  is still there.
"""

import collections
import configparser
import copy
import dataclasses
import http.client
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import fixtures

from glance.tests.utils import console_script  # noqa: F401 - re-exported

LOOPBACK = '127.0.0.1'
BACKEND_VARIABLE = 'OS_GLANCE_SCRUBBER_BACKEND'
SUMMARY_MARKER = 'Scrub pass summary:'
SUMMARY_FIELD = re.compile(r'(\w+)=([0-9.]+)')
S3_ACCESS_KEY = 'AKIAGLANCETEST'
S3_SECRET_KEY = 'glance-test-secret'


def free_port():
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout, interval=0.05, what='condition'):
    """Poll *predicate* until it is true; a liveness bound, not a timing.

    :raises TimeoutError: it was still false after *timeout* seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError('%s not reached in %s s' % (what, timeout))
        time.sleep(interval)


# --- configuration ----------------------------------------------------------


class ScrubberConfig:
    """A glance-scrubber configuration file, written section by section.

    :param path: where write() puts the file.
    :param database_url: ``[database] connection``.
    :param lock_path: ``[oslo_concurrency] lock_path``.
    :param defaults: options of the ``[DEFAULT]`` section.
    """

    def __init__(self, path, database_url, lock_path, **defaults):
        self.path = str(path)
        self.sections = collections.OrderedDict()
        self.set('DEFAULT', **defaults)
        self.set('database', connection=database_url)
        self.set('oslo_concurrency', lock_path=str(lock_path))

    def set(self, section, **options):
        """Set options of *section*; a value of None removes the option."""
        values = self.sections.setdefault(section, collections.OrderedDict())
        for name, value in options.items():
            if value is None:
                values.pop(name, None)
            else:
                values[name] = _ini_value(value)
        return self

    def copy(self, path):
        """The same configuration, to be written to *path*."""
        other = ScrubberConfig.__new__(ScrubberConfig)
        other.path = str(path)
        other.sections = copy.deepcopy(self.sections)
        return other

    def on_another_host(self, folder):
        """The same configuration with a lock_path of its own.

        What a scrubber or a restore on another host shares with this one
        is the database and the stores, not the lock file.
        """
        os.makedirs(os.path.join(folder, 'locks'), exist_ok=True)
        return self.copy(os.path.join(folder, 'glance-scrubber.conf')).set(
            'oslo_concurrency', lock_path=os.path.join(folder, 'locks'))

    def use_file_store(self, datadir):
        """The single file store of upstream's default configuration."""
        return self.set('glance_store', stores='file', default_store='file',
                        filesystem_store_datadir=str(datadir))

    def use_s3_store(self, endpoint, bucket):
        """A single S3 store at *endpoint* (path-style bucket URLs)."""
        self.set('glance_store', stores='s3', default_store='s3')
        return self.set('glance_store', **s3_store_options(endpoint, bucket))

    def use_multi_store(self, default_backend, backends):
        """Several stores (``enabled_backends``).

        :param default_backend: the name of the default backend.
        :param backends: {name: (store type, {option: value})}, for
            example ``{'fast': ('file', {'filesystem_store_datadir': d})}``.
        """
        self.set('DEFAULT', enabled_backends=','.join(
            '%s:%s' % (name, kind) for name, (kind, _) in backends.items()))
        self.set('glance_store', default_backend=default_backend)
        for name, (_kind, options) in backends.items():
            self.set(name, **options)
        return self

    def write(self):
        """Write the file and return its path."""
        parser = configparser.RawConfigParser()
        parser.optionxform = str
        for section, values in self.sections.items():
            if section != 'DEFAULT':
                parser.add_section(section)
            for name, value in values.items():
                parser.set(section, name, value)
        with open(self.path, 'w') as config_file:
            parser.write(config_file)
        return self.path

    def __fspath__(self):
        return self.path


def _ini_value(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def s3_store_options(endpoint, bucket, access_key=S3_ACCESS_KEY,
                     secret_key=S3_SECRET_KEY):
    """glance_store's options for an S3 store at *endpoint*."""
    return {
        's3_store_host': endpoint,
        's3_store_access_key': access_key,
        's3_store_secret_key': secret_key,
        's3_store_bucket': bucket,
        's3_store_create_bucket_on_put': True,
        's3_store_bucket_url_format': 'path',
    }


# --- running the scrubber ---------------------------------------------------


@dataclasses.dataclass
class ScrubberRun:
    """What one glance-scrubber process did.

    Unpacks as ``returncode, stdout, stderr, summary``; ``summary`` is the
    last "Scrub pass summary:" line as a dict (None when there is none) and
    ``summaries`` every such line, in order.
    """

    returncode: int
    stdout: str
    stderr: str
    summary: dict = None
    summaries: list = dataclasses.field(default_factory=list)

    def __iter__(self):
        return iter((self.returncode, self.stdout, self.stderr,
                     self.summary))

    @property
    def output(self):
        return self.stdout + self.stderr

    def describe(self):
        return 'exit %s\n--- stdout\n%s\n--- stderr\n%s' % (
            self.returncode, self.stdout, self.stderr)


def parse_summaries(text):
    """Every "Scrub pass summary:" line of *text*, as dicts."""
    summaries = []
    for line in text.splitlines():
        if SUMMARY_MARKER not in line:
            continue
        fields = line.split(SUMMARY_MARKER, 1)[1]
        summaries.append({name: float(value) if '.' in value else int(value)
                          for name, value in SUMMARY_FIELD.findall(fields)})
    return summaries


def scrubber_command(config, *args):
    return [console_script('glance-scrubber'), '--config-file',
            os.fspath(config)] + [str(arg) for arg in args]


def scrubber_environment(env=None):
    """The process environment: ours, loopback never proxied, plus *env*.

    Pass ``{'OS_GLANCE_SCRUBBER_BACKEND': 'threading'}`` to pick the
    backend; a value of None removes a variable.
    """
    environment = dict(os.environ)
    environment['NO_PROXY'] = environment['no_proxy'] = LOOPBACK
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


# What a library warns as it is imported: as cryptography's "DSA is
# deprecated" did, through dnspython, eventlet and futurist.
IMPORT_WARNING = 'glance-test: a library warns as it is imported'

_WARN_ON_IMPORT = '''
import sys
import warnings


class WarnOnImport:
    """Warns once, when glance_store is first imported."""

    def find_spec(self, name, path=None, target=None):
        if name == 'glance_store':
            sys.meta_path.remove(self)
            warnings.warn(%r)
        return None


sys.meta_path.insert(0, WarnOnImport())
'''


def warning_on_import(folder):
    """The environment of a scrubber in which a library warns at import.

    Writes a sitecustomize module into *folder* and puts it first on
    PYTHONPATH: glance-scrubber's import of glance_store then raises
    IMPORT_WARNING, a UserWarning, which Python shows by default. Nothing
    is installed.
    """
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'sitecustomize.py'), 'w') as module:
        module.write(_WARN_ON_IMPORT % IMPORT_WARNING)
    path = [os.fspath(folder)] + [
        entry for entry in os.environ.get('PYTHONPATH', '').split(
            os.pathsep) if entry]
    return {'PYTHONPATH': os.pathsep.join(path)}


def _finished(returncode, stdout, stderr):
    summaries = parse_summaries(stdout + stderr)
    return ScrubberRun(returncode, stdout, stderr,
                       summary=summaries[-1] if summaries else None,
                       summaries=summaries)


def run_scrubber(config, *args, env=None, timeout=300):
    """Run ``glance-scrubber --config-file CONFIG ARGS`` to its end.

    :param config: a ScrubberConfig (written first) or a path.
    :returns: a ScrubberRun.
    """
    if isinstance(config, ScrubberConfig):
        config.write()
    # A session of its own: what the scrubber or its libraries send to
    # their process group never reaches the caller.
    process = subprocess.run(scrubber_command(config, *args),
                             env=scrubber_environment(env),
                             capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    return _finished(process.returncode, process.stdout, process.stderr)


class RunningScrubber(fixtures.Fixture):
    """A glance-scrubber process left running (``--daemon`` typically).

    Its output goes to files, so a long run never blocks on a full pipe.
    Cleanup kills it if the test did not stop it.
    """

    def __init__(self, config, *args, env=None):
        super().__init__()
        self.config = config
        self.args = args
        self.env = env

    def _setUp(self):
        if isinstance(self.config, ScrubberConfig):
            self.config.write()
        folder = self.useFixture(fixtures.TempDir()).path
        self._stdout = open(os.path.join(folder, 'stdout'), 'w+')
        self._stderr = open(os.path.join(folder, 'stderr'), 'w+')
        self.addCleanup(self._stdout.close)
        self.addCleanup(self._stderr.close)
        self.process = subprocess.Popen(
            self._command(),
            env=scrubber_environment(self.env), stdin=subprocess.DEVNULL,
            stdout=self._stdout, stderr=self._stderr, text=True,
            start_new_session=True)
        self.addCleanup(self._kill)

    def _command(self):
        return scrubber_command(self.config, *self.args)

    @property
    def pid(self):
        return self.process.pid

    def running(self):
        return self.process.poll() is None

    def output(self):
        """Everything the process wrote so far (stdout then stderr)."""
        return _read(self._stdout.name) + _read(self._stderr.name)

    def summaries(self):
        return parse_summaries(self.output())

    def wait_for_passes(self, count, timeout=60):
        """Wait until the process has logged *count* pass summaries."""
        return wait_until(lambda: len(self.summaries()) >= count or
                          not self.running(), timeout,
                          what='%d scrub passes' % count)

    def send(self, signum):
        self.process.send_signal(signum)

    def stop(self, signum=signal.SIGTERM, timeout=60):
        """Send *signum*, wait for the exit and return a ScrubberRun."""
        if self.running():
            self.send(signum)
        return self.wait(timeout)

    def wait(self, timeout=120):
        returncode = self.process.wait(timeout)
        return _finished(returncode, _read(self._stdout.name),
                         _read(self._stderr.name))

    def _kill(self):
        # The whole process group: the threading backend runs the daemon
        # in a child process.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def _read(path):
    with open(path) as stream:
        return stream.read()


class PausedScrubber(RunningScrubber):
    """glance-scrubber paused once at *step* of a scrub (paused_scrubber).

    wait_until_paused() returns once the process waits there; resume()
    lets it go on. Kill it instead (kill()) to stop a pass between two
    steps the way a crash would.
    """

    def __init__(self, config, step, *args, env=None):
        super().__init__(config, *args, env=env)
        self.step = step

    def _setUp(self):
        self.folder = self.useFixture(fixtures.TempDir()).path
        super()._setUp()

    def _command(self):
        return [sys.executable, '-m',
                'glance.tests.harness.paused_scrubber', self.step,
                self.folder] + scrubber_command(self.config,
                                                *self.args)[1:]

    def wait_until_paused(self, timeout=60):
        reached = os.path.join(self.folder, 'reached')
        wait_until(lambda: os.path.exists(reached) or not self.running(),
                   timeout, what='glance-scrubber paused at %s' % self.step)
        if not self.running():
            raise AssertionError('glance-scrubber exited before %s:\n%s'
                                 % (self.step, self.output()))

    def resume(self):
        with open(os.path.join(self.folder, 'go'), 'w'):
            pass

    def kill(self):
        """SIGKILL the process, as a crash or an OOM killer would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        return self.wait()


# --- a local S3 server ------------------------------------------------------


class MotoServer(fixtures.Fixture):
    """moto's S3 server on a free loopback port, stopped at cleanup.

    It runs glance.tests.harness.s3_server: moto's S3 on a server that
    keeps connections alive.

    :ivar endpoint: ``http://127.0.0.1:PORT``.
    """

    START_TIMEOUT = 60

    def __init__(self, port=None, log_path=None):
        super().__init__()
        self._port = port
        self._log_path = log_path

    def _setUp(self):
        self.port = self._port or free_port()
        self.endpoint = 'http://%s:%d' % (LOOPBACK, self.port)
        log = (open(self._log_path, 'w') if self._log_path
               else subprocess.DEVNULL)
        if self._log_path:
            self.addCleanup(log.close)
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'glance.tests.harness.s3_server',
             '--host', LOOPBACK, '--port', str(self.port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env=scrubber_environment())
        self.addCleanup(self._stop)
        wait_until(self._ready, self.START_TIMEOUT, interval=0.1,
                   what='moto server on %s' % self.endpoint)

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError('moto server exited with %s'
                               % self.process.returncode)
        try:
            with urllib.request.urlopen(self.endpoint + '/moto-api/data.json',
                                        timeout=2):
                return True
        except OSError:
            return False

    def reset(self):
        """Forget every bucket and object."""
        request = urllib.request.Request(self.endpoint + '/moto-api/reset',
                                         method='POST', data=b'')
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the counting proxy -----------------------------------------------------


@dataclasses.dataclass
class ProxiedRequest:
    """One request that went through the proxy.

    ``start`` is when its headers arrived, ``end`` when its response was
    ready to be sent (time.monotonic()): a client that waits for each
    response cannot send its next request before ``end``.
    """

    method: str
    path: str
    group: str
    start: float
    end: float = None
    status: int = None


def object_request(method, path):
    """Whether a request names an object (/bucket/key), not a bucket."""
    return urllib.parse.urlsplit(path).path.strip('/').count('/') >= 1


def whole_path(path):
    """The default grouping of the proxy: one group per object path."""
    return urllib.parse.urlsplit(path).path


class CountingProxy(fixtures.Fixture):
    """An HTTP reverse proxy that counts the requests in flight.

    One thread per client connection (keep-alive supported), one upstream
    connection per client connection: requests are never serialised by
    the proxy. Each request is delayed by *delay* seconds, and recorded.

    :param upstream: ``http://host:port`` of the server behind it.
    :param delay: seconds added to each request.
    :param group_of: maps a request path to its group (an image, say), for
        the in-flight count per group; default: the path itself.
    :ivar endpoint: ``http://127.0.0.1:PORT`` of the proxy.
    """

    HOLD_TIMEOUT = 300

    def __init__(self, upstream, delay=0.0, group_of=whole_path):
        super().__init__()
        self.upstream = urllib.parse.urlsplit(upstream)
        self.delay = delay
        self.group_of = group_of
        self._lock = threading.Condition()
        self._failing = None
        self._holding = None
        self._rate = None
        self.throttled = 0
        self.reset()

    def _setUp(self):
        self._server = _ProxyServer((LOOPBACK, 0), _ProxyHandler, self)
        self.port = self._server.server_address[1]
        self.netloc = '%s:%d' % (LOOPBACK, self.port)
        self.endpoint = 'http://%s' % self.netloc
        thread = threading.Thread(target=self._server.serve_forever,
                                  name='counting-proxy', daemon=True)
        thread.start()
        self.addCleanup(self._server.server_close)
        self.addCleanup(self._server.shutdown)
        self.addCleanup(self.release)

    # statistics

    def reset(self):
        """Forget the requests recorded so far."""
        with self._lock:
            self.requests = []
            self.in_flight = 0
            self.max_in_flight = 0
            self._group_in_flight = collections.Counter()
            self.max_in_flight_per_group = {}
            self.held = 0
            self._last_arrival = None

    def finished_requests(self):
        with self._lock:
            return [request for request in self.requests
                    if request.end is not None]

    # failures

    def fail_requests(self, predicate, status=500):
        """Answer *status*, without passing it on, when predicate says so.

        :param predicate: called with (method, path) of each request.
        """
        with self._lock:
            self._failing = (predicate, status)

    def stop_failing(self):
        with self._lock:
            self._failing = None

    def limit_rate(self, rate):
        """Answer 503 SlowDown to the requests beyond *rate* per second.

        A token bucket holding one second of requests, as an S3 or RGW
        with a request rate limit does; None lifts the limit.
        """
        with self._lock:
            self._rate = rate
            self._tokens = rate
            self._refilled = time.monotonic()
            self.throttled = 0

    def _over_rate(self):
        # Called under the lock.
        if not self._rate:
            return False
        now = time.monotonic()
        self._tokens = min(self._rate, self._tokens +
                           (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return False
        self.throttled += 1
        return True

    # holding

    def hold(self, predicate=None):
        """Hold requests from now on, until release().

        :param predicate: called with (method, path) of each request; only
            those it accepts are held. Default: every request.
        """
        with self._lock:
            self._holding = predicate or (lambda method, path: True)

    def release(self):
        with self._lock:
            self._holding = None
            self._lock.notify_all()

    def wait_for_held(self, count, timeout=60):
        """Wait until *count* requests are held at once."""
        with self._lock:
            if not self._lock.wait_for(lambda: self.held >= count, timeout):
                raise TimeoutError('%d requests held, not %d, after %s s'
                                   % (self.held, count, timeout))

    def wait_quiet(self, settle):
        """Wait until no request has arrived for *settle* seconds."""
        while True:
            with self._lock:
                last = self._last_arrival or time.monotonic()
            remaining = last + settle - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(remaining)

    # called by the handler threads

    def _arrived(self, method, path):
        request = ProxiedRequest(method, path, self.group_of(path),
                                 time.monotonic())
        with self._lock:
            self.requests.append(request)
            self._last_arrival = request.start
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._group_in_flight[request.group] += 1
            self.max_in_flight_per_group[request.group] = max(
                self.max_in_flight_per_group.get(request.group, 0),
                self._group_in_flight[request.group])
            failing = self._failing
            if self._over_rate():
                return request, SLOW_DOWN
        return request, (failing[1] if failing and
                         failing[0](method, path) else None)

    def _wait_while_held(self, method, path):
        with self._lock:
            if not (self._holding and self._holding(method, path)):
                return
            self.held += 1
            self._lock.notify_all()
            self._lock.wait_for(lambda: not self._holding,
                                self.HOLD_TIMEOUT)
            self.held -= 1

    def _answered(self, request, status):
        with self._lock:
            request.end = time.monotonic()
            request.status = status
            self.in_flight -= 1
            self._group_in_flight[request.group] -= 1


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, proxy):
        self.proxy = proxy
        super().__init__(address, handler)

    def handle_error(self, request, client_address):
        # A client that goes away (a scrubber stopped or killed by a test)
        # is no error of the proxy's.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


# S3's answer to a request over its rate limit (with the code SlowDown).
SLOW_DOWN = 503

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business.
_HOP_BY_HOP = frozenset(['connection', 'keep-alive', 'proxy-connection',
                         'transfer-encoding', 'te', 'trailer', 'upgrade'])


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    _upstream = None

    def log_message(self, format, *args):
        pass  # the records are the log

    def do_HEAD(self):
        self._forward()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD

    def _forward(self):
        proxy = self.server.proxy
        request, failure = proxy._arrived(self.command, self.path)
        body = self._read_body()
        proxy._wait_while_held(self.command, self.path)
        if proxy.delay:
            time.sleep(proxy.delay)
        if failure:
            status, headers, payload = _failure_response(failure)
        else:
            status, headers, payload = self._ask_upstream(body)
        proxy._answered(request, status)
        self._respond(status, headers, payload)

    def _read_body(self):
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            return self._read_chunks()
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else None

    def _read_chunks(self):
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b';')[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                    pass
                return b''.join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _ask_upstream(self, body):
        headers = {name: value for name, value in self.headers.items()
                   if name.lower() not in _HOP_BY_HOP}
        if body is not None:
            headers['Content-Length'] = str(len(body))
        for attempt in (1, 2):
            try:
                connection = self._upstream_connection()
                connection.request(self.command, self.path, body=body,
                                   headers=headers)
                response = connection.getresponse()
                payload = response.read()
                return response.status, response.getheaders(), payload
            except (http.client.HTTPException, OSError):
                # A kept-alive upstream connection may have been closed.
                self._close_upstream()
                if attempt == 2:
                    return _failure_response(502)

    def _upstream_connection(self):
        if self._upstream is None:
            upstream = self.server.proxy.upstream
            self._upstream = http.client.HTTPConnection(
                upstream.hostname, upstream.port, timeout=120)
        return self._upstream

    def _close_upstream(self):
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def _respond(self, status, headers, payload):
        self.send_response(status)
        has_length = False
        for name, value in headers:
            if name.lower() in _HOP_BY_HOP:
                continue
            if name.lower() == 'content-length':
                if self.command != 'HEAD':
                    value = str(len(payload))
                has_length = True
            self.send_header(name, value)
        if not has_length:
            self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        if self.command != 'HEAD' and payload:
            self.wfile.write(payload)

    def finish(self):
        super().finish()
        self._close_upstream()


def _failure_response(status):
    code = 'SlowDown' if status == SLOW_DOWN else 'InternalError'
    payload = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s'
               '</Code><Message>failure injected by the test proxy'
               '</Message></Error>' % code).encode()
    return status, [('Content-Type', 'application/xml')], payload


# --- stores -----------------------------------------------------------------


class FileStore:
    """Image files in a file store's data directory."""

    def __init__(self, datadir):
        self.datadir = str(datadir)
        os.makedirs(self.datadir, exist_ok=True)

    def put(self, name, data=b'x' * 1024):
        """Write an image file; return its location URL."""
        path = os.path.join(self.datadir, name)
        with open(path, 'wb') as image_file:
            image_file.write(data)
        return self.url(name)

    def url(self, name):
        return 'file://%s' % os.path.join(self.datadir, name)

    @staticmethod
    def path_of(url):
        return urllib.parse.urlsplit(url).path

    def exists(self, url):
        return os.path.lexists(self.path_of(url))

    def names(self):
        return sorted(os.listdir(self.datadir))


class S3Bucket:
    """Objects of one bucket of an S3 server, reached without the proxy.

    :param endpoint: the server the test talks to (moto, directly).
    :param url_netloc: host:port written into location URLs (the store's
        ``s3_store_host``; glance_store sends every request there, the
        URL only names bucket and key).
    :param credentials_in_url: write URLs as glance_store's older releases
        did, ``s3://ACCESS:SECRET@host/bucket/key``.
    """

    def __init__(self, endpoint, name, url_netloc=None,
                 credentials_in_url=True, access_key=S3_ACCESS_KEY,
                 secret_key=S3_SECRET_KEY):
        import boto3  # only the S3 tests need it
        self.name = name
        self.url_netloc = url_netloc or urllib.parse.urlsplit(endpoint).netloc
        self.credentials_in_url = credentials_in_url
        self._access_key = access_key
        self._secret_key = secret_key
        self.client = boto3.client(
            's3', endpoint_url=endpoint, region_name='us-east-1',
            aws_access_key_id=access_key, aws_secret_access_key=secret_key)

    def create(self):
        self.client.create_bucket(Bucket=self.name)
        return self

    def put(self, key, data=b'x' * 1024):
        """Write an object; return its location URL."""
        self.client.put_object(Bucket=self.name, Key=key, Body=data)
        return self.url(key)

    def url(self, key):
        credentials = ('%s:%s@' % (self._access_key, self._secret_key)
                       if self.credentials_in_url else '')
        return 's3://%s%s/%s/%s' % (credentials, self.url_netloc, self.name,
                                    key)

    @staticmethod
    def key_of(url):
        return urllib.parse.urlsplit(url).path.rsplit('/', 1)[1]

    def exists(self, url):
        from botocore import exceptions as boto_exceptions
        try:
            self.client.head_object(Bucket=self.name, Key=self.key_of(url))
        except boto_exceptions.ClientError as error:
            if error.response['Error']['Code'] in ('404', 'NoSuchKey'):
                return False
            raise
        return True

    def keys(self):
        keys = []
        paginator = self.client.get_paginator('list_objects_v2')
        for page in paginator.paginate(Bucket=self.name):
            keys.extend(item['Key'] for item in page.get('Contents', ()))
        return sorted(keys)
