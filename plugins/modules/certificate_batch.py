#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: certificate_batch
short_description: Issue or renew many certificates, of many hosts, in one controller-side call
version_added: 0.1.0
description:
  - Runs what M(certforge.pki.certificate) does for each entry of O(requests), in one call on the controller
    (an action plugin, in-process). The certificate role runs it once per play (C(run_once)) for the
    certificates of every host.
  - Each request is decided first (no CA call when nothing is due) and goes through the same issue sequence,
    so each certificate is ordered at most once per issuer and name, also when two hosts ask for the same name.
  - A request that fails is reported in its own entry of RV(results) (C(failed), C(msg)); the others go on.
  - O(max_workers) above V(1) runs requests concurrently (for issuers that wait on the network).
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.renewal
  - certforge.pki.connectors.issuer_options
  - certforge.pki.notifiers
attributes:
  check_mode:
    support: full
    details:
      - Check mode never calls a CA write endpoint.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - Not idempotent when O(force=true).
options:
  issuer:
    description: The issuer connector of every request that names none, as in M(certforge.pki.certificate).
    type: str
    required: true
  requests:
    description: The certificates, each issued or renewed as M(certforge.pki.certificate) would.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the certificate; with the issuer it keys the order store.
        type: str
        required: true
      host:
        description: The host the certificate is for; returned in its result.
        type: str
      csr:
        description: The CSR in PEM. Without it the request is skipped (check mode, before the key exists).
        type: str
      current_certificate:
        description: The certificate in use, in PEM, if any.
        type: str
      profile:
        description: Issuance profile; the issuer's default when omitted.
        type: str
      validity_days:
        description: Requested lifetime in days; the issuer's default when omitted.
        type: int
      issuer:
        description: Issuer of this request; O(issuer) when omitted.
        type: str
      issuer_options:
        description: Issuer options of this request; O(issuer_options) when omitted.
        type: dict
      renew_before_days:
        description: As O(renew_before_days), for this request.
        type: int
      force:
        description: As O(force), for this request.
        type: bool
      wait_timeout:
        description: As O(wait_timeout), for this request.
        type: int
      item:
        description: Any data, returned unchanged in the request's result.
        type: raw
  wait_timeout:
    description: Seconds to wait for the CA, per request, before returning V(pending).
    type: int
    default: 60
  order_store:
    description:
      - Directory (or C(postgresql://) URL) of the order store on the controller.
      - Defaults to E(CERTFORGE_ORDER_STORE) or C(~/.local/state/certforge/orders).
    type: path
  max_workers:
    description: Requests run at the same time.
    type: int
    default: 1
  poll_schedule:
    description: As in M(certforge.pki.certificate).
    type: list
    elements: float
  poll_base:
    description: As in M(certforge.pki.certificate).
    type: float
  poll_max_delay:
    description: As in M(certforge.pki.certificate).
    type: float
  poll_max_attempts:
    description: As in M(certforge.pki.certificate).
    type: int
  poll_jitter:
    description: As in M(certforge.pki.certificate).
    type: float
seealso:
  - module: certforge.pki.certificate
  - module: certforge.pki.certificate_request
'''

EXAMPLES = r'''
- name: Keys and CSRs on every host
  certforge.pki.certificate_request:
    requests:
      - privatekey_path: /etc/ssl/private/www.key
        common_name: "{{ inventory_hostname }}"
        certificate_path: /etc/ssl/certs/www.crt
  register: req

- name: Issue for every host of the play in one call on the controller
  certforge.pki.certificate_batch:
    issuer: local_ca
    issuer_options:
      ca_path: /etc/certforge/issuing-ca
    requests: >-
      {%- set out = [] -%}
      {%- for h in ansible_play_hosts -%}
      {%- set r = hostvars[h].req.results[0] -%}
      {%- set _ = out.append({'name': h, 'host': h, 'csr': r.csr,
                              'current_certificate': r.current_certificate.pem | default(none)}) -%}
      {%- endfor -%}
      {{ out }}
  run_once: true
  register: issued
'''

RETURN = r'''
notifications:
  description: Per notifier of O(notifiers) - C(name), C(type), C(events), C(delivered), C(failed), C(errors) (redacted).
  returned: when O(notifiers) is set and the call had events
  type: list
  elements: dict
results:
  description:
    - One result per request, in order, with the keys of M(certforge.pki.certificate)'s result
      (C(changed), C(status), C(certificate), C(chain), C(serial), C(renewal_reasons), ...) plus C(name),
      C(host) and C(item).
    - C(skipped=true) for a request without a CSR; C(failed=true), C(msg) and C(error_option) for one that failed.
  returned: always
  type: list
  elements: dict
  sample:
    - name: www
      host: web1
      changed: true
      status: issued
      serial: 0A1B2C3D
by_host:
  description: For each host, the positions of its requests in RV(results).
  returned: always
  type: dict
  sample: {web1: [0, 1], web2: [2]}
due_hosts:
  description: Hosts with a certificate issued, renewed, pending or failed (something to deploy or report).
  returned: always
  type: list
  elements: str
  sample: [web1]
issued:
  description: How many certificates were issued or renewed.
  returned: always
  type: int
  sample: 2
pending:
  description: How many orders are still pending at the CA.
  returned: always
  type: int
  sample: 0
failed_requests:
  description: How many requests failed.
  returned: always
  type: int
  sample: 0
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.certificate_batch import SPEC, execute


def main():
    run_module(SPEC, execute)


if __name__ == '__main__':
    main()
