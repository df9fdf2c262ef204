# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certforge.pki.certificate_request: a no-op answered without ansible-core's module runtime.

The module keeps its result beside the keys (module_utils/request_cache.py).  This plugin puts a
probe in front of the module's payload, after the AnsiballZ wrapper's ``from __future__`` line:
when ``<directory>/.certforge-request.json`` exists, the probe loads the three stdlib-only
sources the kept-result check needs (carried in the payload) and answers the kept result when it
was kept for exactly these options and nothing it was computed from has changed (the ids of
owner and group; type, mode, owner, size, inode, mtime and sha256 of every file).  Then the
module's runtime (about 0.2 s of CPU per call to import ansible-core's module code from the zip)
never starts.  Otherwise the wrapper runs the module exactly as before (it checks the kept result
again and plans).  The payload is sent and run by ansible-core as any module is (pipelining,
become, async and every connection as configured); only its content differs.

``CERTFORGE_REQUEST_PROBE=0`` in the controller's environment leaves the payload as it is.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os

from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible.utils.display import Display

display = Display()

MODULE = 'certforge.pki.certificate_request'
_PACKAGE = 'ansible_collections.certforge.pki.plugins.module_utils'
_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'module_utils')
#: what the probe runs (request_cache imports the other two at its top)
_PROBE_SOURCES = ('request_cache.py', 'role_requests.py', 'key_request_spec.py')
CACHE_NAME = '.certforge-request.json'

#: put in front of the module's AnsiballZ wrapper (after its ``from __future__`` line)
PREAMBLE = r'''
def _certforge_probe():
    import sys
    if len(sys.argv) > 1:
        return  # the AnsiballZ wrapper's own debug commands
    import base64, json, os
    args = json.loads(base64.b64decode(%(args)r).decode('utf-8'))
    try:
        where = os.path.abspath(os.path.expanduser(args['directory']))
        if not os.path.isfile(os.path.join(where, %(cache)r)):
            return
    except Exception:
        return
    import importlib, importlib.abc, importlib.machinery, importlib.util
    D = json.loads(base64.b64decode(%(data)r).decode('utf-8'))

    class Sources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
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

    finder = Sources()
    sys.meta_path.insert(0, finder)
    try:
        result = importlib.import_module(D['package'] + '.request_cache').probe(args, D['code'])
    except Exception:
        result = None
    finally:
        sys.meta_path.remove(finder)
        for name in list(sys.modules):
            if name in D['sources'] or name in D['packages']:
                del sys.modules[name]
    if result is None:
        return
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()
    sys.exit(0)


_certforge_probe()
del _certforge_probe
'''
FUTURE = b'from __future__ import annotations\n'


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
_PROBE_DATA = base64.b64encode(json.dumps(_PROBE).encode('utf-8')).decode('ascii') if _PROBE else None


def _off():
    return os.environ.get('CERTFORGE_REQUEST_PROBE', '1').lower() in ('0', 'no', 'off', 'false')


class ActionModule(NormalAction):

    def _configure_module(self, module_name, module_args, task_vars):
        built, path = super(ActionModule, self)._configure_module(module_name, module_args, task_vars)
        try:
            return self._with_probe(built, module_name, module_args), path
        except Exception as exc:  # pylint: disable=broad-except
            display.vvv('certforge.pki.certificate_request: no probe (%s)' % exc)
            return built, path

    def _with_probe(self, built, module_name, module_args):
        """The module's payload with the probe in front, or as it was when no probe can answer."""
        args = dict((k, v) for k, v in module_args.items() if not k.startswith('_ansible_'))
        if (_PROBE is None or _off() or self._task.diff or built.module_style != 'new' or module_name != self._task.action
                or not isinstance(args.get('directory'), str) or FUTURE not in built.b_module_data):
            return built
        encoder = get_module_encoder(built.serialization_profile, Direction.CONTROLLER_TO_MODULE)
        sent = json.dumps(args, cls=encoder).encode('utf-8')
        preamble = PREAMBLE % {'args': base64.b64encode(sent).decode('ascii'), 'cache': CACHE_NAME,
                               'data': _PROBE_DATA}
        head, tail = built.b_module_data.split(FUTURE, 1)
        return dataclasses.replace(built, b_module_data=head + FUTURE + preamble.encode('utf-8') + tail)
