# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tiny ACME server on 127.0.0.1 for unit tests.

It answers with responses shaped like recorded Pebble/Boulder answers (problem documents
included), checks nonces and JWS signatures' headers, validates http-01 by fetching the token
from the client's listener, signs CSRs with a throw-away CA, and offers an alternate chain.
``inject`` queues problem answers for a path (badNonce, rateLimited with Retry-After, a refused
``replaces``).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import itertools
import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import jws

ERR = 'urn:ietf:params:acme:error:'


def _ca(name, issuer=None, issuer_key=None):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(issuer.subject if issuer else subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(issuer_key or key, hashes.SHA256()))
    return key, cert


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode('ascii')


class FakeAcme:
    def __init__(self, eab_keys=None, ari=False, profiles=None, validity_days=90, refuse_replaces=False):
        self.eab_keys = eab_keys or {}
        self.ari = ari
        self.profiles = profiles
        self.validity_days = validity_days
        self.refuse_replaces = refuse_replaces
        self.root_key, self.root = _ca('Fake Root X1')
        self.alt_root_key, self.alt_root = _ca('Fake Alt Root')
        self.int_key, self.intermediate = _ca('Fake Intermediate', self.root, self.root_key)
        self.nonces = set()
        self.counter = itertools.count(1)
        self.accounts = {}
        self.orders = {}
        self.authzs = {}
        self.challs = {}
        self.certs = {}
        self.revoked = []
        self.log = []
        self.injected = {}
        self.orders_payloads = []
        self.http01_port = None
        self.ari_retry_after = 3600
        self.server = ThreadingHTTPServer(('127.0.0.1', 0), self._handler())
        self.base = 'http://127.0.0.1:%d' % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.05})
        self.thread.daemon = True

    @property
    def directory_url(self):
        return self.base + '/dir'

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def inject(self, path_prefix, status, problem_type, detail, headers=None, times=1):
        self.injected.setdefault(path_prefix, []).extend(
            [(status, {'type': ERR + problem_type, 'detail': detail, 'status': status}, headers or {})] * times)

    # -- protocol ----------------------------------------------------------------------------

    def directory(self):
        d = {'newNonce': self.base + '/nonce', 'newAccount': self.base + '/new-acct',
             'newOrder': self.base + '/new-order', 'revokeCert': self.base + '/revoke',
             'keyChange': self.base + '/key-change',
             'meta': {'termsOfService': self.base + '/tos', 'externalAccountRequired': bool(self.eab_keys)}}
        if self.ari:
            d['renewalInfo'] = self.base + '/ari'
        if self.profiles:
            d['meta']['profiles'] = self.profiles
        return d

    def nonce(self):
        value = 'n%d' % next(self.counter)
        self.nonces.add(value)
        return value

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return None

            def _send(self, status, body=None, headers=None, content_type='application/json'):
                data = b'' if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                self.send_response(status)
                self.send_header('Replay-Nonce', fake.nonce())
                if body is not None:
                    self.send_header('Content-Type', 'application/problem+json'
                                     if status >= 400 else content_type)
                for name, value in (headers or {}).items():
                    for item in value if isinstance(value, list) else [value]:
                        self.send_header(name, item)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_HEAD(self):  # noqa: N802
                fake.log.append(('HEAD', self.path))
                self._send(200)

            def do_GET(self):  # noqa: N802
                fake.log.append(('GET', self.path))
                if self.path == '/dir':
                    return self._send(200, fake.directory())
                if self.path.startswith('/ari/'):
                    return self._send(*fake.ari_answer(self.path[5:]))
                return self._send(404, {'type': ERR + 'malformed', 'detail': 'not found'})

            def do_POST(self):  # noqa: N802
                fake.log.append(('POST', self.path))
                body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
                header = json.loads(jws.b64u_decode(body['protected']))
                payload = json.loads(jws.b64u_decode(body['payload'])) if body['payload'] else None
                if header.get('nonce') not in fake.nonces:
                    return self._send(400, {'type': ERR + 'badNonce', 'detail': 'JWS has an invalid anti-replay nonce'})
                fake.nonces.discard(header['nonce'])
                for prefix, queue in fake.injected.items():
                    if self.path.startswith(prefix) and queue:
                        status, problem, headers = queue.pop(0)
                        return self._send(status, problem, headers)
                return self._send(*fake.route(self.path, header, payload, body))

        return Handler

    def route(self, path, header, payload, body):
        if path == '/new-acct':
            return self.new_account(header, payload)
        if path == '/new-order':
            return self.new_order(payload)
        if path.startswith('/order/'):
            return 200, self.orders[path], {}
        if path.startswith('/authz/'):
            return 200, self.authzs[path], {}
        if path.startswith('/chall/'):
            return self.challenge(path)
        if path.startswith('/finalize/'):
            return self.finalize(path.replace('/finalize/', '/order/'), payload)
        if path.startswith('/cert/'):
            return self.download(path)
        if path == '/revoke':
            self.revoked.append(payload)
            return 200, None, {}
        if path.startswith('/acct/'):
            return 200, self.accounts.get(path, {}), {}
        if path == '/key-change':
            return 200, {}, {}
        return 404, {'type': ERR + 'malformed', 'detail': 'no such resource'}, {}

    def new_account(self, header, payload):
        thumb = jws.jwk_thumbprint(header['jwk'])
        url = '/acct/' + thumb[:8]
        if url in self.accounts:
            return 200, self.accounts[url], {'Location': self.base + url}
        if payload.get('onlyReturnExisting'):
            return 400, {'type': ERR + 'accountDoesNotExist', 'detail': 'unable to find existing account'}, {}
        if self.eab_keys:
            eab = payload.get('externalAccountBinding')
            if not eab:
                return 400, {'type': ERR + 'externalAccountRequired',
                             'detail': 'no externalAccountBinding was provided'}, {}
            eab_header = json.loads(jws.b64u_decode(eab['protected']))
            key = self.eab_keys.get(eab_header.get('kid'))
            mac = jws.b64u(hmac.new(jws.b64u_decode(key or 'AA'), jws.signing_input(eab['protected'], eab['payload']),
                                    hashlib.sha256).digest())
            if key is None or mac != eab['signature']:
                return 400, {'type': ERR + 'unauthorized',
                             'detail': 'External Account Binding JWS signature is invalid'}, {}
        self.accounts[url] = {'status': 'valid', 'contact': payload.get('contact', [])}
        return 201, self.accounts[url], {'Location': self.base + url}

    def new_order(self, payload):
        self.orders_payloads.append(payload)
        if payload.get('replaces') and self.refuse_replaces:
            return 409, {'type': ERR + 'alreadyReplaced', 'detail': 'certificate has already been replaced'}, {}
        n = next(self.counter)
        authz_urls = []
        for ident in payload['identifiers']:
            a = next(self.counter)
            wildcard = ident['value'].startswith('*.')
            value = ident['value'][2:] if wildcard else ident['value']
            chall_urls = {}
            for kind in ('http-01', 'dns-01'):
                c = next(self.counter)
                chall_urls[kind] = '/chall/%d' % c
                self.challs['/chall/%d' % c] = {'type': kind, 'url': self.base + '/chall/%d' % c,
                                                'token': 'tok%d' % c, 'status': 'pending', 'authz': '/authz/%d' % a}
            self.authzs['/authz/%d' % a] = {'status': 'pending', 'identifier': {'type': 'dns', 'value': value},
                                            'wildcard': wildcard,
                                            'challenges': [self.challs[u] for u in chall_urls.values()]}
            if wildcard:
                self.authzs['/authz/%d' % a]['challenges'] = [self.challs[chall_urls['dns-01']]]
            authz_urls.append(self.base + '/authz/%d' % a)
        order = {'status': 'pending', 'identifiers': payload['identifiers'], 'authorizations': authz_urls,
                 'finalize': self.base + '/finalize/%d' % n}
        self.orders['/order/%d' % n] = order
        return 201, order, {'Location': self.base + '/order/%d' % n}

    def challenge(self, path):
        chall = self.challs[path]
        authz = self.authzs[chall['authz']]
        ok, error = True, None
        if chall['type'] == 'http-01':
            try:
                with urllib.request.urlopen('http://127.0.0.1:%s/.well-known/acme-challenge/%s'
                                            % (self.http01_port, chall['token']), timeout=2) as answer:
                    ok = answer.read().decode().startswith(chall['token'] + '.')
            except OSError as exc:
                ok, error = False, str(exc)
        if ok:
            chall['status'] = 'valid'
            authz['status'] = 'valid'
        else:
            chall['status'] = 'invalid'
            chall['error'] = {'type': ERR + 'connection',
                              'detail': '127.0.0.1: Fetching http://%s/.well-known/acme-challenge/%s: '
                                        'Connection refused (%s)' % (authz['identifier']['value'], chall['token'], error)}
            authz['status'] = 'invalid'
        for order in self.orders.values():
            states = [self.authzs[u[len(self.base):]]['status'] for u in order['authorizations']]
            if order['status'] == 'pending':
                if 'invalid' in states:
                    order['status'] = 'invalid'
                elif all(s == 'valid' for s in states):
                    order['status'] = 'ready'
        return 200, {k: v for k, v in chall.items() if k != 'authz'}, {}

    def finalize(self, order_path, payload):
        order = self.orders[order_path]
        if order['status'] != 'ready':
            return 403, {'type': ERR + 'orderNotReady', 'detail': 'order is %s' % order['status']}, {}
        csr = x509.load_der_x509_csr(jws.b64u_decode(payload['csr']))
        now = datetime.datetime.now(datetime.timezone.utc)
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.intermediate.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(days=self.validity_days))
                .add_extension(san, critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.int_key.public_key()),
                               critical=False)
                .sign(self.int_key, hashes.SHA256()))
        n = order_path.split('/')[-1]
        self.certs['/cert/%s' % n] = cert
        order['status'] = 'valid'
        order['certificate'] = self.base + '/cert/%s' % n
        return 200, order, {'Location': self.base + order_path}

    def download(self, path):
        if path.endswith('/alt'):
            cert = self.certs[path[:-4]]
            cross = (x509.CertificateBuilder().subject_name(self.intermediate.subject)
                     .issuer_name(self.alt_root.subject).public_key(self.int_key.public_key())
                     .serial_number(1).not_valid_before(self.intermediate.not_valid_before_utc)
                     .not_valid_after(self.intermediate.not_valid_after_utc)
                     .sign(self.alt_root_key, hashes.SHA256()))
            return 200, (pem(cert) + pem(cross)).encode(), {}
        cert = self.certs[path]
        return (200, (pem(cert) + pem(self.intermediate)).encode(),
                {'Link': '<%s/alt>;rel="alternate"' % (self.base + path), 'Content-Type': 'x'})

    def ari_answer(self, cert_id):
        start = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=40)
        end = start + datetime.timedelta(days=2)
        return 200, {'suggestedWindow': {'start': start.strftime('%Y-%m-%dT%H:%M:%SZ'),
                                         'end': end.strftime('%Y-%m-%dT%H:%M:%SZ')}}, \
            {'Retry-After': str(self.ari_retry_after)}
