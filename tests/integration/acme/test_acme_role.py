# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate role with ``certificate_issuer: acme`` end to end: Pebble validates http-01
through nginx's webroot, the role deploys to that nginx, and the live endpoint verifies over TLS
against Pebble's root."""

import json
import os
import socket
import ssl
import textwrap

import pytest

import certforge_acme_servers as servers   # loaded by conftest.py  # pylint: disable=import-error

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, 'plugins', 'modules', 'acme_certificate.py')),
                                reason='the ACME issuer is not in this tree yet')
NAME = 'role.acme.test'


def _play(pebble, server, account_key, answers):
    """``answers``: 'host' - the role places the http-01 answers in the host's web root
    (certificate_http01_webroot); 'issuer' - the issuer writes them itself (issuer option)."""
    site = server.sites[NAME]
    issuer_options = {'acme_directory': pebble.directory_url, 'acme_ca_bundle': pebble.ca_bundle,
                      'account_key_path': account_key, 'terms_agreed': True}
    if answers == 'issuer':
        issuer_options['http01_webroot'] = server.webroot
    role_vars = {
        'certificate_dir': server.cert_dir,
        'certificate_owner': 'root',
        'certificate_group': 'root',
        'certificate_issuer': 'acme',
        'certificate_issuer_options': issuer_options,
        'certificate_http01_webroot': server.webroot if answers == 'host' else '',
        'certificate_target': 'nginx',
        'certificate_target_options': {'validate_command': server.validate_command,
                                       'reload_command': server.reload_command},
        'certificate_list': [{
            'name': 'role', 'common_name': NAME, 'privatekey_path': site['key'],
            'certificate_path': os.path.join(server.cert_dir, NAME + '.leaf.pem'),
            'fullchain_path': site['cert'], 'csr_path': os.path.join(server.cert_dir, NAME + '.csr'),
            'verify': {'host': '127.0.0.1', 'port': server.port, 'server_name': NAME}}],
    }
    return textwrap.dedent("""
        - name: certificate role with the ACME issuer
          hosts: localhost
          gather_facts: false
          vars: %s
          tasks:
            - name: Certificates
              ansible.builtin.include_role:
                name: certforge.pki.certificate
        """) % json.dumps(role_vars)


def _verified_serial(port, roots_pem):
    context = ssl.create_default_context(cadata=roots_pem)
    with socket.create_connection(('127.0.0.1', port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=NAME) as tls:
            from cryptography import x509
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


@pytest.mark.parametrize('answers', ['host', 'issuer'])
def test_role_issues_from_pebble_deploys_and_verifies(answers, pebble, webroot_nginx, test_ca, run_playbook, tmp_path):
    server = webroot_nginx(pebble, sites={NAME: test_ca.issue(NAME)})
    account_key, dummy = servers.write_key(tmp_path / 'account.key')
    env = {'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')}
    first = run_playbook(_play(pebble, server, account_key, answers), env=env)
    assert first.rc == 0, str(first)
    serial = servers.load_cert(os.path.join(server.cert_dir, NAME + '.leaf.pem'))[0].serial_number
    server.wait_for_serial(NAME, serial)
    assert _verified_serial(server.port, pebble.roots_pem) == serial
    assert pebble.cert_status(serial)['Status'] == 'Valid'
    challenge_dir = os.path.join(server.webroot, '.well-known', 'acme-challenge')
    assert not os.path.isdir(challenge_dir) or os.listdir(challenge_dir) == []
    if answers == 'host':
        assert first.status('certforge.pki.certificate : Continue the pending orders on the controller') == 'changed'

    mark = pebble.log_mark()
    second = run_playbook(_play(pebble, server, account_key, answers), env=env)
    assert second.rc == 0 and second.changed() == 0, str(second)
    assert pebble.requests_since(mark) == []


def test_twenty_failed_deploys_then_a_good_run_order_once(pebble, webroot_nginx, test_ca, run_playbook,
                                                          failing_role_runs, tmp_path):
    """20 role runs whose deploy fails (nginx -t refuses, the files are rolled back), then a good
    run: Pebble received one newOrder and one finalize for the name, and the first run's
    certificate is the one deployed."""
    server = webroot_nginx(pebble, sites={NAME: test_ca.issue(NAME)})
    account_key, dummy = servers.write_key(tmp_path / 'account.key')
    env = {'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')}
    good = _play(pebble, server, account_key, 'issuer')
    failing = good.replace(json.dumps(server.validate_command), json.dumps(['false']))
    assert failing != good
    role_vars = failing.split('vars: ', 1)[1].split('\n', 1)[0]
    plays = failing_role_runs(role_vars, 20)
    mark = pebble.log_mark()
    result = run_playbook(plays, env=env)
    assert result.rc == 0, str(result)
    assert result.stats['localhost']['rescued'] == 20, result.stats
    final = run_playbook(good, env=env)
    assert final.rc == 0, str(final)
    serial = servers.load_cert(os.path.join(server.cert_dir, NAME + '.leaf.pem'))[0].serial_number
    server.wait_for_serial(NAME, serial)
    requests = pebble.requests_since(mark)
    assert len([r for r in requests if 'order-plz' in r]) == 1, requests
    assert len([r for r in requests if 'finalize' in r]) == 1, requests
