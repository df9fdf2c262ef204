# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deploy targets: HAProxy's runtime API against master-worker reloads, and the cost of a no-op
run of the certificate role on a host with every target, each figure measured in the same run.

Prints, each on its own line:

    HANDSHAKES haproxy runtime_api swaps=50 ok=<n> failed=<n>
    HANDSHAKES haproxy reload swaps=50 ok=<n> failed=<n>
                                             a client doing TLS handshakes in a loop (a thread)
                                             during each series of swaps
    RATIO deploy_haproxy_runtime_vs_reload <x>
                                             50 certificate swaps through the haproxy target in
                                             mode runtime_api (set/commit ssl cert on the admin
                                             socket) vs 50 in mode reload (haproxy -c, then a
                                             reload on the master CLI), the same real HAProxy
                                             (master-worker) on 127.0.0.1; every swap waits until
                                             the new serial is served (verify)
    RATIO deploy_noop_per_target_vs_stat <x> a no-op ansible-playbook run of the certificate role
                                             with one certificate and certificate_targets holding
                                             every target (files, nginx, haproxy, apache, caddy,
                                             postfix, dovecot, pkcs12, java_keystore) vs one
                                             ansible.builtin.stat per target, same inventory;
                                             goal <= 1.3

The role runs deploy against targets whose config test and reload commands are ``true``: the
servers are not started for it, since the measured no-op run never reaches a target (nothing is
due, so nothing is deployed); the first run, which deploys to all nine, is checked (changed
files in every target's directory) but not timed.

Run by bench/run.py, or alone: ``python bench/targets_bench.py``.  Lower is better.
"""

import importlib.util
import os
import shutil
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
if not os.environ.get('CERTFORGE_TARGETS_BENCH_REEXEC') and os.path.exists(OUR_PYTHON) \
        and os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, '.venv')):
    os.environ['CERTFORGE_TARGETS_BENCH_REEXEC'] = '1'
    os.execv(OUR_PYTHON, [OUR_PYTHON] + sys.argv)

sys.path.insert(0, os.path.join(ROOT, 'build', 'collections'))
INTEGRATION = os.path.join(ROOT, 'tests', 'integration')
WORK = os.path.join(ROOT, 'build', 'bench', 'targets')
OUR_BIN = os.path.join(ROOT, '.venv', 'bin')
SWAPS = int(os.environ.get('BENCH_HAPROXY_SWAPS', '50'))
REPEAT = int(os.environ.get('BENCH_REPEAT', '1'))
TARGETS = ('files', 'nginx', 'haproxy', 'apache', 'caddy', 'postfix', 'dovecot', 'pkcs12', 'java_keystore')


def _load(key, path):
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def log(msg):
    print('bench: ' + msg, flush=True)


# ---------------------------------------------------------------------------------------------
# haproxy: runtime API vs master-worker reload
# ---------------------------------------------------------------------------------------------

def haproxy_bench():
    conftest = _load('certforge_integration_conftest', os.path.join(INTEGRATION, 'conftest.py'))
    # the test module loads target_servers under the same key, so both share one copy
    servers = _load('certforge_integration_target_servers', os.path.join(INTEGRATION, 'target_servers.py'))
    hap_tests = _load('certforge_bench_test_deploy_haproxy', os.path.join(INTEGRATION, 'test_deploy_haproxy.py'))
    if not servers.which('haproxy'):
        log('haproxy is not installed (make deps): deploy_haproxy_runtime_vs_reload skipped')
        return
    ca = conftest.TestCA()
    first = ca.issue('hap.test')
    root = os.path.join(WORK, 'haproxy')
    shutil.rmtree(root, ignore_errors=True)
    server = servers.Haproxy(root, first)
    server.start()
    try:
        certs = [ca.issue('hap.test', key_pem=first.key_pem) for dummy in range(2)]
        modes = (
            ('runtime_api', {'stats_socket': server.stats_socket}),
            ('reload', {'mode': 'reload', 'master_socket': server.master_socket, 'config': server.config,
                        'validate_command': [servers.which('haproxy'), '-c', '-f', server.config]}),
        )
        times = {}
        for mode, options in modes:
            reloads = hap_tests.master_reloads(server)
            with hap_tests.Handshakes(server.port) as loop:
                start = time.monotonic()
                served = hap_tests.swaps(server, certs, SWAPS, **options)
                times[mode] = time.monotonic() - start
            expected = [certs[i % 2].serial_hex for i in range(SWAPS)]
            if served != expected:
                raise SystemExit('bench: haproxy %s: served serials %r, expected %r' % (mode, served[:4], expected[:4]))
            done = hap_tests.master_reloads(server) - reloads
            if done != (SWAPS if mode == 'reload' else 0):
                raise SystemExit('bench: haproxy %s: %d master reloads for %d swaps' % (mode, done, SWAPS))
            log('haproxy %-11s %d swaps %.2f s (%.1f ms each), %d reloads'
                % (mode, SWAPS, times[mode], 1000 * times[mode] / SWAPS, done))
            if loop.errors:
                log('haproxy %s: first handshake errors: %s' % (mode, '; '.join(loop.errors[:3])))
            print('HANDSHAKES haproxy %s swaps=%d ok=%d failed=%d' % (mode, SWAPS, loop.ok, loop.failed), flush=True)
        print('RATIO deploy_haproxy_runtime_vs_reload %.3f' % (times['runtime_api'] / times['reload']), flush=True)
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# the certificate role: no-op run with every target vs one stat per target
# ---------------------------------------------------------------------------------------------

def target_entries(out):
    """certificate_targets for every target, each in a directory of its own under ``out``."""
    def d(name):
        path = os.path.join(out, 'targets', name)
        os.makedirs(path, exist_ok=True)
        return path
    harmless = {'validate_command': ['true'], 'reload_command': ['true']}
    entries = [
        # no dir: the role's own paths (certificate_dir), where it reads the certificate in use
        {'target': 'files'},
        {'target': 'nginx', 'target_options': harmless, 'dir': d('nginx')},
        {'target': 'haproxy', 'target_options': dict(harmless, mode='reload'),
         'certificate_options': {'pem_path': os.path.join(d('haproxy'), 'site.pem')}},
        {'target': 'apache', 'target_options': harmless, 'dir': d('apache')},
        {'target': 'caddy', 'target_options': dict(harmless, mode='file'), 'dir': d('caddy')},
        {'target': 'postfix', 'target_options': harmless, 'dir': d('postfix')},
        {'target': 'dovecot', 'target_options': harmless, 'dir': d('dovecot')},
        {'target': 'pkcs12', 'certificate_options': {'pkcs12_path': os.path.join(d('pkcs12'), 'site.p12'),
                                                     'password': 'bench-p12-pass'}},
        {'target': 'java_keystore',
         'certificate_options': {'keystore_path': os.path.join(d('java_keystore'), 'site.p12'),
                                 'store_password': 'bench-store-pass'}},
    ]
    assert tuple(e['target'] for e in entries) == TARGETS
    return entries


def deployed_paths(out):
    """One file per target that the first run must have written (the stat baseline stats them)."""
    paths = []
    for name in TARGETS:
        if name == 'files':
            paths.append(os.path.join(out, 'certs', 'site.crt'))
            continue
        directory = os.path.join(out, 'targets', name)
        special = {'haproxy': 'site.pem', 'pkcs12': 'site.p12', 'java_keystore': 'site.p12'}
        paths.append(os.path.join(directory, special.get(name, 'site.crt')))
    return paths


def role_play(out, with_ca):
    import json
    role_vars = {
        'local_ca_dir': os.path.join(out, 'ca'), 'local_ca_intermediate': True,
        'certificate_dir': os.path.join(out, 'certs'),
        'certificate_issuer_options': {'ca_path': os.path.join(out, 'ca', 'issuing')},
        'certificate_list': [{'name': 'site', 'common_name': 'site.bench.test'}],
        'certificate_targets': target_entries(out),
    }
    tasks = []
    if with_ca:
        tasks.append({'name': 'Local CA', 'ansible.builtin.include_role': {'name': 'certforge.pki.local_ca'}})
    tasks.append({'name': 'Certificate to every target',
                  'ansible.builtin.include_role': {'name': 'certforge.pki.certificate'}})
    play = [{'name': 'certforge.pki - one certificate, every target', 'hosts': 'all', 'gather_facts': False,
             'vars': dict(role_vars, certificate_owner="{{ lookup('ansible.builtin.pipe', 'id -un') }}",
                          certificate_group="{{ lookup('ansible.builtin.pipe', 'id -gn') }}"),
             'tasks': tasks}]
    return json.dumps(play, indent=1)


def stat_play(paths):
    import json
    return json.dumps([{'name': 'Baseline - one stat per target', 'hosts': 'all', 'gather_facts': False,
                        'tasks': [{'name': 'Stat the file of each target',
                                   'ansible.builtin.stat': {'path': '{{ item }}'}, 'loop': paths}]}], indent=1)


def noop_bench():
    bench_run = _load('certforge_bench_run', os.path.join(ROOT, 'bench', 'run.py'))
    bench_run.WORK = WORK       # playbooks, inventories and order stores of this bench under WORK
    out = os.path.join(WORK, 'role')
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    bench_run.run_play(OUR_BIN, 'targets role first', role_play(out, True), {}, lambda c: c >= 3)
    paths = deployed_paths(out)
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise SystemExit('bench: the first role run did not write %s' % ', '.join(missing))

    def noop():
        return bench_run.run_play(OUR_BIN, 'targets role no-op', role_play(out, False), {}, lambda c: c == 0)

    def stats():
        return bench_run.run_play(OUR_BIN, 'targets stat loop', stat_play(paths), {})

    t_noop = statistics.median(noop() for dummy in range(REPEAT))
    t_stat = statistics.median(stats() for dummy in range(REPEAT))
    log('no-op role run with %d targets %.2f s, %d stats %.2f s' % (len(TARGETS), t_noop, len(TARGETS), t_stat))
    print('RATIO deploy_noop_per_target_vs_stat %.3f' % (t_noop / t_stat), flush=True)


def main():
    os.makedirs(WORK, exist_ok=True)
    only = set(filter(None, os.environ.get('BENCH_TARGETS_ONLY', 'haproxy,noop').split(',')))
    if 'haproxy' in only:
        haproxy_bench()
    if 'noop' in only:
        noop_bench()


if __name__ == '__main__':
    main()
