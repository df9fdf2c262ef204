#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: certificate_request
short_description: Make a private key and a certificate signing request on the managed host
version_added: 0.1.0
description:
  - Creates a private key where it is used (the managed host) and a certificate signing request (CSR) for it.
    The key never leaves the host and is never returned.
  - The key is written with mode C(0600) from its first byte (never wider; an existing key that is readable
    by group or others is narrowed to C(0600)). O(owner) and O(group) apply to the key and the CSR,
    O(mode) applies to the CSR only.
  - An existing key is kept. When its type, size or curve differs from O(privatekey_type), O(privatekey_size)
    or O(privatekey_curve), a new key is made and the reason is reported in RV(changed_reasons)
    (for example V(key_size_changed)). O(rotate_key=true) always makes a new key.
  - An existing CSR at O(csr_path) is kept while its subject, SANs, key usage, extended key usage and public key
    match the options; the comparison is on parsed facts, not bytes. Without O(csr_path) the CSR is only returned.
  - With O(certificate_path), the facts of the certificate deployed there are returned as RV(current_certificate),
    so the controller can decide on renewal without another module call.
  - Several keys and CSRs for one host can be prepared in one call with O(requests); top-level options are the
    defaults of every entry. All entries are checked before anything is written, so bad input changes nothing.
  - Bad input (unreadable key, wrong passphrase, a key path that holds a certificate, a missing directory,
    an unsupported size or curve) fails with a message that names the option and the fix, and nothing is changed.
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written. When the key would be created or replaced, no CSR can be produced for it yet;
        RV(csr) is then V(null) and RV(msg) says so.
  diff_mode:
    support: full
    details:
      - The diff shows parsed facts of the key (type, size, curve, public key fingerprint, mode, owner)
        and of the CSR (subject, SANs, key usage), never key material.
  idempotent:
    support: partial
    details:
      - Not idempotent when O(rotate_key=true).
      - Without O(csr_path) a fresh CSR is returned on every run (for ECDSA keys its bytes differ each time);
        nothing is written, so C(changed) stays V(false).
requirements:
  - cryptography >= 3.3
options:
  privatekey_path:
    description:
      - Path of the private key on the managed host. The directory must exist.
      - Required unless every entry of O(requests) sets it.
    type: path
  privatekey_type:
    description: Type of a new key. An existing key of another type is replaced.
    type: str
    choices: [RSA, ECDSA, Ed25519]
    default: ECDSA
  privatekey_size:
    description: Size in bits of a new RSA key; only used when O(privatekey_type=RSA).
    type: int
    choices: [2048, 3072, 4096]
    default: 2048
  privatekey_curve:
    description: Curve of a new ECDSA key; only used when O(privatekey_type=ECDSA).
    type: str
    choices: [secp256r1, secp384r1]
    default: secp256r1
  privatekey_passphrase:
    description:
      - Passphrase that encrypts the key. An existing key must open with it.
      - An existing unencrypted key given a passphrase (or the other way round) is an error, not silently replaced;
        use O(rotate_key=true) to replace it.
    type: str
  rotate_key:
    description: Make a new key even when a matching key exists (and a new CSR for it).
    type: bool
    default: false
  backup:
    description: Keep a copy (mode C(0600)) of a key that is replaced, next to it, and return its path as RV(backup_file).
    type: bool
    default: false
  csr_path:
    description:
      - Where the CSR is written. When omitted, the CSR is only returned in RV(csr).
      - A file there that holds a certificate or a private key is refused, so a wrong path cannot destroy it.
    type: path
  common_name:
    description:
      - Common name (CN) of the subject. Overrides a CN given in O(subject).
      - Also the default SAN when O(subject_alt_names) is not given.
    type: str
  subject:
    description:
      - Further subject attributes, keys as long or short names (V(commonName)/V(CN), V(organizationName)/V(O),
        V(organizationalUnitName)/V(OU), V(countryName)/V(C), V(stateOrProvinceName)/V(ST), V(localityName)/V(L),
        V(emailAddress)) or dotted OIDs. A value may be a list for a repeated attribute.
    type: dict
  subject_alt_names:
    description:
      - Subject alternative names as V(DNS:name), V(IP:address), V(email:address) or V(URI:uri). A bare name is a DNS
        name (or an IP address when it parses as one).
      - Defaults to the common name (V(DNS:<common_name>)). Set to V([]) for a CSR without SANs.
    type: list
    elements: str
  key_usage:
    description:
      - Key usage of the CSR (critical), for example V(digitalSignature), V(keyEncipherment), V(keyAgreement).
      - Omit to let the CA's profile decide.
    type: list
    elements: str
  extended_key_usage:
    description:
      - Extended key usage of the CSR, for example V(serverAuth), V(clientAuth), or dotted OIDs.
      - Omit to let the CA's profile decide.
    type: list
    elements: str
  owner:
    description: Owner (name or uid) of the key and the CSR. Keeps the current owner of an existing file when omitted.
    type: str
  group:
    description: Group (name or gid) of the key and the CSR. Keeps the current group of an existing file when omitted.
    type: str
  mode:
    description:
      - Mode of the CSR file as an octal string such as V('0644'). A new CSR gets C(0644) when omitted.
      - Does not apply to the key, which is always C(0600) or narrower.
    type: raw
  certificate_path:
    description:
      - Path of the certificate currently deployed for this key. When it exists, its facts are returned as
        RV(current_certificate); nothing is written there.
    type: path
  meta:
    description:
      - Data about the request that the host does not use, returned unchanged as RV(meta) (the certificate role
        passes what the controller needs to issue, so that one task on the controller can issue for every host).
    type: dict
  directory:
    description:
      - A directory to make when it is missing (its parents too), before the keys and CSRs are written;
        O(owner), O(group) and O(directory_mode) are set on it, also when it exists, like
        M(ansible.builtin.file) with C(state=directory).
      - Planned with the requests, so bad input changes nothing. Keys and CSRs may go into it in the same call.
      - In check mode nothing is made; RV(directory) says what would change.
    type: path
  directory_mode:
    description: Mode of O(directory) as an octal string.
    type: raw
    default: '0755'
  refuse:
    description:
      - Problems found before the call. When not empty the module does nothing and fails with these messages; the
        other options are not needed.
    type: list
    elements: str
  role_vars:
    description:
      - The variables of the M(certforge.pki.certificate) role, without their C(certificate_) prefix (C(list),
        C(dir), C(key_type), C(key_size), C(key_curve), C(rotate_key), C(cert_mode), C(issuer), C(profile),
        C(validity_days), C(renew_before_days), C(force), C(wait_timeout), C(http01_webroot), C(target)); the role
        passes them so that they are checked and turned into O(requests) here, in one place, each problem naming
        the role variable. Missing ones take the role's defaults.
      - Each request gets C(meta) with what the controller-side issuing step reads (name, profile, validity_days,
        issuer, renew_before_days, force, wait_timeout).
      - Used instead of O(requests).
    type: dict
  requests:
    description:
      - Several keys and CSRs in one call. Each entry takes the per-certificate options above; options given at the
        top level are the defaults of every entry.
      - Results come back in RV(results), in the same order.
    type: list
    elements: dict
    suboptions:
      privatekey_path:
        description: As O(privatekey_path). Every entry needs its own key file.
        type: path
      privatekey_type:
        description: As O(privatekey_type).
        type: str
        choices: [RSA, ECDSA, Ed25519]
      privatekey_size:
        description: As O(privatekey_size).
        type: int
        choices: [2048, 3072, 4096]
      privatekey_curve:
        description: As O(privatekey_curve).
        type: str
        choices: [secp256r1, secp384r1]
      privatekey_passphrase:
        description: As O(privatekey_passphrase).
        type: str
      rotate_key:
        description: As O(rotate_key).
        type: bool
      backup:
        description: As O(backup).
        type: bool
      csr_path:
        description: As O(csr_path).
        type: path
      common_name:
        description: As O(common_name).
        type: str
      subject:
        description: As O(subject).
        type: dict
      subject_alt_names:
        description: As O(subject_alt_names).
        type: list
        elements: str
      key_usage:
        description: As O(key_usage).
        type: list
        elements: str
      extended_key_usage:
        description: As O(extended_key_usage).
        type: list
        elements: str
      owner:
        description: As O(owner).
        type: str
      group:
        description: As O(group).
        type: str
      mode:
        description: As O(mode).
        type: raw
      certificate_path:
        description: As O(certificate_path).
        type: path
      meta:
        description: As O(meta).
        type: dict
notes:
  - With O(directory), the result of a call is kept in C(<directory>/.certforge-request.json) (mode 0600) together
    with the options, the code and the type, mode, owner, group, size, inode, mtime and sha256 of every key, CSR and
    certificate file it read. A later call with the same options returns that result while all of it is unchanged,
    without parsing anything (C(days_left) and C(expired) of the certificates in use are computed again). Calls
    with a passphrase, with O(rotate_key), in --diff mode or with a warning keep nothing.
  - The controller side of this module (its action plugin) puts a short probe in front of the module's payload. On
    the host it checks the kept result against the options as sent, the ids of owner and group and every file's
    state and answers with it, so an unchanged call does not even start ansible-core's module runtime. Anything
    different and the module runs, without ansible-core's module runtime when the controller's own check of the options
    (ansible-core's validator, this module's spec) found nothing to say and no C(no_log) option is set, as usual
    otherwise. The payload is sent like any module's. C(CERTFORGE_REQUEST_PROBE=0) in the controller's environment
    leaves the probe out, C(CERTFORGE_DIRECT=0) sends the module unchanged.
  - Keys are written as PKCS#8 PEM, encrypted with the best available cipher when O(privatekey_passphrase) is set.
  - Signature hashes follow the key, SHA-256 for RSA and P-256, SHA-384 for P-384, none for Ed25519.
seealso:
  - module: certforge.pki.certificate_info
'''

EXAMPLES = r'''
- name: ECDSA P-256 key and CSR for www.example.com
  certforge.pki.certificate_request:
    privatekey_path: /etc/ssl/private/www.example.com.key
    csr_path: /etc/ssl/www.example.com.csr
    common_name: www.example.com
    subject_alt_names:
      - DNS:www.example.com
      - DNS:example.com
    extended_key_usage: [serverAuth]
  register: request

- name: Directory for nginx's key and certificate
  ansible.builtin.file:
    path: /etc/nginx/tls
    state: directory
    mode: '0755'

- name: RSA 3072 key readable by nginx, CSR only returned, renewal facts of the deployed certificate
  certforge.pki.certificate_request:
    privatekey_path: /etc/nginx/tls/api.key
    privatekey_type: RSA
    privatekey_size: 3072
    owner: root
    group: root
    common_name: api.example.com
    subject:
      O: Example Ltd
      C: GB
    certificate_path: /etc/nginx/tls/api.crt
  register: api_request

- name: Show the days left of the deployed certificate, if there is one
  ansible.builtin.debug:
    msg: "{{ api_request.current_certificate.days_left | default('no certificate yet') }}"

- name: Several keys and CSRs for one host in one call
  certforge.pki.certificate_request:
    privatekey_type: Ed25519
    subject:
      O: Example Ltd
    requests:
      - privatekey_path: /etc/ssl/private/a.key
        csr_path: /etc/ssl/a.csr
        common_name: a.example.com
      - privatekey_path: /etc/ssl/private/b.key
        csr_path: /etc/ssl/b.csr
        common_name: b.example.com
        privatekey_type: ECDSA
        privatekey_curve: secp384r1
  register: batch

- name: Replace the key (and the CSR) now
  certforge.pki.certificate_request:
    privatekey_path: /etc/ssl/private/www.example.com.key
    csr_path: /etc/ssl/www.example.com.csr
    common_name: www.example.com
    subject_alt_names:
      - DNS:www.example.com
      - DNS:example.com
    extended_key_usage: [serverAuth]
    rotate_key: true
'''

RETURN = r'''
changed_reasons:
  description:
    - Why the key or CSR changed (or would change in check mode). Empty when nothing changed.
    - Values include V(key_created), V(key_rotated), V(key_type_changed), V(key_size_changed), V(key_curve_changed),
      V(key_mode_tightened), V(key_owner_changed), V(key_group_changed), V(csr_created), V(csr_unreadable),
      V(csr_subject_changed), V(csr_san_changed), V(csr_key_usage_changed), V(csr_extended_key_usage_changed),
      V(csr_key_changed), V(csr_signature_invalid), V(csr_mode_changed), V(csr_owner_changed), V(csr_group_changed).
  returned: always (for a single request)
  type: list
  elements: str
  sample: [key_created, csr_created]
privatekey_changed:
  description: Whether the key was (or would be) created or replaced. A new key needs a new certificate.
  returned: always (for a single request)
  type: bool
  sample: true
csr_changed:
  description: Whether the CSR file was (or would be) written.
  returned: always (for a single request)
  type: bool
  sample: true
privatekey:
  description: Facts of the key. Never the key itself.
  returned: always (for a single request)
  type: dict
  contains:
    path:
      description: Path of the key.
      type: str
      sample: /etc/ssl/private/www.example.com.key
    type:
      description: V(RSA), V(ECDSA) or V(Ed25519).
      type: str
      sample: ECDSA
    size:
      description: Key size in bits.
      type: int
      sample: 256
    curve:
      description: Curve of an ECDSA key.
      type: str
      returned: for ECDSA keys
      sample: secp256r1
    public_key_fingerprint:
      description: Hex SHA-256 of the DER SubjectPublicKeyInfo; V(null) in check mode when the key would be made.
      type: str
      sample: 5d0b3f0c2e6a0f1c6c8e5f4c1b2a39f0d8e7c6b5a4f3e2d1c0b9a8f7e6d5c4b3
    encrypted:
      description: Whether the key file is encrypted with a passphrase.
      type: bool
      sample: false
    mode:
      description: Mode of the key file.
      type: str
      sample: '0600'
    owner:
      description: Owner of the key file.
      type: str
      sample: root
    group:
      description: Group of the key file.
      type: str
      sample: root
csr:
  description:
    - The CSR in PEM. V(null) in check mode when the key would be created or replaced.
  returned: always (for a single request)
  type: str
  sample: "-----BEGIN CERTIFICATE REQUEST-----\nMIIBOzCB4QIBADAaMRgwFgYDVQQDDA93d3cuZXhhbXBsZS5jb20w...\n-----END CERTIFICATE REQUEST-----\n"
csr_path:
  description: Where the CSR is written, or V(null).
  returned: always (for a single request)
  type: str
  sample: /etc/ssl/www.example.com.csr
csr_info:
  description: Parsed facts of the CSR (the wanted ones in check mode when no CSR can be made yet).
  returned: always (for a single request)
  type: dict
  sample:
    subject: {commonName: www.example.com}
    subject_string: CN=www.example.com
    subject_alt_names: ['DNS:www.example.com']
    key_usage: []
    extended_key_usage: [serverAuth]
    public_key: {type: ECDSA, curve: secp256r1, size: 256, fingerprint: 5d0b3f0c...}
    signature_valid: true
current_certificate:
  description:
    - Facts of the certificate at O(certificate_path) (as returned by M(certforge.pki.certificate_info)) plus
      C(path), C(pem) and C(key_matches) (whether it belongs to the key after this run).
    - V(null) when O(certificate_path) is not set or the file does not exist; a dict with C(path) and C(error)
      when the file cannot be parsed.
  returned: when O(certificate_path) is set (for a single request)
  type: dict
  sample:
    path: /etc/ssl/www.example.com.crt
    serial: 0A1B2C3D
    not_after: '2026-03-01T12:00:00Z'
    days_left: 42.5
    subject_alt_names: ['DNS:www.example.com']
    public_key: {type: ECDSA, fingerprint: 5d0b3f0c...}
    key_matches: true
backup_file:
  description: Copy of the replaced key when O(backup=true).
  returned: when a key was replaced with O(backup=true)
  type: str
  sample: /etc/ssl/private/www.example.com.key.20260101T120000Z~
msg:
  description: A note, for example why no CSR is returned in check mode.
  returned: when there is something to say
  type: str
  sample: check mode - the private key would be created, so no CSR can be produced for it yet
meta:
  description: O(meta), unchanged.
  returned: when O(meta) is set (for a single request)
  type: dict
  sample: {name: www}
directory:
  description: What was (or would be) done to O(directory).
  returned: when O(directory) is set
  type: dict
  sample:
    path: /etc/certforge
    changed: true
    changed_reasons: [directory_created]
results:
  description: One result per entry of O(requests), in order, each with the keys of a single run
    (C(changed), RV(changed_reasons), RV(privatekey), RV(csr), ...).
  returned: when O(requests) is used
  type: list
  elements: dict
  sample:
    - changed: true
      changed_reasons: [key_created, csr_created]
      csr_path: /etc/ssl/a.csr
'''

import json

from ansible_collections.certforge.pki.plugins.module_utils import bytecode_cache
# shipped in the payload (AnsiballZ takes what the module imports) for the direct run the
# controller may ask for: plugins/plugin_utils/direct_action.py
from ansible_collections.certforge.pki.plugins.module_utils import direct  # pylint: disable=unused-import


# pylint: disable=import-outside-toplevel
def _sent_options():
    """The options as the controller sent them (before they were typed), for the kept result's
    ``raw`` key; None when they cannot be read."""
    from ansible.module_utils import basic
    try:
        # pylint: disable-next=protected-access
        sent = json.loads(basic._ANSIBLE_ARGS.decode('utf-8'))
        sent = sent.get('ANSIBLE_MODULE_ARGS', sent)
        return dict((k, v) for k, v in sent.items() if not k.startswith('_ansible_'))
    except Exception:  # pylint: disable=broad-except
        return None


def main(module=None, sent=None):
    """``module``/``sent``: a DirectModule and the options as sent, when the controller runs this
    without ansible-core's module runtime (plugins/module_utils/direct.py)."""
    bytecode_cache.install()
    from ansible_collections.certforge.pki.plugins.module_utils import request_cache
    if module is None:
        from ansible.module_utils.basic import AnsibleModule
        from ansible_collections.certforge.pki.plugins.module_utils.key_request_spec import REQUIRED_ONE_OF, argument_spec
        module = AnsibleModule(argument_spec=argument_spec(), required_one_of=REQUIRED_ONE_OF, supports_check_mode=True)
        sent = _sent_options()
    request_cache.RAW_ARGS.append(sent)
    # a no-op answered from what the last call kept (nothing parsed, cryptography not even imported)
    kept = request_cache.lookup(module.params, check_mode=module.check_mode, diff=module._diff)
    if kept is not None:
        module.exit_json(**kept)
    from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import run_module
    from ansible_collections.certforge.pki.plugins.module_utils.key_request import SPEC, execute
    run_module(SPEC, execute, module=module)


if __name__ == '__main__':
    main()
