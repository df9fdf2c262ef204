"""The certificate role under --check --diff: new, renewed and unchanged certificates. Each run
shows per host the files that would be written with parsed facts, whether the server would be
reloaded and why; nothing is written and the CA issues nothing."""

import hashlib
import json
import os


def _tree(root):
    out = {}
    for base, _dirs, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(base, name)
            with open(path, 'rb') as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            out[os.path.relpath(path, str(root))] = (digest, oct(os.stat(path).st_mode))
    return out


def _play(tmp_path, target='files', **extra):
    role_vars = {
        'local_ca_dir': str(tmp_path / 'ca'),
        'certificate_dir': str(tmp_path / 'certs'),
        'certificate_owner': 'root', 'certificate_group': 'root',
        'certificate_issuer_options': {'ca_path': str(tmp_path / 'ca' / 'root')},
        'certificate_target': target,
        'certificate_list': [{'name': 'www', 'common_name': 'www.check.test',
                              'subject_alt_names': ['DNS:www.check.test', 'DNS:check.test']}],
    }
    role_vars.update(extra)
    return [{'name': 'Check mode', 'hosts': 'localhost', 'gather_facts': False, 'vars': role_vars,
             'tasks': [{'name': 'CA', 'ansible.builtin.include_role': {'name': 'certforge.pki.local_ca'}},
                       {'name': 'Certificates', 'ansible.builtin.include_role': {'name': 'certforge.pki.certificate'}}]}]


def _plan(result):
    found = [t for t in result.tasks if t['task'].endswith('Show what would change (check mode)')]
    assert found, str(result)
    return found[-1]['result']['msg']


def test_check_mode_new_renewed_unchanged(run_playbook, tmp_path):
    env = {'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders'), 'ANSIBLE_DISPLAY_TRACEBACK': 'error'}
    # the CA exists (made for real); the host has nothing yet
    ca_only = _play(tmp_path, certificate_list=[])
    assert run_playbook(ca_only, env=env).rc == 0
    ca_before = _tree(tmp_path / 'ca')

    # 1. new certificate: the plan names the files and facts; nothing is written
    new = run_playbook(_play(tmp_path, target='nginx'), check=True, diff=True, env=env)
    assert new.rc == 0, str(new)
    plan = _plan(new)
    www = plan['certificates']['www']
    assert www['would_issue'] is True
    assert www['subject'] == 'CN=www.check.test'
    assert sorted(www['subject_alt_names']) == ['DNS:check.test', 'DNS:www.check.test']
    for suffix in ('.key', '.csr', '.crt', '.chain.pem', '.fullchain.pem'):
        assert str(tmp_path / 'certs' / ('www' + suffix)) in www['files_written'], www
    assert 'missing' in www['why']
    assert plan['reload'] is True and 'would change' in plan['reload_why']
    assert not (tmp_path / 'certs').exists()
    assert not (tmp_path / 'orders').exists()
    assert _tree(tmp_path / 'ca') == ca_before

    # a real run, then
    real = run_playbook(_play(tmp_path), env=env)
    assert real.rc == 0, str(real)
    certs_before = _tree(tmp_path / 'certs')
    ca_before = _tree(tmp_path / 'ca')
    orders_before = _tree(tmp_path / 'orders')

    # 2. unchanged: nothing would be written, no reload
    same = run_playbook(_play(tmp_path, target='nginx'), check=True, diff=True, env=env)
    assert same.rc == 0, str(same)
    plan = _plan(same)
    www = plan['certificates']['www']
    assert www['would_issue'] is False and www['files_written'] == [], www
    assert www['current']['serial'] and www['current']['not_after']
    assert plan['reload'] is False and plan['reload_why'] == 'nothing would change'

    # 3. renewed (forced): the current serial and dates, the files, the reason
    renew = run_playbook(_play(tmp_path, target='nginx', certificate_force=True), check=True, diff=True, env=env)
    assert renew.rc == 0, str(renew)
    plan = _plan(renew)
    www = plan['certificates']['www']
    assert www['would_issue'] is True and 'forced' in www['why'], www
    assert str(tmp_path / 'certs' / 'www.crt') in www['files_written']
    assert str(tmp_path / 'certs' / 'www.key') not in www['files_written']
    assert www['current']['serial'] == _plan(same)['certificates']['www']['current']['serial']
    assert plan['reload'] is True

    # files target: no reload, and says so
    files = run_playbook(_play(tmp_path, certificate_force=True), check=True, diff=True, env=env)
    assert files.rc == 0 and _plan(files)['reload'] is False
    assert _plan(files)['reload_why'] == 'the target does not reload'

    assert _tree(tmp_path / 'certs') == certs_before
    assert _tree(tmp_path / 'ca') == ca_before
    assert _tree(tmp_path / 'orders') == orders_before
    assert 'Traceback' not in json.dumps([t['result'] for t in renew.tasks])
