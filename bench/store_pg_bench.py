# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cost of the shared (PostgreSQL) order store on the no-op path.

    RATIO noop_pg_vs_file <x>     no-op re-run of the certificate role (local CA, BENCH_PG_CERTS
                                  certificates, default 50) with CERTFORGE_ORDER_STORE pointing at
                                  PostgreSQL vs at a directory; median of BENCH_PG_REPEAT (default
                                  3) alternating runs each.  Goal: <= 1.10.
    CALLS noop_pg_connections <n> connections the no-op runs opened to the store (goal: 0, read
                                  from the server's connection log)

The store lives in a throw-away cluster (tests/integration/pg_server.py) stopped by PID at the
end.  The first run issues every certificate through the PostgreSQL store.
"""

import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, 'build')
WORK = os.path.join(BUILD, 'bench', 'store-pg')
OUR_BIN = os.path.join(ROOT, '.venv', 'bin')
N = int(os.environ.get('BENCH_PG_CERTS', '50'))
REPEAT = int(os.environ.get('BENCH_PG_REPEAT', '3'))


def _bench_run():
    """bench/run.py, whose role play this bench runs too (one definition of the play)."""
    spec = importlib.util.spec_from_file_location('certforge_bench_run', os.path.join(ROOT, 'bench', 'run.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PLAY = _bench_run().OUR_PLAY


def log(msg):
    print(msg, flush=True)


def load_pg_server():
    path = os.path.join(ROOT, 'tests', 'integration', 'pg_server.py')
    spec = importlib.util.spec_from_file_location('certforge_pg_server', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(tag, store, outdir, expect_changed):
    play = os.path.join(WORK, 'play.yml')
    inventory = os.path.join(WORK, 'inventory.ini')
    env = dict(os.environ)
    env.update({
        'PATH': OUR_BIN + os.pathsep + env.get('PATH', ''),
        'ANSIBLE_LOCAL_TEMP': os.path.join(WORK, 'tmp', 'local'),
        'ANSIBLE_REMOTE_TMP': os.path.join(WORK, 'tmp', 'remote'),
        'ANSIBLE_LOCALHOST_WARNING': 'False', 'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_COLLECTIONS_PATH': os.path.join(BUILD, 'collections'),
        'CERTFORGE_ORDER_STORE': store,
    })
    args = [os.path.join(OUR_BIN, 'ansible-playbook'), '-i', inventory, play,
            '-e', 'outdir=%s' % outdir, '-e', 'n=%d' % N]
    start = time.monotonic()
    proc = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
    elapsed = time.monotonic() - start
    recap = re.search(r'^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)',
                      proc.stdout, re.M)
    if proc.returncode != 0 or recap is None or recap.group(4) != '0' or not expect_changed(int(recap.group(2))):
        sys.stdout.write(proc.stdout[-6000:])
        raise SystemExit('bench: %s failed (rc=%s)' % (tag, proc.returncode))
    log('bench: %-28s %7.2f s  (changed=%s)' % (tag, elapsed, recap.group(2)))
    return elapsed


def store_connections(server):
    """Connections the server accepted from the collection (application_name certforge.pki)."""
    return len(re.findall(r'connection authorized: .*application_name=certforge\.pki', server.log_tail(10 ** 8)))


def main():
    pg_server = load_pg_server()
    ok, why = pg_server.available()
    if not ok:
        raise SystemExit('bench: store_pg needs PostgreSQL: %s' % why)
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    with open(os.path.join(WORK, 'play.yml'), 'w') as handle:
        handle.write(PLAY)
    with open(os.path.join(WORK, 'inventory.ini'), 'w') as handle:
        handle.write('[all]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n'
                     % os.path.join(OUR_BIN, 'python'))
    server = pg_server.PostgresServer(settings={'log_connections': 'on'})
    try:
        server.start()
        url = server.create_database('bench')
        file_store = os.path.join(WORK, 'orders')
        outdir = os.path.join(WORK, 'out')
        os.makedirs(outdir)
        log('bench: store_pg: %d certificates, median of %d alternating no-op runs per store' % (N, REPEAT))
        run('first (PostgreSQL store)', url, outdir, lambda c: c >= 3)
        issued = store_connections(server)
        if issued < 1:
            raise SystemExit('bench: the first run never reached the PostgreSQL store')
        t_file, t_pg = [], []
        for dummy in range(REPEAT):
            t_file.append(run('no-op, file store', file_store, outdir, lambda c: c == 0))
            t_pg.append(run('no-op, PostgreSQL store', url, outdir, lambda c: c == 0))
        noop_connections = store_connections(server) - issued
    finally:
        server.stop()
    m_file, m_pg = statistics.median(t_file), statistics.median(t_pg)
    log('bench: no-op per certificate: file store %.4f s, PostgreSQL store %.4f s' % (m_file / N, m_pg / N))
    print('RATIO noop_pg_vs_file %.3f' % (m_pg / m_file), flush=True)
    print('CALLS noop_pg_connections %d' % noop_connections, flush=True)


if __name__ == '__main__':
    main()
