#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: acme_certificate_revoke
short_description: Revoke a certificate at an ACME CA
version_added: 0.1.0
description:
  - Revokes a certificate (RFC 8555 section 7.6), signed by the account that ordered it or by the
    certificate's own private key (O(private_key_path)), with an RFC 5280 reason.
  - Runs on the controller (an action plugin).
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.acme
  - certforge.pki.acme.actiongroup_acme
attributes:
  check_mode:
    support: full
    details:
      - Check mode sends nothing and reports a change.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A certificate the CA reports as already revoked gives C(changed=false).
options:
  certificate_path:
    description: Path on the controller of the certificate to revoke.
    type: path
  certificate_content:
    description: The certificate to revoke (PEM).
    type: str
  reason:
    description:
      - RFC 5280 reason, for example V(unspecified), V(key_compromise), V(superseded),
        V(cessation_of_operation), V(affiliation_changed). Unknown names are refused.
    type: str
    default: unspecified
  private_key_path:
    description: Revoke with the certificate's own private key instead of the account key.
    type: path
  private_key_content:
    description: The certificate's private key (PEM).
    type: str
  private_key_passphrase:
    description: Passphrase of the certificate's private key.
    type: str
seealso:
  - module: certforge.pki.acme_certificate
'''

EXAMPLES = r'''
- name: Revoke a compromised certificate with its own key
  certforge.pki.acme_certificate_revoke:
    acme_directory: https://acme-v02.api.letsencrypt.org/directory
    certificate_path: /etc/certforge/www.crt
    private_key_path: /etc/certforge/www.key
    reason: key_compromise
'''

RETURN = r'''
serial:
  description: Serial number (hex) of the certificate.
  returned: success
  type: str
reason:
  description: The reason sent.
  returned: success
  type: str
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme.modules import REVOKE_SPEC, execute_revoke


def main():
    run_module(REVOKE_SPEC, execute_revoke)


if __name__ == '__main__':
    main()
