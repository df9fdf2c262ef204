"""Kit setups (``kit_setup(kind, name, workdir)``) for the built-in connectors and the two
throw-away packages the tests build.  Imported by the conformance kit, also in its child
processes (which find the same CA through the environment)."""

import functools
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ansible_collections.certforge.pki.plugins.module_utils.issuers import local_ca
from ansible_collections.certforge.pki.plugins.module_utils.sdk import hookimpl

HERE = Path(__file__).resolve().parent
KIT_CA_ENV = 'CERTFORGE_KIT_CA_URL'
_STARTED = {}


def _local_ca(workdir):
    path = os.path.join(workdir, 'local-ca')
    local_ca.ensure_ca({'path': path, 'type': 'root', 'common_name': 'kit local CA', 'key_type': 'ecdsa',
                        'key_curve': 'secp256r1', 'validity_days': 30})
    passphrase = None

    def count(name):
        return len(local_ca.LocalCA(path).find(name=name))
    return {'options': {'ca_path': path, 'allowed_domains': ['kit.test']}, 'count_orders': count,
            'secrets': [s for s in (passphrase,) if s], 'reject_common_name': 'reject.example.org',
            'not_applicable': {
                'failed_order_ends_the_run': 'the local CA signs at once or refuses; no order fails later',
                'transient_error_carries_retry_after': 'the local CA is a directory, never unreachable'}}


def _toy_ca(workdir):
    url = os.environ.get(KIT_CA_ENV)
    ca = None
    if not url:
        from ansible_collections.certforge.pki.plugins.plugin_utils.kit_ca import KitCA
        ca = KitCA(delay=1.5).start()
        url = ca.url
        os.environ[KIT_CA_ENV] = url
        _STARTED['ca'] = ca

    def cleanup():
        if ca is not None:
            ca.stop()
            os.environ.pop(KIT_CA_ENV, None)
    return {'options': {'url': url, 'api_key': 'kit-secret-api-key-5f1c'}, 'secrets': ['kit-secret-api-key-5f1c'],
            'count_orders': ca.count if ca is not None else None,
            'reject_common_name': 'reject.kit.test', 'fail_common_name': 'fail.kit.test',
            'unreachable_options': {'url': 'http://127.0.0.1:9', 'timeout': 2}, 'cleanup': cleanup}


def _shared(env, start):
    """Connection facts of a server shared with the kit's child processes: from ``env`` (JSON)
    when a parent started it, else ``start()`` -> (facts, stop) here, published in ``env``."""
    text = os.environ.get(env)
    if text:
        return json.loads(text), None
    facts, stop = start()
    os.environ[env] = json.dumps(facts)

    def cleanup():
        os.environ.pop(env, None)
        stop()
    return facts, cleanup


def _load_sibling(name, path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, str(path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# -- acme: a real Pebble (with pebble-challtestsrv as its DNS) on 127.0.0.1 --------------------

ACME_ENV = 'CERTFORGE_KIT_ACME'
ACME_BLOCKED = 'blocked.example.test'


class _Maintenance(BaseHTTPRequestHandler):
    """A CA endpoint under maintenance: every request gets 503 with Retry-After: 1."""

    def _answer(self):
        body = b'{"type": "urn:ietf:params:acme:error:serverInternal", "detail": "maintenance"}'
        self.send_response(503)
        self.send_header('Retry-After', '1')
        self.send_header('Content-Type', 'application/problem+json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_POST = _answer  # noqa: N815

    def log_message(self, *args):
        pass


def _serve(server):
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _start_pebble():
    """Pebble with its DNS, a web server for the http-01 web root on Pebble's http-01 port (it
    outlives the kit's killed child processes, as a real web server would) and a maintenance
    endpoint; all on 127.0.0.1."""
    servers = _load_sibling('certforge_acme_servers', HERE.parent / 'acme' / 'servers.py')
    if not servers.pebble_available():
        raise LookupError('pebble and pebble-challtestsrv are not installed (make deps installs them)')
    root = tempfile.mkdtemp(prefix='certforge-kit-pebble-')
    webroot = os.path.join(root, 'webroot')
    os.makedirs(os.path.join(webroot, '.well-known', 'acme-challenge'))
    dns = servers.ChallTestSrv(os.path.join(root, 'dns')).start()
    started = [dns]

    def stop():
        for server in reversed(started):
            if isinstance(server, ThreadingHTTPServer):
                server.shutdown()
                server.server_close()
            else:
                server.stop()
        shutil.rmtree(root, ignore_errors=True)
    try:
        pebble = servers.Pebble(os.path.join(root, 'pebble'), dns, blocklist=[ACME_BLOCKED]).start()
        started.append(pebble)
        handler = functools.partial(SimpleHTTPRequestHandler, directory=webroot)
        handler.log_message = lambda *args: None
        started.append(_serve(ThreadingHTTPServer(('127.0.0.1', pebble.http01_port), handler)))
        maintenance = _serve(ThreadingHTTPServer(('127.0.0.1', 0), _Maintenance))
        started.append(maintenance)
    except Exception:
        stop()
        raise
    account_key = servers.write_key(os.path.join(root, 'account.key'))[0]
    facts = {'directory': pebble.directory_url, 'ca_bundle': pebble.ca_bundle, 'webroot': webroot,
             'account_key': account_key, 'store': os.path.join(root, 'store'),
             'maintenance': 'http://127.0.0.1:%d/dir' % maintenance.server_address[1]}
    return facts, stop


def _acme(workdir):
    facts, cleanup = _shared(ACME_ENV, _start_pebble)
    options = {'acme_directory': facts['directory'], 'acme_ca_bundle': facts['ca_bundle'],
               'account_key_path': facts['account_key'], 'terms_agreed': True,
               'http01_webroot': facts['webroot'], 'order_store': facts['store']}

    def count(name):
        """Orders in the account's orders list (RFC 8555 7.1.2.1) for the name's identifier."""
        from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme.client import parse_links
        from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme.connector import AcmeIssuer
        client = AcmeIssuer(dict(options)).client()
        account, dummy = client.get(client.kid)
        url, total = account.get('orders'), 0
        wanted = [{'type': 'dns', 'value': '%s.kit.test' % name}]
        while url:
            data, response = client.get(url)
            for order_url in data.get('orders') or []:
                order, dummy = client.get(order_url)
                total += order.get('identifiers') == wanted
            url = (parse_links(response).get('next') or [None])[0]
        return total

    # a failing order: http-01 answers placed in a directory the web server does not serve
    # (the CA gets 404, the authorization and the order become invalid)
    unserved = os.path.join(workdir, 'unserved-webroot')
    os.makedirs(unserved, exist_ok=True)
    return {'options': options, 'count_orders': count, 'secrets': [],
            'reject_common_name': ACME_BLOCKED, 'fail_common_name': 'fail.kit.test',
            'fail_options': dict(options, http01_webroot=unserved),
            'transient_options': dict(options, acme_directory=facts['maintenance'], validate_certs=False),
            'cleanup': cleanup or (lambda: None)}


# -- sectigo: the Sectigo Certificate Manager simulator on 127.0.0.1 ---------------------------

SECTIGO_ENV = 'CERTFORGE_KIT_SECTIGO'
SECTIGO_DOMAIN = 'kit.example.com'      # validated for 'Example Org' in the simulator's catalog
_SIMULATORS = {}


def _start_sectigo():
    try:
        from ansible_collections.certforge.pki.tests.simulators.sectigo_scm import Simulator
    except ImportError:
        sys.path.insert(0, str(HERE.parents[2]))
        from tests.simulators.sectigo_scm import Simulator  # pylint: disable=import-error
    # real time: DV orders are issued 2 s after enroll, so the kit polls them
    sim = Simulator(realtime=True, issue_delays={'DV': 2.0, 'OV': 60.0, 'EV': 10.0}).start()
    real_enroll = sim.tenant.enroll

    def enroll(body, requester, requested_via='REST'):
        """The CA declines every order for fail.<domain> once it is placed (as an SCM admin would)."""
        record = real_enroll(body, requester, requested_via)
        if record.common_name.startswith('fail.'):
            sim.tenant.set_status(record.id, 'Declined')
        return record
    sim.tenant.enroll = enroll
    facts = {'base_url': sim.base_url, 'customer_uri': sim.customer_uri, 'login': sim.login,
             'password': sim.password, 'ca_bundle': sim.ca_bundle}
    _SIMULATORS[sim.base_url] = sim

    def stop():
        _SIMULATORS.pop(sim.base_url, None)
        sim.stop()
    return facts, stop


def _sectigo(workdir):
    del workdir
    facts, cleanup = _shared(SECTIGO_ENV, _start_sectigo)
    options = dict(facts, organization='Example Org', profile='Sectigo DV SSL', custom_fields={'cost-center': 'CC-42'},
                   http_retries=1)
    sim = _SIMULATORS.get(facts['base_url'])

    def transient_fault():
        """Every request answered 503 Service Unavailable with Retry-After: 1 until it ends."""
        fault = sim.fault('server_error', times=None, retry_after=1)
        return lambda: sim.clear_faults() if fault else None

    setup = {'options': options, 'domain': SECTIGO_DOMAIN, 'secrets': [facts['password']],
             'count_orders': (lambda name: sim.enroll_count('%s.%s' % (name, SECTIGO_DOMAIN))) if sim else None,
             'reject_common_name': 'reject.unvalidated.example', 'fail_common_name': 'fail.' + SECTIGO_DOMAIN,
             'cleanup': cleanup or (lambda: None)}
    if sim is not None:
        setup['transient_fault'] = transient_fault
    else:
        setup['unreachable_options'] = dict(options, base_url='https://127.0.0.1:9/api')
    return setup


def _files(workdir, name):
    site = os.path.join(workdir, 'site')
    os.makedirs(site, exist_ok=True)
    if name == 'files':
        return {'options': {}, 'request_options': {'certificate_path': os.path.join(site, 'cert.pem'),
                                                   'chain_path': os.path.join(site, 'chain.pem'),
                                                   'fullchain_path': os.path.join(site, 'fullchain.pem')}}
    if name == 'nginx':
        return {'options': {'validate_command': ['true'], 'reload_command': ['true']},
                'request_options': {'fullchain_path': os.path.join(site, 'fullchain.pem')}}
    return {'options': {'validate_command': ['test', '-s'], 'reload_command': ['true']},
            'request_options': {}, 'certificate_options': {'combined_path': os.path.join(site, 'site.pem')}}


def _server_target(workdir, name):
    """The server targets with harmless commands (the real servers are in their own tests)."""
    site = os.path.join(workdir, 'site')
    os.makedirs(site, exist_ok=True)
    if name == 'haproxy':
        return {'options': {'mode': 'reload', 'validate_command': ['true'], 'reload_command': ['true']},
                'request_options': {}, 'certificate_options': {'pem_path': os.path.join(site, 'site.pem')}}
    if name == 'apache':
        return {'options': {'validate_command': ['true'], 'reload_command': ['true']},
                'request_options': {'certificate_path': os.path.join(site, 'cert.pem'),
                                    'chain_path': os.path.join(site, 'chain.pem')}}
    if name == 'pkcs12':
        return {'options': {}, 'request_options': {},
                'certificate_options': {'pkcs12_path': os.path.join(site, 'site.p12'), 'password': 'kit-p12-pass'}}
    if name == 'java_keystore':
        return {'options': {}, 'request_options': {},
                'certificate_options': {'keystore_path': os.path.join(site, 'site.jks'), 'keystore_type': 'jks',
                                        'store_password': 'kit-store-pass'}}
    if name == 'caddy':
        return {'options': {'mode': 'file', 'validate_command': ['true'], 'reload_command': ['true']},
                'request_options': {'fullchain_path': os.path.join(site, 'fullchain.pem')}}
    if name in ('postfix', 'dovecot'):
        return {'options': {'validate_command': ['true'], 'reload_command': ['true']},
                'request_options': {'fullchain_path': os.path.join(site, 'fullchain.pem')}}
    if name == 'traefik':
        return {'options': {}, 'request_options': {}, 'certificate_options': {'directory': site}}
    if name == 'envoy':
        return {'options': {}, 'request_options': {}, 'certificate_options': {'sds_path': os.path.join(site, 'site.sds.yaml')}}
    return None


SERVER_TARGETS = ('haproxy', 'apache', 'pkcs12', 'java_keystore', 'caddy', 'postfix', 'dovecot', 'traefik', 'envoy')


def kit_setup(kind, name, workdir):
    if kind == 'target' and name in SERVER_TARGETS:
        return _server_target(workdir, name)
    if kind == 'issuer' and name == 'local_ca':
        return _local_ca(workdir)
    if kind == 'issuer' and name == 'toy_async_ca':
        return _toy_ca(workdir)
    if kind == 'issuer' and name == 'acme':
        return _acme(workdir)
    if kind == 'issuer' and name == 'sectigo':
        return _sectigo(workdir)
    if kind == 'target' and name in ('files', 'nginx', 'toy_haproxy_like'):
        return _files(workdir, name)
    return None


# The built-in connectors, registered for the kit (modules register them by static import).

@hookimpl
def certforge_issuers():
    from ansible_collections.certforge.pki.plugins.module_utils.issuers import sectigo
    from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import connector as acme
    return {'local_ca': local_ca.LocalCAIssuer, 'acme': acme.AcmeIssuer, 'sectigo': sectigo.SectigoIssuer}


@hookimpl
def certforge_targets():
    from ansible_collections.certforge.pki.plugins.module_utils.targets import (
        apache, caddy, dovecot, envoy, files, haproxy, java_keystore, nginx, pkcs12, postfix, traefik)
    return {'files': files.FilesTarget, 'nginx': nginx.NginxTarget, 'haproxy': haproxy.HaproxyTarget,
            'apache': apache.ApacheTarget, 'pkcs12': pkcs12.Pkcs12Target,
            'java_keystore': java_keystore.JavaKeystoreTarget, 'caddy': caddy.CaddyTarget,
            'postfix': postfix.PostfixTarget, 'dovecot': dovecot.DovecotTarget,
            'traefik': traefik.TraefikTarget, 'envoy': envoy.EnvoyTarget}
