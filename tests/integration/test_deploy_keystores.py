"""certforge.pki.deploy with targets java_keystore (real keytool) and pkcs12: aliases replaced
atomically with other aliases kept, serial checked with keytool -list -v, passwords never in a
process listing, a result or -vvvv output, wrong passwords and missing aliases refused with the
keystore untouched."""

import hashlib
import os
import shutil
import subprocess
import threading

import pytest

KEYTOOL = shutil.which('keytool')
STORE_PASSWORD = 'Ks-pass-93e1f7c2'
P12_PASSWORD = 'P12-pass-5b0d44aa'


def play(args, name='deploy'):
    return [{'name': 'keystore', 'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': name, 'certforge.pki.deploy': args, 'register': 'out'}]}]


def digest(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def keytool_serial(path, kind, alias, password=STORE_PASSWORD):
    proc = subprocess.run([KEYTOOL, '-list', '-v', '-keystore', str(path), '-storetype', kind, '-alias', alias,
                           '-storepass:env', 'KS_PASS'], capture_output=True, text=True, check=False,
                          env=dict(os.environ, KS_PASS=password, LC_ALL='C'))
    for line in proc.stdout.splitlines():
        if line.startswith('Serial number:'):
            return int(line.split(':', 1)[1].strip(), 16)
    return None


def aliases(path, kind):
    proc = subprocess.run([KEYTOOL, '-list', '-keystore', str(path), '-storetype', kind, '-storepass:env', 'KS_PASS'],
                          capture_output=True, text=True, check=False, env=dict(os.environ, KS_PASS=STORE_PASSWORD, LC_ALL='C'))
    return sorted(line.split(',')[0] for line in proc.stdout.splitlines() if 'PrivateKeyEntry' in line)


@pytest.fixture
def keyed(tmp_path, test_ca):
    first = test_ca.issue('app.test')
    key = tmp_path / 'app.key'
    key.write_text(first.key_pem)
    os.chmod(str(key), 0o600)
    return first, str(key)


def ks_args(issued, key, path, kind='jks', alias='app', **extra):
    options = {'keystore_path': str(path), 'keystore_type': kind, 'alias': alias, 'store_password': STORE_PASSWORD}
    options.update(extra)
    return {'target': 'java_keystore', 'name': alias, 'certificate': issued.cert_pem, 'chain': issued.chain_pem,
            'key_path': key, 'certificate_options': options}


class ProcessWatcher:
    """Scans every process's command line while a deploy runs."""

    def __init__(self, needle):
        self.needle, self.seen_keytool, self.leaks = needle, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            for pid in os.listdir('/proc'):
                if not pid.isdigit():
                    continue
                try:
                    with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                        cmd = handle.read().decode('utf-8', 'replace')
                except OSError:
                    continue
                if 'keytool' in cmd or 'KeyTool' in cmd:
                    self.seen_keytool += 1
                if self.needle in cmd:
                    self.leaks.append(cmd.replace('\0', ' ')[:200])

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


@pytest.mark.skipif(not KEYTOOL, reason='keytool is not installed')
@pytest.mark.parametrize('kind', ['jks', 'pkcs12'])
def test_java_keystore_alias_replaced_other_aliases_kept(kind, keyed, tmp_path, test_ca, run_playbook):
    first, key = keyed
    store = tmp_path / ('app.' + kind)
    result = run_playbook(play(ks_args(first, key, store, kind)))
    assert result.rc == 0, result
    assert result.task('deploy')['verified'] == {'app': first.serial_hex}
    other = test_ca.issue('other.test')
    other_key = tmp_path / 'other.key'
    other_key.write_text(other.key_pem)
    assert run_playbook(play(ks_args(other, str(other_key), store, kind, alias='other'))).rc == 0
    assert aliases(store, kind) == ['app', 'other']
    renewal = test_ca.issue('app.test', key_pem=first.key_pem)
    checked = run_playbook(play(ks_args(renewal, key, store, kind)), check=True, diff=True)
    assert checked.rc == 0 and checked.task('deploy')['changed']
    assert keytool_serial(store, kind, 'app') == first.serial
    with ProcessWatcher(STORE_PASSWORD) as watcher:
        result = run_playbook(play(ks_args(renewal, key, store, kind)), args=['-vvvv'])
    assert result.rc == 0, result
    assert watcher.seen_keytool, 'no keytool process was seen'
    assert not watcher.leaks, watcher.leaks
    assert STORE_PASSWORD not in result.stdout + result.stderr + str(result.tasks)
    assert keytool_serial(store, kind, 'app') == renewal.serial
    assert keytool_serial(store, kind, 'other') == other.serial
    assert oct(os.stat(str(store)).st_mode & 0o777) == '0o600'
    again = run_playbook(play(ks_args(renewal, key, store, kind)))
    assert again.rc == 0 and not again.task('deploy')['changed'], again


@pytest.mark.skipif(not KEYTOOL, reason='keytool is not installed')
def test_java_keystore_bad_input_leaves_the_keystore_untouched(keyed, tmp_path, test_ca, run_playbook):
    first, key = keyed
    store = tmp_path / 'app.jks'
    assert run_playbook(play(ks_args(first, key, store))).rc == 0
    before = digest(store)
    renewal = test_ca.issue('app.test', key_pem=first.key_pem)
    wrong = run_playbook(play(ks_args(renewal, key, store, store_password='not-the-password')))
    assert wrong.rc != 0
    msg = wrong.task('deploy')['msg']
    assert 'certificate_options.store_password' in msg and 'untouched' in msg, msg
    assert 'not-the-password' not in wrong.stdout + str(wrong.tasks)
    assert digest(store) == before
    missing = run_playbook(play(ks_args(first, key, store, alias='nope', state='absent')))
    assert missing.rc != 0
    assert 'certificate_options.alias' in missing.task('deploy')['msg'] and 'does not exist' in missing.task('deploy')['msg']
    assert digest(store) == before
    outside = ks_args(renewal, key, store)
    outside['target_options'] = {'allowed_directories': [str(tmp_path / 'elsewhere')]}
    result = run_playbook(play(outside))
    assert result.rc != 0 and 'outside the allowed directories' in result.task('deploy')['msg']
    assert digest(store) == before
    removed = run_playbook(play(ks_args(first, key, store, state='absent')))
    assert removed.rc == 0 and removed.task('deploy')['changed'], removed
    assert aliases(store, 'JKS') == []


def p12_args(issued, key, path, **extra):
    options = {'pkcs12_path': str(path), 'password': P12_PASSWORD, 'friendly_name': 'app certificate'}
    options.update(extra)
    return {'target': 'pkcs12', 'name': 'app', 'certificate': issued.cert_pem, 'chain': issued.chain_pem,
            'key_path': key, 'certificate_options': options}


def test_pkcs12_bundle_modern_by_default_legacy_opt_in(keyed, tmp_path, test_ca, run_playbook):
    from cryptography.hazmat.primitives.serialization import pkcs12
    from ansible_collections.certforge.pki.plugins.module_utils.targets.pkcs12 import encryption_of
    first, key = keyed
    bundle = tmp_path / 'app.p12'
    result = run_playbook(play(p12_args(first, key, bundle)), args=['-vvvv'], diff=True)
    assert result.rc == 0, result
    assert P12_PASSWORD not in result.stdout + result.stderr + str(result.tasks)
    data = bundle.read_bytes()
    loaded = pkcs12.load_pkcs12(data, P12_PASSWORD.encode())
    assert loaded.cert.certificate.serial_number == first.serial
    assert loaded.cert.friendly_name == b'app certificate' and len(loaded.additional_certs) == 1
    assert encryption_of(data) == 'modern'
    assert oct(os.stat(str(bundle)).st_mode & 0o777) == '0o600'
    again = run_playbook(play(p12_args(first, key, bundle)))
    assert again.rc == 0 and not again.task('deploy')['changed']
    legacy = run_playbook(play(p12_args(first, key, bundle, encryption='legacy')))
    assert legacy.rc == 0 and legacy.task('deploy')['changed']
    assert encryption_of(bundle.read_bytes()) == 'legacy'
    proc = subprocess.run(['openssl', 'pkcs12', '-in', str(bundle), '-nokeys', '-passin', 'env:P12', '-legacy'],
                          capture_output=True, text=True, env=dict(os.environ, P12=P12_PASSWORD), check=False)
    if proc.returncode != 0:       # an OpenSSL without the legacy provider flag
        proc = subprocess.run(['openssl', 'pkcs12', '-in', str(bundle), '-nokeys', '-passin', 'env:P12'],
                              capture_output=True, text=True, env=dict(os.environ, P12=P12_PASSWORD), check=False)
    assert 'BEGIN CERTIFICATE' in proc.stdout, proc.stderr
