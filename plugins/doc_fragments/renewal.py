# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Renewal policy options (plugins/module_utils/core/argspec.py RENEWAL_OPTIONS).
    DOCUMENTATION = r'''
options:
  renew_before_days:
    description:
      - Renew when the certificate expires within this many days.
      - Ignored when the CA advises a renewal window (ARI); the CA's window wins.
    type: int
    default: 30
  renew_at_fraction:
    description:
      - Renew once this fraction of the certificate's lifetime has passed, for example V(0.67).
      - Applies in addition to O(renew_before_days); whichever comes first triggers renewal.
      - Must be between 0 and 1.
    type: float
  force:
    description:
      - Issue a new certificate even when the current one is valid and matches the request.
      - Not idempotent when V(true).
    type: bool
    default: false
'''
