# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_discovery's library: the JKS reader (against a keystore written here from the
format description), content sniffing, option checks and the walk (depth, excludes, links)."""

from __future__ import annotations

import datetime
import hashlib
import os
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils import discovery
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError

NOW = datetime.datetime.now(datetime.timezone.utc)


def _cert(cn, key, days=30):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))


def _der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def _utf(text):
    raw = text.encode('utf-8')
    return struct.pack('>H', len(raw)) + raw


def _protect(pkcs8, password):
    """Sun's JKS key protector (the inverse of what the reader does)."""
    pw = password.encode('utf-16-be')
    salt = os.urandom(20)
    stream, digest = bytearray(), salt
    while len(stream) < len(pkcs8):
        digest = hashlib.sha1(pw + digest).digest()
        stream.extend(digest)
    blob = salt + bytes(a ^ b for a, b in zip(pkcs8, stream)) + hashlib.sha1(pw + pkcs8).digest()
    alg = bytes.fromhex('300e060a2b060104012a021101010500')
    octet = b'\x04\x82' + struct.pack('>H', len(blob)) + blob
    body = alg + octet
    return b'\x30\x82' + struct.pack('>H', len(body)) + body


def make_jks(password, key, chain, trusted):
    out = struct.pack('>III', 0xFEEDFEED, 2, 2)
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    protected = _protect(pkcs8, password)
    out += struct.pack('>I', 1) + _utf('server') + struct.pack('>Q', 0)
    out += struct.pack('>I', len(protected)) + protected + struct.pack('>I', len(chain))
    for cert in chain:
        der = _der(cert)
        out += _utf('X.509') + struct.pack('>I', len(der)) + der
    der = _der(trusted)
    out += struct.pack('>I', 2) + _utf('root') + struct.pack('>Q', 0) + _utf('X.509') + struct.pack('>I', len(der)) + der
    return out + hashlib.sha1(password.encode('utf-16-be') + b'Mighty Aphrodite' + out).digest()


@pytest.fixture(scope='module')
def material():
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    return dict(key=key, cert=_cert('server.unit.test', key), root=_cert('root.unit.test', other))


def test_jks_entries_key_and_integrity(material):
    data = make_jks('storepass', material['key'], [material['cert']], material['root'])
    password, entries = discovery.parse_jks(data, ['wrong', 'storepass'])
    assert password == 'storepass'
    assert [(e['alias'], e['kind'], len(e['certificates'])) for e in entries] == [
        ('server', 'private_key', 1), ('root', 'trusted_certificate', 1)]
    key = serialization.load_der_private_key(entries[0]['key'], None)
    assert key.public_key().public_numbers() == material['key'].public_key().public_numbers()
    with pytest.raises(discovery.BadPassword):
        discovery.parse_jks(data, ['wrong'])
    tampered = bytearray(data)
    tampered[40] ^= 1
    with pytest.raises(discovery.BadPassword):
        discovery.parse_jks(bytes(tampered), ['storepass'])


def test_parse_content_formats(material):
    found = discovery.parse_content(make_jks('pw123456', material['key'], [material['cert']], material['root']),
                                    ['pw123456'])
    assert (found.fmt, found.problem, len(found.certs), len(found.keys)) == ('jks', None, 2, 1)
    assert found.keys[0]['key'] is not None
    assert discovery.parse_content(b'\xce\xce\xce\xce' + b'\0' * 40).problem == 'unsupported'
    jks = make_jks('pw123456', material['key'], [material['cert']], material['root'])
    assert discovery.parse_content(jks, []).problem == 'password_required'
    assert discovery.parse_content(jks, ['nope']).problem == 'bad_password'
    assert discovery.parse_content(jks[:60], ['pw123456']).problem in ('bad_password', 'not_a_certificate')

    der = _der(material['cert'])
    assert discovery._der_kind(der) == 'certificate'
    p7 = pkcs7.serialize_certificates([material['cert']], serialization.Encoding.DER)
    assert discovery._der_kind(p7) == 'pkcs7'
    p12 = pkcs12.serialize_key_and_certificates(b'x', material['key'], material['cert'], None,
                                                serialization.BestAvailableEncryption(b'secret'))
    assert discovery._der_kind(p12) == 'pkcs12'
    key_der = material['key'].private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
    assert discovery._der_kind(key_der) == 'key'
    found = discovery.parse_content(p12, ['secret'])
    assert (found.fmt, len(found.certs), len(found.keys), found.keys[0]['encrypted']) == ('pkcs12', 1, 1, True)
    assert discovery.parse_content(p12, ['other']).problem == 'bad_password'
    enc_der = material['key'].private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b'keypass'))
    found = discovery.parse_content(enc_der, [])
    assert (found.fmt, found.keys[0]['encrypted'], found.keys[0]['key']) == ('der', True, None)
    assert discovery.parse_content(enc_der, ['keypass']).keys[0]['key'] is not None
    assert discovery.parse_content(b'hello world').problem == 'not_a_certificate'
    csr_only = b'-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'
    assert discovery.parse_content(csr_only).problem == 'not_a_certificate'


def _params(**kw):
    params = dict((k, v.get('default')) for k, v in discovery.OPTIONS.items())
    params.update(kw)
    return params


@pytest.mark.parametrize('kw, option', [
    (dict(max_depth=-1), 'max_depth'),
    (dict(max_file_size=0), 'max_file_size'),
    (dict(max_file_size=discovery.MAX_FILE_SIZE_LIMIT + 1), 'max_file_size'),
    (dict(renew_before_days=-1), 'renew_before_days'),
    (dict(paths=['relative/dir']), 'paths'),
    (dict(paths=['/a\x00b']), 'paths'),
    (dict(paths=[]), 'paths'),
    (dict(excludes=['']), 'excludes'),
    (dict(patterns=['*.pem\x00']), 'patterns'),
    (dict(managed_dirs=['etc']), 'managed_dirs'),
])
def test_option_checks(kw, option):
    params = _params(paths=['/nonexistent'])
    params.update(kw)
    with pytest.raises(ConfigError) as info:
        discovery.run(params)
    assert info.value.option == option and info.value.fix


def test_walk_depth_excludes_links(tmp_path, material):
    pem = material['cert'].public_bytes(serialization.Encoding.PEM)
    (tmp_path / 'a' / 'b' / 'c').mkdir(parents=True)
    (tmp_path / 'top.pem').write_bytes(pem)
    (tmp_path / 'a' / 'one.crt').write_bytes(pem)
    (tmp_path / 'a' / 'b' / 'two.pem').write_bytes(pem)
    (tmp_path / 'a' / 'b' / 'c' / 'three.pem').write_bytes(pem)
    os.link(str(tmp_path / 'top.pem'), str(tmp_path / 'a' / 'hardlink.pem'))
    os.symlink(str(tmp_path / 'a' / 'b'), str(tmp_path / 'linkdir'))
    (tmp_path / 'a' / 'notes.txt').write_text('x')

    def paths(**kw):
        return sorted(c['path'][len(str(tmp_path)):] for c in discovery.run(_params(paths=[str(tmp_path)], **kw))['certificates'])

    assert paths(max_depth=0) == ['/top.pem']
    # the hard link is the file already read as /top.pem
    assert paths(max_depth=1) == ['/a/one.crt', '/top.pem']
    assert paths() == ['/a/b/c/three.pem', '/a/b/two.pem', '/a/one.crt', '/top.pem']
    assert paths(excludes=['b']) == ['/a/one.crt', '/top.pem']
    assert paths(excludes=[str(tmp_path / 'a') + '/*.crt']) == ['/a/b/c/three.pem', '/a/b/two.pem', '/top.pem']
    # following the link enters a/b once (it was searched already): a loop entry, no second copy
    result = discovery.run(_params(paths=[str(tmp_path)], follow_symlinks=True))
    assert len(result['certificates']) == 4
    assert [(p['path'], p['reason']) for p in result['problems']] == [(str(tmp_path / 'linkdir'), 'loop')]
    everything = discovery.run(_params(paths=[str(tmp_path)], patterns=['*']))
    assert [(p['path'], p['reason']) for p in everything['problems']] == [
        (str(tmp_path / 'a' / 'notes.txt'), 'not_a_certificate')]
    assert everything['totals']['files_seen'] == 6 and everything['totals']['files_read'] == 5
