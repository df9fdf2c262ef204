"""The two throw-away third-party packages end to end through real ansible-playbook runs.

``toy_async_ca`` (issuer, runs on the controller inside the ``certificate`` action) and
``toy_haproxy_like`` (target, runs inside the ``deploy`` module's payload on the managed host)
are installed only through their entry points into a directory of their own
(``third_party_site``).  That directory is on ``PYTHONPATH`` of ``ansible-playbook`` (the
controller) and, through the play's ``environment``, of the module run on localhost (the managed
host); the collection itself comes from ``ANSIBLE_COLLECTIONS_PATH`` only.

The CA is the kit's asynchronous test CA (``plugins/plugin_utils/kit_ca.py``): every order stays
pending for a few seconds, then is issued; it records every order and every revocation, so the
tests count what reached it.
"""

import json
import os
import stat
import textwrap

import pytest
from cryptography import x509

from ansible_collections.certforge.pki.plugins.plugin_utils.connector_kit import make_key_and_csr
from ansible_collections.certforge.pki.plugins.plugin_utils.kit_ca import KitCA

API_KEY = 'e2e-secret-api-key-93be'
PENDING_SECONDS = 3.0


@pytest.fixture
def toy_ca():
    ca = KitCA(delay=PENDING_SECONDS).start()
    yield ca
    ca.stop()


def _env(site):
    return {'PYTHONPATH': str(site)}


def _play(tasks, site, **play):
    """One play on localhost; the module payload on the managed host sees the packages through
    the play's environment, as it would see them installed in its Python."""
    entry = {'name': 'Third-party connectors', 'hosts': 'localhost', 'gather_facts': False,
             'environment': {'PYTHONPATH': str(site)}, 'tasks': tasks}
    entry.update(play)
    return [entry]


def _serial_hex(pem):
    return '%X' % x509.load_pem_x509_certificate(pem.encode()).serial_number


def _issue_task(name, tmp_path, ca, **extra):
    args = {'name': name, 'issuer': 'toy_async_ca', 'issuer_options': {'url': ca.url, 'api_key': API_KEY},
            'csr_path': str(tmp_path / (name + '.csr')), 'certificate_path': str(tmp_path / (name + '.crt')),
            'order_store': str(tmp_path / 'orders')}
    args.update(extra)
    return {'name': 'Issue', 'certforge.pki.certificate': args, 'register': 'issued'}


def _write_csr(tmp_path, name, common_name):
    key_pem, csr_pem = make_key_and_csr(common_name)
    key_path = tmp_path / (name + '.key')
    key_path.write_text(key_pem)
    key_path.chmod(0o600)
    (tmp_path / (name + '.csr')).write_text(csr_pem)
    return key_path


def test_certificate_module_pending_then_issued_then_noop_then_revoked(
        third_party_site, toy_ca, run_playbook, tmp_path):
    _write_csr(tmp_path, 'app', 'app.toy.test')
    env = _env(third_party_site)

    # 1. the CA keeps the order pending longer than this run waits: pending, order id kept
    first = run_playbook(_play([_issue_task('app', tmp_path, toy_ca, wait_timeout=1)], third_party_site), env=env)
    assert first.rc == 0, str(first)
    pending = first.task('Issue')
    assert pending['status'] == 'pending', pending
    assert pending['issuer'] == 'toy_async_ca' and pending['order_id']
    assert toy_ca.count('app') == 1

    # 2. the next run resumes that order (no second order) and waits it out: issued
    second = run_playbook(_play([_issue_task('app', tmp_path, toy_ca, wait_timeout=60)], third_party_site), env=env)
    assert second.rc == 0, str(second)
    issued = second.task('Issue')
    assert issued['status'] == 'issued' and issued['changed'], issued
    assert issued['order_id'] == pending['order_id']
    assert issued['certificate'].startswith('-----BEGIN CERTIFICATE-----')
    assert issued['chain'], 'the chain of the CA is missing'
    assert (tmp_path / 'app.crt').read_text() == issued['certificate']
    assert toy_ca.count('app') == 1

    # 3. a second run with the same inputs calls no CA and changes nothing
    third = run_playbook(_play([_issue_task('app', tmp_path, toy_ca)], third_party_site), env=env)
    assert third.rc == 0, str(third)
    assert not third.task('Issue')['changed'], third.task('Issue')
    assert toy_ca.count('app') == 1

    # 4. state: revoked reaches the toy CA's revoke, once
    revoke = _issue_task('app', tmp_path, toy_ca, state='revoked', revocation_reason='superseded')
    del revoke['certforge.pki.certificate']['csr_path']
    for attempt in (1, 2):
        run = run_playbook(_play([revoke], third_party_site), env=env)
        assert run.rc == 0, str(run)
        assert run.task('Issue')['changed'] is (attempt == 1), run.task('Issue')
    assert toy_ca.revoked == [_serial_hex(issued['certificate'])]

    # the API key never shows in any output
    for run in (first, second, third):
        assert API_KEY not in run.stdout + run.stderr + json.dumps(run.tasks)


def _deploy_task(site_dir, cert, chain, key_path, reload_command, name='Deploy'):
    return {'name': name, 'register': 'deployed',
            'certforge.pki.deploy': {
                'target': 'toy_haproxy_like',
                'target_options': {'reload_command': reload_command,
                                   'validate_command': ['test', '-s']},
                'certificate': cert, 'chain': chain, 'key_path': str(key_path),
                'certificate_options': {'combined_path': str(site_dir / 'www.pem')}}}


def test_deploy_module_combined_pem_reload_once_and_rollback(third_party_site, test_ca, run_playbook, tmp_path):
    env = _env(third_party_site)
    site_dir = tmp_path / 'haproxy'
    site_dir.mkdir()
    reloads = tmp_path / 'reloads.log'
    reload_ok = ['sh', '-c', 'echo reload >> "$0"', str(reloads)]
    first = test_ca.issue('www.toy.test')
    key_path = tmp_path / 'www.key'
    key_path.write_text(first.key_pem)
    key_path.chmod(0o600)

    run = run_playbook(_play([_deploy_task(site_dir, first.cert_pem, first.chain_pem, key_path, reload_ok)],
                             third_party_site), env=env)
    assert run.rc == 0, str(run)
    result = run.task('Deploy')
    assert result['changed'], result
    combined = site_dir / 'www.pem'
    assert combined.read_text() == first.cert_pem + first.chain_pem + first.key_pem
    assert stat.S_IMODE(combined.stat().st_mode) == 0o600
    assert reloads.read_text().splitlines() == ['reload']
    assert 'PRIVATE KEY' not in json.dumps(run.tasks)

    # the same certificate again: nothing written, no reload
    again = run_playbook(_play([_deploy_task(site_dir, first.cert_pem, first.chain_pem, key_path, reload_ok)],
                               third_party_site), env=env)
    assert again.rc == 0, str(again)
    assert not again.task('Deploy')['changed'], again.task('Deploy')
    assert reloads.read_text().splitlines() == ['reload']

    # a new certificate whose reload fails: the combined file is restored byte-exact
    before = combined.read_bytes()
    renewed = test_ca.issue('www.toy.test', key_pem=first.key_pem)
    reload_fails = ['sh', '-c', 'echo failed-reload >> "$0"; echo "reload refused" >&2; exit 3', str(reloads)]
    broken = run_playbook(_play([_deploy_task(site_dir, renewed.cert_pem, renewed.chain_pem, key_path, reload_fails)],
                                third_party_site), env=env)
    assert broken.rc != 0, str(broken)
    assert broken.status('Deploy') == 'failed'
    failed = broken.task('Deploy')
    assert failed['error_option'] == 'target_options.reload_command', failed
    assert failed['error_details']['stage'] == 'reload', failed
    assert 'reload refused' in json.dumps(failed), failed
    assert combined.read_bytes() == before
    assert stat.S_IMODE(combined.stat().st_mode) == 0o600
    # the failed reload, then the reload of the restored file
    assert reloads.read_text().splitlines() == ['reload', 'failed-reload', 'failed-reload']


def test_certificate_role_with_both_third_party_connectors(third_party_site, toy_ca, run_playbook, tmp_path):
    env = _env(third_party_site)
    cert_dir = tmp_path / 'certs'
    reloads = tmp_path / 'reloads.log'
    names = ('alpha', 'beta')
    role_vars = {
        'certificate_dir': str(cert_dir),
        'certificate_owner': 'root',
        'certificate_group': 'root',
        'certificate_issuer': 'toy_async_ca',
        'certificate_issuer_options': {'url': toy_ca.url, 'api_key': API_KEY},
        'certificate_wait_timeout': 60,
        'certificate_target': 'toy_haproxy_like',
        'certificate_target_options': {'reload_command': ['sh', '-c', 'echo reload >> "$0"', str(reloads)]},
        'certificate_list': [{'name': n, 'common_name': '%s.toy.test' % n} for n in names],
    }
    play = textwrap.dedent("""
        - name: Certificates through third-party connectors
          hosts: localhost
          gather_facts: false
          environment:
            PYTHONPATH: %s
          vars: %s
          tasks:
            - name: Certificates
              ansible.builtin.include_role:
                name: certforge.pki.certificate
        """) % (json.dumps(str(third_party_site)), json.dumps(role_vars))
    env['CERTFORGE_ORDER_STORE'] = str(tmp_path / 'orders')

    first = run_playbook(play, env=env)
    assert first.rc == 0, str(first)
    for name in names:
        assert toy_ca.count(name) == 1, (name, toy_ca.count(name))
        combined = (cert_dir / (name + '.combined.pem')).read_text()
        key = (cert_dir / (name + '.key')).read_text()
        leaf = (cert_dir / (name + '.crt')).read_text()
        assert combined.startswith(leaf) and combined.endswith(key) and toy_ca.chain_pem in combined
        served = x509.load_pem_x509_certificate(leaf.encode())
        assert served.subject.rfc4514_string() == 'CN=%s.toy.test' % name
        assert stat.S_IMODE(os.stat(cert_dir / (name + '.combined.pem')).st_mode) == 0o600
    assert reloads.read_text().splitlines() == ['reload'], 'one reload for both certificates'
    assert API_KEY not in first.stdout + first.stderr + json.dumps(first.tasks)

    second = run_playbook(play, env=env)
    assert second.rc == 0, str(second)
    assert second.changed() == 0, str(second)
    assert reloads.read_text().splitlines() == ['reload']
    assert [toy_ca.count(n) for n in names] == [1, 1]
