# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""acme_account makes the account key when asked to, 0600 from its first byte, then registers."""

import os
import stat
import textwrap


def test_account_key_created_then_kept(pebble, run_playbook, tmp_path):
    key = tmp_path / 'keys' / 'account.key'
    key.parent.mkdir()
    play = textwrap.dedent("""
        - name: Account
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Register
              certforge.pki.acme_account:
                acme_directory: "{{ directory }}"
                acme_ca_bundle: "{{ bundle }}"
                account_key_path: "{{ key }}"
                account_key_create: ECDSA-P256
                terms_agreed: true
                order_store: "{{ store }}"
        """)
    extra = {'directory': pebble.directory_url, 'bundle': pebble.ca_bundle, 'key': str(key),
             'store': str(tmp_path / 'orders')}
    check = run_playbook(play, extra_vars=extra, check=True)
    assert check.rc == 0 and check.task('Register')['account_key_created'], str(check)
    assert not key.exists()
    first = run_playbook(play, extra_vars=extra)
    assert first.rc == 0, str(first)
    result = first.task('Register')
    assert result['account_key_created'] and result['status'] == 'created' and result['account_uri']
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    before = key.read_bytes()
    second = run_playbook(play, extra_vars=extra)
    assert second.rc == 0 and second.changed() == 0, str(second)
    assert not second.task('Register')['account_key_created']
    assert key.read_bytes() == before


def test_account_key_not_left_behind_when_the_ca_is_not_trusted(pebble, run_playbook, tmp_path):
    """The key is made before the CA is asked; a CA that cannot be reached (here: its TLS
    certificate does not chain to acme_ca_bundle) leaves no key behind, and a rerun with the
    right bundle makes one and registers it."""
    key = tmp_path / 'keys' / 'account.key'
    key.parent.mkdir()
    wrong = tmp_path / 'wrong-ca.pem'
    wrong.write_text(_unrelated_ca())
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'Register', 'ignore_errors': True, 'certforge.pki.acme_account': {
            'acme_directory': pebble.directory_url, 'acme_ca_bundle': '{{ bundle }}',
            'account_key_path': str(key), 'account_key_create': 'ECDSA-P256', 'terms_agreed': True,
            'order_store': str(tmp_path / 'orders')}}]}]
    failed = run_playbook(play, extra_vars={'bundle': str(wrong)})
    result = failed.task('Register')
    assert failed.status('Register') == 'ignored' and result.get('error_option') == 'acme_ca_bundle', result
    assert not key.exists() and os.listdir(str(key.parent)) == []
    fixed = run_playbook(play, extra_vars={'bundle': pebble.ca_bundle})
    result = fixed.task('Register')
    assert fixed.rc == 0 and result['account_key_created'] and result['status'] == 'created', str(fixed)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def _unrelated_ca():
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'Unrelated test CA')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()
