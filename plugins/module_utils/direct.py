# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A certforge module run on the host without ansible-core's module runtime.

``certificate_request`` and ``deploy`` do their work through a narrow interface (``params``,
``check_mode``, ``warn``, ``run_command``, ``get_bin_path``, ``no_log_values``, ``exit_json``,
``fail_json``).  Importing ansible-core's ``AnsibleModule`` from the AnsiballZ zip costs about
0.16 s of CPU per call, more than either module's own work, because zipimport compiles every
source again on every call.  When the controller has already checked the options against the
module's argument spec (plugins/plugin_utils/direct_action.py: same validator, no error, no
warning, no secret among them), it sends them with the payload and this module runs the module's
own ``main()`` with ``DirectModule`` in place of ``AnsibleModule``.  Path options are expanded
here, on the host (``~`` and ``$VAR`` as ``type: path`` does), never on the controller.

Anything unexpected before the module's work starts and the payload runs the module the usual
way instead; once the work started, its result (or failure) is the answer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import importlib
import json
import os
import re
import subprocess
import sys

SBIN = ('/sbin', '/usr/sbin', '/usr/local/sbin')


class DirectModule:
    """What certforge's modules use of an AnsibleModule, without ansible-core's runtime."""

    def __init__(self, params, check_mode=False, diff=False):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.no_log_values = set()
        self._warnings = []

    def warn(self, msg):
        self._warnings.append(msg)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        """``name`` in PATH or the sbin directories (as AnsibleModule.get_bin_path); None when
        it is not found (``required`` fails the module, as there)."""
        dirs = list(opt_dirs or []) + os.environ.get('PATH', '').split(os.pathsep) + list(SBIN)
        for directory in dirs:
            path = os.path.join(directory, name)
            if directory and os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        if required:
            self.fail_json(msg='Failed to find required executable "%s" in paths: %s' % (name, os.pathsep.join(dirs)))
        return None

    def run_command(self, args, check_rc=False, expand_user_and_vars=True, handle_exceptions=True, **kwargs):
        """argv (a list, no shell) -> (rc, stdout, stderr) as text, standard input closed."""
        if kwargs.get('data') is not None or kwargs.get('cwd') or kwargs.get('environ_update'):
            raise NotImplementedError('run_command options the certforge modules do not use')
        argv = [str(arg) for arg in args]
        if expand_user_and_vars:
            argv = [os.path.expanduser(os.path.expandvars(arg)) for arg in argv]
        env = dict(os.environ)
        # the payload's zip is not for the commands the module runs
        if 'PYTHONPATH' in env:
            env['PYTHONPATH'] = os.pathsep.join(p for p in env['PYTHONPATH'].split(os.pathsep)
                                                if not p.endswith('_payload.zip'))
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, close_fds=True, env=env)
            out, err = proc.communicate()
        except OSError as exc:
            if handle_exceptions:
                self.fail_json(msg='Error executing command %s: %s' % (argv[0], exc), rc=exc.errno, cmd=argv)
            raise
        rc = proc.returncode
        out = out.decode('utf-8', 'surrogateescape')
        err = err.decode('utf-8', 'surrogateescape')
        if check_rc and rc != 0:
            self.fail_json(msg=err.rstrip() or 'command failed', rc=rc, stdout=out, stderr=err, cmd=argv)
        return rc, out, err

    def _emit(self, result, rc):
        if self._warnings:
            result['warnings'] = list(self._warnings)
        result.setdefault('invocation', {'module_args': self.params})
        if self.no_log_values:
            from ansible.module_utils.common.parameters import remove_values
            preserved = dict((k, v) for k, v in result.items() if v is None or isinstance(v, bool))
            result = remove_values(result, self.no_log_values)
            result.update(preserved)
        sys.stdout.write('\n%s\n' % json.dumps(result))
        sys.stdout.flush()
        sys.exit(rc)  # pylint: disable=ansible-bad-function  # this is the exit_json of a direct run

    def exit_json(self, **result):
        self._emit(result, 0)

    def fail_json(self, msg=None, exception=None, **result):
        """As AnsibleModule.fail_json; a traceback given as ``exception`` is kept as
        ``exception_detail`` (the controller shows no traceback for it)."""
        result.update(failed=True, msg=str(msg))
        if isinstance(exception, str) and exception:
            result.setdefault('exception_detail', exception)
        self._emit(result, 1)


_PASSWORD = re.compile(r'^(?!.*(?:key|file|path|_mode|_type)$).*(?:pass|pwd|secret|token|passphrase)', re.I)


def log_invocation(module_name, params, facility):
    """'Invoked with ...' to the host's syslog, as AnsibleModule logs every module call (values
    of options whose name looks like a password are not logged).  Never raises."""
    try:
        import syslog  # pylint: disable=import-outside-toplevel
        words = []
        for name in sorted(params):
            value = params[name]
            if _PASSWORD.search(name) and value is not None:
                value = 'NOT_LOGGING_PASSWORD'
            words.append('%s=%s' % (name, value))
        syslog.openlog('ansible-%s' % module_name, 0, getattr(syslog, facility or 'LOG_USER', syslog.LOG_USER))
        syslog.syslog(syslog.LOG_INFO, 'Invoked with %s' % ' '.join(words))
        syslog.closelog()
    except Exception:  # pylint: disable=broad-except
        return


def _walk(value, path, fix):
    if value is None:
        return value
    if not path:
        return fix(value)
    head, rest = path[0], path[1:]
    if head == '*':
        if isinstance(value, list):
            return [_walk(item, rest, fix) for item in value]
        return value
    if isinstance(value, dict) and head in value:
        value[head] = _walk(value[head], rest, fix)
    return value


def text_paths(spec, prefix=()):
    """A copy of ``spec`` whose ``type: path`` (and ``elements: path``) options are ``str``, and
    where each of them is in the options (``*`` for the items of a list)."""
    spec = copy.deepcopy(spec)
    paths = []
    for name, option in spec.items():
        here = prefix + (name,)
        if option.get('type') == 'path':
            option['type'] = 'str'
            paths.append(list(here))
        if option.get('elements') == 'path':
            option['elements'] = 'str'
            paths.append(list(here + ('*',)))
        if option.get('options'):
            inner = here + ('*',) if option.get('type') == 'list' else here
            option['options'], found = text_paths(option['options'], inner)
            paths.extend(found)
    return spec, paths


def expand_paths(params, paths):
    """``type: path`` (and ``elements: path``) options, given as text by the controller,
    expanded here as ansible-core's check_type_path does."""
    for path in paths:
        _walk(params, path, lambda v: os.path.expanduser(os.path.expandvars(v)) if isinstance(v, str) else v)
    return params


def prepare(data):
    """The module's ``main`` and the DirectModule for ``data`` (sent by the controller), or an
    exception when this host cannot run it directly (the payload then runs it the usual way).
    Nothing is done on the host yet."""
    main = importlib.import_module(data['module']).main
    params = expand_paths(data['params'], data['paths'])
    if data.get('syslog'):
        log_invocation(data['module'].rpartition('.')[2], params, data.get('syslog_facility'))
    return main, DirectModule(params, check_mode=data['check_mode'], diff=data['diff'])


def run(main, module, data):
    """Runs the module's own main() with ``module``; it ends the process (exit_json/fail_json)."""
    kwargs = {'module': module}
    if data.get('sent') is not None:
        kwargs['sent'] = data['sent']
    main(**kwargs)
    module.fail_json(msg='the module ended without a result')
