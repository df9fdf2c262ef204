# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet benchmark: many hosts, one certificate each, every figure measured in the same run
with the same inventory and forks=10.

Prints, each on its own line:

    RATIO fleet_first_vs_community_crypto <x>   first run of the certificate role (local CA,
                                                ``files`` target) over BENCH_FLEET_HOSTS hosts vs
                                                community.crypto's openssl_privatekey +
                                                openssl_csr + x509_certificate (ownca) per host
    RATIO fleet_noop_vs_stat <x>                the role's no-op re-run vs one
                                                ansible.builtin.stat per host
    RATIO fleet_first_no_code_cache_vs_community_crypto <x>
                                                the first run with the hosts' compiled-code
                                                cache off: every module call compiles all its
                                                code (a bound for a fleet's very first run, where
                                                each host compiles once)
    RSS_MB fleet_controller <n>                 peak RSS of the ansible-playbook process tree
                                                (the controller and its workers) over our runs

followed by the per-task timing of the no-op run (a small timing callback: wall time from the
start of each task to the start of the next, summed over the hosts' batches).

The inventory is BENCH_FLEET_HOSTS (default 50; the issue's table goes to 200) hosts with
``ansible_connection=local``, each with its own certificate_dir under build/bench/fleet.
BENCH_REPEAT (default 1) runs take the median.  Run by bench/run.py or alone:
``python bench/fleet_bench.py``.  Lower is better.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, 'build')
WORK = os.path.join(BUILD, 'bench', 'fleet')
BASE_VENV = os.path.join(BUILD, 'bench-venv-ansible')
OUR_BIN = os.path.join(ROOT, '.venv', 'bin')
HOSTS = int(os.environ.get('BENCH_FLEET_HOSTS', '50'))
FORKS = int(os.environ.get('BENCH_FLEET_FORKS', '10'))
REPEAT = int(os.environ.get('BENCH_REPEAT', '1'))

TIMING_CALLBACK = '''
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'fleet_timing'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = None
        self.started = None
        self.totals = {}
        self.order = []

    def _close(self):
        if self.current is not None:
            if self.current not in self.totals:
                self.order.append(self.current)
                self.totals[self.current] = 0.0
            self.totals[self.current] += time.monotonic() - self.started
        self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.current = task.get_name()
        self.started = time.monotonic()

    v2_playbook_on_handler_task_start = lambda self, task: self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        with open(os.environ['FLEET_TIMING_OUT'], 'w') as handle:
            json.dump([[name, self.totals[name]] for name in self.order], handle)
'''

CA_PLAY = """
- name: Local CA for the fleet
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Local CA
      ansible.builtin.include_role:
        name: certforge.pki.local_ca
      vars:
        local_ca_dir: "{{ outdir }}/ca"
        local_ca_key_curve: secp256r1
"""

OUR_PLAY = """
- name: certforge.pki - one certificate per host
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Certificates
      ansible.builtin.include_role:
        name: certforge.pki.certificate
      vars:
        certificate_owner: "{{ owner }}"
        certificate_group: "{{ group }}"
        certificate_issuer_options: {ca_path: "{{ ca_path }}"}
        certificate_list:
          - name: "{{ inventory_hostname }}"
            common_name: "{{ inventory_hostname }}.example.test"
"""

CC_PLAY = """
- name: Baseline - community.crypto, one certificate per host
  hosts: fleet
  gather_facts: false
  tasks:
    - name: CA key
      community.crypto.openssl_privatekey: {path: "{{ outdir }}/ca/ca.key", type: ECC, curve: secp256r1}
      run_once: true
    - name: CA CSR
      community.crypto.openssl_csr:
        path: "{{ outdir }}/ca/ca.csr"
        privatekey_path: "{{ outdir }}/ca/ca.key"
        common_name: Bench Test CA
        use_common_name_for_san: false
        basic_constraints: ["CA:TRUE"]
        basic_constraints_critical: true
        key_usage: [keyCertSign, cRLSign]
        key_usage_critical: true
      run_once: true
    - name: CA cert
      community.crypto.x509_certificate:
        path: "{{ outdir }}/ca/ca.crt"
        csr_path: "{{ outdir }}/ca/ca.csr"
        privatekey_path: "{{ outdir }}/ca/ca.key"
        provider: selfsigned
      run_once: true
    - name: Key
      community.crypto.openssl_privatekey: {path: "{{ certificate_dir }}/{{ inventory_hostname }}.key", type: ECC, curve: secp256r1}
    - name: CSR
      community.crypto.openssl_csr:
        path: "{{ certificate_dir }}/{{ inventory_hostname }}.csr"
        privatekey_path: "{{ certificate_dir }}/{{ inventory_hostname }}.key"
        common_name: "{{ inventory_hostname }}.example.test"
        subject_alt_name: ["DNS:{{ inventory_hostname }}.example.test"]
    - name: Certificate
      community.crypto.x509_certificate:
        path: "{{ certificate_dir }}/{{ inventory_hostname }}.crt"
        csr_path: "{{ certificate_dir }}/{{ inventory_hostname }}.csr"
        provider: ownca
        ownca_path: "{{ outdir }}/ca/ca.crt"
        ownca_privatekey_path: "{{ outdir }}/ca/ca.key"
"""

STAT_PLAY = """
- name: Baseline - one stat per host
  hosts: fleet
  gather_facts: false
  tasks:
    - name: Stat
      ansible.builtin.stat:
        path: "{{ certificate_dir }}"
"""


def log(msg):
    print(msg, flush=True)


def user_and_group():
    import grp
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def write_inventory(bin_dir, tag, hostdir):
    """HOSTS local-connection hosts, each with its own (not yet existing) certificate_dir."""
    path = os.path.join(WORK, 'inventory-%s.ini' % tag)
    with open(path, 'w') as f:
        f.write('localhost ansible_connection=local ansible_python_interpreter=%s\n[fleet]\n'
                % os.path.join(bin_dir, 'python'))
        for i in range(1, HOSTS + 1):
            f.write('host%03d certificate_dir=%s/host%03d\n' % (i, hostdir, i))
        f.write('[fleet:vars]\nansible_connection=local\nansible_python_interpreter=%s\n'
                % os.path.join(bin_dir, 'python'))
    return path


def env_for(bin_dir, tag, timing_out=None):
    env = dict(os.environ)
    env['PATH'] = bin_dir + os.pathsep + env.get('PATH', '')
    env['ANSIBLE_LOCAL_TEMP'] = os.path.join(WORK, 'tmp', tag, 'local')
    env['ANSIBLE_REMOTE_TMP'] = os.path.join(WORK, 'tmp', tag, 'remote')
    env['ANSIBLE_LOCALHOST_WARNING'] = 'False'
    env['ANSIBLE_INVENTORY_UNPARSED_WARNING'] = 'False'
    env['ANSIBLE_NOCOLOR'] = '1'
    env['ANSIBLE_FORKS'] = str(FORKS)
    env['ANSIBLE_COLLECTIONS_PATH'] = os.path.join(BUILD, 'collections')
    env['CERTFORGE_ORDER_STORE'] = os.path.join(WORK, 'orders-' + tag)
    if timing_out:
        env['ANSIBLE_CALLBACK_PLUGINS'] = os.path.join(WORK, 'callbacks')
        env['ANSIBLE_CALLBACKS_ENABLED'] = 'fleet_timing'
        env['FLEET_TIMING_OUT'] = timing_out
    return env


def _tree_rss_kb(root_pid):
    """RSS (kB) of root_pid and all its descendants, read from /proc."""
    children = {}
    rss = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            with open('/proc/%s/statm' % entry) as f:
                pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf('SC_PAGE_SIZE') // 1024
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run_play(bin_dir, tag, play_text, inventory, extra, expect=None, timing_out=None, fleet=True):
    play = os.path.join(WORK, '%s.yml' % tag.replace(' ', '-'))
    with open(play, 'w') as f:
        f.write(play_text)
    args = [os.path.join(bin_dir, 'ansible-playbook'), '-i', inventory, play]
    for key, value in extra.items():
        args += ['-e', '%s=%s' % (key, value)]
    peak = [0]
    start = time.monotonic()
    proc = subprocess.Popen(args, env=env_for(bin_dir, tag, timing_out), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def sample():
        while not done.wait(0.1):
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.communicate()[0]
    elapsed = time.monotonic() - start
    done.set()
    sampler.join()
    recaps = re.findall(r'^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', out, re.M)
    hosts = [r for r in recaps if r[0] != 'localhost']
    changed = sum(int(r[2]) for r in hosts)
    if proc.returncode != 0 or len(hosts) != (HOSTS if fleet else 0) or any(r[3] != '0' or r[4] != '0' for r in recaps):
        sys.stdout.write(out[-6000:])
        raise SystemExit('bench: %s failed (rc=%s)' % (tag, proc.returncode))
    if expect is not None and not expect(changed):
        sys.stdout.write(out[-4000:])
        raise SystemExit('bench: %s reported changed=%d, which is wrong for this run' % (tag, changed))
    log('bench: fleet %-24s %7.2f s  (changed=%d, peak RSS %d MB)' % (tag, elapsed, changed, peak[0] // 1024))
    return elapsed, peak[0]


def ensure_baseline_venv():
    marker = os.path.join(BASE_VENV, '.ok')
    if os.path.exists(marker):
        return
    shutil.rmtree(BASE_VENV, ignore_errors=True)
    log('bench: installing the baseline (PyPI ansible<13 with community.crypto) into %s' % BASE_VENV)
    subprocess.check_call([sys.executable, '-m', 'venv', BASE_VENV])
    subprocess.check_call([os.path.join(BASE_VENV, 'bin', 'pip'), 'install', '-q', 'ansible<13'])
    open(marker, 'w').close()


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(os.path.join(WORK, 'callbacks'))
    with open(os.path.join(WORK, 'callbacks', 'fleet_timing.py'), 'w') as f:
        f.write(TIMING_CALLBACK)
    ensure_baseline_venv()
    base_bin = os.path.join(BASE_VENV, 'bin')
    owner, group = user_and_group()
    log('bench: fleet of %d hosts x 1 certificate, forks=%d, median of %d run(s) each' % (HOSTS, FORKS, REPEAT))

    runs = {'cc': 0, 'ours': 0}
    peaks = []

    def cc_first():
        runs['cc'] += 1
        out = os.path.join(WORK, 'cc-%d' % runs['cc'])
        os.makedirs(os.path.join(out, 'ca'))
        for i in range(1, HOSTS + 1):
            os.makedirs(os.path.join(out, 'hosts', 'host%03d' % i))
        inv = write_inventory(base_bin, 'cc-%d' % runs['cc'], os.path.join(out, 'hosts'))
        return run_play(base_bin, 'community.crypto first', CC_PLAY, inv, {'outdir': out},
                        lambda c: c == 3 * HOSTS + 3)[0]

    ours = {}

    def ours_first():
        runs['ours'] += 1
        out = os.path.join(WORK, 'ours-%d' % runs['ours'])
        os.makedirs(out)
        inv = write_inventory(OUR_BIN, 'ours-%d' % runs['ours'], os.path.join(out, 'hosts'))
        run_play(OUR_BIN, 'local CA', CA_PLAY, inv, {'outdir': out}, fleet=False)
        ours.update(out=out, inv=inv)
        timing = os.path.join(WORK, 'first-timing.json')
        elapsed, peak = run_play(OUR_BIN, 'certforge first', OUR_PLAY, inv,
                                 {'owner': owner, 'group': group, 'ca_path': os.path.join(out, 'ca', 'root')},
                                 lambda c: c >= HOSTS, timing_out=timing)
        peaks.append(peak)
        with open(timing) as f:
            ours['first_timing'] = json.load(f)
        return elapsed

    def ours_noop():
        timing = os.path.join(WORK, 'noop-timing.json')
        elapsed, peak = run_play(OUR_BIN, 'certforge no-op', OUR_PLAY, ours['inv'],
                                 {'owner': owner, 'group': group,
                                  'ca_path': os.path.join(ours['out'], 'ca', 'root')},
                                 lambda c: c == 0, timing_out=timing)
        peaks.append(peak)
        with open(timing) as f:
            ours['timing'] = json.load(f)
        return elapsed

    def stat_run():
        return run_play(OUR_BIN, 'stat per host', STAT_PLAY, ours['inv'], {})[0]

    t_cc = statistics.median(cc_first() for dummy in range(REPEAT))
    t_first = statistics.median(ours_first() for dummy in range(REPEAT))
    crts = [h for h in os.listdir(os.path.join(ours['out'], 'hosts'))
            if os.path.exists(os.path.join(ours['out'], 'hosts', h, h + '.crt'))]
    if len(crts) != HOSTS:
        raise SystemExit('bench: expected %d hosts with a certificate, found %d' % (HOSTS, len(crts)))
    t_noop = statistics.median(ours_noop() for dummy in range(REPEAT))
    t_stat = statistics.median(stat_run() for dummy in range(REPEAT))

    def ours_first_cold():
        """The first run again on fresh hosts, with the compiled-code cache of the hosts off:
        here all hosts share one home directory, so in the first run above every host after the
        first found the code compiled; on a real fleet each host compiles once, in its first run."""
        os.environ['CERTFORGE_BYTECODE_CACHE'] = '0'
        try:
            runs['ours'] += 1
            out = os.path.join(WORK, 'ours-%d' % runs['ours'])
            os.makedirs(out)
            inv = write_inventory(OUR_BIN, 'ours-%d' % runs['ours'], os.path.join(out, 'hosts'))
            run_play(OUR_BIN, 'local CA', CA_PLAY, inv, {'outdir': out}, fleet=False)
            return run_play(OUR_BIN, 'certforge first, no code cache', OUR_PLAY, inv,
                            {'owner': owner, 'group': group, 'ca_path': os.path.join(out, 'ca', 'root')},
                            lambda c: c >= HOSTS)[0]
        finally:
            del os.environ['CERTFORGE_BYTECODE_CACHE']

    t_cold = statistics.median(ours_first_cold() for dummy in range(REPEAT))
    log('bench: fleet per host: community.crypto %.3f s, certforge first %.3f s, no-op %.3f s, stat %.3f s'
        % (t_cc / HOSTS, t_first / HOSTS, t_noop / HOSTS, t_stat / HOSTS))
    for what, key in (('first', 'first_timing'), ('no-op', 'timing')):
        log('bench: per-task timing of the %d-host %s run:' % (HOSTS, what))
        for name, seconds in ours[key]:
            log('bench:   %7.2f s  %s' % (seconds, name))
    print('RATIO fleet_first_vs_community_crypto %.3f' % (t_first / t_cc), flush=True)
    print('RATIO fleet_noop_vs_stat %.3f' % (t_noop / t_stat), flush=True)
    print('RATIO fleet_first_no_code_cache_vs_community_crypto %.3f' % (t_cold / t_cc), flush=True)
    print('RSS_MB fleet_controller %d' % (max(peaks) // 1024), flush=True)


if __name__ == '__main__':
    main()
