#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: local_ca
short_description: Create or load a local certificate authority on the controller
version_added: 0.1.0
description:
  - Creates a certificate authority in a directory on the controller, or loads the one already there.
  - A self-signed root, an intermediate signed by another local CA (a multi-level tree with path length
    and name constraints), or a sub-CA imported from an existing certificate and key on disk, for example
    one signed by an enterprise root such as AD CS.
  - The CA key is written with mode C(0600) from its first byte and never leaves the controller.
  - An existing CA is never replaced unless O(force=true).
  - This module always runs on the controller (an action plugin), whatever host the task targets.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.actiongroup_local_ca
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
  path:
    description: Directory of the CA on the controller. Its parent directory must exist.
    type: path
    required: true
  type:
    description:
      - V(root) makes a self-signed root.
      - V(intermediate) makes a CA signed by the local CA in O(parent_path).
      - V(import) takes an existing CA certificate and key (O(certificate_path), O(privatekey_path)).
    type: str
    choices: [root, intermediate, import]
    default: root
  common_name:
    description: Common name of a new CA. Required for a new root or intermediate unless O(subject) is given.
    type: str
  subject:
    description:
      - Further subject fields of a new CA, such as C(organizationName) or C(O), C(countryName) or C(C).
    type: dict
  key_type:
    description: Key type of a new CA.
    type: str
    choices: [ECDSA, RSA, Ed25519]
    default: ECDSA
  key_size:
    description: RSA key size (default 3072).
    type: int
    choices: [2048, 3072, 4096]
  key_curve:
    description: ECDSA curve (default V(secp384r1)).
    type: str
    choices: [secp256r1, secp384r1]
  passphrase:
    description: Passphrase that protects the CA key on disk.
    type: str
  validity_days:
    description: Lifetime of a new CA certificate. Defaults to 3650 for a root and 1825 for an intermediate, capped at the parent's expiry.
    type: int
  path_length:
    description: Path length constraint of a new CA. An intermediate defaults to 0; a root to unlimited.
    type: int
  name_constraints_permitted:
    description: Permitted subtrees of a new CA, such as V(DNS:example.com).
    type: list
    elements: str
  name_constraints_excluded:
    description: Excluded subtrees of a new CA.
    type: list
    elements: str
  parent_path:
    description: Directory of the local CA that signs an intermediate. Required for O(type=intermediate).
    type: path
  parent_passphrase:
    description: Passphrase of the parent CA key.
    type: str
  certificate_path:
    description:
      - For O(type=import), the CA certificate to import. It must have C(CA:TRUE) and C(keyCertSign).
    type: path
  privatekey_path:
    description: For O(type=import), the private key of O(certificate_path).
    type: path
  privatekey_passphrase:
    description: Passphrase of O(privatekey_path).
    type: str
  chain_path:
    description: For O(type=import), the certificates above the imported CA, nearest first.
    type: path
  force:
    description: Replace an existing CA. Everything it issued stops chaining to the new one.
    type: bool
    default: false
seealso:
  - module: certforge.pki.local_ca_certificate
  - module: certforge.pki.local_ca_crl
'''

EXAMPLES = r'''
- name: Directory for the CAs (the module creates a CA's own directory, not its parents)
  ansible.builtin.file:
    path: /etc/certforge
    state: directory
    mode: '0755'

- name: Create a root CA
  certforge.pki.local_ca:
    path: /etc/certforge/root-ca
    common_name: Example Root CA
    subject:
      O: Example Org

- name: Create an intermediate CA limited to example.com
  certforge.pki.local_ca:
    path: /etc/certforge/issuing-ca
    type: intermediate
    parent_path: /etc/certforge/root-ca
    common_name: Example Issuing CA
    name_constraints_permitted:
      - DNS:example.com

- name: Import a sub-CA signed by the enterprise root
  certforge.pki.local_ca:
    path: /etc/certforge/ad-sub-ca
    type: import
    certificate_path: /etc/certforge/import/sub-ca.crt
    privatekey_path: /etc/certforge/import/sub-ca.key
    chain_path: /etc/certforge/import/enterprise-root.crt
'''

RETURN = r'''
path:
  description: Directory of the CA.
  returned: always
  type: str
  sample: /etc/certforge/root-ca
certificate:
  description: The CA certificate (PEM).
  returned: success, not in check mode for a new CA
  type: str
chain:
  description: The certificates above this CA (PEM), empty for a root.
  returned: success, not in check mode for a new CA
  type: str
subject:
  description: Subject of the CA (RFC 4514).
  returned: success
  type: str
  sample: CN=Example Root CA,O=Example Org
serial:
  description: Serial number of the CA certificate (hex).
  returned: success, not in check mode for a new CA
  type: str
not_after:
  description: Expiry of the CA certificate (ISO 8601, UTC).
  returned: success, not in check mode for a new CA
  type: str
  sample: '2036-11-25T13:00:00Z'
changed_reasons:
  description: Why something changed.
  returned: always
  type: list
  elements: str
  sample: [created]
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.local_ca_modules import LOCAL_CA_SPEC, execute_local_ca


def main():
    run_module(LOCAL_CA_SPEC, execute_local_ca)


if __name__ == '__main__':
    main()
