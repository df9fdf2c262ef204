"""Bad input never writes and never crashes: a table of bad inputs over every module and both
roles, run through real ansible-playbook (ANSIBLE_DISPLAY_TRACEBACK=error).

Each case gets its own copy of a small world (a local CA, CSRs, keys, a certificate, garbage,
an empty file, a directory, a dangling link, an order store location) and asserts:

* the task failed (failed=true; a case that is accepted is a failure of this test),
* the message names the option (``error_option`` or the option's name in ``msg``),
* no exception text anywhere (no Python traceback, no ``Task failed: Module failed``, no
  ``TypeError:``-style class names),
* every file of its world is byte-exact as before (sha256 of every file, modes, link targets),
  including the CA directory and the order store.

Cases run in batches (one ansible-playbook per module family, every case in its own
block/rescue), so 300+ cases cost a few ansible-playbook starts.  The count is printed in the
terminal summary as ``BAD_INPUT cases=N``.
"""

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / 'build' / 'collections'
PYTHON = str(REPO / '.venv' / 'bin' / 'python') if (REPO / '.venv' / 'bin' / 'python').exists() else sys.executable
ANSIBLE_PLAYBOOK = (str(Path(PYTHON).parent / 'ansible-playbook')
                    if (Path(PYTHON).parent / 'ansible-playbook').exists() else shutil.which('ansible-playbook'))

#: words that betray an exception escaping to the user
EXCEPTION_TEXT = re.compile(
    r'\b(TypeError|ValueError|KeyError|AttributeError|OSError|IOError|IndexError|OverflowError'
    r'|UnicodeDecodeError|UnicodeEncodeError|UnicodeError|FileNotFoundError|IsADirectoryError'
    r'|NotADirectoryError|PermissionError|AssertionError|RuntimeError|ZeroDivisionError'
    r'|RecursionError|NameError|InvalidSignature|InternalError):')

#: exception lines in a traceback; ansible-core's own wrappers and our error taxonomy are
#: how a handled failure looks, anything else escaped
EXCEPTION_LINE = re.compile(r'^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)):', re.M)
HANDLED = ('AnsibleTaskError', 'AnsibleActionCapturedError', 'AnsibleModuleCapturedError', 'AnsibleActionFail',
           'ConfigError', 'PolicyError', 'AuthError', 'PermanentError', 'TransientError', 'DeployError',
           'NotReadyError', 'AnsibleError', 'AnsibleModuleError')

UNREACHABLE = 'https://127.0.0.1:9/directory'     # nothing listens there: no case may get that far
SECTIGO = dict(base_url='https://127.0.0.1:9', customer_uri='cust', login='user', password='pw')
ACME = dict(acme_directory=UNREACHABLE, account_key_path='@D@/acct.key')

LONG = 'x' * 300
NUL = 'a\u0000b'


# ---------------------------------------------------------------------------------------------
# the world every case starts from
# ---------------------------------------------------------------------------------------------

def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _csr(key, names, sans=None):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
    builder = builder.add_extension(x509.SubjectAlternativeName(
        sans if sans is not None else [x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


SETUP_PLAY = [{
    'name': 'World', 'hosts': 'localhost', 'gather_facts': False,
    'tasks': [
        {'name': 'CA', 'certforge.pki.local_ca': {'path': '{{ w }}/ca', 'common_name': 'Bad Input CA'}},
        {'name': 'Leaf', 'certforge.pki.local_ca_certificate': {
            'ca_path': '{{ w }}/ca', 'name': 'leaf', 'csr_path': '{{ w }}/good.csr',
            'path': '{{ w }}/leaf.crt', 'order_store': '{{ w }}/setup-orders'}},
        {'name': 'CRL', 'certforge.pki.local_ca_crl': {'ca_path': '{{ w }}/ca', 'path': '{{ w }}/crl.pem'}},
    ]}]


def _ansible_env(home, extra):
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': str(COLLECTIONS), 'ANSIBLE_HOME': str(home / 'home'),
        'ANSIBLE_LOCAL_TEMP': str(home / 'local_tmp'), 'ANSIBLE_REMOTE_TMP': str(home / 'remote_tmp'),
        'ANSIBLE_CALLBACK_PLUGINS': str(home / 'callback_plugins'),
        'ANSIBLE_CALLBACKS_ENABLED': 'certforge_test_results', 'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0', 'ANSIBLE_LOCALHOST_WARNING': 'False',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'False', 'ANSIBLE_RETRY_FILES_ENABLED': 'False',
        'ANSIBLE_DISPLAY_TRACEBACK': 'error', 'ANSIBLE_DEPRECATION_WARNINGS': 'False',
    })
    env.update(extra)
    return env


def _run(home, work, plays, env=None):
    work.mkdir(parents=True, exist_ok=True)
    playbook = work / 'playbook.yml'
    playbook.write_text(json.dumps(plays, indent=1))
    inventory = work / 'inventory.ini'
    inventory.write_text('localhost ansible_connection=local ansible_python_interpreter=%s\n' % PYTHON)
    results = work / 'results.json'
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', str(inventory), str(playbook)], cwd=str(work),
                          env=_ansible_env(home, dict(env or {}, CERTFORGE_TEST_RESULTS=str(results))),
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False)
    data = json.loads(results.read_text()) if results.exists() else {'stats': {}, 'tasks': []}
    return proc, data


@pytest.fixture(scope='session')
def world(ansible_home, tmp_path_factory):
    w = tmp_path_factory.mktemp('bad-input-world')
    key = ec.generate_private_key(ec.SECP256R1())
    (w / 'good.key').write_bytes(_pem_key(key))
    os.chmod(w / 'good.key', 0o600)
    (w / 'good.csr').write_bytes(_csr(key, ['www.example.com']))
    (w / 'wild.csr').write_bytes(_csr(key, ['*.example.com']))
    (w / 'evil.csr').write_bytes(_csr(key, ['www.evil.test']))
    (w / 'ipdns.csr').write_bytes(_csr(key, ['127.0.0.1'], [x509.DNSName('127.0.0.1')]))
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (w / 'rsa1024.csr').write_bytes(_csr(weak, ['www.example.com']))
    acct = ec.generate_private_key(ec.SECP256R1())
    (w / 'acct.key').write_bytes(_pem_key(acct))
    os.chmod(w / 'acct.key', 0o600)
    (w / 'garbage.bin').write_bytes(bytes(range(256)) * 4)
    (w / 'garbage.pem').write_bytes(b'-----BEGIN CERTIFICATE-----\n\xff\xfe not base64 \x00\n'
                                    b'-----END CERTIFICATE-----\n')
    (w / 'empty.txt').write_bytes(b'')
    (w / 'text.txt').write_text('hello\n')
    (w / 'adir').mkdir()
    (w / 'out').mkdir()
    os.symlink('nowhere-at-all', str(w / 'dangling'))
    proc, data = _run(ansible_home, tmp_path_factory.mktemp('bad-input-setup'), SETUP_PLAY,
                      {'CERTFORGE_ORDER_STORE': str(w / 'setup-orders'), 'BAD_INPUT_WORLD': str(w)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    shutil.rmtree(str(w / 'setup-orders'), ignore_errors=True)
    (w / 'leaf.key').write_bytes((w / 'good.key').read_bytes())
    os.chmod(w / 'leaf.key', 0o600)
    (w / 'priv.pem').write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    os.chmod(w / 'priv.pem', 0o600)
    (w / 'ca-pem').mkdir()
    return w


SETUP_PLAY[0]['vars'] = {'w': '{{ lookup("env", "BAD_INPUT_WORLD") }}'}


# ---------------------------------------------------------------------------------------------
# snapshots
# ---------------------------------------------------------------------------------------------

def snapshot(root):
    """{relative path: (kind, mode, sha256 or link target)} of everything under ``root``."""
    out = {}
    for base, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = os.path.join(base, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ('link', None, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ('dir', stat.S_IMODE(st.st_mode), None)
            else:
                with open(path, 'rb') as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                out[rel] = ('file', stat.S_IMODE(st.st_mode), digest)
    return out


def diff_snapshots(before, after):
    changes = []
    for rel in sorted(set(before) | set(after)):
        if before.get(rel) != after.get(rel):
            changes.append('%s: %s -> %s' % (rel, before.get(rel), after.get(rel)))
    return changes


# ---------------------------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------------------------

class Case:
    def __init__(self, batch, title, module=None, args=None, option=None, role=None, role_vars=None,
                 prepare=None, words=None):
        self.batch, self.title, self.module, self.args = batch, title, module, args or {}
        self.option, self.role, self.role_vars = option, role, role_vars or {}
        self.prepare, self.words = prepare, words
        self.id = None


CASES = []


def case(batch, title, module, args, option, **kwargs):
    CASES.append(Case(batch, title, module, args, option, **kwargs))


def role_case(title, role, role_vars, option, **kwargs):
    CASES.append(Case('roles', title, role=role, role_vars=role_vars, option=option, **kwargs))


LCA = 'certforge.pki.local_ca'
LCC = 'certforge.pki.local_ca_certificate'
CRL = 'certforge.pki.local_ca_crl'
CERT = 'certforge.pki.certificate'
INFO = 'certforge.pki.certificate_info'
REQ = 'certforge.pki.certificate_request'
DEP = 'certforge.pki.deploy'
DEPF = 'certforge.pki.deploy_files'
DEPN = 'certforge.pki.deploy_nginx'
ACME_CERT = 'certforge.pki.acme_certificate'
ACME_ACCT = 'certforge.pki.acme_account'
ACME_REV = 'certforge.pki.acme_certificate_revoke'
SECT_CERT = 'certforge.pki.sectigo_certificate'
SECT_ACCT = 'certforge.pki.sectigo_account_info'
SECT_INFO = 'certforge.pki.sectigo_certificate_info'

# a good base for each module: a case changes one option of it
BASE = {
    LCA: dict(path='@D@/newca', common_name='New CA'),
    LCC: dict(ca_path='@D@/ca', name='www', csr_path='@D@/good.csr', path='@D@/out/www.crt',
              order_store='@D@/orders'),
    CRL: dict(ca_path='@D@/ca', path='@D@/out/crl.pem', der_path='@D@/out/crl.der'),
    CERT: dict(name='www', issuer='local_ca', issuer_options={'ca_path': '@D@/ca'}, csr_path='@D@/good.csr',
               certificate_path='@D@/out/www.crt', order_store='@D@/orders'),
    INFO: dict(path='@D@/leaf.crt'),
    REQ: dict(privatekey_path='@D@/out/new.key', csr_path='@D@/out/new.csr', common_name='www.example.com'),
    DEPF: dict(certificate='@LEAF@', certificate_path='@D@/out/d.crt', key_path='@D@/leaf.key',
               backup_dir='@D@/out/backups'),
    DEP: dict(target='files', certificate='@LEAF@', certificate_path='@D@/out/d.crt', key_path='@D@/leaf.key'),
    DEPN: dict(certificate='@LEAF@', certificate_path='@D@/out/d.crt', key_path='@D@/leaf.key',
               validate_command=['/bin/false'], reload_command=['/bin/false'], reload=False),
    ACME_CERT: dict(ACME, name='www', csr_path='@D@/good.csr', certificate_path='@D@/out/www.crt',
                    order_store='@D@/orders'),
    ACME_ACCT: dict(ACME, order_store='@D@/orders', terms_agreed=True),
    ACME_REV: dict(ACME, certificate_path='@D@/leaf.crt'),
    SECT_CERT: dict(SECTIGO, name='www', csr_path='@D@/good.csr', certificate_path='@D@/out/www.crt',
                    profile='OV', order_store='@D@/orders'),
    SECT_ACCT: dict(SECTIGO),
    SECT_INFO: dict(SECTIGO, state_file='@D@/out/state.json'),
}

BATCH = {LCA: 'local_ca', LCC: 'local_ca', CRL: 'local_ca', CERT: 'certificate', INFO: 'hosts',
         REQ: 'hosts', DEPF: 'deploy', DEP: 'deploy', DEPN: 'deploy', ACME_CERT: 'acme',
         ACME_ACCT: 'acme', ACME_REV: 'acme', SECT_CERT: 'sectigo', SECT_ACCT: 'sectigo',
         SECT_INFO: 'sectigo'}


def _short(module):
    return module.rsplit('.', maxsplit=1)[-1]


def bad(module, option, value, title=None, expect=None, drop=(), **extra):
    args = dict(BASE[module])
    for name in drop:
        args.pop(name, None)
    if '.' in option and option.split('.')[0] in ('issuer_options', 'verify'):
        top, sub = option.split('.', 1)
        args[top] = dict(args.get(top) or {}, **{sub: value})
    args.update(extra)
    if '.' in option and option.split('.')[0] in ('issuer_options', 'verify'):
        pass
    else:
        args[option] = value
    case(BATCH[module], title or '%s %s=%r' % (_short(module), option, value)[:120],
         module, args, expect or option)


# -- every path option: NUL byte, a 300-byte file name ----------------------------------------
PATH_OPTIONS = {
    LCA: ['path', 'parent_path', 'certificate_path', 'privatekey_path', 'chain_path'],
    LCC: ['ca_path', 'csr_path', 'path', 'chain_path', 'fullchain_path', 'order_store'],
    CRL: ['ca_path', 'path', 'der_path'],
    CERT: ['csr_path', 'certificate_path', 'order_store'],
    INFO: ['path', 'ca_path', 'privatekey_path'],
    REQ: ['privatekey_path', 'csr_path', 'certificate_path'],
    DEPF: ['certificate_path', 'chain_path', 'fullchain_path', 'backup_dir'],
    DEP: ['certificate_path', 'chain_path', 'fullchain_path'],
    DEPN: ['certificate_path', 'fullchain_path', 'pid_file'],
    ACME_CERT: ['csr_path', 'certificate_path', 'chain_path', 'fullchain_path', 'http01_webroot',
                'account_key_path', 'order_store', 'acme_ca_bundle'],
    ACME_ACCT: ['account_key_path', 'new_account_key_path', 'order_store', 'acme_ca_bundle'],
    ACME_REV: ['certificate_path', 'private_key_path', 'account_key_path'],
    SECT_CERT: ['csr_path', 'certificate_path', 'chain_path', 'fullchain_path', 'order_store', 'ca_bundle'],
    SECT_ACCT: ['ca_bundle', 'client_cert'],
    SECT_INFO: ['state_file', 'download_dir', 'ca_bundle'],
}
EXTRA = {LCA: {'type': 'import', 'certificate_path': '@D@/ca/ca.crt', 'privatekey_path': '@D@/ca/ca.key'}}
for _module, _options in PATH_OPTIONS.items():
    for _option in _options:
        _extra = {}
        if _module == LCA and _option in ('certificate_path', 'privatekey_path', 'chain_path'):
            _extra = dict(EXTRA[LCA])
        if _module == LCA and _option == 'parent_path':
            _extra = {'type': 'intermediate'}
        if _module == ACME_ACCT and _option == 'new_account_key_path':
            _extra = {'state': 'changed_key'}
        bad(_module, _option, '@D@/' + NUL, title='%s %s with a NUL byte' % (_short(_module), _option),
            **_extra)
        bad(_module, _option, '@D@/' + 'n' * 300, title='%s %s with a 300-byte file name'
            % (_short(_module), _option), **_extra)

# -- files that must exist and be files; directories that must be directories ----------------
READ_FILES = {
    LCA: ['certificate_path', 'privatekey_path', 'chain_path'],
    LCC: ['csr_path'], CERT: ['csr_path'], INFO: ['privatekey_path'],
    ACME_CERT: ['csr_path', 'account_key_path'], ACME_REV: ['certificate_path'],
    SECT_CERT: ['csr_path'],
}
for _module, _options in READ_FILES.items():
    for _option in _options:
        _extra = dict(EXTRA[LCA]) if _module == LCA else {}
        for _what, _value in (('missing', '@D@/missing.pem'), ('a directory', '@D@/adir'),
                              ('a dangling link', '@D@/dangling')):
            bad(_module, _option, _value, title='%s %s is %s' % (_short(_module), _option, _what), **_extra)

WRITE_FILES = {
    LCC: ['path', 'chain_path', 'fullchain_path'], CRL: ['path', 'der_path'], CERT: ['certificate_path'],
    REQ: ['privatekey_path', 'csr_path'], DEPF: ['certificate_path', 'chain_path', 'fullchain_path'],
    DEP: ['certificate_path'], DEPN: ['certificate_path'],
    ACME_CERT: ['certificate_path', 'chain_path', 'fullchain_path'],
    SECT_CERT: ['certificate_path', 'chain_path', 'fullchain_path'],
}
for _module, _options in WRITE_FILES.items():
    for _option in _options:
        for _what, _value in (('a directory', '@D@/adir'), ('in a missing directory', '@D@/nodir/x.pem'),
                              ('a dangling link', '@D@/dangling')):
            bad(_module, _option, _value, title='%s %s is %s' % (_short(_module), _option, _what))

DIRS = {LCC: ['ca_path'], CRL: ['ca_path'], CERT: ['issuer_options.ca_path']}
for _module, _options in DIRS.items():
    for _option in _options:
        for _what, _value in (('a file', '@D@/text.txt'), ('a dangling link', '@D@/dangling'),
                              ('missing', '@D@/no-ca'), ('empty', ''), ('a directory without a CA', '@D@/adir')):
            bad(_module, _option, _value, title='%s %s is %s' % (_short(_module), _option, _what))
for _what, _value in (('a file', '@D@/text.txt'), ('a dangling link', '@D@/dangling'), ('empty', ''),
                      ('a directory holding other files', '@D@')):
    bad(LCA, 'path', _value, title='local_ca path is %s' % _what)
for _what, _value in (('a file', '@D@/text.txt'), ('missing', '@D@/no-ca'), ('a directory without a CA', '@D@/adir')):
    bad(LCA, 'parent_path', _value, title='local_ca parent_path is %s' % _what, type='intermediate')

# -- numbers out of range ---------------------------------------------------------------------
NUMBERS = {
    LCA: {'validity_days': [-1, 0, 10000000], 'path_length': [-1, 1000]},
    LCC: {'validity_days': [-1, 0, 10000000], 'max_ttl_days': [-1, 0, 10000000],
          'renew_before_days': [-1], 'renew_at_fraction': [0, 1.5, -0.1]},
    CRL: {'validity_days': [-1, 0, 10000000], 'renew_before_hours': [-1]},
    CERT: {'validity_days': [-1, 0, 10000000], 'wait_timeout': [-1, 10000000], 'renew_before_days': [-5],
           'renew_at_fraction': [2], 'poll_base': [-1, 0], 'poll_max_delay': [-1], 'poll_max_attempts': [0, -3],
           'poll_jitter': [-0.5, 3]},
    INFO: {'timeout': [-1, 0, 100000], 'renew_before_days': [-1]},
    ACME_CERT: {'http01_listen_port': [70000, 0, -1], 'wait_timeout': [-1], 'dns_propagation_timeout': [-1],
                'acme_timeout': [-1, 0]},
    ACME_ACCT: {'acme_timeout': [-2]},
    SECT_CERT: {'term': [-1, 0], 'wait_timeout': [-1], 'ssl_id': [-4], 'timeout': [-1], 'http_retries': [-1, 99]},
    SECT_INFO: {'page_size': [0, -1, 100000], 'max_workers': [0, 1000], 'expiring_within_days': [-1],
                'organization_id': [-1]},
    DEPF: {'backup_retention': [0, -1]},
    DEPN: {'verify.port': [70000, 0], 'verify.timeout': [-1, 0]},
    DEP: {'verify.port': [-1], 'verify.timeout': [-3]},
}
for _module, _options in NUMBERS.items():
    for _option, _values in _options.items():
        for _value in _values:
            bad(_module, _option, _value)
bad(INFO, 'port', 70000, drop=('path',), host='127.0.0.1')
bad(INFO, 'port', 0, drop=('path',), host='127.0.0.1')
bad(INFO, 'timeout', -1, title='certificate_info host with timeout -1', drop=('path',), host='127.0.0.1', port=9)

# -- wrong types ------------------------------------------------------------------------------
for _module, _option in ((LCA, 'validity_days'), (LCC, 'validity_days'), (CRL, 'validity_days'),
                         (CERT, 'wait_timeout'), (INFO, 'timeout'), (ACME_CERT, 'http01_listen_port'),
                         (SECT_CERT, 'term'), (SECT_INFO, 'page_size'), (DEPF, 'backup_retention'),
                         (LCC, 'allow_wildcards'), (CERT, 'force'), (REQ, 'rotate_key'),
                         (LCA, 'key_size'), (REQ, 'privatekey_size'), (LCC, 'profile'), (LCA, 'type'),
                         (CERT, 'issuer_options'), (ACME_CERT, 'challenge')):
    bad(_module, _option, 'not-a-valid-value-%s' % _option.replace('_', '-'))

# -- host names and names ---------------------------------------------------------------------
for _value, _what in ((LONG, '300 characters'), ('exa mple..com', 'two dots'), ('\u2603' * 70 + '.com', 'not IDNA'),
                      ('a' * 64 + '.com', 'a 64-character label'), ('', 'empty')):
    bad(INFO, 'server_name', _value, title='certificate_info server_name %s' % _what, drop=('path',),
        host='127.0.0.1', port=9)
    bad(DEPN, 'verify.server_name', _value, title='deploy_nginx verify.server_name %s' % _what)
for _value in (LONG, 'bad host name', '\u2603' * 70):
    bad(INFO, 'host', _value, drop=('path',))
for _what, _value in (('a directory', '@D@/adir'), ('a dangling link', '@D@/dangling')):
    bad(INFO, 'path', _value, title='certificate_info path is %s' % _what)
for _module in (LCC, CERT, ACME_CERT, SECT_CERT):
    for _value in ('../../etc/x', 'a/b', '..', '.', '-rf', 'a' * 300, 'x\ny'):
        bad(_module, 'name', _value, title='%s name %r' % (_short(_module), _value[:20]))
for _value in ('../x', 'a/b', '..'):
    bad(DEPF, 'name', _value, title='deploy_files name %r' % _value)
for _module in (LCA, REQ):
    bad(_module, 'common_name', 'c' * 65, title='%s common_name of 65 characters' % _short(_module))
bad(LCA, 'common_name', '', title='local_ca common_name empty')
bad(LCA, 'subject', {'XX': 'nope'}, title='local_ca subject with an unknown attribute')
bad(LCA, 'subject', {'C': 'Germany'}, title='local_ca subject C longer than two letters')
bad(LCA, 'name_constraints_permitted', ['DNS:bad name'], title='local_ca malformed name constraint')

# -- modes ------------------------------------------------------------------------------------
for _module in (DEPF, DEP, REQ):
    for _value in (644, 420, '4777', '2644', '1644', '0666', '0777', 'u+rwx', '99', '0o7777', 'abc', True):
        bad(_module, 'mode', _value)
for _value in (644, '4777', '0666'):
    bad(DEPF, 'mode', _value, title='deploy_files certificates[0].mode %r' % (_value,), expect='certificates[0].mode',
        drop=('certificate', 'certificate_path', 'key_path'),
        certificates=[{'name': 'a', 'certificate': '@LEAF@', 'certificate_path': '@D@/out/a.crt', 'mode': _value}])
for _value in (644, '4777', '0646'):
    bad(REQ, 'mode', _value, title='certificate_request requests[0].mode %r' % (_value,), expect='requests[0].mode',
        drop=('privatekey_path', 'csr_path', 'common_name'),
        requests=[{'privatekey_path': '@D@/out/r.key', 'csr_path': '@D@/out/r.csr', 'common_name': 'r.example.com',
                   'mode': _value}])

# -- content that is not what it should be ---------------------------------------------------
for _module, _option in ((LCC, 'csr_path'), (CERT, 'csr_path'), (ACME_CERT, 'csr_path'), (SECT_CERT, 'csr_path')):
    for _file in ('garbage.bin', 'garbage.pem', 'empty.txt', 'good.key', 'leaf.crt', 'text.txt'):
        bad(_module, _option, '@D@/' + _file, title='%s %s holds %s' % (_short(_module), _option, _file),
            expect=('csr_path', 'csr'))
for _file in ('garbage.bin', 'garbage.pem', 'empty.txt', 'good.key', 'good.csr'):
    bad(INFO, 'path', '@D@/' + _file, title='certificate_info path holds %s' % _file)
    bad(LCA, 'certificate_path', '@D@/' + _file, title='local_ca import certificate_path holds %s' % _file,
        **EXTRA[LCA])
    bad(LCA, 'chain_path', '@D@/' + _file, title='local_ca import chain_path holds %s' % _file, **EXTRA[LCA])
for _file in ('garbage.bin', 'leaf.crt', 'good.csr', 'empty.txt'):
    bad(LCA, 'privatekey_path', '@D@/' + _file, title='local_ca import privatekey_path holds %s' % _file,
        **EXTRA[LCA])
bad(LCA, 'chain_path', '@D@/leaf.crt', title='local_ca import chain_path holds a leaf, not a CA', **EXTRA[LCA])
for _file in ('garbage.bin', 'leaf.crt', 'empty.txt'):
    bad(INFO, 'privatekey_path', '@D@/' + _file, title='certificate_info privatekey_path holds %s' % _file)
for _option in ('path', 'der_path'):
    for _file in ('priv.pem', 'leaf.crt', 'text.txt', 'garbage.bin'):
        bad(CRL, _option, '@D@/' + _file, title='local_ca_crl %s holds %s (not overwritten)' % (_option, _file))
for _option in ('path', 'chain_path', 'fullchain_path'):
    for _file in ('priv.pem', 'good.csr'):
        bad(LCC, _option, '@D@/' + _file, title='local_ca_certificate %s holds %s (not overwritten)' % (_option, _file))
for _file in ('garbage.bin', 'text.txt'):
    bad(DEPF, 'certificate', '@FILE:%s@' % _file, title='deploy_files certificate is %s' % _file)
    bad(DEPF, 'chain', '@FILE:%s@' % _file, title='deploy_files chain is %s' % _file, chain_path='@D@/out/d.chain')
bad(DEPF, 'certificate', '@FILE:good.key@', title='deploy_files certificate is a private key')
bad(DEPF, 'key_path', '@D@/priv.pem', title='deploy_files key_path does not match the certificate')
bad(CERT, 'csr', 'not a CSR at all', drop=('csr_path',), expect='csr')
bad(CERT, 'current_certificate', '\u00ff garbage', title='certificate current_certificate is garbage')
bad(LCA, 'passphrase', 'wrong', title='local_ca wrong passphrase of an existing unencrypted CA', path='@D@/ca')
bad(LCC, 'ca_passphrase', 'wrong', title='local_ca_certificate passphrase given, CA key not encrypted')

# -- policy of the local CA --------------------------------------------------------------------
for _module, _args, _option in (
        (LCC, {'csr_path': '@D@/rsa1024.csr'}, 'csr'),
        (LCC, {'csr_path': '@D@/ipdns.csr'}, 'subject_alt_names'),
        (LCC, {'csr_path': '@D@/evil.csr', 'allowed_domains': ['example.com']}, 'subject_alt_names'),
        (LCC, {'csr_path': '@D@/wild.csr', 'profile': 'tls_client'}, 'subject_alt_names'),
        (LCC, {'csr_path': '@D@/wild.csr', 'allow_wildcards': False}, 'subject_alt_names'),
        (LCC, {'csr_path': '@D@/good.csr', 'profile': 'email'}, 'subject_alt_names'),
        (CERT, {'csr_path': '@D@/rsa1024.csr'}, 'csr'),
        (CERT, {'csr_path': '@D@/ipdns.csr'}, 'subject_alt_names')):
    case('local_ca' if _module == LCC else 'certificate',
         '%s signs %s' % (_short(_module), ', '.join('%s=%s' % kv for kv in sorted(_args.items()))),
         _module, dict(BASE[_module], **_args), _option)
for _value in ('DNS:127.0.0.1', 'DNS:bad name', 'IP:999.1.1.1', 'DNS:', 'email:not-an-email', 'XYZ:foo',
               'DNS:' + 'a' * 300):
    bad(REQ, 'subject_alt_names', [_value], title='certificate_request subject_alt_names %r' % _value[:30])
for _value in (['nonsense'], ['digitalSignature', 'bogus']):
    bad(REQ, 'key_usage', _value)
bad(REQ, 'extended_key_usage', ['notAnEku'])
bad(REQ, 'subject', {'NOPE': 'x'}, title='certificate_request subject with an unknown attribute')
bad(REQ, 'owner', 'no-such-user-certforge', title='certificate_request owner does not exist')
bad(REQ, 'group', 'no-such-group-certforge', title='certificate_request group does not exist')
bad(REQ, 'privatekey_path', '@D@/leaf.crt', title='certificate_request privatekey_path holds a certificate')
bad(REQ, 'privatekey_path', '@D@/garbage.bin', title='certificate_request privatekey_path holds garbage')
bad(REQ, 'csr_path', '@D@/priv.pem', title='certificate_request csr_path holds a private key')
bad(REQ, 'csr_path', '@D@/out/new.key', title='certificate_request csr_path equals privatekey_path')
bad(REQ, 'privatekey_passphrase', 'pw', title='certificate_request passphrase for an unencrypted key',
    privatekey_path='@D@/good.key')
bad(REQ, 'requests', [{'privatekey_path': '@D@/out/a.key', 'csr_path': '@D@/out/a.csr', 'common_name': 'a.example.com'},
                      {'privatekey_path': '@D@/out/a.key', 'csr_path': '@D@/out/b.csr', 'common_name': 'b.example.com'}],
    title='certificate_request two requests share a key', expect='requests[1].privatekey_path',
    drop=('privatekey_path', 'csr_path', 'common_name'))
bad(REQ, 'requests', [{'privatekey_path': '@D@/out/a.key', 'csr_path': '@D@/out/a.csr', 'common_name': 'a.example.com'},
                      {'privatekey_path': '@D@/out/b.key', 'csr_path': '@D@/adir', 'common_name': 'b.example.com'}],
    title='certificate_request second request writes to a directory', expect='requests[1].csr_path',
    drop=('privatekey_path', 'csr_path', 'common_name'))

# -- connection options of the CA modules (refused before any request) -------------------------
for _module in (ACME_CERT, ACME_ACCT, ACME_REV):
    for _value in ('not a url', 'ftp://x', ''):
        bad(_module, 'acme_directory', _value)
    bad(_module, 'acme_ca_bundle', '@D@/missing.pem', title='%s acme_ca_bundle missing' % _short(_module))
    bad(_module, 'acme_ca_bundle', '@D@/garbage.bin', title='%s acme_ca_bundle is garbage' % _short(_module))
    bad(_module, 'account_key_path', '@D@/garbage.bin',
        title='%s account_key_path holds garbage' % _short(_module))
for _module in (SECT_CERT, SECT_ACCT, SECT_INFO):
    for _value in ('not a url', ''):
        bad(_module, 'base_url', _value)
    bad(_module, 'ca_bundle', '@D@/missing.pem', title='%s ca_bundle missing' % _short(_module))
    bad(_module, 'ca_bundle', '@D@/garbage.bin', title='%s ca_bundle is garbage' % _short(_module))
    bad(_module, 'client_cert', '@D@/missing.pem', title='%s client_cert missing' % _short(_module))
bad(ACME_CERT, 'http01_webroot', '@D@/text.txt', title='acme_certificate http01_webroot is a file')
bad(ACME_CERT, 'http01_webroot', '@D@/missing-dir', title='acme_certificate http01_webroot is missing')
bad(ACME_CERT, 'dns_hook_add', [], title='acme_certificate dns_hook_add empty', challenge='dns-01')
bad(ACME_CERT, 'csr_path', '@D@/wild.csr', title='acme_certificate wildcard with http-01', expect='challenge')
bad(ACME_REV, 'reason', 'because', title='acme_certificate_revoke unknown reason')
bad(SECT_CERT, 'ssl_id', 0, title='sectigo_certificate ssl_id 0', state='revoked')
bad(SECT_INFO, 'query', 'foo[?', title='sectigo_certificate_info malformed JMESPath query')
bad(SECT_INFO, 'download_dir', '@D@/text.txt', title='sectigo_certificate_info download_dir is a file')

# -- deploy --------------------------------------------------------------------------------------
bad(DEP, 'target', '', title='deploy target empty')
bad(DEP, 'target', 'no_such_target', title='deploy target unknown')
for _cmd in ([], ''):
    bad(DEPN, 'validate_command', _cmd, title='deploy_nginx validate_command %r' % (_cmd,))
bad(DEPF, 'certificate_path', '@D@/leaf.key', title='deploy_files certificate_path is the key file',
    expect='certificate_path')
bad(DEPF, 'backup_dir', '@D@/text.txt', title='deploy_files backup_dir is a file')
bad(DEPF, 'owner', 'no-such-user-certforge', title='deploy_files owner does not exist')
bad(DEPF, 'certificates', [{'name': 'a', 'certificate': '@LEAF@', 'certificate_path': '@D@/out/a.crt'},
                           {'name': 'b', 'certificate': '@LEAF@', 'certificate_path': '@D@/out/a.crt'}],
    title='deploy_files two certificates write the same file', expect='certificate_path',
    drop=('certificate', 'certificate_path', 'key_path'))

# -- the roles -----------------------------------------------------------------------------------
_CERT_ROLE = {'certificate_dir': '@D@/certs', 'certificate_issuer_options': {'ca_path': '@D@/ca'},
              'certificate_owner': '@USER@', 'certificate_group': '@GROUP@'}


def _cert_role(title, option, entry=None, **role_vars):
    values = dict(_CERT_ROLE)
    values['certificate_list'] = [dict({'name': 'www', 'common_name': 'www.example.com'}, **(entry or {}))]
    values.update(role_vars)
    role_case(title, 'certforge.pki.certificate', values, option)


for _name in ('../../escape', '../x', 'a/b', '..', '.', '', '-x', 'a' * 300, 'x\ny'):
    _cert_role('certificate role name %r' % _name[:20], 'certificate_list', {'name': _name})
_cert_role('certificate role entry without a name', 'certificate_list', {'name': None})
_cert_role('certificate role certificate_list not a list', 'certificate_list', None, certificate_list='www')
_cert_role('certificate role duplicate names', 'certificate_list', None,
           certificate_list=[{'name': 'www'}, {'name': 'www'}])
_cert_role('certificate role unknown key in an entry', 'certificate_list', {'commonname': 'typo'})
for _mode in (644, '4777', '0666', 'u+x'):
    _cert_role('certificate role certificate_cert_mode %r' % (_mode,), 'certificate_cert_mode', None,
               certificate_cert_mode=_mode)
_cert_role('certificate role key_type bad', 'certificate_key_type', None, certificate_key_type='DSA')
_cert_role('certificate role entry key_type bad', 'certificate_list', {'key_type': 'DSA'})
_cert_role('certificate role entry key_size 1024', 'certificate_list', {'key_type': 'RSA', 'key_size': 1024})
_cert_role('certificate role validity_days -1', 'certificate_validity_days', None, certificate_validity_days=-1)
_cert_role('certificate role entry validity_days -1', 'certificate_list', {'validity_days': -1})
_cert_role('certificate role wait_timeout -1', 'certificate_wait_timeout', None, certificate_wait_timeout=-1)
_cert_role('certificate role renew_before_days -1', 'certificate_renew_before_days', None,
           certificate_renew_before_days=-1)
_cert_role('certificate role certificate_dir relative', 'certificate_dir', None, certificate_dir='relative/dir')
_cert_role('certificate role certificate_dir is a file', 'certificate_dir', None, certificate_dir='@D@/text.txt')
_cert_role('certificate role certificate_dir with NUL', 'certificate_dir', None, certificate_dir='@D@/' + NUL)
_cert_role('certificate role issuer empty', 'certificate_issuer', None, certificate_issuer='')
_cert_role('certificate role target empty', 'certificate_target', None, certificate_target='')
_cert_role('certificate role SAN with IP as DNS', 'certificate_list', {'subject_alt_names': ['DNS:127.0.0.1']})
_cert_role('certificate role entry dir with ..', 'certificate_list', {'dir': '@D@/certs/../../x'})
_cert_role('certificate role entry dir relative', 'certificate_list', {'dir': 'rel'})
_cert_role('certificate role entry privatekey_path relative', 'certificate_list', {'privatekey_path': 'k.key'})
_cert_role('certificate role verify port 70000', 'certificate_list', {'verify': {'port': 70000}})
_cert_role('certificate role verify server_name too long', 'certificate_list', {'verify': {'server_name': LONG}})
_cert_role('certificate role http01_webroot relative', 'certificate_http01_webroot', None,
           certificate_http01_webroot='relative')

_LCA_ROLE = {'local_ca_dir': '@D@/cas'}
for _var, _value in (('local_ca_root_name', '../../x'), ('local_ca_root_name', 'a/b'), ('local_ca_root_name', '..'),
                     ('local_ca_root_name', ''), ('local_ca_root_name', 'x' * 300),
                     ('local_ca_intermediate_name', '../../y'), ('local_ca_intermediate_name', 'root'),
                     ('local_ca_root_validity_days', -1), ('local_ca_root_validity_days', 10000000),
                     ('local_ca_intermediate_validity_days', 0), ('local_ca_intermediate_path_length', -1),
                     ('local_ca_key_type', 'DSA'), ('local_ca_key_curve', 'secp999'),
                     ('local_ca_dir', 'relative/cas'), ('local_ca_dir', '@D@/text.txt'),
                     ('local_ca_dir', '@D@/' + NUL), ('local_ca_root_common_name', ''),
                     ('local_ca_root_common_name', 'c' * 65),
                     ('local_ca_name_constraints_permitted', ['DNS:bad name'])):
    _vars = dict(_LCA_ROLE, **{_var: _value})
    if _var.startswith('local_ca_intermediate') or _var == 'local_ca_name_constraints_permitted':
        _vars['local_ca_intermediate'] = True
    role_case('local_ca role %s=%r' % (_var, _value if not isinstance(_value, str) else _value[:20]),
              'certforge.pki.local_ca', _vars, _var)

for _index, _case in enumerate(CASES):
    _case.id = '%03d' % _index


# ---------------------------------------------------------------------------------------------
# running a batch
# ---------------------------------------------------------------------------------------------

def _subst(value, d, world):
    if isinstance(value, str):
        if value == '@LEAF@':
            return (world / 'leaf.crt').read_text()
        match = re.match(r'^@FILE:(.+)@$', value)
        if match:
            return (world / match.group(1)).read_bytes().decode('latin-1')
        import grp
        import pwd
        return (value.replace('@D@', str(d)).replace('@USER@', pwd.getpwuid(os.getuid()).pw_name)
                .replace('@GROUP@', grp.getgrgid(os.getgid()).gr_name))
    if isinstance(value, dict):
        return dict((k, _subst(v, d, world)) for k, v in value.items())
    if isinstance(value, list):
        return [_subst(v, d, world) for v in value]
    return value


def _block(c, d, world):
    if c.role:
        task = {'name': 'case %s' % c.id, 'ansible.builtin.include_role': {'name': c.role},
                'vars': _subst(c.role_vars, d, world)}
    else:
        task = {'name': 'case %s' % c.id, c.module: _subst(c.args, d, world)}
    return {'name': 'block %s' % c.id, 'block': [task],
            'rescue': [{'name': 'rescued %s' % c.id,
                        'ansible.builtin.set_fact': {'bad_input_%s' % c.id: '{{ ansible_failed_result }}'}}]}


_BATCH_RESULTS = {}


def _segment(stdout, case_id):
    """What ansible-playbook printed for one case: from its task to the next case's."""
    start = stdout.find('TASK [case %s]' % case_id)
    if start < 0:
        start = stdout.find('case %s' % case_id)
    end = stdout.find('TASK [case ', start + 10)
    return stdout[start:end if end > 0 else len(stdout)]


def run_batch(batch, world, home, base):
    if batch in _BATCH_RESULTS:
        return _BATCH_RESULTS[batch]
    cases = [c for c in CASES if c.batch == batch]
    root = base / batch
    root.mkdir(parents=True)
    before = {}
    for c in cases:
        d = root / c.id
        shutil.copytree(str(world), str(d), symlinks=True)
        before[c.id] = snapshot(str(d))
    orders = root / 'global-orders'
    plays = [{'name': 'Bad input: %s' % batch, 'hosts': 'localhost', 'gather_facts': False,
              'tasks': [_block(c, root / c.id, world) for c in cases]}]
    proc, data = _run(home, root / 'run', plays, {'CERTFORGE_ORDER_STORE': str(orders)})
    by_task = {}
    for entry in data['tasks']:
        by_task[entry['task']] = entry
    after = dict((c.id, snapshot(str(root / c.id))) for c in cases)
    out = {'proc': proc, 'tasks': by_task, 'before': before, 'after': after,
           'orders_exist': orders.exists()}
    _BATCH_RESULTS[batch] = out
    return out


@pytest.fixture(scope='session')
def bad_input_base(tmp_path_factory):
    return tmp_path_factory.mktemp('bad-input')


def pytest_generate_tests(metafunc):
    if 'bad_case' in metafunc.fixturenames:
        ids = ['%s-%s-%s' % (c.batch, c.id, re.sub(r'[^\w.=-]+', '_', c.title)) for c in CASES]
        metafunc.parametrize('bad_case', CASES, ids=ids)


def test_bad_input(bad_case, world, ansible_home, bad_input_base, request):
    c = bad_case
    request.config._certforge_bad_input_cases = getattr(request.config, '_certforge_bad_input_cases', 0) + 1
    got = run_batch(c.batch, world, ansible_home, bad_input_base)
    proc = got['proc']
    # ansible-core 2.19 with ANSIBLE_DISPLAY_TRACEBACK=error shows its own frames for every
    # failed task; an exception of ours shows frames of this collection or a Python error class
    segment = _segment(proc.stdout, c.id)
    raised = [t for t in EXCEPTION_LINE.findall(segment) if t.split('.')[-1] not in HANDLED]
    assert not raised and not EXCEPTION_TEXT.search(segment), \
        'exception text (%s) in the output of case %s:\n%s' % (raised, c.id, segment[-4000:])
    entry = got['tasks'].get('case %s' % c.id)
    assert entry is not None, 'case %s did not run: %s' % (c.id, proc.stdout[-3000:] + proc.stderr[-1500:])
    rescued = got['tasks'].get('rescued %s' % c.id)
    assert rescued is not None, \
        'bad input accepted (%s): %s' % (c.title, json.dumps(entry['result'], default=str)[:1500])
    result = rescued['result']['ansible_facts']['bad_input_%s' % c.id]
    assert result.get('failed'), json.dumps(result, default=str)[:1500]
    text = json.dumps(result, default=str)
    assert not EXCEPTION_TEXT.search(text), 'exception text in the result: %s' % text[:3000]
    # ansible-core itself adds its own frames as 'exception' with DISPLAY_TRACEBACK=error
    exception = str(result.get('exception', '')) + str(result.get('exception_detail', ''))
    assert not [t for t in EXCEPTION_LINE.findall(exception) if t.split('.')[-1] not in HANDLED], exception[-3000:]
    assert 'unexpected failure' not in str(result.get('msg')), result.get('msg')
    msg = str(result.get('msg', ''))
    option = result.get('error_option') or ''
    for item in result.get('results') or []:      # a failed loop: the failed items say why
        if isinstance(item, dict) and item.get('failed'):
            msg += ' ' + str(item.get('msg', ''))
            option = option or item.get('error_option') or ''
    wanted = c.option if isinstance(c.option, tuple) else (c.option,)
    assert any(option == w or option.startswith(w + '.') or option.startswith(w + '[')
               or re.search(r'(^|[^\w])%s($|[^\w])' % re.escape(w), msg) for w in wanted), \
        'the message does not name %s: option=%r msg=%r' % (' or '.join(wanted), option, msg)
    changes = diff_snapshots(got['before'][c.id], got['after'][c.id])
    assert not changes, 'files changed by a refused input: %s' % changes
    assert not got['orders_exist'], 'the order store was created by a refused input'
