import datetime
import os
import stat
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core import files as core_files
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import ModuleRunner, build_target, deploy
from ansible_collections.certforge.pki.plugins.module_utils.targets import files as files_target
from ansible_collections.certforge.pki.plugins.module_utils.targets import nginx as nginx_target
from ansible_collections.certforge.pki.plugins.module_utils.targets.files import FilesTarget, requests_from_params

# ---------------------------------------------------------------------------------------------
# a tiny CA
# ---------------------------------------------------------------------------------------------


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class CA:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(_name('Unit Test CA')).issuer_name(_name('Unit Test CA'))
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = _pem(self.cert)

    def issue(self, name, key, serial):
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(self.cert.subject)
                .public_key(key.public_key()).serial_number(serial)
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        return _pem(cert)


@pytest.fixture(scope='module')
def ca():
    return CA()


@pytest.fixture
def key_file(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / 'site.key'
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(str(path), 0o600)
    return key, str(path)


def params(**kwargs):
    base = dict((k, None) for k in files_target.CERTIFICATE_OPTIONS)
    base.update(certificates=None, verify=None, mode='0644')
    base.update(kwargs)
    return base


def snapshot(path):
    st = os.stat(path)
    with open(path, 'rb') as handle:
        return handle.read(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


class FakeRunner:
    """run_command(argv) -> (rc, out, err); answers by the first word that matches."""

    def __init__(self, answers=None):
        self.calls = []
        self.answers = answers or {}

    def run_command(self, argv):
        self.calls.append(list(argv))
        for word, answer in self.answers.items():
            if word in argv:
                if isinstance(answer, list):
                    return answer.pop(0) if len(answer) > 1 else answer[0]
                return answer
        return 0, '', ''

    def count(self, word):
        return sum(1 for argv in self.calls if word in argv)


def nginx(runner, serve=None, **options):
    """NginxTarget with a fake runner and a fake TLS endpoint that serves ``serve()`` (a serial)."""
    target = build_target('nginx', [nginx_target.plugin], options, runner)
    now = [0.0]
    target.clock = lambda: now[0]
    target.sleep = lambda seconds: now.__setitem__(0, now[0] + seconds)
    target.fetch_certificate = lambda host, port, server_name, timeout: (host, port, server_name)
    target.serial_of = lambda seen: serve(seen) if serve else 0
    return target


# ---------------------------------------------------------------------------------------------
# files target
# ---------------------------------------------------------------------------------------------

def test_fresh_deploy_writes_every_file_and_reports(tmp_path, ca, key_file):
    key, key_path = key_file
    leaf = ca.issue('www.test', key, 0x1001)
    target = build_target('files', [files_target.plugin], {}, None)
    p = params(certificate=leaf + ca.pem, key_path=key_path, mode='0640',
               certificate_path=str(tmp_path / 'cert.pem'), chain_path=str(tmp_path / 'chain.pem'),
               fullchain_path=str(tmp_path / 'fullchain.pem'))
    result = deploy(target, requests_from_params(p))
    assert result['changed'] is True
    assert result['files'] == [str(tmp_path / n) for n in ('cert.pem', 'chain.pem', 'fullchain.pem')]
    assert result['backups'] == dict((f, None) for f in result['files'])
    assert (tmp_path / 'cert.pem').read_text() == leaf
    assert (tmp_path / 'chain.pem').read_text() == ca.pem
    assert (tmp_path / 'fullchain.pem').read_text() == leaf + ca.pem
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o640 for f in result['files'])
    after = result['diff']['after']['cert']
    assert after['serial'] == '1001' and after['subject_alt_names'] == ['DNS:www.test']
    assert after['chain_length'] == 1 and len(after['fingerprint_sha256']) == 95
    assert any('new file' in r for r in result['changed_reasons'])
    assert result['reloaded'] is False and result['verified'] == {}
    text = repr(result)
    key_pem = open(key_path).read()
    assert 'PRIVATE KEY' not in text and key_pem.splitlines()[1] not in text


def test_same_certificate_again_is_no_change(tmp_path, ca, key_file):
    key, key_path = key_file
    leaf = ca.issue('www.test', key, 0x1001)
    p = params(certificate=leaf, fullchain_path=str(tmp_path / 'full.pem'), key_path=key_path)
    deploy(FilesTarget({}), requests_from_params(p))
    # same PEM with CRLF and other wrapping is still the same certificate
    p['certificate'] = leaf.replace('\n', '\r\n')
    result = deploy(FilesTarget({}), requests_from_params(p))
    assert result['changed'] is False and result['changed_reasons'] == [] and result['files'] == []
    assert not (tmp_path / core_files.BACKUP_DIR_NAME).exists()


def test_no_change_path_does_not_import_cryptography(tmp_path, ca, key_file):
    key, key_path = key_file
    leaf = ca.issue('www.test', key, 0x1001)
    path = tmp_path / 'cert.pem'
    path.write_text(leaf)
    os.chmod(str(path), 0o644)
    (tmp_path / 'leaf.pem').write_text(leaf)
    code = (
        'import sys, json\n'
        'from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import deploy\n'
        'from ansible_collections.certforge.pki.plugins.module_utils.targets import nginx as n\n'
        'p = dict((k, None) for k in n.NGINX_CERTIFICATE_OPTIONS)\n'
        'p.update(certificate=open(sys.argv[1]).read(), certificate_path=sys.argv[2], mode="0644",\n'
        '         key_path=sys.argv[3], verify={"port": 1})\n'
        'r = deploy(n.NginxTarget({}, None), n.requests_from_params(p))\n'
        'print(json.dumps([r["changed"], any(m.startswith("cryptography") for m in sys.modules)]))\n')
    out = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'leaf.pem'), str(path), key_path],
                         capture_output=True, text=True, check=False, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[false, false]'


def test_check_mode_writes_nothing_and_diffs_facts(tmp_path, ca, key_file):
    key, key_path = key_file
    path = tmp_path / 'cert.pem'
    deploy(FilesTarget({}), requests_from_params(params(certificate=ca.issue('a.test', key, 0x10),
                                                        certificate_path=str(path))))
    before = snapshot(str(path))
    result = deploy(FilesTarget({}), requests_from_params(params(certificate=ca.issue('a.test', key, 0x11),
                                                                 certificate_path=str(path), key_path=key_path)),
                    check_mode=True)
    assert result['changed'] is True and result['files'] == [str(path)] and result['backups'] == {}
    assert result['diff']['before']['cert']['serial'] == '10'
    assert result['diff']['after']['cert']['serial'] == '11'
    assert result['changed_reasons'] == ['cert: certificate %s: serial 10 -> 11' % path]
    assert snapshot(str(path)) == before
    assert not (tmp_path / core_files.BACKUP_DIR_NAME).exists()


def test_mode_only_change(tmp_path, ca, key_file):
    key = key_file[0]
    leaf = ca.issue('a.test', key, 0x10)
    path = str(tmp_path / 'cert.pem')
    deploy(FilesTarget({}), requests_from_params(params(certificate=leaf, certificate_path=path, mode='0600')))
    result = deploy(FilesTarget({}), requests_from_params(params(certificate=leaf, certificate_path=path)))
    assert result['changed'] and 'mode 0600 -> 0644' in result['changed_reasons'][0]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_key_mismatch_refused_before_writing(tmp_path, ca, key_file):
    other = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / 'cert.pem'
    with pytest.raises(ConfigError) as info:
        deploy(FilesTarget({}), requests_from_params(params(
            certificate=ca.issue('a.test', other, 0x10), certificate_path=str(path), key_path=key_file[1])))
    assert info.value.option == 'key_path' and 'does not match' in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize('content, words', [
    ('encrypted', 'is encrypted'),
    ('certificate', 'holds a certificate, not a private key'),
    ('garbage', 'is not a private key'),
])
def test_unusable_key_file_is_refused_by_name(tmp_path, ca, key_file, content, words):
    key, dummy = key_file
    leaf = ca.issue('a.test', key, 0x10)
    bad = tmp_path / 'bad.key'
    if content == 'encrypted':
        bad.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(b'unit-test-passphrase')))
    elif content == 'certificate':
        bad.write_text(leaf)
    else:
        bad.write_bytes(b'\x00\x01 not a key')
    path = tmp_path / 'cert.pem'
    with pytest.raises(ConfigError) as info:
        deploy(FilesTarget({}), requests_from_params(params(certificate=leaf, certificate_path=str(path),
                                                            key_path=str(bad))))
    assert info.value.option == 'key_path' and words in str(info.value) and str(bad) in str(info.value)
    assert 'passphrase' not in str(info.value)           # the deploy modules have no passphrase option
    assert not path.exists()


def test_same_certificate_with_other_line_breaks_is_no_change(tmp_path, ca, key_file):
    leaf = ca.issue('a.test', key_file[0], 0x10)
    path = str(tmp_path / 'cert.pem')
    deploy(FilesTarget({}), requests_from_params(params(certificate=leaf, certificate_path=path)))
    lines = leaf.strip().splitlines()
    rewrapped = '\r\n'.join([lines[0], ''.join(lines[1:-1]), lines[-1]]) + '\r\n'
    result = deploy(FilesTarget({}), requests_from_params(params(certificate='  ' + rewrapped,
                                                                 certificate_path=path)))
    assert result['changed'] is False
    with open(path) as handle:
        assert handle.read() == leaf


def test_before_facts_read_a_file_that_also_holds_the_key(tmp_path, ca, key_file):
    key, key_path = key_file
    path = tmp_path / 'combined.pem'
    path.write_text(ca.issue('a.test', key, 0x10) + open(key_path).read())
    result = deploy(FilesTarget({}), requests_from_params(params(certificate=ca.issue('a.test', key, 0x11),
                                                                 certificate_path=str(path))), check_mode=True)
    assert result['diff']['before']['combined']['serial'] == '10'
    assert 'PRIVATE' not in repr(result)


def test_private_key_in_certificate_is_refused_without_echo(tmp_path, key_file):
    key_pem = open(key_file[1]).read()
    with pytest.raises(ConfigError) as info:
        deploy(FilesTarget({}), requests_from_params(params(certificate=key_pem,
                                                            certificate_path=str(tmp_path / 'c.pem'))))
    assert info.value.option == 'certificate'
    assert key_pem.splitlines()[1] not in repr(info.value.to_result())


def test_ca_first_is_refused(tmp_path, ca, key_file):
    leaf = ca.issue('a.test', key_file[0], 0x10)
    with pytest.raises(ConfigError) as info:
        deploy(FilesTarget({}), requests_from_params(params(certificate=ca.pem + leaf,
                                                            certificate_path=str(tmp_path / 'c.pem'))))
    assert 'leaf' in str(info.value)


def test_chain_path_without_chain_and_missing_dir(tmp_path, ca, key_file):
    leaf = ca.issue('a.test', key_file[0], 0x10)
    with pytest.raises(ConfigError) as info:
        deploy(FilesTarget({}), requests_from_params(params(certificate=leaf, chain_path=str(tmp_path / 'ch.pem'))))
    assert info.value.option == 'chain'
    with pytest.raises(ConfigError) as info:
        deploy(FilesTarget({}), requests_from_params(params(certificate=leaf,
                                                            certificate_path=str(tmp_path / 'nope' / 'c.pem'))))
    assert info.value.option == 'certificate_path' and 'create the directory first' in str(info.value)


def test_symlink_destination_refused(tmp_path, ca, key_file):
    (tmp_path / 'real.pem').write_text('x')
    os.symlink(str(tmp_path / 'real.pem'), str(tmp_path / 'link.pem'))
    with pytest.raises(ConfigError) as info:
        deploy(FilesTarget({}), requests_from_params(params(certificate=ca.issue('a.test', key_file[0], 1),
                                                            certificate_path=str(tmp_path / 'link.pem'))))
    assert 'symbolic link' in str(info.value)


# ---------------------------------------------------------------------------------------------
# requests from parameters
# ---------------------------------------------------------------------------------------------

def test_batch_elements_inherit_top_level_options(tmp_path, ca, key_file):
    p = params(owner='root', mode='0640', chain=ca.pem, verify={'port': 443, 'host': '127.0.0.1', 'timeout': 5,
                                                                'server_name': None},
               certificates=[dict(name='a', certificate='A', fullchain_path='/x/a.pem'),
                             dict(certificate='B', certificate_path='/x/b.crt', mode='0600',
                                  verify={'server_name': 'b.test', 'port': None})])
    reqs = nginx_target.requests_from_params(p)
    assert [r.name for r in reqs] == ['a', 'b']
    assert reqs[0].options['mode'] == '0640' and reqs[1].options['mode'] == '0600'
    assert reqs[0].options['owner'] == 'root' and reqs[1].chain_pem == [ca.pem]
    assert reqs[1].options['verify'] == {'port': 443, 'host': '127.0.0.1', 'timeout': 5, 'server_name': 'b.test'}
    assert reqs[1].options['option_prefix'] == 'certificates[1].'


@pytest.mark.parametrize('bad, option', [
    (dict(certificates=[dict(name='a', certificate='A', certificate_path='/x/1'),
                        dict(name='a', certificate='B', certificate_path='/x/2')]), 'certificates[1].name'),
    (dict(certificates=[dict(name='../up', certificate='A', certificate_path='/x/1')]), 'certificates[0].name'),
    (dict(name='a/b', certificate='A', certificate_path='/x/1'), 'name'),
    (dict(certificates=[dict(certificate='A')]), 'certificates[0].certificate_path'),
    (dict(certificates=[]), 'certificates'),
    (dict(certificate='A', certificates=[dict(certificate='B')]), 'certificates'),
])
def test_bad_requests_name_the_option(bad, option):
    with pytest.raises(ConfigError) as info:
        requests_from_params(params(**bad))
    assert info.value.option == option


# ---------------------------------------------------------------------------------------------
# nginx sequence with a fake runner
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def deployed(tmp_path, ca, key_file):
    """An 'old' certificate in place; returns helpers for the next deploy."""
    key, key_path = key_file
    path = str(tmp_path / 'site.crt')
    deploy(FilesTarget({}), requests_from_params(params(certificate=ca.issue('site.test', key, 0x0A),
                                                        fullchain_path=path, mode='0644')))
    os.chmod(path, 0o640)  # an odd mode, to prove the rollback restores it
    new_p = params(certificate=ca.issue('site.test', key, 0x0B), chain=ca.pem, fullchain_path=path,
                   chain_path=str(tmp_path / 'chain.pem'), key_path=key_path,
                   verify={'port': 8443, 'host': '127.0.0.1', 'timeout': 3})
    return path, new_p


def test_nginx_success_validates_reloads_verifies_once(deployed):
    path, p = deployed
    runner = FakeRunner()
    served = {'n': 0}

    def serve(seen):
        assert seen == ('127.0.0.1', 8443, 'site.test')   # SNI defaults to the first DNS SAN
        served['n'] += 1
        return 0x0A if served['n'] < 3 else 0x0B          # old serial until the reload lands

    events = []
    target = nginx(runner, serve)
    result = deploy(target, nginx_target.requests_from_params(p), emit=events.append)
    assert runner.calls == [['nginx', '-t'], ['nginx', '-s', 'reload']]
    assert result['reloaded'] is True and result['verified'] == {'site': '0B'}
    assert served['n'] == 3
    assert [(e.kind, e.name, e.target) for e in events] == [('deployed', 'site', 'nginx')]
    assert result['backups'][path] and result['backups'][os.path.dirname(path) + '/chain.pem'] is None


def test_nginx_validate_failure_rolls_back_without_reload(deployed):
    path, p = deployed
    before = snapshot(path)
    runner = FakeRunner({'-t': (1, '', 'nginx: [emerg] unknown directive "garbage" in /etc/nginx/nginx.conf:12\n'
                                       'nginx: configuration file /etc/nginx/nginx.conf test failed')})
    events = []
    with pytest.raises(DeployError) as info:
        deploy(nginx(runner), nginx_target.requests_from_params(p), emit=events.append)
    message = str(info.value)
    assert 'validate failed' in message and 'unknown directive "garbage"' in message
    assert 'No reload had happened' in message
    assert info.value.option == 'validate_command'
    assert info.value.details['rc'] == 1 and info.value.details['rolled_back'] is True
    assert runner.count('reload') == 0
    assert snapshot(path) == before
    assert not os.path.exists(os.path.join(os.path.dirname(path), 'chain.pem'))
    assert [e.kind for e in events] == ['rolled_back', 'failed']
    assert events[1].details['stage'] == 'validate'


def test_nginx_reload_failure_rolls_back_and_reloads_again(deployed):
    path, p = deployed
    before = snapshot(path)
    runner = FakeRunner({'reload': [(1, '', 'nginx: [error] invalid PID number "" in "/run/nginx.pid"'), (0, '', '')]})
    with pytest.raises(DeployError) as info:
        deploy(nginx(runner), nginx_target.requests_from_params(p))
    assert runner.count('reload') == 2
    assert 'reload failed' in str(info.value) and 'invalid PID number' in str(info.value)
    assert 'Reloaded again with the restored files' in str(info.value)
    assert snapshot(path) == before


def test_nginx_reload_failing_twice_is_reported(deployed):
    path, p = deployed
    before = snapshot(path)
    runner = FakeRunner({'reload': (1, '', 'boom')})
    with pytest.raises(DeployError) as info:
        deploy(nginx(runner), nginx_target.requests_from_params(p))
    assert 'failed too' in str(info.value)
    assert info.value.details['reload_after_rollback_error']
    assert snapshot(path) == before


def test_nginx_verify_failure_rolls_back_and_reloads_again(deployed):
    path, p = deployed
    before = snapshot(path)
    runner = FakeRunner()
    with pytest.raises(DeployError) as info:
        deploy(nginx(runner, lambda seen: 0x0A), nginx_target.requests_from_params(p))
    message = str(info.value)
    assert 'verify failed' in message and 'last seen: serial 0A' in message
    assert info.value.option == 'verify'
    assert runner.count('reload') == 2
    assert snapshot(path) == before


def test_nginx_batch_one_transaction_one_validate_one_reload(tmp_path, ca):
    keys = [ec.generate_private_key(ec.SECP256R1()) for dummy in range(3)]
    elements = [dict(name='s%d' % i, certificate=ca.issue('s%d.test' % i, keys[i], 0x100 + i),
                     fullchain_path=str(tmp_path / ('s%d.crt' % i))) for i in range(3)]
    p = params(certificates=elements, verify={'port': 443})
    runner = FakeRunner()
    target = nginx(runner, lambda seen: {'s0.test': 0x100, 's1.test': 0x101, 's2.test': 0x102}[seen[2]])
    result = deploy(target, nginx_target.requests_from_params(p))
    assert runner.calls == [['nginx', '-t'], ['nginx', '-s', 'reload']]
    assert result['verified'] == {'s0': '0100', 's1': '0101', 's2': '0102'}
    assert sorted(result['diff']['after']) == ['s0', 's1', 's2']
    again = deploy(nginx(FakeRunner()), nginx_target.requests_from_params(p))
    assert again['changed'] is False and again['reloaded'] is False


def test_nginx_batch_failure_restores_every_certificate(tmp_path, ca):
    key = ec.generate_private_key(ec.SECP256R1())
    paths = [str(tmp_path / ('s%d.crt' % i)) for i in range(3)]
    first = params(certificates=[dict(name='s%d' % i, certificate=ca.issue('s.test', key, 0x10 + i),
                                      fullchain_path=paths[i]) for i in range(2)])
    deploy(FilesTarget({}), requests_from_params(first))
    before = [snapshot(p) for p in paths[:2]]
    second = params(certificates=[dict(name='s%d' % i, certificate=ca.issue('s.test', key, 0x20 + i),
                                       fullchain_path=paths[i]) for i in range(3)])
    with pytest.raises(DeployError):
        deploy(nginx(FakeRunner({'-t': (1, '', 'bad')})), nginx_target.requests_from_params(second))
    assert [snapshot(p) for p in paths[:2]] == before
    assert not os.path.exists(paths[2])


def test_nginx_check_mode_runs_no_command(deployed):
    path, p = deployed
    before = snapshot(path)
    runner = FakeRunner()
    result = deploy(nginx(runner), nginx_target.requests_from_params(p), check_mode=True)
    assert result['changed'] and runner.calls == [] and snapshot(path) == before


def test_reload_false_skips_reload_and_verify_with_warning(deployed):
    path, p = deployed
    runner = FakeRunner()
    result = deploy(nginx(runner, reload=False), nginx_target.requests_from_params(p))
    assert runner.calls == [['nginx', '-t']]
    assert result['reloaded'] is False and result['verified'] == {}
    assert any('verify skipped' in w for w in result['warnings'])


def test_apply_failure_is_a_deploy_error_and_changes_nothing(deployed, monkeypatch):
    path, p = deployed
    before = snapshot(path)
    real = core_files.atomic_write

    def fail_second(target_path, data, **kwargs):
        if target_path.endswith('chain.pem'):
            raise OSError(28, 'No space left on device')
        return real(target_path, data, **kwargs)

    monkeypatch.setattr(core_files, 'atomic_write', fail_second)
    runner = FakeRunner()
    events = []
    with pytest.raises(DeployError) as info:
        deploy(nginx(runner), nginx_target.requests_from_params(p), emit=events.append)
    assert 'apply failed' in str(info.value) and 'No space left' in str(info.value)
    assert runner.calls == [] and snapshot(path) == before
    assert [e.kind for e in events] == ['failed']


def test_observer_errors_become_warnings(deployed):
    path, p = deployed

    def observer(event):
        raise RuntimeError('webhook down')

    result = deploy(nginx(FakeRunner(), lambda seen: 0x0B), nginx_target.requests_from_params(p), emit=observer)
    assert result['changed'] and any('webhook down' in w for w in result['warnings'])


def test_interrupt_during_deploy_rolls_back(deployed):
    path, p = deployed
    before = snapshot(path)

    class Interrupting(FakeRunner):
        def run_command(self, argv):
            if '-t' in argv:
                os.kill(os.getpid(), __import__('signal').SIGTERM)
            return super(Interrupting, self).run_command(argv)

    with pytest.raises(DeployError) as info:
        deploy(nginx(Interrupting()), nginx_target.requests_from_params(p))
    assert 'interrupted by signal' in str(info.value)
    assert snapshot(path) == before


# ---------------------------------------------------------------------------------------------
# ModuleRunner
# ---------------------------------------------------------------------------------------------

class FakeModule:
    def __init__(self, bins):
        self.bins = bins
        self.calls = []

    def get_bin_path(self, name):
        return self.bins.get(name)

    def run_command(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        return 0, 'ok', ''


def test_module_runner_resolves_and_never_ends_the_module():
    module = FakeModule({'nginx': '/usr/sbin/nginx'})
    runner = ModuleRunner(module)
    assert runner.run_command(['nginx', '-t']) == (0, 'ok', '')
    argv, kwargs = module.calls[0]
    assert argv == ['/usr/sbin/nginx', '-t']
    assert kwargs['handle_exceptions'] is False and kwargs['expand_user_and_vars'] is False
    rc, out, err = runner.run_command(['no-such-tool', 'x'])
    assert rc == 127 and 'command not found' in err
    rc, out, err = runner.run_command(['/nonexistent/bin/tool'])
    assert rc == 126
