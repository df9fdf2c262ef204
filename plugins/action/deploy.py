# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certforge.pki.deploy: run without ansible-core's module runtime on the host when the options
allow it (plugins/plugin_utils/direct_action.py)."""

from __future__ import annotations

from ansible_collections.certforge.pki.plugins.plugin_utils.direct_action import DirectAction


class ActionModule(DirectAction):
    MODULE = 'ansible_collections.certforge.pki.plugins.modules.deploy'

    def module_spec(self):
        from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import (
            DEPLOY_MUTUALLY_EXCLUSIVE, DEPLOY_REQUIRED_ONE_OF)
        from ansible_collections.certforge.pki.plugins.module_utils.targets.files import deploy_argument_spec
        return deploy_argument_spec(), {'mutually_exclusive': DEPLOY_MUTUALLY_EXCLUSIVE,
                                        'required_one_of': DEPLOY_REQUIRED_ONE_OF}
