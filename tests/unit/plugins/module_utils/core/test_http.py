from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import email.utils
import json
import socket
import ssl
import struct
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.certforge.pki.plugins.module_utils.core import http
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    AuthError, ConfigError, PermanentError, TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.http import (
    REDACTED, HttpClient, make_session, parse_retry_after, redact, request, safe_url,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.polling import Schedule

WAIT = 30  # upper bound for any blocking step in these tests


# -- a scriptable server on 127.0.0.1 ------------------------------------------------------

def reply(status=200, body=b'', headers=None, content_type='application/json'):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode('utf-8')
    elif isinstance(body, str):
        body = body.encode('utf-8')
    return {'kind': 'reply', 'status': status, 'body': body, 'headers': dict(headers or {}),
            'content_type': content_type}


RESET = {'kind': 'reset'}
HANG = {'kind': 'hang'}


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def _serve(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        action = self.server.script.take(self.command, self.path, dict(self.headers), body)
        if action['kind'] == 'hang':
            self.server.script.release.wait(WAIT)
            action = RESET
        if action['kind'] == 'reset':
            # RST instead of FIN: the client sees a connection reset, no answer
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(action['status'])
        for name, value in action['headers'].items():
            self.send_header(name, value)
        if action['body'] or self.command != 'HEAD':
            self.send_header('Content-Type', action['content_type'])
        self.send_header('Content-Length', str(len(action['body'])))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(action['body'])

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _serve


class Script:
    """Per-path queues of actions (the last one repeats) and a log of what was received."""

    def __init__(self):
        self.routes = {}
        self.log = []
        self.lock = threading.Lock()
        self.release = threading.Event()

    def on(self, path, *actions):
        self.routes[path] = list(actions)

    def take(self, method, path, headers, body):
        with self.lock:
            self.log.append({'method': method, 'path': path, 'headers': headers, 'body': body})
            queue = self.routes.get(path.split('?')[0]) or [reply(404, {'detail': 'no route'})]
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def count(self, method=None):
        return len([r for r in self.log if method is None or r['method'] == method])


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def start_server(ssl_context=None):
    server = QuietServer(('127.0.0.1', 0), Handler)
    server.script = Script()
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05})
    thread.daemon = True
    thread.start()
    return server, thread


def stop_server(server, thread):
    server.script.release.set()
    server.shutdown()
    server.server_close()
    thread.join(WAIT)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY',
                 'all_proxy', 'no_proxy', 'NO_PROXY'):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server():
    srv, thread = start_server()
    srv.base = 'http://127.0.0.1:%d' % srv.server_address[1]
    yield srv
    stop_server(srv, thread)


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.wall = 1700000000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def wallclock(self):
        return self.wall

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        self.wall += seconds


@pytest.fixture
def fake():
    return FakeTime()


def session_for(fake, **kwargs):
    kwargs.setdefault('backoff', Schedule.exponential(base=2, max_delay=30, jitter=0))
    kwargs.setdefault('timeout', (5, 10))
    return make_session(clock=fake.clock, sleep=fake.sleep, wallclock=fake.wallclock, **kwargs)


def closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# -- import and helpers --------------------------------------------------------------------

def test_importing_the_module_does_not_import_requests():
    code = ('import sys; from ansible_collections.certforge.pki.plugins.module_utils.core '
            'import http; print(http.HAS_REQUESTS, "requests" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         env={'PYTHONPATH': ':'.join(p for p in sys.path if p)}, timeout=WAIT, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['True', 'False']


def test_redact_replaces_every_secret_longest_first():
    text = 'user admin pass s3cr3t and s3cr3t-long; url p%40ss+word p@ss word'
    result = redact(text, ['s3cr3t', 's3cr3t-long', 'p@ss word', '', None])
    assert 's3cr3t' not in result and 'p@ss' not in result and 'p%40ss' not in result
    assert result == 'user admin pass %s and %s; url %s %s' % ((REDACTED,) * 4)
    assert redact('nothing', []) == 'nothing'
    assert redact(None, ['x']) is None


def test_safe_url_drops_credentials_and_query():
    assert safe_url('https://u:pw@ca.example.com:8443/api/x?key=abc#f') == \
        'https://ca.example.com:8443/api/x'


@pytest.mark.parametrize('value, expected', [
    ('120', 120.0), (' 5 ', 5.0), ('0', 0.0), ('-3', 0.0), ('1.5', 1.5),
    ('soon', None), ('', None), (None, None), ('inf', None),
])
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value, now=0) == expected


def test_parse_retry_after_http_date():
    now = 1700000000.0
    later = email.utils.formatdate(now + 90, usegmt=True)
    earlier = email.utils.formatdate(now - 90, usegmt=True)
    assert parse_retry_after(later, now=now) == pytest.approx(90)
    assert parse_retry_after(earlier, now=now) == 0.0


# -- success and retries -------------------------------------------------------------------

def test_get_ok_sends_user_agent_and_uses_no_sleep(server, fake):
    server.script.on('/ok', reply(200, {'status': 'ok'}))
    session = session_for(fake, user_agent='certforge-test/1', headers={'X-Trace': 'abc'})
    response = request(session, 'get', server.base + '/ok')
    assert response.json() == {'status': 'ok'}
    assert server.script.log[0]['headers']['User-Agent'] == 'certforge-test/1'
    assert server.script.log[0]['headers']['X-Trace'] == 'abc'
    assert fake.sleeps == []


def test_get_retries_503_with_backoff_then_succeeds(server, fake):
    server.script.on('/busy', reply(503), reply(503), reply(200, {'n': 3}))
    response = request(session_for(fake), 'GET', server.base + '/busy')
    assert response.json() == {'n': 3}
    assert server.script.count('GET') == 3
    assert fake.sleeps == [1, 2]


@pytest.mark.parametrize('status', [429, 502, 504])
def test_get_retries_other_retry_statuses(server, fake, status):
    server.script.on('/x', reply(status), reply(200))
    assert request(session_for(fake), 'GET', server.base + '/x').status_code == 200
    assert server.script.count() == 2


def test_retry_after_seconds_is_honoured(server, fake):
    server.script.on('/rl', reply(429, {'detail': 'slow down'}, {'Retry-After': '7'}), reply(200))
    request(session_for(fake), 'GET', server.base + '/rl')
    assert fake.sleeps == [7]


def test_retry_after_http_date_is_honoured(server, fake):
    when = email.utils.formatdate(fake.wall + 30, usegmt=True)
    server.script.on('/rl', reply(503, headers={'Retry-After': when}), reply(200))
    request(session_for(fake), 'GET', server.base + '/rl')
    assert fake.sleeps == [pytest.approx(30)]


def test_retries_are_bounded_and_end_in_transient_error(server, fake):
    server.script.on('/down', reply(503, {'detail': 'maintenance'}, {'Retry-After': '2'}))
    with pytest.raises(TransientError) as info:
        request(session_for(fake, retries=3), 'GET', server.base + '/down')
    assert server.script.count() == 4
    assert fake.sleeps == [2, 2, 2]
    err = info.value
    assert err.retry_after == 2
    assert err.details['status'] == 503 and err.details['attempts'] == 4
    assert 'maintenance' in str(err) and 'after 4 attempts' in str(err)


def test_retry_after_beyond_deadline_fails_at_once_with_the_hint(server, fake):
    server.script.on('/later', reply(503, headers={'Retry-After': '3600'}))
    with pytest.raises(TransientError) as info:
        request(session_for(fake, deadline=120), 'GET', server.base + '/later')
    assert info.value.retry_after == 3600
    assert server.script.count() == 1
    assert fake.sleeps == []


def test_total_deadline_bounds_backoff(server, fake):
    server.script.on('/down', reply(502))
    with pytest.raises(TransientError):
        request(session_for(fake, retries=50, deadline=10), 'GET', server.base + '/down')
    # waits 1, 2, 4 fit into 10 s; the next one (8) would end at 15
    assert fake.sleeps == [1, 2, 4]
    assert sum(fake.sleeps) <= 10


def test_deadline_and_retries_can_be_overridden_per_call(server, fake):
    server.script.on('/down', reply(503))
    with pytest.raises(TransientError):
        request(session_for(fake), 'GET', server.base + '/down', retries=0)
    assert server.script.count() == 1 and fake.sleeps == []


def test_500_on_a_get_is_retried_then_transient(server, fake):
    server.script.on('/err', reply(500, {'detail': 'boom'}))
    with pytest.raises(TransientError) as info:
        request(session_for(fake), 'GET', server.base + '/err')
    assert server.script.count() == 6              # the first try and five retries
    assert 'boom' in str(info.value)


def test_500_on_a_get_then_an_answer(server, fake):
    server.script.on('/flaky', reply(500, {'detail': 'boom'}), reply(200, {'ok': True}))
    response = request(session_for(fake), 'GET', server.base + '/flaky')
    assert response.json() == {'ok': True} and server.script.count() == 2


def test_500_on_a_post_is_not_retried(server, fake):
    server.script.on('/enroll', reply(500, {'detail': 'boom'}))
    with pytest.raises(Exception) as info:
        request(session_for(fake), 'POST', server.base + '/enroll', json={'csr': 'x'})
    assert server.script.count('POST') == 1
    assert info.value.details.get('request_sent') == 'unknown'


# -- non-idempotent requests ---------------------------------------------------------------

@pytest.mark.parametrize('status', [429, 503])
def test_post_is_retried_on_statuses_that_prove_no_processing(server, fake, status):
    server.script.on('/enroll', reply(status, headers={'Retry-After': '1'}), reply(201, {'id': 9}))
    response = request(session_for(fake), 'POST', server.base + '/enroll', json={'csr': 'x'})
    assert response.json() == {'id': 9}
    assert server.script.count('POST') == 2
    assert fake.sleeps == [1]
    assert server.script.log[1]['body'] == b'{"csr": "x"}'


@pytest.mark.parametrize('status', [502, 504])
def test_post_is_not_retried_on_gateway_errors(server, fake, status):
    server.script.on('/enroll', reply(status), reply(201))
    with pytest.raises(TransientError) as info:
        request(session_for(fake), 'POST', server.base + '/enroll', json={})
    assert server.script.count('POST') == 1
    assert info.value.details['request_sent'] == 'unknown'
    assert fake.sleeps == []


def test_post_is_never_retried_after_a_lost_answer(server, fake):
    server.script.on('/enroll', RESET, reply(201))
    with pytest.raises(TransientError) as info:
        request(session_for(fake), 'POST', server.base + '/enroll', json={'csr': 'x'})
    assert server.script.count('POST') == 1
    assert fake.sleeps == []
    assert info.value.details['request_sent'] == 'unknown'
    assert 'may have processed' in str(info.value)


@pytest.mark.parametrize('method', ['GET', 'PUT', 'DELETE', 'HEAD', 'OPTIONS'])
def test_idempotent_methods_are_retried_after_a_reset(server, fake, method):
    server.script.on('/r', RESET, RESET, reply(200))
    response = request(session_for(fake), method, server.base + '/r')
    assert response.status_code == 200
    assert server.script.count(method) == 3
    assert fake.sleeps == [1, 2]


def test_post_is_retried_when_the_connection_was_refused(fake):
    url = 'http://127.0.0.1:%d/enroll' % closed_port()
    with pytest.raises(TransientError) as info:
        request(session_for(fake, retries=2), 'POST', url, json={})
    assert fake.sleeps == [1, 2]  # safe: the request never left
    assert info.value.details['request_sent'] == 'no'
    assert 'after 3 attempts' in str(info.value)


def test_read_timeout_retries_get_but_not_post(server, fake):
    server.script.on('/slow', HANG)
    with pytest.raises(TransientError) as info:
        request(session_for(fake, timeout=(5, 0.2), retries=1), 'GET', server.base + '/slow')
    assert server.script.count('GET') == 2 and fake.sleeps == [1]
    assert 'after 2 attempts' in str(info.value)
    fake.sleeps[:] = []
    with pytest.raises(TransientError) as info:
        request(session_for(fake, timeout=(5, 0.2), retries=1), 'POST', server.base + '/slow')
    assert server.script.count('POST') == 1 and fake.sleeps == []
    assert info.value.details['request_sent'] == 'unknown'


# -- error mapping -------------------------------------------------------------------------

@pytest.mark.parametrize('status', [401, 403])
def test_auth_errors(server, fake, status):
    server.script.on('/a', reply(status, {'code': -16, 'description': 'Unknown user'}))
    session = session_for(fake, option_names={'auth': 'api_password'})
    with pytest.raises(AuthError) as info:
        request(session, 'GET', server.base + '/a')
    assert info.value.option == 'api_password'
    assert 'Unknown user' in str(info.value)
    assert server.script.count() == 1


def test_acme_problem_document_becomes_permanent_error(server, fake):
    problem = {'type': 'urn:ietf:params:acme:error:rejectedIdentifier',
               'detail': 'Error creating new order', 'status': 400,
               'subproblems': [{'type': 'urn:ietf:params:acme:error:rejectedIdentifier',
                                'detail': 'forbidden domain',
                                'identifier': {'type': 'dns', 'value': 'bad.example'}}]}
    server.script.on('/new-order', reply(400, problem, content_type='application/problem+json'))
    with pytest.raises(PermanentError) as info:
        request(session_for(fake), 'POST', server.base + '/new-order?x=1', json={})
    msg = str(info.value)
    assert 'POST http://127.0.0.1:%d/new-order -> HTTP 400' % server.server_address[1] in msg
    assert 'Error creating new order' in msg and 'bad.example: forbidden domain' in msg
    assert 'rejectedIdentifier' in msg
    assert info.value.details['type'].endswith('rejectedIdentifier')
    assert not isinstance(info.value, TransientError)


def test_sectigo_error_body_keeps_the_code(server, fake):
    server.script.on('/ssl/v1/enroll', reply(400, {'code': -36, 'description': 'term invalid'}))
    with pytest.raises(PermanentError) as info:
        request(session_for(fake), 'POST', server.base + '/ssl/v1/enroll', json={})
    assert info.value.details['code'] == -36
    assert 'code -36: term invalid' in str(info.value)


def test_html_error_page_is_reduced_to_its_title(server, fake):
    page = '<html><head><title>404 Not Found</title></head><body><h1>big page</h1></body></html>'
    server.script.on('/missing', reply(404, page, content_type='text/html'))
    with pytest.raises(PermanentError) as info:
        request(session_for(fake), 'GET', server.base + '/missing')
    assert str(info.value).endswith('404 Not Found')
    assert 'big page' not in str(info.value)


def test_accepted_statuses_are_returned(server, fake):
    server.script.on('/maybe', reply(404, {'detail': 'nope'}))
    response = request(session_for(fake), 'GET', server.base + '/maybe', accept=(404,))
    assert response.status_code == 404


# -- secrets -------------------------------------------------------------------------------

def test_secrets_never_appear_in_errors(server, fake):
    echo = 'bad login admin-user with password hunter2, token Bearer tok-123, key qk-999, x=zz'
    server.script.on('/s', reply(400, {'detail': echo}))
    session = session_for(fake, headers={'login': 'admin-user', 'password': 'hunter2',
                                         'Authorization': 'Bearer tok-123'},
                          redact=['zz'])
    with pytest.raises(PermanentError) as info:
        request(session, 'GET', server.base + '/s?apikey=qk-999')
    text = str(info.value) + json.dumps(info.value.to_result()) + repr(info.value.details)
    for secret in ('hunter2', 'tok-123', 'qk-999', 'admin-user', 'zz'):
        assert secret not in text
    assert REDACTED in text
    assert 'Authorization' not in text and 'password:' not in text.lower()
    # the server did get the real headers
    assert server.script.log[0]['headers']['password'] == 'hunter2'


def test_auth_tuple_password_is_redacted(server, fake):
    server.script.on('/s', reply(403, {'detail': 'user bob password pw-42 refused'}))
    with pytest.raises(AuthError) as info:
        request(session_for(fake), 'GET', server.base + '/s', auth=('bob', 'pw-42'))
    assert 'pw-42' not in str(info.value)


def test_proxy_credentials_are_redacted(fake):
    proxy = 'http://puser:pr0xy-pw@127.0.0.1:%d' % closed_port()
    session = session_for(fake, proxy=proxy, retries=0)
    with pytest.raises(TransientError) as info:
        request(session, 'GET', 'http://ca.invalid/x')
    assert 'pr0xy-pw' not in str(info.value) and 'puser' not in str(info.value)


# -- configuration errors ------------------------------------------------------------------

@pytest.mark.parametrize('kwargs, option', [
    (dict(timeout=0), 'timeout'),
    (dict(timeout=(1, 2, 3)), 'timeout'),
    (dict(timeout='fast'), 'timeout'),
    (dict(retries=-1), 'retries'),
    (dict(retries=True), 'retries'),
    (dict(deadline=-5), 'deadline'),
    (dict(ca_bundle='/nonexistent/ca.pem'), 'ca_bundle'),
    (dict(client_cert='/nonexistent/c.pem'), 'client_cert'),
    (dict(proxy='not a url'), 'proxy'),
])
def test_bad_session_options_name_the_option(kwargs, option):
    with pytest.raises(ConfigError) as info:
        make_session(**kwargs)
    assert info.value.option == option
    assert info.value.fix


def test_missing_client_key_names_client_key(tmp_path):
    cert = tmp_path / 'c.pem'
    cert.write_text('x')
    with pytest.raises(ConfigError) as info:
        make_session(client_cert=(str(cert), str(tmp_path / 'missing.key')))
    assert info.value.option == 'client_key'


def test_option_names_are_overridable():
    with pytest.raises(ConfigError) as info:
        make_session(ca_bundle='/nonexistent', option_names={'ca_bundle': 'sectigo_ca_bundle'})
    assert info.value.option == 'sectigo_ca_bundle'


# -- TLS -----------------------------------------------------------------------------------

def _pki(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def build(subject, key, issuer, issuer_key, ca=False, san=None, eku=None):
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            builder = builder.add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(path, cert=None, key=None):
        data = b''
        if cert is not None:
            data += cert.public_bytes(serialization.Encoding.PEM)
        if key is not None:
            data += key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        path.write_bytes(data)
        return str(path)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build('test ca', ca_key, 'test ca', ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = build('127.0.0.1', srv_key, 'test ca', ca_key,
                san=[x509.IPAddress(ipaddress.ip_address('127.0.0.1')), x509.DNSName('localhost')],
                eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = build('client', cli_key, 'test ca', ca_key, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = build('other ca', other_key, 'other ca', other_key, ca=True)
    return {
        'ca': write(directory / 'ca.pem', ca),
        'other_ca': write(directory / 'other.pem', other),
        'server_cert': write(directory / 'srv.pem', srv),
        'server_key': write(directory / 'srv.key', key=srv_key),
        'client_cert': write(directory / 'cli.pem', cli),
        'client_key': write(directory / 'cli.key', key=cli_key),
        'client_combined': write(directory / 'cli-combined.pem', cli, cli_key),
    }


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    return _pki(tmp_path_factory.mktemp('pki'))


def _tls_server(pki, require_client_cert=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki['server_cert'], pki['server_key'])
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki['ca'])
    srv, thread = start_server(ctx)
    srv.base = 'https://127.0.0.1:%d' % srv.server_address[1]
    srv.script.on('/ok', reply(200, {'ok': True}))
    return srv, thread


@pytest.fixture
def tls_server(pki):
    srv, thread = _tls_server(pki)
    yield srv
    stop_server(srv, thread)


@pytest.fixture
def mtls_server(pki):
    srv, thread = _tls_server(pki, require_client_cert=True)
    yield srv
    stop_server(srv, thread)


def test_untrusted_server_is_a_config_error_naming_ca_bundle(tls_server, fake):
    with pytest.raises(ConfigError) as info:
        request(session_for(fake), 'GET', tls_server.base + '/ok')
    err = info.value
    assert err.option == 'ca_bundle'
    assert 'set ca_bundle' in err.fix and 'validate_certs' in err.fix
    assert 'TLS verification failed' in str(err)
    assert fake.sleeps == []  # not retried: waiting will not fix it


def test_wrong_ca_bundle_says_so_and_uses_the_overridden_name(tls_server, pki, fake):
    session = session_for(fake, ca_bundle=pki['other_ca'],
                          option_names={'ca_bundle': 'acme_ca_bundle'})
    with pytest.raises(ConfigError) as info:
        request(session, 'GET', tls_server.base + '/ok')
    assert info.value.option == 'acme_ca_bundle'
    assert pki['other_ca'] in info.value.fix


def test_ca_bundle_is_used_and_beats_the_environment(tls_server, pki, fake, monkeypatch):
    monkeypatch.setenv('REQUESTS_CA_BUNDLE', pki['other_ca'])
    response = request(session_for(fake, ca_bundle=pki['ca']), 'GET', tls_server.base + '/ok')
    assert response.json() == {'ok': True}


def test_validate_certs_false_connects_and_warns(tls_server, fake):
    session = session_for(fake, validate_certs=False)
    with pytest.warns(Warning):  # urllib3 InsecureRequestWarning
        response = request(session, 'GET', tls_server.base + '/ok')
    assert response.status_code == 200
    assert any('validate_certs' in w for w in session.certforge.warnings)


@pytest.mark.parametrize('which', ['pair', 'combined'])
def test_client_certificate_is_presented(mtls_server, pki, fake, which):
    cert = ((pki['client_cert'], pki['client_key']) if which == 'pair'
            else pki['client_combined'])
    session = session_for(fake, ca_bundle=pki['ca'], client_cert=cert)
    assert request(session, 'GET', mtls_server.base + '/ok').json() == {'ok': True}


def test_missing_client_certificate_fails_without_success(mtls_server, pki, fake):
    session = session_for(fake, ca_bundle=pki['ca'], retries=0)
    with pytest.raises((AuthError, TransientError)) as info:
        request(session, 'GET', mtls_server.base + '/ok')
    if isinstance(info.value, AuthError):
        assert info.value.option == 'client_cert'
    assert mtls_server.script.count() == 0


# -- HttpClient ----------------------------------------------------------------------------

def test_client_joins_base_url_and_decodes_json(server, fake):
    server.script.on('/api/v1/item', reply(200, {'a': 1}))
    server.script.on('/api/v1/empty', reply(204))
    server.script.on('/api/v1/text', reply(200, 'plain words', content_type='text/plain'))
    with HttpClient(server.base + '/api/v1/', clock=fake.clock, sleep=fake.sleep) as client:
        assert client.json('GET', '/item') == {'a': 1}
        assert client.get('item').status_code == 200
        assert client.json('DELETE', 'empty') is None
        with pytest.raises(PermanentError) as info:
            client.json('GET', 'text')
        assert 'not JSON' in str(info.value)
        assert client.get(server.base + '/api/v1/item').json() == {'a': 1}  # absolute URL
        assert client.warnings == []
    assert [r['path'] for r in server.script.log][:2] == ['/api/v1/item', '/api/v1/item']


def test_client_post_put_helpers(server, fake):
    server.script.on('/o', reply(201, {'id': 'x'}))
    client = HttpClient(server.base, clock=fake.clock, sleep=fake.sleep)
    assert client.post('/o', json={'k': 'v'}).status_code == 201
    assert client.put('/o', data=b'raw').status_code == 201
    assert client.head('/o').status_code == 201
    assert [r['method'] for r in server.script.log] == ['POST', 'PUT', 'HEAD']
    assert server.script.log[0]['body'] == b'{"k": "v"}'
    client.close()


def test_has_requests_flag():
    assert http.HAS_REQUESTS is True


def test_missing_requests_is_a_config_error_not_a_traceback(monkeypatch):
    monkeypatch.setitem(sys.modules, 'requests', None)  # makes "import requests" fail
    with pytest.raises(ConfigError) as info:
        make_session()
    assert 'pip install requests' in info.value.fix
