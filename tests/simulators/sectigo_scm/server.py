"""HTTP(S) front of the simulator: routing, authentication, faults, audit, and the control API.

    /api/...           password mode: headers login, password, customerUri
    /private/api/...   certificate mode: headers login, customerUri and a client certificate
                       (mutual TLS) whose CN is the login; a password header is ignored
    /__sim/...         control API for tests and humans (no auth, never audited, never faulted)

``Simulator`` owns a ``ThreadingHTTPServer`` on 127.0.0.1; ``start_simulator(**kw)`` is the
context manager for plain Python (bench scripts) and the pytest fixture.
"""

import contextlib
import fnmatch
import itertools
import json
import random
import re
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from .pki import SimulatorPKI
from .state import ApiError, SimClock, Tenant, bad

DEFAULT_LOGIN = 'certforge-api'
DEFAULT_PASSWORD = 'simulator-Passw0rd!'
DEFAULT_APPROVER = 'certforge-approver'
DEFAULT_APPROVER_PASSWORD = 'approver-Passw0rd!'
DEFAULT_CUSTOMER_URI = 'certforge-sim'
DEFAULT_P12_PASSPHRASE = 'client-p12-pass'
FAULT_KINDS = ('status', 'rate_limit', 'server_error', 'delay', 'reset', 'drop')


class Fault:
    """One switchable failure.  Matches ``method`` ('*' or a verb) and ``path`` (a glob on the
    path after /api or /private/api, e.g. '/ssl/v1/enroll', '/ssl/v1/collect/*'; a pattern
    starting with /api or /private matches the full path).  ``skip`` matching requests pass
    first, then ``times`` requests (None: all) get the fault.  With ``probability`` (0..1) each
    of those requests gets the fault only with that chance (drawn from the simulator's seeded
    fault RNG, see ``Simulator.seed_faults``); a request it spares looks at the next fault."""

    _ids = itertools.count(1)

    def __init__(self, kind, path='*', method='*', times=1, skip=0, status=None, code=None,
                 description=None, retry_after=None, delay=0.0, headers=None, probability=None):
        if kind not in FAULT_KINDS:
            raise ValueError('fault kind must be one of %s' % ', '.join(FAULT_KINDS))
        self.id = next(self._ids)
        self.kind, self.path, self.method = kind, path or '*', (method or '*').upper()
        self.times = None if times is None else int(times)
        self.skip = int(skip or 0)
        if status is None:
            status = {'rate_limit': 429, 'server_error': 503, 'status': 500}.get(kind)
        self.status = status
        self.code = code if code is not None else (-1 if kind != 'rate_limit' else -1)
        self.description = description or {
            429: 'Too many requests', 500: 'Internal server error', 502: 'Bad gateway',
            503: 'Service temporarily unavailable', 504: 'Gateway timeout'}.get(status, 'Simulated fault')
        if kind == 'rate_limit' and retry_after is None:
            retry_after = 1
        self.retry_after = retry_after
        self.delay = float(delay or 0.0)
        self.headers = dict(headers or {})
        self.probability = None if probability is None else float(probability)
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError('fault probability must be between 0 and 1')
        self.seen = 0
        self.fired = 0

    def matches(self, method, full_path, rel_path):
        if self.method != '*' and self.method != method:
            return False
        target = full_path if self.path.startswith(('/api', '/private')) else rel_path
        return fnmatch.fnmatchcase(target, self.path) or fnmatch.fnmatchcase(target.rstrip('/'), self.path)

    def exhausted(self):
        return self.times is not None and self.fired >= self.times

    def as_dict(self):
        return {'id': self.id, 'kind': self.kind, 'path': self.path, 'method': self.method,
                'times': self.times, 'skip': self.skip, 'status': self.status, 'code': self.code,
                'description': self.description, 'retry_after': self.retry_after, 'delay': self.delay,
                'probability': self.probability, 'seen': self.seen, 'fired': self.fired}


class _Dropped(Exception):
    """The connection was cut on purpose; send nothing."""


def _route_table():
    n = r'(\d+)'
    return [
        ('GET', r'/ssl/v1/types', 'types'),
        ('GET', r'/ssl/v1/customFields', 'custom_fields'),
        ('GET', r'/ssl/v1/?', 'list'),
        ('HEAD', r'/ssl/v1/?', 'count'),
        ('GET', r'/ssl/v1/collect/' + n + r'(?:/([A-Za-z0-9]+))?/?', 'collect'),
        ('POST', r'/ssl/v1/enroll', 'enroll'),
        ('POST', r'/ssl/v1/renewById/' + n, 'renew_by_id'),
        ('POST', r'/ssl/v1/renew/([^/]+)', 'renew'),
        ('POST', r'/ssl/v1/replace/' + n, 'replace'),
        ('POST', r'/ssl/v1/revoke/serial/([^/]+)', 'revoke_serial'),
        ('POST', r'/ssl/v1/revoke/manual', 'revoke_manual'),
        ('POST', r'/ssl/v1/revoke/' + n, 'revoke'),
        ('POST', r'/ssl/v1/approve/' + n, 'approve'),
        ('POST', r'/ssl/v1/decline/' + n, 'decline'),
        ('GET', r'/ssl/v1/' + n, 'details'),
        ('GET', r'/organization/v1/?', 'orgs'),
        ('GET', r'/organization/v1/' + n, 'org'),
        ('GET', r'/domain/v1/?', 'domains'),
        ('GET', r'/domain/v1/count', 'domain_count'),
        ('GET', r'/domain/v1/' + n, 'domain'),
    ]


ROUTES = [(m, re.compile(p + r'$'), name) for m, p, name in _route_table()]


class Handler(BaseHTTPRequestHandler):
    """One request; the simulator is ``self.server.sim``."""

    protocol_version = 'HTTP/1.1'
    disable_nagle_algorithm = True
    server_version = 'SCM-Simulator/1.0'
    timeout = 30

    def setup(self):
        sock = self.request
        if isinstance(sock, ssl.SSLSocket):
            sock.settimeout(10)
            sock.do_handshake()
            sock.settimeout(self.timeout)
        self.server.sim.track(sock, True)
        super().setup()

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        self.server.sim.track(self.request, False)

    def handle(self):
        try:
            super().handle()
        except (OSError, _Dropped):
            self.close_connection = True

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        if self.server.sim.verbose:
            super().log_message(format, *args)

    # -------------------------------------------------------------- plumbing
    def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
        self._dispatch('GET')

    def do_HEAD(self):  # noqa: N802  pylint: disable=invalid-name
        self._dispatch('HEAD')

    def do_POST(self):  # noqa: N802  pylint: disable=invalid-name
        self._dispatch('POST')

    def do_PUT(self):  # noqa: N802  pylint: disable=invalid-name
        self._dispatch('PUT')

    def do_DELETE(self):  # noqa: N802  pylint: disable=invalid-name
        self._dispatch('DELETE')

    def _read_body(self):
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def _send(self, status, body=b'', content_type='application/json;charset=UTF-8', headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode('utf-8')
        elif isinstance(body, str):
            body = body.encode('utf-8')
        self.send_response(status)
        if body or status not in (204, 304):
            self.send_header('Content-Type', content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD' and body:
            self.wfile.write(body)
        self.wfile.flush()
        return status

    def _cut(self, reset=True):
        """Drop the connection without an answer: a TCP reset (RST), or a plain close (FIN)."""
        if reset:
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        with contextlib.suppress(OSError):
            # close now (the file objects hold references that would delay it, and the server's
            # shutdown_request would send a FIN first); SSLSocket.close() sends no close_notify
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
        self.close_connection = True
        raise _Dropped()

    def _dispatch(self, method):
        sim = self.server.sim
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        raw = self._read_body()
        if path.startswith('/__sim'):
            status, body = sim.control(method, path, query, raw)
            self._send(status, body)
            return
        entry = {'method': method, 'path': path, 'query': query, 'auth': None, 'login': None,
                 'status': None, 'fault': None, 'time': sim.clock.now(), 'wall': time.time()}
        try:
            self._api(sim, method, path, query, raw, entry)
        finally:
            sim.record(entry)

    def _api(self, sim, method, path, query, raw, entry):  # pylint: disable=too-many-arguments
        if path.startswith('/private/api/') or path == '/private/api':
            rel, mode = path[len('/private/api'):], 'certificate'
        elif path.startswith('/api/') or path == '/api':
            rel, mode = path[len('/api'):], 'password'
        else:
            entry['status'] = self._send(404, {'code': -1, 'description': 'Not found: %s' % path})
            return
        entry['route'] = rel
        entry['auth'] = mode
        entry['login'] = self.headers.get('login')
        sim.arrived(method, rel)
        fault = sim.take_fault(method, path, rel)
        if fault is not None:
            entry['fault'] = fault.kind
            if fault.kind == 'delay':
                time.sleep(fault.delay)
            elif fault.kind == 'reset':
                entry['status'] = 'reset'
                self._cut()
            elif fault.kind in ('status', 'rate_limit', 'server_error'):
                headers = dict(fault.headers)
                if fault.retry_after is not None:
                    headers['Retry-After'] = fault.retry_after
                entry['status'] = self._send(fault.status, {'code': fault.code, 'description': fault.description},
                                             headers=headers)
                return
        try:
            status, body, headers, content_type = self._handle_api(sim, method, rel, query, raw, mode, entry)
        except ApiError as exc:
            status, body, headers, content_type = exc.status, exc.body(), {}, 'application/json;charset=UTF-8'
            entry['code'] = exc.code
        if fault is not None and fault.kind == 'drop':
            entry['status'] = 'dropped'
            self._cut(reset=False)
        entry['status'] = self._send(status, body, content_type, headers)

    def _peer_cn(self):
        sock = self.connection
        if not isinstance(sock, ssl.SSLSocket):
            return None
        cert = sock.getpeercert()
        if not cert:
            return None
        for rdn in cert.get('subject', ()):
            for key, value in rdn:
                if key == 'commonName':
                    return value
        return None

    def _handle_api(self, sim, method, rel, query, raw, mode, entry):  # pylint: disable=too-many-arguments
        tenant = sim.tenant
        login = self.headers.get('login')
        if mode == 'certificate':
            cn = self._peer_cn()
            if cn is None:
                raise ApiError(401, -16, 'Unknown user')
            tenant.check_login(login, None, self.headers.get('customerUri'), certificate_cn=cn)
        else:
            tenant.check_login(login, self.headers.get('password'), self.headers.get('customerUri'))
        for verb, pattern, name in ROUTES:
            match = pattern.match(rel)
            if match and verb == method:
                break
        else:
            known = any(p.match(rel) for dummy, p, dummy2 in ROUTES)
            if known:
                raise ApiError(405, -1, 'Method %s is not allowed here.' % method)
            raise ApiError(404, -1, 'Not found: %s' % rel)
        body = None
        if method in ('POST', 'PUT'):
            if raw.strip():
                try:
                    body = json.loads(raw.decode('utf-8'))
                except (ValueError, UnicodeDecodeError):
                    raise bad(-1601, 'The request body is not valid JSON.') from None
        args = match.groups()
        json_type = 'application/json;charset=UTF-8'
        if name == 'types':
            return 200, tenant.list_profiles(query.get('organizationId')), {}, json_type
        if name == 'custom_fields':
            return 200, tenant.custom_fields, {}, json_type
        if name in ('list', 'count'):
            total, items = tenant.list(query)
            return 200, items if name == 'list' else b'', {'X-Total-Count': total}, json_type
        if name == 'details':
            return 200, tenant.details(args[0], query.get('dateFormat')), {}, json_type
        if name == 'collect':
            data, fmt = tenant.collect(args[0], args[1] or query.get('format'))
            ext = 'p7b' if fmt in ('base64', 'bin') else 'crt'
            return 200, data, {'Content-Disposition': 'attachment; filename="cert_%s.%s"' % (args[0], ext)}, \
                'application/octet-stream;charset=UTF-8'
        if name == 'enroll':
            rec = tenant.enroll(body, login)
            entry['ssl_id'], entry['common_name'] = rec.id, rec.common_name
            return 200, {'sslId': rec.id, 'renewId': rec.renew_id}, {}, json_type
        if name == 'renew_by_id':
            rec = tenant.renew_by_id(args[0], body)
            entry['ssl_id'], entry['common_name'] = rec.id, rec.common_name
            return 200, {'sslId': rec.id}, {}, json_type
        if name == 'renew':
            rec = tenant.renew_by_renew_id(args[0], body)
            entry['ssl_id'], entry['common_name'] = rec.id, rec.common_name
            return 204, b'', {}, json_type
        if name == 'replace':
            tenant.replace(args[0], body)
            return 204, b'', {}, json_type
        if name == 'revoke':
            tenant.revoke(args[0], body)
            return 204, b'', {}, json_type
        if name == 'revoke_serial':
            tenant.revoke_serial(args[0], body)
            return 204, b'', {}, json_type
        if name == 'revoke_manual':
            tenant.revoke_manual(body)
            return 204, b'', {}, json_type
        if name in ('approve', 'decline'):
            message = body.get('message') if isinstance(body, dict) else None
            if name == 'approve':
                tenant.approve(args[0], login, message)
            else:
                tenant.decline(args[0], message)
            return 204, b'', {}, json_type
        if name == 'orgs':
            return 200, tenant.list_orgs(), {}, json_type
        if name == 'org':
            return 200, tenant.org_details(args[0]), {}, json_type
        if name in ('domains', 'domain_count'):
            size, position = tenant._paging(query)  # pylint: disable=protected-access
            items = tenant.list_domains(query)
            if name == 'domain_count':
                return 200, {'count': len(items)}, {}, json_type
            return 200, items[position:position + size], {'X-Total-Count': len(items)}, json_type
        return 200, tenant.domain_details(args[0]), {}, json_type


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if self.sim.verbose:
            super().handle_error(request, client_address)


class Simulator:
    """A running (after ``start()``) SCM simulator.  See docs/sectigo-simulator.md.

    Attributes: ``url`` (scheme://127.0.0.1:port), ``base_url`` (``url + '/api'``),
    ``private_base_url`` (``url + '/private/api'``), ``control_url`` (``url + '/__sim'``),
    ``login``, ``password``, ``customer_uri``, ``approver_login``, ``approver_password``,
    ``ca_bundle``, ``client_cert``, ``client_key``, ``client_p12``, ``client_p12_passphrase``,
    ``tenant`` (the state), ``clock``.
    """

    def __init__(self, host='127.0.0.1', port=0, tls=True, mtls=False, realtime=False, workdir=None,
                 login=DEFAULT_LOGIN, password=DEFAULT_PASSWORD, customer_uri=DEFAULT_CUSTOMER_URI,
                 approver_login=DEFAULT_APPROVER, approver_password=DEFAULT_APPROVER_PASSWORD,
                 p12_passphrase=DEFAULT_P12_PASSPHRASE, issue_delays=None, pending_code=0,
                 unknown_id='not_found', revoke_requires_reason_code=False, seed=0, verbose=False,
                 server_cert=None, server_key=None, client_ca=None):
        if host not in ('127.0.0.1', 'localhost', '::1'):
            raise ValueError('the simulator binds to loopback only')
        self.host, self.port, self.tls, self.mtls = host, port, tls or mtls, mtls
        self.verbose = verbose
        self.login, self.password, self.customer_uri = login, password, customer_uri
        self.approver_login, self.approver_password = approver_login, approver_password
        self.client_p12_passphrase = p12_passphrase
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix='scm-sim-')
        self.pki = SimulatorPKI(login)
        self.paths = self.pki.write(self.workdir, login, p12_passphrase)
        # a TLS certificate of another CA (a host name the clients resolve to the simulator) and
        # the CA that signs accepted client certificates (another simulator's, whose client.p12
        # then logs in here); the simulator's own by default
        if server_cert:
            self.paths.update(server_cert=server_cert, server_key=server_key)
        self.client_ca = client_ca
        self.clock = SimClock(realtime=realtime)
        self.tenant = Tenant(self.pki, self.clock, login, password, customer_uri, approver_login,
                             approver_password, issue_delays=issue_delays, pending_code=pending_code,
                             unknown_id=unknown_id, revoke_requires_reason_code=revoke_requires_reason_code)
        self._faults = []
        self._fault_rng = random.Random(0)
        self._audit = []
        self._arrivals = []
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._conns = set()
        self._httpd = None
        self._thread = None
        if seed:
            self.tenant.seed(seed)

    # -------------------------------------------------------------- files
    ca_bundle = property(lambda self: self.paths['ca_bundle'])
    client_cert = property(lambda self: self.paths['client_cert'])
    client_key = property(lambda self: self.paths['client_key'])
    client_p12 = property(lambda self: self.paths['client_p12'])
    root_pem = property(lambda self: self.pki.root_pem)
    issuing_pem = property(lambda self: self.pki.issuing_pem)

    @property
    def url(self):
        return '%s://%s:%d' % ('https' if self.tls else 'http', self.host, self.port)

    base_url = property(lambda self: self.url + '/api')
    private_base_url = property(lambda self: self.url + '/private/api')
    control_url = property(lambda self: self.url + '/__sim')

    def session(self, certificate=False):
        """A requests Session for the demo admin: password mode, or (certificate=True) the
        client certificate and no password (use ``private_base_url`` then).  ``trust_env`` is
        off so REQUESTS_CA_BUNDLE cannot override ``verify``."""
        import requests  # pylint: disable=import-outside-toplevel
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_bundle
        session.headers.update(self.headers(password=not certificate))
        session.headers['Accept'] = 'application/json'
        if certificate:
            session.cert = (self.client_cert, self.client_key)
        return session

    def headers(self, password=True):
        """The auth headers of the demo admin (password mode; certificate mode: password=False)."""
        out = {'login': self.login, 'customerUri': self.customer_uri}
        if password:
            out['password'] = self.password
        return out

    # -------------------------------------------------------------- life
    def start(self):
        httpd = _Server((self.host, self.port), Handler, bind_and_activate=True)
        httpd.sim = self
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(self.paths['server_cert'], self.paths['server_key'])
            if self.client_ca:
                context.load_verify_locations(cafile=self.client_ca)
            else:
                context.load_verify_locations(cadata=self.pki.root_pem)
            context.verify_mode = ssl.CERT_REQUIRED if self.mtls else ssl.CERT_OPTIONAL
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05},
                                        name='scm-simulator-%d' % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            with self._lock:
                conns = list(self._conns)
                self._conns.clear()
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._thread.join(5)
            self._httpd = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc_info):
        self.stop()

    def track(self, conn, opened):
        with self._lock:
            if opened:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    # -------------------------------------------------------------- time and workflow
    def now(self):
        return self.clock.now()

    def advance(self, seconds):
        """Move the simulated clock forward; returns the new time (epoch seconds)."""
        return self.clock.advance(seconds)

    def approve(self, ssl_id):
        """Approve as the second administrator (EV needs requester != approver)."""
        self.tenant.approve(ssl_id, self.approver_login)

    def decline(self, ssl_id):
        self.tenant.decline(ssl_id)

    def set_status(self, ssl_id, status):
        self.tenant.set_status(ssl_id, status)

    def configure(self, **settings):
        """pending_code (0|-183|-1400), unknown_id ('not_found'|'wrong_id'),
        revoke_requires_reason_code (bool), issue_delays {'DV'|'OV'|'EV': s}, profile_delays {id: s}."""
        self.tenant.configure(**settings)

    def seed(self, count, seed=0, **kw):
        return self.tenant.seed(count, seed=seed, **kw)

    def orders(self, common_name=None, include_seeded=False):
        return self.tenant.orders(common_name, include_seeded)

    def order(self, ssl_id):
        return self.tenant.details(ssl_id, 'ISO_HMS')

    def renew_id(self, ssl_id):
        return self.tenant.renew_id_of(ssl_id)

    def enroll_count(self, common_name=None):
        """Orders created by POST /ssl/v1/enroll (including those whose answer was lost)."""
        return self.tenant.enroll_count(common_name)

    # -------------------------------------------------------------- faults
    def fault(self, kind, path='*', method='*', times=1, **params):
        """Add a fault; returns its id.  kinds: rate_limit (429 + Retry-After, default 1 s),
        server_error (503 unless status=), status (any status/code/description), delay
        (delay= seconds, then the normal answer), reset (connection reset, request not
        processed), drop (request processed, e.g. the order created, then the connection cut
        without an answer).  times=None: every matching request."""
        fault = Fault(kind, path=path, method=method, times=times, **params)
        with self._lock:
            self._faults.append(fault)
        return fault.id

    def clear_faults(self):
        with self._lock:
            self._faults = []

    def seed_faults(self, seed):
        """Seed the RNG that decides faults with a ``probability`` (replayable fault storms)."""
        with self._lock:
            self._fault_rng.seed(seed)

    def faults(self):
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def take_fault(self, method, full_path, rel_path):
        with self._lock:
            for fault in self._faults:
                if fault.exhausted() or not fault.matches(method, full_path, rel_path):
                    continue
                fault.seen += 1
                if fault.seen <= fault.skip:
                    continue
                if fault.probability is not None and self._fault_rng.random() >= fault.probability:
                    continue
                fault.fired += 1
                return fault
        return None

    # -------------------------------------------------------------- audit
    def arrived(self, method, route):
        """Note an API request as it arrives (before faults and processing), so a test can
        act while it is in flight; the audit records it only once it is answered."""
        with self._lock:
            self._arrivals.append({'n': len(self._arrivals) + 1, 'method': method, 'route': route,
                                   'wall': time.time()})

    def arrivals(self, method=None, path=None, since=0):
        """API requests as they arrived (oldest first): n, method, route, wall.  ``path`` is a
        glob on the route; ``since`` skips entries with ``n <= since``."""
        with self._lock:
            items = [dict(e) for e in self._arrivals[since:]]
        if method:
            items = [e for e in items if e['method'] == method.upper()]
        if path:
            items = [e for e in items if fnmatch.fnmatchcase(e['route'], path)]
        return items

    def record(self, entry):
        with self._lock:
            entry['seq'] = next(self._seq)
            self._audit.append(entry)

    def audit(self, method=None, path=None, since=0):
        """Audited API requests (oldest first) as dicts: seq, method, path, route (after the
        /api prefix), query, auth ('password'|'certificate'), login, status (int, 'reset' or
        'dropped'), code (SCM error code when any), fault, time (simulated), wall, and for
        enroll/renew ssl_id and common_name.  ``path`` filters with a glob on route."""
        with self._lock:
            items = [dict(e) for e in self._audit if e['seq'] > since]
        if method:
            items = [e for e in items if e['method'] == method.upper()]
        if path:
            items = [e for e in items if fnmatch.fnmatchcase(e.get('route') or e['path'], path)]
        return items

    def clear_audit(self):
        with self._lock:
            self._audit = []
            self._arrivals = []

    # -------------------------------------------------------------- control API
    def control(self, method, path, query, raw):
        """/__sim/... -> (status, json body)."""
        try:
            body = json.loads(raw.decode('utf-8')) if raw.strip() else {}
        except ValueError:
            return 400, {'error': 'body is not JSON'}
        parts = [p for p in path.split('/') if p][1:]
        try:
            return self._control(method, parts, query, body)
        except ApiError as exc:
            return exc.status, exc.body()
        except (ValueError, TypeError, KeyError) as exc:
            return 400, {'error': str(exc)}

    def _control(self, method, parts, query, body):  # pylint: disable=too-many-return-statements
        key = (method, parts[0] if parts else '')
        if key == ('GET', '') or key == ('GET', 'state'):
            state = self.tenant.stats()
            state.update({'base_url': self.base_url, 'private_base_url': self.private_base_url,
                          'customer_uri': self.customer_uri, 'login': self.login,
                          'approver_login': self.approver_login, 'faults': self.faults()})
            return 200, state
        if key == ('POST', 'advance'):
            return 200, {'now': self.advance(body.get('seconds', 0))}
        if key == ('POST', 'approve') and len(parts) == 2:
            self.approve(parts[1])
            return 200, self.order(parts[1])
        if key == ('POST', 'decline') and len(parts) == 2:
            self.decline(parts[1])
            return 200, self.order(parts[1])
        if key == ('POST', 'status') and len(parts) == 2:
            self.set_status(parts[1], body['status'])
            return 200, self.order(parts[1])
        if key == ('POST', 'faults'):
            spec = dict(body)
            return 200, {'id': self.fault(spec.pop('kind'), **spec)}
        if key == ('GET', 'faults'):
            return 200, self.faults()
        if key == ('DELETE', 'faults'):
            self.clear_faults()
            return 200, []
        if key == ('GET', 'audit'):
            return 200, self.audit(query.get('method'), query.get('path'), int(query.get('since', 0)))
        if key == ('DELETE', 'audit'):
            self.clear_audit()
            return 200, []
        if key == ('POST', 'seed'):
            ids = self.seed(int(body.get('count', 0)), seed=int(body.get('seed', 0)))
            return 200, {'created': len(ids), 'first': ids[0] if ids else None, 'last': ids[-1] if ids else None}
        if key == ('GET', 'orders'):
            return 200, self.orders(query.get('commonName'), query.get('includeSeeded') == 'true')
        if key == ('GET', 'enroll-count'):
            return 200, {'count': self.enroll_count(query.get('commonName'))}
        if key == ('POST', 'config'):
            self.configure(**body)
            return 200, self.tenant.stats()
        return 404, {'error': 'unknown control endpoint', 'endpoints': [
            'GET /__sim/state', 'POST /__sim/advance {seconds}', 'POST /__sim/approve/{id}',
            'POST /__sim/decline/{id}', 'POST /__sim/status/{id} {status}', 'GET|POST|DELETE /__sim/faults',
            'GET|DELETE /__sim/audit', 'POST /__sim/seed {count, seed}', 'GET /__sim/orders',
            'GET /__sim/enroll-count?commonName=', 'POST /__sim/config']}


@contextlib.contextmanager
def start_simulator(**kw):
    """``with start_simulator(seed=5000) as sim: ...`` -- a started ``Simulator`` (keyword
    arguments as for ``Simulator``), stopped and its files removed on exit."""
    sim = Simulator(**kw)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
