"""certforge.pki.deploy_nginx, deploy_files and deploy through real ansible-playbook runs against
a real nginx on 127.0.0.1 (fixtures in conftest.py and nginx_server.py)."""

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys

import pytest

# loaded by conftest.py (the integration directory is not a package)
nginx_server = sys.modules['certforge_integration_nginx_server']


def play(module, args, name='deploy'):
    """A one-task play; ``args`` go in as JSON (valid YAML, no templating surprises)."""
    return [{
        'name': 'certforge integration',
        'hosts': 'localhost',
        'gather_facts': False,
        'tasks': [{'name': name, module: args, 'register': 'out'}],
    }]


def nginx_args(server, **args):
    base = {'validate_command': server.validate_command, 'reload_command': server.reload_command}
    base.update(args)
    return base


def tree_state(directory):
    """{relative path: (sha256, mode)} of every file below ``directory`` (backups included)."""
    state = {}
    for root, dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            state[os.path.relpath(path, directory)] = (digest, stat.S_IMODE(os.stat(path).st_mode))
    return state


def file_bytes_and_mode(path):
    with open(path, 'rb') as handle:
        return handle.read(), stat.S_IMODE(os.stat(path).st_mode), os.stat(path).st_uid


@pytest.fixture
def site(make_nginx, test_ca):
    """nginx with one site 'www.test'; returns (server, name, renewal) where renewal is a new
    certificate for the same key."""
    server = make_nginx('www.test')
    first = server.issued['www.test']
    return server, 'www.test', test_ca.issue('www.test', key_pem=first.key_pem)


def deploy_site_args(server, name, issued, **extra):
    args = nginx_args(server, name='www', certificate=issued.cert_pem, chain=issued.chain_pem,
                      fullchain_path=server.sites[name]['cert'], key_path=server.sites[name]['key'],
                      verify={'port': server.port, 'server_name': name})
    args.update(extra)
    return args


# ---------------------------------------------------------------------------------------------


def test_fresh_deploy_serves_new_serial(site, run_playbook):
    server, name, renewal = site
    old_serial = server.issued[name].serial
    assert server.served_serial(name) == old_serial
    reloads = server.reload_count()

    result = run_playbook(play('certforge.pki.deploy_nginx', deploy_site_args(server, name, renewal)))

    assert result.rc == 0, result
    out = result.task('deploy')
    assert result.changed() == 1
    assert out['reloaded'] is True
    assert out['verified'] == {'www': renewal.serial_hex}
    assert out['files'] == [server.sites[name]['cert']]
    assert out['backups'][server.sites[name]['cert']].endswith('.bak')
    assert any('serial' in reason for reason in out['changed_reasons'])
    assert server.served_serial(name) == renewal.serial          # seen from our own handshake
    assert server.reload_count() == reloads + 1
    with open(server.sites[name]['cert']) as handle:
        assert handle.read() == renewal.cert_pem + renewal.chain_pem
    assert 'PRIVATE KEY' not in json.dumps(out)


def test_idempotent_rerun_does_not_reload(site, run_playbook):
    server, name, renewal = site
    playbook = play('certforge.pki.deploy_nginx', deploy_site_args(server, name, renewal))
    first = run_playbook(playbook)
    assert first.rc == 0 and first.changed() == 1, first
    workers = server.stable_workers()
    reloads = server.reload_count()
    files = tree_state(server.cert_dir)

    second = run_playbook(playbook)

    assert second.rc == 0, second
    assert second.changed() == 0
    out = second.task('deploy')
    assert out['changed'] is False and out['reloaded'] is False and out['changed_reasons'] == []
    # nginx's side: a reload would have replaced the worker processes and logged a SIGHUP
    assert server.worker_pids() == workers
    assert server.reload_count() == reloads
    assert tree_state(server.cert_dir) == files


def test_check_mode_changes_nothing(site, run_playbook):
    server, name, renewal = site
    before = tree_state(server.cert_dir)
    reloads = server.reload_count()

    result = run_playbook(play('certforge.pki.deploy_nginx', deploy_site_args(server, name, renewal)),
                          check=True, diff=True)

    assert result.rc == 0, result
    out = result.task('deploy')
    assert out['changed'] is True and out['reloaded'] is False
    assert out['diff']['before']['www']['serial'] == server.issued[name].serial_hex
    assert out['diff']['after']['www']['serial'] == renewal.serial_hex
    assert 'PRIVATE' not in json.dumps(out['diff'])
    assert renewal.serial_hex in result.stdout                   # --diff shows the facts
    assert tree_state(server.cert_dir) == before
    assert server.reload_count() == reloads
    assert server.served_serial(name) == server.issued[name].serial


def test_broken_config_fails_with_nginx_output_and_rolls_back(site, run_playbook):
    server, name, renewal = site
    cert = server.sites[name]['cert']
    before = file_bytes_and_mode(cert)
    before_tree = tree_state(server.cert_dir)
    reloads = server.reload_count()
    with open(server.conf, 'a') as handle:
        handle.write('\nthis_is_not_a_directive here;\n')

    result = run_playbook(play('certforge.pki.deploy_nginx', deploy_site_args(server, name, renewal)))

    assert result.rc != 0 and result.failures() == 1, result
    out = result.task('deploy')
    assert result.status('deploy') == 'failed'
    assert 'validate failed' in out['msg']
    assert 'unknown directive "this_is_not_a_directive"' in out['msg']   # nginx -t's own words
    assert out['error_kind'] == 'deploy' and out['error_option'] == 'validate_command'
    assert 'Traceback' not in result.stdout
    assert file_bytes_and_mode(cert) == before
    # the only new thing on disk is the backup taken before the write
    after_tree = tree_state(server.cert_dir)
    assert dict((k, v) for k, v in after_tree.items() if '.certforge-backup' not in k) == before_tree
    assert server.reload_count() == reloads
    assert server.served_serial(name) == server.issued[name].serial


def test_failing_reload_rolls_back_and_old_certificate_keeps_serving(site, run_playbook):
    server, name, renewal = site
    cert = server.sites[name]['cert']
    before = file_bytes_and_mode(cert)
    failing = ['sh', '-c', 'echo "reload refused by test" >&2; exit 3']

    result = run_playbook(play('certforge.pki.deploy_nginx',
                               deploy_site_args(server, name, renewal, reload_command=failing)))

    assert result.rc != 0, result
    out = result.task('deploy')
    assert 'reload failed' in out['msg'] and 'reload refused by test' in out['msg']
    assert out['error_option'] == 'reload_command'
    assert out['error_details']['rolled_back'] is True
    assert file_bytes_and_mode(cert) == before
    assert server.served_serial(name) == server.issued[name].serial


def test_failed_verify_rolls_back_and_reloads_the_old_certificate(site, run_playbook):
    server, name, renewal = site
    cert = server.sites[name]['cert']
    before = file_bytes_and_mode(cert)
    reloads = server.reload_count()
    nowhere = server.port + 1 if server.port < 65535 else server.port - 1   # nothing listens there

    result = run_playbook(play('certforge.pki.deploy_nginx', deploy_site_args(
        server, name, renewal, verify={'port': nowhere, 'server_name': name, 'timeout': 1})))

    assert result.rc != 0, result
    out = result.task('deploy')
    assert 'verify failed' in out['msg'] and 'Reloaded again with the restored files' in out['msg']
    assert file_bytes_and_mode(cert) == before
    assert server.reload_count() == reloads + 2            # the deploy's reload and the one after rollback
    server.wait_for_serial(name, server.issued[name].serial)


def test_batch_of_three_certificates_one_reload(make_nginx, test_ca, run_playbook):
    names = ['a.test', 'b.test', 'c.test']
    server = make_nginx(*names)
    renewals = dict((n, test_ca.issue(n, key_pem=server.issued[n].key_pem)) for n in names)
    reloads = server.reload_count()
    args = nginx_args(server, chain=test_ca.chain_pem, verify={'port': server.port}, certificates=[
        {'name': n.split('.', maxsplit=1)[0], 'certificate': renewals[n].cert_pem,
         'fullchain_path': server.sites[n]['cert'], 'key_path': server.sites[n]['key']} for n in names])

    result = run_playbook(play('certforge.pki.deploy_nginx', args))

    assert result.rc == 0, result
    out = result.task('deploy')
    assert out['reloaded'] is True
    assert out['verified'] == dict((n.split('.', maxsplit=1)[0], renewals[n].serial_hex) for n in names)
    assert server.reload_count() == reloads + 1
    for n in names:
        assert server.served_serial(n) == renewals[n].serial

    again = run_playbook(play('certforge.pki.deploy_nginx', args))
    assert again.rc == 0 and again.changed() == 0, again
    assert server.reload_count() == reloads + 1


def test_command_given_as_a_string_is_refused(site, run_playbook):
    server, name, renewal = site
    before = tree_state(server.cert_dir)

    result = run_playbook(play('certforge.pki.deploy_nginx',
                               deploy_site_args(server, name, renewal, reload_command='nginx -s reload')))

    assert result.rc != 0, result
    out = result.task('deploy')
    assert out['error_option'] == 'reload_command'
    assert 'give an argv list, e.g. [nginx, -s, reload]' in out['msg']
    assert 'Traceback' not in result.stdout
    assert tree_state(server.cert_dir) == before


def test_missing_destination_directory_fails_before_writing(make_nginx, test_ca, run_playbook):
    server = make_nginx('a.test', 'b.test')
    a = test_ca.issue('a.test', key_pem=server.issued['a.test'].key_pem)
    missing_dir = os.path.join(server.root, 'no-such-dir')
    before = tree_state(server.cert_dir)
    reloads = server.reload_count()
    args = nginx_args(server, certificates=[
        {'name': 'a', 'certificate': a.cert_pem, 'fullchain_path': server.sites['a.test']['cert']},
        {'name': 'b', 'certificate': test_ca.issue('b.test').cert_pem,
         'fullchain_path': os.path.join(missing_dir, 'b.crt')}])

    result = run_playbook(play('certforge.pki.deploy_nginx', args))

    assert result.rc != 0, result
    out = result.task('deploy')
    assert out['error_option'] == 'certificates[1].fullchain_path'
    assert 'create the directory first' in out['msg'] and missing_dir in out['msg']
    assert not os.path.exists(missing_dir)
    assert tree_state(server.cert_dir) == before               # 'a' was not written either
    assert server.reload_count() == reloads


def test_deploy_files_module(tmp_path, test_ca, run_playbook):
    issued = test_ca.issue('files.test')
    target = tmp_path / 'tls'
    target.mkdir()
    (target / 'files.key').write_text(issued.key_pem)
    args = {'certificate': issued.cert_pem + issued.chain_pem, 'certificate_path': str(target / 'cert.pem'),
            'chain_path': str(target / 'chain.pem'), 'fullchain_path': str(target / 'fullchain.pem'),
            'key_path': str(target / 'files.key'), 'mode': '0640', 'group': '0'}

    checked = run_playbook(play('certforge.pki.deploy_files', args), check=True)
    assert checked.rc == 0 and checked.changed() == 1, checked
    assert sorted(os.listdir(str(target))) == ['files.key']

    result = run_playbook(play('certforge.pki.deploy_files', args))
    assert result.rc == 0 and result.changed() == 1, result
    assert (target / 'cert.pem').read_text() == issued.cert_pem
    assert (target / 'chain.pem').read_text() == issued.chain_pem
    assert (target / 'fullchain.pem').read_text() == issued.cert_pem + issued.chain_pem
    assert all(stat.S_IMODE(os.stat(str(target / n)).st_mode) == 0o640
               for n in ('cert.pem', 'chain.pem', 'fullchain.pem'))

    again = run_playbook(play('certforge.pki.deploy_files', args))
    assert again.rc == 0 and again.changed() == 0, again

    wrong_key = dict(args, certificate=test_ca.issue('files.test').cert_pem + issued.chain_pem)
    refused = run_playbook(play('certforge.pki.deploy_files', wrong_key))
    assert refused.rc != 0 and refused.task('deploy')['error_option'] == 'key_path', refused
    assert (target / 'cert.pem').read_text() == issued.cert_pem


# ---------------------------------------------------------------------------------------------
# nginx that does not run yet: the first deploy to a new host
# ---------------------------------------------------------------------------------------------

def _read_pid(pid_file):
    try:
        with open(pid_file) as handle:
            return int(handle.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _gone(pid):
    info = nginx_server._proc_stat(pid)
    return info is None or info['state'] == 'Z'


def _stop_started_nginx(pid_file, timeout=10.0):
    """Stop, by the PID in its pid file, an nginx that a deploy started as a daemon."""
    pid = _read_pid(pid_file)
    if pid is None or _gone(pid) or 'nginx' not in nginx_server._cmdline(pid):
        return
    workers = [int(entry) for entry in os.listdir('/proc') if entry.isdigit()
               and (nginx_server._proc_stat(int(entry)) or {}).get('ppid') == pid]
    os.kill(pid, signal.SIGTERM)
    try:
        nginx_server.poll(lambda: _gone(pid), timeout, 'the started nginx (PID %d) to exit' % pid)
    except AssertionError:
        for victim in [pid] + workers:
            if not _gone(victim) and 'nginx' in nginx_server._cmdline(victim):
                os.kill(victim, signal.SIGKILL)
        raise


@pytest.fixture
def stopped_site(make_nginx, test_ca, request):
    """A site whose nginx is stopped and whose certificate file does not exist yet (the key does):
    nginx cannot start until a deploy writes the certificate.  Returns (server, name, issued)."""
    server = make_nginx('www.test')
    name = 'www.test'
    server.stop()
    nginx_server.poll(lambda: not os.path.exists(server.pid_file), 10, 'nginx to remove its pid file')
    os.remove(server.sites[name]['cert'])
    request.addfinalizer(lambda: _stop_started_nginx(server.pid_file))
    check = subprocess.run(server.validate_command, capture_output=True, text=True, check=False)
    assert check.returncode != 0 and 'cannot load certificate' in check.stderr, check.stderr
    return server, name, test_ca.issue(name, key_pem=server.issued[name].key_pem)


def test_first_deploy_starts_nginx_that_could_not_start(stopped_site, run_playbook):
    server, name, issued = stopped_site
    args = {'target': 'nginx',
            'target_options': {'validate_command': server.validate_command,
                               'reload_command': server.reload_command,
                               'pid_file': server.pid_file,
                               'start_command': server.argv()},
            'name': 'www', 'certificate': issued.cert_pem, 'chain': issued.chain_pem,
            'fullchain_path': server.sites[name]['cert'], 'key_path': server.sites[name]['key'],
            'verify': {'port': server.port, 'server_name': name}}

    result = run_playbook(play('certforge.pki.deploy', args))

    assert result.rc == 0, result
    out = result.task('deploy')
    assert out['started'] is True and out['reloaded'] is True
    assert out['verified'] == {'www': issued.serial_hex}          # the module saw the new serial served
    assert server.served_serial(name) == issued.serial            # and so do we
    assert out['backups'] == {server.sites[name]['cert']: None}   # a new file, nothing to back up
    pid = _read_pid(server.pid_file)
    assert pid and not _gone(pid) and 'nginx' in nginx_server._cmdline(pid)

    again = run_playbook(play('certforge.pki.deploy', args))

    assert again.rc == 0 and again.changed() == 0, again
    out = again.task('deploy')
    assert out['reloaded'] is False and out['started'] is False
    assert _read_pid(server.pid_file) == pid                      # neither started nor reloaded again
    assert server.reload_count() == 0


def test_nginx_not_running_without_start_command_fails_and_rolls_back(stopped_site, run_playbook):
    server, name, issued = stopped_site
    cert = server.sites[name]['cert']
    args = nginx_args(server, pid_file=server.pid_file, name='www', certificate=issued.cert_pem,
                      chain=issued.chain_pem, fullchain_path=cert, key_path=server.sites[name]['key'])

    result = run_playbook(play('certforge.pki.deploy_nginx', args))

    assert result.rc != 0, result
    out = result.task('deploy')
    assert out['error_option'] == 'pid_file'
    assert 'reload failed: nginx is not running' in out['msg'] and 'start_command' in out['msg']
    assert out['error_details']['rolled_back'] is True
    assert 'Traceback' not in result.stdout
    assert not os.path.exists(cert)                               # the new file was removed again
    assert _read_pid(server.pid_file) is None                     # nothing started (nginx -t leaves it empty)
