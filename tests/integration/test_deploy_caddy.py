"""certforge.pki.deploy with target caddy against a real Caddy on 127.0.0.1: the admin API mode
(certificate loaded in-process, no restart), the file mode (caddy reload --force), refusals with
Caddy's error shown and the old certificate still served."""

import hashlib
import importlib.util
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
pytestmark = pytest.mark.skipif(not servers.which('caddy'), reason='caddy is not installed (make deps)')


@pytest.fixture(scope='session')
def caddy(tmp_path_factory, test_ca):
    first = test_ca.issue('caddy.test')
    server = servers.Caddy(tmp_path_factory.mktemp('caddy'), first, extra=test_ca.issue('extra.test'))
    server.issued = first
    server.start()
    yield server
    server.stop()


def play(args, name='deploy'):
    return [{'name': 'caddy', 'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': name, 'certforge.pki.deploy': args, 'register': 'out'}]}]


def deploy_args(server, issued, **options):
    target_options = {'admin_url': server.admin_url}
    target_options.update(options)
    return {'target': 'caddy', 'name': 'site', 'target_options': target_options,
            'certificate': issued.cert_pem, 'chain': issued.chain_pem, 'fullchain_path': server.cert,
            'key_path': server.key, 'verify': {'port': server.port, 'server_name': 'caddy.test', 'timeout': 10}}


def digest(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_api_mode_loads_in_process(caddy, test_ca, run_playbook):
    renewal = test_ca.issue('caddy.test', key_pem=caddy.issued.key_pem)
    pid = caddy.process.pid
    checked = run_playbook(play(deploy_args(caddy, renewal)), check=True, diff=True)
    assert checked.rc == 0 and checked.task('deploy')['changed']
    assert servers.served_serial(caddy.port, 'caddy.test') == caddy.issued.serial
    result = run_playbook(play(deploy_args(caddy, renewal)))
    assert result.rc == 0, result
    assert result.task('deploy')['verified'] == {'site': renewal.serial_hex}
    assert caddy.process.pid == pid and caddy.alive()
    assert 'PRIVATE KEY' not in str(result.tasks)
    again = run_playbook(play(deploy_args(caddy, renewal)))
    assert again.rc == 0 and not again.task('deploy')['changed']
    caddy.issued = renewal


def test_file_mode_caddy_reload_force(caddy, test_ca, run_playbook):
    renewal = test_ca.issue('caddy.test', key_pem=caddy.issued.key_pem)
    address = caddy.admin_url.split('://')[1]
    args = deploy_args(caddy, renewal, mode='file',
                       validate_command=caddy.command('validate', '--config', caddy.config),
                       reload_command=caddy.command('reload', '--config', caddy.config, '--address', address, '--force'))
    result = run_playbook(play(args))
    assert result.rc == 0, result
    assert result.task('deploy')['reloaded']
    assert servers.served_serial(caddy.port, 'caddy.test') == renewal.serial
    caddy.issued = renewal


def test_admin_api_refusal_is_shown_and_rolled_back(caddy, test_ca, run_playbook):
    import os
    renewal = test_ca.issue('caddy.test', key_pem=caddy.issued.key_pem)
    before = digest(caddy.cert)
    saved = caddy.extra_cert + '.saved'
    os.rename(caddy.extra_cert, saved)     # the running config names a file that is gone now
    try:
        result = run_playbook(play(deploy_args(caddy, renewal)))
    finally:
        os.rename(saved, caddy.extra_cert)
    assert result.rc != 0
    msg = result.task('deploy')['msg']
    assert 'the Caddy admin API refused POST /load' in msg and 'extra.crt' in msg, msg
    assert 'target_options.admin_url' in msg or result.task('deploy').get('option') == 'target_options.admin_url'
    assert digest(caddy.cert) == before
    assert servers.served_serial(caddy.port, 'caddy.test') == caddy.issued.serial
