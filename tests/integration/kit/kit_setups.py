"""Kit setups (``kit_setup(kind, name, workdir)``) for the built-in connectors and the two
throw-away packages the tests build.  Imported by the conformance kit, also in its child
processes (which find the same CA through the environment)."""

import os

from ansible_collections.certforge.pki.plugins.module_utils.issuers import local_ca
from ansible_collections.certforge.pki.plugins.module_utils.sdk import hookimpl

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
    return None


SERVER_TARGETS = ('haproxy', 'apache', 'pkcs12', 'java_keystore', 'caddy', 'postfix', 'dovecot')


def kit_setup(kind, name, workdir):
    if kind == 'target' and name in SERVER_TARGETS:
        return _server_target(workdir, name)
    if kind == 'issuer' and name == 'local_ca':
        return _local_ca(workdir)
    if kind == 'issuer' and name == 'toy_async_ca':
        return _toy_ca(workdir)
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
        apache, caddy, dovecot, files, haproxy, java_keystore, nginx, pkcs12, postfix)
    return {'files': files.FilesTarget, 'nginx': nginx.NginxTarget, 'haproxy': haproxy.HaproxyTarget,
            'apache': apache.ApacheTarget, 'pkcs12': pkcs12.Pkcs12Target,
            'java_keystore': java_keystore.JavaKeystoreTarget, 'caddy': caddy.CaddyTarget,
            'postfix': postfix.PostfixTarget, 'dovecot': dovecot.DovecotTarget}
