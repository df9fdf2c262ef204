#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: deploy
short_description: Deploy certificates to any target, test the server configuration, reload once and check the live endpoint
version_added: 0.1.0
description:
  - Deploys certificates through the target connector named by O(target) - V(files), V(nginx), or a
    target another package provides - so a playbook or role deploys to any server without changing.
  - The target writes the certificate (leaf), its chain and/or a fullchain file (leaf followed by the
    chain) with the given owner, group and mode, each atomically (temporary file in the same directory,
    created with the final mode from its first byte, fsync, rename). All files of one call, including
    every certificate of O(certificates), are one transaction.
  - Every file that is replaced is first backed up byte-exact (content, mode, owner, group); see
    O(backup_dir) and O(backup_retention).
  - When O(key_path) is given, the certificate is checked against that private key before anything is
    written. The key is only read for this check; it is never written, copied or returned.
  - Nothing is written when the files already hold the same bytes, mode and ownership; this path does
    not even import C(cryptography), and no server is reloaded.
  - Then the target tests the server configuration, reloads the server once and checks with O(verify)
    that the live endpoint serves the new serial, as far as it has a server. If any of that fails, every
    file is restored byte-exact and the server is reloaded again, so the previous certificate keeps
    serving; the task fails with the command output.
  - The same options with M(certforge.pki.deploy_files) and M(certforge.pki.deploy_nginx) are the
    same as O(target=files) and O(target=nginx) here; those modules take the target's own options at the
    top level instead of in O(target_options).
author: certforge.pki contributors (@certforge)
requirements:
  - cryptography >= 3.3 on the managed host (only when files change)
  - pluggy on the managed host for targets that other packages provide
extends_documentation_fragment:
  - certforge.pki.attributes
  - certforge.pki.attributes.actiongroup_deploy
  - certforge.pki.deploy
  - certforge.pki.deploy.generic
  - certforge.pki.connectors.target_options
attributes:
  check_mode:
    support: full
    details:
      - Check mode plans and diffs; it writes nothing and runs no command.
  diff_mode:
    support: full
    details:
      - The diff shows parsed facts of the deployed and the new certificate (subject, issuer, SANs, serial,
        validity, SHA-256 fingerprint) and file modes, never key material.
  idempotent:
    support: full
    details:
      - For the built-in targets. A target another package provides decides for itself.
options:
  target:
    description:
      - The target connector that deploys.
      - V(files) writes the files only (no server, so O(verify) is ignored with a warning).
      - V(nginx) writes the files, tests the nginx configuration, reloads nginx once (or starts it, see
        O(target_options)), checks the live endpoint and rolls back on failure.
      - V(haproxy) writes one combined PEM file per certificate (C(certificate_options.pem_path), mode
        C(0600)). With C(target_options.stats_socket) (mode V(runtime_api)) it swaps the certificate in
        the running process through the runtime API (C(set ssl cert) + C(commit ssl cert)), no reload;
        in mode V(reload) it runs C(haproxy -c -f) and a master-worker reload (C(reload) on
        C(master_socket), or C(reload_command)).
      - V(apache) writes the certificate, chain and/or fullchain files like V(files), needs O(key_path)
        (the file C(SSLCertificateKeyFile) names), runs the config test (C(apache2ctl -t), or
        C(apachectl -t)), checks that key and certificate as written belong together (apache accepts a
        mismatched key at the config test and then exits on the reload), then reloads gracefully once
        and checks the live endpoint.
      - V(caddy) writes the certificate files like V(files); in mode V(api) (default) it puts the certificate
        and key inline into the running configuration through the admin API (C(POST /load), no restart, no
        file watch; Caddy's refusal is shown), in mode V(file) it runs C(caddy validate) and
        C(caddy reload --force) (Caddy does not watch certificate files).
      - V(postfix) and V(dovecot) write the certificate files like V(files), need O(key_path), run
        C(postfix check) / C(doveconf -n), check that key and certificate belong together (neither config
        test does), reload once (C(postfix reload) / C(doveadm reload)) and check the live endpoint over
        SMTP STARTTLS (postfix) or implicit TLS (dovecot).
      - V(pkcs12) writes one PKCS#12 bundle (key, leaf, chain, friendly name; C(0600)) protected by a secret
        password; an existing bundle that opens with the password and holds the same contents is kept.
      - V(java_keystore) replaces one alias of a JKS or PKCS#12 keystore through C(keytool) (other aliases
        kept). The keystore is rebuilt in a private directory and renamed over the old one; passwords
        reach keytool only through C(0600) files, never its command line; verified with C(keytool -list -v).
      - V(traefik) (file provider) writes the key and certificate into a new directory per pair
        (C(<name>.<digest>/tls.crt), C(tls.key)) and switches the link C(<name>) to it with one rename, so
        key and certificate change together; a dynamic configuration file (C(tls.certificates) with
        C(certFile)/C(keyFile) through the link) is written once. Traefik watches the directory; nothing
        is run.
      - V(envoy) in mode V(sds) (default) writes one SDS C(DiscoveryResponse) file per certificate holding
        a C(Secret) with the chain and key inline (C(0600)), replaced by one rename, which Envoy's
        C(path_config_source) watches; in mode V(files) it switches a directory link like V(traefik) and
        writes once an SDS file naming the files through the link (C(watched_directory)).
      - Any other name is looked up among the target connectors installed on the managed host (Python
        entry point group C(certforge.pki)); the error lists the names there are.
    type: str
    required: true
  certificate_options:
    description:
      - The target's own per-certificate options (a target from another package declares them), checked
        against the target's spec; an element of O(certificates) may set its own, merged key by key over
        these. V(files) and V(nginx) have none.
      - For V(haproxy) - C(pem_path) (path, required) the combined PEM file (leaf, chain, key; written
        C(0600)) exactly as the C(crt) directive of C(haproxy.cfg) names it.
      - For V(pkcs12) - C(pkcs12_path) (path, required); C(password) (str, secret, required);
        C(friendly_name) (str, default the certificate name); C(encryption) (V(modern) AES-256 with a SHA-256
        MAC, the default, or V(legacy) 3DES with a SHA-1 MAC for old readers); C(include_chain) (bool,
        default V(true)).
      - For V(java_keystore) - C(keystore_path) (path, required); C(keystore_type) (V(pkcs12), the
        default, or V(jks)); C(alias) (str, default the certificate name); C(store_password) (str,
        secret, required); C(key_password) (str, secret, JKS only, default the store password);
        C(state) (V(present), the default, or V(absent) to remove the alias, which must exist).
      - For V(traefik) - C(directory) (path, required) the directory Traefik's file provider watches, where
        the link C(<name>), the pair directories and C(<name>.pair.pem) (leaf, chain, key; C(0600)) go;
        C(config_path) (path, default C(<directory>/<name>.yml)) the dynamic configuration file.
      - For V(envoy) in mode V(sds) - C(sds_path) (path, required; C(.yaml), C(.yml) or C(.json)) the SDS file;
        C(secret_name) (str, default the certificate name) the name of the C(Secret).
      - For V(envoy) in mode V(files) - C(directory) (path, required) as for V(traefik); C(sds_path) (path,
        default C(<directory>/<name>.sds.yaml)); C(secret_name).
    type: dict
notes:
  - When the controller side of this module (its action plugin) finds nothing to say about the options (ansible-core's
    own validator, this module's spec, no C(no_log) option set), the module runs on the host without ansible-core's
    module runtime, with the same result; otherwise as usual. C(CERTFORGE_DIRECT=0) in the controller's environment
    always runs it as usual.
  - The private key is not written by this module. Create it on the host first (mode C(0600)) and point
    the server configuration at it; O(key_path) checks that certificate and key belong together.
  - Targets from other packages run on the host that runs the deploy (the managed host), so their package
    must be installed for the Python interpreter Ansible uses there; see C(docs/connectors.md). Built-in
    target names never look at installed packages, and a broken package breaks only its own targets.
  - The values of target options that a target marks as secret are masked in the task result.
seealso:
  - module: certforge.pki.deploy_files
  - module: certforge.pki.deploy_nginx
'''

EXAMPLES = r'''
- name: Deploy to nginx, test the configuration, reload once and check the served serial
  certforge.pki.deploy:
    target: nginx
    target_options:
      reload_command: [systemctl, reload, nginx]
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    fullchain_path: /etc/nginx/tls/www.example.com.crt
    key_path: /etc/nginx/tls/www.example.com.key
    verify:
      port: 443
      server_name: www.example.com

- name: First deploy to a new host, where nginx could not start without its certificates
  certforge.pki.deploy:
    target: nginx
    target_options:
      pid_file: /run/nginx.pid
      start_command: [systemctl, start, nginx]
      reload_command: [systemctl, reload, nginx]
    certificate: "{{ issued.certificate }}"
    fullchain_path: /etc/nginx/tls/www.example.com.crt
    key_path: /etc/nginx/tls/www.example.com.key
    verify:
      port: 443

- name: Apache with mod_ssl, separate certificate and chain files, graceful reload
  certforge.pki.deploy:
    target: apache
    target_options:
      reload_command: [apache2ctl, graceful]
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    certificate_path: /etc/apache2/tls/www.example.com.crt
    chain_path: /etc/apache2/tls/www.example.com.chain.crt
    key_path: /etc/apache2/tls/www.example.com.key
    verify:
      port: 443
      server_name: www.example.com

- name: Caddy, certificate loaded through the admin API (no restart)
  certforge.pki.deploy:
    target: caddy
    target_options:
      admin_url: http://localhost:2019
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    fullchain_path: /etc/caddy/tls/www.example.com.crt
    key_path: /etc/caddy/tls/www.example.com.key
    verify:
      port: 443
      server_name: www.example.com

- name: Postfix (STARTTLS on port 25) with a private instance directory
  certforge.pki.deploy:
    target: postfix
    target_options:
      config_directory: /etc/postfix
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    fullchain_path: /etc/postfix/tls/mail.example.com.crt
    key_path: /etc/postfix/tls/mail.example.com.key
    verify:
      port: 25
      server_name: mail.example.com

- name: Dovecot (IMAPS)
  certforge.pki.deploy:
    target: dovecot
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    fullchain_path: /etc/dovecot/tls/mail.example.com.crt
    key_path: /etc/dovecot/tls/mail.example.com.key
    verify:
      port: 993

- name: A PKCS#12 bundle for an application that wants one file
  certforge.pki.deploy:
    target: pkcs12
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    key_path: /etc/app/tls/app.key
    certificate_options:
      pkcs12_path: /etc/app/tls/app.p12
      password: "{{ vault_app_p12_password }}"
      friendly_name: app

- name: One alias of a Java keystore, then restart the application
  certforge.pki.deploy:
    target: java_keystore
    target_options:
      restart_command: [systemctl, restart, tomcat10]
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    key_path: /etc/tomcat10/tls/www.key
    certificate_options:
      keystore_path: /etc/tomcat10/keystore.p12
      alias: tomcat
      store_password: "{{ vault_keystore_password }}"

- name: HAProxy, certificate swapped through the runtime API (no reload); the file is written too
  certforge.pki.deploy:
    target: haproxy
    target_options:
      stats_socket: /run/haproxy/admin.sock
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    key_path: /etc/haproxy/tls/www.example.com.key
    certificate_options:
      pem_path: /etc/haproxy/tls/www.example.com.pem
    verify:
      port: 443
      server_name: www.example.com

- name: HAProxy, config test then a master-worker reload through the master CLI
  certforge.pki.deploy:
    target: haproxy
    target_options:
      mode: reload
      config: /etc/haproxy/haproxy.cfg
      master_socket: /run/haproxy/master.sock
    certificate: "{{ issued.certificate }}"
    key_path: /etc/haproxy/tls/www.example.com.key
    certificate_options:
      pem_path: /etc/haproxy/tls/www.example.com.pem

- name: Traefik (file provider watching /etc/traefik/dynamic), key and certificate switched by one link rename
  certforge.pki.deploy:
    target: traefik
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    key_path: /etc/traefik/tls/www.example.com.key
    certificate_options:
      directory: /etc/traefik/dynamic
    verify:
      port: 443
      server_name: www.example.com

- name: Envoy, one SDS file with the certificate and key inline, read by path_config_source
  certforge.pki.deploy:
    target: envoy
    certificate: "{{ issued.certificate }}"
    chain: "{{ issued.chain }}"
    key_path: /etc/envoy/tls/www.example.com.key
    certificate_options:
      sds_path: /etc/envoy/sds/www.yaml
      secret_name: www

- name: The target is a variable; every certificate of the host in one call
  certforge.pki.deploy:
    target: "{{ tls_target | default('files') }}"
    target_options: "{{ tls_target_options | default({}) }}"
    group: ssl-cert
    mode: '0644'
    certificates:
      - name: www
        certificate: "{{ certs.www }}"
        fullchain_path: /etc/ssl/www/fullchain.pem
        key_path: /etc/ssl/www/privkey.pem
      - name: api
        certificate: "{{ certs.api }}"
        fullchain_path: /etc/ssl/api/fullchain.pem
        key_path: /etc/ssl/api/privkey.pem
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
  description:
    - Whether the target reloaded its server (once per call, only when files changed).
    - Always V(false) for O(target=files). For O(target=nginx) also V(true) when nginx did not run and
      C(start_command) started it (see RV(started)).
  returned: always
  type: bool
  sample: true
started:
  description: Whether the server did not run and the target started it (O(target=nginx) with C(start_command)).
  returned: when the target can start its server (O(target=nginx))
  type: bool
  sample: false
verified:
  description: Serial the live endpoint served after the reload, per certificate name with O(verify). Empty for O(target=files).
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

from ansible_collections.certforge.pki.plugins.module_utils import bytecode_cache
# shipped in the payload (AnsiballZ takes what the module imports) for the direct run the
# controller may ask for: plugins/plugin_utils/direct_action.py
from ansible_collections.certforge.pki.plugins.module_utils import direct  # pylint: disable=unused-import

BUILT_IN = ('files', 'nginx', 'haproxy', 'apache', 'pkcs12', 'java_keystore', 'caddy', 'postfix', 'dovecot',
            'traefik', 'envoy')


# pylint: disable=import-outside-toplevel
def _target_module(name):
    """The module of the built-in target ``name``.  Imported by name, so that AnsiballZ ships
    every target, and only when asked for: a managed host compiles each imported source on every
    call, and all targets together cost about a tenth of a second per deploy."""
    if name == 'nginx':
        from ansible_collections.certforge.pki.plugins.module_utils.targets import nginx as target
    elif name == 'haproxy':
        from ansible_collections.certforge.pki.plugins.module_utils.targets import haproxy as target
    elif name == 'apache':
        from ansible_collections.certforge.pki.plugins.module_utils.targets import apache as target
    elif name == 'pkcs12':
        from ansible_collections.certforge.pki.plugins.module_utils.targets import pkcs12 as target
    elif name == 'java_keystore':
        from ansible_collections.certforge.pki.plugins.module_utils.targets import java_keystore as target
    elif name == 'caddy':
        from ansible_collections.certforge.pki.plugins.module_utils.targets import caddy as target
    elif name == 'postfix':
        from ansible_collections.certforge.pki.plugins.module_utils.targets import postfix as target
    elif name == 'dovecot':
        from ansible_collections.certforge.pki.plugins.module_utils.targets import dovecot as target
    elif name == 'traefik':
        from ansible_collections.certforge.pki.plugins.module_utils.targets import traefik as target
    elif name == 'envoy':
        from ansible_collections.certforge.pki.plugins.module_utils.targets import envoy as target
    else:
        from ansible_collections.certforge.pki.plugins.module_utils.targets import files as target
    return target


def all_plugins():
    """The plugins of every built-in target."""
    return tuple(_target_module(n).plugin for n in BUILT_IN)


def plugins_for(name):
    """The plugins to look ``name`` up in: the files target and the one asked for when it is
    built in; every built-in target otherwise (so that an unknown name lists them all)."""
    if name in BUILT_IN:
        return tuple(dict.fromkeys((_target_module('files').plugin, _target_module(name).plugin)))
    return all_plugins()


def _work(module, no_log_values):
    from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import ModuleRunner
    return _target_module('files').deploy_from_params(module.params, plugins_for(module.params.get('target')),
                                                      ModuleRunner(module), check_mode=module.check_mode,
                                                      no_log_values=no_log_values)


def main(module=None):
    """``module``: a DirectModule, when the controller runs this without ansible-core's module
    runtime (plugins/module_utils/direct.py)."""
    bytecode_cache.install()
    from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import run_deploy_module
    run_deploy_module(_target_module('files').deploy_argument_spec(), _work, module=module)


if __name__ == '__main__':
    main()
