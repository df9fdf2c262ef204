# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""make bench: speed of the collection against baselines measured in the same run.

Prints, each on its own line:

    RATIO local_ca_vs_community_crypto <x>   100 certificates (key + CSR + sign + files) through
                                             the certificate role vs community.crypto's
                                             openssl_privatekey + openssl_csr + x509_certificate
                                             (ownca) from PyPI's ``ansible`` package, separate venv
    RATIO noop_vs_stat <x>                   our no-op re-run of those 100 vs one
                                             ansible.builtin.stat per item, same inventory

Then every bench/*_bench.py runs and prints its own lines (BENCH_ONLY=local_ca,sectigo,...
limits which benches run).  Each figure is the median wall time of BENCH_REPEAT runs (default 1;
baselines are slow).
Lower is better.  Every run also checks its own result (changed counts, files present).
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, 'build')
WORK = os.path.join(BUILD, 'bench')
BASE_VENV = os.path.join(BUILD, 'bench-venv-ansible')
OUR_BIN = os.path.join(ROOT, '.venv', 'bin')
N = int(os.environ.get('BENCH_CERTS', '100'))
REPEAT = int(os.environ.get('BENCH_REPEAT', '1'))

CC_PLAY = """
- name: Baseline - local CA with community.crypto
  hosts: all
  gather_facts: false
  vars:
    out: "{{ outdir }}"
    items_n: "{{ range(1, n | int + 1) | list }}"
  tasks:
    - name: Output dirs
      ansible.builtin.file: {path: "{{ out }}/{{ d }}", state: directory, mode: "0700"}
      loop: [ca, keys, csrs, certs]
      loop_control: {loop_var: d}
    - name: CA key
      community.crypto.openssl_privatekey: {path: "{{ out }}/ca/ca.key", type: ECC, curve: secp256r1}
    - name: CA CSR
      community.crypto.openssl_csr:
        path: "{{ out }}/ca/ca.csr"
        privatekey_path: "{{ out }}/ca/ca.key"
        common_name: Bench Test CA
        use_common_name_for_san: false
        basic_constraints: ["CA:TRUE"]
        basic_constraints_critical: true
        key_usage: [keyCertSign, cRLSign]
        key_usage_critical: true
    - name: CA cert
      community.crypto.x509_certificate:
        path: "{{ out }}/ca/ca.crt"
        csr_path: "{{ out }}/ca/ca.csr"
        privatekey_path: "{{ out }}/ca/ca.key"
        provider: selfsigned
    - name: Leaf keys
      community.crypto.openssl_privatekey: {path: "{{ out }}/keys/item{{ item }}.key", type: ECC, curve: secp256r1}
      loop: "{{ items_n }}"
    - name: Leaf CSRs
      community.crypto.openssl_csr:
        path: "{{ out }}/csrs/item{{ item }}.csr"
        privatekey_path: "{{ out }}/keys/item{{ item }}.key"
        common_name: "item{{ item }}.example.test"
        subject_alt_name: ["DNS:item{{ item }}.example.test"]
      loop: "{{ items_n }}"
    - name: Leaf certs
      community.crypto.x509_certificate:
        path: "{{ out }}/certs/item{{ item }}.crt"
        csr_path: "{{ out }}/csrs/item{{ item }}.csr"
        provider: ownca
        ownca_path: "{{ out }}/ca/ca.crt"
        ownca_privatekey_path: "{{ out }}/ca/ca.key"
      loop: "{{ items_n }}"
"""

OUR_PLAY = """
- name: certforge.pki - local CA and the certificate role
  hosts: all
  gather_facts: false
  vars:
    owner: "{{ lookup('ansible.builtin.pipe', 'id -un') }}"
    group: "{{ lookup('ansible.builtin.pipe', 'id -gn') }}"
  tasks:
    - name: Local CA
      ansible.builtin.include_role:
        name: certforge.pki.local_ca
      vars:
        local_ca_dir: "{{ outdir }}/ca"
        local_ca_key_curve: secp256r1
    - name: Certificates
      ansible.builtin.include_role:
        name: certforge.pki.certificate
      vars:
        certificate_dir: "{{ outdir }}/certs"
        certificate_owner: "{{ owner }}"
        certificate_group: "{{ group }}"
        certificate_issuer_options: {ca_path: "{{ local_ca_issuing_path }}"}
        certificate_list: >-
          {%- set l = [] -%}
          {%- for i in range(1, n | int + 1) -%}
          {%- set _ = l.append({'name': 'item' ~ i, 'common_name': 'item' ~ i ~ '.example.test'}) -%}
          {%- endfor -%}
          {{ l }}
"""

STAT_PLAY = """
- name: Baseline - stat loop
  hosts: all
  gather_facts: false
  tasks:
    - name: Stat each item
      ansible.builtin.stat:
        path: "{{ statdir }}/f{{ item }}"
      loop: "{{ range(1, n | int + 1) | list }}"
"""


def log(msg):
    print(msg, flush=True)


def ensure_baseline_venv():
    marker = os.path.join(BASE_VENV, '.ok')
    if os.path.exists(marker):
        return
    shutil.rmtree(BASE_VENV, ignore_errors=True)
    log('bench: installing the baseline (PyPI ansible<13 with community.crypto) into %s' % BASE_VENV)
    subprocess.check_call([sys.executable, '-m', 'venv', BASE_VENV])
    subprocess.check_call([os.path.join(BASE_VENV, 'bin', 'pip'), 'install', '-q', 'ansible<13'])
    open(marker, 'w').close()


def env_for(bin_dir, tag):
    env = dict(os.environ)
    env['PATH'] = bin_dir + os.pathsep + env.get('PATH', '')
    env['ANSIBLE_LOCAL_TEMP'] = os.path.join(WORK, 'tmp', tag, 'local')
    env['ANSIBLE_REMOTE_TMP'] = os.path.join(WORK, 'tmp', tag, 'remote')
    env['ANSIBLE_LOCALHOST_WARNING'] = 'False'
    env['ANSIBLE_INVENTORY_UNPARSED_WARNING'] = 'False'
    env['ANSIBLE_NOCOLOR'] = '1'
    env['ANSIBLE_COLLECTIONS_PATH'] = os.path.join(BUILD, 'collections')
    env['CERTFORGE_ORDER_STORE'] = os.path.join(WORK, 'orders-' + tag)
    return env


def inventory(bin_dir, tag):
    path = os.path.join(WORK, 'inventory-%s.ini' % tag)
    with open(path, 'w') as f:
        f.write('[all]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n'
                % os.path.join(bin_dir, 'python'))
    return path


def run_play(bin_dir, tag, play_text, extra, expect_changed=None):
    play = os.path.join(WORK, '%s.yml' % tag)
    with open(play, 'w') as f:
        f.write(play_text)
    args = [os.path.join(bin_dir, 'ansible-playbook'), '-i', inventory(bin_dir, tag), play]
    for key, value in extra.items():
        args += ['-e', '%s=%s' % (key, value)]
    start = time.monotonic()
    proc = subprocess.run(args, env=env_for(bin_dir, tag), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    elapsed = time.monotonic() - start
    recap = re.search(r'^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)',
                      proc.stdout, re.M)
    if proc.returncode != 0 or recap is None or recap.group(4) != '0':
        sys.stdout.write(proc.stdout[-6000:])
        raise SystemExit('bench: %s failed (rc=%s)' % (tag, proc.returncode))
    changed = int(recap.group(2))
    if expect_changed is not None and not expect_changed(changed):
        sys.stdout.write(proc.stdout[-4000:])
        raise SystemExit('bench: %s reported changed=%d, which is wrong for this run' % (tag, changed))
    log('bench: %-28s %7.2f s  (changed=%d)' % (tag, elapsed, changed))
    return elapsed


def median_of(fn):
    return statistics.median(fn() for dummy in range(REPEAT))


def main():
    if os.environ.get('BENCH_ONLY') and 'local_ca' not in os.environ['BENCH_ONLY'].split(','):
        run_other_benches()
        return
    os.makedirs(WORK, exist_ok=True)
    ensure_baseline_venv()
    base_bin = os.path.join(BASE_VENV, 'bin')
    statdir = os.path.join(WORK, 'statfiles')
    os.makedirs(statdir, exist_ok=True)
    for i in range(1, N + 1):
        open(os.path.join(statdir, 'f%d' % i), 'w').close()
    log('bench: %d certificates, median of %d run(s) each' % (N, REPEAT))

    counter = {'cc': 0, 'ours': 0}

    def cc_first():
        counter['cc'] += 1
        out = os.path.join(WORK, 'cc-%d' % counter['cc'])
        shutil.rmtree(out, ignore_errors=True)
        return run_play(base_bin, 'community.crypto first', CC_PLAY, {'outdir': out, 'n': N},
                        lambda c: c == 7)

    ours_dirs = []

    def ours_first():
        counter['ours'] += 1
        out = os.path.join(WORK, 'ours-%d' % counter['ours'])
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        ours_dirs.append(out)
        return run_play(OUR_BIN, 'certforge first', OUR_PLAY, {'outdir': out, 'n': N},
                        lambda c: c >= 3)

    def ours_noop():
        return run_play(OUR_BIN, 'certforge no-op', OUR_PLAY, {'outdir': ours_dirs[-1], 'n': N},
                        lambda c: c == 0)

    def stat_loop():
        return run_play(OUR_BIN, 'stat loop', STAT_PLAY, {'statdir': statdir, 'n': N})

    t_cc = median_of(cc_first)
    t_ours = median_of(ours_first)
    certs = [f for f in os.listdir(os.path.join(ours_dirs[-1], 'certs')) if f.endswith('.crt')]
    if len(certs) != N:
        raise SystemExit('bench: expected %d certificates, found %d' % (N, len(certs)))
    t_noop = median_of(ours_noop)
    t_stat = median_of(stat_loop)
    log('bench: per certificate: community.crypto %.3f s, certforge %.3f s, certforge no-op %.3f s, stat %.3f s'
        % (t_cc / N, t_ours / N, t_noop / N, t_stat / N))
    print('RATIO local_ca_vs_community_crypto %.3f' % (t_ours / t_cc), flush=True)
    print('RATIO noop_vs_stat %.3f' % (t_noop / t_stat), flush=True)
    run_other_benches()


def run_other_benches():
    """Each bench/*_bench.py is a script of its own (issuer benches: Sectigo, ACME); it prints
    its RATIO / CALLS / RSS_MB lines.  BENCH_ONLY=name,name limits which ones run."""
    here = os.path.dirname(os.path.abspath(__file__))
    only = set(filter(None, os.environ.get('BENCH_ONLY', '').split(',')))
    for name in sorted(os.listdir(here)):
        if not name.endswith('_bench.py') or (only and name[:-len('_bench.py')] not in only):
            continue
        log('bench: running %s' % name)
        proc = subprocess.run([sys.executable, os.path.join(here, name)], check=False)
        if proc.returncode != 0:
            raise SystemExit('bench: %s failed (rc=%s)' % (name, proc.returncode))


if __name__ == '__main__':
    main()
