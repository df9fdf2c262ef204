# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # Certificate, destination and file options of every deploy module
    # (plugins/module_utils/targets/files.py files_argument_spec). Use it with CERTIFICATES
    # (no live check) or with VERIFY (targets that serve the certificate).
    DOCUMENTATION = r'''
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
notes:
  - Files are compared byte for byte; the PEM text is normalised first (line endings, 64-column base64),
    so the same certificate pasted with other line breaks is not a change.
'''

    # The batch option of deploy modules without a live check.
    # A fragment replaces an option of the same name as a whole, so VERIFY cannot add the verify
    # suboption to this one: keep the two lists of suboptions in step.
    CERTIFICATES = r'''
options:
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
'''

    # The batch option and the live check of targets that serve the certificate.
    VERIFY = r'''
options:
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
        description: TLS port the server listens on for this certificate. Required when O(verify) is set.
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
'''

    # VERIFY for the generic deploy module: elements also take the target's own options.
    GENERIC = r'''
options:
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
      certificate_options:
        description: The target's own options for this certificate, merged key by key over O(certificate_options).
        type: dict
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
        description: TLS port the server listens on for this certificate. Required when O(verify) is set.
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
'''
