#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: acme_account
short_description: Create, update, deactivate or re-key an ACME account
version_added: 0.1.0
description:
  - Manages the account of an ACME account key at a CA (RFC 8555 section 7.3), with external account
    binding (key id and HMAC key, or a ZeroSSL-style lookup by e-mail).
  - O(state=changed_key) rolls the account over to a new key (key change).
  - Runs on the controller (an action plugin); the account key never reaches managed hosts.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.acme
  - certforge.pki.acme.account
  - certforge.pki.acme.actiongroup_acme
attributes:
  check_mode:
    support: full
    details:
      - Check mode looks the account up but sends no change.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - O(state=changed_key) changes the key on every run.
options:
  state:
    description:
      - V(present) creates the account (needs O(terms_agreed)) or updates its O(contact).
      - V(absent) deactivates it (for good). V(changed_key) rolls it over to the new key.
    type: str
    default: present
    choices: [present, absent, changed_key]
  account_key_create:
    description:
      - Create the account key at O(account_key_path) when that file does not exist yet (mode C(0600) from
        its first byte, encrypted with O(account_key_passphrase) when given), then register the account.
      - An existing file is never replaced. Unset means the key must exist.
    type: str
    choices: [ECDSA-P256, ECDSA-P384, RSA-3072]
  new_account_key_path:
    description: Path of the new account key for O(state=changed_key).
    type: path
  new_account_key_content:
    description: The new account key (PEM) for O(state=changed_key).
    type: str
  new_account_key_passphrase:
    description: Passphrase of the new account key.
    type: str
seealso:
  - module: certforge.pki.acme_certificate
'''

EXAMPLES = r'''
- name: Create the account with external account binding
  certforge.pki.acme_account:
    acme_directory: https://acme.example.com/directory
    account_key_path: /etc/certforge/acme-account.key
    terms_agreed: true
    contact: [mailto:ops@example.com]
    eab_kid: "{{ vault_eab_kid }}"
    eab_hmac_key: "{{ vault_eab_hmac_key }}"

- name: Make the account key if there is none yet, and register it
  certforge.pki.acme_account:
    acme_directory: https://acme.example.com/directory
    account_key_path: /etc/certforge/acme-account.key
    account_key_create: ECDSA-P256
    terms_agreed: true
'''

RETURN = r'''
account_key_created:
  description: Whether O(account_key_create) made a new account key.
  returned: success
  type: bool
  sample: false
account_uri:
  description: URL of the account.
  returned: success
  type: str
status:
  description: V(valid), V(created), V(deactivated), V(key_changed), V(absent) or V(would_create).
  returned: success
  type: str
contact:
  description: Contact URLs of the account.
  returned: success
  type: list
  elements: str
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme.modules import ACCOUNT_SPEC, execute_account


def main():
    run_module(ACCOUNT_SPEC, execute_account)


if __name__ == '__main__':
    main()
