# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs certforge.pki.sectigo_certificate_info in-process on the controller."""

from __future__ import annotations

from ansible_collections.certforge.pki.plugins.module_utils.issuers.sectigo_sync import INFO_SPEC, execute_certificate_info
from ansible_collections.certforge.pki.plugins.plugin_utils.inprocess import InProcessAction


class ActionModule(InProcessAction):
    SPEC = INFO_SPEC
    EXECUTE = staticmethod(execute_certificate_info)
