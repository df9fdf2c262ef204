"""certificate_discovery end to end: real ansible-playbook over a tree of real files in every
format the module reads (PEM, DER, PKCS#7 in PEM and DER, PKCS#12 and JKS made by openssl and
keytool), with an expired certificate, a CA, a symbolic link loop, a FIFO, a file over the size
limit, a wrong password, a key next to its certificate, and the files the certificate role writes
with the local CA (detected as managed)."""

import datetime
import json
import os
import re
import shutil
import subprocess
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

ENV = {'ANSIBLE_DISPLAY_TRACEBACK': 'error'}
EXCEPTION_MARKS = ('Traceback', 'Task failed: Module failed', 'TypeError:', 'KeyError:', 'AttributeError:',
                   'unexpected failure')
EXCEPTION_TEXT = re.compile(
    r'\b(TypeError|ValueError|KeyError|AttributeError|OSError|IOError|IndexError|OverflowError'
    r'|UnicodeDecodeError|UnicodeEncodeError|UnicodeError|FileNotFoundError|IsADirectoryError'
    r'|NotADirectoryError|PermissionError|AssertionError|RuntimeError|ZeroDivisionError'
    r'|RecursionError|NameError|InvalidSignature|InternalError):')
EXCEPTION_LINE = re.compile(r'^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)):', re.M)
HANDLED = ('AnsibleTaskError', 'AnsibleActionCapturedError', 'AnsibleModuleCapturedError', 'AnsibleActionFail',
           'ConfigError', 'AnsibleError', 'AnsibleModuleError')
JKS_PASSWORD = 'jks-secret-1'
P12_PASSWORD = 'p12-secret-1'
WRONG_P12_PASSWORD = 'not-in-the-list'
NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn, key, issuer=None, issuer_key=None, days=60, ca=False, sans=None, start=None):
    start = start or NOW - datetime.timedelta(days=1)
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(issuer.subject if issuer is not None else _name(cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key, password=None):
    enc = (serialization.BestAvailableEncryption(password.encode()) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def _fp(cert):
    return ':'.join('%02X' % b for b in cert.fingerprint(hashes.SHA256()))


def _run(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, '%s failed: %s %s' % (argv[0], proc.stdout, proc.stderr)


def build_tree(root):
    """The fixture tree; returns what the test checks against."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert('Discovery Test CA', ca_key, days=3650, ca=True)
    www_key = ec.generate_private_key(ec.SECP256R1())
    www = _cert('www.disc.test', www_key, ca, ca_key, days=60, sans=['www.disc.test', 'disc.test'])
    soon_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    soon = _cert('soon.disc.test', soon_key, ca, ca_key, days=12, sans=['soon.disc.test'],
                 start=NOW - datetime.timedelta(days=2))
    old_key = ec.generate_private_key(ec.SECP256R1())
    old = _cert('old.disc.test', old_key, ca, ca_key, days=30, sans=['old.disc.test'],
                start=NOW - datetime.timedelta(days=40))
    der_key = ec.generate_private_key(ec.SECP256R1())
    der = _cert('der.disc.test', der_key, ca, ca_key, days=90)

    dirs = {}
    for sub in ('pem', 'ca', 'der', 'p7', 'stores', 'expired', 'big', 'loop', 'special', 'locked', 'notes', 'junk',
                'odd'):
        dirs[sub] = root / sub
        dirs[sub].mkdir(parents=True)
    # a key beside its certificate; an encrypted key whose password is given; a bundle of two
    (dirs['pem'] / 'www.pem').write_bytes(_pem(www))
    (dirs['pem'] / 'www.key').write_bytes(_key_pem(www_key))
    (dirs['pem'] / 'soon.crt').write_bytes(_pem(soon))
    (dirs['pem'] / 'soon.key').write_bytes(_key_pem(soon_key, password=P12_PASSWORD))
    (dirs['pem'] / 'bundle.pem').write_bytes(_pem(www) + _pem(ca))
    (dirs['ca'] / 'ca.crt').write_bytes(_pem(ca))
    (dirs['der'] / 'leaf.der').write_bytes(der.public_bytes(serialization.Encoding.DER))
    (dirs['p7'] / 'chain.p7b').write_bytes(pkcs7.serialize_certificates([der, ca], serialization.Encoding.PEM))
    (dirs['p7'] / 'chain.p7c').write_bytes(pkcs7.serialize_certificates([soon, ca], serialization.Encoding.DER))
    (dirs['expired'] / 'old.cer').write_bytes(_pem(old))
    # over the size limit of the test (64 KiB): a certificate followed by comment lines
    (dirs['big'] / 'huge.pem').write_bytes(_pem(www) + b'# padding\n' * 8000)
    # a symbolic link loop, followed with follow_symlinks
    os.symlink('..', str(dirs['loop'] / 'up'))
    os.mkfifo(str(dirs['special'] / 'pipe.pem'))
    locked = dirs['locked'] / 'secret.pem'
    locked.write_bytes(_pem(der))
    os.chmod(str(locked), 0)
    (dirs['notes'] / 'readme.txt').write_text('not a certificate, and not matched by the patterns\n')
    (dirs['junk'] / 'garbage.pem').write_text('just text\n')
    # a file name that is not UTF-8: reported with a backslash escape
    (dirs['odd'] / os.fsdecode(b'odd\xff.pem')).write_bytes(_pem(der))

    # PKCS#12 by openssl: leaf + key + CA, password given; another with a password not given
    work = root.parent / 'work'
    work.mkdir()
    (work / 'www.pem').write_bytes(_pem(www))
    (work / 'www.key').write_bytes(_key_pem(www_key))
    (work / 'ca.pem').write_bytes(_pem(ca))
    _run(['openssl', 'pkcs12', '-export', '-in', str(work / 'www.pem'), '-inkey', str(work / 'www.key'),
          '-certfile', str(work / 'ca.pem'), '-name', 'www', '-out', str(dirs['stores'] / 'www.p12'),
          '-passout', 'pass:' + P12_PASSWORD])
    _run(['openssl', 'pkcs12', '-export', '-in', str(work / 'www.pem'), '-inkey', str(work / 'www.key'),
          '-out', str(dirs['stores'] / 'wrong.pfx'), '-passout', 'pass:' + WRONG_P12_PASSWORD])
    # JKS by keytool: a private key entry (self-signed, made by keytool) and a trusted CA entry
    jks = str(dirs['stores'] / 'app.jks')
    _run(['keytool', '-genkeypair', '-storetype', 'JKS', '-keystore', jks, '-storepass', JKS_PASSWORD,
          '-keypass', JKS_PASSWORD, '-alias', 'app', '-keyalg', 'EC', '-groupname', 'secp256r1',
          '-dname', 'CN=app.disc.test', '-validity', '100'])
    _run(['keytool', '-importcert', '-storetype', 'JKS', '-keystore', jks, '-storepass', JKS_PASSWORD,
          '-alias', 'discovery-ca', '-file', str(work / 'ca.pem'), '-noprompt'])
    # the same private key entry as PKCS#12 made by keytool
    _run(['keytool', '-importkeystore', '-srckeystore', jks, '-srcstoretype', 'JKS', '-srcstorepass', JKS_PASSWORD,
          '-destkeystore', str(dirs['stores'] / 'app.p12'), '-deststoretype', 'PKCS12',
          '-deststorepass', P12_PASSWORD, '-srcalias', 'app', '-noprompt'])
    return dict(ca=ca, www=www, soon=soon, old=old, der=der, dirs=dirs)


def _role_play(tmp_path, cert_dir):
    role_vars = {
        'local_ca_dir': str(tmp_path / 'local-ca'),
        'certificate_dir': str(cert_dir),
        'certificate_owner': 'root',
        'certificate_group': 'root',
        'certificate_issuer_options': {'ca_path': str(tmp_path / 'local-ca' / 'root'),
                                       'allowed_domains': ['disc.test']},
        'certificate_target': 'files',
        'certificate_list': [{'name': 'managed', 'common_name': 'managed.disc.test'},
                             {'name': 'custom', 'common_name': 'custom.disc.test',
                              'certificate_path': str(cert_dir / 'custom-leaf.pem'),
                              'chain_path': str(cert_dir / 'custom-chain.pem'),
                              'fullchain_path': str(cert_dir / 'custom-full.pem')}],
    }
    return textwrap.dedent("""
        - name: The certificate role writes one name with the local CA
          hosts: localhost
          gather_facts: false
          vars: %s
          tasks:
            - name: CA
              ansible.builtin.include_role:
                name: certforge.pki.local_ca
            - name: Certificates
              ansible.builtin.include_role:
                name: certforge.pki.certificate
        """) % json.dumps(role_vars)


def _discovery_play(params, check=False):
    return [{'name': 'Discovery', 'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': 'Discover', 'certforge.pki.certificate_discovery': params,
                        'register': 'found', 'check_mode': check},
                       {'name': 'Show totals', 'ansible.builtin.debug': {'var': 'found.totals'}}]}]


def _no_exception(result):
    text = result.stdout + result.stderr
    for mark in EXCEPTION_MARKS:
        assert mark not in text, text[-3000:]


def _handled_failure_only(result):
    """A refused task: ansible-core shows its own task error (with its traceback under
    ANSIBLE_DISPLAY_TRACEBACK=error), nothing of the module escaped."""
    text = result.stdout + result.stderr
    assert not EXCEPTION_TEXT.search(text), text[-3000:]
    escaped = [name for name in EXCEPTION_LINE.findall(text) if name.split('.')[-1] not in HANDLED]
    assert not escaped, text[-3000:]
    assert 'unexpected failure' not in text and 'module_stderr' not in text, text[-3000:]


@pytest.fixture
def tree(tmp_path, run_playbook):
    if not shutil.which('keytool') or not shutil.which('openssl'):
        pytest.skip('keytool and openssl are needed to make the keystores')
    root = tmp_path / 'tree'
    facts = build_tree(root)
    managed_dir = root / 'certforge'
    role = run_playbook(_role_play(tmp_path, managed_dir), env={'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')})
    assert role.rc == 0, str(role)
    facts['managed_dir'] = managed_dir
    facts['root'] = root
    return facts


def _by_path(items):
    out = {}
    for item in items:
        out.setdefault(item['path'], []).append(item)
    return out


def test_every_format_counts_and_fields(tree, tmp_path, run_playbook):
    root = tree['root']
    missing = str(tmp_path / 'does-not-exist')
    params = {'paths': [str(root), missing], 'max_file_size': 65536, 'follow_symlinks': True,
              'passwords': [P12_PASSWORD, JKS_PASSWORD], 'renew_before_days': 30}
    result = run_playbook(_discovery_play(params), env=ENV)
    _no_exception(result)
    assert result.rc == 0, str(result)
    found = result.task('Discover')
    assert found['changed'] is False
    for secret in (P12_PASSWORD, JKS_PASSWORD):
        assert secret not in json.dumps(found) and secret not in result.stdout

    certs = _by_path(found['certificates'])
    keys = _by_path(found['keys'])
    skipped = {(s['path'], s['reason']) for s in found['problems']}
    d = tree['dirs']
    as_root = os.geteuid() == 0
    locked = str(d['locked'] / 'secret.pem')
    mdir = tree['managed_dir']

    # certificates per file
    expected_counts = {
        str(d['pem'] / 'www.pem'): 1, str(d['pem'] / 'soon.crt'): 1, str(d['pem'] / 'bundle.pem'): 2,
        str(d['ca'] / 'ca.crt'): 1, str(d['der'] / 'leaf.der'): 1, str(d['p7'] / 'chain.p7b'): 2,
        str(d['p7'] / 'chain.p7c'): 2, str(d['expired'] / 'old.cer'): 1, str(d['stores'] / 'www.p12'): 2,
        str(d['stores'] / 'app.jks'): 2, str(d['stores'] / 'app.p12'): 1,
        str(mdir / 'managed.crt'): 1, str(mdir / 'managed.chain.pem'): 1, str(mdir / 'managed.fullchain.pem'): 2,
        str(d['odd']) + '/odd\\xff.pem': 1,
        str(mdir / 'custom-leaf.pem'): 1, str(mdir / 'custom-chain.pem'): 1, str(mdir / 'custom-full.pem'): 2,
    }
    if as_root:
        expected_counts[locked] = 1
    assert {p: len(v) for p, v in certs.items()} == expected_counts

    # skipped, with reasons
    expected_skipped = {
        (missing, 'missing'),
        (str(d['big'] / 'huge.pem'), 'too_large'),
        (str(d['special'] / 'pipe.pem'), 'not_a_regular_file'),
        (str(d['stores'] / 'wrong.pfx'), 'bad_password'),
        (str(d['junk'] / 'garbage.pem'), 'not_a_certificate'),
        (str(d['loop'] / 'up'), 'loop'),
    }
    if not as_root:
        expected_skipped.add((locked, 'unreadable'))
    assert skipped == expected_skipped, found['problems']
    for entry in found['problems']:
        assert entry['detail']

    # keys: beside certificates, inside PKCS#12 and JKS, the role's key
    expected_keys = {str(d['pem'] / 'www.key'), str(d['pem'] / 'soon.key'), str(d['stores'] / 'www.p12'),
                     str(d['stores'] / 'app.jks'), str(d['stores'] / 'app.p12'), str(mdir / 'managed.key'),
                     str(mdir / 'custom.key')}
    assert set(keys) == expected_keys
    assert all(len(v) == 1 for v in keys.values())
    www_key = keys[str(d['pem'] / 'www.key')][0]
    assert (www_key['type'], www_key['size'], www_key['curve'], www_key['encrypted']) == ('ECDSA', 256, 'secp256r1', False)
    assert sorted(www_key['certificates']) == [str(d['pem'] / 'bundle.pem'), str(d['pem'] / 'www.pem')]
    soon_key = keys[str(d['pem'] / 'soon.key')][0]
    assert (soon_key['type'], soon_key['size'], soon_key['encrypted']) == ('RSA', 2048, True)
    assert soon_key['certificates'] == [str(d['pem'] / 'soon.crt')]
    jks_key = keys[str(d['stores'] / 'app.jks')][0]
    assert (jks_key['alias'], jks_key['type'], jks_key['encrypted']) == ('app', 'ECDSA', True)
    # the same key pair is in app.p12 (keytool copied the entry), in the same directory
    assert sorted(jks_key['certificates']) == [str(d['stores'] / 'app.jks'), str(d['stores'] / 'app.p12')]

    # fields of single certificates
    www = certs[str(d['pem'] / 'www.pem')][0]
    assert www['format'] == 'pem' and www['index'] == 0
    assert www['subject'] == 'CN=www.disc.test' and www['issuer'] == 'CN=Discovery Test CA'
    assert www['sans'] == ['DNS:www.disc.test', 'DNS:disc.test']
    assert www['serial'] == '%X' % tree['www'].serial_number or www['serial'] == '0%X' % tree['www'].serial_number
    assert www['fingerprint_sha256'] == _fp(tree['www'])
    assert len(www['fingerprint_sha1'].split(':')) == 20
    assert www['not_after'] == tree['www'].not_valid_after_utc.strftime('%Y-%m-%dT%H:%M:%SZ')
    assert 58.5 < www['days_left'] < 59.5
    assert (www['key_type'], www['key_size'], www['signature_algorithm']) == ('ECDSA', 256, 'ecdsa-with-SHA256')
    assert (www['self_signed'], www['is_ca'], www['expired'], www['due'], www['managed']) == (
        False, False, False, False, False)
    assert www['key_match'] == str(d['pem'] / 'www.key')
    bundle = certs[str(d['pem'] / 'bundle.pem')]
    assert [c['index'] for c in bundle] == [0, 1] and bundle[0]['key_match'] == str(d['pem'] / 'www.key')
    assert bundle[1]['key_match'] is None and bundle[1]['is_ca'] is True

    ca = certs[str(d['ca'] / 'ca.crt')][0]
    assert (ca['self_signed'], ca['is_ca'], ca['key_match']) == (True, True, None)
    soon = certs[str(d['pem'] / 'soon.crt')][0]
    assert (soon['key_type'], soon['key_size'], soon['due'], soon['expired']) == ('RSA', 2048, True, False)
    assert soon['key_match'] == str(d['pem'] / 'soon.key')
    old = certs[str(d['expired'] / 'old.cer')][0]
    assert old['expired'] is True and old['due'] is True and -10.5 < old['days_left'] < -9.5
    assert certs[str(d['der'] / 'leaf.der')][0]['format'] == 'der'
    assert sorted(c['subject'] for c in certs[str(d['p7'] / 'chain.p7b')]) == ['CN=Discovery Test CA', 'CN=der.disc.test']
    assert sorted(c['index'] for c in certs[str(d['p7'] / 'chain.p7c')]) == [0, 1]
    assert {c['format'] for c in certs[str(d['p7'] / 'chain.p7b')] + certs[str(d['p7'] / 'chain.p7c')]} == {'pkcs7'}
    p12 = certs[str(d['stores'] / 'www.p12')]
    assert [c['format'] for c in p12] == ['pkcs12', 'pkcs12']
    assert p12[0]['fingerprint_sha256'] == _fp(tree['www']) and p12[0]['key_match'] == str(d['stores'] / 'www.p12')
    jks = certs[str(d['stores'] / 'app.jks')]
    assert [(c['format'], c['alias'], c['subject']) for c in jks] == [
        ('jks', 'app', 'CN=app.disc.test'), ('jks', 'discovery-ca', 'CN=Discovery Test CA')] or \
        [(c['format'], c['alias'], c['subject']) for c in jks] == [
        ('jks', 'discovery-ca', 'CN=Discovery Test CA'), ('jks', 'app', 'CN=app.disc.test')]
    app = [c for c in jks if c['alias'] == 'app'][0]
    assert app['key_match'] == str(d['stores'] / 'app.jks') and app['self_signed'] is True
    app_p12 = certs[str(d['stores'] / 'app.p12')][0]
    assert app_p12['fingerprint_sha256'] == app['fingerprint_sha256']
    assert app_p12['key_match'] == str(d['stores'] / 'app.p12')

    # the role's files: managed through the layout (and the custom-named leaf through
    # certificate_request's record; its chain files are not named there); nothing else is managed
    managed = sorted(p for p, v in certs.items() if all(c['managed'] for c in v))
    assert managed == sorted([str(mdir / 'managed.crt'), str(mdir / 'managed.chain.pem'),
                              str(mdir / 'managed.fullchain.pem'), str(mdir / 'custom-leaf.pem')])
    custom = certs[str(mdir / 'custom-leaf.pem')][0]
    assert custom['managed_by'] == 'request_record' and custom['key_match'] == str(mdir / 'custom.key')
    assert keys[str(mdir / 'custom.key')][0]['managed_by'] == 'request_record'
    assert keys[str(mdir / 'custom.key')][0]['certificates'] == [
        str(mdir / 'custom-full.pem'), str(mdir / 'custom-leaf.pem')]
    assert all(not c['managed'] for p, v in certs.items() if p not in managed for c in v)
    role_leaf = certs[str(mdir / 'managed.crt')][0]
    assert role_leaf['managed_by'] == 'layout' and role_leaf['key_match'] == str(mdir / 'managed.key')
    assert role_leaf['subject'] == 'CN=managed.disc.test' and role_leaf['sans'] == ['DNS:managed.disc.test']
    assert keys[str(mdir / 'managed.key')][0]['managed'] is True
    assert keys[str(mdir / 'managed.key')][0]['managed_by'] == 'layout'

    n_certs = sum(expected_counts.values())
    totals = found['totals']
    assert totals['certificates'] == n_certs
    assert totals['keys'] == 7
    assert totals['expired'] == 1
    assert totals['expiring'] == 2           # soon.crt and the same certificate in chain.p7c
    assert totals['managed'] == 5
    assert totals['problems'] == len(expected_skipped)
    # files met: 20 in the fixture tree + what the role wrote (key, csr, crt, chain, fullchain of two
    # names and certificate_request's record)
    role_files = os.listdir(str(mdir))
    assert {'managed.key', 'managed.csr', 'managed.crt', 'managed.chain.pem', 'managed.fullchain.pem',
            'custom.key', 'custom.csr', 'custom-leaf.pem', 'custom-chain.pem', 'custom-full.pem',
            '.certforge-request.json'} == set(role_files)
    assert totals['files_seen'] == 20 + len(role_files), totals
    # read: every file but readme.txt, the CSRs and the record (names), pipe.pem (FIFO), huge.pem (size)
    assert totals['files_read'] == 25, totals


def test_check_mode_depth_excludes_and_managed_dirs(tree, run_playbook):
    root = tree['root']
    d = tree['dirs']
    params = {'paths': [str(root / '*')], 'max_depth': 0, 'excludes': ['stores', '*.p7?', str(root / 'junk') + '/*'],
              'managed_dirs': [str(d['ca'])]}
    result = run_playbook(_discovery_play(params, check=True), env=ENV)
    _no_exception(result)
    assert result.rc == 0, str(result)
    found = result.task('Discover')
    assert found['changed'] is False
    paths = {c['path'] for c in found['certificates']}
    assert str(d['stores'] / 'app.jks') not in paths and str(d['p7'] / 'chain.p7b') not in paths
    assert not any(s['path'].startswith(str(d['junk'])) for s in found['problems'])
    # without passwords, without following links: no loop entry, no PKCS#12 password problem
    reasons = sorted({s['reason'] for s in found['problems']})
    assert reasons == (['not_a_regular_file'] if os.geteuid() == 0 else ['not_a_regular_file', 'unreadable'])
    ca = [c for c in found['certificates'] if c['path'] == str(d['ca'] / 'ca.crt')][0]
    assert ca['managed'] is True and ca['managed_by'] == 'managed_dirs'
    encrypted = [k for k in found['keys'] if k['path'] == str(d['pem'] / 'soon.key')][0]
    assert (encrypted['encrypted'], encrypted['type'], encrypted['certificates']) == (True, None, [])


@pytest.mark.parametrize('params, option', [
    ({'paths': ['/etc/ssl'], 'max_depth': -1}, 'max_depth'),
    ({'paths': ['/etc/ssl'], 'max_file_size': 0}, 'max_file_size'),
    ({'paths': ['/etc/ssl'], 'max_file_size': -5}, 'max_file_size'),
    ({'paths': ['/etc/ssl/a\x00b']}, 'paths'),
    ({'paths': ['etc/ssl']}, 'paths'),
    ({'paths': []}, 'paths'),
    ({'paths': ['/etc/ssl'], 'patterns': ['*.pem\x00']}, 'patterns'),
    ({'paths': ['/etc/ssl'], 'managed_dirs': ['/etc/a\x00']}, 'managed_dirs'),
])
def test_bad_input_names_the_option(params, option, run_playbook):
    result = run_playbook(_discovery_play(dict(params, passwords=['hunter2-secret'])), env=ENV)
    _handled_failure_only(result)
    assert result.rc != 0
    found = result.task('Discover')
    assert result.status('Discover') == 'failed'
    assert found['msg'].startswith(option), found['msg']
    assert found['error_option'].startswith(option) and found['error_kind'] == 'config'
    assert 'Fix:' in found['msg']
    assert 'hunter2-secret' not in result.stdout + result.stderr + json.dumps(found)
