"""Targets postfix and dovecot against private real instances on 127.0.0.1 (own config
directories): postfix check / doveconf -n, postfix reload / doveadm reload, the served serial read
over SMTP STARTTLS and implicit TLS (IMAPS), a config that fails postfix check, and the certificate
role deploying one certificate to both servers of a host in one run."""

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import textwrap
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
pytestmark = pytest.mark.skipif(not (servers.which('postfix') and servers.which('dovecot') and servers.which('script')),
                                reason='postfix, dovecot or script is not installed (make deps)')


@pytest.fixture(scope='session')
def mailhost(test_ca):
    """One host running both servers, each reading its own copy of one certificate."""
    root = servers.shared_root('certforge-mail-')
    first = test_ca.issue('mail.test')
    host = type('MailHost', (), {})()
    host.root, host.issued = root, first
    host.key = os.path.join(root, 'mail.key')
    servers.write(host.key, first.key_pem, 0o600)
    host.files = {}
    for server in ('postfix', 'dovecot'):
        tls = os.path.join(root, server + '-tls')
        os.makedirs(tls)
        cert = os.path.join(tls, 'mail.fullchain.crt')
        servers.write(cert, first.cert_pem + first.chain_pem)
        host.files[server] = {'dir': tls, 'fullchain': cert}
    host.postfix = servers.Postfix(os.path.join(root, 'postfix'), host.files['postfix']['fullchain'], host.key)
    host.dovecot = servers.Dovecot(os.path.join(root, 'dovecot'), host.files['dovecot']['fullchain'], host.key)
    try:
        host.postfix.start()
        host.dovecot.start()
        yield host
    finally:
        host.postfix.stop()
        host.dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)


def play(args, name='deploy'):
    return [{'name': 'mail', 'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': name, 'certforge.pki.deploy': args, 'register': 'out'}]}]


def postfix_options(host):
    return {'validate_command': host.postfix.command('check'), 'reload_command': host.postfix.command('reload')}


def dovecot_options(host):
    config = host.dovecot.config
    return {'validate_command': [servers.which('doveconf'), '-n', '-c', config],
            'reload_command': [servers.which('doveadm'), '-c', config, 'reload']}


def args_for(host, server, issued):
    options = postfix_options(host) if server == 'postfix' else dovecot_options(host)
    port = getattr(host, server).port
    return {'target': server, 'name': 'mail', 'target_options': options, 'certificate': issued.cert_pem,
            'chain': issued.chain_pem, 'fullchain_path': host.files[server]['fullchain'], 'key_path': host.key,
            'verify': {'port': port, 'server_name': 'mail.test', 'timeout': 10}}


def digest(path):
    with open(path, 'rb') as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_postfix_starttls_and_dovecot_imaps(mailhost, test_ca, run_playbook):
    renewal = test_ca.issue('mail.test', key_pem=mailhost.issued.key_pem)
    assert servers.served_serial(mailhost.postfix.port, 'mail.test', starttls='smtp') == mailhost.issued.serial
    checked = run_playbook(play(args_for(mailhost, 'postfix', renewal)), check=True, diff=True)
    assert checked.rc == 0 and checked.task('deploy')['changed']
    for server, starttls in (('postfix', 'smtp'), ('dovecot', None)):
        result = run_playbook(play(args_for(mailhost, server, renewal)))
        assert result.rc == 0, result
        assert result.task('deploy')['reloaded'] and result.task('deploy')['verified'] == {'mail': renewal.serial_hex}
        assert servers.served_serial(getattr(mailhost, server).port, 'mail.test', starttls=starttls) == renewal.serial
        again = run_playbook(play(args_for(mailhost, server, renewal)))
        assert again.rc == 0 and not again.task('deploy')['changed']
    mailhost.issued = renewal


def test_postfix_config_that_fails_postfix_check(mailhost, test_ca, run_playbook):
    renewal = test_ca.issue('mail.test', key_pem=mailhost.issued.key_pem)
    main_cf = os.path.join(mailhost.postfix.etc, 'main.cf')
    with open(main_cf) as handle:
        good = handle.read()
    before = digest(mailhost.files['postfix']['fullchain'])
    servers.write(main_cf, good + 'maillog_file = /nonexistent-certforge/maillog\n')
    try:
        result = run_playbook(play(args_for(mailhost, 'postfix', renewal)))
    finally:
        servers.write(main_cf, good)
    assert result.rc != 0
    msg = result.task('deploy')['msg']
    assert 'validate failed' in msg and 'maillog_file' in msg and 'Rolled back' in msg, msg
    assert 'target_options.validate_command' in msg or result.task('deploy').get('option') == 'target_options.validate_command'
    assert digest(mailhost.files['postfix']['fullchain']) == before
    assert servers.served_serial(mailhost.postfix.port, 'mail.test', starttls='smtp') == mailhost.issued.serial


def test_role_deploys_one_certificate_to_postfix_and_dovecot_in_one_run(mailhost, run_playbook, tmp_path):
    """The certificate role with certificate_targets: one certificate, two servers, each
    validated, reloaded once and verified; a second run changes nothing."""
    ca = tmp_path / 'ca'
    role_vars = {
        'local_ca_dir': str(ca), 'local_ca_intermediate': True,
        'certificate_dir': mailhost.files['postfix']['dir'],
        'certificate_issuer_options': {'ca_path': str(ca / 'issuing'), 'allowed_domains': ['mail.test']},
        'certificate_targets': [
            {'target': 'postfix', 'target_options': postfix_options(mailhost),
             'verify': {'port': mailhost.postfix.port, 'server_name': 'mail.test'}},
            {'target': 'dovecot', 'target_options': dovecot_options(mailhost), 'dir': mailhost.files['dovecot']['dir'],
             'verify': {'port': mailhost.dovecot.port, 'server_name': 'mail.test'}},
        ],
        'certificate_list': [{
            'name': 'mail', 'common_name': 'mail.test', 'privatekey_path': mailhost.key,
            'certificate_path': os.path.join(mailhost.files['postfix']['dir'], 'mail.crt'),
            'chain_path': os.path.join(mailhost.files['postfix']['dir'], 'mail.chain.crt'),
            'fullchain_path': mailhost.files['postfix']['fullchain'],
            'csr_path': os.path.join(mailhost.files['postfix']['dir'], 'mail.csr'),
        }],
    }
    playbook = textwrap.dedent("""
        - name: Mail host
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
    env = {'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')}
    first = run_playbook(playbook, env=env)
    assert first.rc == 0, first
    deploys = deploy_results(first)
    assert sorted(r['item']['target'] for r in deploys if r.get('changed')) == ['dovecot', 'postfix'], first.tasks
    for result in deploys:
        assert result['reloaded'] and result['verified']['mail']
    served_postfix = servers.served_serial(mailhost.postfix.port, 'mail.test', starttls='smtp')
    served_dovecot = servers.served_serial(mailhost.dovecot.port, 'mail.test')
    assert served_postfix == served_dovecot == int(deploys[0]['verified']['mail'], 16)
    second = run_playbook(playbook, env=env)
    assert second.rc == 0, second
    assert not [r for r in deploy_results(second) if r.get('changed')]


def deploy_results(run):
    out = []
    for task in run.tasks:
        if task['action'] != 'certforge.pki.deploy' or task['status'] == 'skipped':
            continue
        result = task['result']
        out.extend(result['results'] if 'results' in result else [result])
    return out
