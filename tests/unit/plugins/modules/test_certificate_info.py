# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the certificate_info module: files, PEM text and a real TLS endpoint on
127.0.0.1 (a thread in this process), and the renewal decision it reports."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import threading

import pytest
from ansible.module_utils.testing import patch_module_args
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, TransientError
from ansible_collections.certforge.pki.plugins.module_utils import cert_info as mod
from ansible_collections.certforge.pki.plugins.modules import certificate_info as module

UTC = datetime.timezone.utc


def _cert(key, cn, issuer=None, issuer_key=None, ca=False, sans=(), days=90, age_days=10):
    now = datetime.datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.subject if issuer is not None else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=age_days))
               .not_valid_after(now - datetime.timedelta(days=age_days) + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]),
                                        critical=False)
    return builder.sign(issuer_key or key, cx509.hash_for_key(issuer_key or key))


def pem(obj):
    return obj.public_bytes(serialization.Encoding.PEM).decode('ascii')


@pytest.fixture(scope='module')
def pki():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert(ca_key, 'Unit Test CA', ca=True, days=3650)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(key, 'www.example.com', ca, ca_key, sans=['www.example.com', 'localhost'])
    return dict(ca=ca, ca_key=ca_key, key=key, leaf=leaf)


def params(**kwargs):
    out = dict(path=None, content=None, host=None, port=443, server_name=None, timeout=10, ca_path=None,
               privatekey_path=None, privatekey_passphrase=None, expected_subject_alt_names=None,
               expected_issuer=None, renew_before_days=30, renew_at_fraction=None, force=False)
    out.update(kwargs)
    return out


# ----------------------------------------------------------------------------- files and content

def test_path_with_chain_and_key(tmp_path, pki):
    path = tmp_path / 'fullchain.pem'
    path.write_text(pem(pki['leaf']) + pem(pki['ca']))
    key_path = tmp_path / 'key.pem'
    key_path.write_bytes(cx509.private_key_to_pem(pki['key'], 'unit-test passphrase'))
    res = mod.run(params(path=str(path), privatekey_path=str(key_path), privatekey_passphrase='unit-test passphrase'))
    assert res['exists'] is True and res['changed'] is False
    assert res['subject'] == {'commonName': 'www.example.com'}
    assert res['issuer_string'] == 'CN=Unit Test CA'
    assert res['subject_alt_names'] == ['DNS:www.example.com', 'DNS:localhost']
    assert res['serial'] == cx509.serial_hex(pki['leaf'])
    assert res['fingerprints']['sha256'] == cx509.fingerprint(pki['leaf'])
    assert 79 < res['days_left'] <= 80
    assert res['key_matches'] is True
    assert res['needs_renewal'] is False and res['renewal_reasons'] == []
    assert [c['subject_string'] for c in res['chain']] == ['CN=Unit Test CA']
    assert res['chain'][0]['is_ca'] is True
    assert res['pem'] == pem(pki['leaf'])
    assert 'unit-test passphrase' not in json.dumps(res)


def test_der_file(tmp_path, pki):
    path = tmp_path / 'leaf.der'
    path.write_bytes(pki['leaf'].public_bytes(serialization.Encoding.DER))
    res = mod.run(params(path=str(path)))
    assert res['serial'] == cx509.serial_hex(pki['leaf']) and res['chain'] == []


def test_missing_path_needs_renewal(tmp_path):
    res = mod.run(params(path=str(tmp_path / 'nope.pem')))
    assert res == {'changed': False, 'exists': False, 'needs_renewal': True, 'renewal_reasons': ['missing']}


def test_content(pki):
    res = mod.run(params(content=pem(pki['leaf'])))
    assert res['exists'] and res['subject_string'] == 'CN=www.example.com'


@pytest.mark.parametrize('policy, reasons', [
    (dict(renew_before_days=90), ['inside_window']),
    (dict(renew_at_fraction=0.1), ['lifetime_fraction']),
    (dict(expected_subject_alt_names=['www.example.com']), ['san_changed']),
    (dict(expected_subject_alt_names=['localhost', 'DNS:WWW.example.com']), []),
    (dict(expected_issuer='CN=Other CA'), ['issuer_changed']),
    (dict(expected_issuer='Unit Test'), []),
    (dict(force=True), ['forced']),
])
def test_renewal_policy(pki, policy, reasons):
    res = mod.run(params(content=pem(pki['leaf']), **policy))
    assert res['renewal_reasons'] == reasons
    assert res['needs_renewal'] is bool(reasons)


def test_expired_and_other_key(tmp_path, pki):
    old = _cert(pki['key'], 'old.example.com', pki['ca'], pki['ca_key'], days=5, age_days=10)
    key_path = tmp_path / 'other.key'
    key_path.write_bytes(cx509.private_key_to_pem(ec.generate_private_key(ec.SECP256R1())))
    res = mod.run(params(content=pem(old), privatekey_path=str(key_path)))
    assert res['expired'] is True and res['days_left'] < 0
    assert res['key_matches'] is False
    assert res['renewal_reasons'] == ['expired', 'key_changed']


@pytest.mark.parametrize('kwargs, option', [
    (dict(content='not a certificate'), 'content'),
    (dict(content=pem(_cert(ec.generate_private_key(ec.SECP256R1()), 'x')), renew_at_fraction=1.5),
     'renew_at_fraction'),
    (dict(content=pem(_cert(ec.generate_private_key(ec.SECP256R1()), 'x')), expected_subject_alt_names=['FTP:x']),
     'expected_subject_alt_names'),
])
def test_bad_input(kwargs, option):
    with pytest.raises(ConfigError) as err:
        mod.run(params(**kwargs))
    assert err.value.option == option


def test_path_errors(tmp_path, pki):
    with pytest.raises(ConfigError) as err:
        mod.run(params(path=str(tmp_path)))
    assert err.value.option == 'path'
    garbage = tmp_path / 'garbage.pem'
    garbage.write_text('garbage')
    with pytest.raises(ConfigError) as err:
        mod.run(params(path=str(garbage)))
    assert err.value.option == 'path'
    with pytest.raises(ConfigError) as err:
        mod.run(params(content=pem(pki['leaf']), privatekey_path=str(tmp_path / 'missing.key')))
    assert err.value.option == 'privatekey_path'


# ----------------------------------------------------------------------------- live endpoint

class TLSServer:
    """A TLS server on 127.0.0.1 in a thread: completes handshakes and closes."""

    def __init__(self, tmp_path, leaf, key, chain=()):
        cert_file = tmp_path / 'server.pem'
        cert_file.write_text(pem(leaf) + ''.join(pem(c) for c in chain))
        key_file = tmp_path / 'server.key'
        key_file.write_bytes(cx509.private_key_to_pem(key))
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert_file), str(key_file))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(5)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass
            finally:
                conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def server(tmp_path, pki):
    srv = TLSServer(tmp_path, pki['leaf'], pki['key'], chain=[pki['ca']])
    yield srv
    srv.close()


def test_live_endpoint_verified(tmp_path, pki, server):
    ca_file = tmp_path / 'ca.pem'
    ca_file.write_text(pem(pki['ca']))
    res = mod.run(params(host='127.0.0.1', port=server.port, server_name='www.example.com', ca_path=str(ca_file),
                         expected_subject_alt_names=['www.example.com', 'localhost']))
    assert res['verified'] is True and 'verify_error' not in res
    assert res['serial'] == cx509.serial_hex(pki['leaf'])
    assert res['tls_version'].startswith('TLS')
    assert res['needs_renewal'] is False
    if hasattr(ssl.SSLObject, 'get_unverified_chain') or hasattr(ssl.SSLSocket, 'get_unverified_chain') or \
            hasattr(__import__('_ssl')._SSLSocket, 'get_unverified_chain'):
        assert [c['subject_string'] for c in res['chain']] == ['CN=Unit Test CA']


def test_live_endpoint_wrong_name_reports_verify_error(tmp_path, pki, server):
    ca_file = tmp_path / 'ca.pem'
    ca_file.write_text(pem(pki['ca']))
    res = mod.run(params(host='127.0.0.1', port=server.port, server_name='other.example.org', ca_path=str(ca_file)))
    assert res['verified'] is False
    assert 'other.example.org' in res['verify_error'] or 'match' in res['verify_error']
    assert res['serial'] == cx509.serial_hex(pki['leaf'])


def test_live_endpoint_unverified(server, pki):
    res = mod.run(params(host='127.0.0.1', port=server.port))
    assert 'verified' not in res
    assert res['subject_string'] == 'CN=www.example.com'


def test_live_endpoint_refused():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(TransientError) as err:
        mod.run(params(host='127.0.0.1', port=port, timeout=2))
    assert err.value.option == 'host'


def test_live_endpoint_not_tls():
    plain = socket.socket()
    plain.bind(('127.0.0.1', 0))
    plain.listen(1)
    port = plain.getsockname()[1]

    def answer():
        conn, _addr = plain.accept()
        conn.recv(1024)
        conn.sendall(b'HTTP/1.0 400 Bad Request\r\n\r\n')
        conn.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConfigError) as err:
            mod.run(params(host='127.0.0.1', port=port, timeout=5))
        assert err.value.option == 'port'
    finally:
        thread.join(5)
        plain.close()


def test_ca_path_missing(tmp_path, server):
    with pytest.raises(ConfigError) as err:
        mod.run(params(host='127.0.0.1', port=server.port, ca_path=str(tmp_path / 'nope.pem')))
    assert err.value.option == 'ca_path'


# ----------------------------------------------------------------------------- main()

def run_main(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def test_main(tmp_path, pki, capsys):
    path = tmp_path / 'c.pem'
    path.write_text(pem(pki['leaf']))
    code, out = run_main(dict(path=str(path), renew_before_days=100), capsys)
    assert code == 0
    assert out['needs_renewal'] is True and out['renewal_reasons'] == ['inside_window']
    code, out = run_main(dict(path=str(path), content='x'), capsys)
    assert code == 1 and 'mutually exclusive' in out['msg']
    code, out = run_main(dict(content='garbage'), capsys)
    assert code == 1 and out['error_option'] == 'content'
