# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of running certforge modules on the host without ansible-core's module
runtime (the host side is plugins/module_utils/direct.py).

The module is built, sent and run by ansible-core exactly as any module (pipelining, become,
async, every connection as configured); only the payload's content changes, in two places:

* after the AnsiballZ wrapper's ``from __future__`` line, a preamble; for certificate_request it
  starts with the kept-result probe (module_utils/request_cache.py ``probe``: the result kept
  for exactly these options while nothing it was computed from changed);
* the wrapper's final call ``_ansiballz_main(...)`` becomes ``_certforge_main(...)``, which puts
  the payload's zip on ``sys.path`` as the wrapper does and runs the module's own ``main()`` with
  a ``DirectModule`` (the options checked here, on the controller, by ansible-core's
  ``ModuleArgumentSpecValidator`` with the module's own spec; path options expanded on the host).
  It falls back to ``_ansiballz_main`` (the usual run) when the direct run cannot be prepared.

The direct run is used only when the check here found nothing to say: no error, no warning, no
deprecation and no secret (``no_log``) among the options; otherwise the module runs the usual
way and its own messages are the answer.  Options with an environment fallback are never
checked here (the controller's environment is not the host's).

``CERTFORGE_DIRECT=0`` in the controller's environment sends the module unchanged (no probe,
no direct run); ``CERTFORGE_REQUEST_PROBE=0`` turns off the probe only.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os

from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.plugins.action.normal import ActionModule as NormalAction
from ansible_collections.certforge.pki.plugins.module_utils.direct import text_paths
from ansible.utils.display import Display

display = Display()

_PACKAGE = 'ansible_collections.certforge.pki.plugins.module_utils'
_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'module_utils')
#: what the probe runs (request_cache imports the other two at its top)
_PROBE_SOURCES = ('request_cache.py', 'role_requests.py', 'key_request_spec.py')
CACHE_NAME = '.certforge-request.json'
FUTURE = b'from __future__ import annotations\n'
CALL = b'if __name__ == "__main__":\n    _ansiballz_main(\n'
DIRECT_CALL = b'if __name__ == "__main__":\n    _certforge_main(\n'

PROBE = r'''
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

DIRECT = r'''
def _certforge_main(**kwargs):
    import sys
    if len(sys.argv) > 1:
        return _ansiballz_main(**kwargs)  # the AnsiballZ wrapper's own debug commands
    import base64, json, os, shutil, tempfile
    data = json.loads(base64.b64decode(%(direct)r).decode('utf-8'))
    scriptdir = None
    try:
        import __main__
        scriptdir = os.path.dirname(os.path.realpath(__main__.__file__))
    except (AttributeError, OSError):
        pass
    saved_path, saved_meta_path = list(sys.path), list(sys.meta_path)
    sys.path = [p for p in sys.path if p not in ('', '.', scriptdir)]
    temp_path = os.path.realpath(tempfile.mkdtemp(prefix='ansible_' + kwargs['ansible_module'] + '_payload_'))
    try:
        zipped = os.path.join(temp_path, 'ansible_' + kwargs['ansible_module'] + '_payload.zip')
        with open(zipped, 'wb') as handle:
            handle.write(base64.b64decode(kwargs['zip_data']))
        sys.path.insert(0, zipped)
        try:
            import importlib
            importlib.import_module(%(package)r + '.bytecode_cache').install()
            direct = importlib.import_module(%(package)r + '.direct')
            main, module = direct.prepare(data)
        except Exception:
            sys.path[:] = saved_path
            sys.meta_path[:] = saved_meta_path
            for name in list(sys.modules):
                if name == 'ansible_collections' or name.startswith('ansible_collections.'):
                    del sys.modules[name]
            shutil.rmtree(temp_path, ignore_errors=True)
            return _ansiballz_main(**kwargs)
        direct.run(main, module, data)
    finally:
        shutil.rmtree(temp_path, ignore_errors=True)
'''


def _read(name):
    with open(os.path.join(_UTILS, name), 'rb') as handle:
        return handle.read()


def _probe_data():
    """Sources and code digest of the probe, read once per controller process (the workers
    that run tasks are forks of it and inherit them)."""
    try:
        from ansible_collections.certforge.pki.plugins.module_utils import request_cache
        code = request_cache.code_digest(_read)
        sources = dict(('%s.%s' % (_PACKAGE, name[:-3]), _read(name).decode('utf-8')) for name in _PROBE_SOURCES)
        parts = _PACKAGE.split('.')
        packages = ['.'.join(parts[:i]) for i in range(1, len(parts) + 1)]
        data = {'code': code, 'sources': sources, 'packages': packages, 'package': _PACKAGE}
        return base64.b64encode(json.dumps(data).encode('utf-8')).decode('ascii')
    except Exception as exc:  # pylint: disable=broad-except
        display.vvv('certforge.pki: no kept-result probe (%s)' % exc)
        return None


PROBE_DATA = _probe_data()


def _off(name):
    return os.environ.get(name, '1').lower() in ('0', 'no', 'off', 'false')


def _has_fallback(spec):
    for option in spec.values():
        if option.get('fallback') or (option.get('options') and _has_fallback(option['options'])):
            return True
    return False


class DirectAction(NormalAction):
    """The action of a certforge module that can run directly (see the module docstring)."""

    #: the module's main(), as the host imports it
    MODULE = None
    #: whether the kept-result probe goes in front (certificate_request)
    PROBE = False

    def module_spec(self):
        """(argument_spec, validator keyword arguments) of the module, as its main() uses them."""
        raise NotImplementedError

    def _configure_module(self, module_name, module_args, task_vars):
        built, path = super(DirectAction, self)._configure_module(module_name, module_args, task_vars)
        if module_name != self._task.action or _off('CERTFORGE_DIRECT'):
            return built, path
        try:
            return self._rewritten(built, module_args), path
        except Exception as exc:  # pylint: disable=broad-except
            display.vvv('%s: sent unchanged (%s)' % (module_name, exc))
            return built, path

    def _direct_data(self, args, encoder, module_args):
        if module_args.get('_ansible_ignore_unknown_opts'):
            return None
        spec, kwargs = self.module_spec()
        if _has_fallback(spec):
            return None
        text_spec, paths = text_paths(spec)
        checked = ModuleArgumentSpecValidator(text_spec, **kwargs).validate(copy.deepcopy(args))
        # pylint: disable=protected-access
        if checked.error_messages or checked._warnings or checked._deprecations or checked._no_log_values:
            return None
        data = {'module': self.MODULE, 'params': checked.validated_parameters, 'paths': paths,
                'check_mode': bool(module_args.get('_ansible_check_mode')),
                'diff': bool(module_args.get('_ansible_diff')),
                'syslog': not module_args.get('_ansible_no_log'),
                'syslog_facility': module_args.get('_ansible_syslog_facility')}
        if self.PROBE:
            data['sent'] = args
        return json.loads(json.dumps(data, cls=encoder))

    def _rewritten(self, built, module_args):
        if built.module_style != 'new' or FUTURE not in built.b_module_data:
            return built
        encoder = get_module_encoder(built.serialization_profile, Direction.CONTROLLER_TO_MODULE)
        args = json.loads(json.dumps(dict((k, v) for k, v in module_args.items() if not k.startswith('_ansible_')),
                                     cls=encoder))
        preamble = ''
        if (self.PROBE and PROBE_DATA and not _off('CERTFORGE_REQUEST_PROBE') and not module_args.get('_ansible_diff')
                and isinstance(args.get('directory'), str)):
            preamble += PROBE % {'args': base64.b64encode(json.dumps(args).encode('utf-8')).decode('ascii'),
                                 'cache': CACHE_NAME, 'data': PROBE_DATA}
        data = self._direct_data(args, encoder, module_args) if built.b_module_data.count(CALL) == 1 else None
        body = built.b_module_data
        if data is not None:
            preamble += DIRECT % {'direct': base64.b64encode(json.dumps(data).encode('utf-8')).decode('ascii'),
                                  'package': _PACKAGE}
            body = body.replace(CALL, DIRECT_CALL)
        if not preamble:
            return built
        head, tail = body.split(FUTURE, 1)
        return dataclasses.replace(built, b_module_data=head + FUTURE + preamble.encode('utf-8') + tail)
