#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: tls_scan
short_description: Scan TLS endpoints (direct or STARTTLS) and report the served chains and their problems
version_added: 0.2.0
description:
  - Connects to TLS endpoints given by O(targets) and/or O(cidrs) x O(ports), in parallel (O(concurrency)),
    and reports for each what it serves - protocol, cipher, the served certificate chain - and its problems
    (RV(endpoints[].problems)) - expired, not yet valid, expiring soon, name mismatch, self-signed,
    incomplete chain, untrusted, weak key, SHA-1 signature.
  - Every endpoint must lie inside O(allow). Anything outside it is refused before the first connection of the
    scan, and then nothing is scanned. Host names are resolved first. The scan connects only to a resolved address
    inside O(allow) (the first one, IPv4 first), and a name with no such address is refused.
  - Endpoints that refuse the connection, time out or fail the handshake are reported
    (RV(endpoints[].reachable), RV(endpoints[].error)) and do not stop the scan.
  - The handshake runs without verification, so broken chains are read rather than refused. The module then checks
    the chain itself with cryptography. It matches each certificate's issuer against the next certificate's subject,
    verifies the signatures, and follows the chain up to a trust anchor from O(ca_path) or the system trust store.
  - Runs where the play says, usually on the controller (C(delegate_to=localhost) or a local connection). Read-only,
    so it runs the same in check mode.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.info_module
requirements:
  - cryptography >= 3.3
  - Python 3.10 or later to read the whole served chain (see notes)
options:
  targets:
    description:
      - Endpoints to scan. Each is either a string V(host:port) (V([2001:db8::1]:443) for IPv6, or V(host) alone to
        try every port of O(ports)), or a dict.
      - A dict has the keys C(host) (required), C(port) (default - every port of O(ports)), C(sni) (alias
        C(server_name); the SNI name sent and checked against the certificate) and C(starttls) (default O(starttls)).
      - A host name is resolved before the scan, and one of its addresses must be inside O(allow). A name that does
        not resolve is reported as an error of its endpoint. Without C(sni), the host name is the SNI name.
    type: list
    elements: raw
  cidrs:
    description:
      - Address ranges to scan on each port of O(ports), for example V(127.0.0.0/29). Ranges with more than two addresses
        skip the network and broadcast addresses. Each range must lie inside O(allow).
      - Endpoints from ranges use O(starttls) and the names of O(server_names), or no SNI at all.
    type: list
    elements: str
  ports:
    description: TCP ports to scan on every address of O(cidrs) and on every target without a port.
    type: list
    elements: int
  allow:
    description:
      - Required allow-list of CIDR ranges the scan may connect to, for example V([127.0.0.0/8]) or V([192.0.2.0/24]).
      - A target or range outside it fails the task before any connection is made, with an error naming O(allow).
    type: list
    elements: str
    required: true
  server_names:
    description:
      - SNI names to try on every endpoint that has no C(sni) of its own. Each name gives a result of its own.
      - Without names, an IP address target sends no SNI and its address is checked against the certificate's
        IP SANs, and a host name target uses the host name.
    type: list
    elements: str
  starttls:
    description:
      - Protocol to speak before the TLS handshake, for every endpoint without a C(starttls) of its own.
      - V(smtp) (EHLO, STARTTLS), V(imap) (STARTTLS), V(pop3) (STLS), V(ldap) (the StartTLS extended operation
        1.3.6.1.4.1.1466.20037, RFC 4511), V(postgres) (SSLRequest). V(none) starts TLS right away.
    type: str
    choices: [none, smtp, imap, pop3, ldap, postgres]
    default: none
  concurrency:
    description: How many endpoints are scanned at the same time (threads), 1 to 1000.
    type: int
    default: 50
  timeout:
    description: Seconds for one endpoint in total - connect, STARTTLS exchange and TLS handshake.
    type: float
    default: 5
  warn_days:
    description: A leaf with fewer days left than this has the problem V(expiring_soon).
    type: int
    default: 30
  ca_path:
    description:
      - Trust anchors for the chain check - a PEM bundle file, or a directory of PEM or DER CA files. When it is set,
        only these are trusted.
      - Defaults to the system trust store (what Python's C(ssl.get_default_verify_paths()) names).
    type: path
  max_targets:
    description:
      - The largest number of endpoints (addresses x ports x names) one scan may cover. A larger scan is refused before
        any connection is made. This guards against a mistyped range such as V(10.0.0.0/8).
    type: int
    default: 4096
notes:
  - The served chain comes from the Python standard library. C(SSLSocket.get_unverified_chain()) is public on Python
    3.13 and later. On Python 3.10 to 3.12 the module uses the same method of the socket's internal C(_sslobj), which
    exists there but is not documented. On older Python, or if that fails, only the leaf is read. The result then says
    RV(endpoints[].chain_source=leaf_only) and RV(endpoints[].chain_complete=unknown), and the problems
    V(incomplete_chain) and V(untrusted) are not reported for a leaf whose issuer is not a trust anchor.
  - The client offers every protocol version and cipher that the local OpenSSL allows (security level 0), so that
    weak keys and SHA-1 chains are seen. Protocols that the local OpenSSL build has removed cannot be seen.
  - Name checks follow RFC 6125. A wildcard matches only as the whole left-most label, matches exactly one label, and
    needs at least two labels after it. The subject CN is consulted only when the certificate has no DNS or IP SAN.
  - Revocation (OCSP, CRL) is not checked.
seealso:
  - module: certforge.pki.certificate_info
'''

EXAMPLES = r'''
- name: Scan two web servers and an SMTP relay, only inside 127.0.0.0/8
  certforge.pki.tls_scan:
    targets:
      - 127.0.0.1:8443
      - host: 127.0.0.1
        port: 9443
        sni: www.example.com
      - host: 127.0.0.1
        port: 2525
        starttls: smtp
    allow: [127.0.0.0/8]
    warn_days: 21
  delegate_to: localhost
  register: scan

- name: Endpoints with problems
  ansible.builtin.debug:
    msg: "{{ item.host }}:{{ item.port }} {{ item.problems | join(', ') }}"
  loop: "{{ scan.endpoints | selectattr('problems') | list }}"
  loop_control:
    label: "{{ item.host }}:{{ item.port }}"

- name: Sweep a small range on two ports, trusting only our own CA
  certforge.pki.tls_scan:
    cidrs: [127.0.0.0/29]
    ports: [8443, 9443]
    server_names: [www.example.com]
    allow: [127.0.0.0/8]
    ca_path: /etc/ssl/certs/example-ca.pem
    concurrency: 100
    timeout: 3
  delegate_to: localhost
  register: sweep
'''

RETURN = r'''
endpoints:
  description:
    - One entry per endpoint and SNI name, in the order of O(targets) then O(cidrs). The keys below are stable.
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The host as given (or the address from O(cidrs)).
      type: str
      sample: 127.0.0.1
    address:
      description: The IP address connected to (null when the host name did not resolve).
      type: str
      sample: 127.0.0.1
    port:
      description: TCP port.
      type: int
      sample: 443
    sni:
      description: SNI name sent (null for none). The name check uses it, or RV(endpoints[].address) without it.
      type: str
      sample: www.example.com
    starttls:
      description: Protocol spoken before the handshake (V(none) for direct TLS).
      type: str
      sample: none
    reachable:
      description: Whether the TCP connection was accepted.
      type: bool
      sample: true
    handshake:
      description: Whether the TLS handshake completed.
      type: bool
      sample: true
    error:
      description: What failed (connect, STARTTLS or handshake), with the stage first; null when nothing failed.
      type: str
      sample: 'connect: Connection refused'
    protocol:
      description: Negotiated TLS version.
      type: str
      sample: TLSv1.3
    cipher:
      description: Negotiated cipher suite (OpenSSL name).
      type: str
      sample: TLS_AES_256_GCM_SHA384
    chain:
      description: The served certificates, leaf first, in the order served.
      type: list
      elements: dict
      contains:
        subject:
          description: Subject, RFC 4514 string.
          type: str
        issuer:
          description: Issuer, RFC 4514 string.
          type: str
        serial:
          description: Serial number, upper-case hex.
          type: str
        sans:
          description: SANs as V(DNS:name), V(IP:address), ...
          type: list
          elements: str
        not_before:
          description: Start of validity, ISO 8601 UTC.
          type: str
        not_after:
          description: End of validity, ISO 8601 UTC.
          type: str
        days_left:
          description: Days until RV(endpoints[].chain[].not_after) (negative once expired).
          type: float
        sha256:
          description: SHA-256 fingerprint, colon-separated upper-case hex.
          type: str
        key_type:
          description: V(RSA), V(ECDSA), V(Ed25519), V(Ed448) or V(DSA).
          type: str
        key_size:
          description: Key size in bits.
          type: int
        key_curve:
          description: Curve name of an ECDSA key.
          type: str
        signature_hash:
          description: Hash of the signature (V(sha256), V(sha1), ...); null for Ed25519/Ed448.
          type: str
        self_signed:
          description: Whether the certificate is self-signed.
          type: bool
        is_ca:
          description: Whether basic constraints mark a CA.
          type: bool
    chain_source:
      description: V(served) (the whole chain the server sent) or V(leaf_only) (only the leaf could be read, see notes).
      type: str
      sample: served
    chain_complete:
      description:
        - V(false) when the leaf's issuer is neither served nor a trust anchor, or when a signature on the way up does not
          verify (the problem V(incomplete_chain)). Otherwise V(true), including a served chain whose top certificate
          has an issuer that is not a trust anchor (the problem V(untrusted) only).
        - V(unknown) when only the leaf could be read. Null when there was no handshake.
      type: raw
      sample: true
    trusted:
      description: Whether the chain leads to a trust anchor of O(ca_path) or of the system store (null when unknown).
      type: bool
      sample: true
    problems:
      description:
        - Problems found, in this order when several apply - V(expired) (the leaf or a served certificate),
          V(not_yet_valid), V(expiring_soon) (fewer than O(warn_days) days left), V(name_mismatch) (SNI name, or the
          address without SNI, not among the leaf's names), V(self_signed) (the leaf), V(incomplete_chain),
          V(untrusted), V(weak_key) (RSA or DSA under 2048 bits, EC under 256), V(sha1_signature) (SHA-1 or MD5, a
          self-signed root in the chain aside).
        - Empty for a good endpoint and for one without a handshake (see RV(endpoints[].error)).
      type: list
      elements: str
      sample: [expiring_soon]
    problem_details:
      description: One C({problem, detail}) per entry of RV(endpoints[].problems), saying why.
      type: list
      elements: dict
      sample: [{problem: expiring_soon, detail: the leaf expires in 12.0 days (2026-12-12T00:00:00Z)}]
summary:
  description: Counts over RV(endpoints).
  returned: always
  type: dict
  sample: {total: 3, reachable: 3, handshakes: 3, errors: 0, with_problems: 1,
           problems: {expired: 1, not_yet_valid: 0, expiring_soon: 0, name_mismatch: 0, self_signed: 0,
                      incomplete_chain: 0, untrusted: 0, weak_key: 0, sha1_signature: 0}}
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.tls_scan import SPEC, execute


def main():
    run_module(SPEC, execute)


if __name__ == '__main__':
    main()
