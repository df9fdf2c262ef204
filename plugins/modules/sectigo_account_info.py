#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: sectigo_account_info
short_description: What a Sectigo Certificate Manager account offers - profiles, organizations, domains, custom fields
version_added: 0.1.0
description:
  - Reads the certificate profiles (with their terms and key types), the organizations with their departments
    and whether the SSL REST API is enabled for each, the domains with their validation status and DCV expiry,
    and the SSL custom fields (mandatory or not) of a Sectigo Certificate Manager tenant.
  - Use it to find the values O(certforge.pki.sectigo_certificate#module:profile),
    O(certforge.pki.sectigo_certificate#module:organization) and
    O(certforge.pki.sectigo_certificate#module:custom_fields) accept.
  - This module always runs on the controller (an action plugin).
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.info_module
  - certforge.pki.sectigo
  - certforge.pki.sectigo.actiongroup_sectigo
options:
  gather_subset:
    description: What to read. V(all) reads everything.
    type: list
    elements: str
    choices: [all, profiles, organizations, domains, custom_fields]
    default: [all]
  domain_details:
    description: Read each domain's details (validation status, DCV expiry, delegations); one call per domain.
    type: bool
    default: true
seealso:
  - module: certforge.pki.sectigo_certificate
'''

EXAMPLES = r'''
- name: What may this account order?
  certforge.pki.sectigo_account_info:
    customer_uri: example
    login: api-bot
    password: "{{ vault_sectigo_password }}"
  register: scm

- name: Domains whose validation expires within 30 days
  ansible.builtin.debug:
    msg: "{{ scm.domains | selectattr('dcv_expiration') | map(attribute='name') | list }}"

- name: Profiles only, credentials from SECTIGO_* environment variables
  certforge.pki.sectigo_account_info:
    gather_subset: [profiles]
'''

RETURN = r'''
profiles:
  description: Certificate profiles available to the account.
  returned: when profiles are gathered
  type: list
  elements: dict
  sample: [{id: 101, name: Sectigo DV SSL, description: Domain validated, terms: [365],
            key_types: {RSA: ['2048'], EC: [P-256]}, use_secondary_org_name: false}]
organizations:
  description: Organizations with their departments and whether the SSL REST API is enabled.
  returned: when organizations are gathered
  type: list
  elements: dict
  sample: [{id: 310, name: Example Org, validation_status: Validated, ssl_api_enabled: true, cert_types: [SSL],
            departments: [{id: 312, name: Web Team, ssl_api_enabled: true, cert_types: [SSL]}]}]
domains:
  description: Domains with state, validation status and DCV expiry (when O(domain_details=true)).
  returned: when domains are gathered
  type: list
  elements: dict
  sample: [{id: 5101, name: example.com, state: ACTIVE, validation_status: Validated,
            validation_method: CNAME_CSR_HASH, dcv_expiration: '2026-09-01', delegations: []}]
custom_fields:
  description: SSL custom fields.
  returned: when custom fields are gathered
  type: list
  elements: dict
  sample: [{id: 7, name: cost-center, mandatory: true}]
api_calls:
  description: Number of SCM API requests made.
  returned: success
  type: int
  sample: 12
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.core.http import HAS_REQUESTS, REQUESTS_IMPORT_ERROR
from ansible_collections.certforge.pki.plugins.module_utils.issuers.sectigo_modules import INFO_SPEC, execute_account_info


def main():
    run_module(INFO_SPEC, execute_account_info, supports_check_mode=True,
               requires=[('requests', HAS_REQUESTS, REQUESTS_IMPORT_ERROR)])


if __name__ == '__main__':
    main()
