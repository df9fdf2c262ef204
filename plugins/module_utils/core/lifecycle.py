# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lifecycle sequences of the certforge core.

Deploy (this part)::

    plan (every request) -> nothing changes: changed=False, no reload, done
                         -> check mode: changed=True + diff, done
    apply (ONE transaction for all files of all requests)
    validate (once) -> reload (once) -> verify (each)
    any failure after apply: roll back byte-exact, reload again if a reload was attempted,
    raise DeployError with the command output

The target connector (``hookspecs.TargetConnector``) does the work; this module only orders it,
so every target gets the same transaction, rollback and reporting.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os

from ansible_collections.certforge.pki.plugins.module_utils.core import hookspecs
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import DEPLOY_CHECKS, check_params, unexpected_error
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError, ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import Event

EVENT_DEPLOYED = 'deployed'
EVENT_ROLLED_BACK = 'rolled_back'
EVENT_FAILED = 'failed'


# ---------------------------------------------------------------------------------------------
# building a target and running its commands
# ---------------------------------------------------------------------------------------------

def target_class(name, plugins, discover=False):
    """The class of target ``name`` among the given plugin objects (those with a
    ``certforge_targets`` hookimpl).

    Uses ``core.registry.Registry`` when pluggy is installed; without pluggy the built-in
    plugins are asked directly, so host-side deploy modules do not need pluggy on every managed
    host.  With ``discover``, a name no given plugin provides is looked up among the connectors
    installed on this host (entry-point group ``certforge.pki``, needs pluggy); built-in names
    never trigger that scan.  Each installed package loads on its own: a broken one breaks only
    its own connectors, and a class that does not subclass ``sdk.TargetConnector`` is refused
    naming its missing methods."""
    if hookspecs.HAS_PLUGGY:
        from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
        registry = Registry(plugins)
        if name not in registry.targets() and discover:
            registry = Registry(plugins, load_entry_points=True)
        try:
            return registry.target_class(name)
        except ConfigError as exc:
            if discover and 'did you mean' not in (exc.fix or '') and not registry.problems('target'):
                exc.fix += ' on the host that runs the deploy'
            raise
    available = {}
    for plugin in plugins:
        for key, value in (plugin.certforge_targets() or {}).items():
            available.setdefault(key, value)
    if name not in available:
        known = ', '.join(sorted(available)) or '(none registered)'
        fix = 'use one of: %s' % known
        if discover:
            fix += '; targets from other packages also need the Python library pluggy on the managed host'
        raise ConfigError('unknown target %r' % (name,), option='target', fix=fix)
    return available[name]


def build_target(name, plugins, options=None, runner=None, discover=False):
    """Instantiate target ``name`` (see ``target_class``) with ``options`` and ``runner``."""
    return target_class(name, plugins, discover=discover)(options or {}, runner)


def target_option_spec(cls):
    """The argument spec of a target class's own options (its ``option_spec``), or None
    when the class declares None (it checks its options itself)."""
    from ansible_collections.certforge.pki.plugins.module_utils.core.options import option_spec_of
    return option_spec_of(cls)


def check_target_options(cls, options, option='target_options', no_log_values=None):
    """Check ``options`` (a dict) against the target class's ``option_spec`` and return them
    with their types converted and defaults filled in (``core.options.check_options``).

    Unknown and bad options raise ConfigError naming ``<option>.<name>`` (with the closest valid
    name).  A class whose ``option_spec`` is None gets the options unchanged.  The values of
    options the spec marks ``no_log`` are added to the set ``no_log_values``, for the module to
    mask."""
    from ansible_collections.certforge.pki.plugins.module_utils.core.options import check_options
    return check_options(cls, options, option=option, kind='target', no_log_values=no_log_values,
                         keep_unset=True)


class ModuleRunner:
    """``run_command(argv) -> (rc, stdout, stderr)`` over ``AnsibleModule.run_command``.

    argv is passed as a list (no shell) and not expanded (no ``~`` or ``$VAR``).  A missing or
    non-executable program gives rc 127/126 instead of ending the module, so a failed reload
    can still be rolled back."""

    def __init__(self, module):
        self.module = module

    def run_command(self, argv):
        argv = [str(arg) for arg in argv]
        program = argv[0]
        if os.sep not in program:
            found = self.module.get_bin_path(program)
            if not found:
                return 127, '', 'command not found: %s (searched PATH and the sbin directories)' % program
            argv[0] = found
        elif not os.access(program, os.X_OK):
            return 126, '', '%s is missing or not executable' % program
        try:
            return self.module.run_command(argv, check_rc=False, expand_user_and_vars=False,
                                           handle_exceptions=False)
        except TypeError:  # ansible-core without handle_exceptions
            return self.module.run_command(argv, check_rc=False, expand_user_and_vars=False)
        except OSError as exc:
            return 126, '', 'could not run %s: %s' % (program, exc)


# ---------------------------------------------------------------------------------------------
# deploy
# ---------------------------------------------------------------------------------------------

class DeployInterrupted(Exception):
    """SIGTERM/SIGHUP arrived while files were being switched; turned into a rollback."""


@contextlib.contextmanager
def _signals_roll_back():
    """While files are switched, make SIGTERM/SIGHUP raise once so the rollback still runs
    (as certbot's error handler does).  Later signals are ignored until the block ends."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if fired:
            return
        fired.append(signum)
        raise DeployInterrupted('interrupted by signal %d' % signum)

    previous = {}
    for signame in ('SIGTERM', 'SIGHUP'):
        signum = getattr(signal, signame, None)
        if signum is None:
            continue
        try:
            previous[signum] = signal.signal(signum, handler)
        except (ValueError, OSError):
            pass
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _reason_text(exc):
    if isinstance(exc, CertforgeError):
        return exc.msg
    return '%s: %s' % (type(exc).__name__, exc)


def _summarise(plans):
    certificates = {}
    for plan in plans:
        after = plan.diff.get('after') or {}
        entry = {'changed': plan.changed, 'files': [f.path for f in plan.files],
                 'unchanged': list(plan.unchanged), 'reasons': list(plan.reasons)}
        if after.get('serial'):
            entry['serial'] = after['serial']
            entry['not_after'] = after.get('not_after')
        certificates[plan.request.name] = entry
    return certificates


def engine(target):
    """The core's engine around a target connector (``core.deployment.TargetEngine``)."""
    from ansible_collections.certforge.pki.plugins.module_utils.core.deployment import TargetEngine
    if isinstance(target, TargetEngine):
        return target
    return TargetEngine(target)


def deploy(target, requests, check_mode=False, emit=None):
    """Deploy ``requests`` (``model.DeployRequest``) to ``target`` (a target connector; the
    core's ``TargetEngine`` owns the transaction, backups, rollback and the single reload).

    ``emit``: optional callable taking a ``model.Event`` (deployed / rolled_back / failed); if it
    returns a list, those are warnings.  Returns a dict: ``changed``, ``changed_reasons``,
    ``files`` (paths written, or that would be in check mode), ``backups`` ({path: backup or
    None for a new file}), ``reloaded``, ``verified`` ({name: served serial}), ``diff``
    ({before, after} of parsed facts per name; never key material), ``certificates`` (per name
    summary) and ``warnings``.  Raises ``ConfigError`` for bad input (nothing written) and
    ``DeployError`` when a deploy step failed (everything rolled back)."""
    requests = list(requests)
    warnings = []
    target = engine(target)
    target_name = target.name

    def send(kind, plan, **details):
        if emit is None:
            return
        event = Event(kind=kind, name=plan.request.name, target=target_name, details=details)
        try:
            answer = emit(event)
        except Exception as exc:  # observers never break a deploy
            warnings.append('event observer failed on %s/%s: %s' % (kind, plan.request.name, exc))
            return
        if isinstance(answer, list):
            warnings.extend(answer)

    plans = [target.plan(request) for request in requests]
    changed = [plan for plan in plans if plan.changed]
    result = {
        'changed': bool(changed),
        'changed_reasons': [reason for plan in changed for reason in plan.reasons],
        'files': [spec.path for plan in changed for spec in plan.files],
        'backups': {},
        'reloaded': False,
        'verified': {},
        'diff': {'before': {}, 'after': {}},
        'certificates': _summarise(plans),
        'warnings': warnings,
    }
    for plan in changed:
        result['diff']['before'][plan.request.name] = plan.diff.get('before') or {}
        result['diff']['after'][plan.request.name] = plan.diff.get('after') or {}
    if not changed or check_mode:
        result['warnings'] = warnings + list(getattr(target, 'warnings', None) or [])
        return result

    with _signals_roll_back():
        _apply_and_check(target, changed, result, send)
    for plan in changed:
        send(EVENT_DEPLOYED, plan, serial=result['certificates'][plan.request.name].get('serial'),
             files=[spec.path for spec in plan.files], reloaded=result['reloaded'],
             verified=result['verified'].get(plan.request.name))
    result['warnings'] = warnings + list(getattr(target, 'warnings', None) or [])
    return result


def _apply_and_check(target, changed, result, send):
    transaction = target.transaction()
    applied = [target.apply(plan, transaction=transaction) for plan in changed]
    try:
        transaction.commit()
    except CertforgeError as exc:
        for plan in changed:
            send(EVENT_FAILED, plan, stage='apply', error=exc.msg)
        raise DeployError('apply failed: %s' % exc.msg, option=exc.option, fix=exc.fix,
                          details={'stage': 'apply', 'rolled_back': True})
    for item in applied:
        result['backups'].update(target.record_backups(item))

    stage = 'validate'
    reload_attempted = False
    try:
        target.validate(applied)
        stage = 'reload'
        reload_attempted = True
        reload_attempted = result['reloaded'] = bool(target.reload(applied))
        stage = 'verify'
        for item in applied:
            served = target.verify(item)
            if served is not None:
                result['verified'][item.plan.request.name] = served
    except BaseException as exc:
        # A reload that failed may still have reached the server (a signal was sent, a unit
        # restarted half way), so after restoring the files reload again whenever one was
        # attempted.  Before the reload the running server never read the new files.
        report = target.rollback(applied, reload=reload_attempted)
        for plan in changed:
            if not report['errors']:
                send(EVENT_ROLLED_BACK, plan, stage=stage, restored=report['restored'],
                     removed=report['removed'], reloaded=report['reloaded'])
            send(EVENT_FAILED, plan, stage=stage, error=_reason_text(exc))
        if not isinstance(exc, Exception):
            raise
        raise _deploy_failure(stage, exc, report, reload_attempted, result['backups'])


def _deploy_failure(stage, exc, report, reload_attempted, backups):
    first = '%s failed: %s' % (stage, _reason_text(exc).rstrip())
    parts = [first if first.endswith(('.', '!', '?')) else first + '.']
    if report['errors']:
        parts.append('ROLLBACK FAILED: %s. Backups: %s' % (
            '; '.join(report['errors']),
            ', '.join('%s -> %s' % (p, b) for p, b in sorted(backups.items()) if b) or 'none'))
    else:
        done = []
        if report['restored']:
            done.append('restored %s byte-exact' % ', '.join(report['restored']))
        if report['removed']:
            done.append('removed the new file(s) %s' % ', '.join(report['removed']))
        parts.append('Rolled back: %s.' % ('; '.join(done) or 'nothing to restore'))
        if reload_attempted:
            if report['reloaded']:
                parts.append('Reloaded again with the restored files, so the previous '
                             'certificate keeps serving.')
            elif report.get('reload_error'):
                parts.append('Reloading again with the restored files failed too (%s); check '
                             'that the server runs, and reload it once the cause is fixed.'
                             % report['reload_error'])
            else:
                parts.append('No reload after the rollback (reload is off).')
        else:
            parts.append('No reload had happened, so the server never loaded the new files.')
    details = {'stage': stage, 'rolled_back': not report['errors'],
               'restored': report['restored'], 'removed': report['removed'],
               'reloaded_after_rollback': report['reloaded'], 'backups': dict(backups)}
    if report.get('reload_error'):
        details['reload_after_rollback_error'] = report['reload_error']
    if report['errors']:
        details['rollback_errors'] = list(report['errors'])
    option = fix = None
    if isinstance(exc, CertforgeError):
        option, fix = exc.option, exc.fix
        for key, value in (exc.details or {}).items():
            details.setdefault(key, value)
    return DeployError(' '.join(parts), option=option, fix=fix, details=details)


DEPLOY_MUTUALLY_EXCLUSIVE = [('certificate', 'certificates')]
DEPLOY_REQUIRED_ONE_OF = [('certificate', 'certificates')]


def run_deploy_module(argument_spec, work, module=None):
    """main() of the deploy modules.  ``work(module, no_log_values)`` returns the result;
    values it adds to ``no_log_values`` (secrets among target options) are masked in the output.
    A missing library is reported with ``missing_required_lib``, library errors with the option
    and the fix; never a traceback.  ``module``: one the caller built (a DirectModule)."""
    from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
    if module is None:
        from ansible.module_utils.basic import AnsibleModule
        module = AnsibleModule(
            argument_spec=argument_spec,
            mutually_exclusive=DEPLOY_MUTUALLY_EXCLUSIVE,
            required_one_of=DEPLOY_REQUIRED_ONE_OF,
            supports_check_mode=True,
        )
    secrets = set()
    try:
        check_params(module.params, argument_spec, DEPLOY_CHECKS)
        result = work(module, secrets)
    except ImportError as exc:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib(getattr(exc, 'name', None) or cx509.CRYPTOGRAPHY_REQUIREMENT),
                         exception=cx509.CRYPTOGRAPHY_IMP_ERR)
    except CertforgeError as exc:
        module.no_log_values.update(secrets)
        module.fail_json(exception='', **exc.to_result())
    except Exception as exc:  # pylint: disable=broad-except
        module.no_log_values.update(secrets)
        module.fail_json(**unexpected_error(exc))
    module.no_log_values.update(secrets)
    for warning in result.pop('warnings', []):
        module.warn(warning)
    module.exit_json(**result)
