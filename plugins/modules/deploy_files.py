#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: deploy_files
short_description: Deploy a certificate, its chain and a fullchain file atomically on the managed host
version_added: 0.1.0
description:
  - Writes a certificate (leaf), its chain and/or a fullchain file (leaf followed by the chain) with the
    given owner, group and mode.
  - Every file is written atomically (temporary file in the same directory, created with the final mode
    from its first byte, fsync, rename). All files of one call, including every certificate of
    O(certificates), are one transaction; if any write fails, the files already written are restored
    byte-exact.
  - Every file that is replaced is first backed up byte-exact (content, mode, owner, group); see
    O(backup_dir) and O(backup_retention).
  - When O(key_path) is given, the certificate is checked against that private key before anything is
    written. The key is only read for this check; it is never written, copied or returned.
  - Nothing is written when the files already hold the same bytes, mode and ownership; this path does
    not even import C(cryptography).
  - This module writes files only. Use M(certforge.pki.deploy_nginx) to also test the server
    configuration, reload the server and check the live endpoint.
author: certforge.pki contributors (@certforge)
requirements:
  - cryptography >= 3.3 on the managed host (only when files change)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.actiongroup_deploy
  - certforge.pki.deploy
  - certforge.pki.deploy.certificates
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows parsed facts of the deployed and the new certificate (subject, issuer, SANs, serial,
        validity, SHA-256 fingerprint) and file modes, never key material.
  idempotent:
    support: full
seealso:
  - module: certforge.pki.deploy
  - module: certforge.pki.deploy_nginx
'''

EXAMPLES = r'''
- name: Deploy a certificate and its chain for a service that reads separate files
  certforge.pki.deploy_files:
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    certificate_path: /etc/ssl/example/cert.pem
    chain_path: /etc/ssl/example/chain.pem
    fullchain_path: /etc/ssl/example/fullchain.pem
    key_path: /etc/ssl/example/privkey.pem
    owner: root
    group: root
    mode: '0644'

- name: Directories of the next example (the module writes files, it does not create directories)
  ansible.builtin.file:
    path: "{{ item }}"
    state: directory
    mode: '0755'
  loop: [/etc/ssl/www, /etc/ssl/api, /var/backups/certificates]

- name: Deploy several certificates in one transaction, backups in one directory
  certforge.pki.deploy_files:
    backup_dir: /var/backups/certificates
    backup_retention: 3
    group: ssl-cert
    certificates:
      - name: www
        certificate: "{{ lookup('ansible.builtin.file', 'certs/www.pem') }}"
        fullchain_path: /etc/ssl/www/fullchain.pem
      - name: api
        certificate: "{{ lookup('ansible.builtin.file', 'certs/api.pem') }}"
        fullchain_path: /etc/ssl/api/fullchain.pem
  register: deployed

- name: Show why something changed
  ansible.builtin.debug:
    var: deployed.changed_reasons
'''

RETURN = r'''
changed_reasons:
  description: Why files changed (or would change in check mode), one line per file.
  returned: always
  type: list
  elements: str
  sample:
    - "www: certificate /etc/ssl/www/cert.pem: serial 3A9F01 -> 7C0B12"
    - "www: chain /etc/ssl/www/chain.pem: new file"
files:
  description: Paths written (in check mode, the paths that would be written).
  returned: always
  type: list
  elements: str
  sample: [/etc/ssl/www/cert.pem, /etc/ssl/www/chain.pem]
backups:
  description: For every path written, its backup file, or V(null) when the file did not exist before.
  returned: always
  type: dict
  sample: {/etc/ssl/www/cert.pem: /etc/ssl/www/.certforge-backup/cert.pem.20260125T101500.123456Z.bak}
reloaded:
  description: Whether a server was reloaded. Always V(false) for this module.
  returned: always
  type: bool
  sample: false
verified:
  description: Served serial per certificate name. Always empty for this module (no live endpoint).
  returned: always
  type: dict
  sample: {}
certificates:
  description: Per certificate name, whether it changed, the files concerned and the new certificate's serial and expiry.
  returned: always
  type: dict
  sample:
    www:
      changed: true
      files: [/etc/ssl/www/cert.pem]
      unchanged: [/etc/ssl/www/chain.pem]
      reasons: ["www: certificate /etc/ssl/www/cert.pem: serial 3A9F01 -> 7C0B12"]
      serial: 7C0B12
      not_after: "2026-04-25T10:15:00Z"
diff:
  description: Parsed facts before and after, per certificate name (only certificates that change).
  returned: always
  type: dict
  contains:
    before:
      description: Facts of the certificate deployed now.
      type: dict
      returned: always
    after:
      description: Facts of the certificate being deployed.
      type: dict
      returned: always
  sample:
    before:
      www: {subject: CN=www.example.com, serial: 3A9F01, not_after: "2026-02-01T00:00:00Z"}
    after:
      www:
        subject: CN=www.example.com
        issuer: CN=Example Issuing CA
        subject_alt_names: ["DNS:www.example.com"]
        serial: 7C0B12
        not_before: "2026-01-25T10:15:00Z"
        not_after: "2026-04-25T10:15:00Z"
        fingerprint_sha256: "AB:CD:..."
        chain_length: 1
        files: {/etc/ssl/www/cert.pem: {mode: '0644'}}
'''

from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import (
    ModuleRunner, build_target, deploy, run_deploy_module)
from ansible_collections.certforge.pki.plugins.module_utils.targets import files as files_target


def _work(module, no_log_values):
    target = build_target('files', [files_target.plugin],
                          files_target.target_options_from_params(module.params), ModuleRunner(module))
    return deploy(target, files_target.requests_from_params(module.params), check_mode=module.check_mode)


def main():
    run_deploy_module(files_target.files_argument_spec(), _work)


if __name__ == '__main__':
    main()
