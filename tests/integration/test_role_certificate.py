"""The certificate and local_ca roles end to end: real ansible-playbook, real nginx on 127.0.0.1,
a local CA on the controller, TLS handshakes to see what is served."""

import json
import os
import subprocess
import textwrap

from cryptography import x509

NAMES = ('www.role.test', 'api.role.test')


def _play(tmp_path, server, extra_tasks='', **overrides):
    """A playbook running both roles against ``server`` (a make_nginx instance)."""
    certs = []
    for name in NAMES:
        site = server.sites[name]
        certs.append({
            'name': name.split('.', maxsplit=1)[0],
            'common_name': name,
            'privatekey_path': site['key'],
            'certificate_path': os.path.join(server.cert_dir, name + '.leaf.pem'),
            'chain_path': os.path.join(server.cert_dir, name + '.chain.pem'),
            'fullchain_path': site['cert'],
            'csr_path': os.path.join(server.cert_dir, name + '.csr'),
            'verify': {'host': '127.0.0.1', 'port': server.port, 'server_name': name},
        })
    role_vars = {
        'local_ca_dir': str(tmp_path / 'ca'),
        'local_ca_intermediate': True,
        'certificate_dir': server.cert_dir,
        'certificate_owner': 'root',
        'certificate_group': 'root',
        'certificate_issuer_options': {'ca_path': str(tmp_path / 'ca' / 'issuing'),
                                       'allowed_domains': ['role.test']},
        'certificate_target': 'nginx',
        'certificate_target_options': {'validate_command': server.validate_command,
                                       'reload_command': server.reload_command},
        'certificate_list': certs,
    }
    role_vars.update(overrides)
    return textwrap.dedent("""
        - name: Roles end to end
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
        """) % json.dumps(role_vars) + extra_tasks


def _leaf_serial(path):
    with open(path, 'rb') as f:
        return x509.load_pem_x509_certificate(f.read()).serial_number


def _snapshot(paths):
    out = {}
    for p in paths:
        if os.path.exists(p):
            with open(p, 'rb') as f:
                out[p] = f.read()
    return out


def test_issue_deploy_verify_then_noop_then_renew(make_nginx, run_playbook, tmp_path):
    server = make_nginx(*NAMES)
    bootstrap = {n: server.issued[n].serial for n in NAMES}
    env = {'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')}

    first = run_playbook(_play(tmp_path, server), env=env)
    assert first.rc == 0, str(first)
    for name in NAMES:
        leaf = os.path.join(server.cert_dir, name + '.leaf.pem')
        serial = _leaf_serial(leaf)
        assert serial != bootstrap[name]
        server.wait_for_serial(name, serial)
        # the served chain verifies against the local root
        out = subprocess.run(['openssl', 'verify', '-CAfile', str(tmp_path / 'ca' / 'root' / 'ca.crt'),
                              '-untrusted', os.path.join(server.cert_dir, name + '.chain.pem'), leaf],
                             capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
    deployed = first.task('certforge.pki.certificate : Deploy what changed, validate, reload once and verify')
    assert deployed['changed'] and deployed['reloaded']
    workers = server.stable_workers()
    reloads = server.reload_count()

    # nothing due: changed=0, and nginx was not reloaded (its workers and log say so)
    second = run_playbook(_play(tmp_path, server), env=env)
    assert second.rc == 0, str(second)
    assert second.stats['localhost']['changed'] == 0, second
    assert server.stable_workers() == workers
    assert server.reload_count() == reloads

    # check mode with a renewal due: reported, nothing on disk changes
    files = [os.path.join(server.cert_dir, f) for f in os.listdir(server.cert_dir)
             if os.path.isfile(os.path.join(server.cert_dir, f))]
    before = _snapshot(files)
    check = run_playbook(_play(tmp_path, server, certificate_renew_before_days=365), env=env, check=True)
    assert check.rc == 0, str(check)
    issued = check.task('certforge.pki.certificate : Issue or renew on the controller')
    assert all(r['renewal_reasons'] == ['inside_window'] for r in issued['results'])
    assert _snapshot(files) == before

    # renewal inside the window: new serials are served
    old = {n: _leaf_serial(os.path.join(server.cert_dir, n + '.leaf.pem')) for n in NAMES}
    third = run_playbook(_play(tmp_path, server, certificate_renew_before_days=365), env=env)
    assert third.rc == 0, str(third)
    for name in NAMES:
        new = _leaf_serial(os.path.join(server.cert_dir, name + '.leaf.pem'))
        assert new != old[name]
        server.wait_for_serial(name, new)
    assert server.reload_count() == reloads + 1   # one reload for both certificates


def test_broken_nginx_config_rolls_back(make_nginx, run_playbook, tmp_path):
    server = make_nginx(*NAMES)
    env = {'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')}
    files = [server.sites[n]['cert'] for n in NAMES] + [server.sites[n]['key'] for n in NAMES]
    before = _snapshot(files)
    with open(server.conf, 'a') as f:
        f.write('this is not nginx syntax;\n')
    result = run_playbook(_play(tmp_path, server), env=env)
    assert result.rc != 0
    assert result.status('certforge.pki.certificate : Deploy what changed, validate, reload once and verify') == 'failed'
    failed = result.task('certforge.pki.certificate : Deploy what changed, validate, reload once and verify')
    assert 'not nginx syntax' in failed['msg'] or 'unknown directive' in failed['msg']
    assert _snapshot(files) == before
    for name in NAMES:
        assert server.served_serial(name) == server.issued[name].serial


def test_revoked_serial_in_crl(run_playbook, tmp_path):
    play = textwrap.dedent("""
        - name: Revoke and publish
          hosts: localhost
          gather_facts: false
          tasks:
            - name: Root
              certforge.pki.local_ca:
                path: "{{ d }}/ca"
                common_name: CRL Test CA
            - name: Key and CSR
              certforge.pki.certificate_request:
                privatekey_path: "{{ d }}/leaf.key"
                common_name: leaf.crl.test
              register: req
            - name: Sign
              certforge.pki.local_ca_certificate:
                ca_path: "{{ d }}/ca"
                name: leaf
                csr: "{{ req.csr }}"
                path: "{{ d }}/leaf.crt"
              register: leaf
            - name: Revoke
              certforge.pki.local_ca_certificate:
                ca_path: "{{ d }}/ca"
                path: "{{ d }}/leaf.crt"
                state: revoked
                revocation_reason: key_compromise
            - name: Publish the CRL
              certforge.pki.local_ca_crl:
                ca_path: "{{ d }}/ca"
                path: "{{ d }}/ca.crl"
                der_path: "{{ d }}/ca.crl.der"
            - name: Publish again (nothing new)
              certforge.pki.local_ca_crl:
                ca_path: "{{ d }}/ca"
                path: "{{ d }}/ca.crl"
                der_path: "{{ d }}/ca.crl.der"
              register: again
            - name: Nothing new
              ansible.builtin.assert:
                that: [not again.changed]
        """)
    result = run_playbook(play, extra_vars={'d': str(tmp_path)},
                          env={'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')})
    assert result.rc == 0, str(result)
    serial = result.task('Sign')['serial']
    text = subprocess.run(['openssl', 'crl', '-in', str(tmp_path / 'ca.crl'), '-noout', '-text'],
                          capture_output=True, text=True, check=True).stdout
    assert 'Serial Number: %s' % serial in text
    assert 'Key Compromise' in text
    der = subprocess.run(['openssl', 'crl', '-inform', 'DER', '-in', str(tmp_path / 'ca.crl.der'),
                          '-noout', '-text'], capture_output=True, text=True, check=True).stdout
    assert serial in der


THIRD_PARTY = '''
from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.issuers.local_ca import LocalCAIssuer


class StampingIssuer(LocalCAIssuer):
    """A third-party issuer: signs with a local CA but marks its orders as its own."""
    name = 'stamping_ca'

    def submit(self, request):
        order = super().submit(request)
        order.issuer = self.name
        order.id = 'stamp-' + order.id
        return order


@hookimpl
def certforge_issuers():
    return {'stamping_ca': StampingIssuer}
'''


def test_third_party_connector_from_entry_point(run_playbook, tmp_path):
    # a throw-away installed distribution: the package plus its dist-info with the entry point,
    # exactly what pip leaves in site-packages (built by hand: no build backend needed offline)
    site = tmp_path / 'site'
    (site / 'certforge_stamping').mkdir(parents=True)
    (site / 'certforge_stamping' / '__init__.py').write_text(THIRD_PARTY)
    info = site / 'certforge_stamping-0.0.1.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: certforge-stamping\nVersion: 0.0.1\n')
    (info / 'entry_points.txt').write_text('[certforge.pki]\nstamping = certforge_stamping\n')
    (info / 'top_level.txt').write_text('certforge_stamping\n')
    play = textwrap.dedent("""
        - name: Third-party issuer
          hosts: localhost
          gather_facts: false
          tasks:
            - name: CA
              certforge.pki.local_ca:
                path: "{{ d }}/ca"
                common_name: Third Party Test CA
            - name: Key and CSR
              certforge.pki.certificate_request:
                privatekey_path: "{{ d }}/tp.key"
                common_name: tp.example.test
              register: req
            - name: Issue through the entry-point connector
              certforge.pki.certificate:
                name: tp
                issuer: stamping_ca
                issuer_options: {ca_path: "{{ d }}/ca"}
                csr: "{{ req.csr }}"
              register: cert
        """)
    result = run_playbook(play, extra_vars={'d': str(tmp_path)},
                          env={'PYTHONPATH': str(site), 'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')})
    assert result.rc == 0, str(result)
    issued = result.task('Issue through the entry-point connector')
    assert issued['issuer'] == 'stamping_ca'
    assert issued['order_id'].startswith('stamp-')
    assert issued['status'] == 'issued'
    # and without the package the name is unknown, with a clear message
    (tmp_path / 'x').mkdir()
    missing = run_playbook(play, extra_vars={'d': str(tmp_path / 'x')},
                           env={'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders2')})
    assert missing.rc != 0
    assert missing.status('Issue through the entry-point connector') == 'failed'
    failed = missing.task('Issue through the entry-point connector')
    assert "unknown issuer 'stamping_ca'" in failed['msg'] and 'local_ca' in failed['msg']


def test_twenty_failed_deploys_then_a_good_run_sign_once(make_nginx, run_playbook, failing_role_runs, tmp_path):
    """20 role runs whose deploy fails (nginx -t refuses, the files are rolled back), then a good
    run: the local CA signed each name once, and those certificates are the ones served."""
    from ansible_collections.certforge.pki.plugins.module_utils.issuers.local_ca import LocalCA
    server = make_nginx(*NAMES)
    env = {'CERTFORGE_ORDER_STORE': str(tmp_path / 'orders')}
    good = _play(tmp_path, server)
    failing = _play(tmp_path, server, certificate_target_options={'validate_command': ['false'],
                                                                  'reload_command': server.reload_command})
    role_vars = failing.split('vars: ', 1)[1].split('\n', 1)[0]
    make_ca = ('\n    - name: CA'
               '\n      ansible.builtin.include_role:'
               '\n        name: certforge.pki.local_ca')
    plays = failing_role_runs(role_vars, 20, before=make_ca)
    result = run_playbook(plays, env=env)
    assert result.rc == 0, str(result)
    assert result.stats['localhost']['rescued'] == 20, result.stats
    final = run_playbook(good, env=env)
    assert final.rc == 0, str(final)
    index = LocalCA(str(tmp_path / 'ca' / 'issuing')).index()
    assert len(index) == len(NAMES), sorted(r['name'] for r in index.values())
    for name in NAMES:
        serial = _leaf_serial(os.path.join(server.cert_dir, name + '.leaf.pem'))
        server.wait_for_serial(name, serial)
        assert '%X' % serial in set(s.lstrip('0') for s in index)
