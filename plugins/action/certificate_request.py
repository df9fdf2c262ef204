# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certforge.pki.certificate_request: a no-op answered by one small probe on the host.

The module keeps its result beside the keys (module_utils/request_cache.py).  Before the module
is sent, this plugin runs a probe on the host: a short Python program, sent on standard input
through the connection exactly as a pipelined module is (become included), that holds only the
three stdlib-only sources the kept-result check needs.  It answers the kept result when it was
kept for exactly these options and nothing it was computed from has changed (the ids of owner
and group, type, mode, owner, size, inode, mtime and sha256 of every file); then the task is
done without ansible-core's module runtime on the host (about 0.2 s of CPU per call) and
without a temporary directory.  Any other answer, an error, or a connection or become method
that cannot take a program on standard input, and the module runs as usual (it checks the kept
result again and plans).

``CERTFORGE_REQUEST_PROBE=0`` in the controller's environment turns the probe off.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os

from ansible import constants as C
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display

display = Display()

MODULE = 'certforge.pki.certificate_request'
_PACKAGE = 'ansible_collections.certforge.pki.plugins.module_utils'
_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'module_utils')
#: what the probe runs (request_cache imports the other two at its top)
_PROBE_SOURCES = ('request_cache.py', 'role_requests.py', 'key_request_spec.py')

PROGRAM = r'''
import base64, importlib.abc, importlib.machinery, importlib.util, json, sys
D = json.loads(base64.b64decode(%(data)r).decode('utf-8'))


class _Sources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name in D['sources']:
            return importlib.util.spec_from_loader(name, self)
        if name in D['packages']:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        source = D['sources'].get(module.__name__)
        if source is not None:
            exec(compile(source, '<certforge probe>/' + module.__name__, 'exec'), module.__dict__)


out = {'certforge_probe': 'miss'}
try:
    sys.meta_path.insert(0, _Sources())
    cache = importlib.import_module(D['package'] + '.request_cache')
    result = cache.probe(D['args'], D['code'])
    if result is not None:
        out = {'certforge_probe': 'hit', 'result': result}
except Exception as exc:
    out = {'certforge_probe': 'miss', 'error': '%%s: %%s' %% (type(exc).__name__, exc)}
sys.stdout.write(json.dumps(out))
sys.stdout.flush()
'''


def _read(name):
    with open(os.path.join(_UTILS, name), 'rb') as handle:
        return handle.read()


def _load():
    """Sources and code digest, read once per controller process (workers inherit them)."""
    try:
        from ansible_collections.certforge.pki.plugins.module_utils import request_cache
        digest = hashlib.sha256()
        for name in request_cache.SOURCES:
            digest.update(name.encode('ascii') + b'\0' + _read(name) + b'\0')
        sources = dict(('%s.%s' % (_PACKAGE, name[:-3]), _read(name).decode('utf-8')) for name in _PROBE_SOURCES)
        parts = _PACKAGE.split('.')
        packages = ['.'.join(parts[:i]) for i in range(1, len(parts) + 1)]
        return {'code': digest.hexdigest(), 'sources': sources, 'packages': packages, 'package': _PACKAGE}
    except Exception as exc:  # pylint: disable=broad-except
        display.vvv('certforge.pki.certificate_request: no probe (%s)' % exc)
        return None


_PROBE = _load()


def _off():
    return os.environ.get('CERTFORGE_REQUEST_PROBE', '1').lower() in ('0', 'no', 'off', 'false')


class ActionModule(NormalAction):

    def _probe_usable(self):
        conn = self._connection
        become = conn.become
        return bool(
            _PROBE is not None and not _off()
            and not self._task.async_val and not self._task.diff
            and getattr(conn, 'has_pipelining', False) and not C.DEFAULT_KEEP_REMOTE_FILES
            and (not become or (getattr(become, 'pipelining', False) and become.name != 'su'))
            and isinstance(self._task.args.get('directory'), str))

    def _probe(self, task_vars):
        """The kept result from the host, or None (the module runs)."""
        args = dict((k, v) for k, v in self._task.args.items() if not k.startswith('_ansible_'))
        try:
            built, dummy = self._configure_module(module_name=MODULE, module_args=dict(self._task.args),
                                                  task_vars=task_vars)
            if built.module_style != 'new' or not built.shebang:
                return None
            encoder = get_module_encoder(built.serialization_profile, Direction.CONTROLLER_TO_MODULE)
            sent = json.loads(json.dumps(args, cls=encoder))
            data = dict(_PROBE, args=sent)
            program = PROGRAM % {'data': base64.b64encode(json.dumps(data).encode('utf-8')).decode('ascii')}
            cmd = self._connection._shell.build_module_command(self._compute_environment_string(), built.shebang, '')
            res = self._low_level_execute_command(cmd.strip(), sudoable=True, in_data=program.encode('utf-8'))
        except Exception as exc:  # pylint: disable=broad-except
            display.vvv('certforge.pki.certificate_request: probe not run (%s)' % exc)
            return None
        try:
            answer = json.loads(res.get('stdout', '').strip().splitlines()[-1])
        except (ValueError, IndexError, AttributeError):
            display.vvv('certforge.pki.certificate_request: probe gave no answer (rc=%s)' % res.get('rc'))
            return None
        if res.get('rc') != 0 or answer.get('certforge_probe') != 'hit' or not isinstance(answer.get('result'), dict):
            if answer.get('error'):
                display.vvv('certforge.pki.certificate_request: probe: %s' % answer['error'])
            return None
        result = answer['result']
        if self._discovered_interpreter_key:
            result.setdefault('ansible_facts', {})[self._discovered_interpreter_key] = self._discovered_interpreter
        return result

    def run(self, tmp=None, task_vars=None):
        if task_vars is not None and self._probe_usable():
            kept = self._probe(task_vars)
            if kept is not None:
                self._supports_check_mode = True
                self._supports_async = True
                result = super(NormalAction, self).run(tmp, task_vars)  # pylint: disable=bad-super-call
                result.update(kept)
                return result
        return super(ActionModule, self).run(tmp, task_vars)
