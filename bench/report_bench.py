# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_report over a fleet of 500 hosts with 20 certificates each and 250 endpoints.

Prints, each on its own line:

    TIME report_playbook <s>      certforge.pki.certificate_report through ansible-playbook: the
                                  10,000 discovery entries (2,500 distinct certificates, each on
                                  4 hosts) and 250 scanned endpoints merged, HTML + JSON + CSV
                                  written; the task fails unless it counts 2,501 certificates
    TIME report_python <s>        the same merge and files called directly in Python, for information
    TIME copy_json <s>            the baseline: the same inputs written to one JSON file with
                                  ansible.builtin.copy and ``to_nice_json`` (what a playbook
                                  without the module would do at the least)
    RATIO report_vs_copy_json <x> report_playbook / copy_json

Run by bench/run.py, or alone: ``python bench/report_bench.py``.  Lower is better.
"""

import datetime
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
if not os.environ.get('CERTFORGE_REPORT_BENCH_REEXEC') and os.path.exists(OUR_PYTHON) \
        and os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, '.venv')):
    os.environ['CERTFORGE_REPORT_BENCH_REEXEC'] = '1'
    os.execv(OUR_PYTHON, [OUR_PYTHON] + sys.argv)

sys.path.insert(0, os.path.join(ROOT, 'build', 'collections'))
WORK = os.path.join(ROOT, 'build', 'bench', 'report')
OUR_BIN = os.path.join(ROOT, '.venv', 'bin')
REPEAT = int(os.environ.get('BENCH_REPEAT', '1'))
HOSTS, PER_HOST, SHARED, ENDPOINTS = 500, 20, 4, 250
DISTINCT = HOSTS * PER_HOST // SHARED

REPORT_PLAY = """
- name: bench certificate_report
  hosts: localhost
  gather_facts: false
  tasks:
    - name: report
      certforge.pki.certificate_report:
        discovery: "{{ fleet_discovery }}"
        scans: "{{ fleet_scans }}"
        html_path: "{{ out }}/report.html"
        json_path: "{{ out }}/report.json"
        csv_path: "{{ out }}/report.csv"
      register: report
      failed_when: report.total != %d
""" % (DISTINCT + 1)

COPY_PLAY = """
- name: bench baseline
  hosts: localhost
  gather_facts: false
  tasks:
    - name: raw inputs as JSON
      ansible.builtin.copy:
        content: "{{ {'discovery': fleet_discovery, 'scans': fleet_scans} | to_nice_json }}"
        dest: "{{ out }}/raw.json"
        mode: '0644'
"""


def log(msg):
    print('bench: ' + msg, flush=True)


def fleet():
    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(i):
        end = now + datetime.timedelta(days=(i * 7) % 400 - 20, hours=12)
        return {'subject': 'CN=host%d.bench.test' % i, 'issuer': 'CN=Bench Issuing CA',
                'serial': '%032X' % (i + 1), 'sans': ['DNS:host%d.bench.test' % i],
                'fingerprint_sha256': hashlib.sha256(b'cert%d' % i).hexdigest(),
                'not_after': end.strftime('%Y-%m-%dT%H:%M:%SZ'), 'self_signed': False, 'is_ca': False}

    inter = {'subject': 'CN=Bench Issuing CA', 'issuer': 'CN=Bench Root', 'serial': '01',
             'sha256': hashlib.sha256(b'inter').hexdigest(), 'not_after': '2030-01-01T00:00:00Z'}
    discovery = {}
    for h in range(HOSTS):
        entries = []
        for k in range(PER_HOST):
            i = (h * PER_HOST + k) % DISTINCT
            entries.append(dict(cert(i), path='/etc/ssl/certs/c%d.pem' % k, managed=False))
        discovery['host%03d' % h] = {'changed': False, 'certificates': entries, 'keys': [], 'skipped': []}
    endpoints = []
    for e in range(ENDPOINTS):
        leaf = cert(e)
        leaf['sha256'] = leaf.pop('fingerprint_sha256')
        endpoints.append({'host': '127.0.0.1', 'port': 10000 + e, 'sni': 'host%d.bench.test' % e,
                          'protocol': 'TLSv1.3', 'cipher': 'TLS_AES_256_GCM_SHA384', 'chain': [leaf, inter],
                          'problems': []})
    return discovery, [{'changed': False, 'endpoints': endpoints}]


def run_play(tag, text, extra_file, out):
    play = os.path.join(WORK, '%s.yml' % tag)
    with open(play, 'w') as handle:
        handle.write(text)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'build', 'collections'),
               ANSIBLE_LOCALHOST_WARNING='False', ANSIBLE_INVENTORY_UNPARSED_WARNING='False',
               ANSIBLE_LOCAL_TEMP=os.path.join(WORK, 'tmp'), ANSIBLE_NOCOLOR='1')
    env.pop('PYTHONPATH', None)
    argv = [os.path.join(OUR_BIN, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', play,
            '-e', '@' + extra_file, '-e', 'out=' + out,
            '-e', 'ansible_python_interpreter=' + os.path.join(OUR_BIN, 'python')]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False, stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-4000:])
        raise SystemExit('bench: %s failed (rc=%s)' % (tag, proc.returncode))
    return elapsed


def python_run(discovery, scans, out):
    from ansible_collections.certforge.pki.plugins.module_utils import report

    class Ctx:
        check_mode = False
        diff = False

        def __init__(self, params):
            self.params = params

        def warn(self, msg):
            pass

    params = dict((k, v.get('default')) for k, v in report.SPEC.argument_spec.items())
    params.update(discovery=discovery, scans=scans, html_path=os.path.join(out, 'report.html'),
                  json_path=os.path.join(out, 'report.json'), csv_path=os.path.join(out, 'report.csv'))
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    start = time.monotonic()
    result = report.execute(Ctx(params))
    elapsed = time.monotonic() - start
    if result['total'] != DISTINCT + 1:
        raise SystemExit('bench: the Python run counted %d certificates' % result['total'])
    return elapsed


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(os.path.join(WORK, 'tmp'))
    discovery, scans = fleet()
    extra = os.path.join(WORK, 'fleet.json')
    with open(extra, 'w') as handle:
        json.dump({'fleet_discovery': discovery, 'fleet_scans': scans}, handle)
    t_report = statistics.median(run_play('report', REPORT_PLAY, extra, os.path.join(WORK, 'out-report'))
                                 for dummy in range(REPEAT))
    t_python = statistics.median(python_run(discovery, scans, os.path.join(WORK, 'out-python'))
                                 for dummy in range(REPEAT))
    t_copy = statistics.median(run_play('copy', COPY_PLAY, extra, os.path.join(WORK, 'out-copy'))
                               for dummy in range(REPEAT))
    log('%d hosts x %d certificates (%d distinct) + %d endpoints' % (HOSTS, PER_HOST, DISTINCT, ENDPOINTS))
    print('TIME report_playbook %.3f' % t_report, flush=True)
    print('TIME report_python %.3f' % t_python, flush=True)
    print('TIME copy_json %.3f' % t_copy, flush=True)
    print('RATIO report_vs_copy_json %.3f' % (t_report / t_copy), flush=True)


if __name__ == '__main__':
    main()
