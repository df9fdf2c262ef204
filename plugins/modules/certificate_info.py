#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: certificate_info
short_description: Read a certificate from a file, from PEM text or from a live TLS endpoint, and decide on renewal
version_added: 0.1.0
description:
  - Parses a certificate given by O(path), O(content) or a live TLS endpoint (O(host), O(port)) and returns its
    subject, SANs, issuer, serial, fingerprints, validity and days left, and the chain when one is present or served.
  - Tells whether the certificate needs renewal (RV(needs_renewal)) and why (RV(renewal_reasons)), under the policy
    options O(renew_before_days), O(renew_at_fraction), O(expected_subject_alt_names), O(expected_issuer) and
    O(force). A missing O(path) is not an error; it needs renewal with the reason V(missing).
  - With O(privatekey_path), whether the certificate belongs to that key (RV(key_matches)); a certificate for
    another key needs renewal (V(key_changed)).
  - Read-only; runs on any host, including the controller (C(delegate_to=localhost)).
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.info_module
  - certforge.pki.renewal
requirements:
  - cryptography >= 3.3
options:
  path:
    description: Path of a PEM or DER certificate file. Further certificates in the file are returned as RV(chain).
    type: path
  content:
    description: The certificate as PEM text. Further certificates are returned as RV(chain).
    type: str
  host:
    description: Host name or IP address of a TLS endpoint to read the served certificate from.
    type: str
  port:
    description: TCP port of O(host).
    type: int
    default: 443
  server_name:
    description:
      - Server name sent with SNI and checked against the certificate when O(ca_path) is set.
      - Defaults to O(host) unless that is an IP address.
    type: str
  timeout:
    description: Seconds to wait for the TCP connection and the TLS handshake.
    type: float
    default: 10
  ca_path:
    description:
      - CA bundle file (or directory of hashed CA files) to verify the endpoint's chain and name against.
      - The result says whether verification passed (RV(verified), RV(verify_error)); the certificate is returned
        either way. Without it, the endpoint is read without verification.
    type: path
  privatekey_path:
    description: Private key to compare the certificate with; sets RV(key_matches).
    type: path
  privatekey_passphrase:
    description: Passphrase of O(privatekey_path).
    type: str
  expected_subject_alt_names:
    description:
      - SANs the certificate should have (V(DNS:name), V(IP:address), ...; a bare name is a DNS name).
        Any difference (order aside) needs renewal with the reason V(san_changed).
    type: list
    elements: str
  expected_issuer:
    description:
      - Issuer the certificate should come from, as an RFC 4514 string (V(CN=Example CA,O=Example)) or a part of it.
        Another issuer needs renewal with the reason V(issuer_changed).
    type: str
notes:
  - For a live endpoint the served chain is read with the Python standard library; on Python older than 3.10
    only the leaf certificate is returned.
seealso:
  - module: certforge.pki.certificate_request
'''

EXAMPLES = r'''
- name: Inspect a deployed certificate and its key
  certforge.pki.certificate_info:
    path: /etc/ssl/www.example.com.crt
    privatekey_path: /etc/ssl/private/www.example.com.key
    renew_before_days: 30
    expected_subject_alt_names:
      - DNS:www.example.com
      - DNS:example.com
  register: cert

- name: Say why it is due
  ansible.builtin.debug:
    msg: "renew: {{ cert.renewal_reasons | join(', ') }}"
  when: cert.needs_renewal

- name: What does the live endpoint serve, verified against our CA?
  certforge.pki.certificate_info:
    host: 127.0.0.1
    port: 8443
    server_name: www.example.com
    ca_path: /etc/ssl/certs/example-ca.pem
    renew_at_fraction: 0.67
  delegate_to: localhost
  register: live

- name: Parse PEM text
  certforge.pki.certificate_info:
    content: "{{ live.pem }}"
  delegate_to: localhost
  register: parsed
'''

RETURN = r'''
exists:
  description: Whether a certificate was found (V(false) when O(path) does not exist).
  returned: always
  type: bool
  sample: true
needs_renewal:
  description: Whether the certificate should be renewed under the policy options.
  returned: always
  type: bool
  sample: false
renewal_reasons:
  description:
    - Why it needs renewal, most important first. Empty when it does not.
    - One or more of V(missing), V(expired), V(inside_window), V(lifetime_fraction), V(san_changed), V(key_changed),
      V(issuer_changed), V(forced).
  returned: always
  type: list
  elements: str
  sample: [inside_window]
subject:
  description: Subject attributes by long name; repeated attributes are lists.
  returned: when RV(exists)
  type: dict
  sample: {commonName: www.example.com, organizationName: Example Ltd}
subject_string:
  description: Subject as an RFC 4514 string.
  returned: when RV(exists)
  type: str
  sample: CN=www.example.com,O=Example Ltd
issuer:
  description: Issuer attributes by long name.
  returned: when RV(exists)
  type: dict
  sample: {commonName: Example Issuing CA}
issuer_string:
  description: Issuer as an RFC 4514 string.
  returned: when RV(exists)
  type: str
  sample: CN=Example Issuing CA
serial:
  description: Serial number, upper-case hex without colons.
  returned: when RV(exists)
  type: str
  sample: 3A5F0C9B12D4E6F8
serial_number:
  description: Serial number as an integer.
  returned: when RV(exists)
  type: int
  sample: 4205990184347092728
not_before:
  description: Start of validity, ISO 8601 UTC.
  returned: when RV(exists)
  type: str
  sample: '2026-01-01T00:00:00Z'
not_after:
  description: End of validity, ISO 8601 UTC.
  returned: when RV(exists)
  type: str
  sample: '2026-04-01T00:00:00Z'
days_left:
  description: Days until RV(not_after) (negative once expired), two decimals.
  returned: when RV(exists)
  type: float
  sample: 42.25
lifetime_days:
  description: Total validity in days.
  returned: when RV(exists)
  type: float
  sample: 90.0
expired:
  description: Whether RV(not_after) has passed.
  returned: when RV(exists)
  type: bool
  sample: false
subject_alt_names:
  description: SANs as V(DNS:name), V(IP:address), V(email:address), V(URI:uri).
  returned: when RV(exists)
  type: list
  elements: str
  sample: ['DNS:www.example.com', 'IP:192.0.2.10']
fingerprints:
  description: Certificate fingerprints, colon-separated upper-case hex.
  returned: when RV(exists)
  type: dict
  sample: {sha1: 'AB:CD:...', sha256: '12:34:...'}
public_key:
  description: Type, size, curve and fingerprint (hex SHA-256 of the SubjectPublicKeyInfo) of the public key.
  returned: when RV(exists)
  type: dict
  sample: {type: ECDSA, curve: secp256r1, size: 256, fingerprint: 5d0b3f0c...}
is_ca:
  description: Whether basic constraints mark a CA.
  returned: when RV(exists)
  type: bool
  sample: false
path_length:
  description: Path length constraint of a CA.
  returned: when RV(exists)
  type: int
  sample: null
self_signed:
  description: Whether the certificate is self-signed.
  returned: when RV(exists)
  type: bool
  sample: false
key_usage:
  description: Key usage names.
  returned: when RV(exists)
  type: list
  elements: str
  sample: [digitalSignature]
extended_key_usage:
  description: Extended key usage names (or dotted OIDs).
  returned: when RV(exists)
  type: list
  elements: str
  sample: [serverAuth, clientAuth]
subject_key_identifier:
  description: Subject key identifier, colon-separated hex.
  returned: when RV(exists)
  type: str
  sample: 'A1:B2:...'
authority_key_identifier:
  description: Authority key identifier, colon-separated hex.
  returned: when RV(exists)
  type: str
  sample: 'C3:D4:...'
signature_algorithm:
  description: Signature algorithm.
  returned: when RV(exists)
  type: str
  sample: ecdsa-with-SHA256
ocsp_uri:
  description: OCSP responder URIs from the authority information access extension.
  returned: when RV(exists)
  type: list
  elements: str
  sample: []
ca_issuers_uri:
  description: CA issuer URIs from the authority information access extension.
  returned: when RV(exists)
  type: list
  elements: str
  sample: []
pem:
  description: The certificate in PEM.
  returned: when RV(exists)
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
chain:
  description:
    - Further certificates in the file or served by the endpoint, in the order found (issuer first when the source
      is well ordered), each with C(subject_string), C(issuer_string), C(serial), C(not_after), C(is_ca),
      C(fingerprint) (SHA-256) and C(pem).
  returned: when RV(exists)
  type: list
  elements: dict
  sample:
    - subject_string: CN=Example Issuing CA
      issuer_string: CN=Example Root CA
      serial: 01
      not_after: '2030-01-01T00:00:00Z'
      is_ca: true
key_matches:
  description: Whether the certificate belongs to O(privatekey_path).
  returned: when O(privatekey_path) is set and RV(exists)
  type: bool
  sample: true
verified:
  description: Whether the endpoint's chain and name verified against O(ca_path).
  returned: when O(host) and O(ca_path) are set
  type: bool
  sample: true
verify_error:
  description: Why verification failed.
  returned: when RV(verified) is V(false)
  type: str
  sample: certificate has expired
tls_version:
  description: TLS version of the handshake with O(host).
  returned: when O(host) is set
  type: str
  sample: TLSv1.3
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.cert_info import SPEC, execute


def main():
    run_module(SPEC, execute)


if __name__ == '__main__':
    main()
