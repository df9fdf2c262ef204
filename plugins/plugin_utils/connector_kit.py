# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connector conformance kit: runs named clauses against an installed connector.

    python -m ansible_collections.certforge.pki.plugins.plugin_utils.connector_kit \\
        --issuer NAME --setup my_package.kit
    python -m ansible_collections.certforge.pki.plugins.plugin_utils.connector_kit \\
        --target NAME --setup my_package.kit
    python -m ansible_collections.certforge.pki.plugins.plugin_utils.connector_kit \\
        --notifier NAME --setup my_package.kit

(with the directory holding ``ansible_collections`` on PYTHONPATH).  It prints one line
``KIT <kind> <name> <passed>/<total>`` and the failing clauses by name; exit 1 if any failed.

A connector package gives the kit what it cannot guess with a *setup*: a module with a function
``kit_setup(kind, name, workdir)`` returning a dict:

issuers: ``options`` (issuer_options that work), ``count_orders(name) -> int`` (orders the CA
holds for the kit's certificate ``name``, whose common name is ``<name>.<domain>``), ``secrets``
(option values that must never show), optionally ``domain`` (the DNS domain of the kit's names,
default ``kit.test``), ``reject_common_name`` (a CN the CA refuses), ``fail_common_name`` (a CN
whose order the CA fails while pending) with ``fail_options`` (issuer_options for that order, when
the failure needs other ones), ``transient_fault()`` (makes the CA answer every request with a
transient failure such as 429 or 503 with Retry-After; returns a function that ends it),
``transient_options`` (options pointing at an endpoint that answers so) or ``unreachable_options``
(options that point at no CA), ``not_applicable`` ({clause: reason}),
``cleanup()``.

targets: ``options`` (target_options), ``request_options`` (standard per-certificate options:
paths under ``workdir``), ``certificate_options``, optionally ``cleanup()``.

notifiers: ``options`` (options that reach a receiver the setup runs), ``received() -> int``
(messages the receiver got), ``failing_options`` (options pointing at a receiver that fails
every request, or at nothing), ``secrets`` (option values that must never show), optionally
``cleanup()``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import traceback

CLAUSES = {'issuer': [], 'target': [], 'notifier': []}
MODULE = 'ansible_collections.certforge.pki.plugins.plugin_utils.connector_kit'


class NotApplicable(Exception):
    """The setup declares a clause does not apply to this connector (with the reason)."""


def _require(condition, message='a conformance clause failed'):
    """A clause's check: raise AssertionError (the kit reports the clause as failed)."""
    if not condition:
        raise AssertionError(message)


def clause(kind):
    def register(func):
        CLAUSES[kind].append(func)
        return func
    return register


class Kit:
    """State shared by the clauses of one connector."""

    def __init__(self, kind, name, setup, workdir, plugins=()):
        from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
        self.kind, self.name, self.setup, self.workdir = kind, name, setup, workdir
        self.plugins = builtin_plugins() + list(plugins)
        self.registry = Registry(self.plugins, load_entry_points=True)
        self.seen = []          # every result, order, event and error text, for the secret check

    def cls(self):
        return self.registry.connector_class(self.kind, self.name)

    def cn(self, label):
        """The common name the kit uses for ``label``, in the setup's domain."""
        return '%s.%s' % (label, self.setup.get('domain') or 'kit.test')


def builtin_plugins():
    """The collection's own connectors, registered first (as the modules register them), so
    the kit runs against a built-in by name; installed packages come from their entry points."""
    from ansible_collections.certforge.pki.plugins.module_utils.certificate import BUILTIN_PLUGINS
    from ansible_collections.certforge.pki.plugins.module_utils.notifiers.dispatch import BUILTIN_PLUGINS as NOTIFIERS
    from ansible_collections.certforge.pki.plugins.modules import deploy
    return list(BUILTIN_PLUGINS) + list(deploy.all_plugins()) + list(NOTIFIERS)


def _sdk():
    from ansible_collections.certforge.pki.plugins.module_utils import sdk
    return sdk


# ---------------------------------------------------------------------------------------------
# test material
# ---------------------------------------------------------------------------------------------

def make_key_and_csr(common_name, sans=None):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(n) for n in (sans or [common_name])]
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
           .add_extension(x509.SubjectAlternativeName(names), critical=False)
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode('ascii')
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode('ascii')


def make_certificate(common_name, key_pem=None):
    """(leaf PEM, chain PEM, key PEM) from a throw-away CA."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'kit issuing CA')])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    if key_pem is None:
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode('ascii')
    key = serialization.load_pem_private_key(key_pem.encode('ascii'), password=None)
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return leaf.public_bytes(pem).decode('ascii'), ca.public_bytes(pem).decode('ascii'), key_pem


# ---------------------------------------------------------------------------------------------
# issuer clauses
# ---------------------------------------------------------------------------------------------

def _issuer(kit, options=None):
    from ansible_collections.certforge.pki.plugins.module_utils.core.options import check_options
    cls = kit.cls()
    return cls(check_options(cls, dict(kit.setup['options'] if options is None else options)))


def _issue(kit, name, common_name=None, wait=30, store=None, connector=None, options=None):
    from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
    from ansible_collections.certforge.pki.plugins.module_utils.core import polling
    csr_path = os.path.join(kit.workdir, '%s.csr' % name)
    if os.path.exists(csr_path):            # the same request across a kill and its resume
        with open(csr_path) as handle:
            csr = handle.read()
    else:
        dummy, csr = make_key_and_csr(common_name or kit.cn(name))
        with open(csr_path, 'w') as handle:
            handle.write(csr)
    options = kit.setup['options'] if options is None else options
    connector = connector or _issuer(kit, options)
    request = core_issue.build_request({'name': name, 'issuer_options': options}, csr)
    events = []
    result = core_issue.issue(kit.registry, connector, request, store_path=store or os.path.join(kit.workdir, 'orders'),
                              wait_timeout=wait, schedule=polling.Schedule.steps((0.2, 0.5, 1.0), jitter=0),
                              emit=events.append)
    kit.seen.extend([result, [e.__dict__ for e in events]])
    return result, events, connector


@clause('issuer')
def registers_and_subclasses(kit):
    cls = kit.cls()
    _require(issubclass(cls, _sdk().IssuerConnector), '%r does not subclass sdk.IssuerConnector' % cls)


@clause('issuer')
def declares_option_spec(kit):
    from ansible_collections.certforge.pki.plugins.module_utils.core.options import check_options, option_spec_of
    cls = kit.cls()
    spec = option_spec_of(cls)
    _require(spec is not None, 'option_spec is None: issuer_options would go unchecked')
    check_options(cls, dict(kit.setup['options']))
    for key, value in kit.setup['options'].items():
        if value in kit.setup.get('secrets', ()):
            _require(spec[key].get('no_log'), 'option %s holds a secret but is not no_log' % key)


@clause('issuer')
def issues_through_the_order_store(kit):
    result, events, dummy = _issue(kit, 'kit-roundtrip')
    _require(result['status'] == 'issued', 'status %s' % result.get('status'))
    _require(result['certificate'].startswith('-----BEGIN CERTIFICATE-----'))
    _require([e.kind for e in events][-1] == 'issued')
    kit.issued = result


@clause('issuer')
def request_carries_csr_facts(kit):
    seen = []
    connector = _issuer(kit)
    submit = connector.submit

    def recording(request):
        seen.append(request)
        return submit(request)
    connector.submit = recording
    cn = kit.cn('facts')
    _issue(kit, 'kit-facts', common_name=cn, connector=connector)
    _require(seen, 'submit was not called')
    req = seen[0]
    _require(req.common_name == cn, 'common_name %r' % req.common_name)
    _require('DNS:' + cn in (req.subject_alt_names or []), 'subject_alt_names %r' % req.subject_alt_names)
    _require(req.key_type, 'key_type empty')
    _require(req.token, 'no token')


@clause('issuer')
def issued_result_has_chain(kit):
    result = getattr(kit, 'issued', None) or _issue(kit, 'kit-chain')[0]
    _require(result.get('chain'), 'an issued result carries an empty chain (ca_chain() not used?)')


def _killed_then_resumed(kit, name, stage):
    """Run the issue in a child process killed at ``stage``; resume in this process; exactly one
    order at the CA."""
    store = os.path.join(kit.workdir, 'orders-%s' % stage)
    spec = {'kind': kit.kind, 'name': kit.name, 'setup': kit.setup_module, 'workdir': kit.workdir,
            'cert': name, 'stage': stage, 'store': store, 'plugins': kit.plugin_modules}
    proc = subprocess.run([sys.executable, '-m', MODULE, '--child', json.dumps(spec)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False)
    # a CA that answers at once never polls: its child runs to the end
    killed = proc.returncode == 137 or (proc.returncode == 0 and stage != 'after_submit')
    _require(killed, 'the child was not killed at %s (rc=%s): %s' % (stage, proc.returncode, proc.stderr[-2000:]))
    result, dummy, dummy = _issue(kit, name, store=store)
    _require(result['status'] == 'issued', 'resumed run ended %s' % result.get('status'))
    count = kit.setup.get('count_orders')
    if count is not None:
        _require(count(name) == 1, '%d orders at the CA for one certificate' % count(name))


def _child(spec):
    setup = load_setup(spec['setup'], spec['kind'], spec['name'], spec['workdir'])
    kit = Kit(spec['kind'], spec['name'], setup, spec['workdir'], plugins=_plugins(spec['plugins']))
    connector = _issuer(kit)
    stage = spec['stage']
    submit, poll = connector.submit, connector.poll

    def dying_submit(request):
        order = submit(request)
        if stage == 'after_submit':
            os._exit(137)
        return order

    def dying_poll(order):
        if stage == 'before_poll':
            os._exit(137)
        order = poll(order)
        if stage == 'after_poll':
            os._exit(137)
        return order
    connector.submit, connector.poll = dying_submit, dying_poll
    _issue(kit, spec['cert'], store=spec['store'], connector=connector)
    os._exit(0)


@clause('issuer')
def killed_after_submit_resumes_one_order(kit):
    _killed_then_resumed(kit, 'kit-kill-submit', 'after_submit')


@clause('issuer')
def killed_before_poll_resumes_one_order(kit):
    _killed_then_resumed(kit, 'kit-kill-before-poll', 'before_poll')


@clause('issuer')
def killed_after_poll_resumes_one_order(kit):
    _killed_then_resumed(kit, 'kit-kill-after-poll', 'after_poll')


@clause('issuer')
def rejection_is_raised(kit):
    cn = kit.setup.get('reject_common_name')
    _require(cn, 'the setup names no reject_common_name')
    from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError
    try:
        result, dummy, dummy = _issue(kit, 'kit-reject', common_name=cn, wait=5)
    except CertforgeError as exc:
        kit.seen.append(str(exc))
        return
    raise AssertionError('a refused request was returned as %s, not raised' % result.get('status'))


@clause('issuer')
def failed_order_ends_the_run(kit):
    cn = kit.setup.get('fail_common_name')
    _require(cn, 'the setup names no fail_common_name')
    import time
    from ansible_collections.certforge.pki.plugins.module_utils.core.errors import PermanentError
    start = time.monotonic()
    try:
        result, dummy, dummy = _issue(kit, 'kit-fail', common_name=cn, wait=60, options=kit.setup.get('fail_options'))
    except PermanentError as exc:
        kit.seen.append(str(exc))
        _require(time.monotonic() - start < 30, 'the failure was reported only after the timeout')
        return
    raise AssertionError('a failed order ended as %s' % result.get('status'))


@clause('issuer')
def transient_error_carries_retry_after(kit):
    fault = kit.setup.get('transient_fault')
    if fault:
        options, what = kit.setup['options'], 'a CA answering with transient failures'
    elif kit.setup.get('transient_options'):
        options, what = kit.setup['transient_options'], 'a CA answering with transient failures'
    else:
        options, what = kit.setup.get('unreachable_options'), 'an unreachable CA'
    _require(options, 'the setup gives none of transient_fault, transient_options, unreachable_options')
    from ansible_collections.certforge.pki.plugins.module_utils.core.errors import TransientError
    from ansible_collections.certforge.pki.plugins.module_utils.core.model import CertificateRequest
    cn = kit.cn('transient')
    dummy, csr = make_key_and_csr(cn)
    connector = _issuer(kit, options)
    end = fault() if fault else None
    try:
        connector.submit(CertificateRequest(name='kit-transient', csr_pem=csr, token='kit-transient-token',
                                            common_name=cn, subject_alt_names=['DNS:' + cn]))
    except TransientError as exc:
        _require(exc.retry_after is not None, 'TransientError without retry_after from %s' % what)
        kit.seen.append(str(exc))
        return
    except Exception as exc:  # pylint: disable=broad-except
        raise AssertionError('%s raised %s, not TransientError: %s' % (what, type(exc).__name__, exc))
    finally:
        if end is not None:
            end()
    raise AssertionError('submit to %s returned' % what)


@clause('issuer')
def details_are_json_safe(kit):
    from ansible_collections.certforge.pki.plugins.module_utils.core.model import CertificateRequest
    connector = _issuer(kit)
    cn = kit.cn('json')
    dummy, csr = make_key_and_csr(cn)
    order = connector.submit(CertificateRequest(name='kit-json', csr_pem=csr, token='kit-json-token',
                                                common_name=cn, subject_alt_names=['DNS:' + cn]))
    json.dumps(order.details)
    kit.seen.append(order.to_dict())
    for found in connector.find_orders(CertificateRequest(name='kit-json', csr_pem=csr, token='kit-json-token')):
        json.dumps(found.details)
        kit.seen.append(found.to_dict())


@clause('issuer')
def revokes(kit):
    result = getattr(kit, 'issued', None) or _issue(kit, 'kit-revoke')[0]
    from ansible_collections.certforge.pki.plugins.module_utils.core.model import Revocation
    connector = _issuer(kit)
    revocation = Revocation(certificate_pem=result['certificate'], serial=result['serial'].replace(':', ''),
                            reason='superseded', order_id=result.get('order_id'))
    connector.revoke(revocation)


@clause('issuer')
def no_secret_in_results_events_or_errors(kit):
    secrets = [s for s in kit.setup.get('secrets', ()) if s]
    text = json.dumps(kit.seen, default=str)
    leaked = [s for s in secrets if s in text]
    _require(not leaked, 'a secret option value shows in a result, event or error')


# ---------------------------------------------------------------------------------------------
# target clauses
# ---------------------------------------------------------------------------------------------

class _Runner:
    def run_command(self, argv):
        proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def _snapshot(root):
    state = {}
    for base, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != '.certforge-backup']
        for name in names:
            path = os.path.join(base, name)
            st = os.stat(path)
            with open(path, 'rb') as handle:
                state[path] = (handle.read(), oct(st.st_mode), st.st_uid, st.st_gid)
    return state


def _target_request(kit, serial_name='kit'):
    from ansible_collections.certforge.pki.plugins.module_utils.core.model import DeployRequest
    key_path = os.path.join(kit.workdir, 'site', 'key.pem')
    if not os.path.exists(key_path):
        os.makedirs(os.path.dirname(key_path), exist_ok=True)
        kit.key_pem = make_certificate('site.kit.test')[2]
        with open(key_path, 'w') as handle:
            handle.write(kit.key_pem)
        os.chmod(key_path, 0o600)
    leaf, chain, dummy = make_certificate('site.kit.test', key_pem=kit.key_pem)
    options = dict(kit.setup.get('request_options') or {})
    options.setdefault('option_prefix', '')
    return DeployRequest(name='site', certificate_pem=leaf, chain_pem=[chain], key_path=key_path, options=options,
                         certificate_options=dict(kit.setup.get('certificate_options') or {}))


def _target(kit, fail_at=None):
    from ansible_collections.certforge.pki.plugins.module_utils.core.errors import DeployError
    from ansible_collections.certforge.pki.plugins.module_utils.core.options import check_options
    cls = kit.cls()
    options = check_options(cls, dict(kit.setup.get('options') or {}), option='target_options', kind='target',
                            keep_unset=True)
    target = cls(options, _Runner())
    if fail_at:
        real = getattr(target, fail_at)

        def failing(applied):
            real(applied)
            raise DeployError('injected %s failure' % fail_at, option='kit')
        setattr(target, fail_at, failing)
    return target


def _deploy(kit, target, request, check_mode=False):
    from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import deploy
    result = deploy(target, [request], check_mode=check_mode)
    kit.seen.append(result)
    return result


@clause('target')
def target_registers_and_subclasses(kit):
    cls = kit.cls()
    _require(issubclass(cls, _sdk().TargetConnector), '%r does not subclass sdk.TargetConnector' % cls)


@clause('target')
def target_declares_option_spec(kit):
    from ansible_collections.certforge.pki.plugins.module_utils.core.options import option_spec_of
    _require(option_spec_of(kit.cls()) is not None, 'option_spec is None: target_options would go unchecked')


@clause('target')
def plan_is_idempotent(kit):
    from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import engine
    request = _target_request(kit)
    eng = engine(_target(kit))
    first, second = eng.plan(request), eng.plan(request)
    _require([(f.path, f.content, f.mode) for f in first.files] == [(f.path, f.content, f.mode) for f in second.files])
    _require(first.changed)


@clause('target')
def check_mode_writes_nothing(kit):
    request = _target_request(kit)
    before = _snapshot(kit.workdir)
    result = _deploy(kit, _target(kit), request, check_mode=True)
    _require(result['changed'], 'check mode reports no change for a new certificate')
    _require(_snapshot(kit.workdir) == before, 'check mode wrote files')


@clause('target')
def deploys_then_changes_nothing(kit):
    request = _target_request(kit)
    first = _deploy(kit, _target(kit), request)
    _require(first['changed'] and first['files'])
    second = _deploy(kit, _target(kit), request)
    _require(not second['changed'], 'a second deploy of the same certificate changed %s' % second['files'])
    kit.deployed = True


def _rollback_at(kit, stage):
    from ansible_collections.certforge.pki.plugins.module_utils.core.errors import DeployError
    if not getattr(kit, 'deployed', False):
        _deploy(kit, _target(kit), _target_request(kit))
        kit.deployed = True
    before = _snapshot(kit.workdir)
    request = _target_request(kit)          # a new certificate for the same key
    try:
        _deploy(kit, _target(kit, fail_at=stage), request)
    except DeployError as exc:
        kit.seen.append(str(exc))
        after = _snapshot(kit.workdir)
        changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
        _require(not changed, 'not restored byte-exact after a %s failure: %s' % (stage, changed))
        return
    raise AssertionError('a %s failure did not fail the deploy' % stage)


@clause('target')
def rollback_byte_exact_after_validate_failure(kit):
    _rollback_at(kit, 'validate')


@clause('target')
def rollback_byte_exact_after_reload_failure(kit):
    _rollback_at(kit, 'reload')


@clause('target')
def rollback_byte_exact_after_verify_failure(kit):
    _rollback_at(kit, 'verify')


@clause('target')
def no_key_material_in_results(kit):
    text = json.dumps(kit.seen, default=str)
    _require('PRIVATE KEY' not in text, 'key material in a result or diff')
    key = getattr(kit, 'key_pem', '')
    body = ''.join(key.splitlines()[1:-1])
    _require(not body or body[:40] not in text, 'key material in a result or diff')


@clause('target')
def imports_in_the_deploy_payload(kit):
    ansible = os.path.join(os.path.dirname(sys.executable), 'ansible')
    request = _target_request(kit)
    args = dict(target=kit.name, target_options=kit.setup.get('options') or {},
                certificate=request.certificate_pem, chain=request.chain_pem[0], key_path=request.key_path,
                certificate_options=kit.setup.get('certificate_options') or {})
    args.update((k, v) for k, v in (kit.setup.get('request_options') or {}).items() if k != 'option_prefix')
    proc = subprocess.run([ansible if os.path.exists(ansible) else 'ansible', 'localhost', '-m', 'certforge.pki.deploy',
                           '--check', '-a', json.dumps(args), '-e', 'ansible_python_interpreter=%s' % sys.executable],
                          capture_output=True, text=True, timeout=180, check=False, env=dict(os.environ))
    _require(proc.returncode == 0, 'the deploy module could not use the target on a managed host: %s' % (
        (proc.stdout + proc.stderr)[-1500:]))


# ---------------------------------------------------------------------------------------------
# notifier clauses
# ---------------------------------------------------------------------------------------------

NOTIFIER_KINDS = ('issued', 'renewed', 'pending', 'revoked', 'deployed', 'rolled_back', 'failed')


def _notifier(kit, options=None):
    from ansible_collections.certforge.pki.plugins.module_utils.core.options import check_options
    cls = kit.cls()
    checked = check_options(cls, dict(kit.setup['options'] if options is None else options),
                            option='options', kind='notifier')
    return cls(checked)


def _kit_event(kind, name='kit-notify'):
    sdk = _sdk()
    details = {'serial': '0A0B', 'days_left': 5} if kind != 'failed' else {'error': 'kit failure'}
    return sdk.Event(kind, name, issuer='kit_ca' if kind in ('issued', 'renewed', 'pending', 'revoked') else None,
                     target='kit_target' if kind in ('deployed', 'rolled_back', 'failed') else None, details=details)


@clause('notifier')
def notifier_registers_and_subclasses(kit):
    cls = kit.cls()
    _require(issubclass(cls, _sdk().NotifierConnector), '%r does not subclass sdk.NotifierConnector' % cls)
    _require(getattr(cls, 'name', None) in (None, kit.name), 'class says its name is %r' % getattr(cls, 'name', None))


@clause('notifier')
def notifier_declares_option_spec(kit):
    from ansible_collections.certforge.pki.plugins.module_utils.core.options import option_spec_of
    cls = kit.cls()
    spec = option_spec_of(cls)
    _require(spec is not None, 'option_spec is None: notifier options would go unchecked')
    for key, entry in spec.items():
        _require(isinstance(entry, dict) and entry.get('type'), 'option %s declares no type' % key)
    for key in kit.setup['options']:
        _require(key in spec, 'the setup uses option %s, which option_spec does not declare' % key)
    for key, value in kit.setup['options'].items():
        if value in kit.setup.get('secrets', ()):
            _require(spec[key].get('no_log'), 'option %s holds a secret but is not no_log' % key)


@clause('notifier')
def notifier_timeout_is_bounded(kit):
    from ansible_collections.certforge.pki.plugins.module_utils.core.options import option_spec_of
    spec = option_spec_of(kit.cls()) or {}
    entry = spec.get('timeout')
    _require(entry is not None, 'no timeout option: network I/O must be bounded')
    _require(isinstance(entry.get('default'), (int, float)) and 0 < entry['default'] <= 120,
             'timeout default %r is not a bound between 0 and 120 seconds' % (entry.get('default'),))


@clause('notifier')
def notifies_every_event_kind(kit):
    notifier = _notifier(kit)
    wanted = list(getattr(notifier, 'events', ()) or NOTIFIER_KINDS)
    before = kit.setup['received']()
    for kind in wanted:
        notifier.notify(_kit_event(kind))
    got = kit.setup['received']() - before
    _require(got >= len(wanted), 'the receiver got %d message(s) for %d events' % (got, len(wanted)))


@clause('notifier')
def notifier_failure_raises(kit):
    options = kit.setup.get('failing_options')
    if options is None:
        raise NotApplicable('the setup names no failing_options')
    notifier = _notifier(kit, options)
    try:
        notifier.notify(_kit_event('failed'))
    except Exception as exc:  # pylint: disable=broad-except
        kit.seen.append('%s: %s' % (type(exc).__name__, exc))
        kit.seen.append(repr(getattr(exc, 'to_result', lambda: {})()))
        return
    raise AssertionError('notify() returned although the receiver failed: the core cannot report it')


@clause('notifier')
def notifier_keeps_secrets(kit):
    notifier = _notifier(kit)
    kit.seen.extend([repr(notifier), str(notifier)])
    secrets = [s for s in kit.setup.get('secrets', ()) if s]
    text = json.dumps(kit.seen, default=str)
    leaked = [s for s in secrets if s in text]
    _require(not leaked, 'a secret option value shows in repr() or in an error')


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------

def load_setup(module_name, kind, name, workdir):
    module = importlib.import_module(module_name)
    setup = module.kit_setup(kind, name, workdir)
    if setup is None:
        raise LookupError('%s has no kit setup for %s %s' % (module_name, kind, name))
    return setup


def _plugins(module_names):
    return [importlib.import_module(m) for m in module_names or ()]


def run_kit(kind, name, setup_module, plugin_modules=(), workdir=None):
    """Run every clause of ``kind`` against connector ``name``.  Returns ``[(clause, ok, why)]``."""
    workdir = workdir or tempfile.mkdtemp(prefix='certforge-kit-')
    setup = load_setup(setup_module, kind, name, workdir)
    kit = Kit(kind, name, setup, workdir, plugins=_plugins(plugin_modules))
    kit.setup_module, kit.plugin_modules = setup_module, list(plugin_modules)
    results = []
    try:
        not_applicable = setup.get('not_applicable') or {}
        for func in CLAUSES[kind]:
            if func.__name__ in not_applicable:
                results.append((func.__name__, None, not_applicable[func.__name__]))
                continue
            try:
                func(kit)
                results.append((func.__name__, True, ''))
            except Exception as exc:  # pylint: disable=broad-except
                why = str(exc) or type(exc).__name__
                if not isinstance(exc, AssertionError):
                    why = '%s: %s' % (type(exc).__name__, why)
                    if os.environ.get('CERTFORGE_KIT_TRACEBACK'):
                        why += '\n' + traceback.format_exc()
                results.append((func.__name__, False, why))
    finally:
        if setup.get('cleanup'):
            setup['cleanup']()
    return results


def summary_line(kind, name, results):
    passed = sum(1 for dummy, ok, dummy2 in results if ok)
    total = sum(1 for dummy, ok, dummy2 in results if ok is not None)
    line = 'KIT %s %s %d/%d' % (kind, name, passed, total)
    failed = [c for c, ok, dummy in results if ok is False]
    if failed:
        line += ' FAILED: %s' % ', '.join(failed)
    skipped = [c for c, ok, dummy in results if ok is None]
    if skipped:
        line += ' (not applicable: %s)' % ', '.join(skipped)
    return line


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description='certforge.pki connector conformance kit')
    parser.add_argument('--issuer')
    parser.add_argument('--target')
    parser.add_argument('--notifier')
    parser.add_argument('--setup', help='module with kit_setup(kind, name, workdir)')
    parser.add_argument('--plugin', action='append', default=[], help='extra plugin module to register')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(json.loads(args.child))
        return 0
    given = [(k, v) for k, v in (('issuer', args.issuer), ('target', args.target), ('notifier', args.notifier)) if v]
    kind, name = given[0] if given else ('issuer', None)
    if not name or not args.setup:
        parser.error('give --issuer NAME, --target NAME or --notifier NAME, and --setup MODULE')
    results = run_kit(kind, name, args.setup, args.plugin)
    print(summary_line(kind, name, results))
    for clause_name, ok, why in results:
        if ok is False:
            print('  %s: %s' % (clause_name, why.splitlines()[0] if why else ''))
    return 0 if all(ok is not False for dummy, ok, dummy2 in results) else 1


if __name__ == '__main__':
    sys.exit(main())
