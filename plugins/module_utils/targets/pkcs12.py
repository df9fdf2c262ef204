# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``pkcs12`` target: one PKCS#12 bundle (key, leaf, chain, friendly name) for applications
that want one file.

* the password comes from the secret per-certificate option ``password`` (never in results,
  diffs, errors or ``-vvvv`` output);
* ``encryption: modern`` (default) is PBES2 with AES-256-CBC and a SHA-256 MAC;
  ``encryption: legacy`` (3DES and a SHA-1 MAC) is for old readers (Java 8 before 8u301,
  OpenSSL 1.0, Windows Server 2016) and must be asked for;
* PKCS#12 output is randomised (salts, IVs), so bytes cannot be compared: an existing bundle
  that opens with the password and holds the same key, leaf, chain, friendly name and encryption
  kind is kept as it is (no change); otherwise a new bundle is written atomically (0600);
* verify re-opens the written bundle with the password and returns its serial;
  ``restart_command`` (optional argv) restarts the application that reads it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import FileSpec
from ansible_collections.certforge.pki.plugins.module_utils.sdk import TargetConnector, hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.targets import common

ENCRYPTIONS = ('modern', 'legacy')
# DER of the algorithm OIDs: PBES2 (1.2.840.113549.1.5.13) and pbeWithSHAAnd3-KeyTripleDES-CBC
_PBES2 = bytes.fromhex('06092a864886f70d01050d')
_PBE_3DES = bytes.fromhex('060a2a864886f70d010c0103')

#: bundles built in this process, keyed by what went in (planning twice gives the same bytes)
_BUILT = {}


def encryption_of(data):
    """'modern', 'legacy' or None: the kind of encryption a PKCS#12 file uses."""
    if _PBES2 in data:
        return 'modern'
    if _PBE_3DES in data:
        return 'legacy'
    return None


def _serialization():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    return serialization, pkcs12


def build_pkcs12(leaf_pem, chain_pems, key_pem, password, friendly_name, encryption, option):
    """DER of a PKCS#12 bundle (cached per input for this process)."""
    digest = hashlib.sha256('\0'.join([leaf_pem, ''.join(chain_pems), friendly_name or '', encryption,
                                       hashlib.sha256(key_pem).hexdigest(),
                                       hashlib.sha256(password.encode('utf-8')).hexdigest()]).encode()).hexdigest()
    if digest in _BUILT:
        return _BUILT[digest]
    serialization, pkcs12 = _serialization()
    key = cx509.load_private_key(key_pem, option=option)
    cert = cx509.load_certificate(leaf_pem, option='certificate')
    cas = [cx509.load_certificate(pem, option='chain') for pem in chain_pems]
    builder = serialization.PrivateFormat.PKCS12.encryption_builder()
    if encryption == 'legacy':
        builder = builder.kdf_rounds(2048).key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        from cryptography.hazmat.primitives import hashes
        builder = builder.hmac_hash(hashes.SHA1())
    else:
        from cryptography.hazmat.primitives import hashes
        builder = builder.kdf_rounds(100000).key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        builder = builder.hmac_hash(hashes.SHA256())
    data = pkcs12.serialize_key_and_certificates(
        friendly_name.encode('utf-8') if friendly_name else None, key, cert, cas or None,
        builder.build(password.encode('utf-8')))
    _BUILT[digest] = data
    return data


def load_pkcs12(data, password):
    """(key, cert, [cas], friendly_name) or raise ValueError (wrong password, not PKCS#12)."""
    dummy, pkcs12 = _serialization()
    bundle = pkcs12.load_pkcs12(data, password.encode('utf-8'))
    cert = bundle.cert.certificate if bundle.cert else None
    name = bundle.cert.friendly_name.decode('utf-8', 'replace') if bundle.cert and bundle.cert.friendly_name else None
    return bundle.key, cert, [c.certificate for c in bundle.additional_certs], name


def same_bundle(data, password, leaf_pem, chain_pems, key_pem, friendly_name, encryption):
    """True when ``data`` opens with ``password`` and holds exactly this key, leaf, chain,
    friendly name and kind of encryption."""
    if encryption_of(data) != encryption:
        return False
    try:
        key, cert, cas, name = load_pkcs12(data, password)
    except (ValueError, TypeError):
        return False
    serialization, dummy = _serialization()
    if cert is None or key is None or (name or None) != (friendly_name or None):
        return False
    pem = serialization.Encoding.PEM
    if cert.public_bytes(pem).decode('ascii') != leaf_pem:
        return False
    if [c.public_bytes(pem).decode('ascii') for c in cas] != list(chain_pems):
        return False
    wanted = cx509.load_private_key(key_pem, option='key_path')
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return key.public_key().public_bytes(der, spki) == wanted.public_key().public_bytes(der, spki)


class Pkcs12Target(TargetConnector):
    """One PKCS#12 file per certificate; optional restart command."""

    name = 'pkcs12'
    certificate_options = ('name', 'certificate', 'chain', 'key_path', 'owner', 'group')
    certificate_option_spec = {
        'pkcs12_path': {'type': 'path'},
        'password': {'type': 'str', 'no_log': True},
        'friendly_name': {'type': 'str'},
        'encryption': {'type': 'str', 'choices': list(ENCRYPTIONS), 'default': 'modern'},
        'include_chain': {'type': 'bool', 'default': True},
    }
    needs_destination = False
    option_spec = {
        'restart_command': {'type': 'raw'},
        'allowed_directories': common.ALLOWED_DIRECTORIES,
    }

    def __init__(self, options=None, runner=None):
        super(Pkcs12Target, self).__init__(options, runner)
        self.restart_command = None
        if self.options.get('restart_command') is not None:
            self.restart_command = common.command_argv(self, 'restart_command', ['systemctl', 'restart', 'app'])
        #: passwords per written path (for verify)
        self._passwords = {}

    def files(self, request):
        prefix = (request.options or {}).get('option_prefix', '')
        own = request.certificate_options or {}
        path, option = common.cert_path(request, 'pkcs12_path')
        common.check_allowed(self, [(path, option)])
        password = own.get('password')
        if not password:
            raise ConfigError('no password given', option=prefix + 'certificate_options.password',
                              fix='give certificate_options.password (from a vault), the password of the bundle')
        friendly = own.get('friendly_name') or request.name
        encryption = own.get('encryption') or 'modern'
        chain = list(request.chain_pem or []) if own.get('include_chain', True) else []
        key_pem = self.read_private_key(request, option=prefix + 'key_path')
        content = None
        if os.path.isfile(path):
            with open(path, 'rb') as handle:
                current = handle.read()
            if same_bundle(current, password, request.certificate_pem, chain, key_pem, friendly, encryption):
                content = current
        if content is None:
            content = build_pkcs12(request.certificate_pem, chain, key_pem, password, friendly, encryption,
                                   prefix + 'key_path')
        self._passwords[os.path.normpath(path)] = password
        opts = request.options or {}
        return [FileSpec(path=path, content=content, mode='0600', owner=opts.get('owner'), group=opts.get('group'),
                         label='pkcs12', option='certificate_options.pkcs12_path', secret=True)]

    def reload(self, applied):
        if self.restart_command is None:
            return False
        common.run_checked(self, self.restart_command, 'restart_command', 'restart',
                           'check that restart_command restarts the application that reads the bundle')
        return True

    def verify(self, applied):
        item = applied[0] if isinstance(applied, list) else applied
        spec = item.plan.files[0]
        prefix = (item.plan.request.options or {}).get('option_prefix', '')
        with open(spec.path, 'rb') as handle:
            data = handle.read()
        try:
            dummy, cert, dummy2, dummy3 = load_pkcs12(data, self._passwords.get(spec.path, ''))
        except (ValueError, TypeError):
            raise DeployError('%s does not open with the password' % spec.path,
                              option=prefix + 'certificate_options.password', fix='check the password')
        return cx509.serial_hex(cert.serial_number)


class Pkcs12TargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'pkcs12': Pkcs12Target}


plugin = Pkcs12TargetPlugin()
