"""The certificate role with ``certificate_issuer: sectigo``: a DV order at the SCM simulator,
deployed to a real nginx on 127.0.0.1, verified over TLS; the re-run orders nothing."""

import json
import os
import socket
import ssl
import textwrap

from cryptography import x509

NAME = 'portal.example.com'   # a domain the simulator's organization owns


def _play(sim, server, tmp_path):
    site = server.sites[NAME]
    role_vars = {
        'certificate_dir': server.cert_dir,
        'certificate_owner': 'root',
        'certificate_group': 'root',
        'certificate_issuer': 'sectigo',
        'certificate_profile': 'Sectigo DV SSL',
        'certificate_issuer_options': {
            'base_url': sim.base_url, 'customer_uri': sim.customer_uri, 'login': sim.login,
            'password': sim.password, 'ca_bundle': sim.ca_bundle, 'organization': 'Example Org',
            'custom_fields': {'cost-center': 'CC-42'}},
        'certificate_target': 'nginx',
        'certificate_target_options': {'validate_command': server.validate_command,
                                       'reload_command': server.reload_command},
        'certificate_list': [{
            'name': 'www', 'common_name': NAME, 'privatekey_path': site['key'],
            'certificate_path': os.path.join(server.cert_dir, NAME + '.leaf.pem'),
            'chain_path': os.path.join(server.cert_dir, NAME + '.chain.pem'),
            'fullchain_path': site['cert'], 'csr_path': os.path.join(server.cert_dir, NAME + '.csr'),
            'verify': {'host': '127.0.0.1', 'port': server.port, 'server_name': NAME}}],
    }
    return textwrap.dedent("""
        - name: certificate role with the Sectigo issuer
          hosts: localhost
          gather_facts: false
          vars: %s
          tasks:
            - name: Certificates
              ansible.builtin.include_role:
                name: certforge.pki.certificate
        """) % json.dumps(role_vars)


def _verified_serial(port, root_pem):
    context = ssl.create_default_context(cadata=root_pem)
    with socket.create_connection(('127.0.0.1', port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=NAME) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_role_orders_at_sectigo_deploys_and_verifies(sectigo_sim, make_nginx, run_playbook, tmp_path):
    sectigo_sim.configure(issue_delays={'DV': 0})
    server = make_nginx(NAME)
    env = {'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')}
    first = run_playbook(_play(sectigo_sim, server, tmp_path), env=env)
    assert first.rc == 0, str(first)
    with open(os.path.join(server.cert_dir, NAME + '.leaf.pem'), 'rb') as f:
        serial = x509.load_pem_x509_certificate(f.read()).serial_number
    server.wait_for_serial(NAME, serial)
    # the served chain (leaf + Sectigo-like intermediate) verifies against the simulator's root
    assert _verified_serial(server.port, sectigo_sim.root_pem) == serial
    assert sectigo_sim.enroll_count(common_name=NAME) == 1
    assert sectigo_sim.password not in first.stdout + first.stderr

    calls = len(sectigo_sim.audit())
    second = run_playbook(_play(sectigo_sim, server, tmp_path), env=env)
    assert second.rc == 0 and second.changed() == 0, str(second)
    assert len(sectigo_sim.audit()) == calls          # nothing due: not a single request to the CA
    assert sectigo_sim.enroll_count(common_name=NAME) == 1


def test_twenty_failed_deploys_then_a_good_run_order_once(sectigo_sim, make_nginx, run_playbook, failing_role_runs,
                                                          tmp_path):
    """The certificate issued for a request stays its answer until it is deployed: 20 role runs
    whose deploy fails (nginx -t refuses, the files are rolled back), then a good run: one
    enroll at the CA, and the certificate deployed is the one issued by the first run."""
    sectigo_sim.configure(issue_delays={'DV': 0})
    server = make_nginx(NAME)
    env = {'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')}
    good = _play(sectigo_sim, server, tmp_path)
    failing = good.replace(json.dumps(server.validate_command), json.dumps(['false']))
    assert failing != good
    result = run_playbook(failing_role_runs(failing.split('vars: ', 1)[1].split('\n', 1)[0], 20), env=env)
    assert result.rc == 0, str(result)
    assert result.stats['localhost']['rescued'] == 20, result.stats
    assert not os.path.exists(os.path.join(server.cert_dir, NAME + '.leaf.pem'))
    assert sectigo_sim.enroll_count(common_name=NAME) == 1
    final = run_playbook(good, env=env)
    assert final.rc == 0, str(final)
    with open(os.path.join(server.cert_dir, NAME + '.leaf.pem'), 'rb') as f:
        serial = x509.load_pem_x509_certificate(f.read()).serial_number
    server.wait_for_serial(NAME, serial)
    assert sectigo_sim.enroll_count(common_name=NAME) == 1
    assert len(sectigo_sim.orders(NAME)) == 1
