import datetime
import os
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
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
    plan = target.plan(request)
    applied = target.apply(plan)
    assert target.verify(applied) == 'B2'
    assert names[-1] == 'b.test'
    assert os.path.exists(str(tmp_path / 'b-deployed.crt'))
