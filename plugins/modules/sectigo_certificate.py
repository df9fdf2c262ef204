#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: sectigo_certificate
short_description: Issue, renew or revoke an SSL certificate with Sectigo Certificate Manager
version_added: 0.1.0
description:
  - Enrolls a CSR with Sectigo Certificate Manager (SCM), waits for issuance with bounded backoff and
    collects the certificate and its chain; renews it when due; or revokes it.
  - Before anything is written at SCM, the request is checked with read calls only - certificate profile
    (by name or id), term, organization and department (enabled for the SSL REST API), SAN rules of the
    profile, custom fields (mandatory ones included), comments, external requesters and the CSR.
  - The order intent is recorded before the enroll and the sslId after it; a unique token rides in the
    order's comments, so when an enroll's answer is lost the next run finds the order at SCM instead of
    ordering again.
  - When SCM is not done by O(wait_timeout) (OV/EV vetting, approval), the module returns RV(status=pending)
    with the RV(ssl_id) and C(changed=true) without failing; the next run resumes that same order.
  - The certificate in use (O(certificate_path)) is renewed when the renewal policy says so, by
    C(renewById), by replacing it with a new key, or by a fresh enroll (O(renew_method)).
  - This module always runs on the controller (an action plugin), so SCM credentials never reach managed hosts.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.sectigo
  - certforge.pki.sectigo.actiongroup_sectigo
  - certforge.pki.renewal
attributes:
  check_mode:
    support: full
    details:
      - Check mode calls read endpoints only (for O(state=revoked) it reads the certificate's status).
  diff_mode:
    support: full
  idempotent:
    support: partial
    details:
      - A valid certificate at O(certificate_path) is kept and no SCM endpoint is called.
      - A pending order is resumed, never ordered twice.
      - Not idempotent with O(force=true).
options:
  name:
    description:
      - Name of the certificate; it keys the order store. Required for O(state=present).
      - Letters, digits, dots, dashes and underscores; no C(/) or C(..).
    type: str
  state:
    description:
      - V(present) issues the certificate, renews it when due, or resumes a pending order.
      - V(revoked) revokes the certificate given by O(ssl_id), O(serial) or O(certificate_path).
    type: str
    choices: [present, revoked]
    default: present
  csr:
    description: The CSR (PEM). Mutually exclusive with O(csr_path).
    type: str
  csr_path:
    description: Path of the CSR on the controller.
    type: path
  certificate_path:
    description:
      - Where the certificate is written on the controller (atomically, mode 0644). An existing
        certificate there is checked against the renewal policy first.
      - For O(state=revoked), the certificate to revoke when neither O(ssl_id) nor O(serial) is given.
    type: path
  chain_path:
    description: Where the chain (issuer first, without the root) is written.
    type: path
  fullchain_path:
    description: Where the certificate followed by the chain is written.
    type: path
  ssl_id:
    description:
      - The SCM sslId of the certificate to revoke (O(state=revoked)), or of the certificate in use to renew.
    type: int
  serial:
    description: Serial number (hex, with or without colons) of the certificate to revoke.
    type: str
  revocation_reason:
    description: RFC 5280 reason of a revocation; SCM accepts these five.
    type: str
    choices: [unspecified, key_compromise, affiliation_changed, superseded, cessation_of_operation]
    default: unspecified
  profile:
    description:
      - The SCM certificate profile (C(certType)), by name (case-insensitive) or numeric id.
      - M(certforge.pki.sectigo_account_info) lists them.
    type: str
  term:
    description:
      - Validity in days; must be one of the profile's terms. Defaults to the profile's first term.
    type: int
  organization:
    description:
      - Organization to enroll under, by name (case-insensitive) or id. Defaults to the CSR's C(O=).
      - It (or O(department)) must have the SSL REST API enabled in SCM.
    type: str
  department:
    description:
      - Department (name or id) of O(organization) to enroll under instead of the organization itself.
    type: str
  subject_alt_names:
    description:
      - DNS names to request. Defaults to the DNS names of the CSR.
      - A single-domain profile takes one name (and its C(www.) variant); use a multi-domain profile for more.
    type: list
    elements: str
  multi_domain:
    description:
      - Whether the profile is multi-domain. Defaults to what its name says (C(Multi-Domain), C(UCC), C(SAN)).
      - A multi-domain enroll does not repeat the common name in C(subjAltNames).
    type: bool
  comments:
    description:
      - Comments stored with the order. The order token (C(certforge-token:<hex>)) is appended;
        the whole must fit in 1024 characters.
    type: str
  external_requester:
    description: Email addresses notified about the order (at most 512 characters together).
    type: list
    elements: str
  custom_fields:
    description:
      - SSL custom fields as a mapping of name to value. Every mandatory field of the tenant must be set.
    type: dict
  dcv_mode:
    description: Domain control validation method, where the tenant does not pre-validate domains.
    type: str
    choices: [CNAME, EMAIL, HTTP, HTTPS, TXT]
  dcv_email:
    description: The DCV email address, with O(dcv_mode=EMAIL).
    type: str
  renew_method:
    description:
      - How a due certificate is renewed.
      - V(auto) uses C(renewById) with the new CSR when the key is unchanged, C(replace) when the key
        changed (rotated), and a fresh enroll when the names changed or SCM does not know the certificate.
      - V(renew_by_id), V(replace) and V(enroll) force that method.
    type: str
    choices: [auto, renew_by_id, enroll, replace]
    default: auto
  collect_format:
    description:
      - The SCM collect format. Any order of leaf and chain is accepted; the leaf is the certificate
        that matches the CSR's key, the chain is ordered issuer first and the root is left out.
    type: str
    choices: [pemia, x509R, x509, pem]
    default: pemia
  recover_window:
    description:
      - Seconds after an interrupted submit (the run was killed, or the CA's answer was lost)
        during which the CA is asked again for that order before a new one is placed; a CA may
        commit a request a little after its answer was lost.
      - Defaults to V(30) (the connector may set another default). V(0) looks once.
    type: float
  wait_timeout:
    description:
      - Seconds to wait for issuance before returning RV(status=pending). V(0) submits or polls once.
    type: int
    default: 600
  fail_on_pending:
    description: Fail instead of returning RV(status=pending) when SCM is not done by O(wait_timeout).
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
      - Defaults to V([5, 15, 45, 120, 300]). SCM's C(Retry-After) wins over the schedule.
    type: list
    elements: float
  poll_base:
    description: Use exponential backoff C(min(poll_base ** attempt, poll_max_delay)) instead of O(poll_schedule).
    type: float
  poll_max_delay:
    description: Cap of each wait, in seconds.
    type: float
  poll_max_attempts:
    description: Stop polling after this many attempts (and return RV(status=pending)).
    type: int
  poll_jitter:
    description: Jitter fraction of each wait, for example V(0.2) for +/- 20%.
    type: float
seealso:
  - module: certforge.pki.sectigo_account_info
  - module: certforge.pki.certificate
  - module: certforge.pki.certificate_request
'''

EXAMPLES = r'''
- name: Issue (or renew when due) a DV certificate
  module_defaults:
    group/certforge.pki.sectigo:
      customer_uri: example
      login: api-bot
      password: "{{ vault_sectigo_password }}"
  block:
    - name: Directory for the certificates
      ansible.builtin.file:
        path: /etc/certforge/certs
        state: directory
        mode: '0755'

    - name: Enroll and collect
      certforge.pki.sectigo_certificate:
        name: www
        csr_path: /etc/certforge/csr/www.csr
        profile: Sectigo DV SSL
        organization: Example Org
        department: Web Team
        custom_fields:
          cost-center: CC-42
        certificate_path: /etc/certforge/certs/www.crt
        fullchain_path: /etc/certforge/certs/www-fullchain.crt
      register: www

    - name: Report an order still in vetting
      ansible.builtin.debug:
        msg: "sslId {{ www.ssl_id }} is pending; the next run resumes it"
      when: www.status == 'pending'

- name: Client-certificate authentication from a PKCS#12 file
  certforge.pki.sectigo_certificate:
    base_url: https://cert-manager.com/private/api
    customer_uri: example
    login: api-bot
    pkcs12_path: /etc/certforge/api-bot.p12
    pkcs12_passphrase: "{{ vault_p12_passphrase }}"
    name: api
    csr_path: /etc/certforge/csr/api.csr
    profile: Sectigo OV SSL
    term: 365
    custom_fields:
      cost-center: CC-42
    wait_timeout: 120
    certificate_path: /etc/certforge/certs/api.crt

- name: Revoke by sslId (here the one enrolled above)
  certforge.pki.sectigo_certificate:
    state: revoked
    ssl_id: "{{ www.ssl_id }}"
    revocation_reason: superseded
'''

RETURN = r'''
status:
  description:
    - V(valid) (current certificate kept), V(issued), V(pending) (SCM is not done yet; run again),
      V(would_issue) in check mode, or V(revoked).
  returned: success
  type: str
  sample: issued
ssl_id:
  description: The SCM sslId of the order; a pending order is resumed with the same inputs.
  returned: when an order was placed, resumed or revoked
  type: int
  sample: 9003
renewal_reasons:
  description: Why a certificate was (or would be) ordered; empty when the current one was kept.
  returned: state is present
  type: list
  elements: str
  sample: [missing]
certificate:
  description: The certificate (PEM).
  returned: status is issued or valid
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
chain:
  description: The chain (PEM), issuer first, without the root.
  returned: status is issued or valid
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
fullchain:
  description: Certificate followed by the chain (PEM).
  returned: status is issued or valid
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
serial:
  description: Serial number (hex; colon-separated for revocations).
  returned: status is issued, valid or revoked
  type: str
  sample: 4F2A9C01773E5D10AAB20C44916ED308
not_after:
  description: End of validity (ISO 8601, UTC).
  returned: status is issued or valid
  type: str
  sample: '2026-11-30T12:00:00Z'
subject_alt_names:
  description: SANs of the certificate.
  returned: status is issued or valid
  type: list
  elements: str
  sample: ['DNS:www.example.com']
polling:
  description: How the wait went (attempts, seconds waited, why it stopped).
  returned: when SCM was polled
  type: dict
  sample: {done: true, attempts: 2, waited: 5.1, elapsed: 5.2, reason: done, retry_after: null, last_error: null}
resumed:
  description: True when a pending order of an earlier run was resumed.
  returned: when an order was resumed
  type: bool
  sample: true
recovered:
  description: True when an order whose enroll answer was lost was found at SCM by its token.
  returned: when an order was recovered
  type: bool
  sample: true
revocation_reason:
  description: The reason given for a revocation.
  returned: state is revoked
  type: str
  sample: superseded
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.core.http import HAS_REQUESTS, REQUESTS_IMPORT_ERROR
from ansible_collections.certforge.pki.plugins.module_utils.issuers.sectigo_modules import CERT_SPEC, execute_certificate


def main():
    run_module(CERT_SPEC, execute_certificate, requires=[('requests', HAS_REQUESTS, REQUESTS_IMPORT_ERROR)])


if __name__ == '__main__':
    main()
