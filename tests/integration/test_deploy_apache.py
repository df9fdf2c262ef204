"""certforge.pki.deploy with target apache against a real Apache 2.4 + mod_ssl on 127.0.0.1:
separate certificate/chain files, config test, key match before any reload, graceful reload,
live serial check, rollback, check mode and idempotence."""

import hashlib
import importlib.util
import os
import sys
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
pytestmark = pytest.mark.skipif(not servers.which('apache2'), reason='apache2 is not installed (make deps)')


@pytest.fixture(scope='session')
def apache(tmp_path_factory, test_ca):
    root = tmp_path_factory.mktemp('apache')
    os.chmod(str(root), 0o755)
    first = test_ca.issue('apache.test')
    server = servers.Apache(root, first)
    server.issued = first
    server.marker = os.path.join(server.root, 'reloads.log')
    server.start()
    yield server
    server.stop()


def play(args, name='deploy'):
    return [{'name': 'apache', 'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': name, 'certforge.pki.deploy': args, 'register': 'out'}]}]


def deploy_args(server, issued, key_path=None):
    # the reload goes through a shell that counts reloads in a marker file first
    reload_command = ['/bin/sh', '-c', 'echo reload >> "$0" && exec "$@"', server.marker] + server.command('-k', 'graceful')
    return {'target': 'apache', 'name': 'site',
            'target_options': {'validate_command': server.command('-t'), 'reload_command': reload_command},
            'certificate': issued.cert_pem, 'chain': issued.chain_pem,
            'certificate_path': server.cert, 'chain_path': server.chain, 'key_path': key_path or server.key,
            'verify': {'port': server.port, 'server_name': 'apache.test', 'timeout': 10}}


def reloads(server):
    if not os.path.exists(server.marker):
        return 0
    with open(server.marker) as handle:
        return len(handle.read().split())


def digest(*paths):
    out = []
    for path in paths:
        with open(path, 'rb') as handle:
            out.append(hashlib.sha256(handle.read()).hexdigest())
    return out


def test_deploy_graceful_reload_serves_new_serial(apache, test_ca, run_playbook):
    renewal = test_ca.issue('apache.test', key_pem=apache.issued.key_pem)
    count = reloads(apache)
    checked = run_playbook(play(deploy_args(apache, renewal)), check=True, diff=True)
    assert checked.rc == 0 and checked.task('deploy')['changed'], checked
    assert reloads(apache) == count
    result = run_playbook(play(deploy_args(apache, renewal)))
    assert result.rc == 0, result
    out = result.task('deploy')
    assert out['reloaded'] and out['verified'] == {'site': renewal.serial_hex}
    assert reloads(apache) == count + 1
    assert servers.served_serial(apache.port, 'apache.test') == renewal.serial
    again = run_playbook(play(deploy_args(apache, renewal)))
    assert again.rc == 0 and not again.task('deploy')['changed']
    assert reloads(apache) == count + 1
    apache.issued = renewal


def test_mismatched_key_never_reaches_a_reload(apache, test_ca, run_playbook, tmp_path):
    other = test_ca.issue('apache.test')          # a certificate for another key
    before = digest(apache.cert, apache.chain, apache.key)
    count = reloads(apache)
    result = run_playbook(play(deploy_args(apache, other)))
    assert result.rc != 0
    msg = result.task('deploy')['msg']
    assert 'key_path' in msg and 'does not match' in msg, msg
    assert reloads(apache) == count, 'a mismatched pair reached a reload'
    assert digest(apache.cert, apache.chain, apache.key) == before
    assert apache.alive()
    assert servers.served_serial(apache.port, 'apache.test') == apache.issued.serial
    # a key that changed on disk after planning is caught by validate, still before the reload
    from ansible_collections.certforge.pki.plugins.module_utils.core.errors import DeployError
    from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import deploy
    from ansible_collections.certforge.pki.plugins.module_utils.core.model import DeployRequest
    from ansible_collections.certforge.pki.plugins.module_utils.targets.apache import ApacheTarget
    swapped_key = tmp_path / 'swapped.key'
    servers.write(swapped_key, apache.issued.key_pem, 0o600)
    renewal = test_ca.issue('apache.test', key_pem=apache.issued.key_pem)
    args = deploy_args(apache, renewal)
    target = ApacheTarget(args['target_options'], Runner())
    real_validate = ApacheTarget.validate

    def validate_after_key_swap(applied):
        servers.write(swapped_key, other.key_pem, 0o600)     # someone replaced the key in between
        return real_validate(target, applied)
    target.validate = validate_after_key_swap
    request = DeployRequest(name='site', certificate_pem=renewal.cert_pem, chain_pem=[renewal.chain_pem],
                            key_path=str(swapped_key),
                            options={'option_prefix': '', 'certificate_path': apache.cert, 'chain_path': apache.chain})
    with pytest.raises(DeployError) as info:
        deploy(target, [request])
    assert 'does not match' in info.value.msg and 'not reloading' in info.value.msg
    assert reloads(apache) == count
    assert digest(apache.cert, apache.chain, apache.key) == before
    assert servers.served_serial(apache.port, 'apache.test') == apache.issued.serial


class Runner:
    def run_command(self, argv):
        import subprocess
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def test_failed_config_test_rolls_back(apache, test_ca, run_playbook):
    renewal = test_ca.issue('apache.test', key_pem=apache.issued.key_pem)
    before = digest(apache.cert, apache.chain)
    count = reloads(apache)
    args = deploy_args(apache, renewal)
    args['target_options']['validate_command'] = apache.command('-t', '-C', 'NoSuchDirective on')
    result = run_playbook(play(args))
    assert result.rc != 0
    msg = result.task('deploy')['msg']
    assert 'validate failed' in msg and 'NoSuchDirective' in msg and 'Rolled back' in msg, msg
    assert digest(apache.cert, apache.chain) == before and reloads(apache) == count
    assert servers.served_serial(apache.port, 'apache.test') == apache.issued.serial


def test_failed_verify_reloads_the_old_certificate(apache, test_ca, run_playbook):
    renewal = test_ca.issue('apache.test', key_pem=apache.issued.key_pem)
    before = digest(apache.cert, apache.chain)
    args = deploy_args(apache, renewal)
    args['verify'] = {'port': servers.free_port(), 'timeout': 1}
    result = run_playbook(play(args))
    assert result.rc != 0
    assert 'Reloaded again' in result.task('deploy')['msg']
    assert digest(apache.cert, apache.chain) == before
    servers.wait_serial(apache.port, apache.issued.serial, 'apache.test')
    assert apache.alive()
