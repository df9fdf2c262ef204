# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option groups shared by module families (kept in step with ``plugins/doc_fragments``) and
the one way a module runs: build the module, call an ``execute(ctx)`` function that raises
``core.errors`` exceptions, and turn them into ``fail_json`` with the option and the fix.

``execute(ctx)`` sees only ``ctx.params``, ``ctx.check_mode``, ``ctx.diff`` and
``ctx.warn()``, so the same function runs inside a module on a host or in-process inside an
action plugin on the controller (``plugins/plugin_utils/inprocess.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import traceback

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError

#: renewal policy options (doc fragment ``certforge.pki.renewal``)
RENEWAL_OPTIONS = dict(
    renew_before_days=dict(type='int', default=30),
    renew_at_fraction=dict(type='float'),
    force=dict(type='bool', default=False),
)


class ArgumentSpec:
    """An argument spec and its constraints, composable across option groups."""

    def __init__(self, argument_spec=None, mutually_exclusive=None, required_together=None,
                 required_one_of=None, required_if=None, required_by=None):
        self.argument_spec = copy.deepcopy(argument_spec or {})
        self.mutually_exclusive = list(mutually_exclusive or [])
        self.required_together = list(required_together or [])
        self.required_one_of = list(required_one_of or [])
        self.required_if = list(required_if or [])
        self.required_by = dict(required_by or {})

    def update(self, options):
        self.argument_spec.update(copy.deepcopy(options))
        return self

    def kwargs(self):
        out = dict(argument_spec=self.argument_spec)
        for name in ('mutually_exclusive', 'required_together', 'required_one_of', 'required_if',
                     'required_by'):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


class ModuleContext:
    """What ``execute(ctx)`` may use of an AnsibleModule."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.diff = module._diff
        self.warnings = []

    def warn(self, msg):
        self.module.warn(msg)

    def run_command(self, argv):
        return self.module.run_command(argv)


def run_module(spec, execute, supports_check_mode=True, requires=()):
    """main() of every certforge module."""
    from ansible.module_utils.basic import AnsibleModule, missing_required_lib
    module = AnsibleModule(supports_check_mode=supports_check_mode, **spec.kwargs())
    for lib, has, error in requires:
        if not has:
            module.fail_json(msg=missing_required_lib(lib), exception=error)
    ctx = ModuleContext(module)
    try:
        result = execute(ctx)
    except CertforgeError as exc:
        module.fail_json(**exc.to_result())
    except ImportError as exc:
        module.fail_json(msg=missing_required_lib(getattr(exc, 'name', None) or str(exc)),
                         exception=traceback.format_exc())
    module.exit_json(**result)
