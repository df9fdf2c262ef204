# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certforge.pki.certificate_request: a no-op answered by the kept-result probe, other calls run
without ansible-core's module runtime on the host when the options allow it
(plugins/plugin_utils/direct_action.py)."""

from __future__ import annotations

from ansible_collections.certforge.pki.plugins.plugin_utils.direct_action import DirectAction


class ActionModule(DirectAction):
    MODULE = 'ansible_collections.certforge.pki.plugins.modules.certificate_request'
    PROBE = True

    def module_spec(self):
        from ansible_collections.certforge.pki.plugins.module_utils.key_request_spec import REQUIRED_ONE_OF, argument_spec
        return argument_spec(), {'required_one_of': REQUIRED_ONE_OF}
