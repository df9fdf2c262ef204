"""A throw-away PostgreSQL cluster on 127.0.0.1 for tests (Debian's ``postgresql`` package).

    from pg_server import PostgresServer        # or load this file by path (see below)
    server = PostgresServer().start()            # initdb + pg_ctl start, ~1 s
    try:
        url = server.create_database('orders')   # postgresql://postgres:<pw>@127.0.0.1:<port>/orders
        ...
    finally:
        server.stop()                            # by the postmaster's PID, bounded, always

- ``initdb`` refuses root, so as root the cluster runs as the ``postgres`` OS user (``runuser``);
  as another user it runs as that user.  The work directory is made world-traversable
  (0755) under the system temp dir, because pytest's own temp dirs are 0700 root.
- TCP only on 127.0.0.1 on a free port; the Unix socket lives in the work directory;
  ``fsync=off`` (throw-away speed).  Password auth (scram-sha-256) for TCP.
- ``stop()`` signals the postmaster PID read from ``postmaster.pid`` (SIGINT = fast shutdown),
  polls with a deadline, escalates to SIGQUIT and SIGKILL, and removes the work directory.
  An ``atexit`` hook stops a server a failed test run left behind, and a watchdog process stops
  it (by PID) when the process that started it dies without stopping it (a killed test run).
- Binaries: ``$PG_BIN``, else the newest ``/usr/lib/postgresql/*/bin``, else ``pg_config``.
  :func:`available` says whether they are there (tests skip with that reason otherwise).

The pytest fixture ``pg_server`` (session scope) is defined in ``tests/integration/conftest.py``
and ``tests/unit/plugins/module_utils/core/conftest.py``; other suites load this file with::

    spec = importlib.util.spec_from_file_location('pg_server', '<repo>/tests/integration/pg_server.py')
    pg_server = importlib.util.module_from_spec(spec); spec.loader.exec_module(pg_server)
    pg_fixture = pg_server.pytest_fixture()      # a session-scoped fixture named by the variable
"""

import atexit
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

START_TIMEOUT = 60
STOP_TIMEOUT = 30

# Watchdog: a separate process that stops the postmaster by PID (and removes the work dir) when
# the process that started the cluster dies without stopping it (killed test run, timeout).
_WATCHDOG = r"""
import os, shutil, signal, sys, time
owner, pid, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def alive(p):
    try:
        os.kill(p, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open('/proc/%d/stat' % p) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False
while alive(owner) and alive(pid):
    time.sleep(0.5)
if alive(pid):
    for sig, secs in ((signal.SIGINT, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        end = time.monotonic() + secs
        while alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        if not alive(pid):
            break
shutil.rmtree(work, ignore_errors=True)
"""


def find_bindir():
    """Directory holding initdb / pg_ctl / postgres, or None."""
    env = os.environ.get('PG_BIN')
    if env and os.path.exists(os.path.join(env, 'initdb')):
        return env

    def version(path):
        try:
            return int(path.split('/')[-3])
        except ValueError:
            return 0

    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/initdb'), key=version)
    if found:
        return os.path.dirname(found[-1])
    pg_config = shutil.which('pg_config')
    if pg_config:
        out = subprocess.run([pg_config, '--bindir'], capture_output=True, text=True, check=False)
        bindir = out.stdout.strip()
        if out.returncode == 0 and os.path.exists(os.path.join(bindir, 'initdb')):
            return bindir
    initdb = shutil.which('initdb')
    return os.path.dirname(initdb) if initdb else None


def available():
    """(True, '') when a cluster can be started here, else (False, why)."""
    bindir = find_bindir()
    if not bindir:
        return False, ('PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian\'s '
                       '"postgresql" package (make deps does it as root) or set PG_BIN')
    if os.geteuid() == 0:
        try:
            pwd.getpwnam('postgres')
        except KeyError:
            return False, 'running as root but there is no "postgres" OS user to run initdb as'
    return True, ''


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


class PostgresServer:
    """One cluster.  ``url`` is the superuser URL of the ``postgres`` database (with the
    password); ``url_for(db, password=False)`` and ``create_database(name)`` give others."""

    user = 'postgres'

    def __init__(self, base_dir=None, port=None, bindir=None, settings=None):
        self.base_dir = base_dir
        self.port = port
        self.bindir = bindir or find_bindir()
        self.settings = dict(settings or {})
        self.password = 'pw-' + secrets.token_hex(12)
        self.work = self.data = self.run_dir = self.log = None
        self.pid = None
        self._os_user = None
        self._watchdog = None

    # -- paths and commands --------------------------------------------------------------

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _as_owner(self, argv):
        if self._os_user:
            return ['runuser', '-u', self._os_user, '--'] + argv
        return argv

    def _run(self, argv, timeout=START_TIMEOUT):
        proc = subprocess.run(self._as_owner(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            raise RuntimeError('%s failed (rc=%s):\n%s\n%s\n%s' % (
                ' '.join(argv[:2]), proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:],
                self.log_tail()))
        return proc

    def log_tail(self, chars=3000):
        try:
            with open(self.log) as handle:
                return handle.read()[-chars:]
        except (OSError, TypeError):
            return ''

    # -- life cycle ----------------------------------------------------------------------

    def start(self):
        ok, why = available()
        if not ok:
            raise RuntimeError(why)
        self.work = tempfile.mkdtemp(prefix='certforge-pg-', dir=self.base_dir)
        os.chmod(self.work, 0o755)
        self.data = os.path.join(self.work, 'data')
        self.run_dir = os.path.join(self.work, 'run')
        self.log = os.path.join(self.work, 'postgres.log')
        os.mkdir(self.run_dir)
        pwfile = os.path.join(self.work, 'pwfile')
        with open(pwfile, 'w') as handle:
            handle.write(self.password + '\n')
        os.chmod(pwfile, 0o600)
        if os.geteuid() == 0:
            self._os_user = 'postgres'
            entry = pwd.getpwnam('postgres')
            for path in (self.work, self.run_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            with open(self.log, 'w'):
                pass
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
        self._run([self._bin('initdb'), '-D', self.data, '-U', self.user, '--pwfile=' + pwfile,
                   '--auth-local=peer', '--auth-host=scram-sha-256', '--no-sync', '-E', 'UTF8',
                   '--locale=C.UTF-8'])
        os.unlink(pwfile)
        atexit.register(self.stop)
        last = None
        for attempt in range(3):
            port = self.port or free_port()
            options = {'listen_addresses': '127.0.0.1', 'port': str(port),
                       'unix_socket_directories': self.run_dir, 'fsync': 'off',
                       'full_page_writes': 'off', 'synchronous_commit': 'off',
                       'max_connections': '200'}
            options.update({k: str(v) for k, v in self.settings.items()})
            opts = ' '.join('-c %s=%s' % (k, v) for k, v in options.items())
            try:
                self._run([self._bin('pg_ctl'), '-D', self.data, '-l', self.log, '-w',
                           '-t', str(START_TIMEOUT), '-o', opts, 'start'])
            except RuntimeError as exc:
                last = exc
                if self.port or 'could not bind' not in self.log_tail():
                    raise
                continue
            self.port = port
            break
        else:
            raise last
        with open(os.path.join(self.data, 'postmaster.pid')) as handle:
            self.pid = int(handle.readline().strip())
        self._watchdog = subprocess.Popen([sys.executable, '-c', _WATCHDOG, str(os.getpid()), str(self.pid),
                                           self.work], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)
        return self

    def stop(self):
        """Stop the postmaster by PID (fast, then immediate, then KILL), bounded; idempotent."""
        pid, self.pid = self.pid, None
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog.poll() is None:
            watchdog.kill()
            watchdog.wait(10)
        if pid and _alive(pid):
            for sig, secs in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + secs
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not _alive(pid):
                    break
        if self.work and os.path.isdir(self.work):
            shutil.rmtree(self.work, ignore_errors=True)
        self.work = None

    @property
    def running(self):
        return bool(self.pid) and _alive(self.pid)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- URLs and databases --------------------------------------------------------------

    def url_for(self, dbname='postgres', password=True, **params):
        auth = self.user
        if password:
            auth += ':' + urllib.parse.quote(self.password, safe='')
        url = 'postgresql://%s@127.0.0.1:%d/%s' % (auth, self.port, dbname)
        if params:
            url += '?' + urllib.parse.urlencode(params)
        return url

    @property
    def url(self):
        return self.url_for()

    def psql(self, sql, dbname='postgres'):
        """Run ``sql`` with psql over TCP; returns stdout (unaligned, tuples only)."""
        env = dict(os.environ, PGPASSWORD=self.password, PGCONNECT_TIMEOUT='10')
        proc = subprocess.run([self._bin('psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
                               '-h', '127.0.0.1', '-p', str(self.port), '-U', self.user,
                               '-d', dbname, '-c', sql],
                              capture_output=True, text=True, env=env, timeout=60,
                              stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            raise RuntimeError('psql failed: %s' % proc.stderr[-2000:])
        return proc.stdout

    def create_database(self, name=None, **params):
        """A new empty database; returns its URL (with the password, plus ``params``)."""
        name = name or 'db_' + secrets.token_hex(6)
        if not name.replace('_', '').isalnum():
            raise ValueError('plain database names only: %r' % name)
        self.psql('CREATE DATABASE "%s"' % name)
        return self.url_for(name, **params)


def pytest_fixture():
    """A session-scoped pytest fixture yielding a started :class:`PostgresServer`, stopped at
    the end even when tests fail.  Skips with the reason when PostgreSQL is not installed,
    except under CI (``CI`` set), where a missing server is a failure."""
    import pytest

    @pytest.fixture(scope='session')
    def pg_server():
        ok, why = available()
        if not ok:
            if os.environ.get('CI'):
                pytest.fail('PostgreSQL is required under CI: ' + why)
            pytest.skip(why)
        server = PostgresServer()
        try:
            server.start()
            yield server
        finally:
            server.stop()

    return pg_server
