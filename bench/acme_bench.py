# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ACME benchmark against a real Pebble on 127.0.0.1 (PEBBLE_VA_NOSLEEP=1, no nonce rejects,
no authorization reuse), every figure measured in the same run against the same Pebble.

Prints, each on its own line:

    RATIO acme_vs_certbot <x>              BENCH_ACME_CERTS (20) certificates by our
                                           acme_certificate module in one play vs certbot's CLI
                                           issuing them one after another (standalone http-01,
                                           certbot from PyPI in build/acme-venv-certbot)
    RATIO acme_vs_community_crypto <x>     the same vs community.crypto's two-step
                                           acme_certificate flow (PyPI ``ansible`` in
                                           build/bench-venv-ansible; webroot served on
                                           Pebble's http-01 port)
    CALLS acme_noop <n>                    ACME requests reaching Pebble on a re-run with
                                           nothing due (from Pebble's request log)

Run by bench/run.py, or alone: ``python bench/acme_bench.py``.  Lower is better.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
if not os.environ.get('CERTFORGE_ACME_BENCH_REEXEC') and os.path.exists(OUR_PYTHON) \
        and os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, '.venv')):
    os.environ['CERTFORGE_ACME_BENCH_REEXEC'] = '1'
    os.execv(OUR_PYTHON, [OUR_PYTHON] + sys.argv)

BUILD = os.path.join(ROOT, 'build')
WORK = os.path.join(BUILD, 'bench', 'acme')
OUR_BIN = os.path.join(ROOT, '.venv', 'bin')
CERTBOT_VENV = os.path.join(BUILD, 'acme-venv-certbot')
N = int(os.environ.get('BENCH_ACME_CERTS', '20'))
MODULE = os.path.join(ROOT, 'plugins', 'modules', 'acme_certificate.py')


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


servers = _load('certforge_acme_servers', os.path.join(ROOT, 'tests', 'integration', 'acme', 'servers.py'))
bench_run = _load('certforge_bench_run', os.path.join(ROOT, 'bench', 'run.py'))


def log(msg):
    print('bench: ' + msg, flush=True)


def ensure_certbot():
    marker = os.path.join(CERTBOT_VENV, '.certforge-ok')
    if os.path.exists(marker):
        return os.path.join(CERTBOT_VENV, 'bin', 'certbot')
    shutil.rmtree(CERTBOT_VENV, ignore_errors=True)
    log('installing certbot from PyPI into %s' % CERTBOT_VENV)
    base = shutil.which('python3') or sys.executable
    subprocess.run([base, '-m', 'venv', CERTBOT_VENV], check=True)
    subprocess.run([os.path.join(CERTBOT_VENV, 'bin', 'pip'), 'install', '-q', '--disable-pip-version-check',
                    'certbot'], check=True, stdin=subprocess.DEVNULL)
    open(marker, 'w').close()
    return os.path.join(CERTBOT_VENV, 'bin', 'certbot')


def certbot_run(certbot, pebble, out):
    """N certificates, one certbot process each (the first one also registers the account)."""
    env = dict(os.environ, REQUESTS_CA_BUNDLE=pebble.ca_bundle)
    start = time.monotonic()
    for i in range(1, N + 1):
        argv = [certbot, 'certonly', '--non-interactive', '--agree-tos', '--register-unsafely-without-email',
                '--server', pebble.directory_url, '--standalone',
                '--http-01-port', str(pebble.http01_port), '--http-01-address', '127.0.0.1',
                '--config-dir', os.path.join(out, 'config'), '--work-dir', os.path.join(out, 'work'),
                '--logs-dir', os.path.join(out, 'logs'), '-d', 'cb%d.example.test' % i]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            sys.stdout.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit('bench: certbot failed for cb%d.example.test' % i)
    elapsed = time.monotonic() - start
    live = [d for d in os.listdir(os.path.join(out, 'config', 'live')) if d.startswith('cb')]
    if len(live) != N:
        raise SystemExit('bench: certbot made %d certificates, expected %d' % (len(live), N))
    log('%-28s %7.2f s  (%d certificates)' % ('certbot', elapsed, N))
    return elapsed


CC_PLAY = """
- name: Baseline - community.crypto acme_certificate two-step http-01
  hosts: all
  gather_facts: false
  environment:
    SSL_CERT_FILE: "{{ ca_bundle }}"
  vars:
    out: "{{ outdir }}"
    names: "{{ range(1, n | int + 1) | map('regex_replace', '^(.*)$', 'cc\\\\1.example.test') | list }}"
  tasks:
    - name: Output dirs
      ansible.builtin.file: {path: "{{ out }}/{{ d }}", state: directory, mode: "0700"}
      loop: [keys, csrs, certs]
      loop_control: {loop_var: d}
    - name: Account key
      community.crypto.openssl_privatekey: {path: "{{ out }}/account.key", type: ECC, curve: secp256r1}
    - name: ACME account
      community.crypto.acme_account:
        account_key_src: "{{ out }}/account.key"
        acme_directory: "{{ acme_dir }}"
        acme_version: 2
        validate_certs: true
        state: present
        terms_agreed: true
    - name: Leaf keys
      community.crypto.openssl_privatekey: {path: "{{ out }}/keys/{{ item }}.key", type: ECC, curve: secp256r1}
      loop: "{{ names }}"
    - name: Leaf CSRs
      community.crypto.openssl_csr:
        path: "{{ out }}/csrs/{{ item }}.csr"
        privatekey_path: "{{ out }}/keys/{{ item }}.key"
        common_name: "{{ item }}"
        subject_alt_name: ["DNS:{{ item }}"]
      loop: "{{ names }}"
    - name: Step 1 (order, challenges)
      community.crypto.acme_certificate:
        account_key_src: "{{ out }}/account.key"
        acme_directory: "{{ acme_dir }}"
        acme_version: 2
        validate_certs: true
        csr: "{{ out }}/csrs/{{ item }}.csr"
        dest: "{{ out }}/certs/{{ item }}.crt"
        fullchain_dest: "{{ out }}/certs/{{ item }}.fullchain.crt"
        challenge: http-01
        modify_account: false
      loop: "{{ names }}"
      register: step1
    - name: Challenge dir
      ansible.builtin.file: {path: "{{ webroot }}/.well-known/acme-challenge", state: directory, mode: "0755"}
    - name: Tokens into the webroot
      ansible.builtin.copy:
        dest: "{{ webroot }}/{{ item.challenge_data[item.item]['http-01'].resource }}"
        content: "{{ item.challenge_data[item.item]['http-01'].resource_value }}"
        mode: "0644"
      loop: "{{ step1.results }}"
      loop_control: {label: "{{ item.item }}"}
      when: item is changed
    - name: Step 2 (validate, finalize, download)
      community.crypto.acme_certificate:
        account_key_src: "{{ out }}/account.key"
        acme_directory: "{{ acme_dir }}"
        acme_version: 2
        validate_certs: true
        csr: "{{ out }}/csrs/{{ item.item }}.csr"
        dest: "{{ out }}/certs/{{ item.item }}.crt"
        fullchain_dest: "{{ out }}/certs/{{ item.item }}.fullchain.crt"
        challenge: http-01
        modify_account: false
        data: "{{ item }}"
      loop: "{{ step1.results }}"
      loop_control: {label: "{{ item.item }}"}
"""

OUR_PLAY = """
- name: certforge.pki - acme_certificate, built-in http-01 listener
  hosts: all
  gather_facts: false
  vars:
    out: "{{ outdir }}"
    names: %(names)s
  tasks:
    - name: Account key, leaf keys and CSRs (one call)
      certforge.pki.certificate_request:
        privatekey_type: ECDSA
        privatekey_curve: secp256r1
        requests: %(requests)s
    - name: Certificates
      certforge.pki.acme_certificate:
        name: "{{ item }}"
        acme_directory: "{{ acme_dir }}"
        acme_ca_bundle: "{{ ca_bundle }}"
        account_key_path: "{{ out }}/account.key"
        terms_agreed: true
        csr_path: "{{ out }}/{{ item }}.csr"
        certificate_path: "{{ out }}/certs/{{ item }}.crt"
        fullchain_path: "{{ out }}/certs/{{ item }}.fullchain.crt"
        http01_listen_port: "{{ http01_port | int }}"
        order_store: "{{ out }}/orders"
      loop: "{{ names }}"
"""


def our_play_text(out):
    names = ['cf%d.example.test' % i for i in range(1, N + 1)]
    requests = [{'privatekey_path': out + '/account.key', 'csr_path': out + '/account.csr',
                 'common_name': 'account.invalid'}]
    requests += [{'privatekey_path': '%s/%s.key' % (out, n), 'csr_path': '%s/%s.csr' % (out, n),
                  'common_name': n, 'subject_alt_names': ['DNS:' + n]} for n in names]
    return OUR_PLAY % {'names': json.dumps(names), 'requests': json.dumps(requests)}


def cc_run(pebble, out):
    webroot = os.path.join(out, 'webroot')
    os.makedirs(webroot, exist_ok=True)
    web = servers._Process([sys.executable, '-m', 'http.server', str(pebble.http01_port), '--bind', '127.0.0.1',   # pylint: disable=protected-access
                            '--directory', webroot], os.path.join(out, 'webroot.log'))
    try:
        servers.poll(lambda: servers.listening(pebble.http01_port), 10, 'the webroot server')
        base_bin = os.path.join(bench_run.BASE_VENV, 'bin')
        return bench_run.run_play(base_bin, 'community.crypto acme', CC_PLAY,
                                  {'outdir': out, 'n': N, 'webroot': webroot, 'ca_bundle': pebble.ca_bundle,
                                   'acme_dir': pebble.directory_url},
                                  lambda c: c >= 6)
    finally:
        web.stop()


def ours_run(pebble, out, tag, expect):
    return bench_run.run_play(OUR_BIN, tag, our_play_text(out),
                              {'outdir': out, 'n': N, 'ca_bundle': pebble.ca_bundle,
                               'acme_dir': pebble.directory_url, 'http01_port': pebble.http01_port},
                              expect)


def main():
    if not servers.pebble_available():
        raise SystemExit('bench: pebble is not installed (make deps installs it)')
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    bench_run.WORK = WORK
    os.makedirs(os.path.join(WORK, 'tmp'), exist_ok=True)
    bench_run.ensure_baseline_venv()
    certbot = ensure_certbot()
    dns = servers.ChallTestSrv(os.path.join(WORK, 'challtestsrv'))
    pebble = servers.Pebble(os.path.join(WORK, 'pebble'), dns)
    try:
        dns.start()
        pebble.start()
        log('Pebble at %s (http-01 port %d), %d certificates per tool'
            % (pebble.directory_url, pebble.http01_port, N))
        t_certbot = certbot_run(certbot, pebble, os.path.join(WORK, 'certbot'))
        t_cc = cc_run(pebble, os.path.join(WORK, 'cc'))
        if not os.path.exists(MODULE):
            log('plugins/modules/acme_certificate.py does not exist yet: baselines only '
                '(certbot %.2f s/cert, community.crypto %.2f s/cert)' % (t_certbot / N, t_cc / N))
            return
        ours = os.path.join(WORK, 'ours')
        os.makedirs(os.path.join(ours, 'certs'))
        t_ours = ours_run(pebble, ours, 'certforge acme first', lambda c: c >= 1)
        issued = [f for f in os.listdir(os.path.join(ours, 'certs')) if f.endswith('.fullchain.crt')]
        if len(issued) < N:
            raise SystemExit('bench: expected %d certificates from acme_certificate, found %d' % (N, len(issued)))
        mark = pebble.log_mark()
        t_noop = ours_run(pebble, ours, 'certforge acme no-op', lambda c: c == 0)
        calls = len(pebble.requests_since(mark))
        log('per certificate: certbot %.3f s, community.crypto %.3f s, certforge %.3f s, certforge no-op %.3f s'
            % (t_certbot / N, t_cc / N, t_ours / N, t_noop / N))
        print('RATIO acme_vs_certbot %.3f' % (t_ours / t_certbot), flush=True)
        print('RATIO acme_vs_community_crypto %.3f' % (t_ours / t_cc), flush=True)
        print('CALLS acme_noop %d' % calls, flush=True)
    finally:
        pebble.stop()
        dns.stop()


if __name__ == '__main__':
    main()
