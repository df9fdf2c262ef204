# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Standard attributes of every certforge.pki module.
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
'''

    # Modules that only read.
    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
  idempotent:
    support: full
'''

    ACTIONGROUP_LOCAL_CA = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/certforge.pki.local_ca) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - certforge.pki.local_ca
'''

    ACTIONGROUP_DEPLOY = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/certforge.pki.deploy) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - certforge.pki.deploy
'''

    ACTIONGROUP_ISSUERS = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/certforge.pki.issuers) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - certforge.pki.issuers
'''
