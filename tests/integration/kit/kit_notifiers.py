"""Kit setups of the built-in notifiers: an HTTP receiver on 127.0.0.1 that answers like the
service (or 500 on /fail/), and for email an SMTP server (aiosmtpd) that requires STARTTLS with a
certificate for 127.0.0.1 from a throw-away root."""

import datetime
import ipaddress
import os
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOTIFIERS = ('webhook', 'slack', 'teams', 'pagerduty', 'opsgenie', 'email')
SECRET = {'webhook': 'kit-hook-TOKEN-1', 'slack': 'kit-slack-TOKEN-2', 'teams': 'kit-teams-SIG-3',
          'pagerduty': 'kit-routing-KEY-4', 'opsgenie': 'kit-genie-KEY-5', 'email': 'kit-smtp-PASS-6'}
FAST = {'retries': 1, 'retry_delay': 0.01, 'retry_max_delay': 0.1, 'timeout': 5.0}


class _Receiver:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get('Content-Length') or 0))
                status = 500 if self.path.startswith('/fail/') else 202
                if status == 202:
                    with owner.lock:
                        owner.count += 1
                self.send_response(status)
                self.send_header('Content-Length', '0')
                self.end_headers()

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.server.server_address[1], path)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _tls_files(workdir):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder().subject_name(name('kit root')).issuer_name(name('kit root'))
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name('kit smtp')).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                           critical=False)
            .sign(root_key, hashes.SHA256()))
    paths = [os.path.join(workdir, n) for n in ('smtp-root.pem', 'smtp-cert.pem', 'smtp-key.pem')]
    with open(paths[0], 'wb') as f:
        f.write(root.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], 'wb') as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], 'wb') as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return paths


def _free_port():
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def _email(workdir):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
    root, cert, key = _tls_files(workdir)
    got = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            got.append(envelope.rcpt_tos)
            return '250 OK'

    def authenticator(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=auth_data.password == SECRET['email'].encode())

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    port = _free_port()
    controller = Controller(Handler(), hostname='127.0.0.1', port=port, tls_context=tls, require_starttls=True,
                            authenticator=authenticator, auth_require_tls=True)
    controller.start()
    base = dict(FAST, host='127.0.0.1', port=port, ca_path=root, username='kit', password=SECRET['email'],
                from_address='kit@example.test', to=['ops@example.test'])
    return {'options': base, 'received': lambda: len(got), 'secrets': [SECRET['email']],
            'failing_options': dict(base, port=_free_port(), retries=0),
            'cleanup': controller.stop}


def kit_setup(kind, name, workdir):
    if kind != 'notifier' or name not in NOTIFIERS:
        return None
    if name == 'email':
        return _email(workdir)
    rcv = _Receiver()
    token = SECRET[name]
    if name == 'pagerduty':
        options = dict(FAST, routing_key=token, url=rcv.url('/v2/enqueue'))
        failing = dict(options, url=rcv.url('/fail/v2/enqueue'))
    elif name == 'opsgenie':
        options = dict(FAST, api_key=token, url=rcv.url('/og'))
        failing = dict(options, url=rcv.url('/fail/og'))
    else:
        options = dict(FAST, url=rcv.url('/hooks/%s' % token))
        failing = dict(options, url=rcv.url('/fail/%s' % token))
        if name == 'webhook':
            options['secret'] = failing['secret'] = token + '-hmac'
    secrets = [token] + ([token + '-hmac'] if name == 'webhook' else [])
    return {'options': options, 'failing_options': failing, 'received': lambda: rcv.count, 'secrets': secrets,
            'cleanup': rcv.stop}
