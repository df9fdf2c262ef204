# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Chaos harness: real ``ansible-playbook`` runs killed at chosen moments, counted at the CA.

Pieces (no pytest import here, so a script can drive them too):

* ``Chaos``      -- the seeded RNG (``CHAOS_SEED`` replays a run), the profile (``bounded`` or
  ``full``), the time budget, and the table of results.
* ``Controller`` -- one ``ansible-playbook`` started in its own process group.  ``kill_group()``
  SIGKILLs that group only (ansible-core workers call ``setsid()``, so they survive it, as they
  do in production); ``kill_tree()`` freezes and SIGKILLs every descendant found in /proc.
* ``Tally``      -- per scenario and store: runs, orders per certificate, duplicates, issued
  after the rerun; one ``CHAOS ...`` line each.
* counters at the CAs: the Sectigo simulator's records, ``AcmeCountingProxy`` (a TLS reverse
  proxy in front of Pebble counting newOrder and finalize per name), the local CA's index.

Every wait polls a condition with a deadline; every process started here is stopped by PID.
"""

import base64
import contextlib
import http.client
import importlib.util
import json
import os
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _load(name, path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# the integration suite's runner pieces (callback, environment) and the ACME servers
integration = _load('certforge_integration_conftest', REPO / 'tests' / 'integration' / 'conftest.py')
servers = _load('certforge_acme_servers', REPO / 'tests' / 'integration' / 'acme' / 'servers.py')

PYTHON = integration.PYTHON
ANSIBLE_PLAYBOOK = integration.ANSIBLE_PLAYBOOK
RESULTS_CALLBACK = 'certforge_test_results'
PAUSE_CALLBACK = 'certforge_chaos_pause'


class ChaosError(Exception):
    """The harness itself could not do what a scenario asked."""


def poll(condition, timeout, interval=0.01):
    """``condition()`` until truthy or ``timeout``; returns the value or None (no exception:
    a missed kill moment is a result, not an error)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# profile, seed, budget
# ---------------------------------------------------------------------------------------------

#: runs per scenario: (bounded, full).  The full counts follow the table of issue 7.
RUNS = {
    'sectigo-group-kill': (2, 30),
    'sectigo-tree-kill': (1, 30),
    'sectigo-answer-lost': (1, 30),
    'sectigo-store-deleted': (1, 90),
    'sectigo-two-controllers': (1, 30),
    'sectigo-in-flight': (1, 30),
    'role-issue-deploy': (1, 10),
    'shared-name-hosts': (1, 1),
    'pebble-group-kill': (1, 20),
    'pebble-tree-kill': (1, 20),
    'pebble-store-deleted': (1, 20),
    'local-ca-group-kill': (1, 30),
    'local-ca-tree-kill': (1, 30),
    'local-ca-store-deleted': (1, 30),
    'local-ca-two-controllers': (1, 30),
    'storm': (1, 3),
}


class Chaos:
    """Seed, profile and results of one chaos session."""

    def __init__(self, seed=None, profile=None, budget=None):
        env_seed = os.environ.get('CHAOS_SEED')
        if seed is None:
            seed = int(env_seed) if env_seed else random.SystemRandom().randrange(1, 2 ** 31)
        self.seed = int(seed)
        self.profile = profile or os.environ.get('CHAOS_PROFILE') or 'bounded'
        if self.profile not in ('bounded', 'full'):
            raise ChaosError('CHAOS_PROFILE must be bounded or full, not %r' % self.profile)
        self.full = self.profile == 'full'
        default_budget = 5400 if self.full else 240
        budget = budget if budget is not None else os.environ.get('CHAOS_BUDGET')
        self.budget = float(default_budget if budget in (None, '') else budget)   # 0: no cap
        self.started = time.monotonic()
        self.lines = []
        self.tallies = []
        # Sectigo: DV issuance time in real seconds (the issue measured with 6 s)
        self.issue_seconds = 6 if self.full else 1
        self.fanout = {  # certificates per run where a scenario has many
            'two_controllers': 10 if self.full else 4,
            'storm_hosts': 20 if self.full else 6,
        }

    def rng(self, *parts):
        """A replayable RNG for one scenario (independent of the order tests run in)."""
        return random.Random('%d/%s' % (self.seed, '/'.join(str(p) for p in parts)))

    def runs(self, scenario):
        bounded, full = RUNS[scenario]
        override = os.environ.get('CHAOS_RUNS')
        if override:
            return int(override)
        return full if self.full else bounded

    def elapsed(self):
        return time.monotonic() - self.started

    def remaining(self):
        return self.budget - (time.monotonic() - self.started)

    def scenario_deadline(self, scenarios_left):
        """Wall-clock share of what is left of the budget for the next scenario (the first
        run of a scenario always happens; ``CHAOS_BUDGET=0`` sets no cap)."""
        if not self.budget:
            return float('inf')
        return time.monotonic() + max(10.0, self.remaining() / max(1, scenarios_left))

    def record(self, tally):
        self.tallies.append(tally)
        self.lines.append(tally.line())

    def skipped(self, scenario, store, why):
        self.lines.append('CHAOS %s store=%s skipped (%s)' % (scenario, store, why))

    def header(self):
        return ('CHAOS seed=%d profile=%s budget=%ds (replay: CHAOS_SEED=%d CHAOS_PROFILE=%s)'
                % (self.seed, self.profile, self.budget, self.seed, self.profile))


# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------

def _stat(pid):
    """(state, ppid, pgrp, start time) of ``pid`` from /proc, or None."""
    try:
        with open('/proc/%d/stat' % pid, 'r') as handle:
            data = handle.read()
    except OSError:
        return None
    rest = data[data.rindex(')') + 2:].split()       # the name may hold spaces and parentheses
    return rest[0], int(rest[1]), int(rest[2]), rest[19]


def descendants(root):
    """Live (non-zombie) descendants of the PID ``root``, found by walking /proc, as
    ``(pid, start time)`` pairs: signals check the pair, so a reused PID is never hit."""
    table = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            found = _stat(int(entry))
            if found is not None:
                table[int(entry)] = found
    children = {}
    for pid, (dummy, ppid, dummy2, dummy3) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if table[child][0] != 'Z':
                out.append((child, table[child][3]))
                stack.append(child)
    return out


def alive(proc):
    """True while the process ``(pid, start time)`` runs (not a zombie)."""
    found = _stat(proc[0])
    return found is not None and found[3] == proc[1] and found[0] not in ('Z', 'X')


def _signal(proc, signum):
    """Signal ``(pid, start time)`` only while that very process is alive (stopped counts)."""
    if alive(proc):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc[0], signum)


class Controller:
    """One ``ansible-playbook`` run (a controller), started in a new session/process group."""

    def __init__(self, home, work, playbook, inventory, env, forks=None, label='run'):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.label = label
        self.results_path = self.work / ('%s.results.json' % label)
        self.log_path = self.work / ('%s.log' % label)
        playbook_path = self.work / ('%s.playbook.yml' % label)
        playbook_path.write_text(json.dumps(playbook, indent=1))
        inventory_path = self.work / ('%s.inventory.ini' % label)
        inventory_path.write_text(inventory)
        self.command = [ANSIBLE_PLAYBOOK, '-i', str(inventory_path), str(playbook_path)]
        if forks:
            self.command += ['--forks', str(forks)]
        callbacks = '%s,%s' % (RESULTS_CALLBACK, PAUSE_CALLBACK)
        self.env = integration.ansible_env(home, dict(env, CERTFORGE_TEST_RESULTS=str(self.results_path),
                                                      ANSIBLE_CALLBACKS_ENABLED=callbacks))
        self.popen = None
        self.killed = None
        self.survivors = []
        self.started = None

    def start(self):
        log = open(self.log_path, 'wb')   # pylint: disable=consider-using-with
        try:
            self.popen = subprocess.Popen(self.command, cwd=str(self.work), env=self.env,   # pylint: disable=consider-using-with
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        finally:
            log.close()
        self.started = time.monotonic()
        return self

    @property
    def pid(self):
        return self.popen.pid

    def running(self):
        return self.popen is not None and self.popen.poll() is None

    def kill_group(self):
        """SIGKILL ansible-playbook's process group.  Workers that called setsid() live on;
        they are remembered (``survivors``) so the scenario can stop them by PID later."""
        before = descendants(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(10)
        self.survivors = [proc for proc in before if alive(proc)]
        self.killed = 'group'
        return self.survivors

    def kill_tree(self):
        """Freeze (SIGSTOP) ansible-playbook and every descendant until no new one appears,
        then SIGKILL them all: nothing of this controller survives."""
        frozen = []
        seen = set()
        me = _stat(self.pid)
        for dummy in range(50):
            found = ([(self.pid, me[3])] if me else []) + descendants(self.pid)
            new = [proc for proc in found if proc not in seen]
            if not new:
                break
            for proc in new:
                _signal(proc, signal.SIGSTOP)
            seen.update(new)
            frozen.extend(new)
        for proc in frozen:
            _signal(proc, signal.SIGKILL)
        self.popen.wait(10)
        poll(lambda: not any(alive(proc) for proc in frozen), 10)
        self.killed = 'tree'
        return frozen

    def kill(self, how):
        return self.kill_tree() if how == 'tree' else self.kill_group()

    def wait(self, timeout):
        """Wait for the run to end (killing its tree past ``timeout``); returns the results."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_tree()
        return self.results()

    def results(self):
        data = {'stats': {}, 'tasks': []}
        if self.results_path.exists():
            with contextlib.suppress(ValueError):
                data = json.loads(self.results_path.read_text())
        data['rc'] = self.popen.returncode if self.popen else None
        return data

    def stop_survivors(self, timeout):
        """Give surviving workers ``timeout`` seconds to finish, then SIGKILL them by PID."""
        poll(lambda: not any(alive(proc) for proc in self.survivors), timeout, interval=0.05)
        for proc in self.survivors:
            _signal(proc, signal.SIGKILL)
        leftover = [proc for proc in self.survivors if alive(proc)]
        self.survivors = []
        return leftover

    def log_tail(self, size=3000):
        try:
            return self.log_path.read_text(errors='replace')[-size:]
        except OSError:
            return ''


PAUSE_CALLBACK_SOURCE = '''
from __future__ import annotations

DOCUMENTATION = """
    name: certforge_chaos_pause
    type: aggregate
    short_description: Hold a run at the start of a named task (chaos test hook)
    description:
      - When CHAOS_PAUSE_AT is set, the start of the first task whose name contains it writes
        the file CHAOS_PAUSE_MARKER and holds the run until CHAOS_PAUSE_RELEASE exists or
        CHAOS_PAUSE_SECONDS pass, so a test can kill the run between two tasks.
"""

import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "certforge_chaos_pause"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.done = False

    def v2_playbook_on_task_start(self, task, is_conditional):
        wanted = os.environ.get("CHAOS_PAUSE_AT")
        if self.done or not wanted or wanted not in task.get_name():
            return
        self.done = True
        with open(os.environ["CHAOS_PAUSE_MARKER"], "w") as handle:
            handle.write(task.get_name())
        release = os.environ.get("CHAOS_PAUSE_RELEASE", "")
        deadline = time.monotonic() + float(os.environ.get("CHAOS_PAUSE_SECONDS", "30"))
        while time.monotonic() < deadline and not (release and os.path.exists(release)):
            time.sleep(0.02)
'''


def ansible_home(root):
    """A directory with ansible's home, temp dirs and the two callbacks."""
    home = Path(root)
    (home / 'callback_plugins').mkdir(parents=True, exist_ok=True)
    (home / 'callback_plugins' / (RESULTS_CALLBACK + '.py')).write_text(
        integration._CALLBACK_SOURCE)   # pylint: disable=protected-access
    (home / 'callback_plugins' / (PAUSE_CALLBACK + '.py')).write_text(PAUSE_CALLBACK_SOURCE)
    for sub in ('home', 'local_tmp', 'remote_tmp'):
        (home / sub).mkdir(exist_ok=True)
    integration._ensure_collection_link()   # pylint: disable=protected-access
    return home


def local_inventory(hosts=('localhost',)):
    return ''.join('%s ansible_connection=local ansible_python_interpreter=%s\n' % (h, PYTHON) for h in hosts)


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------

class Tally:
    """What one scenario with one store variant saw at the CA."""

    def __init__(self, scenario, store, strict):
        self.scenario, self.store, self.strict = scenario, store, strict
        self.runs = 0
        self.planned = 0
        self.orders = {}          # certificate name -> orders the CA received
        self.issued = {}          # certificate name -> True when issued after the rerun
        self.first_ok = {}        # name -> issued or pending after the first run (storm)
        self.notes = []
        self.kills = []
        self.survivors = 0        # workers alive after a process-group kill
        self.extras = {}          # more counters for the line, e.g. ACME extra orders, faults fired
        self.seconds = 0.0

    def add(self, name, orders, issued):
        self.orders[name] = orders
        self.issued[name] = bool(issued)

    @property
    def duplicates(self):
        return sum(1 for n in self.orders.values() if n > 1)

    @property
    def issued_count(self):
        return sum(1 for v in self.issued.values() if v)

    def line(self):
        values = list(self.orders.values()) or [0]
        runs = '%d' % self.runs if self.runs >= self.planned else '%d/%d' % (self.runs, self.planned)
        text = ('CHAOS %s store=%s runs=%s certs=%d orders_per_cert=%d/%d duplicates=%d '
                'issued_after_rerun=%d/%d' % (self.scenario, self.store, runs, len(self.orders),
                                              min(values), max(values), self.duplicates,
                                              self.issued_count, len(self.issued)))
        if self.first_ok:
            text += ' first_run_issued_or_pending=%d/%d' % (sum(1 for v in self.first_ok.values() if v),
                                                            len(self.first_ok))
        text += ' strict=%s time=%.0fs' % ('yes' if self.strict else 'no', self.seconds)
        if self.kills:
            counts = {}
            for kill in self.kills:
                counts[kill] = counts.get(kill, 0) + 1
            text += ' kills=%s' % ','.join('%s:%d' % kv for kv in sorted(counts.items()))
        if self.survivors:
            text += ' workers_survived_group_kill=%d' % self.survivors
        for key in sorted(self.extras):
            text += ' %s=%s' % (key, self.extras[key])
        return text

    def bump(self, key, amount=1):
        self.extras[key] = self.extras.get(key, 0) + amount

    def failures(self):
        """The goals this tally misses (empty when it meets them)."""
        out = []
        if self.duplicates:
            dup = sorted(n for n, c in self.orders.items() if c > 1)
            out.append('%d certificate(s) ordered more than once: %s' % (self.duplicates, ', '.join(dup[:5])))
        missing = sorted(n for n, v in self.issued.items() if not v)
        if missing:
            out.append('%d/%d not issued after one rerun: %s'
                       % (len(missing), len(self.issued), ', '.join(missing[:5])))
        bad_first = sorted(n for n, v in self.first_ok.items() if not v)
        if bad_first:
            out.append('%d/%d neither issued nor pending after the first run: %s'
                       % (len(bad_first), len(self.first_ok), ', '.join(bad_first[:5])))
        return out


def cert_names(path):
    """(common name, serial hex upper without leading zeros) of the first certificate in
    ``path``, or None."""
    from cryptography import x509   # pylint: disable=import-outside-toplevel
    try:
        with open(str(path), 'rb') as handle:
            cert = x509.load_pem_x509_certificates(handle.read())[0]
    except (OSError, ValueError, IndexError):
        return None
    cns = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return (cns[0].value if cns else None), ('%X' % cert.serial_number)


def norm_serial(text):
    return str(text or '').replace(':', '').upper().lstrip('0')


# ---------------------------------------------------------------------------------------------
# counters at the CAs
# ---------------------------------------------------------------------------------------------

class SectigoCounter:
    """Orders at the SCM simulator: records created by enroll/renew (answered or not) plus
    replaces, per common name."""

    def __init__(self, sim):
        self.sim = sim

    def orders(self, name):
        records = self.sim.orders(name)
        ids = set(str(r.get('sslId')) for r in records)
        replaces = [e for e in self.sim.audit(method='POST', path='/ssl/v1/replace/*')
                    if e.get('status') == 204 and e['route'].rsplit('/', 1)[-1] in ids]
        return len(records) + len(replaces)

    def serials(self, name):
        return set(norm_serial(r.get('serialNumber')) for r in self.sim.orders(name) if r.get('serialNumber'))

    def issued(self, name, cert_path):
        facts = cert_names(cert_path)
        return bool(facts and facts[0] == name and norm_serial(facts[1]) in self.serials(name))


class LocalCACounter:
    """Certificates signed by a local CA, read from its directory: the legacy ``index.json``,
    one record per serial under ``records/`` and the certificates kept under ``certs/`` (the
    union, so a signature shows in whichever place the CA put it first)."""

    def __init__(self, ca_path):
        self.ca_path = Path(ca_path)
        self._names = {}          # serial -> names, parsed once per serial

    def _legacy(self):
        try:
            data = json.loads((self.ca_path / 'index.json').read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _listing(self, sub, suffix):
        try:
            return [n[:-len(suffix)] for n in os.listdir(str(self.ca_path / sub)) if n.endswith(suffix)]
        except OSError:
            return []

    def serials(self):
        found = set(norm_serial(s) for s in self._legacy())
        found.update(norm_serial(s) for s in self._listing('records', '.json'))
        found.update(norm_serial(s) for s in self._listing('certs', '.pem'))
        return found

    def count(self):
        return len(self.serials())

    @staticmethod
    def _record_names(record):
        names = set(str(s).split(':', 1)[-1] for s in record.get('subject_alt_names') or [])
        subject = record.get('subject') or ''
        if subject.startswith('CN='):
            names.add(subject[3:].split(',')[0])
        return names

    def _names_of(self, serial):
        if serial in self._names:
            return self._names[serial]
        names = set()
        legacy = dict((norm_serial(k), v) for k, v in self._legacy().items())
        if serial in legacy:
            names |= self._record_names(legacy[serial])
        for stem in self._listing('records', '.json'):
            if norm_serial(stem) == serial:
                with contextlib.suppress(OSError, ValueError):
                    names |= self._record_names(json.loads((self.ca_path / 'records' / (stem + '.json')).read_text()))
        for stem in self._listing('certs', '.pem'):
            if norm_serial(stem) == serial:
                facts = cert_names(self.ca_path / 'certs' / (stem + '.pem'))
                if facts and facts[0]:
                    names.add(facts[0])
        if names:
            self._names[serial] = names
        return names

    def orders(self, name):
        return sum(1 for serial in self.serials() if name in self._names_of(serial))

    def issued(self, name, cert_path):
        facts = cert_names(cert_path)
        return bool(facts and facts[0] == name and norm_serial(facts[1]) in self.serials())


def _b64url_decode(text):
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def _jws_payload(body):
    try:
        payload = json.loads(body.decode('utf-8')).get('payload') or ''
        return json.loads(_b64url_decode(payload).decode('utf-8')) if payload else {}
    except (ValueError, AttributeError, UnicodeDecodeError):
        return {}


def _csr_names(der_b64url):
    from cryptography import x509   # pylint: disable=import-outside-toplevel
    try:
        csr = x509.load_der_x509_csr(_b64url_decode(der_b64url))
    except ValueError:
        return []
    names = [a.value for a in csr.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]
    with contextlib.suppress(x509.ExtensionNotFound):
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [n for n in san.get_values_for_type(x509.DNSName) if n not in names]
    return names


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        return

    def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
        self._forward('GET')

    def do_HEAD(self):  # noqa: N802  pylint: disable=invalid-name
        self._forward('HEAD')

    def do_POST(self):  # noqa: N802  pylint: disable=invalid-name
        self._forward('POST')

    def _forward(self, method):
        proxy = self.server.proxy
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        event = proxy.arrive(method, self.path, body)
        if event.get('delay'):
            time.sleep(event['delay'])
        conn = http.client.HTTPSConnection('127.0.0.1', proxy.upstream_port, context=proxy.upstream_context,
                                           timeout=60)
        try:
            headers = dict((k, v) for k, v in self.headers.items() if k.lower() not in ('connection',))
            conn.request(method, self.path, body=body or None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            status, answer_headers = answer.status, answer.getheaders()
        except OSError:
            proxy.answered(event, 502)
            self.close_connection = True
            return
        finally:
            conn.close()
        proxy.answered(event, status)
        try:
            self.send_response(status)
            for name, value in answer_headers:
                if name.lower() not in ('connection', 'transfer-encoding', 'content-length'):
                    self.send_header(name, value)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            if method != 'HEAD':
                self.wfile.write(data)
        except OSError:
            self.close_connection = True


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        return


class AcmeCountingProxy:
    """A TLS reverse proxy on 127.0.0.1 in front of Pebble.  It keeps the client's Host header,
    so Pebble's directory, orders and JWS URL checks all name the proxy.  It counts, per DNS
    name, newOrder POSTs and finalize POSTs (answered 200 = a certificate issued), notes every
    arrival for kill moments, and can hold newOrder / finalize requests (``delay``)."""

    def __init__(self, pebble):
        self.pebble = pebble
        self.upstream_port = pebble.port
        self.upstream_context = ssl.create_default_context(cafile=pebble.ca_bundle)
        self.lock = threading.Lock()
        self.events = []
        self.delays = {}
        self.httpd = None
        self.thread = None
        self.port = None

    @property
    def directory_url(self):
        return 'https://127.0.0.1:%d/dir' % self.port

    @property
    def ca_bundle(self):
        return self.pebble.ca_bundle

    def start(self):
        httpd = _ProxyServer(('127.0.0.1', 0), _ProxyHandler)
        httpd.proxy = self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.pebble.tls['chain'], self.pebble.tls['key'])
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05},
                                       name='acme-counting-proxy', daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.httpd = None

    def arrive(self, method, path, body):
        kind, names = 'other', []
        if method == 'POST' and path.rstrip('/').endswith('/order-plz'):
            kind = 'order'
            names = [i.get('value') for i in _jws_payload(body).get('identifiers') or [] if isinstance(i, dict)]
        elif method == 'POST' and '/finalize-order/' in path:
            kind = 'finalize'
            names = _csr_names(_jws_payload(body).get('csr') or '')
        with self.lock:
            event = {'n': len(self.events) + 1, 'kind': kind, 'names': names, 'path': path,
                     'status': None, 'wall': time.time(), 'delay': 0.0}
            if kind in self.delays:
                event['delay'] = self.delays[kind]
            self.events.append(event)
        return event

    def answered(self, event, status):
        with self.lock:
            event['status'] = status

    def set_delay(self, kind, seconds):
        with self.lock:
            if seconds:
                self.delays[kind] = seconds
            else:
                self.delays.pop(kind, None)

    def snapshot(self):
        with self.lock:
            return [dict(e) for e in self.events]

    def orders(self, name):
        return sum(1 for e in self.snapshot() if e['kind'] == 'order' and name in e['names'])

    def certificates(self, name):
        return sum(1 for e in self.snapshot() if e['kind'] == 'finalize' and name in e['names']
                   and e['status'] == 200)

    def issued(self, name, cert_path):
        facts = cert_names(cert_path)
        return bool(facts and facts[0] == name)


# ---------------------------------------------------------------------------------------------
# order store variants
# ---------------------------------------------------------------------------------------------

def pg_backend_importable():
    """(True, '') when the PostgreSQL order store (core/store_pg.py and psycopg 3) imports here,
    else (False, why)."""
    try:
        importlib.import_module('ansible_collections.certforge.pki.plugins.module_utils.core.store_pg')
        importlib.import_module('psycopg')
    except ImportError as exc:
        return False, 'PostgreSQL order store does not import: %s' % exc
    return True, ''
