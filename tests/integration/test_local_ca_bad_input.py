"""Bad input to the controller-side modules, through real ansible-playbook runs: each fails with
a message naming the option and the fix, never a traceback, and changes nothing on disk."""

import base64
import os
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SETUP = textwrap.dedent("""
    - name: Setup
      hosts: localhost
      gather_facts: false
      tasks:
        - name: Root CA
          certforge.pki.local_ca:
            path: "{{ d }}/ca"
            common_name: Bad Input Test CA
        - name: Second CA
          certforge.pki.local_ca:
            path: "{{ d }}/other"
            common_name: Other Test CA
    """)


def _csr(names, key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


def _tampered_csr():
    pem, _key = _csr(['www.example.com'])
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF
    return ('-----BEGIN CERTIFICATE REQUEST-----\n%s-----END CERTIFICATE REQUEST-----\n'
            % base64.encodebytes(bytes(der)).decode())


def _tree(root):
    out = {}
    for base, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            if name == '.lock':
                continue
            with open(path, 'rb') as f:
                out[path] = f.read()
    return out


def _sign_task(**args):
    lines = ['    - name: Bad input', '      certforge.pki.local_ca_certificate:',
             '        ca_path: "{{ d }}/ca"', '        order_store: "{{ d }}/orders"']
    lines += ['        %s: %s' % (k, v) for k, v in args.items()]
    return ('- name: Bad input\n  hosts: localhost\n  gather_facts: false\n  tasks:\n'
            + '\n'.join(lines) + '\n')


CASES = {
    'malformed CSR': (lambda d: _sign_task(name='www', csr='"not a CSR"'), 'csr', 'Fix:'),
    'CSR with a bad signature': (lambda d: _sign_task(name='www', csr='"{{ lookup(\'file\', d ~ \'/bad.csr\') }}"'),
                                 'csr', 'signature'),
    'SAN outside the allowed domains': (
        lambda d: _sign_task(name='www', csr_path='"{{ d }}/evil.csr"', allowed_domains='[example.com]'),
        'subject_alt_names', 'allowed domains'),
    'wildcard where the profile forbids it': (
        lambda d: _sign_task(name='www', csr_path='"{{ d }}/wild.csr"', profile='tls_client'),
        'subject_alt_names', 'wildcard'),
    'name that climbs out with ..': (
        lambda d: _sign_task(name='"../../etc/x"', csr_path='"{{ d }}/good.csr"'), 'name', '..'),
    'missing destination directory': (
        lambda d: _sign_task(name='www', csr_path='"{{ d }}/good.csr"', path='"{{ d }}/nowhere/www.crt"'),
        'path', 'create the directory'),
    'CA certificate that is not a CA': (
        lambda d: textwrap.dedent("""
            - name: Bad input
              hosts: localhost
              gather_facts: false
              tasks:
                - name: Bad input
                  certforge.pki.local_ca:
                    path: "{{ d }}/imported"
                    type: import
                    certificate_path: "{{ d }}/leaf.crt"
                    privatekey_path: "{{ d }}/leaf.key"
            """), 'certificate_path', 'not a CA'),
    'CA key that does not match the CA certificate': (
        lambda d: textwrap.dedent("""
            - name: Bad input
              hosts: localhost
              gather_facts: false
              tasks:
                - name: Bad input
                  certforge.pki.local_ca:
                    path: "{{ d }}/imported"
                    type: import
                    certificate_path: "{{ d }}/ca/ca.crt"
                    privatekey_path: "{{ d }}/other/ca.key"
            """), 'privatekey_path', 'does not match'),
    'unknown revocation serial': (
        lambda d: _sign_task(state='revoked', serial='0A:0B'), 'serial', 'was not issued'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_bad_input(case, run_playbook, tmp_path):
    d = tmp_path / 'work'          # run_playbook keeps its own files beside it, in tmp_path
    d.mkdir()
    setup = run_playbook(SETUP, extra_vars={'d': str(d)})
    assert setup.rc == 0, str(setup)
    (d / 'bad.csr').write_text(_tampered_csr())
    (d / 'evil.csr').write_text(_csr(['www.evil.test'])[0])
    (d / 'wild.csr').write_text(_csr(['*.example.com'])[0])
    good, key = _csr(['www.example.com'])
    (d / 'good.csr').write_text(good)
    # a leaf certificate and its key, for the "not a CA" import
    leaf = run_playbook(_sign_task(name='leaf', csr_path='"{{ d }}/good.csr"', path='"{{ d }}/leaf.crt"'),
                        extra_vars={'d': str(d)})
    assert leaf.rc == 0, str(leaf)
    (d / 'leaf.key').write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    play, option, words = CASES[case]
    before = _tree(str(d))
    result = run_playbook(play(d), extra_vars={'d': str(d)})
    assert result.rc != 0
    assert result.status('Bad input') == 'failed', str(result)
    failed = result.task('Bad input')
    assert failed.get('error_option') == option, failed
    assert option in failed['msg'] and words in failed['msg'], failed['msg']
    assert 'Traceback' not in result.stdout + result.stderr
    assert 'Traceback' not in str(failed.get('exception', ''))
    assert _tree(str(d)) == before


def test_validity_above_max_ttl_is_capped_with_warning(run_playbook, tmp_path):
    d = tmp_path
    assert run_playbook(SETUP, extra_vars={'d': str(d)}).rc == 0
    (d / 'good.csr').write_text(_csr(['www.example.com'])[0])
    result = run_playbook(_sign_task(name='www', csr_path='"{{ d }}/good.csr"', validity_days=1000,
                                     max_ttl_days=30, path='"{{ d }}/www.crt"'), extra_vars={'d': str(d)})
    assert result.rc == 0, str(result)
    assert 'capped' in result.stdout + result.stderr
    with open(d / 'www.crt', 'rb') as f:
        cert = x509.load_pem_x509_certificate(f.read())
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life.days <= 30
