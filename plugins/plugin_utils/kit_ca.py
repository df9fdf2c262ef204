# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tiny asynchronous test CA for the conformance kit (127.0.0.1 only, test use only).

JSON over HTTP:

    POST /orders   {"csr": PEM, "name": str, "token": str, "replaces": serial|null}
                   -> 201 {"id", "status": "pending"}; a CSR whose common name starts with
                      "reject" -> 403 {"error"}; while ``unavailable`` is set -> 503 + Retry-After
    GET  /orders/<id>          -> {"id", "status", "certificate", "chain", "error"}; pending until
                                  ``delay`` seconds passed, then issued; CN "fail..." -> failed
    GET  /orders?token=<t>     -> [{"id", "status"}, ...]
    POST /revoke   {"serial"}  -> 200 {"revoked": true}
    GET  /chain                -> {"chain": PEM}

Every order is recorded (``orders``), so a test can count how many a run placed.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class KitCA:
    def __init__(self, delay=2.0, host='127.0.0.1', validity_days=90):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        self._x509, self._hashes, self._oid = x509, hashes, NameOID
        self.delay = delay
        self.validity_days = validity_days      # of the leaves: beyond the usual 30-day renewal window
        self.host = host
        self.orders = {}
        self.revoked = []
        self.unavailable = False
        self.lock = threading.Lock()
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'certforge kit CA')])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.chain_pem = self._pem(self.cert)
        self.server = None

    @staticmethod
    def _pem(cert):
        from cryptography.hazmat.primitives import serialization
        return cert.public_bytes(serialization.Encoding.PEM).decode('ascii')

    @property
    def url(self):
        return 'http://%s:%d' % (self.host, self.server.server_address[1])

    def count(self, name=None):
        with self.lock:
            return len([o for o in self.orders.values() if name is None or o['name'] == name])

    def start(self):
        self.server = ThreadingHTTPServer((self.host, 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _cn(self, csr):
        attrs = csr.subject.get_attributes_for_oid(self._oid.COMMON_NAME)
        return attrs[0].value if attrs else ''

    def _sign(self, order):
        x509 = self._x509
        csr = x509.load_pem_x509_csr(order['csr'].encode('ascii'))
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.cert.subject)
                   .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=1))
                   .not_valid_after(now + datetime.timedelta(days=self.validity_days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            builder = builder.add_extension(san.value, critical=False)
        except x509.ExtensionNotFound:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(self._cn(csr))]),
                                            critical=False)
        return self._pem(builder.sign(self.key, self._hashes.SHA256()))

    def _view(self, order):
        with self.lock:
            if order['status'] == 'pending' and time.monotonic() - order['created'] >= self.delay:
                if order['cn'].startswith('fail'):
                    order['status'], order['error'] = 'failed', 'the CA declined the order (test rule: CN fail*)'
                else:
                    order['certificate'] = self._sign(order)
                    order['status'] = 'issued'
            return {'id': order['id'], 'status': order['status'], 'certificate': order.get('certificate'),
                    'chain': self.chain_pem if order.get('certificate') else None, 'error': order.get('error')}

    def _handler(self):
        ca = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body, headers=None):
                data = json.dumps(body).encode('utf-8')
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                length = int(self.headers.get('Content-Length') or 0)
                return json.loads(self.rfile.read(length) or b'{}')

            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                if ca.unavailable:
                    return self._send(503, {'error': 'maintenance'}, {'Retry-After': '2'})
                if url.path == '/chain':
                    return self._send(200, {'chain': ca.chain_pem})
                if url.path == '/orders':
                    token = (parse_qs(url.query).get('token') or [''])[0]
                    found = [ca._view(o) for o in list(ca.orders.values()) if o['token'] == token]
                    return self._send(200, found)
                if url.path.startswith('/orders/'):
                    order = ca.orders.get(url.path.rsplit('/', 1)[-1])
                    if order is None:
                        return self._send(404, {'error': 'no such order'})
                    return self._send(200, ca._view(order))
                return self._send(404, {'error': 'not found'})

            def do_POST(self):  # noqa: N802
                url = urlparse(self.path)
                if ca.unavailable:
                    return self._send(503, {'error': 'maintenance'}, {'Retry-After': '2'})
                body = self._body()
                if url.path == '/orders':
                    csr = ca._x509.load_pem_x509_csr(body['csr'].encode('ascii'))
                    cn = ca._cn(csr)
                    if cn.startswith('reject'):
                        return self._send(403, {'error': 'policy forbids %s' % cn})
                    order = {'id': uuid.uuid4().hex[:12], 'status': 'pending', 'csr': body['csr'], 'cn': cn,
                             'name': body.get('name'), 'token': body.get('token'), 'created': time.monotonic(),
                             'replaces': body.get('replaces')}
                    with ca.lock:
                        ca.orders[order['id']] = order
                    return self._send(201, {'id': order['id'], 'status': 'pending'})
                if url.path == '/revoke':
                    ca.revoked.append(body.get('serial'))
                    return self._send(200, {'revoked': True})
                return self._send(404, {'error': 'not found'})

        return Handler
