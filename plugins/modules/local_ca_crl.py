#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: local_ca_crl
short_description: Publish the certificate revocation list of a local CA
version_added: 0.1.0
description:
  - Writes a CRL (PEM, and optionally DER) signed by a local CA, listing every revocation the CA recorded.
  - The CRL is left alone until its next update approaches (O(renew_before_hours)), a revocation is added, or O(force).
  - This module always runs on the controller (an action plugin), whatever host the task targets.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.actiongroup_local_ca
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - A new CRL is signed once the next update is within O(renew_before_hours), or with O(force=true).
options:
  ca_path:
    description: Directory of the CA on the controller.
    type: path
    required: true
  ca_passphrase:
    description: Passphrase of the CA key.
    type: str
  path:
    description: Where the CRL is written (PEM).
    type: path
    required: true
  der_path:
    description: Where the CRL is also written in DER form.
    type: path
  validity_days:
    description: Days until the next update of a new CRL.
    type: int
    default: 7
  renew_before_hours:
    description: Sign a new CRL when its next update is this close.
    type: int
    default: 24
  force:
    description: Sign a new CRL even if nothing changed.
    type: bool
    default: false
seealso:
  - module: certforge.pki.local_ca_certificate
'''

EXAMPLES = r'''
- name: Directory the web server publishes
  ansible.builtin.file:
    path: /var/www/pki
    state: directory
    mode: '0755'

- name: Publish the CRL
  certforge.pki.local_ca_crl:
    ca_path: /etc/certforge/issuing-ca
    path: /var/www/pki/issuing-ca.crl.pem
    der_path: /var/www/pki/issuing-ca.crl
'''

RETURN = r'''
changed_reasons:
  description: Why a new CRL was signed.
  returned: always
  type: list
  elements: str
  sample: [revocations_changed]
revoked_serials:
  description: Serials the CA has revoked (hex).
  returned: always
  type: list
  elements: str
crl_number:
  description: Number of the new CRL.
  returned: changed and not in check mode
  type: int
next_update:
  description: Next update of the new CRL (ISO 8601, UTC).
  returned: changed and not in check mode
  type: str
crl:
  description: The new CRL (PEM).
  returned: changed and not in check mode
  type: str
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.local_ca_modules import CRL_SPEC, execute_local_ca_crl


def main():
    run_module(CRL_SPEC, execute_local_ca_crl)


if __name__ == '__main__':
    main()
