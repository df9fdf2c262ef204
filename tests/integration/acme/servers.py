# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real ACME servers for tests and benchmarks, run by hand on 127.0.0.1.

* ``ChallTestSrv`` -- pebble-challtestsrv as a fake DNS server (every A query answers 127.0.0.1,
  no AAAA) with its management API for TXT / A records.  Its HTTP, HTTPS and TLS-ALPN listeners
  are disabled (``""``): the client under test answers http-01 itself.
* ``Pebble`` -- Debian's pebble 2.4.0 with its own TLS identity (a throw-away CA and a leaf for
  localhost / 127.0.0.1), every listener on 127.0.0.1 and a free port, ``-dnsserver`` pointing
  at a ``ChallTestSrv``.  Knobs: EAB keys, nonce reject rate, random VA sleeps, domain blocklist.
* ``A2C`` -- acme2certifier 0.46.3 from PyPI in its own venv under ``build/`` (ARI
  ``renewalInfo`` and ``meta.profiles``), a profile-to-lifetime CA handler, served by wsgiref
  on 127.0.0.1.  Challenge validation is switched off (it would need ports 80 and 53).

Every server is a child process stopped by PID (``stop()``); every wait polls with a deadline.
No pytest import here: the benchmark uses these classes too.
"""

import base64
import datetime
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.path.join(REPO, 'build')
PEBBLE = shutil.which('pebble') or '/usr/bin/pebble'
CHALLTESTSRV = shutil.which('pebble-challtestsrv') or '/usr/bin/pebble-challtestsrv'
A2C_VERSION = '0.46.3'
A2C_VENV = os.path.join(BUILD, 'acme-venv-a2c')
BLOCKED_NAMES = ['blocked.example.test']      # the default test Pebble refuses these (rejectedIdentifier)


class ServerError(Exception):
    """A test server could not be installed or started."""


def poll(condition, timeout, what, interval=0.02):
    """Call ``condition()`` until it returns something truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ServerError('timed out after %ss waiting for %s' % (timeout, what))
        time.sleep(interval)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def listening(port, host='127.0.0.1'):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pebble_available():
    return os.path.exists(PEBBLE) and os.path.exists(CHALLTESTSRV)


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


class _Process:
    """One child process with its log file; stopped by PID."""

    def __init__(self, argv, log_path, env=None, cwd=None):
        self.argv, self.log_path = list(argv), log_path
        self._log = open(log_path, 'ab')       # pylint: disable=consider-using-with
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,   # pylint: disable=consider-using-with
                                      stderr=subprocess.STDOUT, env=env, cwd=cwd)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def stop(self, timeout=10.0):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self._log.close()

    def log_text(self):
        try:
            with open(self.log_path, 'r', encoding='utf-8', errors='replace') as handle:
                return handle.read()
        except OSError:
            return ''


def _start_listening(make_process, ports, what, timeout=15.0):
    """Start a process (``make_process()``) and poll until every port listens.  The process
    dying first is an error with its log tail."""
    process = make_process()

    def ready():
        if not process.alive():
            return 'dead'
        return all(listening(port) for port in ports)

    try:
        state = poll(ready, timeout, what)
    except ServerError:
        process.stop()
        raise
    if state == 'dead':
        process.stop()
        raise ServerError('%s exited with %s:\n%s' % (what, process.popen.returncode, process.log_text()[-3000:]))
    return process


# ---------------------------------------------------------------------------------------------
# TLS identity
# ---------------------------------------------------------------------------------------------

def make_tls_identity(directory, name='certforge test listener'):
    """A CA and a leaf for localhost / 127.0.0.1 (EC P-256, 30 days).  Returns paths
    ``{'ca': ..., 'cert': ..., 'key': ..., 'chain': cert + ca}``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name + ' CA')])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'localhost')]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName('localhost'), x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = {k: os.path.join(directory, k + '.pem') for k in ('ca', 'ca-key', 'cert', 'key', 'chain')}
    with open(paths['ca'], 'wb') as handle:
        handle.write(ca.public_bytes(pem))
    with open(paths['cert'], 'wb') as handle:
        handle.write(leaf.public_bytes(pem))
    with open(paths['chain'], 'wb') as handle:
        handle.write(leaf.public_bytes(pem) + ca.public_bytes(pem))
    for path, private in ((paths['key'], key), (paths['ca-key'], ca_key)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'wb') as handle:
            handle.write(private.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def _https_get(url, cafile, timeout=5.0):
    context = ssl.create_default_context(cafile=cafile)
    with urllib.request.urlopen(url, context=context, timeout=timeout) as response:   # nosec - test server
        return response.status, response.read()


def _http_post_json(url, payload, timeout=5.0):
    data = json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=timeout) as response:   # nosec - test server
        return response.status, response.read()


# ---------------------------------------------------------------------------------------------
# pebble-challtestsrv
# ---------------------------------------------------------------------------------------------

class ChallTestSrv:
    """Fake DNS for pebble: A -> 127.0.0.1 for every name, no AAAA; TXT records on demand."""

    def __init__(self, root):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.dns_port = None
        self.management_port = None
        self.process = None

    @property
    def dns_address(self):
        return '127.0.0.1:%d' % self.dns_port

    @property
    def management_url(self):
        return 'http://127.0.0.1:%d' % self.management_port

    def start(self):
        last = None
        for dummy in range(3):
            self.dns_port, self.management_port = free_port(), free_port()
            argv = [CHALLTESTSRV, '-dns01', self.dns_address, '-http01', '', '-https01', '',
                    '-tlsalpn01', '', '-management', '127.0.0.1:%d' % self.management_port,
                    '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '']
            log = os.path.join(self.root, 'challtestsrv.log')
            try:
                # the DNS listener is UDP+TCP; the TCP one and management tell readiness
                self.process = _start_listening(lambda argv=argv, log=log: _Process(argv, log),
                                                [self.management_port, self.dns_port],
                                                'pebble-challtestsrv on 127.0.0.1')
                return self
            except ServerError as exc:
                last = exc
        raise last

    def stop(self):
        if self.process is not None:
            self.process.stop()
            self.process = None

    def _post(self, path, payload):
        status, body = _http_post_json(self.management_url + path, payload)
        if status != 200:
            raise ServerError('challtestsrv %s -> %s %s' % (path, status, body))

    @staticmethod
    def _fqdn(name):
        return name if name.endswith('.') else name + '.'

    def set_txt(self, name, value):
        """TXT record ``value`` for ``name`` (e.g. ``_acme-challenge.www.test``)."""
        self._post('/set-txt', {'host': self._fqdn(name), 'value': value})

    def clear_txt(self, name):
        self._post('/clear-txt', {'host': self._fqdn(name)})

    def add_a(self, name, addresses):
        self._post('/add-a', {'host': self._fqdn(name), 'addresses': list(addresses)})

    def clear_a(self, name):
        self._post('/clear-a', {'host': self._fqdn(name)})

    def log_text(self):
        return self.process.log_text() if self.process else ''


# ---------------------------------------------------------------------------------------------
# Pebble
# ---------------------------------------------------------------------------------------------

class Pebble:
    """Pebble on 127.0.0.1 with its own listener CA.

    ``eab``: {kid: base64url HMAC key} -> externalAccountBindingRequired.
    ``nonce_reject``: PEBBLE_WFE_NONCEREJECT (percent of good nonces refused as badNonce).
    ``va_sleep``: False (PEBBLE_VA_NOSLEEP=1) or the maximum random VA sleep in seconds.
    ``blocklist``: names refused with rejectedIdentifier.
    """

    def __init__(self, root, dns, eab=None, nonce_reject=0, va_sleep=False, blocklist=(),
                 authz_reuse=0, extra_env=None):
        self.root = str(root)
        os.makedirs(self.root, exist_ok=True)
        self.dns = dns
        self.eab = dict(eab or {})
        self.nonce_reject = nonce_reject
        self.va_sleep = va_sleep
        self.blocklist = list(blocklist)
        self.authz_reuse = authz_reuse
        self.extra_env = dict(extra_env or {})
        self.tls = make_tls_identity(os.path.join(self.root, 'tls'), 'pebble listener')
        self.port = self.management_port = self.http01_port = self.tls_port = None
        self.process = None
        self.roots_pem = None
        self.roots_path = os.path.join(self.root, 'roots.pem')
        self.config_path = os.path.join(self.root, 'pebble-config.json')
        self.log_path = os.path.join(self.root, 'pebble.log')

    # -- facts ------------------------------------------------------------------------------
    @property
    def directory_url(self):
        return 'https://127.0.0.1:%d/dir' % self.port

    @property
    def ca_bundle(self):
        """The CA of pebble's own HTTPS listener (for ``ca_bundle`` / ``SSL_CERT_FILE``)."""
        return self.tls['ca']

    @property
    def management_url(self):
        return 'https://127.0.0.1:%d' % self.management_port

    def _config(self):
        config = {
            'listenAddress': '127.0.0.1:%d' % self.port,
            'managementListenAddress': '127.0.0.1:%d' % self.management_port,
            'certificate': self.tls['cert'], 'privateKey': self.tls['key'],
            'httpPort': self.http01_port, 'tlsPort': self.tls_port,
            'ocspResponderURL': '',
            'externalAccountBindingRequired': bool(self.eab),
        }
        if self.eab:
            config['externalAccountMACKeys'] = self.eab
        if self.blocklist:
            config['domainBlocklist'] = self.blocklist
        return {'pebble': config}

    def env(self):
        env = dict(os.environ)
        env['PEBBLE_WFE_NONCEREJECT'] = str(self.nonce_reject)
        env['PEBBLE_AUTHZREUSE'] = str(self.authz_reuse)
        env.pop('PEBBLE_VA_NOSLEEP', None)
        env.pop('PEBBLE_VA_SLEEPTIME', None)
        if self.va_sleep:
            env['PEBBLE_VA_SLEEPTIME'] = str(int(self.va_sleep))
        else:
            env['PEBBLE_VA_NOSLEEP'] = '1'
        env.update(self.extra_env)
        return env

    # -- process ----------------------------------------------------------------------------
    def start(self):
        last = None
        for dummy in range(3):
            self.port, self.management_port = free_port(), free_port()
            self.http01_port, self.tls_port = free_port(), free_port()
            with open(self.config_path, 'w') as handle:
                json.dump(self._config(), handle, indent=2)
            argv = [PEBBLE, '-config', self.config_path, '-dnsserver', self.dns.dns_address]
            try:
                self.process = _start_listening(
                    lambda argv=argv: _Process(argv, self.log_path, env=self.env(), cwd=self.root),
                    [self.port, self.management_port], 'pebble on 127.0.0.1:%d' % self.port)
            except ServerError as exc:
                last = exc
                continue
            self.roots_pem = poll(self._fetch_roots, 10, 'pebble /roots/0')
            with open(self.roots_path, 'w') as handle:
                handle.write(self.roots_pem)
            return self
        raise last

    def _fetch_roots(self):
        try:
            status, body = _https_get(self.management_url + '/roots/0', self.ca_bundle)
        except (OSError, urllib.error.URLError):
            return None
        return body.decode() if status == 200 else None

    def stop(self):
        if self.process is not None:
            self.process.stop()
            self.process = None

    # -- management ---------------------------------------------------------------------------
    def intermediate_pem(self):
        return _https_get(self.management_url + '/intermediates/0', self.ca_bundle)[1].decode()

    def cert_status(self, serial):
        """{'Status': 'Valid'|'Revoked', 'Certificate': PEM, ...} for an int or hex serial."""
        if isinstance(serial, int):
            serial = '%x' % serial
        try:
            status, body = _https_get(self.management_url + '/cert-status-by-serial/' + serial.lower(), self.ca_bundle)
        except urllib.error.HTTPError as exc:
            return {'Status': 'NotFound', 'http_status': exc.code}
        return json.loads(body) if status == 200 else {'Status': 'NotFound', 'http_status': status}

    # -- observation ---------------------------------------------------------------------------
    def log_text(self):
        try:
            with open(self.log_path, 'r', encoding='utf-8', errors='replace') as handle:
                return handle.read()
        except OSError:
            return ''

    def log_mark(self):
        """A position in pebble's log; pass it to ``requests_since``."""
        return len(self.log_text())

    def requests_since(self, mark=0):
        """ACME requests pebble handled after ``mark``: ["GET /dir", "POST /order-plz", ...]."""
        out = []
        for line in self.log_text()[mark:].splitlines():
            if line.endswith('-> calling handler()'):
                words = line.split()
                out.append('%s %s' % (words[-5], words[-4]))
        return out

    def count_since(self, mark, text):
        return self.log_text()[mark:].count(text)

    def eab_key(self, kid):
        return self.eab[kid]


def random_eab_key():
    return _b64url(os.urandom(32))


# ---------------------------------------------------------------------------------------------
# acme2certifier
# ---------------------------------------------------------------------------------------------

_A2C_SERVE = '''\
"""Serve acme2certifier's WSGI app on 127.0.0.1 (wsgiref, threaded)."""
import socketserver
import ssl
import sys
from wsgiref.simple_server import WSGIServer, make_server

from acme2certifier.share.acme2certifier_wsgi import application, get_handler_cls

PORT = int(sys.argv[1])
TLS = len(sys.argv) > 3


class Handler(get_handler_cls()):
    def get_environ(self):
        env = super().get_environ()
        if TLS:
            env["HTTPS"] = "on"
        return env

    def log_message(self, format, *args):  # one line per request, for request counting
        sys.stderr.write("A2C-REQUEST %s\\n" % (format % args))
        sys.stderr.flush()


class Server(WSGIServer):
    allow_reuse_address = True


srv = make_server("127.0.0.1", PORT, application, server_class=Server, handler_class=Handler)
if TLS:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
'''

_A2C_HANDLER = '''\
"""openssl_ca_handler with a profile -> lifetime map, so the profile shows in the certificate."""
from acme2certifier.cahandlers.openssl_ca_handler import CAhandler as _OpensslCAhandler
from acme2certifier.acme_srv.helper import config_profile_load, load_config
from acme2certifier.acme_srv.helpers.eab import eab_profile_header_info_check

PROFILE_DAYS = {"classic": 90, "shortlived": 7}


class CAhandler(_OpensslCAhandler):
    def __enter__(self):
        super().__enter__()
        self.profiles = config_profile_load(self.logger, load_config(self.logger, "CAhandler"))
        self.profile_name = None
        return self

    def enroll(self, csr):
        eab_profile_header_info_check(self.logger, self, csr, "profile_name")
        if self.profile_name in PROFILE_DAYS:
            self.cert_validity_days = PROFILE_DAYS[self.profile_name]
        return super().enroll(csr)
'''

A2C_PROFILES = {'classic': 'http://127.0.0.1/profiles#classic',
                'shortlived': 'http://127.0.0.1/profiles#shortlived'}
A2C_PROFILE_DAYS = {'classic': 90, 'shortlived': 7}


def ensure_a2c_venv(python=None, log=None):
    """acme2certifier in build/acme-venv-a2c (installed once, then cached).  Returns its python."""
    marker = os.path.join(A2C_VENV, '.certforge-a2c-%s' % A2C_VERSION)
    venv_python = os.path.join(A2C_VENV, 'bin', 'python')
    if os.path.exists(marker) and os.path.exists(venv_python):
        return venv_python
    shutil.rmtree(A2C_VENV, ignore_errors=True)
    if log:
        log('installing acme2certifier %s into %s' % (A2C_VERSION, A2C_VENV))
    base = python or shutil.which('python3') or sys.executable
    steps = [[base, '-m', 'venv', A2C_VENV],
             [venv_python, '-m', 'pip', 'install', '-q', '--disable-pip-version-check',
              'acme2certifier==%s' % A2C_VERSION]]
    for argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise ServerError('could not install acme2certifier %s (%s): %s'
                              % (A2C_VERSION, ' '.join(argv[-2:]), (proc.stdout + proc.stderr)[-2000:]))
    open(marker, 'w').close()
    return venv_python


class A2C:
    """acme2certifier on 127.0.0.1 with ARI and profiles (``A2C_PROFILES``).

    ``settings``: overrides per config section, e.g. ``{'Renewalinfo': {'renewal_force': 'True'}}``.
    ``reconfigure(...)`` restarts with new settings, keeping CA and database (certificates issued
    before stay known to renewalInfo).
    """

    def __init__(self, root, python, settings=None, eab=None):
        self.root = str(root)
        self.python = python
        self.run_dir = os.path.join(self.root, 'run')
        self.ca_dir = os.path.join(self.root, 'ca')
        for path in (self.run_dir, os.path.join(self.ca_dir, 'certs')):
            os.makedirs(path, exist_ok=True)
        self.settings = settings or {}
        self.eab = dict(eab or {})
        self.port = None
        self.process = None
        self.log_path = os.path.join(self.run_dir, 'a2c.log')
        self.config_path = os.path.join(self.run_dir, 'acme_srv.cfg')
        self._make_ca()
        with open(os.path.join(self.run_dir, 'a2c_serve.py'), 'w') as handle:
            handle.write(_A2C_SERVE)
        with open(os.path.join(self.run_dir, 'profile_ca_handler.py'), 'w') as handle:
            handle.write(_A2C_HANDLER)

    def _make_ca(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        paths = make_tls_identity(os.path.join(self.ca_dir, 'tls'), 'a2c test')
        self.ca_cert = paths['ca']
        self.ca_key = paths['ca-key']
        with open(paths['ca'], 'rb') as handle:
            ca = x509.load_pem_x509_certificate(handle.read())
        with open(paths['ca-key'], 'rb') as handle:
            key = serialization.load_pem_private_key(handle.read(), None)
        now = datetime.datetime.now(datetime.timezone.utc)
        crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
               .last_update(now).next_update(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
        self.ca_crl = os.path.join(self.ca_dir, 'ca-crl.pem')
        with open(self.ca_crl, 'wb') as handle:
            handle.write(crl.public_bytes(serialization.Encoding.PEM))

    @property
    def base_url(self):
        return 'http://127.0.0.1:%d' % self.port

    @property
    def directory_url(self):
        return self.base_url + '/directory'

    def _config_text(self):
        sections = {
            'DEFAULT': {'debug': 'False'},
            'Nonce': {'nonce_check_disable': 'False'},
            'CAhandler': {
                'handler_module': os.path.join(self.run_dir, 'profile_ca_handler.py'),
                'issuing_ca_key': self.ca_key, 'issuing_ca_cert': self.ca_cert,
                'issuing_ca_crl': self.ca_crl, 'cert_save_path': os.path.join(self.ca_dir, 'certs'),
                'ca_cert_chain_list': json.dumps([self.ca_cert]), 'cert_validity_days': '30'},
            'DBhandler': {'handler': 'wsgi', 'dbfile': os.path.join(self.run_dir, 'a2c.db')},
            'Challenge': {'challenge_validation_disable': 'True', 'challenge_validation_timeout': '5'},
            'Order': {'profiles': json.dumps(A2C_PROFILES)},
            'Renewalinfo': {'renewalthreshold_pctg': '66', 'retry_after_timeout': '3600'},
        }
        if self.eab:
            csv = os.path.join(self.run_dir, 'eab.csv')
            with open(csv, 'w') as handle:
                handle.write('eab_kid,eab_mac\n' + ''.join('%s,%s\n' % kv for kv in self.eab.items()))
            sections['EABhandler'] = {'eab_handler_module': 'acme2certifier.eabhandlers.file_handler',
                                      'key_file': csv}
        for section, values in self.settings.items():
            sections.setdefault(section, {}).update(values)
        lines = []
        for section, values in sections.items():
            lines.append('[%s]' % section)
            lines.extend('%s: %s' % kv for kv in values.items())
        return '\n'.join(lines) + '\n'

    def env(self):
        env = dict(os.environ)
        env.pop('PYTHONPATH', None)
        env['ACME_SRV_CONFIGFILE'] = self.config_path
        env['ACME2CERTIFIER_I_KNOW_THE_RISK'] = '1'
        return env

    def start(self):
        with open(self.config_path, 'w') as handle:
            handle.write(self._config_text())
        last = None
        for dummy in range(3):
            self.port = free_port()
            argv = [self.python, os.path.join(self.run_dir, 'a2c_serve.py'), str(self.port)]
            try:
                self.process = _start_listening(
                    lambda argv=argv: _Process(argv, self.log_path, env=self.env(), cwd=self.run_dir),
                    [self.port], 'acme2certifier on 127.0.0.1:%d' % self.port, timeout=30)
            except ServerError as exc:
                last = exc
                continue
            poll(self._directory_ok, 15, 'acme2certifier directory')
            return self
        raise last

    def _directory_ok(self):
        try:
            return self.directory()
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def directory(self):
        with urllib.request.urlopen(self.directory_url, timeout=5) as response:   # nosec - test server
            return json.loads(response.read())

    def stop(self):
        if self.process is not None:
            self.process.stop()
            self.process = None

    def reconfigure(self, settings):
        """Restart with ``settings`` (same CA, same database, new port)."""
        self.stop()
        self.settings = settings
        return self.start()

    def log_text(self):
        try:
            with open(self.log_path, 'r', encoding='utf-8', errors='replace') as handle:
                return handle.read()
        except OSError:
            return ''

    def log_mark(self):
        return len(self.log_text())

    def requests_since(self, mark=0):
        return [line.split('"')[1] for line in self.log_text()[mark:].splitlines()
                if line.startswith('A2C-REQUEST') and '"' in line]

    def renewal_info(self, cert_pem):
        """GET renewalInfo for a PEM certificate: (status, json)."""
        from cryptography import x509
        cert = x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        serial = cert.serial_number.to_bytes((cert.serial_number.bit_length() + 8) // 8, 'big')
        url = self.directory()['renewalInfo'] + '/' + _b64url(aki) + '.' + _b64url(serial)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:   # nosec - test server
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, {}


# ---------------------------------------------------------------------------------------------
# keys, CSRs, certificates
# ---------------------------------------------------------------------------------------------

def write_key(path):
    """An EC P-256 private key (PEM, 0600) at ``path``; returns the path as str."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path), key


def write_csr(directory, stem, names):
    """Key + CSR for ``names`` (first is the CN) under ``directory``; returns {'key', 'csr'} paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID
    os.makedirs(str(directory), exist_ok=True)
    key_path, key = write_key(os.path.join(str(directory), stem + '.key'))
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
           .sign(key, hashes.SHA256()))
    csr_path = os.path.join(str(directory), stem + '.csr')
    with open(csr_path, 'wb') as handle:
        handle.write(csr.public_bytes(serialization.Encoding.PEM))
    return {'key': key_path, 'csr': csr_path, 'cert': os.path.join(str(directory), stem + '.crt')}


def load_cert(path):
    """First certificate in a PEM file."""
    from cryptography import x509
    with open(str(path), 'rb') as handle:
        return x509.load_pem_x509_certificates(handle.read())


def chains_to(cert_path, roots_pem, intermediates_pem=''):
    """True when the leaf in ``cert_path`` verifies against ``roots_pem`` (openssl verify)."""
    import tempfile
    with open(str(cert_path)) as handle:
        certs = handle.read()
    with tempfile.TemporaryDirectory() as tmp:
        files = {'roots': roots_pem, 'untrusted': certs + intermediates_pem,
                 'leaf': certs.split('-----END CERTIFICATE-----')[0] + '-----END CERTIFICATE-----\n'}
        for key, text in files.items():
            with open(os.path.join(tmp, key + '.pem'), 'w') as handle:
                handle.write(text)
        done = subprocess.run(['openssl', 'verify', '-CAfile', os.path.join(tmp, 'roots.pem'),
                               '-untrusted', os.path.join(tmp, 'untrusted.pem'), os.path.join(tmp, 'leaf.pem')],
                              capture_output=True, text=True, check=False)
    return done.returncode == 0
