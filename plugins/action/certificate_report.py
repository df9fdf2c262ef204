# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs certforge.pki.certificate_report in-process on the controller.

The inputs of a fleet report are large (every host's discovery result, every scanned endpoint:
tens of thousands of dicts).  They are ``raw`` options that the argument spec neither converts
nor checks, so they bypass the generic validator (which deep-copies every parameter) and are
checked by the report itself; the other options are validated as usual.  The invocation echoes
their size, not their content.
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import ArgumentSpec, unexpected_error
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import store_secrets
from ansible_collections.certforge.pki.plugins.module_utils.report import SPEC, execute
from ansible_collections.certforge.pki.plugins.plugin_utils.inprocess import ActionContext, InProcessAction

#: raw options passed through as they are (the report checks their shape, naming the option)
BULK = ('discovery', 'scans')


def _size(value):
    return len(value) if isinstance(value, (list, dict)) else None


class ActionModule(InProcessAction):
    SPEC = SPEC
    EXECUTE = staticmethod(execute)

    def run(self, tmp=None, task_vars=None):
        result = super(InProcessAction, self).run(tmp, task_vars)  # ActionBase.run: no validation there
        del tmp
        args = dict(self._task.args)
        bulk = dict((name, args.pop(name)) for name in BULK if name in args)
        small = ArgumentSpec(dict((k, v) for k, v in SPEC.argument_spec.items() if k not in BULK),
                             checks=SPEC.checks)
        validated = ArgumentSpecValidator(**small.kwargs()).validate(args)
        no_log_values = set(validated._no_log_values)
        if not validated.error_messages:
            no_log_values.update(store_secrets(validated.validated_parameters))
        params = dict(validated.validated_parameters)
        for name in BULK:
            params[name] = bulk.get(name, SPEC.argument_spec[name].get('default'))
        invocation = dict((k, v) for k, v in params.items() if k not in BULK)
        invocation.update(('%s_entries' % name, _size(params[name])) for name in BULK)
        result['invocation'] = {'module_args': invocation}
        if validated.error_messages:
            result.update(failed=True, msg='; '.join(validated.error_messages))
            return remove_values(result, no_log_values) if no_log_values else result
        ctx = ActionContext(params, bool(self._task.check_mode), bool(self._task.diff))
        try:
            small.check(dict((k, v) for k, v in params.items() if k not in BULK), check_mode=ctx.check_mode)
            result.update(execute(ctx))
        except CertforgeError as exc:
            result.update(failed=True, **exc.to_result())
        except Exception as exc:  # pylint: disable=broad-except
            result.update(failed=True, **unexpected_error(exc))
        if ctx.warnings:
            result.setdefault('warnings', []).extend(ctx.warnings)
        # only the order store's password can be secret here: the large result is scrubbed only then
        return remove_values(result, no_log_values) if no_log_values else result
