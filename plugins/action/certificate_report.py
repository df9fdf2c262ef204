# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs certforge.pki.certificate_report in-process on the controller."""

from __future__ import annotations

from ansible_collections.certforge.pki.plugins.module_utils.report import SPEC, execute
from ansible_collections.certforge.pki.plugins.plugin_utils.inprocess import InProcessAction


class ActionModule(InProcessAction):
    SPEC = SPEC
    EXECUTE = staticmethod(execute)
