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
  - With O(pid_file) set, nginx is started with O(start_command) instead of reloaded when it does not
    run (no pid file, or a stale one), as on the first deploy to a host whose nginx could not start
    without its certificates.
  - If the test, the reload or the check fails, every file is restored byte-exact and nginx is reloaded
    again (when a reload had been attempted), so the previous certificate keeps serving; the task fails
    with the command output.
  - When nothing changes, nothing is written and nginx is not reloaded.
  - Many certificates of one host go in one call with O(certificates), which means one transaction, one
    configuration test and one reload.
author: certforge.pki contributors (@certforge)
requirements:
  - cryptography >= 3.3 on the managed host (only when files change)
  - nginx >= 1.19.5 when the commands use C(-e)
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.actiongroup_deploy
  - certforge.pki.deploy
  - certforge.pki.deploy.verify
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
        reload), for example when a handler reloads later. nginx is not started either.
    type: bool
    default: true
  pid_file:
    description:
      - Absolute path of the pid file of nginx (its C(pid) directive, often C(/run/nginx.pid)).
      - When set, the module checks before the reload whether the process it names runs. When it does not
        (no file, no number in it, or no such process), O(start_command) runs instead of O(reload_command);
        without O(start_command) the task fails saying that nginx is not running, and the files are rolled
        back.
      - Unset means nginx is assumed to run, and O(reload_command) reports if it does not.
    type: path
  start_command:
    description:
      - Command that starts nginx when O(pid_file) says it does not run, as an argv list (no shell), for
        example V([systemctl, start, nginx]).
      - This is the first deploy to a host whose nginx could not start while its configuration named
        certificate files that did not exist yet.
      - Runs after a successful configuration test, at most once per call. If it fails, the files are rolled
        back and the task fails with its output.
      - Needs O(pid_file).
    type: raw
notes:
  - The private key is not written by this module. Create it on the host first (mode C(0600)) and point
    the nginx configuration at it; O(key_path) checks that certificate and key belong together.
seealso:
  - module: certforge.pki.deploy
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
        fullchain_path: /etc/nginx/tls/www.example.com.crt
        key_path: /etc/nginx/tls/www.example.com.key
      - name: api
        certificate: "{{ certs.api }}"
        fullchain_path: /etc/nginx/tls/api.example.com.crt
        key_path: /etc/nginx/tls/api.example.com.key
        verify:
          server_name: api.example.com
  register: nginx_deploy

- name: An nginx started with its own configuration file and prefix
  certforge.pki.deploy_nginx:
    certificate: "{{ issued.certificate }}"
    fullchain_path: /srv/nginx/tls/site.crt
    validate_command: [nginx, -t, -c, /srv/nginx/nginx.conf, -p, /srv/nginx, -e, /srv/nginx/logs/error.log]
    reload_command: [nginx, -s, reload, -c, /srv/nginx/nginx.conf, -p, /srv/nginx, -e, /srv/nginx/logs/error.log]

- name: First deploy to a new host, where nginx could not start without its certificates
  certforge.pki.deploy_nginx:
    certificate: "{{ issued.certificate }}"
    fullchain_path: /etc/nginx/tls/www.example.com.crt
    key_path: /etc/nginx/tls/www.example.com.key
    pid_file: /run/nginx.pid
    start_command: [systemctl, start, nginx]
    reload_command: [systemctl, reload, nginx]
    verify:
      port: 443
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
  description:
    - Whether nginx was reloaded (once per call, only when files changed and O(reload=true)).
    - Also V(true) when nginx did not run and O(start_command) started it (see RV(started)).
  returned: always
  type: bool
  sample: true
started:
  description: Whether nginx did not run (see O(pid_file)) and O(start_command) started it.
  returned: always
  type: bool
  sample: false
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

from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import (
    ModuleRunner, build_target, deploy, run_deploy_module)
from ansible_collections.certforge.pki.plugins.module_utils.targets import nginx as nginx_target


def _work(module, no_log_values):
    target = build_target('nginx', [nginx_target.plugin],
                          nginx_target.target_options_from_params(module.params), ModuleRunner(module))
    result = deploy(target, nginx_target.requests_from_params(module.params), check_mode=module.check_mode)
    result['started'] = target.started
    return result


def main():
    run_deploy_module(nginx_target.nginx_argument_spec(), _work)


if __name__ == '__main__':
    main()
