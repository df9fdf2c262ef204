#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: deploy_nginx
short_description: Deploy certificates for nginx, test the configuration, reload once and check the live endpoint
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
  - After the files are written, the nginx configuration is tested (O(validate_command)), nginx is
    reloaded once (O(reload_command)) and, for every certificate with O(verify), a TLS handshake checks
    that the endpoint serves the new serial.
  - If the test, the reload or the check fails, every file is restored byte-exact and nginx is reloaded
    again (when a reload had been attempted), so the previous certificate keeps serving; the task fails
    with the command output.
  - When nothing changes, nothing is written and nginx is not reloaded.
  - Many certificates of one host go in one call with O(certificates), which means one transaction, one
    configuration test and one reload.
author: certforge.pki contributors (@certforge)
requirements:
  - cryptography >= 3.4 on the managed host (only when files change)
  - nginx >= 1.19.5 when the commands use C(-e)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.actiongroup_deploy
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
options:
  certificate:
    description:
      - The certificate in PEM format.
      - A full chain is accepted and split, leaf first; the certificates after the leaf are the chain,
        unless O(chain) is given (then both must agree).
      - Private keys in this text are refused.
      - Mutually exclusive with O(certificates).
    type: str
  chain:
    description:
      - The issuer chain in PEM format (one or more certificates, issuer of the leaf first).
      - Written to O(chain_path) and appended to the leaf in O(fullchain_path).
    type: str
  certificate_path:
    description:
      - Absolute path of the file that receives the leaf certificate.
      - Its directory must exist. Symbolic links are refused; the path is replaced, not written through.
      - At least one of O(certificate_path), O(chain_path) and O(fullchain_path) is needed.
    type: path
  chain_path:
    description: Absolute path of the file that receives the chain. Needs a chain (O(chain) or a full chain in O(certificate)).
    type: path
  fullchain_path:
    description: Absolute path of the file that receives the leaf followed by the chain.
    type: path
  key_path:
    description:
      - Path of the private key on the managed host that belongs to the certificate.
      - When set, the module fails before writing anything if the certificate does not match this key.
      - The key must be unencrypted for this check. It is never modified, copied or returned.
    type: path
  owner:
    description: Owner (name or uid) of the files written. Unset keeps the owner of an existing file.
    type: str
  group:
    description: Group (name or gid) of the files written. Unset keeps the group of an existing file.
    type: str
  mode:
    description:
      - Mode of the files written, as an octal string such as V('0644'). Quote it in YAML.
      - The file is created with this mode from its first byte.
    type: raw
    default: '0644'
  name:
    description:
      - Name of the certificate in results, events and backup file names.
      - Defaults to the file name of O(certificate_path), else O(fullchain_path), else O(chain_path), without its extension.
      - Must not contain V(..) or V(/).
    type: str
  certificates:
    description:
      - Several certificates deployed in one call, as one transaction.
      - Each element takes the options below; an option an element does not set falls back to the
        top-level option of the same name.
      - Names must be unique (the default name comes from the file name, so give names when the file
        names repeat).
      - Mutually exclusive with O(certificate).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of this certificate, see O(name).
        type: str
      certificate:
        description: The certificate in PEM format, see O(certificate).
        type: str
      chain:
        description: The chain in PEM format, see O(chain).
        type: str
      certificate_path:
        description: Destination of the leaf certificate, see O(certificate_path).
        type: path
      chain_path:
        description: Destination of the chain, see O(chain_path).
        type: path
      fullchain_path:
        description: Destination of the full chain, see O(fullchain_path).
        type: path
      key_path:
        description: Private key to check the certificate against, see O(key_path).
        type: path
      owner:
        description: Owner of this certificate's files, see O(owner).
        type: str
      group:
        description: Group of this certificate's files, see O(group).
        type: str
      mode:
        description: Mode of this certificate's files, see O(mode).
        type: raw
      verify:
        description:
          - Live check of this certificate, see O(verify).
          - Keys not set here come from the top-level O(verify), then from its defaults
            (O(verify.host=127.0.0.1), O(verify.timeout=10)).
        type: dict
        suboptions:
          host:
            description: Address to connect to.
            type: str
          port:
            description: TLS port.
            type: int
          server_name:
            description: SNI name sent in the handshake.
            type: str
          timeout:
            description: Seconds to wait for the new serial.
            type: float
  backup_dir:
    description:
      - Directory for the backups of replaced files. It is created with mode C(0700) when missing.
      - Unset keeps backups in a C(.certforge-backup) directory (mode C(0700)) beside each file, named
        C(<file name>.<UTC timestamp>.bak).
      - In a shared O(backup_dir) the names are C(<name>.<file name>.<UTC timestamp>.bak).
    type: path
  backup_retention:
    description: How many backups to keep per file (the newest ones). At least 1.
    type: int
    default: 5
  validate_command:
    description:
      - Command that tests the nginx configuration, as an argv list (no shell).
      - Runs after the files are written, since C(nginx -t) reads the certificate files.
      - A string such as V(nginx -t) is refused; give V([nginx, -t]).
      - For an nginx started with its own configuration, pass the same C(-c), C(-p) and C(-e) options.
    type: raw
    default: [nginx, -t]
  reload_command:
    description:
      - Command that reloads nginx, as an argv list (no shell), for example V([systemctl, reload, nginx]).
      - A string such as V(nginx -s reload) is refused; give V([nginx, -s, reload]).
      - Runs once per call, only when files changed.
    type: raw
    default: [nginx, -s, reload]
  reload:
    description:
      - Whether to reload nginx after a successful configuration test.
      - With V(false), O(verify) is skipped with a warning (nginx serves the new certificate only after a
        reload), for example when a handler reloads later.
    type: bool
    default: true
  verify:
    description:
      - Check the live endpoint after the reload, for every certificate (elements of O(certificates)
        can override single keys).
      - Connects to O(verify.host):O(verify.port) with SNI O(verify.server_name) and polls until the
        served leaf certificate has the new serial, or O(verify.timeout) passes (then everything is
        rolled back).
      - The handshake does not verify the chain or the host name; it only compares serials.
        Trust is the business of the clients.
      - Unset means no live check.
    type: dict
    suboptions:
      host:
        description: Address to connect to.
        type: str
        default: 127.0.0.1
      port:
        description: TLS port nginx listens on for this certificate. Required when O(verify) is set.
        type: int
      server_name:
        description:
          - SNI name sent in the handshake.
          - Defaults to the first DNS name of the certificate that is not a wildcard; set it for
            wildcard-only certificates.
        type: str
      timeout:
        description: Seconds to wait for the new serial to be served.
        type: float
        default: 10
notes:
  - Files are compared byte for byte; the PEM text is normalised first (line endings, 64-column base64),
    so the same certificate pasted with other line breaks is not a change.
  - The private key is not written by this module. Create it on the host first (mode C(0600)) and point
    the nginx configuration at it; O(key_path) checks that certificate and key belong together.
seealso:
  - module: certforge.pki.deploy_files
'''

EXAMPLES = r'''
- name: Deploy a certificate for nginx, reload once and check the served serial
  certforge.pki.deploy_nginx:
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    fullchain_path: /etc/nginx/tls/www.example.com.crt
    key_path: /etc/nginx/tls/www.example.com.key
    verify:
      port: 443
      server_name: www.example.com

- name: All certificates of a host in one call (one transaction, one nginx -t, one reload)
  certforge.pki.deploy_nginx:
    reload_command: [systemctl, reload, nginx]
    verify:
      port: 443
    certificates:
      - name: www
        certificate: "{{ certs.www }}"
        fullchain_path: /etc/nginx/tls/www.crt
        key_path: /etc/nginx/tls/www.key
      - name: api
        certificate: "{{ certs.api }}"
        fullchain_path: /etc/nginx/tls/api.crt
        key_path: /etc/nginx/tls/api.key
        verify:
          server_name: api.example.com
  register: nginx_deploy

- name: An nginx started with its own configuration file and prefix
  certforge.pki.deploy_nginx:
    certificate: "{{ issued.certificate }}"
    fullchain_path: /srv/nginx/tls/site.crt
    validate_command: [nginx, -t, -c, /srv/nginx/nginx.conf, -p, /srv/nginx, -e, /srv/nginx/logs/error.log]
    reload_command: [nginx, -s, reload, -c, /srv/nginx/nginx.conf, -p, /srv/nginx, -e, /srv/nginx/logs/error.log]
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
  description: Whether nginx was reloaded (once per call, only when files changed and O(reload=true)).
  returned: always
  type: bool
  sample: true
verified:
  description: Serial the live endpoint served after the reload, per certificate name with O(verify).
  returned: always
  type: dict
  sample: {www: 7C0B12, api: 1F00A3}
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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError
from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import ModuleRunner, build_target, deploy
from ansible_collections.certforge.pki.plugins.module_utils.targets import files as files_target
from ansible_collections.certforge.pki.plugins.module_utils.targets import nginx as nginx_target


def main():
    module = AnsibleModule(
        argument_spec=nginx_target.nginx_argument_spec(),
        mutually_exclusive=[('certificate', 'certificates')],
        required_one_of=[('certificate', 'certificates')],
        supports_check_mode=True,
    )
    try:
        target = build_target('nginx', [nginx_target.plugin],
                              nginx_target.target_options_from_params(module.params), ModuleRunner(module))
        requests = nginx_target.requests_from_params(module.params)
        result = deploy(target, requests, check_mode=module.check_mode)
    except files_target.MissingLibraryError as exc:
        module.fail_json(msg=missing_required_lib(exc.library), error_kind=exc.kind, error_option=exc.option)
    except CertforgeError as exc:
        module.fail_json(**exc.to_result())
    for warning in result.pop('warnings', []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
