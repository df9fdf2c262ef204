"""Shared fixtures for integration tests: real ``ansible-playbook`` runs on localhost.

``run_playbook(playbook, extra_vars=None, check=False, diff=False, ...)`` runs a playbook (YAML
text, a path, or a list of plays) with this repository as the ``certforge.pki`` collection and
returns a ``PlaybookResult``:

    result.rc                      exit code
    result.stats['localhost']      {'ok', 'changed', 'failures', 'unreachable', 'skipped', 'rescued', 'ignored'}
    result.tasks                   every task result: {'host', 'task', 'action', 'status', 'result'}
    result.task('deploy')          the (last) result dict of the task named 'deploy'
    result.stdout / result.stderr  for assertion messages (str(result) shows the tail)

Results are collected by a small aggregate callback written into the run's tmp directory
(ansible-core ships no JSON stdout callback), so the human-readable output stays on stdout.

Also here: ``test_ca`` (a small CA made with cryptography) and ``make_nginx`` (a real nginx on
127.0.0.1, see nginx_server.py).
"""

import datetime
import importlib.util
import json
import textwrap
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / 'build' / 'collections'
_LINK = COLLECTIONS / 'ansible_collections' / 'certforge' / 'pki'


def _venv_python():
    candidate = REPO / '.venv' / 'bin' / 'python'
    return str(candidate) if candidate.exists() else sys.executable


PYTHON = _venv_python()
ANSIBLE_PLAYBOOK = (str(Path(PYTHON).parent / 'ansible-playbook')
                    if (Path(PYTHON).parent / 'ansible-playbook').exists() else shutil.which('ansible-playbook'))


def _load_sibling(name):
    spec = importlib.util.spec_from_file_location('certforge_integration_' + name,
                                                  str(Path(__file__).with_name(name + '.py')))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


nginx_server = _load_sibling('nginx_server')
make_nginx = nginx_server.make_nginx          # fixture re-exported for every integration test


# ---------------------------------------------------------------------------------------------
# a small test CA
# ---------------------------------------------------------------------------------------------

class Issued:
    """A certificate with its key (PEM texts) and serial (int)."""

    def __init__(self, name, cert_pem, key_pem, serial, chain_pem):
        self.name, self.cert_pem, self.key_pem, self.serial, self.chain_pem = name, cert_pem, key_pem, serial, chain_pem

    @property
    def serial_hex(self):
        text = '%X' % self.serial
        return text if len(text) % 2 == 0 else '0' + text


class TestCA:
    """Root -> intermediate; ``issue(name, key_pem=None)`` signs a leaf with the intermediate
    (reusing ``key_pem`` when given, as a renewal for an existing key does)."""

    __test__ = False

    def __init__(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        self._x509, self._hashes, self._ser, self._ec, self._oid = x509, hashes, serialization, ec, NameOID
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca_cert('certforge Test Root', self.root_key, None, None)
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = self._ca_cert('certforge Test Issuing CA', self.inter_key, self.root, self.root_key)
        self.root_pem = self._pem(self.root)
        self.chain_pem = self._pem(self.inter)

    def _name(self, cn):
        return self._x509.Name([self._x509.NameAttribute(self._oid.COMMON_NAME, cn)])

    def _pem(self, cert):
        return cert.public_bytes(self._ser.Encoding.PEM).decode()

    def _ca_cert(self, cn, key, issuer, issuer_key):
        x509 = self._x509
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(self._name(cn))
                .issuer_name(issuer.subject if issuer else self._name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(issuer_key or key, self._hashes.SHA256()))

    def issue(self, name, key_pem=None, days=7):
        x509, ser = self._x509, self._ser
        if key_pem is None:
            key = self._ec.generate_private_key(self._ec.SECP256R1())
            key_pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8,
                                        ser.NoEncryption()).decode()
        else:
            key = ser.load_pem_private_key(key_pem.encode(), password=None)
        now = datetime.datetime.now(datetime.timezone.utc)
        serial = x509.random_serial_number()
        cert = (x509.CertificateBuilder().subject_name(self._name(name)).issuer_name(self.inter.subject)
                .public_key(key.public_key()).serial_number(serial)
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(self.inter_key, self._hashes.SHA256()))
        return Issued(name, self._pem(cert), key_pem, serial, self.chain_pem)


@pytest.fixture(scope='session')
def test_ca():
    return TestCA()


# ---------------------------------------------------------------------------------------------
# ansible-playbook runner
# ---------------------------------------------------------------------------------------------

_CALLBACK_NAME = 'certforge_test_results'
_CALLBACK_SOURCE = '''
from __future__ import annotations

DOCUMENTATION = """
    name: certforge_test_results
    type: aggregate
    short_description: Write every task result and the stats as JSON (test helper)
    description: Writes to the file named by the CERTFORGE_TEST_RESULTS environment variable.
"""

import json
import os

from ansible.plugins.callback import CallbackBase
from ansible.vars.clean import module_response_deepcopy, strip_internal_keys


def _get(obj, name):
    value = getattr(obj, name, None)
    if value is None:
        value = getattr(obj, "_" + name, None)
    return value


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "certforge_test_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks = []

    def _record(self, result, status):
        task = _get(result, "task")
        host = _get(result, "host")
        data = strip_internal_keys(module_response_deepcopy(dict(_get(result, "result") or {})))
        self.tasks.append({"host": host.get_name(), "task": task.get_name(), "action": task.action,
                           "status": status, "result": data})

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result, "changed" if (_get(result, "result") or {}).get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result, **kwargs):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        summary = dict((host, stats.summarize(host)) for host in sorted(stats.processed))
        with open(os.environ["CERTFORGE_TEST_RESULTS"], "w") as handle:
            json.dump({"stats": summary, "tasks": self.tasks}, handle, default=str)
'''


class PlaybookResult:
    def __init__(self, rc, stdout, stderr, stats, tasks, command):
        self.rc, self.stdout, self.stderr = rc, stdout, stderr
        self.stats, self.tasks, self.command = stats, tasks, command

    def task(self, name, host='localhost'):
        """Result dict of the last run of the task ``name`` on ``host`` (KeyError if none)."""
        for entry in reversed(self.tasks):
            if entry['task'] == name and entry['host'] == host:
                return entry['result']
        raise KeyError('no result for task %r on %s; tasks: %s\n%s'
                       % (name, host, [t['task'] for t in self.tasks], self))

    def status(self, name, host='localhost'):
        for entry in reversed(self.tasks):
            if entry['task'] == name and entry['host'] == host:
                return entry['status']
        raise KeyError(name)

    def changed(self, host='localhost'):
        return self.stats.get(host, {}).get('changed', 0)

    def failures(self, host='localhost'):
        return self.stats.get(host, {}).get('failures', 0)

    def __str__(self):
        return 'ansible-playbook rc=%s\n--- stdout (tail) ---\n%s\n--- stderr (tail) ---\n%s' % (
            self.rc, self.stdout[-4000:], self.stderr[-2000:])


def _ensure_collection_link():
    if _LINK.exists():
        return
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(str(REPO), str(_LINK.parent)), str(_LINK))


@pytest.fixture(scope='session')
def ansible_home(tmp_path_factory):
    """Session directory with the results callback and ansible's home/temp directories."""
    if not ANSIBLE_PLAYBOOK:
        pytest.skip('ansible-playbook is not installed')
    _ensure_collection_link()
    home = tmp_path_factory.mktemp('ansible')
    (home / 'callback_plugins').mkdir()
    (home / 'callback_plugins' / (_CALLBACK_NAME + '.py')).write_text(_CALLBACK_SOURCE)
    for sub in ('home', 'local_tmp', 'remote_tmp'):
        (home / sub).mkdir()
    return home


def ansible_env(home, extra=None):
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)          # ansible's collection loader finds the collection itself
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': str(COLLECTIONS),
        'ANSIBLE_HOME': str(home / 'home'),
        'ANSIBLE_LOCAL_TEMP': str(home / 'local_tmp'),
        'ANSIBLE_REMOTE_TMP': str(home / 'remote_tmp'),
        'ANSIBLE_CALLBACK_PLUGINS': str(home / 'callback_plugins'),
        'ANSIBLE_CALLBACKS_ENABLED': _CALLBACK_NAME,
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_LOCALHOST_WARNING': 'False',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'False',
        'ANSIBLE_RETRY_FILES_ENABLED': 'False',
        'ANSIBLE_HOST_KEY_CHECKING': 'False',
    })
    env.update(extra or {})
    return env


@pytest.fixture
def run_playbook(ansible_home, tmp_path):
    """Run ``ansible-playbook`` for real.  See the module docstring."""
    counter = [0]

    def run(playbook, extra_vars=None, check=False, diff=False, inventory=None, limit=None,
            env=None, args=(), timeout=300):
        counter[0] += 1
        work = tmp_path / ('playbook-run-%d' % counter[0])
        work.mkdir()
        if isinstance(playbook, (list, dict)):
            playbook_path = work / 'playbook.yml'
            playbook_path.write_text(json.dumps(playbook if isinstance(playbook, list) else [playbook], indent=2))
        elif isinstance(playbook, Path) or ('\n' not in playbook and os.path.exists(playbook)):
            playbook_path = Path(playbook)
        else:
            playbook_path = work / 'playbook.yml'
            playbook_path.write_text(playbook)
        if inventory is None:
            inventory_path = work / 'inventory.ini'
            inventory_path.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % PYTHON)
        elif '\n' in str(inventory) or not os.path.exists(str(inventory)):
            inventory_path = work / 'inventory.ini'
            inventory_path.write_text(str(inventory))
        else:
            inventory_path = Path(inventory)
        results_path = work / 'results.json'
        command = [ANSIBLE_PLAYBOOK, '-i', str(inventory_path), str(playbook_path)]
        if extra_vars:
            vars_path = work / 'extra_vars.json'
            vars_path.write_text(json.dumps(extra_vars))
            command += ['-e', '@%s' % vars_path]
        if check:
            command.append('--check')
        if diff:
            command.append('--diff')
        if limit:
            command += ['--limit', limit]
        command += list(args)
        run_env = ansible_env(ansible_home, dict(env or {}, CERTFORGE_TEST_RESULTS=str(results_path)))
        proc = subprocess.run(command, cwd=str(work), env=run_env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        data = {'stats': {}, 'tasks': []}
        if results_path.exists():
            data = json.loads(results_path.read_text())
        return PlaybookResult(proc.returncode, proc.stdout, proc.stderr, data['stats'], data['tasks'], command)

    return run


def failing_deploy_plays(role_vars_json, runs, before=''):
    """``runs`` plays that each run the certificate role (after the tasks ``before``, YAML at the
    play's task indentation) inside a block whose rescue notes the failed deploy."""
    play = textwrap.dedent("""
        - name: failed deploy %%d
          hosts: localhost
          gather_facts: false
          vars: %s
          tasks:%s
            - name: Role whose deploy fails
              block:
                - name: Certificates
                  ansible.builtin.include_role:
                    name: certforge.pki.certificate
              rescue:
                - name: The deploy failed and was rolled back
                  ansible.builtin.debug:
                    msg: rolled back
        """) % (role_vars_json.replace('%', '%%'), before.replace('%', '%%'))
    return ''.join(play % run for run in range(runs))


@pytest.fixture
def failing_role_runs():
    """See :func:`failing_deploy_plays`."""
    return failing_deploy_plays


def pytest_terminal_summary(terminalreporter, config):
    """The bad-input suite's case count (tests/integration/test_bad_input.py) and the EXAMPLES
    count (tests/integration/test_examples.py)."""
    count = getattr(config, '_certforge_bad_input_cases', 0)
    if count:
        terminalreporter.write_line('BAD_INPUT cases=%d' % count)
    examples = getattr(config, '_certforge_examples', None)
    if examples:
        terminalreporter.write_line('EXAMPLES modules=%(modules)d tasks=%(tasks)d passed=%(passed)d' % examples)
