# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Connection and account key options of every ACME module
    # (plugins/module_utils/issuers/acme/modules.py CONNECTION_OPTIONS).
    DOCUMENTATION = r'''
options:
  acme_directory:
    description:
      - URL of the ACME directory of the CA, for example U(https://acme-v02.api.letsencrypt.org/directory).
    type: str
    required: true
  acme_ca_bundle:
    description:
      - PEM file (on the controller) with the CA that issued the TLS certificate of the ACME server.
      - Set it for private ACME servers; the system trust store is used otherwise.
    type: path
  validate_certs:
    description:
      - Verify the TLS certificate of the ACME server. V(false) warns; use it only for testing.
    type: bool
    default: true
  acme_timeout:
    description: Seconds to wait for one answer of the ACME server.
    type: float
    default: 30
  account_key_path:
    description:
      - Path on the controller of the ACME account private key (PEM; ECDSA P-256 or P-384, or RSA 2048 bits or more).
      - The key never leaves the controller.
    type: path
  account_key_content:
    description: The ACME account private key itself (PEM), instead of O(account_key_path).
    type: str
  account_key_passphrase:
    description: Passphrase of an encrypted account key.
    type: str
  account_uri:
    description:
      - The account URL, when known; saves the account lookup. Otherwise it is found once and
        cached in the order store.
    type: str
  order_store:
    description:
      - Directory of the order store on the controller (orders, account URLs, ARI answers).
      - Defaults to E(CERTFORGE_ORDER_STORE) or C(~/.local/state/certforge/orders).
    type: path
'''

    # Account creation options (acme_certificate creates the account when needed; acme_account).
    ACCOUNT = r'''
options:
  contact:
    description: Contact URLs of the account, for example V(mailto:ops@example.com).
    type: list
    elements: str
    default: []
  terms_agreed:
    description:
      - Agree to the terms of service of the CA when the account is created.
      - With V(false) no account is created; an existing account of the key is still used.
    type: bool
    default: false
  eab_kid:
    description: Key identifier of the external account binding (EAB) the CA gave you.
    type: str
  eab_hmac_key:
    description: MAC key (base64url, as the CA issued it) of the external account binding.
    type: str
  eab_lookup_email:
    description:
      - Ask the CA for EAB credentials by e-mail address (ZeroSSL style) when O(eab_kid) is not given.
    type: str
  eab_lookup_url:
    description: URL of the EAB lookup of O(eab_lookup_email).
    type: str
    default: https://api.zerossl.com/acme/eab-credentials-email
'''

    ACTIONGROUP_ACME = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/certforge.pki.acme) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - certforge.pki.acme
'''
