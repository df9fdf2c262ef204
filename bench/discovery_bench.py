# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_discovery over a tree of 20,000 files of which 2,000 are PEM certificates.

Prints, each on its own line:

    TIME discovery_playbook <s>             certforge.pki.certificate_discovery on the tree through
                                            ansible-playbook (local connection, the module run as
                                            ansible runs it on a managed host), playbook start
                                            and an assert on the counts included
    TIME discovery_python <s>               the same discovery called directly in Python (no
                                            Ansible), for information
    TIME find_openssl <s>                   the baseline: a shell script running
                                            ``find <tree> -type f`` and one
                                            ``openssl x509 -noout -enddate -in <f>`` per *.pem found
    RATIO discovery_vs_find <x>             discovery_playbook / find_openssl; goal <= 0.2

The tree: 200 directories (20 x 10, two levels) of 100 files each; in each, 10 PEM certificates
(distinct certificates signed with one CA key for one leaf key, validity spread so some are due
and some expired) and 90 other files (.txt, .conf, .log, .json).  Every run checks its own
result: the module finds 2,000 certificates and the script prints 2,000 end dates.

Run by bench/run.py, or alone: ``python bench/discovery_bench.py``.  Lower is better.
"""

import datetime
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
if not os.environ.get('CERTFORGE_DISCOVERY_BENCH_REEXEC') and os.path.exists(OUR_PYTHON) \
        and os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, '.venv')):
    os.environ['CERTFORGE_DISCOVERY_BENCH_REEXEC'] = '1'
    os.execv(OUR_PYTHON, [OUR_PYTHON] + sys.argv)

sys.path.insert(0, os.path.join(ROOT, 'build', 'collections'))
WORK = os.path.join(ROOT, 'build', 'bench', 'discovery')
OUR_BIN = os.path.join(ROOT, '.venv', 'bin')
REPEAT = int(os.environ.get('BENCH_REPEAT', '1'))
DIRS_TOP, DIRS_SUB, FILES_PER_DIR, CERTS_PER_DIR = 20, 10, 100, 10
TOTAL_FILES = DIRS_TOP * DIRS_SUB * FILES_PER_DIR
TOTAL_CERTS = DIRS_TOP * DIRS_SUB * CERTS_PER_DIR
OTHER_SUFFIXES = ('.txt', '.conf', '.log', '.json')

BASELINE = r'''#!/bin/sh
# what a shell script does: every file, one openssl per PEM certificate
find "$1" -type f | while read -r f; do
  case "$f" in
    *.pem) openssl x509 -noout -enddate -in "$f" ;;
  esac
done
'''


def log(msg):
    print('bench: ' + msg, flush=True)


def _load(key, path):
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def build_tree(tree):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name('Discovery Bench CA')
    now = datetime.datetime.now(datetime.timezone.utc)
    shutil.rmtree(tree, ignore_errors=True)
    number = 0
    filler = b'# nothing to see here\n' * 20
    for top in range(DIRS_TOP):
        for sub in range(DIRS_SUB):
            directory = os.path.join(tree, 'app%02d' % top, 'conf%02d' % sub)
            os.makedirs(directory)
            for index in range(FILES_PER_DIR):
                if index < CERTS_PER_DIR:
                    number += 1
                    cn = 'host%05d.bench.test' % number
                    start = now - datetime.timedelta(days=number % 100)
                    cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_name)
                            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
                            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=90))
                            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
                            .sign(ca_key, hashes.SHA256()))
                    data = cert.public_bytes(serialization.Encoding.PEM)
                    path = os.path.join(directory, '%s.pem' % cn)
                else:
                    data = filler
                    path = os.path.join(directory, 'file%03d%s' % (index, OTHER_SUFFIXES[index % len(OTHER_SUFFIXES)]))
                with open(path, 'wb') as handle:
                    handle.write(data)
    return number


def discovery_play(tree):
    return json.dumps([{
        'name': 'Discovery bench', 'hosts': 'all', 'gather_facts': False,
        'tasks': [
            {'name': 'Discover', 'certforge.pki.certificate_discovery': {'paths': [tree]}, 'register': 'found'},
            {'name': 'Check the counts', 'ansible.builtin.assert': {
                'that': ['found.totals.certificates == %d' % TOTAL_CERTS,
                         'found.totals.files_seen == %d' % TOTAL_FILES,
                         'found.totals.files_read == %d' % TOTAL_CERTS,
                         'found.problems | length == 0'],
                'quiet': True}},
        ]}], indent=1)


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_python(tree):
    from ansible_collections.certforge.pki.plugins.module_utils import discovery
    params = dict((k, v.get('default')) for k, v in discovery.OPTIONS.items())
    params['paths'] = [tree]
    start = time.monotonic()
    result = discovery.run(params)
    elapsed = time.monotonic() - start
    if result['totals']['certificates'] != TOTAL_CERTS or result['totals']['files_seen'] != TOTAL_FILES:
        raise SystemExit('bench: direct discovery found %r' % result['totals'])
    return elapsed, result['totals']


def run_baseline(script, tree):
    start = time.monotonic()
    proc = subprocess.run(['sh', script, tree], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          check=False)
    elapsed = time.monotonic() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith('notAfter=')]
    if proc.returncode != 0 or len(lines) != TOTAL_CERTS:
        raise SystemExit('bench: baseline printed %d end dates (rc=%s): %s'
                         % (len(lines), proc.returncode, proc.stderr[-500:]))
    return elapsed


def main():
    if not shutil.which('openssl'):
        log('openssl is not installed: discovery_vs_find skipped')
        return
    bench_run = _load('certforge_bench_run', os.path.join(ROOT, 'bench', 'run.py'))
    bench_run.WORK = WORK
    os.makedirs(WORK, exist_ok=True)
    tree = os.path.join(WORK, 'tree')
    start = time.monotonic()
    made = build_tree(tree)
    log('tree: %d files, %d PEM certificates, made in %.1f s' % (TOTAL_FILES, made, time.monotonic() - start))
    script = os.path.join(WORK, 'find_openssl.sh')
    with open(script, 'w') as handle:
        handle.write(BASELINE)
    play = discovery_play(tree)

    def ours():
        return bench_run.run_play(OUR_BIN, 'discovery', play, {}, lambda c: c == 0)

    t_ours, t_python, t_base = [], [], []
    cpu = {'ours': [], 'base': []}
    for dummy in range(REPEAT):
        before = _children_cpu()
        t_ours.append(ours())
        cpu['ours'].append(_children_cpu() - before)
        elapsed, totals = run_python(tree)
        t_python.append(elapsed)
        before = _children_cpu()
        t_base.append(run_baseline(script, tree))
        cpu['base'].append(_children_cpu() - before)
    ours_s, python_s, base_s = (statistics.median(t) for t in (t_ours, t_python, t_base))
    log('discovery totals: %s' % json.dumps(totals, sort_keys=True))
    # wall time is the figure; CPU time (user + system of the child processes) says how much of
    # it a loaded machine added
    log('CPU seconds: discovery playbook %.2f, find + openssl %.2f; load average %.1f'
        % (statistics.median(cpu['ours']), statistics.median(cpu['base']), os.getloadavg()[0]))
    print('TIME discovery_playbook %.2f (ansible-playbook, local connection, module as on a managed host)' % ours_s,
          flush=True)
    print('TIME discovery_python %.2f (direct call, no Ansible)' % python_s, flush=True)
    print('TIME find_openssl %.2f (find + one openssl x509 per PEM)' % base_s, flush=True)
    print('RATIO discovery_vs_find %.3f' % (ours_s / base_s), flush=True)


if __name__ == '__main__':
    main()
