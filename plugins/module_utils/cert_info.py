# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts and the renewal decision for a certificate file, PEM text or live TLS endpoint: the
work behind ``certforge.pki.certificate_info``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os

from ansible_collections.certforge.pki.plugins.module_utils.core import renewal
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import (
    RENEWAL_OPTIONS, ArgumentSpec, existing_file, existing_path, hostname, optional_file)
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, TransientError

_OPTIONS = dict(
    path=dict(type='path'),
    content=dict(type='str'),
    host=dict(type='str'),
    port=dict(type='int', default=443),
    server_name=dict(type='str'),
    timeout=dict(type='float', default=10),
    ca_path=dict(type='path'),
    privatekey_path=dict(type='path'),
    privatekey_passphrase=dict(type='str', no_log=True),
    expected_subject_alt_names=dict(type='list', elements='str'),
    expected_issuer=dict(type='str'),
)
_OPTIONS.update(RENEWAL_OPTIONS)

SPEC = ArgumentSpec(
    _OPTIONS,
    mutually_exclusive=[['path', 'content', 'host']],
    required_one_of=[['path', 'content', 'host']],
    checks=dict(path=[optional_file], host=[hostname], ca_path=[existing_path],
                privatekey_path=[existing_file]),
)


def _is_ip(text):
    try:
        ipaddress.ip_address(text.strip('[]'))
        return True
    except ValueError:
        return False


def _peer_chain(tls, ssl_mod):
    """DER of the leaf and of the served chain (without the leaf)."""
    leaf = tls.getpeercert(binary_form=True)
    getter = getattr(tls, 'get_unverified_chain', None)
    if getter is None:
        getter = getattr(getattr(tls, '_sslobj', None), 'get_unverified_chain', None)
    served = []
    if getter is not None:
        try:
            items = getter() or []
        except Exception:
            items = []
        der_format = getattr(getattr(ssl_mod, '_ssl', None), 'ENCODING_DER', 2)
        for item in items:
            if isinstance(item, (bytes, bytearray)):
                served.append(bytes(item))
            elif hasattr(item, 'public_bytes'):
                served.append(item.public_bytes(der_format))
    return leaf, [der for der in served if der != leaf]


def fetch_tls(host, port, server_name=None, timeout=10, ca_path=None):
    """Connect, return ``(leaf_der, chain_der_list, info)``; ``info`` holds ``verified``,
    ``verify_error`` and ``tls_version``."""
    import socket
    import ssl

    sni = server_name or (None if _is_ip(host) else host)
    info = {}

    def handshake(ctx, hostname):
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except socket.gaierror as exc:
            raise ConfigError('cannot resolve %s (%s)' % (host, exc), option='host',
                              fix='give a resolvable host name or an IP address')
        except (socket.timeout, OSError) as exc:
            raise TransientError('cannot connect to %s:%s (%s)' % (host, port, exc), option='host',
                                 fix='check that the service listens there, firewalls, and timeout')
        try:
            with ctx.wrap_socket(sock, server_hostname=hostname) as tls:
                leaf, chain = _peer_chain(tls, ssl)
                info['tls_version'] = tls.version()
                return leaf, chain
        except ssl.SSLError:
            raise
        except socket.timeout as exc:
            raise TransientError('TLS handshake with %s:%s timed out (%s)' % (host, port, exc), option='timeout',
                                 fix='raise timeout, or check that the service answers TLS there')
        except OSError as exc:
            raise TransientError('TLS handshake with %s:%s failed (%s)' % (host, port, exc), option='host',
                                 fix='check that the service listens there and speaks TLS')
        finally:
            sock.close()

    if ca_path:
        if not os.path.exists(ca_path):
            raise ConfigError('%s does not exist' % ca_path, option='ca_path',
                              fix='give a PEM CA bundle file or a directory of hashed CA files')
        try:
            if os.path.isdir(ca_path):
                ctx = ssl.create_default_context(capath=ca_path)
            else:
                ctx = ssl.create_default_context(cafile=ca_path)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError('cannot load CA certificates from %s (%s)' % (ca_path, exc), option='ca_path',
                              fix='give a PEM CA bundle file')
        try:
            leaf, chain = handshake(ctx, sni or host)
            info['verified'] = True
            return leaf, chain, info
        except ssl.SSLCertVerificationError as exc:
            info['verified'] = False
            info['verify_error'] = getattr(exc, 'verify_message', None) or str(exc)
        except ssl.SSLError:
            pass  # handshake problems show again below with a clearer message

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        leaf, chain = handshake(ctx, sni)
    except ssl.SSLError as exc:
        raise ConfigError('TLS handshake with %s:%s failed (%s)' % (host, port, exc.reason or exc), option='port',
                          fix='check that the port speaks TLS (not plain HTTP or STARTTLS) and server_name')
    return leaf, chain, info


def _chain_entry(cert):
    facts = cx509.cert_facts(cert)
    return dict(subject_string=facts['subject_string'], issuer_string=facts['issuer_string'],
                serial=facts['serial'], not_after=facts['not_after'], is_ca=facts['is_ca'],
                fingerprint=facts['fingerprints']['sha256'], pem=cx509.to_pem(cert))


def _read(path, option):
    if os.path.isdir(path):
        raise ConfigError('%s is a directory' % path, option=option, fix='give the path of a file')
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise ConfigError('cannot read %s (%s)' % (path, exc.strerror or exc), option=option,
                          fix='make the file readable by the user the task runs as (become), or fix the path')


def run(params, now=None):
    """The module's work: returns the result dict or raises a ``CertforgeError``."""
    policy = dict(renew_before_days=params.get('renew_before_days'),
                  renew_at_fraction=params.get('renew_at_fraction'),
                  force=bool(params.get('force')))
    renewal.check_policy(policy)
    expected_sans = params.get('expected_subject_alt_names')
    if expected_sans is not None:
        expected_sans = cx509.normalize_san_strings(expected_sans, option='expected_subject_alt_names')
    expected = dict(subject_alt_names=expected_sans, public_key_fingerprint=None,
                    issuer=params.get('expected_issuer') or None, profile=None)
    now = now or cx509.utcnow()

    result = {'changed': False}
    certs = None
    cx509.require_cryptography()
    if params.get('path'):
        path = params['path']
        if os.path.exists(path):
            data = _read(path, 'path')
            certs = cx509.load_certificates(data, option='path')
    elif params.get('content') is not None:
        certs = cx509.load_certificates(params['content'], option='content')
    else:
        port = params.get('port') or 443
        if not 0 < port < 65536:
            raise ConfigError('%s is not a TCP port' % port, option='port', fix='give a port between 1 and 65535')
        leaf_der, chain_der, info = fetch_tls(params['host'], port, params.get('server_name'),
                                              params.get('timeout') or 10, params.get('ca_path'))
        certs = [cx509.load_certificate(leaf_der, option='host')]
        for der in chain_der:
            certs.append(cx509.load_certificate(der, option='host'))
        result.update(info)
        if not params.get('ca_path'):
            result.pop('verified', None)

    key = None
    if params.get('privatekey_path'):
        key_path = params['privatekey_path']
        if not os.path.exists(key_path):
            raise ConfigError('%s does not exist' % key_path, option='privatekey_path',
                              fix='give the path of the private key, or drop privatekey_path')
        key = cx509.load_private_key(_read(key_path, 'privatekey_path'),
                                     passphrase=params.get('privatekey_passphrase'), option='privatekey_path')
        expected['public_key_fingerprint'] = cx509.public_key_fingerprint(key)

    if not certs:
        needs, reasons = renewal.decide(None, policy=policy, expected=expected, now=now)
        result.update(exists=False, needs_renewal=needs, renewal_reasons=reasons)
        return result

    leaf = certs[0]
    facts = cx509.cert_facts(leaf, now=now)
    result.update(facts)
    result['exists'] = True
    result['pem'] = cx509.to_pem(leaf)
    result['chain'] = [_chain_entry(cert) for cert in certs[1:]]
    if key is not None:
        result['key_matches'] = cx509.key_matches_cert(key, leaf)
    needs, reasons = renewal.decide(facts, policy=policy, expected=expected, now=now)
    result['needs_renewal'] = needs
    result['renewal_reasons'] = reasons
    return result


def execute(ctx):
    return run(ctx.params)
