# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tls_scan: 500 loopback TLS endpoints scanned by the module vs ``openssl s_client`` one after
another, both in the same run against the same endpoints.

Prints:

    RATIO tls_scan_vs_sequential <x>     one ansible-playbook run (local connection) of
                                         certforge.pki.tls_scan over the 500 endpoints
                                         (concurrency 50), whole playbook wall time, vs
                                         ``openssl s_client -connect 127.0.0.1:<port> </dev/null``
                                         for each of them in turn; goal <= 0.1

The endpoints are one real nginx on 127.0.0.1 with 500 ``listen 127.0.0.1:<port> ssl;`` lines in
one server block, serving a leaf and its intermediate from a test CA (root -> intermediate ->
leaf).  The scan task fails unless all 500 handshakes succeeded with a trusted two-certificate
chain and no problem (``failed_when``, no extra task); the baseline counts the ``s_client`` runs that exited 0.

Run by bench/run.py, or alone: ``python bench/tls_scan_bench.py``.  Lower is better.
BENCH_TLS_SCAN_ENDPOINTS changes the number of endpoints.
"""

import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUR_PYTHON = os.path.join(ROOT, '.venv', 'bin', 'python')
if not os.environ.get('CERTFORGE_TLS_SCAN_BENCH_REEXEC') and os.path.exists(OUR_PYTHON) \
        and os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(ROOT, '.venv')):
    os.environ['CERTFORGE_TLS_SCAN_BENCH_REEXEC'] = '1'
    os.execv(OUR_PYTHON, [OUR_PYTHON] + sys.argv)

INTEGRATION = os.path.join(ROOT, 'tests', 'integration')
WORK = os.path.join(ROOT, 'build', 'bench', 'tls_scan')
OUR_BIN = os.path.join(ROOT, '.venv', 'bin')
N = int(os.environ.get('BENCH_TLS_SCAN_ENDPOINTS', '500'))
REPEAT = int(os.environ.get('BENCH_REPEAT', '1'))
NGINX = shutil.which('nginx') or ('/usr/sbin/nginx' if os.path.exists('/usr/sbin/nginx') else None)
OPENSSL = shutil.which('openssl')

NGINX_CONF = """\
worker_processes 1;
worker_rlimit_nofile {files};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections {conns}; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    server {{
{listens}
        server_name bench.test;
        ssl_certificate {root}/site.crt;
        ssl_certificate_key {root}/site.key;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


def _load(key, path):
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def log(msg):
    print('bench: ' + msg, flush=True)


def free_ports(count):
    """``count`` distinct free ports (all held open at once while choosing, then released)."""
    socks = []
    try:
        for dummy in range(count):
            sock = socket.socket()
            sock.bind(('127.0.0.1', 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def listening(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=0.5):
            return True
    except OSError:
        return False


def poll(condition, timeout, what):
    deadline = time.monotonic() + timeout
    interval = 0.02
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise SystemExit('bench: timed out after %ss waiting for %s' % (timeout, what))
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)


class Nginx:
    def __init__(self, root, issued):
        self.root = root
        os.makedirs(os.path.join(root, 'tmp'), exist_ok=True)
        with open(os.path.join(root, 'site.crt'), 'w') as handle:
            handle.write(issued.cert_pem + issued.chain_pem)
        fd = os.open(os.path.join(root, 'site.key'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write(issued.key_pem)
        self.process = None
        self.ports = []

    def start(self):
        for dummy in range(3):         # another process may take a chosen port in between
            self.ports = free_ports(N)
            listens = '\n'.join('        listen 127.0.0.1:%d ssl;' % p for p in self.ports)
            conf = os.path.join(self.root, 'nginx.conf')
            with open(conf, 'w') as handle:
                handle.write(NGINX_CONF.format(root=self.root, listens=listens, conns=N + 1024, files=2 * N + 4096))
            self.process = subprocess.Popen([NGINX, '-g', 'daemon off;', '-c', conf, '-p', self.root + '/',
                                             '-e', os.path.join(self.root, 'error.log')],
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True)
            poll(lambda: listening(self.ports[-1]) or self.process.poll() is not None, 30,
                 'nginx on %d ports' % N)
            if self.process.poll() is None:
                return self
            self.process = None
        raise SystemExit('bench: nginx did not start: %s' % self.log_tail())

    def log_tail(self):
        try:
            with open(os.path.join(self.root, 'error.log')) as handle:
                return handle.read()[-2000:]
        except OSError:
            return ''

    def stop(self):
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def scan_play(ports, ca_file):
    targets = ['127.0.0.1:%d' % p for p in ports]
    return json.dumps([{
        'name': 'tls_scan over %d endpoints' % len(ports), 'hosts': 'all', 'gather_facts': False,
        'tasks': [
            {'name': 'Scan', 'certforge.pki.tls_scan': {
                'targets': targets, 'server_names': ['bench.test'], 'allow': ['127.0.0.0/8'],
                'ca_path': ca_file, 'concurrency': 50, 'timeout': 10, 'max_targets': len(ports)},
             'register': 'scan',
             # the check of the result, without a task of its own
             'failed_when': ('scan.failed | default(false) or scan.summary.handshakes != %d'
                             ' or scan.summary.with_problems != 0'
                             " or scan.endpoints | map(attribute='chain') | map('length') | min != 2" % len(ports))},
        ]}], indent=1)


def sequential(ports):
    start = time.monotonic()
    ok = 0
    for port in ports:
        proc = subprocess.run([OPENSSL, 's_client', '-connect', '127.0.0.1:%d' % port, '-servername', 'bench.test'],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False)
        ok += proc.returncode == 0
    elapsed = time.monotonic() - start
    if ok != len(ports):
        raise SystemExit('bench: openssl s_client succeeded on %d of %d endpoints' % (ok, len(ports)))
    return elapsed


def main():
    if NGINX is None or OPENSSL is None:
        log('nginx or openssl is not installed (make deps): tls_scan_vs_sequential skipped')
        return
    sys.path.insert(0, os.path.join(ROOT, 'build', 'collections'))
    conftest = _load('certforge_integration_conftest', os.path.join(INTEGRATION, 'conftest.py'))
    bench_run = _load('certforge_bench_run', os.path.join(ROOT, 'bench', 'run.py'))
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    bench_run.WORK = WORK
    ca = conftest.TestCA()
    ca_file = os.path.join(WORK, 'root.pem')
    with open(ca_file, 'w') as handle:
        handle.write(ca.root_pem)
    server = Nginx(os.path.join(WORK, 'nginx'), ca.issue('bench.test', days=90)).start()
    try:
        play = scan_play(server.ports, ca_file)
        t_scan = statistics.median(bench_run.run_play(OUR_BIN, 'tls_scan %d endpoints' % N, play, {},
                                                      lambda c: c == 0) for dummy in range(REPEAT))
        t_seq = statistics.median(sequential(server.ports) for dummy in range(REPEAT))
    finally:
        server.stop()
    log('%d endpoints: tls_scan (ansible-playbook, concurrency 50) %.2f s, openssl s_client one after another '
        '%.2f s (%.1f ms each)' % (N, t_scan, t_seq, 1000 * t_seq / N))
    print('RATIO tls_scan_vs_sequential %.3f' % (t_scan / t_seq), flush=True)


if __name__ == '__main__':
    main()
