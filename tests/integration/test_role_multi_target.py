"""The certificate role with certificate_targets: one certificate to a real nginx and a Java
keystore (real keytool) on one host in one run, each validated, reloaded once and verified; a
second run changes nothing."""

import json
import os
import shutil
import subprocess
import textwrap

import pytest

KEYTOOL = shutil.which('keytool')
STORE_PASSWORD = 'Ks-role-4f0c9a17'


def keytool_serial(path, alias):
    proc = subprocess.run([KEYTOOL, '-list', '-v', '-keystore', str(path), '-storetype', 'pkcs12', '-alias', alias,
                           '-storepass:env', 'KS_PASS'], capture_output=True, text=True, check=False,
                          env=dict(os.environ, KS_PASS=STORE_PASSWORD, LC_ALL='C'))
    for line in proc.stdout.splitlines():
        if line.startswith('Serial number:'):
            return int(line.split(':', 1)[1].strip(), 16)
    return None


def deploy_results(run):
    out = []
    for task in run.tasks:
        if task['action'] != 'certforge.pki.deploy' or task['status'] == 'skipped':
            continue
        result = task['result']
        out.extend(result['results'] if 'results' in result else [result])
    return out


@pytest.mark.skipif(not KEYTOOL, reason='keytool is not installed (make deps)')
def test_role_deploys_one_certificate_to_nginx_and_java_keystore_in_one_run(make_nginx, run_playbook, tmp_path):
    server = make_nginx('www.test')
    site = server.sites['www.test']
    certs = tmp_path / 'certs'
    certs.mkdir()
    keystore = tmp_path / 'app' / 'keystore.p12'
    keystore.parent.mkdir()
    ca = tmp_path / 'ca'
    role_vars = {
        'local_ca_dir': str(ca), 'local_ca_intermediate': True,
        'certificate_dir': str(certs),
        'certificate_issuer_options': {'ca_path': str(ca / 'issuing'), 'allowed_domains': ['www.test']},
        'certificate_targets': [
            {'target': 'nginx',
             'target_options': {'validate_command': server.validate_command, 'reload_command': server.reload_command},
             'verify': {'port': server.port, 'server_name': 'www.test'}},
            {'target': 'java_keystore', 'target_options': {'restart_command': ['true']},
             'certificate_options': {'keystore_path': str(keystore), 'alias': 'www',
                                     'store_password': STORE_PASSWORD}},
        ],
        'certificate_list': [{
            'name': 'www', 'common_name': 'www.test', 'privatekey_path': site['key'],
            'certificate_path': str(certs / 'www.crt'), 'chain_path': str(certs / 'www.chain.crt'),
            'fullchain_path': site['cert'], 'csr_path': str(certs / 'www.csr'),
        }],
    }
    playbook = textwrap.dedent("""
        - name: Web host with a Java application
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
    reloads = server.reload_count()
    first = run_playbook(playbook, env=env)
    assert first.rc == 0, first
    deploys = dict((r['item']['target'], r) for r in deploy_results(first))
    assert sorted(deploys) == ['java_keystore', 'nginx'], first.tasks
    for name, result in deploys.items():
        assert result['changed'] and result['reloaded'], (name, result)
        assert result['verified'].get('www'), (name, result)
    serial = int(deploys['nginx']['verified']['www'], 16)
    assert deploys['java_keystore']['verified']['www'] == deploys['nginx']['verified']['www']
    assert server.reload_count() == reloads + 1, 'nginx was not reloaded exactly once'
    assert server.served_serial('www.test') == serial
    assert keytool_serial(keystore, 'www') == serial
    assert STORE_PASSWORD not in first.stdout
    second = run_playbook(playbook, env=env)
    assert second.rc == 0, second
    assert not [r for r in deploy_results(second) if r.get('changed')]
    assert server.reload_count() == reloads + 1
