# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The options of every built-in connector, rendered from each connector's option spec by
    # tests/utils/connector_docs.py (a unit test keeps them in step).

    # issuer_options of the generic certificate module
    ISSUER_OPTIONS = r'''
options:
  issuer_options:
    description:
      - Options of the issuer connector, checked against the option spec the issuer declares (types,
        choices, defaults, required ones) before anything is done. An unknown key fails naming the
        closest valid one (C(did you mean allowed_domains?)); the values of secret options are hidden in
        results, errors and C(-vvvv) output.
      - For V(local_ca) - C(allow_wildcards) (bool); C(allowed_domains) (list of str);
        C(ca_passphrase) (str, secret); C(ca_path) (path, required); C(max_ttl_days) (int, default
        V(397)); C(profile) (str, one of V(code_signing), V(email), V(tls_client), V(tls_server));
        C(validity_days) (int).
      - For V(acme) - C(account_key_content) (str, secret); C(account_key_passphrase) (str, secret);
        C(account_key_path) (path); C(account_uri) (str); C(acme_ca_bundle) (path);
        C(acme_directory) (str, required); C(acme_timeout) (float, default V(30)); C(challenge)
        (str, one of V(http-01), V(dns-01), V(dns-persist-01), default V(http-01)); C(contact) (list
        of str); C(dns_hook_add) (list of str); C(dns_hook_remove) (list of str);
        C(dns_propagation_command) (list of str); C(dns_propagation_timeout) (int, default V(120));
        C(eab_hmac_key) (str, secret); C(eab_kid) (str); C(eab_lookup_email) (str);
        C(eab_lookup_url) (str, default V(https://api.zerossl.com/acme/eab-credentials-email));
        C(http01_listen_address) (str, default V(127.0.0.1)); C(http01_listen_port) (int);
        C(http01_webroot) (path); C(order_store) (path); C(preferred_chain) (str); C(profile) (str);
        C(renewal_info) (bool, default V(false)); C(terms_agreed) (bool, default V(false));
        C(validate_certs) (bool, default V(true)); C(wait_timeout) (int, default V(120)).
      - For V(sectigo) - C(base_url) (str); C(ca_bundle) (path); C(client_cert) (path);
        C(client_key) (path); C(client_key_passphrase) (str, secret); C(collect_format) (str, one of
        V(pemia), V(x509R), V(x509), V(pem), default V(pemia)); C(comments) (str); C(custom_fields)
        (dict); C(customer_uri) (str); C(dcv_email) (str); C(dcv_mode) (str, one of V(CNAME),
        V(EMAIL), V(HTTP), V(HTTPS), V(TXT)); C(department) (str); C(external_requester) (list of
        str); C(http_retries) (int, default V(5)); C(login) (str); C(multi_domain) (bool);
        C(organization) (str); C(password) (str, secret); C(pkcs12_passphrase) (str, secret);
        C(pkcs12_path) (path); C(profile) (str); C(proxy) (str); C(renew_method) (str, one of
        V(auto), V(renew_by_id), V(enroll), V(replace), default V(auto)); C(ssl_id) (int);
        C(subject_alt_names) (list of str); C(term) (int); C(timeout) (float, default V(30));
        C(validate_certs) (bool, default V(true)).
      - A connector from another package documents its own options.
    type: dict
    default: {}
'''

    # target_options of the generic deploy module
    TARGET_OPTIONS = r'''
options:
  target_options:
    description:
      - The options of the target itself, checked against that target's own option spec before anything
        is written; an unknown or bad one fails naming C(target_options.<name>) and the closest valid name.
        The values of secret options are masked in the task result.
      - For V(files) - none.
      - For V(nginx) - C(pid_file) (path); C(reload) (bool, default V(true)); C(reload_command)
        (raw, default V(['nginx', '-s', 'reload'])); C(start_command) (raw); C(validate_command)
        (raw, default V(['nginx', '-t'])).
      - For V(haproxy) - C(allowed_directories) (list of path); C(config) (path, default
        V(/etc/haproxy/haproxy.cfg)); C(master_socket) (path); C(mode) (str, one of V(runtime_api),
        V(reload)); C(reload_command) (raw); C(reload_timeout) (float, default V(30.0));
        C(socket_timeout) (float, default V(10.0)); C(stats_socket) (path); C(validate_command)
        (raw).
      - For V(apache) - C(allowed_directories) (list of path); C(reload) (bool, default V(true));
        C(reload_command) (raw); C(validate_command) (raw).
      - For V(pkcs12) - C(allowed_directories) (list of path); C(restart_command) (raw).
      - For V(java_keystore) - C(allowed_directories) (list of path); C(keytool) (path);
        C(restart_command) (raw).
      - For V(caddy) - C(admin_url) (str, default V(http://localhost:2019)); C(allowed_directories)
        (list of path); C(api_timeout) (float, default V(15.0)); C(config) (path, default
        V(/etc/caddy/Caddyfile)); C(mode) (str, one of V(api), V(file), default V(api));
        C(reload_command) (raw); C(validate_command) (raw).
      - For V(postfix) - C(allowed_directories) (list of path); C(config_directory) (path);
        C(reload) (bool, default V(true)); C(reload_command) (raw); C(validate_command) (raw).
      - For V(dovecot) - C(allowed_directories) (list of path); C(config) (path); C(reload) (bool,
        default V(true)); C(reload_command) (raw); C(validate_command) (raw).
      - For V(traefik) - C(allowed_directories) (list of path); C(keep_versions) (int, default V(3)).
      - For V(envoy) - C(allowed_directories) (list of path); C(keep_versions) (int, default V(3));
        C(mode) (str, one of V(sds), V(files), default V(sds)).
      - A target another package provides documents its own options.
    type: dict
    default: {}
'''
