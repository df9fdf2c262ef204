# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of core/x509.py against real keys, CSRs and certificates made here."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


# ----------------------------------------------------------------------------- fixtures

def _name(cn, **extra):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if 'o' in extra:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, extra['o']))
    return x509.Name(attrs)


def _hash(key):
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def make_cert(subject_key, subject, issuer_cert=None, issuer_key=None, ca=False, path_length=None,
              sans=None, days=90, start=NOW - datetime.timedelta(days=10), serial=0x0ABCDE,
              eku=None, ku=None, aki=True):
    issuer_key = issuer_key or subject_key
    issuer_name = issuer_cert.subject if issuer_cert is not None else subject
    pub = subject_key.public_key()
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer_name).public_key(pub)
               .serial_number(serial)
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False))
    if aki:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                        critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if ku:
        builder = builder.add_extension(ku, critical=True)
    return builder.sign(issuer_key, _hash(issuer_key))


@pytest.fixture(scope='module')
def pki():
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = make_cert(root_key, _name('Test Root', o='Test'), ca=True, path_length=1, days=3650,
                     serial=1)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = make_cert(inter_key, _name('Test Issuing', o='Test'), root, root_key, ca=True, path_length=0,
                      days=1000, serial=2)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ku = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                       encipher_only=False, decipher_only=False)
    leaf = make_cert(leaf_key, _name('www.example.com'), inter, inter_key,
                     sans=[x509.DNSName('www.example.com'), x509.DNSName('Example.COM'),
                           x509.IPAddress(ipaddress.ip_address('192.0.2.10')),
                           x509.RFC822Name('ops@example.com'),
                           x509.UniformResourceIdentifier('spiffe://example.com/web')],
                     eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], ku=ku)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = make_cert(other_key, _name('Unrelated'), days=30, serial=3)
    return dict(root=root, root_key=root_key, inter=inter, inter_key=inter_key, leaf=leaf, leaf_key=leaf_key,
                other=other, other_key=other_key)


def pem(obj):
    return obj.public_bytes(serialization.Encoding.PEM).decode('ascii')


# ----------------------------------------------------------------------------- import guard

def test_require_cryptography_returns_namespace():
    lib = cx509.require_cryptography()
    assert lib.x509 is x509
    assert cx509.HAS_CRYPTOGRAPHY is True
    assert cx509.CRYPTOGRAPHY_IMP_ERR is None


def test_require_cryptography_too_old(monkeypatch):
    import cryptography
    monkeypatch.setattr(cx509, '_LIB', None)
    monkeypatch.setattr(cryptography, '__version__', '2.9.1')
    with pytest.raises(ImportError, match='too old'):
        cx509.require_cryptography()
    assert cx509.HAS_CRYPTOGRAPHY is False
    monkeypatch.undo()
    cx509._LIB = None
    assert cx509.require_cryptography().x509 is x509
    assert cx509.HAS_CRYPTOGRAPHY is True


def test_require_cryptography_missing(monkeypatch):
    import sys
    monkeypatch.setattr(cx509, '_LIB', None)
    monkeypatch.setitem(sys.modules, 'cryptography.x509', None)
    with pytest.raises(ImportError) as err:
        cx509.require_cryptography()
    assert err.value.name == cx509.CRYPTOGRAPHY_REQUIREMENT
    assert cx509.HAS_CRYPTOGRAPHY is False
    assert 'Traceback' in cx509.CRYPTOGRAPHY_IMP_ERR
    monkeypatch.undo()
    cx509._LIB = None
    assert cx509.require_cryptography().x509 is x509
    assert cx509.HAS_CRYPTOGRAPHY is True and cx509.CRYPTOGRAPHY_IMP_ERR is None


def test_module_reports_missing_cryptography(monkeypatch, capsys):
    import json
    import sys
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.certforge.pki.plugins.modules import certificate_info
    monkeypatch.setattr(cx509, '_LIB', None)
    monkeypatch.setitem(sys.modules, 'cryptography.x509', None)
    with patch_module_args({'content': 'x'}):
        with pytest.raises(SystemExit):
            certificate_info.main()
    out = json.loads(capsys.readouterr().out)
    monkeypatch.undo()
    cx509._LIB = None
    cx509.require_cryptography()
    assert out['failed'] is True
    assert 'Failed to import the required Python library (%s)' % cx509.CRYPTOGRAPHY_REQUIREMENT in out['msg']


# ----------------------------------------------------------------------------- PEM

def test_split_pem_normalizes(pki):
    text = 'junk before\r\n' + pem(pki['leaf']).replace('\n', '\r\n') + '\n\n  \n' + pem(pki['inter']) + 'after'
    blocks = cx509.split_pem(text)
    assert blocks == [pem(pki['leaf']), pem(pki['inter'])]
    assert all(b.endswith('-----\n') for b in blocks)
    assert cx509.split_pem(text.encode('ascii')) == blocks
    assert cx509.split_pem('') == []


def test_pem_kind_and_labels(pki):
    key_pem = cx509.private_key_to_pem(pki['leaf_key']).decode('ascii')
    assert cx509.pem_kind(pem(pki['leaf'])) == 'certificate'
    assert cx509.pem_kind(key_pem + pem(pki['leaf'])) == 'private_key'
    assert cx509.pem_labels(key_pem) == ['PRIVATE KEY']
    assert cx509.pem_kind('nothing') is None
    assert cx509.describe_pem(pem(pki['leaf']) + key_pem) == 'a certificate and a private key'


# ----------------------------------------------------------------------------- loading

def test_load_certificate_pem_der_bytes_str(pki):
    leaf = pki['leaf']
    assert cx509.load_certificate(pem(leaf)) == leaf
    assert cx509.load_certificate(pem(leaf).encode()) == leaf
    assert cx509.load_certificate(leaf.public_bytes(serialization.Encoding.DER)) == leaf
    assert cx509.load_certificate(leaf) is leaf
    # first of a bundle
    assert cx509.load_certificate(pem(leaf) + pem(pki['inter'])) == leaf


def test_load_certificates_bundle(pki):
    certs = cx509.load_certificates(pem(pki['leaf']) + 'comment\n' + pem(pki['inter']) + pem(pki['root']),
                                    option='chain')
    assert certs == [pki['leaf'], pki['inter'], pki['root']]


@pytest.mark.parametrize('data, words', [
    ('', 'empty'),
    ('hello world', 'not a PEM certificate'),
    (b'\x00\x01garbage', 'neither a PEM nor a DER'),
    ('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 'malformed'),
])
def test_load_certificate_errors_name_the_option(data, words):
    with pytest.raises(ConfigError) as err:
        cx509.load_certificate(data, option='my_cert')
    assert err.value.option == 'my_cert'
    assert words in err.value.msg
    assert err.value.fix
    assert 'my_cert' in err.value.to_result()['msg']


def test_load_certificate_refuses_a_key(pki):
    key_pem = cx509.private_key_to_pem(pki['leaf_key'])
    with pytest.raises(ConfigError) as err:
        cx509.load_certificate(key_pem, option='cert')
    assert 'a private key, not a certificate' in err.value.msg
    assert 'BEGIN PRIVATE' not in str(err.value) and 'MII' not in str(err.value)


def test_load_csr_and_verify(pki):
    csr = cx509.build_csr(pki['leaf_key'], {'CN': 'www.example.com'}, ['www.example.com'])
    assert cx509.load_csr(cx509.to_pem(csr)).subject == csr.subject
    assert cx509.load_csr(csr.public_bytes(serialization.Encoding.DER)).subject == csr.subject
    assert cx509.verify_csr_signature(cx509.to_pem(csr)) is True
    # 'NEW CERTIFICATE REQUEST' label (old tools)
    old = cx509.to_pem(csr).replace('CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST')
    assert cx509.load_csr(old).subject == csr.subject
    with pytest.raises(ConfigError) as err:
        cx509.load_csr(pem(pki['leaf']), option='csr_in')
    assert err.value.option == 'csr_in'
    assert 'a certificate, not a certificate signing request' in err.value.msg
    with pytest.raises(ConfigError):
        cx509.load_csr('nope', option='csr_in')


def test_verify_csr_signature_detects_tampering(pki):
    csr = cx509.build_csr(pki['leaf_key'], {'CN': 'a.example.com'}, ['a.example.com'])
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    index = der.find(b'a.example.com')
    der[index] = ord('b')
    tampered = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(ConfigError) as err:
        cx509.verify_csr_signature(tampered, option='csr')
    assert err.value.msg.startswith('CSR signature does not verify')
    assert err.value.option == 'csr'
    assert cx509.csr_facts(tampered)['signature_valid'] is False


# ----------------------------------------------------------------------------- private keys

@pytest.mark.parametrize('make', [
    lambda: rsa.generate_private_key(65537, 2048),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    ed25519.Ed25519PrivateKey.generate,
])
def test_load_private_key_roundtrip(make):
    key = make()
    plain = cx509.private_key_to_pem(key)
    assert plain.startswith(b'-----BEGIN PRIVATE KEY-----')
    assert cx509.public_key_fingerprint(cx509.load_private_key(plain)) == cx509.public_key_fingerprint(key)
    enc = cx509.private_key_to_pem(key, 'secret')
    assert enc.startswith(b'-----BEGIN ENCRYPTED PRIVATE KEY-----')
    loaded = cx509.load_private_key(enc, passphrase='secret')
    assert cx509.public_key_fingerprint(loaded) == cx509.public_key_fingerprint(key)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    assert cx509.public_key_fingerprint(cx509.load_private_key(der)) == cx509.public_key_fingerprint(key)


def test_load_private_key_traditional_formats():
    key = rsa.generate_private_key(65537, 2048)
    trad = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.BestAvailableEncryption(b'pw'))
    assert b'RSA PRIVATE KEY' in trad
    assert cx509.key_description(cx509.load_private_key(trad, passphrase=b'pw')) == {'type': 'RSA', 'size': 2048}
    with pytest.raises(ConfigError) as err:
        cx509.load_private_key(trad, passphrase='wrong', option='k')
    assert 'wrong passphrase' in err.value.msg


def test_load_private_key_from_combined_file(pki):
    combined = pem(pki['leaf']) + cx509.private_key_to_pem(pki['leaf_key']).decode()
    key = cx509.load_private_key(combined)
    assert cx509.key_matches_cert(key, pki['leaf'])


@pytest.mark.parametrize('case, words', [
    ('missing', 'encrypted and no passphrase'),
    ('wrong', 'wrong passphrase'),
    ('unneeded', 'not encrypted'),
    ('garbage', 'malformed'),
    ('der_garbage', 'neither PEM nor DER'),
    ('cert', 'a certificate, not a private key'),
    ('empty', 'empty'),
])
def test_load_private_key_errors(pki, case, words):
    secret = 's3cr3t-passphrase'
    enc = cx509.private_key_to_pem(pki['leaf_key'], secret)
    plain = cx509.private_key_to_pem(pki['leaf_key'])
    args = {
        'missing': (enc, None),
        'wrong': (enc, 'not-it'),
        'unneeded': (plain, secret),
        'garbage': (b'-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', None),
        'der_garbage': (b'\x30\x03\x02\x01', None),
        'cert': (pem(pki['leaf']), None),
        'empty': (b'', None),
    }[case]
    with pytest.raises(ConfigError) as err:
        cx509.load_private_key(args[0], passphrase=args[1], option='privatekey_path')
    assert err.value.option == 'privatekey_path'
    assert words in err.value.msg
    text = str(err.value)
    assert secret not in text and 'not-it' not in text
    body = [line for line in (enc + plain).decode().splitlines() if not line.startswith('-----')]
    assert not any(line in text for line in body)


def test_key_description_and_matching(pki):
    assert cx509.key_description(rsa.generate_private_key(65537, 3072).public_key()) == {'type': 'RSA', 'size': 3072}
    assert cx509.key_description(pki['root_key']) == {'type': 'ECDSA', 'curve': 'secp384r1', 'size': 384}
    assert cx509.key_description(pki['leaf']) == {'type': 'ECDSA', 'curve': 'secp256r1', 'size': 256}
    assert cx509.key_description(ed25519.Ed25519PrivateKey.generate())['type'] == 'Ed25519'
    assert cx509.key_matches_cert(pki['leaf_key'], pki['leaf'])
    assert not cx509.key_matches_cert(pki['other_key'], pki['leaf'])
    assert cx509.key_matches_cert(pki['leaf_key'].public_key(), pki['leaf'])
    fp = cx509.public_key_fingerprint(pki['leaf_key'])
    assert fp == cx509.public_key_fingerprint(pki['leaf']) == cx509.public_key_fingerprint(pki['leaf_key'].public_key())
    assert len(fp) == 64 and fp == fp.lower() and ':' not in fp


@pytest.mark.parametrize('key_type, size, curve, expect', [
    ('RSA', 2048, None, {'type': 'RSA', 'size': 2048}),
    ('RSA', 4096, None, {'type': 'RSA', 'size': 4096}),
    ('ECDSA', None, 'secp384r1', {'type': 'ECDSA', 'curve': 'secp384r1', 'size': 384}),
    ('ecdsa', None, 'P-256', {'type': 'ECDSA', 'curve': 'secp256r1', 'size': 256}),
    ('Ed25519', None, None, {'type': 'Ed25519', 'size': 256}),
])
def test_generate_private_key(key_type, size, curve, expect):
    key = cx509.generate_private_key(key_type, size=size, curve=curve)
    assert cx509.key_description(key) == expect


@pytest.mark.parametrize('kwargs, option', [
    (dict(key_type='RSA', size=1024), 'privatekey_size'),
    (dict(key_type='ECDSA', curve='secp521r1'), 'privatekey_curve'),
    (dict(key_type='DSA'), 'privatekey_type'),
])
def test_generate_private_key_refuses(kwargs, option):
    with pytest.raises(ConfigError) as err:
        cx509.generate_private_key(**kwargs)
    assert err.value.option == option
    assert 'use one of' in err.value.fix


# ----------------------------------------------------------------------------- serial, fingerprints

def test_serial_hex_even_length_upper():
    assert cx509.serial_hex(0xABC) == '0ABC'
    assert cx509.serial_hex(0xab) == 'AB'
    assert cx509.serial_hex(1) == '01'


def test_fingerprint_format(pki):
    fp = cx509.fingerprint(pki['leaf'], 'sha256')
    assert fp == ':'.join('%02X' % b for b in pki['leaf'].fingerprint(hashes.SHA256()))
    assert len(cx509.fingerprint(pki['leaf'], 'SHA-1').split(':')) == 20
    with pytest.raises(ConfigError):
        cx509.fingerprint(pki['leaf'], 'crc32')


# ----------------------------------------------------------------------------- SANs

def test_san_list_canonical(pki):
    assert cx509.san_list(pki['leaf']) == ['DNS:www.example.com', 'DNS:example.com', 'IP:192.0.2.10',
                                           'email:ops@example.com', 'URI:spiffe://example.com/web']
    assert cx509.san_list(pki['root']) == []


def test_parse_san_prefixes_and_bare_names():
    names = cx509.parse_san(['DNS:WWW.Example.com.', 'ip:2001:db8::1', 'email:a@example.com',
                             'URI:https://example.com/x', 'bare.example.org', '198.51.100.7', '*.example.net',
                             'DNS:www.example.com'])
    assert [type(n).__name__ for n in names] == ['DNSName', 'IPAddress', 'RFC822Name', 'UniformResourceIdentifier',
                                                 'DNSName', 'IPAddress', 'DNSName']
    assert names[0].value == 'www.example.com'
    assert cx509.normalize_san_strings(['DNS:WWW.Example.com', 'ip:2001:DB8:0::1']) == [
        'DNS:www.example.com', 'IP:2001:db8::1']
    assert cx509.parse_san(None) == []
    # networks for name constraints
    assert str(cx509.parse_san(['IP:10.0.0.0/8'])[0].value) == '10.0.0.0/8'


def test_parse_san_idna():
    assert cx509.normalize_san_strings(['DNS:bücher.example']) == ['DNS:xn--bcher-kva.example']


@pytest.mark.parametrize('value', ['FOO:bar', 'DNS:', 'DNS:bad name', 'IP:300.1.1.1', 'email:nope',
                                   'URI:no-scheme', 'DNS:-lead.example.com', 'x' * 64 + '.example.com'])
def test_parse_san_errors(value):
    with pytest.raises(ConfigError) as err:
        cx509.parse_san([value], option='subject_alt_names')
    assert err.value.option == 'subject_alt_names'
    assert err.value.fix


def test_parse_san_roundtrip_through_san_list(pki):
    again = cx509.parse_san(cx509.san_list(pki['leaf']))
    assert [cx509._general_name_string(n) for n in again] == cx509.san_list(pki['leaf'])


# ----------------------------------------------------------------------------- names

def test_dict_to_name_and_back():
    name = cx509.dict_to_name({'CN': 'www.example.com', 'O': 'Example Ltd', 'C': 'DE', 'ST': 'Berlin',
                               'L': 'Berlin', 'OU': ['Ops', 'Web'], 'emailAddress': 'ops@example.com'})
    assert name.rfc4514_string() == ('1.2.840.113549.1.9.1=ops@example.com,CN=www.example.com,OU=Web,OU=Ops,'
                                     'O=Example Ltd,L=Berlin,ST=Berlin,C=DE')
    back = cx509.name_to_dict(name)
    assert back == {'countryName': 'DE', 'stateOrProvinceName': 'Berlin', 'localityName': 'Berlin',
                    'organizationName': 'Example Ltd', 'organizationalUnitName': ['Ops', 'Web'],
                    'commonName': 'www.example.com', 'emailAddress': 'ops@example.com'}
    # long names, short names and OIDs give the same name; key order does not matter
    same = cx509.dict_to_name({'emailAddress': 'ops@example.com', 'organizationalUnitName': ['Ops', 'Web'],
                               'commonName': 'www.example.com', '2.5.4.10': 'Example Ltd', 'countryName': 'DE',
                               'stateOrProvinceName': 'Berlin', 'localityName': 'Berlin'})
    assert same == name


def test_dict_to_name_ordered_list_and_skips_empty():
    name = cx509.dict_to_name([{'CN': 'x'}, {'O': 'y'}, {'OU': None}, {'L': ''}])
    assert name.rfc4514_string() == 'O=y,CN=x'
    assert len(cx509.dict_to_name(None)) == 0


@pytest.mark.parametrize('subject, words', [
    ({'C': 'Germany'}, 'countryName'),
    ({'nickname': 'x'}, 'unknown subject attribute'),
    ('CN=x', 'must be a dict'),
])
def test_dict_to_name_errors(subject, words):
    with pytest.raises(ConfigError) as err:
        cx509.dict_to_name(subject, option='subject')
    assert err.value.option == 'subject'
    assert words in str(err.value)


# ----------------------------------------------------------------------------- usages

def test_key_usage_names():
    assert cx509.normalize_key_usage(['Key Encipherment', 'digital_signature', 'digitalSignature']) == [
        'digitalSignature', 'keyEncipherment']
    ext = cx509.key_usage_extension(['keyAgreement', 'encipherOnly'])
    assert ext.key_agreement and ext.encipher_only
    assert cx509.key_usage_extension([]) is None
    with pytest.raises(ConfigError) as err:
        cx509.normalize_key_usage(['signEverything'])
    assert err.value.option == 'key_usage'
    with pytest.raises(ConfigError):
        cx509.key_usage_extension(['decipherOnly'])


def test_extended_key_usage_names():
    assert cx509.normalize_extended_key_usage(['TLS Web Server Authentication', 'clientAuth', '1.2.3.4',
                                               'serverAuth']) == ['serverAuth', 'clientAuth', '1.2.3.4']
    ext = cx509.extended_key_usage_extension(['codeSigning', 'emailProtection'])
    assert [o.dotted_string for o in ext] == ['1.3.6.1.5.5.7.3.3', '1.3.6.1.5.5.7.3.4']
    with pytest.raises(ConfigError) as err:
        cx509.normalize_extended_key_usage(['webAuth'])
    assert err.value.option == 'extended_key_usage'


# ----------------------------------------------------------------------------- facts

def test_cert_facts(pki):
    now = NOW
    facts = cx509.cert_facts(pki['leaf'], now=now)
    assert facts['subject'] == {'commonName': 'www.example.com'}
    assert facts['subject_string'] == 'CN=www.example.com'
    assert facts['issuer'] == {'organizationName': 'Test', 'commonName': 'Test Issuing'}
    assert facts['issuer_string'] == 'CN=Test Issuing,O=Test'
    assert facts['serial'] == '0ABCDE'
    assert facts['serial_number'] == 0x0ABCDE
    assert facts['not_before'] == '2025-12-22T12:00:00Z'
    assert facts['not_after'] == '2026-03-22T12:00:00Z'
    assert facts['days_left'] == 80.0
    assert facts['lifetime_days'] == 90.0
    assert facts['expired'] is False
    assert facts['subject_alt_names'][0] == 'DNS:www.example.com'
    assert facts['fingerprints']['sha256'] == cx509.fingerprint(pki['leaf'])
    assert facts['fingerprints']['sha1'].count(':') == 19
    assert facts['public_key'] == dict(type='ECDSA', curve='secp256r1', size=256,
                                       fingerprint=cx509.public_key_fingerprint(pki['leaf_key']))
    assert facts['is_ca'] is False and facts['path_length'] is None
    assert facts['key_usage'] == ['digitalSignature']
    assert facts['extended_key_usage'] == ['serverAuth', 'clientAuth']
    ski = x509.SubjectKeyIdentifier.from_public_key(pki['leaf_key'].public_key()).digest
    assert facts['subject_key_identifier'] == ':'.join('%02X' % b for b in ski)
    inter_ski = x509.SubjectKeyIdentifier.from_public_key(pki['inter_key'].public_key()).digest
    assert facts['authority_key_identifier'] == ':'.join('%02X' % b for b in inter_ski)
    assert facts['self_signed'] is False
    assert facts['signature_algorithm'] == 'ecdsa-with-SHA256'
    # JSON friendly
    import json
    json.dumps(facts)


def test_cert_facts_now_injection_and_expiry(pki):
    later = NOW + datetime.timedelta(days=100)
    facts = cx509.cert_facts(pem(pki['leaf']), now=later.isoformat())
    assert facts['expired'] is True
    assert facts['days_left'] == -20.0
    root = cx509.cert_facts(pki['root'], now=NOW)
    assert root['is_ca'] is True and root['path_length'] == 1 and root['self_signed'] is True


def test_cert_facts_default_now_is_current_time(pki):
    facts = cx509.cert_facts(pki['leaf'])
    expected = (cx509.not_after(pki['leaf']) - cx509.utcnow()).total_seconds() / 86400
    assert abs(facts['days_left'] - expected) < 0.02
    assert cx509.utcnow().tzinfo is not None


def test_csr_facts(pki):
    csr = cx509.build_csr(pki['leaf_key'], {'CN': 'api.example.com', 'O': 'Example'},
                          ['DNS:api.example.com', 'IP:192.0.2.1'], ['digitalSignature'], ['serverAuth'])
    facts = cx509.csr_facts(cx509.to_pem(csr))
    assert facts['subject'] == {'organizationName': 'Example', 'commonName': 'api.example.com'}
    assert facts['subject_alt_names'] == ['DNS:api.example.com', 'IP:192.0.2.1']
    assert facts['key_usage'] == ['digitalSignature']
    assert facts['key_usage_critical'] is True
    assert facts['extended_key_usage'] == ['serverAuth']
    assert facts['public_key']['fingerprint'] == cx509.public_key_fingerprint(pki['leaf_key'])
    assert facts['signature_valid'] is True


@pytest.mark.parametrize('make, algorithm', [
    (lambda: rsa.generate_private_key(65537, 2048), 'sha256WithRSAEncryption'),
    (lambda: ec.generate_private_key(ec.SECP384R1()), 'ecdsa-with-SHA384'),
    (ed25519.Ed25519PrivateKey.generate, 'ed25519'),
])
def test_build_csr_hash_follows_key(make, algorithm):
    csr = cx509.build_csr(make(), None, ['DNS:x.example.com'])
    facts = cx509.csr_facts(csr)
    assert facts['signature_algorithm'].lower() == algorithm.lower()
    assert facts['signature_valid']
    # no subject: the SAN extension must be critical
    ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert ext.critical is True


# ----------------------------------------------------------------------------- chains

def test_order_chain(pki):
    shuffled = [pki['root'], pki['other'], pki['inter'], pki['inter']]
    chain = cx509.order_chain(pki['leaf'], shuffled)
    assert chain == [pki['inter'], pki['root']]
    as_text = cx509.order_chain(pem(pki['leaf']), pem(pki['root']) + pem(pki['other']) + pem(pki['inter']))
    assert as_text == [pki['inter'], pki['root']]
    assert cx509.order_chain(pki['leaf'], [pki['other']]) == []
    assert cx509.order_chain(pki['leaf'], []) == []
    # leaf itself in the bundle is dropped
    assert cx509.order_chain(pki['leaf'], [pki['leaf'], pki['inter']]) == [pki['inter']]


def test_order_chain_ignores_name_clash_with_other_key(pki):
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    impostor = make_cert(impostor_key, pki['inter'].subject, days=10, serial=99)
    assert cx509.order_chain(pki['leaf'], [impostor, pki['inter'], pki['root']]) == [pki['inter'], pki['root']]


def test_is_self_signed(pki):
    assert cx509.is_self_signed(pki['root'])
    assert cx509.is_self_signed(pki['other'])
    assert not cx509.is_self_signed(pki['inter'])
    assert not cx509.is_self_signed(pki['leaf'])
    assert cx509.is_issued_by(pki['leaf'], pki['inter'])
    assert not cx509.is_issued_by(pki['leaf'], pki['root'])


def test_to_pem(pki):
    assert cx509.to_pem(pki['leaf']) == pem(pki['leaf'])
    assert cx509.to_pem([pki['inter'], pki['root']]) == pem(pki['inter']) + pem(pki['root'])
    csr = cx509.build_csr(pki['leaf_key'], {'CN': 'x'}, [])
    assert cx509.to_pem(csr).startswith('-----BEGIN CERTIFICATE REQUEST-----\n')
    assert cx509.to_pem(pki['leaf_key'].public_key()).startswith('-----BEGIN PUBLIC KEY-----')
    assert cx509.to_pem('x\n' + pem(pki['leaf'])) == pem(pki['leaf'])
    with pytest.raises(TypeError):
        cx509.to_pem(pki['leaf_key'])


def test_wrong_passphrase_is_named_even_when_padding_decrypts():
    """A wrong passphrase on a traditional CBC key passes the padding check about 1 time in 256:
    the message must still say the passphrase is wrong (seen as a rare flaky failure)."""
    key = rsa.generate_private_key(65537, 2048)
    trad = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.BestAvailableEncryption(b'pw'))
    for attempt in range(600):
        with pytest.raises(ConfigError) as err:
            cx509.load_private_key(trad, passphrase='wrong-%d' % attempt, option='k')
        assert 'wrong passphrase' in err.value.msg
