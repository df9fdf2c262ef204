# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests: real ansible-playbook runs on localhost (connection local, the virtualenv's
Python) of certforge.pki.certificate_request and certforge.pki.certificate_info, through the
shared ``run_playbook`` fixture of conftest.py, which records every task result as Ansible
returned it."""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509

IS_ROOT = os.geteuid() == 0
PASSPHRASE = 'integration passphrase 7f3a'


def play(run_playbook, tasks, check=False, diff=False, verbosity=0, expect_rc=0):
    """Run ``tasks`` on localhost through the shared ``run_playbook`` fixture (conftest.py)."""
    args = ('-' + 'v' * verbosity,) if verbosity else ()
    result = run_playbook([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}],
                          check=check, diff=diff, args=args)
    if expect_rc is not None:
        assert result.rc == expect_rc, str(result)
    return Results(result)


class Results:
    """``results['task name']`` is that task's result dict."""

    def __init__(self, result):
        self.result = result
        self.stdout, self.stderr, self.tasks = result.stdout, result.stderr, result.tasks

    def __getitem__(self, name):
        return self.result.task(name)

    def status(self, name):
        return self.result.status(name)


def request_task(name, **args):
    return {'name': name, 'certforge.pki.certificate_request': args}


def snapshot(directory):
    out = {}
    for path in sorted(Path(directory).rglob('*')):
        if not path.is_file():
            continue
        st = path.stat()
        out[str(path)] = (path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def load_key(path, passphrase=None):
    return cx509.load_private_key(Path(path).read_bytes(), passphrase=passphrase)


def self_signed(key, names, days=30):
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, cx509.hash_for_key(key)))


@pytest.fixture
def work(tmp_path):
    data = tmp_path / 'pki'
    data.mkdir()
    return data


# ----------------------------------------------------------------------------- key types, modes, idempotence

KEY_CASES = [
    ('rsa', dict(privatekey_type='RSA', privatekey_size=2048), {'type': 'RSA', 'size': 2048}),
    ('ecdsa', dict(privatekey_type='ECDSA', privatekey_curve='secp384r1'),
     {'type': 'ECDSA', 'curve': 'secp384r1', 'size': 384}),
    ('ed25519', dict(privatekey_type='Ed25519'), {'type': 'Ed25519', 'size': 256}),
]


def test_key_types_mode_owner_and_second_run_unchanged(work, run_playbook):
    owner = dict(owner='nobody', group='nogroup') if IS_ROOT else {}
    tasks = [request_task(label, privatekey_path=str(work / ('%s.key' % label)),
                          csr_path=str(work / ('%s.csr' % label)), common_name='%s.example.com' % label,
                          **dict(opts, **owner))
             for label, opts, _expect in KEY_CASES]
    first = play(run_playbook, tasks)
    for label, _opts, expect in KEY_CASES:
        res = first[label]
        assert res['changed'] is True, res
        assert res['changed_reasons'] == ['key_created', 'csr_created']
        key_path = work / ('%s.key' % label)
        st = key_path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600
        if IS_ROOT:
            assert (st.st_uid, st.st_gid) == (65534, 65534)
            assert res['privatekey']['owner'] == 'nobody'
        key = load_key(key_path)
        assert cx509.key_description(key) == expect
        assert dict((k, res['privatekey'][k]) for k in expect) == expect
        csr = cx509.load_csr((work / ('%s.csr' % label)).read_bytes())
        assert cx509.key_matches_cert(key, csr)
        assert cx509.san_list(csr) == ['DNS:%s.example.com' % label]
        assert res['csr'] == (work / ('%s.csr' % label)).read_text()
        assert 'PRIVATE KEY' not in json.dumps(res)
    before = snapshot(work)
    second = play(run_playbook, tasks)
    for label, _opts, _expect in KEY_CASES:
        assert second[label]['changed'] is False, second[label]
        assert second[label]['changed_reasons'] == []
    assert snapshot(work) == before


# ----------------------------------------------------------------------------- SAN change, rotation

def test_san_change_changes_only_the_csr(work, run_playbook):
    base = dict(privatekey_path=str(work / 'www.key'), csr_path=str(work / 'www.csr'),
                common_name='www.example.com')
    play(run_playbook, [request_task('create', **base)])
    key_before = (work / 'www.key').read_bytes()
    csr_before = (work / 'www.csr').read_bytes()
    changed = play(run_playbook, [request_task(
        'more names', subject_alt_names=['DNS:www.example.com', 'DNS:example.com', 'IP:192.0.2.8'], **base)])
    res = changed['more names']
    assert res['changed'] is True
    assert res['changed_reasons'] == ['csr_san_changed']
    assert res['privatekey_changed'] is False and res['csr_changed'] is True
    assert (work / 'www.key').read_bytes() == key_before
    assert (work / 'www.csr').read_bytes() != csr_before
    csr = cx509.load_csr((work / 'www.csr').read_bytes())
    assert cx509.san_list(csr) == ['DNS:www.example.com', 'DNS:example.com', 'IP:192.0.2.8']


def test_rotate_key(work, run_playbook):
    base = dict(privatekey_path=str(work / 'www.key'), csr_path=str(work / 'www.csr'),
                common_name='www.example.com')
    first = play(run_playbook, [request_task('create', **base)])['create']
    rotated = play(run_playbook, [request_task('rotate', rotate_key=True, **base)])['rotate']
    assert rotated['changed'] is True
    assert rotated['changed_reasons'] == ['key_rotated', 'csr_key_changed']
    assert rotated['privatekey']['public_key_fingerprint'] != first['privatekey']['public_key_fingerprint']
    key = load_key(work / 'www.key')
    assert cx509.public_key_fingerprint(key) == rotated['privatekey']['public_key_fingerprint']
    assert stat.S_IMODE((work / 'www.key').stat().st_mode) == 0o600
    assert cx509.key_matches_cert(key, cx509.load_csr((work / 'www.csr').read_bytes()))


# ----------------------------------------------------------------------------- check mode

def test_check_mode_writes_nothing(work, run_playbook):
    base = dict(privatekey_path=str(work / 'www.key'), csr_path=str(work / 'www.csr'),
                common_name='www.example.com')
    check = play(run_playbook, [request_task('plan', **base)], check=True, diff=True)
    res = check['plan']
    assert res['changed'] is True
    assert res['changed_reasons'] == ['key_created', 'csr_created']
    assert res['csr'] is None
    assert 'no CSR can be produced' in res['msg']
    assert snapshot(work) == {}
    assert '+' in check.stdout  # --diff printed the planned facts

    play(run_playbook, [request_task('create', **base)])
    before = snapshot(work)
    check = play(run_playbook, [request_task('plan', subject_alt_names=['a.example.com'], **base),
                                request_task('plan rotate', rotate_key=True, **base)], check=True)
    assert check['plan']['changed_reasons'] == ['csr_san_changed']
    assert cx509.san_list(cx509.load_csr(check['plan']['csr'])) == ['DNS:a.example.com']
    assert check['plan rotate']['changed_reasons'] == ['key_rotated', 'csr_key_changed']
    assert snapshot(work) == before


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs_fail_clearly_and_change_nothing(work, run_playbook):
    good_key = cx509.generate_private_key('ECDSA')
    (work / 'garbage.key').write_text('this is not a key\n')
    (work / 'dir.key').mkdir()
    (work / 'encrypted.key').write_bytes(cx509.private_key_to_pem(good_key, PASSPHRASE))
    (work / 'cert.key').write_bytes(self_signed(good_key, ['x.example.com']).public_bytes(
        serialization.Encoding.PEM))
    for path in work.iterdir():
        if path.is_file():
            os.chmod(str(path), 0o600)
    cases = [
        ('garbage key', dict(privatekey_path=str(work / 'garbage.key')), 'privatekey_path', 'not a private key'),
        ('directory key', dict(privatekey_path=str(work / 'dir.key')), 'privatekey_path', 'not a regular file'),
        ('wrong passphrase', dict(privatekey_path=str(work / 'encrypted.key'),
                                  privatekey_passphrase='not-the-passphrase'), 'privatekey_path', 'wrong passphrase'),
        ('missing passphrase', dict(privatekey_path=str(work / 'encrypted.key')), 'privatekey_path',
         'no passphrase'),
        ('certificate as key', dict(privatekey_path=str(work / 'cert.key')), 'privatekey_path',
         'a certificate, not a private key'),
        ('missing key directory', dict(privatekey_path=str(work / 'nodir' / 'k.key')), 'privatekey_path',
         'does not exist'),
        ('missing csr directory', dict(privatekey_path=str(work / 'new.key'), csr_path=str(work / 'nodir' / 'c.csr')),
         'csr_path', 'does not exist'),
        ('unsupported size', dict(privatekey_path=str(work / 'new.key'), privatekey_type='RSA', privatekey_size=1024),
         'privatekey_size', '2048'),
        ('unsupported curve', dict(privatekey_path=str(work / 'new.key'), privatekey_curve='secp521r1'),
         'privatekey_curve', 'secp256r1'),
    ]
    tasks = []
    for name, args, _option, _words in cases:
        task = request_task(name, common_name='www.example.com', **args)
        task['ignore_errors'] = True
        tasks.append(task)
    before = snapshot(work)
    run = play(run_playbook, tasks)
    for name, _args, option, words in cases:
        assert run.status(name) == 'ignored', name
        res = run[name]
        assert option in res['msg'], (name, res['msg'])
        assert words in res['msg'], (name, res['msg'])
        assert 'Traceback' not in json.dumps(res) and 'module_stderr' not in res, name
        assert PASSPHRASE not in json.dumps(res)
    assert run['certificate as key']['msg'].count('Fix:') == 1
    assert snapshot(work) == before
    assert not (work / 'new.key').exists()


# ----------------------------------------------------------------------------- batch, current certificate, info

def test_batch_current_certificate_and_certificate_info(work, run_playbook):
    key = cx509.generate_private_key('ECDSA')
    (work / 'a.key').write_bytes(cx509.private_key_to_pem(key))
    os.chmod(str(work / 'a.key'), 0o600)
    (work / 'a.crt').write_bytes(self_signed(key, ['a.example.com'], days=20).public_bytes(serialization.Encoding.PEM))
    batch = {
        'name': 'batch',
        'certforge.pki.certificate_request': {
            'subject': {'O': 'Example'},
            'requests': [
                {'privatekey_path': str(work / 'a.key'), 'csr_path': str(work / 'a.csr'),
                 'common_name': 'a.example.com', 'certificate_path': str(work / 'a.crt')},
                {'privatekey_path': str(work / 'b.key'), 'csr_path': str(work / 'b.csr'),
                 'common_name': 'b.example.com', 'privatekey_type': 'Ed25519',
                 'certificate_path': str(work / 'b.crt')},
            ],
        },
    }
    info_tasks = [
        {'name': 'info', 'certforge.pki.certificate_info': {
            'path': str(work / 'a.crt'), 'privatekey_path': str(work / 'a.key'), 'renew_before_days': 10,
            'expected_subject_alt_names': ['a.example.com']}},
        {'name': 'info due', 'certforge.pki.certificate_info': {
            'path': str(work / 'a.crt'), 'renew_before_days': 30}},
        {'name': 'info missing', 'certforge.pki.certificate_info': {'path': str(work / 'b.crt')}},
    ]
    run = play(run_playbook, [batch] + info_tasks)
    res = run['batch']
    assert res['changed'] is True
    first, second = res['results']
    assert first['changed_reasons'] == ['csr_created']            # the existing key is kept
    assert second['changed_reasons'] == ['key_created', 'csr_created']
    assert second['privatekey']['type'] == 'Ed25519'
    current = first['current_certificate']
    assert current['key_matches'] is True
    assert current['subject_alt_names'] == ['DNS:a.example.com']
    assert 19 < current['days_left'] <= 20
    assert second['current_certificate'] is None
    assert first['csr_info']['subject'] == {'organizationName': 'Example', 'commonName': 'a.example.com'}

    info = run['info']
    assert info['changed'] is False
    assert info['key_matches'] is True
    assert info['needs_renewal'] is False and info['renewal_reasons'] == []
    assert info['public_key']['fingerprint'] == cx509.public_key_fingerprint(key)
    assert run['info due']['needs_renewal'] is True
    assert run['info due']['renewal_reasons'] == ['inside_window']
    assert run['info missing']['exists'] is False
    assert run['info missing']['renewal_reasons'] == ['missing']

    again = play(run_playbook, [batch])
    assert again['batch']['changed'] is False


# ----------------------------------------------------------------------------- live endpoint, secrets at -vvvv

class TLSServer:
    """A TLS server on 127.0.0.1 in a thread: completes handshakes, then closes."""

    def __init__(self, cert_file, key_file):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert_file), str(key_file), password=PASSPHRASE)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
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


def test_live_endpoint_and_no_secret_at_high_verbosity(work, run_playbook):
    base = dict(privatekey_path=str(work / 'srv.key'), csr_path=str(work / 'srv.csr'), common_name='localhost',
                privatekey_passphrase=PASSPHRASE)
    created = play(run_playbook, [request_task('create', **base)], verbosity=4)
    assert PASSPHRASE not in created.stdout and PASSPHRASE not in created.stderr
    assert created['create']['privatekey']['encrypted'] is True
    key = load_key(work / 'srv.key', PASSPHRASE)
    cert = self_signed(key, ['localhost'], days=90)
    (work / 'srv.crt').write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    server = TLSServer(work / 'srv.crt', work / 'srv.key')
    try:
        run = play(run_playbook, [
            {'name': 'live', 'certforge.pki.certificate_info': {
                'host': '127.0.0.1', 'port': server.port, 'server_name': 'localhost',
                'ca_path': str(work / 'srv.crt'), 'expected_subject_alt_names': ['DNS:localhost']}},
            {'name': 'live key', 'certforge.pki.certificate_info': {
                'host': '127.0.0.1', 'port': server.port, 'privatekey_path': str(work / 'srv.key'),
                'privatekey_passphrase': PASSPHRASE}},
        ], verbosity=4)
    finally:
        server.close()
    assert PASSPHRASE not in run.stdout and PASSPHRASE not in run.stderr
    live = run['live']
    assert live['verified'] is True
    assert live['serial'] == cx509.serial_hex(cert)
    assert live['needs_renewal'] is False
    assert run['live key']['key_matches'] is True


# ----------------------------------------------------------------------------- the documented examples run

def _examples(module_name, replacements):
    import yaml
    from importlib import import_module
    module = import_module('ansible_collections.certforge.pki.plugins.modules.%s' % module_name)
    text = module.EXAMPLES
    for old, new in replacements:
        text = text.replace(old, new)
    return yaml.safe_load(text)


def _ca_and_leaf(leaf_key, names):
    ca_key = cx509.generate_private_key('ECDSA')
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'Example Test CA')])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, cx509.hash_for_key(ca_key)))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ca_key, cx509.hash_for_key(ca_key)))
    return ca, leaf


@pytest.mark.skipif(not IS_ROOT, reason='the examples set owner/group root')
def test_documented_examples_run(work, run_playbook):
    for sub in ('ssl/private', 'ssl/certs', 'nginx/tls'):
        (work / sub).mkdir(parents=True)
    paths = [('/etc/ssl/private/', '%s/ssl/private/' % work), ('/etc/ssl/certs/', '%s/ssl/certs/' % work),
             ('/etc/ssl/', '%s/ssl/' % work), ('/etc/nginx/tls/', '%s/nginx/tls/' % work)]
    run = play(run_playbook, _examples('certificate_request', paths))
    assert all(t['status'] in ('ok', 'changed') for t in run.tasks), run.tasks
    assert len(run['Several keys and CSRs for one host in one call']['results']) == 2
    assert run['Replace the key (and the CSR) now']['changed_reasons'] == ['key_rotated', 'csr_key_changed']

    key = load_key(work / 'ssl/private/www.example.com.key')
    ca, leaf = _ca_and_leaf(key, ['www.example.com', 'example.com'])
    (work / 'ssl/certs/example-ca.pem').write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (work / 'ssl/www.example.com.crt').write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    server_key = work / 'server.key'
    server_key.write_bytes(cx509.private_key_to_pem(key, PASSPHRASE))
    server = TLSServer(work / 'ssl/www.example.com.crt', server_key)
    try:
        run = play(run_playbook, _examples('certificate_info', paths + [
            ('port: 8443', 'port: %d' % server.port)]))
    finally:
        server.close()
    statuses = dict((t['task'], t['status']) for t in run.tasks)
    assert statuses['Inspect a deployed certificate and its key'] in ('ok', 'changed')
    assert statuses['Say why it is due'] == 'skipped'
    assert run['Inspect a deployed certificate and its key']['key_matches'] is True
    assert run['What does the live endpoint serve, verified against our CA?']['verified'] is True
    assert run['Parse PEM text']['serial'] == cx509.serial_hex(leaf)
