#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: acme_certificate
short_description: Issue or renew a certificate from an ACME CA (RFC 8555) in one task
version_added: 0.1.0
description:
  - Orders a certificate for the names of a CSR from any RFC 8555 CA (Let's Encrypt, ZeroSSL, a private
    ACME server), with external account binding, profiles, alternate chains and ARI (RFC 9773).
  - Decides first from the certificate in hand (O(certificate_path)) whether anything is due; when nothing
    is due it sends no request to the CA.
  - When it can answer the challenges itself (built-in http-01 listener, an http-01 webroot it can write,
    or dns-01 hook commands) one task does everything. Otherwise it returns V(pending) with the challenge
    data; the next run with the same inputs answers the challenges of the same order and continues.
  - Waits with short backoff honouring C(Retry-After) until O(wait_timeout), then returns V(pending);
    the next run resumes the order (kept in the order store).
  - Runs on the controller (an action plugin); the account key never reaches managed hosts.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.acme
  - certforge.pki.acme.account
  - certforge.pki.acme.actiongroup_acme
  - certforge.pki.renewal
attributes:
  check_mode:
    support: full
    details:
      - Check mode decides from the certificate in hand and sends nothing to the CA.
  diff_mode:
    support: full
  idempotent:
    support: partial
    details:
      - Not idempotent when O(force=true).
options:
  name:
    description:
      - Name of the certificate; it keys the order store, so a pending order is found again.
    type: str
    required: true
  csr:
    description: The CSR (PEM). Its subjectAltName names are the identifiers of the order.
    type: str
  csr_path:
    description: Path of the CSR on the controller.
    type: path
  certificate_path:
    description:
      - Path on the controller of the certificate. The current one is read from there for the renewal
        decision; a new one is written there atomically.
    type: path
  chain_path:
    description: Path on the controller where the chain (issuer first) is written atomically.
    type: path
  fullchain_path:
    description: Path on the controller where the certificate followed by the chain is written atomically.
    type: path
  challenge:
    description:
      - Challenge type. V(dns-persist-01) uses that challenge where the CA offers it, else V(dns-01).
      - Wildcard names need V(dns-01) (refused up front with V(http-01)).
    type: str
    default: http-01
    choices: [http-01, dns-01, dns-persist-01]
  http01_listen_port:
    description:
      - Serve http-01 answers from a built-in listener on this port of O(http01_listen_address) while the
        task runs. The CA must reach it on port 80 of each name (directly or through a port forward).
    type: int
  http01_listen_address:
    description: Address of the built-in http-01 listener.
    type: str
    default: 127.0.0.1
  http01_webroot:
    description:
      - Write http-01 answers under C(<webroot>/.well-known/acme-challenge/) on the controller (a web server
        there serves them); they are removed afterwards.
    type: path
  dns_hook_add:
    description:
      - Command (argument list, no shell) that adds one TXT record. It gets the environment variables
        E(CERTFORGE_ACME_DOMAIN), E(CERTFORGE_ACME_RECORD_NAME), E(CERTFORGE_ACME_VALUE), E(CERTFORGE_ACME_TOKEN),
        and E(CERTFORGE_ACME_VALUES) (every value of that record name, one a line).
      - A wildcard and its apex share one record name with two values, so the hook must add, not replace.
    type: list
    elements: str
  dns_hook_remove:
    description: Command (argument list) that removes one TXT record; same environment as O(dns_hook_add).
    type: list
    elements: str
  dns_propagation_command:
    description:
      - Command (argument list) that exits 0 once a record is visible; polled with short backoff until
        O(dns_propagation_timeout) before the CA is asked to validate.
    type: list
    elements: str
  dns_propagation_timeout:
    description: Seconds to wait for O(dns_propagation_command).
    type: int
    default: 120
  profile:
    description: Certificate profile; must be one of the CA's directory C(meta.profiles).
    type: str
  preferred_chain:
    description:
      - Common name of the issuer of the top certificate of the preferred chain; alternate chains offered
        with C(Link rel=alternate) are searched for it. The default chain is used when none matches.
    type: str
  renewal_info:
    description:
      - Let the CA decide when to renew (ARI, RFC 9773) where it offers C(renewalInfo). The answer is cached
        in the order store until its C(Retry-After), so runs in between send nothing. Renewals then name the
        replaced certificate (C(replaces)); an order the CA refuses with it is placed again without.
      - With V(false) (the default) the decision is local (O(renew_before_days), O(renew_at_fraction)).
    type: bool
    default: false
  recover_window:
    description:
      - Seconds after an interrupted submit (the run was killed, or the CA's answer was lost)
        during which the CA is asked again for that order before a new one is placed; a CA may
        commit a request a little after its answer was lost.
      - Defaults to V(30) (the connector may set another default). V(0) looks once.
    type: float
  wait_timeout:
    description: Seconds to wait for the CA before returning V(pending).
    type: int
    default: 120
  fail_on_pending:
    description: Fail instead of returning V(pending).
    type: bool
    default: false
seealso:
  - module: certforge.pki.acme_account
  - module: certforge.pki.acme_certificate_revoke
  - module: certforge.pki.certificate_request
'''

EXAMPLES = r'''
- name: Issue with the built-in http-01 listener (port 80 forwarded to 8080)
  certforge.pki.acme_certificate:
    name: www
    acme_directory: https://acme-v02.api.letsencrypt.org/directory
    account_key_path: /etc/certforge/acme-account.key
    terms_agreed: true
    contact: [mailto:ops@example.com]
    csr_path: /etc/certforge/www.csr
    certificate_path: /etc/certforge/www.crt
    fullchain_path: /etc/certforge/www-fullchain.crt
    http01_listen_port: 8080

- name: Wildcard through DNS hooks, the CA decides when to renew (ARI)
  certforge.pki.acme_certificate:
    name: wildcard
    acme_directory: https://acme.example.com/directory
    account_key_path: /etc/certforge/acme-account.key
    terms_agreed: true
    eab_kid: "{{ vault_eab_kid }}"
    eab_hmac_key: "{{ vault_eab_hmac_key }}"
    csr_path: /etc/certforge/wildcard.csr
    certificate_path: /etc/certforge/wildcard.crt
    challenge: dns-01
    dns_hook_add: [/usr/local/bin/dns-txt, add]
    dns_hook_remove: [/usr/local/bin/dns-txt, remove]
    renewal_info: true

- name: Manual challenge - the first run returns the data, the next run continues the order
  certforge.pki.acme_certificate:
    name: intranet
    acme_directory: https://acme.example.com/directory
    account_key_path: /etc/certforge/acme-account.key
    csr_path: /etc/certforge/intranet.csr
    certificate_path: /etc/certforge/intranet.crt
  register: order
'''

RETURN = r'''
status:
  description: V(valid) (kept), V(issued), V(pending) (waiting for the CA or for you), or V(would_issue) in check mode.
  returned: success
  type: str
  sample: issued
order_id:
  description: URL of the ACME order.
  returned: when an order was placed or resumed
  type: str
renewal_reasons:
  description: Why a certificate was (or would be) ordered; empty when the current one was kept.
  returned: success
  type: list
  elements: str
  sample: [missing]
challenges:
  description:
    - Challenges still to be answered - identifier, type, url, token, key_authorization (http-01, dns-01),
      resource (http-01 path), record_name and record_value (dns-01, dns-persist-01).
  returned: status is pending
  type: list
  elements: dict
certificate:
  description: The certificate (PEM).
  returned: status is issued or valid
  type: str
chain:
  description: The chain (PEM), issuer first.
  returned: status is issued
  type: str
fullchain:
  description: Certificate followed by the chain (PEM).
  returned: status is issued
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
subject_alt_names:
  description: SANs of the certificate.
  returned: status is issued or valid
  type: list
  elements: str
files_written:
  description: Paths written (certificate, chain, fullchain).
  returned: status is issued
  type: list
  elements: str
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme.modules import CERTIFICATE_SPEC, execute_certificate


def main():
    run_module(CERTIFICATE_SPEC, execute_certificate)


if __name__ == '__main__':
    main()
