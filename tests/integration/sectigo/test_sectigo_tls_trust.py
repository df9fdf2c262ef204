"""A Sectigo API whose TLS certificate does not chain to ``ca_bundle``: the failure names
``ca_bundle`` and the fix, and nothing is written."""

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


def test_wrong_ca_bundle_names_the_option(sectigo_sim, run_playbook, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'www.csr').write_text(_csr())
    wrong = helpers.write_wrong_bundle(tmp_path / 'unrelated-ca.pem')
    before = helpers.snapshot(out)
    conn = {'base_url': sectigo_sim.base_url, 'customer_uri': sectigo_sim.customer_uri,
            'login': sectigo_sim.login, 'password': sectigo_sim.password, 'ca_bundle': wrong}
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'info', 'ignore_errors': True, 'certforge.pki.sectigo_account_info': conn},
        {'name': 'enroll', 'ignore_errors': True, 'certforge.pki.sectigo_certificate': dict(
            conn, name='www', csr_path=str(out / 'www.csr'), profile='Sectigo DV SSL', organization='Example Org',
            certificate_path=str(out / 'www.crt'), order_store=str(out / 'orders'))}]}]
    result = run_playbook(play, env={'ANSIBLE_DISPLAY_TRACEBACK': 'error'})
    for task in ('info', 'enroll'):
        failed = result.task(task)
        print('%s: %s' % (task, failed.get('msg')))
        assert result.status(task) == 'ignored' and failed.get('error_option') == 'ca_bundle', failed
        assert 'ca_bundle' in failed['msg'] and wrong in failed['msg'], failed['msg']
        assert 'check the URL, proxy and network' not in failed['msg'], failed['msg']
    assert helpers.snapshot(out) == before
    assert not sectigo_sim.audit(), 'a request reached the API through an untrusted connection'


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
