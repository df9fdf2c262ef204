#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: certificate_discovery
short_description: Find certificates and private keys in files on the managed host
version_added: 0.2.0
description:
  - Searches the directories and files in O(paths) for certificates and private keys and returns one entry per
    certificate (RV(certificates)) and per private key (RV(keys)), with subject, SANs, issuer, validity, days left,
    fingerprints, whether a private key next to it belongs to it and whether this collection manages it.
  - Reads PEM (several certificates and keys per file), DER certificates and keys, PKCS#7 (PEM and DER), PKCS#12
    (with no password, an empty one or one of O(passwords)) and Java KeyStores in the JKS format (with one of
    O(passwords); the keystore's integrity digest is checked with it). The format is decided from the content,
    not from the file name.
  - Walks with C(os.scandir); inside directories only files whose names match O(patterns) and whose size is at most
    O(max_file_size) are opened. Nothing is executed per file.
  - One bad file never stops the search; it is listed in RV(problems) with the reason.
  - A path of O(paths) that does not exist (or a glob that matches nothing) is not an error either; it is listed in
    RV(problems) with the reason V(missing), so one task can search the same paths on hosts that differ.
  - Read-only; runs in check mode like in a normal run and never reports a change.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.info_module
requirements:
  - cryptography >= 3.3
options:
  paths:
    description:
      - Absolute paths of directories to search, or of files to read. Shell-style globs are expanded
        (V(/etc/ssl/*/certs)).
      - A file named here is read whatever its name (O(patterns) selects files inside directories); symbolic links
        named here are followed.
    type: list
    elements: path
    required: true
  patterns:
    description:
      - Globs of the file names (not paths) to read inside the directories, matched without regard to case.
      - Default V(*.pem), V(*.crt), V(*.cer), V(*.cert), V(*.der), V(*.key), V(*.p12), V(*.pfx), V(*.jks),
        V(*.keystore), V(*.truststore), V(*.p7b), V(*.p7c), V(*.ca-bundle).
      - A single V(*) reads every file up to O(max_file_size) and keeps those whose content is a certificate, a
        PKCS#7, PKCS#12 or JKS store or a private key; the others are listed in RV(problems) as
        V(not_a_certificate).
    type: list
    elements: str
  excludes:
    description:
      - Globs of names to leave out. A glob without V(/) is matched against file and directory names (a matching
        directory is not entered), one with V(/) against the whole path (V(/etc/ssl/old/*)).
    type: list
    elements: str
    default: []
  max_depth:
    description:
      - How many directory levels below each directory of O(paths) to enter. V(0) reads only the files directly in
        it. Unlimited when not set.
    type: int
  follow_symlinks:
    description:
      - Whether to enter symbolic links to directories. Each directory is entered once (it is known by its device
        and inode), so a link loop ends with a V(loop) entry in RV(problems).
      - Symbolic links to files are read either way. A file reached under several names (symbolic or hard links) is
        reported once, under the first name found; in each directory, regular files come before links.
    type: bool
    default: false
  max_file_size:
    description:
      - Largest file, in bytes, that is read; larger candidate files are listed in RV(problems) as V(too_large).
      - Must be between 1 and 268435456 (256 MiB).
    type: int
    default: 1048576
  passwords:
    description:
      - Passwords to try, in order, for PKCS#12 files, JKS keystores and encrypted private keys. PKCS#12 files are
        also tried with no password and an empty one.
      - Never shown in the result or in messages.
    type: list
    elements: str
    default: []
  managed_dirs:
    description:
      - Directories whose certificates and keys count as managed by this collection (RV(certificates[].managed)).
      - Independently of this option, files count as managed when they form the file set the
        M(certforge.pki.certificate_request) module and the C(certforge.pki.certificate) role write for one
        name C(<stem>) in one directory - C(<stem>.crt), C(<stem>.chain.pem), C(<stem>.fullchain.pem),
        C(<stem>.key) - and C(<stem>.csr) holds a CSR for the same public key as the certificate in
        C(<stem>.crt); and files named in the record M(certforge.pki.certificate_request) keeps in its
        directory (C(.certforge-request.json)) when the search passes that directory - the key, CSR and
        certificate of each request, also under names of their own (not their chain and full chain files).
        The record is not kept for every call (not with a key passphrase or C(rotate_key)), so other certificates
        are recognized only through this option.
    type: list
    elements: path
    default: []
  renew_before_days:
    description:
      - Certificates with at most this many days left are due (RV(certificates[].due)) and, unless already
        expired, counted in C(expiring) of RV(totals).
    type: int
    default: 30
notes:
  - Keys inside a JKS private key entry are decrypted (Sun's key protection, with the keystore password) to match
    them with certificates; the key material never leaves the module.
  - A private key matches a certificate when it lies in the same directory (or the same file) and has the same
    public key.
  - Files that cannot be opened by the user the task runs as are listed as V(unreadable); use C(become) to search
    system directories.
seealso:
  - module: certforge.pki.certificate_info
'''

EXAMPLES = r'''
- name: Find certificates and keys under /etc/ssl and /etc/certforge
  certforge.pki.certificate_discovery:
    paths:
      - /etc/ssl
      - /etc/certforge
    excludes:
      - "*.old"
    renew_before_days: 30
  register: found

- name: Say what expires soon
  ansible.builtin.debug:
    msg: "{{ item.path }} ({{ item.subject }}) expires {{ item.not_after }}"
  loop: "{{ found.certificates | selectattr('due') | list }}"
  loop_control:
    label: "{{ item.path }}"

- name: Read Java keystores and PKCS#12 files as well, with their passwords
  certforge.pki.certificate_discovery:
    paths:
      - /etc/app/tls
    patterns: ["*"]
    max_depth: 2
    passwords:
      - "{{ vault_keystore_password }}"
  register: keystores

- name: Certificates nobody manages with this collection
  ansible.builtin.debug:
    msg: "{{ found.certificates | rejectattr('managed') | map(attribute='path') | unique | list }}"
'''

RETURN = r'''
certificates:
  description:
    - One entry per certificate found, in the order found (paths in the order of O(paths), directory entries
      sorted by name, certificates in file order). The keys listed here are stable.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description:
        - File the certificate is in. A file name that is not valid UTF-8 is shown with backslash escapes
          (V(/etc/ssl/caf\\xe9.pem)); every path in the result is shown that way.
      type: str
      sample: /etc/ssl/www.example.com.crt
    format:
      description: Format of that file.
      type: str
      choices: [pem, der, pkcs7, pkcs12, jks]
      sample: pem
    index:
      description: Position of the certificate in the file, from 0.
      type: int
      sample: 0
    alias:
      description: Alias (JKS) or friendly name (PKCS#12) of the entry; V(null) for other formats.
      type: str
      sample: null
    subject:
      description: Subject as an RFC 4514 string.
      type: str
      sample: CN=www.example.com
    sans:
      description: Subject alternative names as V(DNS:name), V(IP:address), V(email:address), V(URI:uri).
      type: list
      elements: str
      sample: ['DNS:www.example.com', 'DNS:example.com']
    issuer:
      description: Issuer as an RFC 4514 string.
      type: str
      sample: CN=Example Issuing CA
    serial:
      description: Serial number, upper-case hex without colons.
      type: str
      sample: 3A5F0C9B12D4E6F8
    fingerprint_sha256:
      description: SHA-256 fingerprint, colon-separated upper-case hex.
      type: str
      sample: '12:34:...'
    fingerprint_sha1:
      description: SHA-1 fingerprint, colon-separated upper-case hex.
      type: str
      sample: 'AB:CD:...'
    not_before:
      description: Start of validity, ISO 8601 UTC with V(Z).
      type: str
      sample: '2026-01-01T00:00:00Z'
    not_after:
      description: End of validity, ISO 8601 UTC with V(Z).
      type: str
      sample: '2026-04-01T00:00:00Z'
    days_left:
      description: Days until RV(certificates[].not_after), two decimals, negative once expired.
      type: float
      sample: 42.25
    expired:
      description: Whether RV(certificates[].not_after) has passed.
      type: bool
      sample: false
    due:
      description: Whether RV(certificates[].days_left) is at most O(renew_before_days) (expired ones are due).
      type: bool
      sample: false
    key_type:
      description: Public key type (V(RSA), V(ECDSA), V(Ed25519), V(Ed448), V(DSA)).
      type: str
      sample: ECDSA
    key_size:
      description: Public key size in bits.
      type: int
      sample: 256
    key_curve:
      description: Curve of an ECDSA key, else V(null).
      type: str
      sample: secp256r1
    signature_algorithm:
      description: Signature algorithm name (or dotted OID).
      type: str
      sample: ecdsa-with-SHA256
    self_signed:
      description: Whether subject and issuer are the same and the certificate's own key verifies its signature.
      type: bool
      sample: false
    is_ca:
      description: Whether basic constraints mark a CA.
      type: bool
      sample: false
    key_match:
      description:
        - Path of a private key found in the same directory with the certificate's public key (the file itself
          when the key is in it, as in PKCS#12, JKS or a combined PEM), or V(null).
      type: str
      sample: /etc/ssl/www.example.com.key
    managed:
      description: Whether this collection manages the file (see O(managed_dirs)).
      type: bool
      sample: true
    managed_by:
      description: Why it counts as managed, V(managed_dirs), V(layout) or V(request_record); V(null) when it does
        not.
      type: str
      sample: layout
keys:
  description: One entry per private key found (also keys inside PKCS#12 files and JKS private key entries).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: File the key is in.
      type: str
      sample: /etc/ssl/www.example.com.key
    format:
      description: Format of that file.
      type: str
      sample: pem
    index:
      description: Position of the key among the keys of the file, from 0.
      type: int
      sample: 0
    alias:
      description: Alias of a JKS entry, else V(null).
      type: str
      sample: null
    type:
      description: Key type; V(null) when the key is encrypted and none of O(passwords) opens it.
      type: str
      sample: RSA
    size:
      description: Key size in bits, or V(null) as for RV(keys[].type).
      type: int
      sample: 2048
    curve:
      description: Curve of an ECDSA key, else V(null).
      type: str
      sample: null
    encrypted:
      description: Whether the key is protected by a password (always V(true) inside PKCS#12 opened with a password
        and inside JKS).
      type: bool
      sample: false
    certificates:
      description: Paths of the certificates in the same directory that belong to this key.
      type: list
      elements: str
      sample: [/etc/ssl/www.example.com.crt]
    managed:
      description: As RV(certificates[].managed).
      type: bool
      sample: false
    managed_by:
      description: As RV(certificates[].managed_by).
      type: str
      sample: null
problems:
  description:
    - Files and paths that were not read or held nothing usable, with the reason. The search went on after each.
    - C(reason) is one of V(missing) (a path of O(paths) does not exist, a glob matches nothing), V(unreadable)
      (permission or I/O error), V(too_large) (over O(max_file_size)), V(not_a_regular_file) (FIFO, socket or
      device; never opened), V(not_a_certificate) (content is no certificate, store or key), V(bad_password)
      (none of O(passwords) opens a PKCS#12 file or verifies a JKS keystore), V(password_required) (such a
      file, and O(passwords) is empty), V(unsupported) (JCEKS, unknown JKS entry types), V(loop) (a directory
      reached a second time).
    - C(detail) says more; it never holds file content or passwords.
  returned: always
  type: list
  elements: dict
  sample:
    - path: /etc/ssl/big.pem
      reason: too_large
      detail: 5242880 bytes; max_file_size is 1048576
totals:
  description:
    - C(files_seen) regular files and links to files met in the walk (and files named in O(paths)), C(files_read)
      files opened, C(certificates) and C(keys) entries returned, C(expired) certificates past their end,
      C(expiring) certificates due but not expired, C(managed) managed certificates and C(problems) entries in
      RV(problems).
  returned: always
  type: dict
  sample: {files_seen: 20000, files_read: 2000, certificates: 2000, keys: 0, expired: 3, expiring: 12,
           managed: 40, problems: 0}
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
from ansible_collections.certforge.pki.plugins.module_utils.discovery import SPEC, execute


def main():
    run_module(SPEC, execute)


if __name__ == '__main__':
    main()
