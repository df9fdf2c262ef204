#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: local_ca_certificate
short_description: Sign a CSR with a local CA, renew it when due, or revoke it
version_added: 0.1.0
description:
  - Signs a certificate signing request with a CA made by M(certforge.pki.local_ca), under an issuance
    profile that sets key usage and extended key usage.
  - Validity is capped by O(max_ttl_days) (with a warning) and by the CA's own expiry.
  - An existing certificate at O(path) is kept until the renewal policy says otherwise - inside the
    renewal window, SANs or key changed, another issuer, another profile, or O(force).
  - O(state=revoked) records a revocation with an RFC 5280 reason; M(certforge.pki.local_ca_crl) publishes it.
  - This module always runs on the controller (an action plugin), whatever host the task targets.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.actiongroup_local_ca
  - certforge.pki.renewal
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: partial
    details:
      - Not idempotent when O(force=true).
options:
  ca_path:
    description: Directory of the signing CA on the controller.
    type: path
    required: true
  ca_passphrase:
    description: Passphrase of the CA key.
    type: str
  name:
    description:
      - Name of the certificate, used to record it in the CA's index and the order store.
      - Required for O(state=present). Letters, digits, dots, dashes and underscores; no C(/) or C(..).
    type: str
  csr:
    description: The CSR (PEM). Mutually exclusive with O(csr_path).
    type: str
  csr_path:
    description: Path of the CSR on the controller.
    type: path
  path:
    description:
      - Where the certificate is written on the controller; an existing certificate there is checked
        against the renewal policy first.
      - For O(state=revoked), the certificate to revoke when O(serial) is not given.
    type: path
  chain_path:
    description: Where the CA chain is written (the issuing CA first).
    type: path
  fullchain_path:
    description: Where the certificate followed by the chain is written.
    type: path
  profile:
    description:
      - V(tls_server) (serverAuth, DNS and IP SANs, wildcards allowed), V(tls_client) (clientAuth),
        V(email) (emailProtection, email SANs), V(code_signing) (codeSigning).
    type: str
    choices: [code_signing, email, tls_client, tls_server]
    default: tls_server
  validity_days:
    description: Lifetime of the certificate in days.
    type: int
    default: 90
  max_ttl_days:
    description: Upper bound of O(validity_days); longer requests are capped with a warning.
    type: int
    default: 397
  allowed_domains:
    description:
      - DNS names (and the domains of email SANs) must equal one of these or lie below it.
      - Unset means any name.
    type: list
    elements: str
  allow_wildcards:
    description:
      - Allow wildcard SANs. Unset follows the profile (only V(tls_server) allows them);
        V(true) cannot enable wildcards for a profile that forbids them.
    type: bool
  state:
    description: V(present) issues or keeps a certificate; V(revoked) revokes one.
    type: str
    choices: [present, revoked]
    default: present
  serial:
    description: Serial of the certificate to revoke (hex, colons allowed).
    type: str
  revocation_reason:
    description: RFC 5280 reason for O(state=revoked).
    type: str
    default: unspecified
    choices: [unspecified, key_compromise, ca_compromise, affiliation_changed, superseded,
              cessation_of_operation, certificate_hold, remove_from_crl, privilege_withdrawn, aa_compromise]
  order_store:
    description:
      - Directory of the order store on the controller.
      - Defaults to E(CERTFORGE_ORDER_STORE) or C(~/.local/state/certforge/orders).
    type: path
seealso:
  - module: certforge.pki.local_ca
  - module: certforge.pki.local_ca_crl
  - module: certforge.pki.certificate
'''

EXAMPLES = r'''
- name: Directory for the issued certificates
  ansible.builtin.file:
    path: /etc/certforge/issued
    state: directory
    mode: '0755'

- name: Sign a server certificate
  certforge.pki.local_ca_certificate:
    ca_path: /etc/certforge/issuing-ca
    name: www
    csr_path: /etc/certforge/csr/www.csr
    path: /etc/certforge/issued/www.crt
    fullchain_path: /etc/certforge/issued/www-fullchain.crt
    allowed_domains: [example.com]
    validity_days: 90

- name: Revoke it
  certforge.pki.local_ca_certificate:
    ca_path: /etc/certforge/issuing-ca
    path: /etc/certforge/issued/www.crt
    state: revoked
    revocation_reason: key_compromise
'''

RETURN = r'''
status:
  description: V(valid) (kept), V(issued) (new), or V(would_issue) in check mode.
  returned: state=present
  type: str
  sample: issued
certificate:
  description: The certificate (PEM).
  returned: state=present and not in check mode
  type: str
chain:
  description: The CA chain (PEM), issuing CA first.
  returned: state=present and not in check mode
  type: str
fullchain:
  description: Certificate followed by the chain (PEM).
  returned: state=present and not in check mode
  type: str
serial:
  description: Serial number (hex).
  returned: success
  type: str
  sample: 5F3A09C1D2
not_before:
  description: Start of validity (ISO 8601, UTC).
  returned: state=present and not in check mode
  type: str
not_after:
  description: End of validity (ISO 8601, UTC).
  returned: state=present and not in check mode
  type: str
renewal_reasons:
  description: Why a certificate was issued, empty when the current one was kept.
  returned: state=present
  type: list
  elements: str
  sample: [inside_window]
revocation_reason:
  description: The recorded revocation reason.
  returned: state=revoked
  type: str
revoked_at:
  description: When the revocation was recorded (ISO 8601, UTC).
  returned: state=revoked and not in check mode
  type: str
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.local_ca_modules import CERT_SPEC, execute_local_ca_certificate


def main():
    run_module(CERT_SPEC, execute_local_ca_certificate)


if __name__ == '__main__':
    main()
