# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The notifiers of the issue path (certificate, certificate_batch).
    DOCUMENTATION = r'''
options:
  notifiers:
    description:
      - Notifiers that receive the events of this call (C(issued), C(renewed), C(pending), C(revoked)), each
        once, after the work is done, as M(certforge.pki.notify) sends them.
      - Each entry is C({name, type, options, events, digest}); see O(certforge.pki.notify#module:notifiers)
        for the types (C(webhook), C(slack), C(teams), C(pagerduty), C(opsgenie), C(email)) and their options.
      - A notification that cannot be delivered after its retries becomes a warning; it never fails the run.
      - Bad notifier options are refused before anything is issued.
    type: list
    elements: dict
    default: []
  notify_routes:
    description:
      - Routing rules for the events of O(notifiers), as O(certforge.pki.notify#module:routes); without them
        every event goes to every notifier.
    type: list
    elements: dict
    default: []
'''
