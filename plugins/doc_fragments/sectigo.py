# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Connection to Sectigo Certificate Manager (module_utils/issuers/sectigo.py CONNECTION_ARGSPEC).
    DOCUMENTATION = r'''
options:
  base_url:
    description:
      - Base URL of the SCM REST API, for example V(https://cert-manager.com/api) (password
        authentication) or V(https://cert-manager.com/private/api) (client certificate).
      - C(/api) is appended when missing. Client-certificate authentication needs the C(/private/api)
        URL; a URL without C(/private) is refused with the URL to use instead.
      - If not set, the environment variable E(SECTIGO_BASE_URL) is used, else V(https://cert-manager.com/api)
        (or its C(/private/api) form with a client certificate).
    type: str
  customer_uri:
    description:
      - The tenant name, the last part of the portal URL C(https://cert-manager.com/customer/<customer_uri>).
      - If not set, the environment variable E(SECTIGO_CUSTOMER_URI) is used. Required one way or the other.
    type: str
  login:
    description:
      - Login of an SCM admin of the API type.
      - If not set, the environment variable E(SECTIGO_LOGIN) is used. Required one way or the other.
    type: str
  password:
    description:
      - Password of O(login), for password authentication.
      - If not set, the environment variable E(SECTIGO_PASSWORD) is used.
      - Not used with a client certificate.
    type: str
  client_cert:
    description:
      - PEM client certificate of O(login) for client-certificate (mutual TLS) authentication.
      - If not set, the environment variable E(SECTIGO_CLIENT_CERT) is used.
      - Mutually exclusive with O(pkcs12_path).
    type: path
  client_key:
    description:
      - PEM private key of O(client_cert), when it is not in the same file.
      - If not set, the environment variable E(SECTIGO_CLIENT_KEY) is used.
    type: path
  client_key_passphrase:
    description: Passphrase of an encrypted O(client_key).
    type: str
  pkcs12_path:
    description:
      - PKCS#12 file with the client certificate and its key, instead of O(client_cert) and O(client_key).
      - It is converted into a temporary PEM pair (mode 0600) that is loaded and removed at once.
      - If not set, the environment variable E(SECTIGO_PKCS12) is used.
    type: path
  pkcs12_passphrase:
    description:
      - Passphrase of O(pkcs12_path).
      - If not set, the environment variable E(SECTIGO_PKCS12_PASSPHRASE) is used.
    type: str
  ca_bundle:
    description:
      - PEM file (or directory) of CA certificates that verify the SCM server certificate.
      - If not set, the environment variable E(SECTIGO_CA_BUNDLE) is used, else the system trust store.
    type: path
  validate_certs:
    description:
      - Verify the TLS certificate of the SCM server. V(false) warns; use it only for testing.
    type: bool
    default: true
  proxy:
    description:
      - HTTP(S) proxy URL, for example V(http://proxy.example.com:3128).
      - Without it the usual E(HTTPS_PROXY) and E(NO_PROXY) environment variables apply.
      - A proxy doing TLS inspection breaks client-certificate authentication.
    type: str
  timeout:
    description: Seconds to wait for each answer of the SCM API.
    type: float
    default: 30
  http_retries:
    description:
      - Retries of one request after 429, 502, 503, 504 or a connection error, honouring C(Retry-After).
      - A write whose answer was lost is never retried blindly; the order is looked up instead.
    type: int
    default: 5
notes:
  - All connection options can be set once for every Sectigo module with C(module_defaults) and
    C(group/certforge.pki.sectigo), or come from the E(SECTIGO_*) environment variables, which
    AWX/AAP custom credential types can inject.
'''

    # Membership of the sectigo action group.
    ACTIONGROUP_SECTIGO = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/certforge.pki.sectigo) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - certforge.pki.sectigo
'''
