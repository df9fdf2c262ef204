"""certforge.pki.deploy with target haproxy against a real HAProxy (master-worker) on 127.0.0.1:
runtime API swaps with no reload, master CLI reloads, rollback, bad input, and the zero-downtime
proof (a client doing TLS handshakes in a loop during 100 runtime swaps)."""

import hashlib
import importlib.util
import os
import stat
import sys
import threading
from pathlib import Path

import pytest


def _load(name):
    key = 'certforge_integration_' + name
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, str(Path(__file__).with_name(name + '.py')))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


servers = _load('target_servers')
pytestmark = pytest.mark.skipif(not servers.which('haproxy'), reason='haproxy is not installed (make deps)')


@pytest.fixture(scope='session')
def haproxy(tmp_path_factory, test_ca):
    first = test_ca.issue('hap.test')
    server = servers.Haproxy(tmp_path_factory.mktemp('haproxy'), first)
    server.issued = first
    server.start()
    yield server
    server.stop()


def play(args, name='deploy'):
    return [{'name': 'haproxy', 'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': name, 'certforge.pki.deploy': args, 'register': 'out'}]}]


def deploy_args(server, issued, **target_options):
    options = {'stats_socket': server.stats_socket}
    options.update(target_options)
    return {'target': 'haproxy', 'name': 'site', 'target_options': options,
            'certificate': issued.cert_pem, 'chain': issued.chain_pem, 'key_path': server.key,
            'certificate_options': {'pem_path': server.pem},
            'verify': {'port': server.port, 'server_name': 'hap.test', 'timeout': 15}}


def master_reloads(server):
    from ansible_collections.certforge.pki.plugins.module_utils.targets import common
    answer = common.socket_command(server.master_socket, 'show proc', 5, 'master_socket')
    from ansible_collections.certforge.pki.plugins.module_utils.targets.haproxy import _PROC_MASTER
    return int(_PROC_MASTER.search(answer).group(2))


def digest(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_runtime_api_swaps_without_reload(haproxy, test_ca, run_playbook):
    renewal = test_ca.issue('hap.test', key_pem=haproxy.issued.key_pem)
    reloads = master_reloads(haproxy)
    checked = run_playbook(play(deploy_args(haproxy, renewal)), check=True, diff=True)
    assert checked.rc == 0, checked
    assert checked.task('deploy')['changed'] and servers.served_serial(haproxy.port, 'hap.test') != renewal.serial
    result = run_playbook(play(deploy_args(haproxy, renewal)))
    assert result.rc == 0, result
    out = result.task('deploy')
    assert out['changed'] and out['verified'] == {'site': renewal.serial_hex}, out
    assert servers.served_serial(haproxy.port, 'hap.test') == renewal.serial
    assert master_reloads(haproxy) == reloads, 'the runtime API swap reloaded haproxy'
    assert stat.S_IMODE(os.stat(haproxy.pem).st_mode) == 0o600
    assert 'PRIVATE KEY' not in str(out)
    again = run_playbook(play(deploy_args(haproxy, renewal)))
    assert again.rc == 0 and not again.task('deploy')['changed'], again
    haproxy.issued = renewal


def test_reload_mode_through_the_master_cli(haproxy, test_ca, run_playbook):
    renewal = test_ca.issue('hap.test', key_pem=haproxy.issued.key_pem)
    reloads = master_reloads(haproxy)
    args = deploy_args(haproxy, renewal, mode='reload', master_socket=haproxy.master_socket,
                       config=haproxy.config, validate_command=[servers.which('haproxy'), '-c', '-f', haproxy.config])
    args['target_options'].pop('stats_socket')
    result = run_playbook(play(args))
    assert result.rc == 0, result
    assert result.task('deploy')['reloaded']
    assert servers.served_serial(haproxy.port, 'hap.test') == renewal.serial
    assert master_reloads(haproxy) == reloads + 1
    haproxy.issued = renewal


def test_failed_verify_rolls_back_and_old_certificate_serves(haproxy, test_ca, run_playbook):
    renewal = test_ca.issue('hap.test', key_pem=haproxy.issued.key_pem)
    before = digest(haproxy.pem)
    args = deploy_args(haproxy, renewal)
    args['verify'] = {'port': servers.free_port(), 'timeout': 1}
    result = run_playbook(play(args))
    assert result.rc != 0
    msg = result.task('deploy')['msg']
    assert 'verify failed' in msg and 'Rolled back' in msg, msg
    assert digest(haproxy.pem) == before
    assert servers.served_serial(haproxy.port, 'hap.test') == haproxy.issued.serial


def test_stats_socket_that_is_not_a_socket_is_refused(haproxy, test_ca, run_playbook, tmp_path):
    renewal = test_ca.issue('hap.test', key_pem=haproxy.issued.key_pem)
    before = digest(haproxy.pem)
    plain = tmp_path / 'not-a-socket'
    plain.write_text('')
    result = run_playbook(play(deploy_args(haproxy, renewal, stats_socket=str(plain))))
    assert result.rc != 0
    out = result.task('deploy')
    assert 'target_options.stats_socket' in out['msg'] and 'is not a socket' in out['msg'], out['msg']
    assert digest(haproxy.pem) == before
    outside = deploy_args(haproxy, renewal, allowed_directories=[str(tmp_path)])
    result = run_playbook(play(outside))
    assert result.rc != 0 and 'outside the allowed directories' in result.task('deploy')['msg']
    assert 'certificate_options.pem_path' in result.task('deploy')['msg']
    assert digest(haproxy.pem) == before


class Handshakes:
    """A client doing TLS handshakes in a loop in a thread; counts successes and failures."""

    def __init__(self, port):
        self.port, self.ok, self.failed, self.errors = port, 0, 0, []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop_flag.is_set():
            try:
                servers.served_der(self.port, 'hap.test', timeout=5)
                self.ok += 1
            except OSError as exc:
                self.failed += 1
                self.errors.append(str(exc))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(10)


class Runner:
    def run_command(self, argv):
        import subprocess
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def swaps(server, certs, count, **options):
    """``count`` deploys through the connector in this process, alternating ``certs``."""
    from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import deploy
    from ansible_collections.certforge.pki.plugins.module_utils.core.model import DeployRequest
    from ansible_collections.certforge.pki.plugins.module_utils.targets.haproxy import HaproxyTarget
    served = []
    for index in range(count):
        issued = certs[index % len(certs)]
        target = HaproxyTarget(dict(options), Runner())
        request = DeployRequest(name='site', certificate_pem=issued.cert_pem, chain_pem=[issued.chain_pem],
                                key_path=server.key, options={'option_prefix': '',
                                                              'verify': {'port': server.port, 'server_name': 'hap.test'}},
                                certificate_options={'pem_path': server.pem})
        result = deploy(target, [request])
        served.append(result['verified'].get('site'))
    return served


def test_zero_downtime_during_100_runtime_swaps(haproxy, test_ca):
    certs = [test_ca.issue('hap.test', key_pem=haproxy.issued.key_pem) for dummy in range(2)]
    reloads = master_reloads(haproxy)
    with Handshakes(haproxy.port) as loop:
        served = swaps(haproxy, certs, 100, stats_socket=haproxy.stats_socket)
    print('HANDSHAKES haproxy runtime_api swaps=100 ok=%d failed=%d' % (loop.ok, loop.failed))
    assert served == [certs[i % 2].serial_hex for i in range(100)]
    assert loop.failed == 0, loop.errors[:5]
    assert loop.ok > 100
    assert master_reloads(haproxy) == reloads
    haproxy.issued = certs[1]
