# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the certificate_request module: its core ``run()`` on real files in a temp
directory, and ``main()`` with patched module arguments."""

from __future__ import annotations

import datetime
import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils import key_request as mod
from ansible_collections.certforge.pki.plugins.modules import certificate_request as module

PASSPHRASE = 'correct horse battery staple'


def params(**kwargs):
    out = dict((name, None) for name in mod.REQUEST_OPTIONS)
    out.update(mod.DEFAULTS)
    out['requests'] = None
    out.update(kwargs)
    return out


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


def paths(tmp, name='www'):
    return dict(privatekey_path=str(tmp / ('%s.key' % name)), csr_path=str(tmp / ('%s.csr' % name)))


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def snapshot(directory):
    out = {}
    for root, _dirs, files in os.walk(str(directory)):
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            with open(path, 'rb') as handle:
                out[path] = (handle.read(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def self_signed(key, cn='www.example.com', days=30):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, cx509.hash_for_key(key)))
    return cert.public_bytes(serialization.Encoding.PEM)


# ----------------------------------------------------------------------------- creation and idempotence

def test_creates_key_and_csr(tmp):
    p = params(common_name='www.example.com', **paths(tmp))
    res = mod.run(p)
    assert res['changed'] is True
    assert res['changed_reasons'] == ['key_created', 'csr_created']
    assert res['privatekey_changed'] and res['csr_changed']
    assert mode_of(p['privatekey_path']) == 0o600
    assert mode_of(p['csr_path']) == 0o644
    key_facts = res['privatekey']
    assert key_facts['type'] == 'ECDSA' and key_facts['curve'] == 'secp256r1' and key_facts['size'] == 256
    assert key_facts['mode'] == '0600'
    with open(p['privatekey_path'], 'rb') as handle:
        key = cx509.load_private_key(handle.read())
    assert key_facts['public_key_fingerprint'] == cx509.public_key_fingerprint(key)
    with open(p['csr_path']) as handle:
        assert handle.read() == res['csr']
    info = res['csr_info']
    assert info['subject'] == {'commonName': 'www.example.com'}
    assert info['subject_alt_names'] == ['DNS:www.example.com']
    assert info['public_key']['fingerprint'] == key_facts['public_key_fingerprint']
    assert info['signature_valid'] is True
    # never key material in the result
    assert 'PRIVATE KEY' not in json.dumps(res)


def test_second_run_is_unchanged(tmp):
    p = params(common_name='www.example.com', subject={'O': 'Example', 'C': 'DE'},
               subject_alt_names=['www.example.com', 'IP:192.0.2.1'], key_usage=['digitalSignature'],
               extended_key_usage=['serverAuth'], **paths(tmp))
    first = mod.run(p)
    before = snapshot(tmp)
    second = mod.run(p)
    assert second['changed'] is False
    assert second['changed_reasons'] == []
    assert second['csr'] == first['csr']
    assert snapshot(tmp) == before
    # SAN order and spelling do not matter
    third = mod.run(dict(p, subject_alt_names=['IP:192.0.2.1', 'DNS:WWW.example.com']))
    assert third['changed'] is False


@pytest.mark.parametrize('change, reason', [
    (dict(subject_alt_names=['www.example.com', 'example.com']), 'csr_san_changed'),
    (dict(subject={'O': 'Other'}), 'csr_subject_changed'),
    (dict(common_name='web.example.com', subject_alt_names=['www.example.com']), 'csr_subject_changed'),
    (dict(key_usage=['digitalSignature', 'keyEncipherment']), 'csr_key_usage_changed'),
    (dict(extended_key_usage=['serverAuth', 'clientAuth']), 'csr_extended_key_usage_changed'),
])
def test_input_change_changes_only_the_csr(tmp, change, reason):
    p = params(common_name='www.example.com', subject={'O': 'Example'}, key_usage=['digitalSignature'],
               extended_key_usage=['serverAuth'], **paths(tmp))
    first = mod.run(p)
    with open(p['privatekey_path'], 'rb') as handle:
        key_bytes = handle.read()
    res = mod.run(dict(p, **change))
    assert res['changed'] is True
    assert res['changed_reasons'] == [reason]
    assert res['privatekey_changed'] is False and res['csr_changed'] is True
    with open(p['privatekey_path'], 'rb') as handle:
        assert handle.read() == key_bytes
    assert res['privatekey']['public_key_fingerprint'] == first['privatekey']['public_key_fingerprint']
    assert res['csr'] != first['csr']
    assert mod.run(dict(p, **change))['changed'] is False


@pytest.mark.parametrize('key_type, size, curve, expect', [
    ('RSA', 2048, None, {'type': 'RSA', 'size': 2048}),
    ('ECDSA', None, 'secp384r1', {'type': 'ECDSA', 'curve': 'secp384r1', 'size': 384}),
    ('Ed25519', None, None, {'type': 'Ed25519', 'size': 256}),
])
def test_key_types(tmp, key_type, size, curve, expect):
    p = params(common_name='www.example.com', privatekey_type=key_type, **paths(tmp))
    if size:
        p['privatekey_size'] = size
    if curve:
        p['privatekey_curve'] = curve
    res = mod.run(p)
    got = dict((k, res['privatekey'][k]) for k in expect)
    assert got == expect
    assert cx509.key_description(cx509.load_csr(res['csr'])) == expect
    assert mod.run(p)['changed'] is False


@pytest.mark.parametrize('first, second, reason', [
    (dict(privatekey_type='ECDSA'), dict(privatekey_type='RSA'), 'key_type_changed'),
    (dict(privatekey_type='RSA', privatekey_size=2048), dict(privatekey_type='RSA', privatekey_size=3072),
     'key_size_changed'),
    (dict(privatekey_curve='secp256r1'), dict(privatekey_curve='secp384r1'), 'key_curve_changed'),
])
def test_key_mismatch_regenerates(tmp, first, second, reason):
    base = params(common_name='www.example.com', **paths(tmp))
    one = mod.run(dict(base, **first))
    two = mod.run(dict(base, **second))
    assert two['changed_reasons'] == [reason, 'csr_key_changed']
    assert two['privatekey_changed'] is True
    assert two['privatekey']['public_key_fingerprint'] != one['privatekey']['public_key_fingerprint']
    assert mod.run(dict(base, **second))['changed'] is False


def test_rotate_key_with_backup(tmp):
    p = params(common_name='www.example.com', **paths(tmp))
    one = mod.run(p)
    with open(p['privatekey_path'], 'rb') as handle:
        old_key = handle.read()
    two = mod.run(dict(p, rotate_key=True, backup=True))
    assert two['changed_reasons'] == ['key_rotated', 'csr_key_changed']
    assert two['privatekey']['public_key_fingerprint'] != one['privatekey']['public_key_fingerprint']
    assert mode_of(p['privatekey_path']) == 0o600
    backup = two['backup_file']
    assert backup.startswith(p['privatekey_path'] + '.') and backup.endswith('~')
    assert mode_of(backup) == 0o600
    with open(backup, 'rb') as handle:
        assert handle.read() == old_key
    assert mod.run(p)['changed'] is False


# ----------------------------------------------------------------------------- modes and owners

def test_existing_wide_key_is_narrowed_never_widened(tmp):
    p = params(common_name='www.example.com', **paths(tmp))
    mod.run(p)
    os.chmod(p['privatekey_path'], 0o644)
    res = mod.run(p)
    assert res['changed_reasons'] == ['key_mode_tightened']
    assert mode_of(p['privatekey_path']) == 0o600
    os.chmod(p['privatekey_path'], 0o400)
    assert mod.run(p)['changed'] is False
    assert mode_of(p['privatekey_path']) == 0o400
    # a replaced key keeps the narrower mode
    mod.run(dict(p, rotate_key=True))
    assert mode_of(p['privatekey_path']) == 0o400


def test_csr_mode_option(tmp):
    p = params(common_name='www.example.com', mode='0640', **paths(tmp))
    mod.run(p)
    assert mode_of(p['csr_path']) == 0o640
    assert mode_of(p['privatekey_path']) == 0o600
    res = mod.run(dict(p, mode='0600'))
    assert res['changed_reasons'] == ['csr_mode_changed']
    assert mode_of(p['csr_path']) == 0o600
    with pytest.raises(ConfigError) as err:
        mod.run(dict(p, mode='rwx'))
    assert err.value.option == 'mode'


@pytest.mark.skipif(os.geteuid() != 0, reason='changing owners needs root')
def test_owner_and_group(tmp):
    p = params(common_name='www.example.com', owner='65534', group='65534', **paths(tmp))
    res = mod.run(p)
    for path in (p['privatekey_path'], p['csr_path']):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert mode_of(p['privatekey_path']) == 0o600
    assert res['privatekey']['owner'] != 'root'
    assert mod.run(p)['changed'] is False
    res = mod.run(dict(p, owner='0', group='0'))
    assert res['changed_reasons'] == ['key_owner_changed', 'key_group_changed', 'csr_owner_changed',
                                      'csr_group_changed']
    assert os.stat(p['privatekey_path']).st_uid == 0


def test_unknown_owner_fails_before_writing(tmp):
    p = params(common_name='www.example.com', owner='no-such-user-here', **paths(tmp))
    with pytest.raises(ConfigError) as err:
        mod.run(p)
    assert err.value.option == 'owner'
    assert os.listdir(str(tmp)) == []


# ----------------------------------------------------------------------------- check mode and diff

def test_check_mode_writes_nothing(tmp):
    p = params(common_name='www.example.com', **paths(tmp))
    res = mod.run(p, check_mode=True, diff=True)
    assert res['changed'] is True
    assert res['changed_reasons'] == ['key_created', 'csr_created']
    assert res['csr'] is None
    assert 'no CSR can be produced' in res['msg']
    assert res['privatekey']['public_key_fingerprint'] is None
    assert res['csr_info']['subject_alt_names'] == ['DNS:www.example.com']
    assert res['diff']['before'] == {}
    assert res['diff']['after']['privatekey']['type'] == 'ECDSA'
    assert os.listdir(str(tmp)) == []


def test_check_mode_with_existing_key_returns_a_csr(tmp):
    p = params(common_name='www.example.com', **paths(tmp))
    mod.run(p)
    before = snapshot(tmp)
    res = mod.run(dict(p, subject_alt_names=['www.example.com', 'api.example.com']), check_mode=True, diff=True)
    assert res['changed_reasons'] == ['csr_san_changed']
    assert cx509.csr_facts(res['csr'])['subject_alt_names'] == ['DNS:www.example.com', 'DNS:api.example.com']
    assert res['diff']['before']['csr']['subject_alt_names'] == ['DNS:www.example.com']
    assert res['diff']['after']['csr']['subject_alt_names'] == ['DNS:www.example.com', 'DNS:api.example.com']
    assert snapshot(tmp) == before
    rotated = mod.run(dict(p, rotate_key=True), check_mode=True)
    assert rotated['csr'] is None and 'replaced' in rotated['msg']
    assert snapshot(tmp) == before


def test_diff_holds_no_key_material(tmp):
    p = params(common_name='www.example.com', privatekey_passphrase=PASSPHRASE, **paths(tmp))
    res = mod.run(p, diff=True)
    text = json.dumps(res)
    assert PASSPHRASE not in text and 'PRIVATE KEY' not in text
    assert res['privatekey']['encrypted'] is True


# ----------------------------------------------------------------------------- CSR only returned

def test_without_csr_path_only_returns_the_csr(tmp):
    key_path = str(tmp / 'k.key')
    p = params(common_name='www.example.com', privatekey_path=key_path)
    res = mod.run(p)
    assert res['changed_reasons'] == ['key_created']
    assert res['csr_path'] is None
    assert cx509.verify_csr_signature(res['csr'])
    assert os.listdir(str(tmp)) == ['k.key']
    again = mod.run(p)
    assert again['changed'] is False and again['csr']


# ----------------------------------------------------------------------------- passphrases and bad input

def test_passphrase_roundtrip_and_errors(tmp):
    p = params(common_name='www.example.com', privatekey_passphrase=PASSPHRASE, **paths(tmp))
    mod.run(p)
    with open(p['privatekey_path'], 'rb') as handle:
        assert handle.read().startswith(b'-----BEGIN ENCRYPTED PRIVATE KEY-----')
    assert mod.run(p)['changed'] is False
    before = snapshot(tmp)
    for wrong, words in (('nope', 'wrong passphrase'), (None, 'no passphrase')):
        with pytest.raises(ConfigError) as err:
            mod.run(dict(p, privatekey_passphrase=wrong))
        assert err.value.option == 'privatekey_path'
        assert words in err.value.msg
        assert PASSPHRASE not in str(err.value)
    assert snapshot(tmp) == before


@pytest.mark.parametrize('content, words', [
    (b'garbage, not a key', 'not a private key'),
    (b'', 'empty'),
    ('certificate', 'a certificate, not a private key'),
])
def test_bad_key_file_fails_and_changes_nothing(tmp, content, words):
    p = params(common_name='www.example.com', **paths(tmp))
    if content == 'certificate':
        content = self_signed(cx509.generate_private_key('ECDSA'))
    with open(p['privatekey_path'], 'wb') as handle:
        handle.write(content)
    before = snapshot(tmp)
    for extra in ({}, {'rotate_key': True}):
        with pytest.raises(ConfigError) as err:
            mod.run(dict(p, **extra))
        assert err.value.option == 'privatekey_path'
        assert words in err.value.msg
        assert err.value.fix
    assert snapshot(tmp) == before


def test_key_path_is_a_directory(tmp):
    (tmp / 'dir.key').mkdir()
    p = params(common_name='www.example.com', privatekey_path=str(tmp / 'dir.key'))
    with pytest.raises(ConfigError) as err:
        mod.run(p)
    assert err.value.option == 'privatekey_path'
    assert 'not a regular file' in err.value.msg


@pytest.mark.parametrize('option', ['privatekey_path', 'csr_path'])
def test_missing_directory(tmp, option):
    p = params(common_name='www.example.com', **paths(tmp))
    p[option] = str(tmp / 'missing' / 'file')
    with pytest.raises(ConfigError) as err:
        mod.run(p)
    assert err.value.option == option
    assert 'does not exist' in err.value.msg and 'create the directory' in err.value.fix
    assert os.listdir(str(tmp)) == []


def test_csr_path_holding_a_certificate_is_refused(tmp):
    p = params(common_name='www.example.com', **paths(tmp))
    cert = self_signed(cx509.generate_private_key('ECDSA'))
    with open(p['csr_path'], 'wb') as handle:
        handle.write(cert)
    with pytest.raises(ConfigError) as err:
        mod.run(p)
    assert err.value.option == 'csr_path'
    assert 'refusing to overwrite' in err.value.msg
    assert os.listdir(str(tmp)) == ['www.csr']


def test_unreadable_or_tampered_csr_is_replaced(tmp):
    p = params(common_name='www.example.com', **paths(tmp))
    mod.run(p)
    with open(p['csr_path'], 'w') as handle:
        handle.write('not a csr')
    assert mod.run(p)['changed_reasons'] == ['csr_unreadable']
    # a CSR signed by another key for the same names
    other = cx509.generate_private_key('ECDSA')
    with open(p['csr_path'], 'w') as handle:
        handle.write(cx509.to_pem(cx509.build_csr(other, {'CN': 'www.example.com'}, ['www.example.com'])))
    assert mod.run(p)['changed_reasons'] == ['csr_key_changed']
    assert mod.run(p)['changed'] is False


@pytest.mark.parametrize('change, option', [
    (dict(privatekey_type='DSA'), 'privatekey_type'),
    (dict(privatekey_type='RSA', privatekey_size=1024), 'privatekey_size'),
    (dict(privatekey_curve='secp521r1'), 'privatekey_curve'),
    (dict(subject_alt_names=['FTP:x']), 'subject_alt_names'),
    (dict(subject={'C': 'Germany'}), 'subject'),
    (dict(key_usage=['everything']), 'key_usage'),
    (dict(extended_key_usage=['webAuth']), 'extended_key_usage'),
    (dict(common_name='My Web Server'), 'common_name'),
    (dict(common_name=None), 'common_name'),
    (dict(privatekey_path=None), 'privatekey_path'),
])
def test_bad_options(tmp, change, option):
    p = params(common_name='www.example.com', **paths(tmp))
    p.update(change)
    with pytest.raises(ConfigError) as err:
        mod.run(p)
    assert err.value.option == option
    assert err.value.fix
    assert os.listdir(str(tmp)) == []


def test_common_name_not_a_dns_name_with_explicit_sans(tmp):
    p = params(common_name='My Web Server', subject_alt_names=['www.example.com'], **paths(tmp))
    res = mod.run(p)
    assert res['csr_info']['subject'] == {'commonName': 'My Web Server'}
    none = mod.run(dict(p, subject_alt_names=[], rotate_key=False))
    assert none['csr_info']['subject_alt_names'] == []
    assert none['changed_reasons'] == ['csr_san_changed']


def test_common_name_overrides_subject_cn(tmp):
    p = params(common_name='a.example.com', subject={'CN': 'b.example.com', 'O': 'X'}, **paths(tmp))
    res = mod.run(p)
    assert res['csr_info']['subject'] == {'organizationName': 'X', 'commonName': 'a.example.com'}


# ----------------------------------------------------------------------------- current certificate

def test_current_certificate_facts(tmp):
    p = params(common_name='www.example.com', certificate_path=str(tmp / 'www.crt'), **paths(tmp))
    res = mod.run(p)
    assert res['current_certificate'] is None
    with open(p['privatekey_path'], 'rb') as handle:
        key = cx509.load_private_key(handle.read())
    with open(p['certificate_path'], 'wb') as handle:
        handle.write(self_signed(key, days=20))
    res = mod.run(p)
    current = res['current_certificate']
    assert res['changed'] is False
    assert current['key_matches'] is True
    assert current['subject_alt_names'] == ['DNS:www.example.com']
    assert 19 < current['days_left'] <= 20
    assert current['pem'].startswith('-----BEGIN CERTIFICATE-----')
    assert current['path'] == p['certificate_path']
    # after a rotation the deployed certificate no longer matches
    rotated = mod.run(dict(p, rotate_key=True))
    assert rotated['current_certificate']['key_matches'] is False
    check = mod.run(dict(p, rotate_key=True), check_mode=True)
    assert check['current_certificate']['key_matches'] is False


def test_current_certificate_unparseable_warns(tmp):
    p = params(common_name='www.example.com', certificate_path=str(tmp / 'www.crt'), **paths(tmp))
    with open(p['certificate_path'], 'w') as handle:
        handle.write('rubbish')
    warnings = []
    res = mod.run(p, warn=warnings.append)
    assert res['current_certificate']['error']
    assert warnings and 'certificate_path' in warnings[0]


# ----------------------------------------------------------------------------- batch

def test_batch_results_in_order_with_defaults(tmp):
    p = params(privatekey_type='Ed25519', subject={'O': 'Example'}, requests=[
        dict(common_name='a.example.com', **paths(tmp, 'a')),
        dict(common_name='b.example.com', privatekey_type='ECDSA', privatekey_curve='secp384r1', **paths(tmp, 'b')),
        dict(common_name='c.example.com', privatekey_path=str(tmp / 'c.key')),
    ])
    res = mod.run(p, diff=True)
    assert res['changed'] is True
    results = res['results']
    names = [r['csr_info']['subject']['commonName'] for r in results]
    assert names == ['a.example.com', 'b.example.com', 'c.example.com']
    assert results[0]['privatekey']['type'] == 'Ed25519'
    assert results[1]['privatekey']['curve'] == 'secp384r1'
    assert results[2]['csr_path'] is None and results[2]['csr']
    assert all(r['csr_info']['subject']['organizationName'] == 'Example' for r in results)
    assert len(res['diff']) == 3
    assert all(set(r) >= {'changed', 'changed_reasons', 'privatekey', 'csr', 'csr_info'} for r in results)
    again = mod.run(p)
    assert again['changed'] is False
    assert [r['changed'] for r in again['results']] == [False, False, False]


def test_batch_bad_entry_writes_nothing(tmp):
    p = params(requests=[
        dict(common_name='a.example.com', **paths(tmp, 'a')),
        dict(common_name='b.example.com', privatekey_path=str(tmp / 'missing' / 'b.key')),
    ])
    with pytest.raises(ConfigError) as err:
        mod.run(p)
    assert err.value.option == 'requests[1].privatekey_path'
    assert os.listdir(str(tmp)) == []


def test_batch_duplicate_paths(tmp):
    p = params(privatekey_path=str(tmp / 'shared.key'), requests=[
        dict(common_name='a.example.com'), dict(common_name='b.example.com')])
    with pytest.raises(ConfigError) as err:
        mod.run(p)
    assert err.value.option == 'requests[1].privatekey_path'
    assert 'more than one request' in err.value.msg


# ----------------------------------------------------------------------------- main()

def run_main(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    out = json.loads(capsys.readouterr().out)
    return exit_info.value.code, out


def test_main_success_and_no_log(tmp, capsys):
    args = dict(common_name='www.example.com', privatekey_passphrase=PASSPHRASE, **paths(tmp))
    code, out = run_main(args, capsys)
    assert code == 0
    assert out['changed'] is True
    assert out['changed_reasons'] == ['key_created', 'csr_created']
    assert PASSPHRASE not in json.dumps(out)
    code, out = run_main(args, capsys)
    assert out['changed'] is False


def test_main_check_mode(tmp, capsys):
    args = dict(common_name='www.example.com', _ansible_check_mode=True, **paths(tmp))
    code, out = run_main(args, capsys)
    assert code == 0 and out['changed'] is True and out['csr'] is None
    assert os.listdir(str(tmp)) == []


def test_main_failure_names_option(tmp, capsys):
    args = dict(common_name='www.example.com', privatekey_path=str(tmp / 'nodir' / 'k.key'))
    code, out = run_main(args, capsys)
    assert code == 1 and out['failed'] is True
    assert out['error_option'] == 'privatekey_path'
    assert out['msg'].startswith('privatekey_path: ')
    assert 'Traceback' not in json.dumps(out)


def test_main_rejects_unsupported_size(tmp, capsys):
    args = dict(common_name='www.example.com', privatekey_type='RSA', privatekey_size=1024, **paths(tmp))
    code, out = run_main(args, capsys)
    assert code == 1
    assert 'privatekey_size' in out['msg'] and '2048' in out['msg']
    assert os.listdir(str(tmp)) == []


def test_main_batch(tmp, capsys):
    args = dict(requests=[dict(common_name='a.example.com', **paths(tmp, 'a')),
                          dict(common_name='b.example.com', privatekey_passphrase=PASSPHRASE, **paths(tmp, 'b'))])
    code, out = run_main(args, capsys)
    assert code == 0 and len(out['results']) == 2
    assert PASSPHRASE not in json.dumps(out)


def test_main_requires_key_path_or_requests(capsys):
    code, out = run_main(dict(common_name='x.example.com'), capsys)
    assert code == 1
    assert 'privatekey_path' in out['msg'] and 'requests' in out['msg']


def test_signature_hash_of_p384(tmp):
    p = params(common_name='www.example.com', privatekey_curve='secp384r1', **paths(tmp))
    res = mod.run(p)
    csr = cx509.load_csr(res['csr'])
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA384)
