# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs certforge.pki.tls_scan where the play says: in-process when the task's connection is
local (the controller, ``delegate_to: localhost``, ``connection: local``), which saves shipping
and starting the module; as a normal module on the managed host otherwise, so that a scan from
another vantage point connects from there."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.certforge.pki.plugins.module_utils.tls_scan import SPEC, execute
from ansible_collections.certforge.pki.plugins.plugin_utils.inprocess import InProcessAction


class ActionModule(InProcessAction):
    SPEC = SPEC
    EXECUTE = staticmethod(execute)
    _supports_async = True

    def _local(self):
        return getattr(self._connection, 'transport', None) == 'local' and not self._task.async_val

    def run(self, tmp=None, task_vars=None):
        if self._local():
            return super().run(tmp, task_vars)
        result = ActionBase.run(self, tmp, task_vars)
        del tmp
        result.update(self._execute_module(module_name='certforge.pki.tls_scan', module_args=self._task.args,
                                           task_vars=task_vars, wrap_async=self._task.async_val))
        return result
