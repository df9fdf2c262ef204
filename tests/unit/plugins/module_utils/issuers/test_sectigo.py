"""Unit tests of the Sectigo SCM client and connector against recorded answers served by a
tiny HTTP server on 127.0.0.1 (real HTTP, real requests)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import glob
import json
import os
import re
import socket
import struct
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
from ansible_collections.certforge.pki.plugins.module_utils.core import polling
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    AuthError, ConfigError, NotReadyError, PolicyError, TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.model import CertificateRequest, Order, Revocation
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
from ansible_collections.certforge.pki.plugins.module_utils.issuers import sectigo
from ansible_collections.certforge.pki.plugins.module_utils.issuers.sectigo import (
    SectigoClient, SectigoIssuer, colon_serial, env_options, scm_reason, split_collected,
)

# -- recorded answers (shapes from the SCM reference; values invented) ---------------------

TYPES = [
    {'id': 101, 'name': 'Sectigo DV SSL', 'description': 'Domain validated, single domain', 'terms': [365],
     'keyTypes': {'RSA': ['2048', '3072'], 'EC': ['P-256', 'P-384']}, 'useSecondaryOrgName': False},
    {'id': 102, 'name': 'Sectigo DV Multi-Domain SSL', 'description': 'up to 100 domains', 'terms': [365],
     'keyTypes': {'RSA': ['2048'], 'EC': ['P-256']}, 'useSecondaryOrgName': False},
    {'id': 201, 'name': 'Sectigo OV SSL', 'description': 'OV', 'terms': [365, 395],
     'keyTypes': {'RSA': ['2048'], 'EC': ['P-256']}, 'useSecondaryOrgName': False},
    {'id': 203, 'name': 'Legacy RSA SSL', 'description': 'OV', 'terms': [365],
     'keyTypes': {'RSA': ['2048']}, 'useSecondaryOrgName': False},
]
CUSTOM_FIELDS = [{'id': 7, 'name': 'cost-center', 'mandatory': True}, {'id': 8, 'name': 'ticket', 'mandatory': False}]
ORGS = [{'id': 310, 'name': 'Example Org', 'departments': [
    {'id': 312, 'name': 'Web Team', 'parentName': 'Example Org'},
    {'id': 313, 'name': 'Legacy Team', 'parentName': 'Example Org'}]},
    {'id': 320, 'name': 'Dormant Org', 'departments': []}]
ORG_DETAILS = {
    310: {'id': 310, 'name': 'Example Org', 'sslCertsApiEnabled': True, 'certTypes': ['SSL', 'SMIME']},
    312: {'id': 312, 'name': 'Web Team', 'sslCertsApiEnabled': True, 'certTypes': ['SSL']},
    313: {'id': 313, 'name': 'Legacy Team', 'sslCertsApiEnabled': False, 'certTypes': []},
    320: {'id': 320, 'name': 'Dormant Org', 'sslCertsApiEnabled': False, 'certTypes': []},
}
NOT_READY = {'code': 0, 'description': 'Being processed by Sectigo'}


# -- a tiny PKI ------------------------------------------------------------------------------

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class PKI:
    def __init__(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca('Test Root', self.root_key, None, None, now)
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = self._ca('Test Issuing', self.inter_key, self.root, self.root_key, now)

    @staticmethod
    def _ca(cn, key, issuer, issuer_key, now):
        return (x509.CertificateBuilder().subject_name(_name(cn))
                .issuer_name(issuer.subject if issuer else _name(cn)).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(issuer_key or key, hashes.SHA256()))

    def sign(self, csr_pem, days=365):
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.inter.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
                .sign(self.inter_key, hashes.SHA256()))
        return cert


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_csr(cn='www.example.com', sans=None, org=None, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    builder = builder.add_extension(x509.SubjectAlternativeName(
        [x509.DNSName(n) for n in (sans or [cn])]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode(), key


@pytest.fixture(scope='module')
def pki():
    return PKI()


# -- the server ------------------------------------------------------------------------------

class Routes:
    def __init__(self):
        self.routes = []
        self.log = []
        self.lock = threading.Lock()

    def add(self, method, pattern, *answers):
        """Answers (status, body, headers) or callables(match, body) -> answer or 'reset'; the last repeats."""
        self.routes.insert(0, [method, re.compile('^' + pattern + r'(\?.*)?$'), list(answers)])

    def take(self, method, path, headers, body):
        with self.lock:
            self.log.append({'method': method, 'path': path, 'headers': headers, 'body': body})
            for route in self.routes:
                m = route[1].match(path)
                if route[0] == method and m:
                    answers = route[2]
                    answer = answers.pop(0) if len(answers) > 1 else answers[0]
                    if callable(answer):
                        answer = answer(m, body)
                    return answer
        return (404, {'code': -5101, 'description': 'not found %s' % path}, {})

    def posts(self, fragment):
        return [e for e in self.log if e['method'] == 'POST' and fragment in e['path']]


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def _serve(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        answer = self.server.routes.take(self.command, self.path, dict(self.headers), body)
        if answer == 'reset':
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        status, data, headers = answer
        if isinstance(data, bytes):
            raw = data
        elif isinstance(data, str):
            raw = data.encode()
        else:
            raw = json.dumps(data).encode() if data is not None else b''
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header('Content-Type', 'application/json' if not isinstance(data, str) else 'application/octet-stream')
        self.send_header('Content-Length', str(len(raw)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(raw)

    do_GET = do_POST = do_HEAD = do_PUT = _serve


@pytest.fixture
def scm():
    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.routes = Routes()
    routes = server.routes
    routes.add('GET', r'/api/ssl/v1/types', (200, TYPES, {}))
    routes.add('GET', r'/api/ssl/v1/customFields', (200, CUSTOM_FIELDS, {}))
    routes.add('GET', r'/api/organization/v1', (200, ORGS, {}))
    routes.add('GET', r'/api/organization/v1/(\d+)', lambda m, b: (200, ORG_DETAILS[int(m.group(1))], {})
               if int(m.group(1)) in ORG_DETAILS else (400, {'code': -1, 'description': 'no org'}, {}))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    routes.url = 'http://127.0.0.1:%d/api' % server.server_address[1]
    yield routes
    server.shutdown()
    server.server_close()


NO_SLEEP = []


def client_for(scm, **extra):
    options = dict(base_url=scm.url, customer_uri='example', login='api-bot', password='s3cret-pw')
    options.update(extra)
    return SectigoClient.from_options(options, env={}, sleep=NO_SLEEP.append,
                                      backoff=polling.Schedule.steps([0.01], jitter=0))


def issuer_for(scm, **options):
    base = dict(profile='Sectigo DV SSL', organization='Example Org', custom_fields={'cost-center': 'CC-1'})
    base.update(options)
    return SectigoIssuer(base, option_prefix='', client=client_for(scm))


def request_for(csr_pem, name='www', token='a' * 32, **kw):
    return CertificateRequest(name=name, csr_pem=csr_pem, token=token, **kw)


# -- client ----------------------------------------------------------------------------------

def test_headers_paging_and_call_count(scm):
    page1 = [{'sslId': 1, 'commonName': 'a'}, {'sslId': 2, 'commonName': 'b'}]
    scm.add('GET', r'/api/ssl/v1', (200, page1, {'X-Total-Count': '3'}), (200, [{'sslId': 3}], {'X-Total-Count': '3'}))
    scm.add('HEAD', r'/api/ssl/v1', (200, None, {'X-Total-Count': '42'}))
    client = client_for(scm)
    items, total = client.list_ssl({'commonName': 'a'}, size=2, position=0)
    assert [i['sslId'] for i in items] == [1, 2] and total == 3
    assert client.count_ssl({'status': 'Issued'}) == 42
    first = scm.log[0]
    assert first['headers']['login'] == 'api-bot'
    assert first['headers']['password'] == 's3cret-pw'
    assert first['headers']['customerUri'] == 'example'
    assert 'size=2' in first['path'] and 'position=0' in first['path'] and 'commonName=a' in first['path']
    assert client.calls[0] == ('GET', 'ssl/v1') and client.calls[-1] == ('HEAD', 'ssl/v1')
    assert len(client.calls) == len(scm.log)


def test_page_size_is_clamped(scm):
    scm.add('GET', r'/api/ssl/v1', (200, [], {'X-Total-Count': '0'}))
    client_for(scm).list_ssl(size=5000)
    assert 'size=200' in scm.log[-1]['path']


def test_wrong_credentials_name_password_and_hide_it(scm):
    scm.add('GET', r'/api/ssl/v1/types', (401, {'code': -16, 'description': 'Unknown user'}, {}))
    with pytest.raises(AuthError) as info:
        client_for(scm).types()
    assert info.value.option == 'password'
    assert 'Unknown user' in str(info.value) and 's3cret-pw' not in str(info.value)


def test_collect_not_ready_honours_retry_after(scm):
    scm.add('GET', r'/api/ssl/v1/collect/9', (400, NOT_READY, {'Retry-After': '7'}))
    with pytest.raises(NotReadyError) as info:
        client_for(scm).collect(9)
    assert info.value.retry_after == 7.0
    assert 'format=pemia' in scm.log[-1]['path']


@pytest.mark.parametrize('body', [{'code': -183, 'description': 'Certificate is not collectable.'},
                                  {'code': -1400, 'description': 'The request is being processed by Sectigo.'}])
def test_collect_other_not_ready_codes(scm, body):
    scm.add('GET', r'/api/ssl/v1/collect/9', (400, body, {}))
    with pytest.raises(NotReadyError):
        client_for(scm).collect(9)


def test_429_is_retried_with_retry_after(scm):
    scm.add('GET', r'/api/ssl/v1/customFields', (429, {'code': -1, 'description': 'slow down'}, {'Retry-After': '3'}),
            (200, CUSTOM_FIELDS, {}))
    NO_SLEEP[:] = []
    assert client_for(scm).custom_fields() == CUSTOM_FIELDS
    assert NO_SLEEP == [3.0]


def test_lost_enroll_answer_is_not_retried(scm):
    scm.add('POST', r'/api/ssl/v1/enroll', 'reset')
    with pytest.raises(TransientError) as info:
        client_for(scm).enroll({'orgId': 1})
    assert info.value.details['request_sent'] == 'unknown'
    assert len(scm.posts('enroll')) == 1


def test_base_url_rules():
    base = dict(customer_uri='c', login='l', password='p')
    with pytest.raises(ConfigError) as info:
        SectigoClient.from_options(dict(base, base_url='https://scm.example/api', client_cert='/nonexistent'), env={})
    assert info.value.option == 'base_url' and '/private/api' in info.value.fix
    with pytest.raises(ConfigError) as info:
        SectigoClient.from_options(dict(base, base_url='https://scm.example/private/api'), env={})
    assert info.value.option == 'base_url'
    client = SectigoClient.from_options(dict(base, base_url='https://scm.example'), env={})
    assert client.base_url == 'https://scm.example/api'
    with pytest.raises(ConfigError) as info:
        SectigoClient.from_options({'customer_uri': 'c', 'login': 'l'}, env={})
    assert info.value.option == 'password'
    with pytest.raises(ConfigError) as info:
        SectigoClient.from_options({'login': 'l', 'password': 'p'}, env={}, option_prefix='issuer_options.')
    assert info.value.option == 'issuer_options.customer_uri'


def test_environment_fallback():
    env = {'SECTIGO_BASE_URL': 'https://scm.example/api', 'SECTIGO_CUSTOMER_URI': 'c', 'SECTIGO_LOGIN': 'l',
           'SECTIGO_PASSWORD': 'p', 'SECTIGO_CA_BUNDLE': '/x'}
    opts = env_options({'login': 'given'}, env)
    assert opts['login'] == 'given' and opts['password'] == 'p' and opts['ca_bundle'] == '/x'
    client = SectigoClient.from_options({}, env=dict(env, SECTIGO_CA_BUNDLE=''))
    assert client.session.headers['customerUri'] == 'c'


def test_validate_certs_false_warns():
    client = SectigoClient.from_options(dict(customer_uri='c', login='l', password='p', validate_certs=False), env={})
    assert any('validate_certs' in w for w in client.warnings)


def test_pkcs12_is_converted_and_removed(tmp_path, pki):
    key = ec.generate_private_key(ec.SECP256R1())
    csr_pem, dummy = make_csr('api-bot', key=key)
    cert = pki.sign(csr_pem)
    p12 = tmp_path / 'c.p12'
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b'c', key, cert, None, serialization.BestAvailableEncryption(b'p12pass')))
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), 'certforge-sectigo-*')))
    client = SectigoClient.from_options(dict(base_url='https://scm.example/private/api', customer_uri='c',
                                             login='l', pkcs12_path=str(p12), pkcs12_passphrase='p12pass'), env={})
    assert 'password' not in client.session.headers
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), 'certforge-sectigo-*'))) == before
    with pytest.raises(ConfigError) as info:
        SectigoClient.from_options(dict(base_url='https://scm.example/private/api', customer_uri='c',
                                        login='l', pkcs12_path=str(p12), pkcs12_passphrase='wrong'), env={})
    assert info.value.option == 'pkcs12_passphrase'


def test_reasons():
    assert scm_reason('superseded') == (4, 'Superseded')
    assert scm_reason('keyCompromise')[0] == 1
    with pytest.raises(ConfigError):
        scm_reason('certificate_hold')
    assert colon_serial('0a1b2c') == '0A:1B:2C' and colon_serial('A:1B') == '0A:1B'


# -- connector: check refuses bad input with read calls only --------------------------------

def _no_writes(scm):
    assert not [e for e in scm.log if e['method'] == 'POST']


@pytest.mark.parametrize('options,option,kind', [
    ({'profile': 'No Such Profile'}, 'profile', ConfigError),
    ({'profile': '999'}, 'profile', ConfigError),
    ({'term': 730}, 'term', ConfigError),
    ({'organization': 'Nope Org'}, 'organization', ConfigError),
    ({'department': 'Nope Team'}, 'department', ConfigError),
    ({'department': 'Legacy Team'}, 'department', PolicyError),
    ({'organization': 'Dormant Org'}, 'organization', PolicyError),
    ({'custom_fields': {}}, 'custom_fields', ConfigError),
    ({'custom_fields': {'cost-center': 'x', 'nope': 1}}, 'custom_fields', ConfigError),
    ({'comments': 'x' * 1000}, 'comments', ConfigError),
    ({'external_requester': ['not-an-email']}, 'external_requester', ConfigError),
])
def test_check_refuses(scm, options, option, kind):
    csr_pem, dummy = make_csr()
    issuer = issuer_for(scm, **options)
    with pytest.raises(kind) as info:
        issuer.check(request_for(csr_pem))
    assert info.value.option == option, str(info.value)
    _no_writes(scm)


def test_check_refuses_bad_csr_and_single_domain_with_many_names(scm):
    issuer = issuer_for(scm)
    with pytest.raises(ConfigError) as info:
        issuer.check(request_for('-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n'))
    assert info.value.option == 'csr'
    csr_pem, dummy = make_csr('a.example.com', ['a.example.com', 'b.example.com'])
    with pytest.raises(PolicyError) as info:
        issuer.check(request_for(csr_pem))
    assert info.value.option == 'subject_alt_names'
    issuer_for(scm, profile='Sectigo DV Multi-Domain SSL').check(request_for(csr_pem))
    _no_writes(scm)


def test_organization_by_id_and_from_csr_and_lookups_cached(scm):
    csr_pem, dummy = make_csr(org='Example Org')
    issuer = SectigoIssuer({'profile': '101', 'custom_fields': {'cost-center': 'x'}}, option_prefix='',
                           client=client_for(scm))
    prep = issuer.prepare(request_for(csr_pem))
    assert prep['org_id'] == 310 and prep['term'] == 365
    calls = len(issuer.client.calls)
    issuer.prepare(request_for(csr_pem))
    assert len(issuer.client.calls) == calls
    prep = issuer_for(scm, organization='312', profile='Sectigo OV SSL', term=395).prepare(request_for(csr_pem))
    assert prep['org_id'] == 312 and prep['term'] == 395


def test_key_type_checked_against_profile(scm):
    csr_pem, dummy = make_csr()
    with pytest.raises(ConfigError) as info:
        issuer_for(scm, profile='Legacy RSA SSL').check(request_for(csr_pem))
    assert info.value.option == 'csr' and 'RSA' in info.value.fix


# -- connector: submit, poll, find_orders, revoke --------------------------------------------

def _enroll_route(scm, ssl_id=9003):
    scm.add('POST', r'/api/ssl/v1/enroll', (200, {'sslId': ssl_id, 'renewId': 'r-1'}, {}))


def test_submit_poll_collect(scm, pki):
    csr_pem, dummy = make_csr(org='Example Org')
    cert = pki.sign(csr_pem)
    _enroll_route(scm)
    scm.add('GET', r'/api/ssl/v1/9003', (200, {'sslId': 9003, 'status': 'Applied'}, {}),
            (200, {'sslId': 9003, 'status': 'Issued', 'serialNumber': colon_serial(cert.serial_number)}, {}))
    scm.add('GET', r'/api/ssl/v1/collect/9003', (400, NOT_READY, {}), (200, pem(cert) + pem(pki.inter) + pem(pki.root), {}))
    issuer = issuer_for(scm, comments='web frontends', external_requester=['pki@example.com'])
    request = request_for(csr_pem)
    issuer.check(request)
    order = issuer.submit(request)
    assert order.id == '9003' and not order.issued
    body = json.loads(scm.posts('enroll')[0]['body'])
    assert body['orgId'] == 310 and body['certType'] == 101 and body['term'] == 365
    assert body['subjAltNames'] == 'www.example.com'
    assert body['comments'] == 'web frontends certforge-token:' + 'a' * 32
    assert body['customFields'] == [{'name': 'cost-center', 'value': 'CC-1'}]
    assert body['externalRequester'] == 'pki@example.com'
    assert not issuer.poll(order).issued                # Applied
    order = issuer.poll(order)                          # Issued, collect not ready
    assert not order.issued
    order = issuer.poll(order)
    assert order.issued
    assert order.certificate_pem == pem(cert) and order.chain_pem == [pem(pki.inter)]


def test_multi_domain_enroll_drops_cn_from_sans(scm):
    csr_pem, dummy = make_csr('a.example.com', ['a.example.com', 'b.example.com'])
    _enroll_route(scm)
    issuer = issuer_for(scm, profile='Sectigo DV Multi-Domain SSL')
    issuer.submit(request_for(csr_pem))
    assert json.loads(scm.posts('enroll')[0]['body'])['subjAltNames'] == 'b.example.com'


def test_declined_order_fails_clearly(scm):
    scm.add('GET', r'/api/ssl/v1/77', (200, {'sslId': 77, 'status': 'Declined'}, {}))
    with pytest.raises(Exception) as info:
        issuer_for(scm).poll(Order(issuer='sectigo', id='77'))
    assert 'Declined' in str(info.value)


def test_unknown_ssl_id_names_the_option(scm):
    scm.add('GET', r'/api/ssl/v1/5', (400, {'code': -124, 'description': 'Wrong SSL certificate id'}, {}))
    with pytest.raises(ConfigError) as info:
        issuer_for(scm).get(5)
    assert info.value.option == 'ssl_id'


def test_find_orders_matches_token(scm):
    csr_pem, dummy = make_csr()
    scm.add('GET', r'/api/ssl/v1', (200, [{'sslId': 1}, {'sslId': 2}, {'sslId': 3}], {'X-Total-Count': '3'}))
    scm.add('GET', r'/api/ssl/v1/(\d+)', lambda m, b: (200, {
        'sslId': int(m.group(1)), 'status': 'Applied',
        'comments': 'certforge-token:' + ('b' * 32 if m.group(1) == '2' else 'c' * 32)}, {}))
    found = issuer_for(scm).find_orders(request_for(csr_pem, token='b' * 32))
    assert [o.id for o in found] == ['2']
    assert 'commonName=www.example.com' in scm.log[0]['path']


def test_revoke_by_id_and_serial(scm):
    scm.add('POST', r'/api/ssl/v1/revoke/9', (204, None, {}))
    scm.add('POST', r'/api/ssl/v1/revoke/serial/0A:1B', (204, None, {}))
    scm.add('POST', r'/api/ssl/v1/revoke/10', (400, {'code': -102, 'description': 'only issued'}, {}))
    issuer = issuer_for(scm)
    assert issuer.revoke(Revocation(order_id='9', reason='superseded'))
    assert json.loads(scm.posts('revoke/9')[0]['body']) == {'reasonCode': 4, 'reason': 'Superseded'}
    assert issuer.revoke(Revocation(serial='0a1b', reason='key_compromise'))
    with pytest.raises(ConfigError) as info:
        issuer.revoke(Revocation(order_id='10'))
    assert info.value.option == 'ssl_id'


def test_split_collected_any_order(pki):
    csr_pem, dummy = make_csr()
    cert = pki.sign(csr_pem)
    leaf, chain = split_collected(pem(pki.root) + pem(pki.inter) + pem(cert))
    assert leaf == pem(cert) and chain == [pem(pki.inter)]
    other, dummy = make_csr()
    fp = __import__('hashlib').sha256(x509.load_pem_x509_csr(other.encode()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    assert split_collected(pem(cert), fp) == (None, [])


# -- the issue sequence: a lost enroll answer never leads to a second order ------------------

def test_lost_enroll_answer_recovered_exactly_once(scm, pki, tmp_path):
    csr_pem, dummy = make_csr()
    cert = pki.sign(csr_pem)
    state = {}

    def enroll(m, body):
        state['comments'] = json.loads(body)['comments']
        return 'reset'                               # processed, answer lost
    scm.add('POST', r'/api/ssl/v1/enroll', enroll)
    scm.add('GET', r'/api/ssl/v1', lambda m, b: (200, [{'sslId': 9100, 'commonName': 'www.example.com'}],
                                                 {'X-Total-Count': '1'}) if state else (200, [], {'X-Total-Count': '0'}))
    scm.add('GET', r'/api/ssl/v1/9100', lambda m, b: (200, {'sslId': 9100, 'status': 'Issued',
                                                            'comments': state['comments']}, {}))
    scm.add('GET', r'/api/ssl/v1/collect/9100', (200, pem(cert) + pem(pki.inter), {}))
    registry = Registry([sectigo.PLUGIN])
    store = str(tmp_path / 'orders')
    kwargs = dict(store_path=store, wait_timeout=0, schedule=polling.Schedule.steps([0], jitter=0))
    first = core_issue.issue(registry, issuer_for(scm), request_for(csr_pem, token=None), **kwargs)
    assert first['status'] == 'pending' and first['order_id'] is None
    result = core_issue.issue(registry, issuer_for(scm), request_for(csr_pem, token=None), **kwargs)
    assert result['status'] == 'issued' and result.get('recovered') and result['order_id'] == '9100'
    assert len(scm.posts('enroll')) == 1


def test_pending_then_resumed(scm, pki, tmp_path):
    csr_pem, dummy = make_csr()
    cert = pki.sign(csr_pem)
    _enroll_route(scm, 9200)
    scm.add('GET', r'/api/ssl/v1', (200, [], {'X-Total-Count': '0'}))    # the lookup before the first submit
    scm.add('GET', r'/api/ssl/v1/9200', (200, {'sslId': 9200, 'status': 'Requested'}, {}),
            (200, {'sslId': 9200, 'status': 'Issued'}, {}))
    scm.add('GET', r'/api/ssl/v1/collect/9200', (200, pem(cert) + pem(pki.inter), {}))
    registry = Registry([sectigo.PLUGIN])
    kwargs = dict(store_path=str(tmp_path / 'o'), wait_timeout=0, schedule=polling.Schedule.steps([0], jitter=0))
    first = core_issue.issue(registry, issuer_for(scm), request_for(csr_pem, token=None), **kwargs)
    assert first['status'] == 'pending' and first['order_id'] == '9200' and first['changed']
    second = core_issue.issue(registry, issuer_for(scm), request_for(csr_pem, token=None), **kwargs)
    assert second['status'] == 'issued' and second.get('resumed')
    assert len(scm.posts('enroll')) == 1
