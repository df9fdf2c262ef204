import datetime
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.core.deployment import TargetEngine
from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import deploy
from ansible_collections.certforge.pki.plugins.module_utils.core.model import DeployRequest
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
from ansible_collections.certforge.pki.plugins.module_utils.targets import files as files_target
from ansible_collections.certforge.pki.plugins.module_utils.targets import nginx as nginx_target
from ansible_collections.certforge.pki.plugins.module_utils.targets.nginx import (
    NginxTarget,
    argv_option,
    default_server_name,
    der_serial,
    fetch_served_certificate,
    pid_file_state,
    verify_settings,
    wait_for_serial,
)


class FakeRunner:
    def __init__(self, answer=(0, '', '')):
        self.answer = answer
        self.calls = []

    def run_command(self, argv):
        self.calls.append(list(argv))
        return self.answer


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def self_signed(name, serial):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


# -- registration ------------------------------------------------------------------------------

def test_hookimpls_register_in_the_registry():
    registry = Registry([files_target.plugin, nginx_target.plugin])
    assert registry.targets() == {'files': files_target.FilesTarget, 'nginx': NginxTarget}
    target = registry.target('nginx', {'reload': False}, FakeRunner())
    assert isinstance(target, NginxTarget) and target.reload_enabled is False


# -- commands ----------------------------------------------------------------------------------

@pytest.mark.parametrize('option', ['reload_command', 'validate_command'])
def test_command_strings_are_refused(option):
    with pytest.raises(ConfigError) as info:
        NginxTarget({option: 'nginx -s reload'}, FakeRunner())
    assert info.value.option == option
    assert 'give an argv list, e.g. [nginx, -' in str(info.value)
    assert 'give an argv list, e.g. [nginx, -s, reload]' in str(
        pytest.raises(ConfigError, argv_option, 'nginx -s reload', 'reload_command',
                      nginx_target.DEFAULT_RELOAD_COMMAND).value)


@pytest.mark.parametrize('value', [[], {'a': 1}, ['nginx', None], ['nginx', ['-t']], ['nginx', True]])
def test_command_lists_must_hold_strings(value):
    with pytest.raises(ConfigError) as info:
        argv_option(value, 'validate_command', nginx_target.DEFAULT_VALIDATE_COMMAND)
    assert info.value.option == 'validate_command'


def test_command_defaults_and_numbers():
    target = NginxTarget({}, FakeRunner())
    assert target.validate_command == ['nginx', '-t'] and target.reload_command == ['nginx', '-s', 'reload']
    assert argv_option(['sleep', 1], 'x', ['y']) == ['sleep', '1']


def test_validate_failure_carries_the_output():
    runner = FakeRunner((1, '', 'nginx: [emerg] unexpected end of file, expecting ";" or "}"'))
    target = NginxTarget({'validate_command': ['nginx', '-t', '-c', '/srv/n.conf']}, runner)
    with pytest.raises(DeployError) as info:
        target.validate([])
    assert runner.calls == [['nginx', '-t', '-c', '/srv/n.conf']]
    assert 'unexpected end of file' in str(info.value) and info.value.option == 'validate_command'
    assert info.value.details == {'command': ['nginx', '-t', '-c', '/srv/n.conf'], 'rc': 1, 'stdout': '',
                                  'stderr': 'nginx: [emerg] unexpected end of file, expecting ";" or "}"'}


def test_reload_switch_and_failure():
    assert NginxTarget({'reload': False}, FakeRunner()).reload([]) is False
    assert NginxTarget({}, FakeRunner()).reload([]) is True
    with pytest.raises(DeployError) as info:
        NginxTarget({}, FakeRunner((1, b'', b'nginx: [alert] kill(1234, 1) failed'))).reload([])
    assert info.value.option == 'reload_command' and 'kill(1234, 1) failed' in str(info.value)


def test_long_output_is_truncated():
    text = nginx_target.command_output('x' * 10000, 'err')
    assert text.startswith('err\n') and text.endswith('[... output truncated]') and len(text) < 4100


# -- verify settings ---------------------------------------------------------------------------

def test_verify_settings():
    assert verify_settings(None, 'verify') is None
    assert verify_settings({'port': '8443'}, 'verify') == {'host': '127.0.0.1', 'port': 8443,
                                                           'server_name': None, 'timeout': 10.0}
    for bad, option in (({'host': 'x'}, 'verify.port'), ({'port': 0}, 'verify.port'),
                        ({'port': 'https'}, 'verify.port'), ({'port': 1, 'timeout': 0}, 'verify.timeout')):
        with pytest.raises(ConfigError) as info:
            verify_settings(bad, 'verify')
        assert info.value.option == option


def test_bad_verify_is_refused_at_plan_time(tmp_path):
    cert, dummy = self_signed('a.test', 7)
    request = DeployRequest(name='a', certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                            options={'certificate_path': str(tmp_path / 'a.crt'), 'verify': {'host': 'x'},
                                     'option_prefix': 'certificates[3].'})
    with pytest.raises(ConfigError) as info:
        NginxTarget({}, FakeRunner()).plan(request)
    assert info.value.option == 'certificates[3].verify.port'
    assert not (tmp_path / 'a.crt').exists()


def test_default_server_name_skips_wildcards():
    assert default_server_name({'subject_alt_names': ['IP:127.0.0.1', 'DNS:*.x.test', 'DNS:x.test']}) == 'x.test'
    assert default_server_name({'subject_alt_names': ['DNS:*.x.test']}) is None


# -- polling -----------------------------------------------------------------------------------

def test_wait_for_serial_polls_until_the_new_serial():
    clock = FakeClock()
    seen = iter([ConnectionRefusedError(111, 'refused'), 1, 1, 2])

    def fetch(timeout):
        assert 0 < timeout <= 5
        value = next(seen)
        if isinstance(value, Exception):
            raise value
        return value

    served, attempts = wait_for_serial(fetch, 2, 5, clock=clock.clock, sleep=clock.sleep, serial_of=lambda v: v)
    assert (served, attempts) == (2, 4)
    assert clock.sleeps == [0.05, 0.1, 0.2]          # growing waits, no fixed sleep


def test_wait_for_serial_times_out_at_the_deadline():
    clock = FakeClock()
    with pytest.raises(DeployError) as info:
        wait_for_serial(lambda timeout: 0x0A, 0x0B, 2, clock=clock.clock, sleep=clock.sleep,
                        serial_of=lambda v: v, option='certificates[0].verify')
    assert clock.now == pytest.approx(102.0)        # never waits past the deadline
    assert max(clock.sleeps) <= 1.0
    assert info.value.option == 'certificates[0].verify'
    assert 'did not serve serial 0B' in str(info.value) and 'last seen: serial 0A' in str(info.value)


# -- a real TLS handshake (SNI, no CA verification) --------------------------------------------

@pytest.fixture
def tls_server(tmp_path):
    """A TLS server on 127.0.0.1 that serves a certificate per SNI name and records the names."""
    certs = {}
    contexts = {}
    for name, serial in (('a.test', 0xA1), ('b.test', 0xB2)):
        cert, key = self_signed(name, serial)
        cert_path, key_path = tmp_path / (name + '.crt'), tmp_path / (name + '.key')
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert_path), str(key_path))
        contexts[name] = ctx
        certs[name] = serial
    names = []

    def pick(sslobj, server_name, ctx):
        names.append(server_name)
        sslobj.context = contexts.get(server_name, contexts['a.test'])

    default = contexts['a.test']
    default.sni_callback = pick
    listener = socket.create_server(('127.0.0.1', 0))
    listener.settimeout(5)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, dummy = listener.accept()
            except OSError:
                return
            try:
                with default.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], names
    stop.set()
    try:
        listener.shutdown(socket.SHUT_RDWR)   # wakes the blocked accept() at once
    except OSError:
        pass
    listener.close()
    thread.join(5)
    assert not thread.is_alive()


def test_fetch_served_certificate_sends_sni(tls_server):
    port, names = tls_server
    assert der_serial(fetch_served_certificate('127.0.0.1', port, 'b.test', 5)) == 0xB2
    assert der_serial(fetch_served_certificate('127.0.0.1', port, 'a.test', 5)) == 0xA1
    assert names == ['b.test', 'a.test']


def test_fetch_refused_port_raises_oserror():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(OSError):
        fetch_served_certificate('127.0.0.1', port, 'x.test', 2)


def test_target_verify_end_to_end_against_tls_server(tls_server, tmp_path):
    port, names = tls_server
    cert, dummy = self_signed('b.test', 0xB2)
    request = DeployRequest(name='b', certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                            options={'certificate_path': str(tmp_path / 'b-deployed.crt'),
                                     'verify': {'port': port, 'timeout': 5}})
    target = NginxTarget({}, FakeRunner())
    engine = TargetEngine(target)     # the core writes; the target only verifies
    plan = engine.plan(request)
    applied = engine.apply(plan)
    assert engine.verify(applied) == 'B2'
    assert names[-1] == 'b.test'
    assert os.path.exists(str(tmp_path / 'b-deployed.crt'))


# -- not running: pid_file and start_command ---------------------------------------------------

def _dead_pid():
    """A process id no process can have (above the kernel's pid_max)."""
    try:
        with open('/proc/sys/kernel/pid_max') as handle:
            return int(handle.read()) + 1
    except OSError:
        return 2 ** 22 + 1


def _poll(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'condition not met within %ss' % timeout
        time.sleep(0.01)


def test_pid_file_state(tmp_path):
    pid_file = tmp_path / 'nginx.pid'
    alive, why = pid_file_state(str(pid_file))
    assert alive is False and 'does not exist' in why
    pid_file.write_text('')                                  # what nginx -t leaves behind
    assert pid_file_state(str(pid_file)) == (False, 'pid_file %s holds no process id' % pid_file)
    pid_file.write_text('%d\n' % _dead_pid())
    alive, why = pid_file_state(str(pid_file))
    assert alive is False and 'stale' in why
    pid_file.write_text('%d\n' % os.getpid())
    assert pid_file_state(str(pid_file))[0] is True


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='needs /proc')
def test_pid_file_state_zombie_is_not_running(tmp_path):
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    try:
        _poll(lambda: _state(child.pid) == 'Z')
        pid_file = tmp_path / 'nginx.pid'
        pid_file.write_text('%d\n' % child.pid)
        alive, why = pid_file_state(str(pid_file))
        assert alive is False and 'zombie' in why
    finally:
        child.wait()


def _state(pid):
    try:
        with open('/proc/%d/stat' % pid) as handle:
            data = handle.read()
    except OSError:
        return None
    return data[data.rindex(')') + 2:].split()[0]


def test_pid_file_unreadable_is_a_deploy_error(tmp_path):
    with pytest.raises(DeployError) as info:
        pid_file_state(str(tmp_path))          # a directory: exists, cannot be read as a file
    assert info.value.option == 'pid_file'


def test_running_nginx_is_reloaded_not_started(tmp_path):
    pid_file = tmp_path / 'nginx.pid'
    pid_file.write_text('%d\n' % os.getpid())
    runner = FakeRunner()
    target = NginxTarget({'pid_file': str(pid_file), 'start_command': ['systemctl', 'start', 'nginx']}, runner)
    assert target.reload([]) is True
    assert runner.calls == [['nginx', '-s', 'reload']] and target.started is False


@pytest.mark.parametrize('content', [None, 'stale'])
def test_nginx_not_running_is_started(tmp_path, content):
    pid_file = tmp_path / 'nginx.pid'
    if content:
        pid_file.write_text('%d\n' % _dead_pid())
    runner = FakeRunner()
    target = NginxTarget({'pid_file': str(pid_file), 'start_command': ['systemctl', 'start', 'nginx']}, runner)
    assert target.reload([]) is True
    assert runner.calls == [['systemctl', 'start', 'nginx']] and target.started is True


def test_nginx_not_running_without_start_command_fails_clearly(tmp_path):
    runner = FakeRunner()
    target = NginxTarget({'pid_file': str(tmp_path / 'nginx.pid')}, runner)
    with pytest.raises(DeployError) as info:
        target.reload([])
    assert runner.calls == []
    assert info.value.option == 'pid_file'
    assert 'nginx is not running' in str(info.value) and 'start_command' in info.value.fix


def test_failing_start_command_carries_its_output(tmp_path):
    runner = FakeRunner((1, '', 'nginx: [emerg] cannot load certificate "/etc/nginx/tls/x.crt"'))
    target = NginxTarget({'pid_file': str(tmp_path / 'nginx.pid'), 'start_command': ['nginx']}, runner)
    with pytest.raises(DeployError) as info:
        target.reload([])
    assert info.value.option == 'start_command' and 'cannot load certificate' in str(info.value)
    assert target.started is False


def test_reload_false_neither_reloads_nor_starts(tmp_path):
    runner = FakeRunner()
    target = NginxTarget({'reload': False, 'pid_file': str(tmp_path / 'nginx.pid'), 'start_command': ['nginx']},
                         runner)
    assert target.reload([]) is False and runner.calls == []


@pytest.mark.parametrize('options, option', [
    ({'start_command': ['nginx']}, 'start_command'),                          # needs pid_file
    ({'start_command': 'systemctl start nginx', 'pid_file': '/run/nginx.pid'}, 'start_command'),
    ({'pid_file': 'run/nginx.pid'}, 'pid_file'),
])
def test_start_options_are_checked(options, option):
    with pytest.raises(ConfigError) as info:
        NginxTarget(options, FakeRunner())
    assert info.value.option == option


def test_option_spec_is_the_module_argument_spec():
    spec = NginxTarget.option_spec()
    assert sorted(spec) == ['pid_file', 'reload', 'reload_command', 'start_command', 'validate_command']
    module_spec = nginx_target.nginx_argument_spec()
    assert all(module_spec[key] == value for key, value in spec.items())
    spec['reload']['default'] = False                         # a copy: the next caller is unaffected
    assert NginxTarget.option_spec()['reload']['default'] is True
    assert files_target.FilesTarget.option_spec() == {}


def _deploy_request(tmp_path, serial):
    cert, dummy = self_signed('www.test', serial)
    return DeployRequest(name='www', certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
                         options={'certificate_path': str(tmp_path / 'www.crt'), 'option_prefix': ''})


def test_first_deploy_starts_nginx_through_the_sequence(tmp_path):
    runner = FakeRunner()
    target = NginxTarget({'pid_file': str(tmp_path / 'nginx.pid'), 'start_command': ['nginx']}, runner)
    result = deploy(target, [_deploy_request(tmp_path, 0x51)])
    assert result['changed'] is True and result['reloaded'] is True and target.started is True
    assert runner.calls == [['nginx', '-t'], ['nginx']]
    assert (tmp_path / 'www.crt').exists()


def test_not_running_without_start_command_rolls_back(tmp_path):
    runner = FakeRunner()
    target = NginxTarget({'pid_file': str(tmp_path / 'nginx.pid')}, runner)
    with pytest.raises(DeployError) as info:
        deploy(target, [_deploy_request(tmp_path, 0x52)])
    assert runner.calls == [['nginx', '-t']]                 # never a reload of a server that does not run
    assert info.value.option == 'pid_file'
    assert 'reload failed: nginx is not running' in info.value.msg
    assert info.value.details['rolled_back'] is True
    assert not (tmp_path / 'www.crt').exists()               # the new file is gone again
