"""A real nginx for integration tests, run by hand on 127.0.0.1.

Everything nginx touches (config, pid file, logs, temp paths, certificates) lives under a pytest
tmp directory; ``-e`` keeps it away from /var/log/nginx.  The master runs in the foreground
(``daemon off``) as our child, so it is stopped by PID in a finalizer even when a test fails.
Waiting is always polling with a deadline.

Use the ``make_nginx`` fixture (exported by conftest.py)::

    def test_x(make_nginx, test_ca):
        server = make_nginx('www.test')            # one TLS server block per name, SNI-routed
        server.served_serial('www.test')           # serial of the leaf nginx serves for that name
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

NGINX = shutil.which('nginx') or ('/usr/sbin/nginx' if os.path.exists('/usr/sbin/nginx') else None)

_CONFIG = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log {root}/logs/access.log;
    client_body_temp_path {root}/tmp/client_body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
{servers}}}
"""

_SERVER = """\
    server {{
        listen 127.0.0.1:{port} ssl{default};
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ return 200 "{name}\\n"; }}
    }}
"""


def poll(condition, timeout, what, interval=0.02):
    """Call ``condition()`` until it returns something truthy or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %ss waiting for %s' % (timeout, what))
        time.sleep(interval)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def served_certificate(port, server_name, timeout=5.0):
    """DER of the leaf served on 127.0.0.1:port for SNI ``server_name`` (no verification)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=server_name) as tls:
            return tls.getpeercert(binary_form=True)


def _proc_stat(pid):
    try:
        with open('/proc/%d/stat' % pid) as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rindex(')') + 2:].split()
    return {'state': fields[0], 'ppid': int(fields[1])}


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return handle.read().replace(b'\x00', b' ').decode('utf-8', 'replace').strip()
    except OSError:
        return ''


class NginxServer:
    """One nginx master with one TLS server block per site name on one port (SNI routing)."""

    def __init__(self, root):
        self.root = str(root)
        self.conf = os.path.join(self.root, 'nginx.conf')
        self.error_log = os.path.join(self.root, 'logs', 'error.log')
        self.pid_file = os.path.join(self.root, 'nginx.pid')
        self.cert_dir = os.path.join(self.root, 'certs')
        for sub in ('logs', 'tmp', 'certs'):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        self.port = None
        self.sites = {}          # name -> {'cert': path, 'key': path}
        self.process = None

    # -- configuration -------------------------------------------------------------------------

    def add_site(self, name, cert_pem, key_pem):
        """Write a site's certificate (0644) and key (0600) and remember it for the config."""
        cert = os.path.join(self.cert_dir, name + '.crt')
        key = os.path.join(self.cert_dir, name + '.key')
        with open(cert, 'w') as handle:
            handle.write(cert_pem)
        os.chmod(cert, 0o644)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write(key_pem)
        self.sites[name] = {'cert': cert, 'key': key}
        return self.sites[name]

    def write_config(self):
        servers = ''.join(
            _SERVER.format(port=self.port, name=name, cert=paths['cert'], key=paths['key'],
                           default=' default_server' if index == 0 else '')
            for index, (name, paths) in enumerate(self.sites.items()))
        with open(self.conf, 'w') as handle:
            handle.write(_CONFIG.format(root=self.root, servers=servers))

    def argv(self, *args):
        """An nginx command line for THIS instance: [nginx, *args, -c, conf, -p, prefix, -e, log]."""
        return [NGINX] + list(args) + ['-c', self.conf, '-p', self.root + '/', '-e', self.error_log]

    @property
    def validate_command(self):
        return self.argv('-t')

    @property
    def reload_command(self):
        return self.argv('-s', 'reload')

    # -- process -------------------------------------------------------------------------------

    def start(self, timeout=10.0):
        last_error = None
        for dummy in range(3):          # another process may grab the free port in between
            self.port = free_port()
            self.write_config()
            self.process = subprocess.Popen(self.argv('-g', 'daemon off;'), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                poll(lambda: self._listening() or self.process.poll() is not None, timeout,
                     'nginx to listen on 127.0.0.1:%s' % self.port)
            except AssertionError as exc:
                last_error = exc
                self.stop()
                continue
            if self.process.poll() is None:
                self.stable_workers()
                return self
            last_error = AssertionError('nginx exited with %s: %s' % (self.process.returncode, self.log_tail()))
            self.process = None
        raise last_error

    def _listening(self):
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout=10.0):
        """Stop the master by PID (fast shutdown), escalate to SIGKILL, reap workers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        workers = self.worker_pids(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        for pid in workers:                    # orphans only if the master was SIGKILLed
            if _proc_stat(pid) is not None and 'nginx' in _cmdline(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    @property
    def master_pid(self):
        return self.process.pid if self.process else None

    def worker_pids(self, master=None):
        master = master or self.master_pid
        pids = []
        for entry in os.listdir('/proc'):
            if entry.isdigit():
                info = _proc_stat(int(entry))
                if info and info['ppid'] == master and info['state'] != 'Z':
                    pids.append(int(entry))
        return sorted(pids)

    def stable_workers(self, timeout=10.0):
        """Worker PIDs once exactly the configured worker runs and no old one is shutting down
        (a reload replaces the workers; the old ones finish in the background)."""
        def settled():
            pids = self.worker_pids()
            if len(pids) == 1 and all('shutting down' not in _cmdline(p) for p in pids):
                return pids
            return None
        return poll(settled, timeout, 'nginx workers to settle')

    # -- observations --------------------------------------------------------------------------

    def served_serial(self, server_name, timeout=5.0):
        from cryptography import x509
        return x509.load_der_x509_certificate(served_certificate(self.port, server_name, timeout)).serial_number

    def wait_for_serial(self, server_name, serial, timeout=10.0):
        """Poll until nginx serves ``serial`` for ``server_name`` (a reload lands asynchronously)."""
        return poll(lambda: self._serves(server_name, serial), timeout,
                    'nginx to serve serial %X for %s' % (serial, server_name))

    def _serves(self, server_name, serial):
        try:
            return self.served_serial(server_name) == serial
        except OSError:
            return False

    def reload_count(self):
        """How many reloads (SIGHUP) the master has logged."""
        try:
            with open(self.error_log) as handle:
                return sum(1 for line in handle if 'signal 1 (SIGHUP) received' in line)
        except OSError:
            return 0

    def log_tail(self, lines=20):
        try:
            with open(self.error_log) as handle:
                return ''.join(handle.readlines()[-lines:])
        except OSError:
            return '(no error log)'


@pytest.fixture
def make_nginx(tmp_path_factory, test_ca, request):
    """Factory: ``make_nginx('a.test', 'b.test')`` starts nginx with one SNI server block per name,
    each with a fresh key and a first certificate from ``test_ca``.  Returns the ``NginxServer``
    with ``server.issued[name]`` (the first ``Issued``).  Stopped by PID at teardown."""
    if NGINX is None:
        pytest.skip('nginx is not installed')
    servers = []

    def stop_all():
        for server in servers:
            server.stop()

    request.addfinalizer(stop_all)

    def factory(*names):
        server = NginxServer(tmp_path_factory.mktemp('nginx'))
        server.issued = {}
        for name in names or ('www.test',):
            issued = test_ca.issue(name)
            server.issued[name] = issued
            server.add_site(name, issued.cert_pem, issued.key_pem)
        servers.append(server)
        return server.start()

    return factory
