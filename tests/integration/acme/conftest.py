# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the ACME integration tests: real Pebble and real acme2certifier on 127.0.0.1.

    acme_dns            session  pebble-challtestsrv: fake DNS (A -> 127.0.0.1, no AAAA), TXT helpers
    pebble              session  Pebble, no VA sleeps, no nonce rejects, blocklist BLOCKED_NAMES
    pebble_eab          module   Pebble that requires EAB; ``.eab_kid`` / ``.eab_hmac``
    pebble_nonce_storm  module   Pebble rejecting NONCE_STORM_PERCENT % of good nonces
    pebble_slow         module   Pebble with random VA sleeps (0..SLOW_VA_SECONDS-1 s each)
    make_pebble         function factory: make_pebble(eab=..., nonce_reject=..., va_sleep=..., blocklist=...)
    a2c                 session  acme2certifier 0.46.3 (ARI + profiles), venv under build/
    dns_hook            function argv of a hook script that sets/clears TXT records in acme_dns
    acme_vars           function common module options for a Pebble: acme_vars(pebble) -> dict
    webroot_nginx       function factory: a real nginx serving a webroot on a pebble's http01 port

A Pebble object (see servers.py) offers: ``directory_url``, ``ca_bundle`` (its listener CA),
``roots_pem`` / ``roots_path`` (fetched from /roots/0 after start), ``http01_port``,
``cert_status(serial)``, ``log_mark()`` / ``requests_since(mark)``, ``management_url``.
Every server is stopped by PID in a finalizer, also when a test fails.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


servers = _load('certforge_acme_servers', HERE / 'servers.py')
nginx_server = sys.modules.get('certforge_integration_nginx_server') or _load(
    'certforge_integration_nginx_server', HERE.parent / 'nginx_server.py')

BLOCKED_NAMES = servers.BLOCKED_NAMES
NONCE_STORM_PERCENT = 25
SLOW_VA_SECONDS = 4
EAB_KID = 'kid-1'


def _need_pebble():
    if not servers.pebble_available():
        pytest.skip('pebble and pebble-challtestsrv are not installed (make deps installs them)')


def _stopper(request, server):
    request.addfinalizer(server.stop)
    return server


@pytest.fixture(scope='session')
def acme_dns(tmp_path_factory, request):
    _need_pebble()
    dns = servers.ChallTestSrv(tmp_path_factory.mktemp('challtestsrv'))
    _stopper(request, dns)
    return dns.start()


def _pebble(tmp_path_factory, request, acme_dns, **kwargs):
    _need_pebble()
    server = servers.Pebble(tmp_path_factory.mktemp('pebble'), acme_dns, **kwargs)
    _stopper(request, server)
    return server.start()


@pytest.fixture(scope='session')
def pebble(tmp_path_factory, request, acme_dns):
    return _pebble(tmp_path_factory, request, acme_dns, blocklist=BLOCKED_NAMES)


@pytest.fixture(scope='module')
def pebble_eab(tmp_path_factory, request, acme_dns):
    hmac = servers.random_eab_key()
    server = _pebble(tmp_path_factory, request, acme_dns, eab={EAB_KID: hmac})
    server.eab_kid, server.eab_hmac = EAB_KID, hmac
    return server


@pytest.fixture(scope='module')
def pebble_nonce_storm(tmp_path_factory, request, acme_dns):
    return _pebble(tmp_path_factory, request, acme_dns, nonce_reject=NONCE_STORM_PERCENT)


@pytest.fixture(scope='module')
def pebble_slow(tmp_path_factory, request, acme_dns):
    return _pebble(tmp_path_factory, request, acme_dns, va_sleep=SLOW_VA_SECONDS)


@pytest.fixture
def make_pebble(tmp_path_factory, request, acme_dns):
    def factory(**kwargs):
        return _pebble(tmp_path_factory, request, acme_dns, **kwargs)
    return factory


@pytest.fixture(scope='session')
def a2c_python():
    """acme2certifier's venv (build/acme-venv-a2c), installed on first use and cached."""
    try:
        return servers.ensure_a2c_venv()
    except servers.ServerError as exc:
        if os.environ.get('CI'):
            raise
        pytest.skip('acme2certifier cannot be installed here: %s' % exc)
    return None


@pytest.fixture(scope='session')
def a2c(tmp_path_factory, request, a2c_python):
    server = servers.A2C(tmp_path_factory.mktemp('a2c'), a2c_python)
    _stopper(request, server)
    return server.start()


@pytest.fixture
def dns_hook(tmp_path, acme_dns):
    """{'add': argv, 'remove': argv}: a python script that sets / clears the TXT record named in
    CERTFORGE_ACME_RECORD_NAME with every value in CERTFORGE_ACME_VALUES (wildcard + apex share
    a name) through challtestsrv's management API, and logs each call."""
    script = tmp_path / 'dns_hook.py'
    log = tmp_path / 'dns_hook.log'
    script.write_text(DNS_HOOK % {'url': acme_dns.management_url, 'log': str(log)})
    argv = [sys.executable, str(script)]
    return {'add': argv + ['add'], 'remove': argv + ['remove'], 'log': log}


DNS_HOOK = '''\
import json
import os
import sys
import urllib.request

URL = %(url)r
action = sys.argv[1]
name = os.environ["CERTFORGE_ACME_RECORD_NAME"].rstrip(".") + "."
values = [v for v in os.environ.get("CERTFORGE_ACME_VALUES", "").split("\\n") if v]
value = os.environ.get("CERTFORGE_ACME_VALUE", "")


def post(path, payload):
    request = urllib.request.Request(URL + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


post("/clear-txt", {"host": name})
if action == "add":
    for each in values or [value]:
        post("/set-txt", {"host": name, "value": each})
with open(%(log)r, "a") as handle:
    handle.write("%%s %%s %%s\\n" %% (action, name, value))
'''


@pytest.fixture
def acme_vars(tmp_path):
    """Module options every Pebble test passes: directory, CA bundle, a fresh account key path."""
    def build(server, **extra):
        values = {'directory_url': server.directory_url, 'ca_bundle': server.ca_bundle,
                  'account_key_path': str(tmp_path / 'account.key'), 'terms_agreed': True}
        values.update(extra)
        return values
    return build


class WebrootNginx(nginx_server.NginxServer):
    """nginx with a plain HTTP server on ``http_port`` serving ``webroot`` (http-01 webroot),
    plus any TLS sites added with ``add_site``."""

    def __init__(self, root, http_port, webroot):
        super().__init__(root)
        self.http_port = http_port
        self.webroot = str(webroot)
        os.makedirs(os.path.join(self.webroot, '.well-known', 'acme-challenge'), exist_ok=True)

    def write_config(self):
        http = ('    server {\n        listen 127.0.0.1:%d;\n        root %s;\n'
                '        location /.well-known/acme-challenge/ { default_type text/plain; }\n    }\n'
                % (self.http_port, self.webroot))
        sites = ''.join(
            nginx_server._SERVER.format(port=self.port, name=name, cert=paths['cert'], key=paths['key'],   # pylint: disable=protected-access
                                        default=' default_server' if index == 0 else '')
            for index, (name, paths) in enumerate(self.sites.items()))
        # workers read the webroot under a private temporary directory
        user = 'user root;\n' if os.geteuid() == 0 else ''
        with open(self.conf, 'w') as handle:
            handle.write(user + nginx_server._CONFIG.format(root=self.root, servers=http + sites))   # pylint: disable=protected-access


@pytest.fixture
def webroot_nginx(tmp_path_factory, request):
    """Factory ``webroot_nginx(pebble, sites={name: Issued})``: nginx serving a webroot on the
    pebble's http01 port (and TLS sites, if given).  Stopped by PID at teardown."""
    if nginx_server.NGINX is None:
        pytest.skip('nginx is not installed')
    started = []
    request.addfinalizer(lambda: [server.stop() for server in started])

    def factory(pebble_server, sites=None):
        root = tmp_path_factory.mktemp('nginx-webroot')
        server = WebrootNginx(root, pebble_server.http01_port, root / 'webroot')
        for name, issued in (sites or {}).items():
            server.add_site(name, issued.cert_pem, issued.key_pem)
        if not server.sites:
            server.add_site('placeholder.test', *_self_signed())
        started.append(server)
        server.start()
        servers.poll(lambda: servers.listening(pebble_server.http01_port), 10, 'nginx http-01 listener')
        return server
    return factory


def _self_signed():
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'placeholder.test')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


# ---------------------------------------------------------------------------------------------
# module tasks
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def acme(tmp_path, acme_vars, run_playbook):
    """``acme.task(server, names, **options)`` -> one acme_certificate task; ``acme.run(tasks)``
    runs them in one play with this test's order store.  Keys and CSRs are made in Python."""
    return AcmeHelper(tmp_path, acme_vars, run_playbook)


class AcmeHelper:
    MODULE = 'certforge.pki.acme_certificate'

    def __init__(self, tmp_path, acme_vars, run_playbook):
        self.tmp = tmp_path
        self.vars = acme_vars
        self.run_playbook = run_playbook
        self.order_store = str(tmp_path / 'orders')
        self.account_key = str(tmp_path / 'account.key')
        if not os.path.exists(self.account_key):
            servers.write_key(self.account_key)
        self.files = {}

    def options(self, server, **extra):
        """Connection options of every acme_* module for ``server`` (plus ``extra``)."""
        values = {'acme_directory': server.directory_url, 'account_key_path': self.account_key,
                  'order_store': self.order_store}
        ca_bundle = getattr(server, 'ca_bundle', None)
        if ca_bundle and server.directory_url.startswith('https'):
            values['acme_ca_bundle'] = ca_bundle
        values.update(extra)
        return values

    def task(self, server, names, name=None, stem=None, **extra):
        stem = stem or names[0].replace('*', 'star')
        paths = self.files.get(stem) or servers.write_csr(self.tmp / 'certs', stem, names)
        self.files[stem] = paths
        options = self.options(server, name=stem, csr_path=paths['csr'], certificate_path=paths['cert'],
                               terms_agreed=True, **extra)
        if 'http01_listen_port' not in options and options.get('challenge', 'http-01') == 'http-01' \
                and 'http01_webroot' not in options and hasattr(server, 'http01_port'):
            options['http01_listen_port'] = server.http01_port
        return {'name': name or stem, self.MODULE: options}

    def run(self, tasks, **kwargs):
        play = {'name': 'acme', 'hosts': 'localhost', 'gather_facts': False,
                'tasks': tasks if isinstance(tasks, list) else [tasks]}
        return self.run_playbook([play], **kwargs)
