#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: certificate
short_description: Issue or renew a certificate from any issuer connector
version_added: 0.1.0
description:
  - The generic issuer module. O(issuer) names a connector (V(local_ca) is built in; later issuers and
    third-party packages plug in through the C(certforge.pki) entry-point group) and O(issuer_options)
    carries its settings.
  - Decides first whether the current certificate (O(current_certificate) or O(certificate_path)) needs
    renewal; when nothing is due it calls no CA at all.
  - Otherwise it records the order intent in the order store before submitting, waits for the CA with
    bounded backoff until O(wait_timeout), and returns V(pending) with the order id when the CA is slower;
    the next run resumes that same order instead of ordering again.
  - This module always runs on the controller (an action plugin), so CA credentials never reach managed hosts.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.actiongroup_issuers
  - certforge.pki.renewal
  - certforge.pki.connectors.issuer_options
  - certforge.pki.notifiers
attributes:
  check_mode:
    support: full
    details:
      - Check mode never calls a CA write endpoint.
  diff_mode:
    support: full
  idempotent:
    support: partial
    details:
      - Not idempotent when O(force=true).
options:
  name:
    description:
      - Name of the certificate; together with O(issuer) it keys the order store.
      - Letters, digits, dots, dashes and underscores; no C(/) or C(..).
    type: str
    required: true
  issuer:
    description:
      - The issuer connector - V(local_ca), V(acme), V(sectigo), or one another package provides (installed
        on the controller, entry-point group C(certforge.pki); see C(docs/connectors.md)).
      - An unknown name fails listing the known ones and the closest match.
    type: str
    required: true
  state:
    description:
      - V(present) issues or renews the certificate (O(csr) or O(csr_path) needed).
      - V(revoked) revokes the certificate in use (O(current_certificate) or O(certificate_path)) through
        the issuer, built-in or from another package, and sends a C(revoked) event to C(certforge_event)
        observers. A marker in the order store makes a rerun report V(changed=false) without calling the CA.
    type: str
    choices: [present, revoked]
    default: present
  revocation_reason:
    description: RFC 5280 reason given to the CA with O(state=revoked).
    type: str
    choices: [unspecified, key_compromise, ca_compromise, affiliation_changed, superseded,
              cessation_of_operation, certificate_hold, remove_from_crl, privilege_withdrawn, aa_compromise]
    default: unspecified
  csr:
    description: The CSR (PEM), for example the RV(certforge.pki.certificate_request#module:csr) of a host.
    type: str
  csr_path:
    description: Path of the CSR on the controller.
    type: path
  current_certificate:
    description:
      - The certificate in use (PEM), checked against the renewal policy. Empty means there is none.
      - With O(state=revoked), the certificate to revoke.
    type: str
  certificate_path:
    description:
      - Path on the controller of the current certificate; a new certificate is written there.
    type: path
  profile:
    description: Issuance profile, passed to the issuer (for V(local_ca) - V(tls_server), V(tls_client), V(email), V(code_signing)).
    type: str
  validity_days:
    description: Requested lifetime, where the issuer lets the requester choose.
    type: int
  recover_window:
    description:
      - Seconds after an interrupted submit (the run was killed, or the CA's answer was lost)
        during which the CA is asked again for that order before a new one is placed; a CA may
        commit a request a little after its answer was lost.
      - Defaults to V(30) (the connector may set another default). V(0) looks once.
    type: float
  wait_timeout:
    description:
      - Seconds to wait for the CA before returning V(pending). V(0) submits or polls once.
    type: int
    default: 60
  fail_on_pending:
    description: Fail instead of returning V(pending) when the CA is not done by O(wait_timeout).
    type: bool
    default: false
  order_store:
    description:
      - Directory of the order store on the controller.
      - Defaults to E(CERTFORGE_ORDER_STORE) or C(~/.local/state/certforge/orders).
    type: path
  poll_schedule:
    description:
      - Seconds between polls; the last value repeats. Each wait gets +/- O(poll_jitter) jitter.
      - Defaults to V([5, 15, 45, 120, 300]). A CA's C(Retry-After) wins over the schedule.
    type: list
    elements: float
  poll_base:
    description: Use exponential backoff C(min(poll_base ** attempt, poll_max_delay)) instead of O(poll_schedule).
    type: float
  poll_max_delay:
    description: Cap of the exponential backoff, in seconds.
    type: float
  poll_max_attempts:
    description: Stop polling after this many attempts (and return V(pending)).
    type: int
  poll_jitter:
    description: Jitter fraction of each wait, for example V(0.2) for +/- 20%.
    type: float
seealso:
  - module: certforge.pki.certificate_request
  - module: certforge.pki.local_ca_certificate
'''

EXAMPLES = r'''
- name: Make a key and CSR on the host
  certforge.pki.certificate_request:
    privatekey_path: /etc/ssl/private/www.key
    common_name: www.example.com
    certificate_path: /etc/ssl/certs/www.crt
  register: req

- name: Issue (or keep) the certificate on the controller
  certforge.pki.certificate:
    name: www
    issuer: local_ca
    issuer_options:
      ca_path: /etc/certforge/issuing-ca
    csr: "{{ req.csr }}"
    current_certificate: "{{ req.current_certificate.pem | default(omit) }}"
  register: cert

- name: Revoke it through the same issuer (any issuer, also one from another package)
  certforge.pki.certificate:
    name: www
    issuer: local_ca
    issuer_options:
      ca_path: /etc/certforge/issuing-ca
    state: revoked
    revocation_reason: superseded
    current_certificate: "{{ cert.certificate }}"
'''

RETURN = r'''
notifications:
  description: Per notifier of O(notifiers) - C(name), C(type), C(events), C(delivered), C(failed), C(errors) (redacted).
  returned: when O(notifiers) is set and the call had events
  type: list
  elements: dict
status:
  description:
    - V(valid) (current certificate kept), V(issued), V(pending) (the CA is not done yet), or V(would_issue) in check mode.
    - V(revoked) with O(state=revoked).
  returned: success
  type: str
  sample: issued
issuer:
  description: The issuer connector used.
  returned: success
  type: str
  sample: local_ca
order_id:
  description: The CA's order id; give the same inputs again to resume a pending order.
  returned: when an order was placed or resumed
  type: str
renewal_reasons:
  description: Why a certificate was (or would be) issued; empty when the current one was kept.
  returned: success
  type: list
  elements: str
  sample: [missing]
certificate:
  description: The certificate (PEM), new or current.
  returned: status is issued or valid
  type: str
chain:
  description: The chain (PEM), issuer first.
  returned: status is issued or valid
  type: str
fullchain:
  description: Certificate followed by the chain (PEM).
  returned: status is issued or valid
  type: str
serial:
  description: Serial number (hex).
  returned: status is issued or valid
  type: str
not_before:
  description: Start of validity (ISO 8601, UTC).
  returned: status is issued or valid
  type: str
not_after:
  description: End of validity (ISO 8601, UTC).
  returned: status is issued or valid
  type: str
revocation_reason:
  description: The reason given to the CA.
  returned: O(state=revoked)
  type: str
subject_alt_names:
  description: SANs of the certificate.
  returned: status is issued or valid
  type: list
  elements: str
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.certificate import SPEC, execute


def main():
    run_module(SPEC, execute)


if __name__ == '__main__':
    main()
