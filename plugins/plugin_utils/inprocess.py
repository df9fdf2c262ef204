# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's ``execute(ctx)`` in-process on the controller.

Controller-side modules (issuers, the local CA) need no managed host: running them inside the
action plugin saves shipping and starting a module for every call, which is most of the cost
of a task.  Arguments are validated with the module's own argument spec, ``no_log`` values are
scrubbed from the result, and errors become ``failed`` results naming the option and the fix.
"""

from __future__ import annotations

import traceback

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import unexpected_error
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import store_secrets


class ActionContext:
    """The ``ctx`` an ``execute`` function gets, backed by an action plugin."""

    def __init__(self, params, check_mode, diff, load_entry_points=True):
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.warnings = []
        self.load_entry_points = load_entry_points

    def warn(self, msg):
        self.warnings.append(msg)

    def run_command(self, argv):  # pragma: no cover - controller-side modules run no commands
        raise AnsibleActionFail('this action runs no commands')


class InProcessAction(ActionBase):
    """Subclasses set ``SPEC`` (a ``core.argspec.ArgumentSpec``) and ``EXECUTE``."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    SPEC = None
    EXECUTE = None

    def extra_no_log(self, params):
        """Further values to scrub from the result (secrets inside free-form dicts)."""
        return set()

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        validator = ArgumentSpecValidator(**self.SPEC.kwargs())
        validated = validator.validate(self._task.args)
        no_log_values = set(validated._no_log_values)
        try:
            no_log_values.update(self.extra_no_log(validated.validated_parameters))
            no_log_values.update(store_secrets(validated.validated_parameters))
        except (AttributeError, TypeError, ValueError):
            # options of the wrong type (a string where a dict belongs): the validator's
            # message below names them; their values are not searched for secrets
            if not validated.error_messages:
                raise
        if validated.error_messages:
            result.update(failed=True, msg='; '.join(validated.error_messages))
            return remove_values(result, no_log_values)
        ctx = ActionContext(validated.validated_parameters, bool(self._task.check_mode),
                            bool(self._task.diff))
        try:
            self.SPEC.check(ctx.params, check_mode=ctx.check_mode)
            result.update(type(self).EXECUTE(ctx))
        except CertforgeError as exc:
            result.update(failed=True, **exc.to_result())
        except ImportError as exc:
            result.update(failed=True, msg='a required Python library is missing on the controller: %s' % exc,
                          exception=traceback.format_exc())
        except Exception as exc:  # pylint: disable=broad-except
            result.update(failed=True, **unexpected_error(exc))
        if ctx.warnings:
            result.setdefault('warnings', []).extend(ctx.warnings)
        # secrets inside free-form dicts, named by the connector's option spec
        no_log_values.update(getattr(ctx, 'no_log_values', None) or ())
        result['invocation'] = {'module_args': validated.validated_parameters}
        return remove_values(result, no_log_values)
