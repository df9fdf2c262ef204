# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An ACME directory whose TLS certificate does not chain to ``acme_ca_bundle``: the failure
names ``acme_ca_bundle`` and the fix, and nothing is written (no account key, no order store,
no certificate)."""

import importlib.util
import sys
from pathlib import Path


def _helpers():
    path = Path(__file__).resolve().parents[1] / 'tls_trust_helpers.py'
    spec = importlib.util.spec_from_file_location('certforge_tls_trust_helpers', str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


helpers = _helpers()


def test_wrong_acme_ca_bundle_names_the_option(pebble, run_playbook, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'www.csr').write_text(_csr())
    (out / 'existing-account.key').write_text(_key())
    (out / 'existing-account.key').chmod(0o600)
    wrong = helpers.write_wrong_bundle(tmp_path / 'unrelated-ca.pem')
    before = helpers.snapshot(out)
    conn = {'acme_directory': pebble.directory_url, 'acme_ca_bundle': wrong,
            'account_key_path': str(out / 'account.key'), 'order_store': str(out / 'orders')}
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'account', 'ignore_errors': True, 'certforge.pki.acme_account': dict(
            conn, account_key_path=str(out / 'existing-account.key'), terms_agreed=True)},
        {'name': 'issue', 'ignore_errors': True, 'certforge.pki.acme_certificate': dict(
            conn, name='www', csr_path=str(out / 'www.csr'), certificate_path=str(out / 'www.crt'),
            account_key_path=str(out / 'existing-account.key'), terms_agreed=True)}]}]
    result = run_playbook(play, env={'ANSIBLE_DISPLAY_TRACEBACK': 'error'})
    for task in ('account', 'issue'):
        failed = result.task(task)
        print('%s: %s' % (task, failed.get('msg')))
        assert result.status(task) == 'ignored' and failed.get('error_option') == 'acme_ca_bundle', failed
        assert 'acme_ca_bundle' in failed['msg'] and wrong in failed['msg'], failed['msg']
        assert 'check the URL, proxy and network' not in failed['msg'], failed['msg']
    # the file store's per-certificate lock (an empty file) is taken before the CA is called;
    # no order record, key, certificate or anything else is written
    after = dict((k, v) for k, v in helpers.snapshot(out).items()
                 if not (k == 'orders' or (k.startswith('orders/') and k.endswith('.lock') and v == helpers.EMPTY)))
    assert after == before


def _key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _csr():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'www.example.com')]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName('www.example.com')]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()
