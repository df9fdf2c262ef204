# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sectigo benchmark against the SCM simulator on 127.0.0.1 (tests/simulators/sectigo_scm,
started in this process), every figure measured in the same run.

Prints, each on its own line:

    CALLS sectigo_dv_issue <n>              requests from the enroll to the certificate in hand
                                            for a DV order through the sectigo connector
                                            (core/issue.py), the simulator clock advanced past
                                            the DV delay right after the enroll; counted in the
                                            simulator's audit log
    CALLS sectigo_noop <n>                  the same request again with the certificate in use:
                                            nothing due
    RATIO sectigo_sync_vs_sequential <x>    sync of BENCH_SECTIGO_RECORDS (20,000) records
                                            (100 pages of 200, details of each) with the
                                            concurrent engine (max_workers 8) vs one request at a
                                            time (max_workers 1)
    RATIO sectigo_resync_vs_full <x>        incremental re-sync (state file) after 1 % of the
                                            records changed status vs that full sync
    RSS_MB sectigo_sync <n>                 peak RSS (VmHWM) of the process doing the full sync

Latency: every API request gets a 5 ms server-side delay (the simulator's ``delay`` fault on
every path), a realistic figure for an API on a nearby network, so that concurrency matters as
it does against the real service.  Each sync runs in a child process (the engine in-process,
no Ansible), so the client does not share the simulator's interpreter lock and its peak RSS is
its own.

The sequential baseline is timed on the first BENCH_SECTIGO_SEQ_RECORDS (4,000) records and
scaled to the full count: one request at a time is linear in the number of records (each
costs one detail round trip, every 200 one list round trip), and timing all 20,000 alone would
take over two minutes.  BENCH_SECTIGO_SEQ_RECORDS=20000 times the whole baseline.

Run by bench/run.py, or alone: ``python bench/sectigo_bench.py``.  Lower is better.
"""

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
if not os.environ.get('CERTFORGE_SECTIGO_BENCH_REEXEC') and os.path.exists(OUR_PYTHON) \
        and os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, '.venv')):
    os.environ['CERTFORGE_SECTIGO_BENCH_REEXEC'] = '1'
    os.execv(OUR_PYTHON, [OUR_PYTHON] + sys.argv)

COLLECTIONS = os.path.join(ROOT, 'build', 'collections')
if not os.path.isdir(os.path.join(COLLECTIONS, 'ansible_collections', 'certforge', 'pki')):
    raise SystemExit('bench: %s is missing; run make collection first' % COLLECTIONS)
sys.path.insert(0, COLLECTIONS)

# pylint: disable=wrong-import-position
from ansible_collections.certforge.pki.plugins.module_utils.issuers import sectigo  # noqa: E402
from ansible_collections.certforge.pki.plugins.module_utils.issuers import sectigo_sync  # noqa: E402

RECORDS = int(os.environ.get('BENCH_SECTIGO_RECORDS', '20000'))
SEQ_RECORDS = min(RECORDS, int(os.environ.get('BENCH_SECTIGO_SEQ_RECORDS', '4000')))
LATENCY = float(os.environ.get('BENCH_SECTIGO_LATENCY', '0.005'))
CHANGED = 0.01


def log(msg):
    print('bench: ' + msg, flush=True)


def peak_rss_mb():
    """VmHWM of this process (MB), else ru_maxrss."""
    try:
        with open('/proc/self/status') as handle:
            for line in handle:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------- child: one sync

def child(spec):
    options = spec['options']

    def factory():
        return sectigo.SectigoClient.from_options(options)

    sync = sectigo_sync.CertificateSync(factory, max_workers=spec['max_workers'], state_file=spec.get('state_file'),
                                        tenant=sectigo_sync.tenant_key(options), limit=spec.get('limit'))
    start = time.monotonic()
    result = sync.run()
    elapsed = time.monotonic() - start
    out = dict(elapsed=elapsed, total=result['total'], calls=result['calls'], fetched=result['fetched'],
               skipped_unchanged=result['skipped_unchanged'], incremental=result['incremental'],
               ids=len(set(c['ssl_id'] for c in result['certificates'])), rss_mb=peak_rss_mb())
    print(json.dumps(out), flush=True)


def run_child(spec):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--child', json.dumps(spec)],
                          check=True, capture_output=True, text=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- DV issue + no-op

def dv_calls(sim, workdir):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
    from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry

    key = ec.generate_private_key(ec.SECP256R1())
    name = 'bench.example.com'
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
           .sign(key, hashes.SHA256()))
    csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode('ascii')
    options = dict(base_url=sim.base_url, customer_uri=sim.customer_uri, login=sim.login,
                   password=sim.password, ca_bundle=sim.ca_bundle, organization='310',
                   profile='Sectigo DV SSL', custom_fields={'cost-center': 'CC-1'})
    store = os.path.join(workdir, 'orders')

    def run(current=None):
        connector = sectigo.SectigoIssuer(dict(options), option_prefix='')
        submit = connector.submit

        def submit_then_advance(request):
            order = submit(request)
            sim.advance(3600)         # the simulated CA has issued by the first poll
            return order

        connector.submit = submit_then_advance
        request = core_issue.build_request(dict(name='bench-dv', profile='Sectigo DV SSL',
                                                issuer_options={}), csr_pem)
        request.replaces = current
        mark = max([e['seq'] for e in sim.audit()] or [0])
        result = core_issue.issue(Registry([sectigo.PLUGIN]), connector, request, current_pem=current,
                                  store_path=store, wait_timeout=3600, sleep=sim.advance,
                                  policy=dict(renew_before_days=30))
        connector.close()
        entries = sim.audit(since=mark)
        enrolls = [e['seq'] for e in entries if e['method'] == 'POST' and e.get('route') == '/ssl/v1/enroll']
        counted = [e for e in entries if enrolls and e['seq'] >= enrolls[0]]
        return result, len(counted), len(entries)

    first, calls, dummy = run()
    if first.get('status') != 'issued':
        raise SystemExit('bench: the DV order did not issue: %r' % first.get('status'))
    second, dummy, noop = run(first['certificate'])
    if second.get('status') != 'valid' or second.get('changed'):
        raise SystemExit('bench: the re-run was not a no-op: %r' % second)
    return calls, noop


# ----------------------------------------------------------------------------- main

def main():
    from ansible_collections.certforge.pki.tests.simulators.sectigo_scm import start_simulator
    workdir = tempfile.mkdtemp(prefix='certforge-sectigo-bench-')
    t0 = time.monotonic()
    with start_simulator(seed=RECORDS, workdir=os.path.join(workdir, 'sim')) as sim:
        dv, noop = dv_calls(sim, workdir)
        print('CALLS sectigo_dv_issue %d' % dv, flush=True)
        print('CALLS sectigo_noop %d' % noop, flush=True)

        options = dict(base_url=sim.base_url, customer_uri=sim.customer_uri, login=sim.login,
                       password=sim.password, ca_bundle=sim.ca_bundle)
        total = RECORDS + 1           # the seeded records and the bench's DV order
        sim.fault('delay', path='*', times=None, delay=LATENCY)
        state = os.path.join(workdir, 'sync-state.json')
        full = run_child(dict(options=options, max_workers=8, state_file=state))
        if full['total'] != total or full['ids'] != total or full['incremental']:
            raise SystemExit('bench: the full sync returned %r, expected %d records' % (full, total))
        log('full sync of %d records: %.2f s, %d requests, peak RSS %.1f MB'
            % (total, full['elapsed'], full['calls'], full['rss_mb']))

        seq = run_child(dict(options=options, max_workers=1, limit=SEQ_RECORDS))
        seq_full = seq['elapsed'] * float(total) / seq['total']
        log('one at a time: %d records in %.2f s -> %.2f s for %d' % (seq['total'], seq['elapsed'], seq_full, total))

        issued = [r['sslId'] for r in sim.tenant.orders(include_seeded=True) if r.get('status') == 'Issued']
        changed = random.Random(7).sample(issued, int(RECORDS * CHANGED))
        for ssl_id in changed:
            sim.set_status(ssl_id, 'Revoked')
        resync = run_child(dict(options=options, max_workers=8, state_file=state))
        if not resync['incremental'] or resync['fetched'] != len(changed) or resync['total'] != total:
            raise SystemExit('bench: the re-sync fetched %d records, expected %d (%r)'
                             % (resync['fetched'], len(changed), resync))
        log('re-sync with %d changed: %.2f s, %d requests' % (len(changed), resync['elapsed'], resync['calls']))

        print('RATIO sectigo_sync_vs_sequential %.3f' % (full['elapsed'] / seq_full), flush=True)
        print('RATIO sectigo_resync_vs_full %.3f' % (resync['elapsed'] / full['elapsed']), flush=True)
        print('RSS_MB sectigo_sync %.0f' % full['rss_mb'], flush=True)
    shutil.rmtree(workdir, ignore_errors=True)
    log('sectigo bench took %.1f s' % (time.monotonic() - t0))


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--child':
        child(json.loads(sys.argv[2]))
    else:
        main()
