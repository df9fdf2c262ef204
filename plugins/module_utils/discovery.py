# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find certificates and private keys in files on the managed host: the work behind
``certforge.pki.certificate_discovery``.

The walk uses ``os.scandir`` and decides on names and sizes before it opens anything; only
candidate files are read (at most ``max_file_size`` bytes), their format is sniffed from the
first bytes (PEM, DER certificate, PKCS#7, PKCS#12, JKS, DER private key) and parsed in
process with ``cryptography``; the Java KeyStore format (JKS) is read here in pure Python.
One bad file never stops the scan: it is listed in ``problems`` with a reason.

A certificate is ``managed`` (written by this collection) when its file lies under one of
``managed_dirs``, or when it belongs to the file set the ``certificate`` role and
``certificate_request`` write: ``<stem>.crt``, ``<stem>.chain.pem``, ``<stem>.fullchain.pem``,
``<stem>.key`` next to a ``<stem>.csr`` whose public key is the public key of the certificate
in ``<stem>.crt``.  No other tool writes a CSR next to the certificate for the same key under
these names, and a stale copy of a set (a CSR for another key) does not count.  Files named in
the record ``certificate_request`` keeps in its directory (``.certforge-request.json``, found in
the walk) count as well: that covers keys and certificates the role writes under names of their
own (not their chain files).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fnmatch
import glob
import hashlib
import json
import os
import re
import stat
import struct

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import ArgumentSpec, check_path_text
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError

DEFAULT_PATTERNS = ['*.pem', '*.crt', '*.cer', '*.cert', '*.der', '*.key', '*.p12', '*.pfx', '*.jks',
                    '*.keystore', '*.truststore', '*.p7b', '*.p7c', '*.ca-bundle']
MAX_FILE_SIZE_LIMIT = 256 * 1024 * 1024
MANAGED_SUFFIXES = ('.fullchain.pem', '.chain.pem', '.crt', '.key')
#: the record certificate_request keeps in its directory (the certificate role always passes one)
REQUEST_RECORD = '.certforge-request.json'

OPTIONS = dict(
    paths=dict(type='list', elements='path', required=True),
    patterns=dict(type='list', elements='str'),
    excludes=dict(type='list', elements='str', default=[]),
    max_depth=dict(type='int'),
    follow_symlinks=dict(type='bool', default=False),
    max_file_size=dict(type='int', default=1024 * 1024),
    passwords=dict(type='list', elements='str', no_log=True, default=[]),
    managed_dirs=dict(type='list', elements='path', default=[]),
    renew_before_days=dict(type='int', default=30),
)


def _no_nul(value, option):
    if '\x00' in value:
        raise ConfigError('contains a NUL byte (%r)' % value.replace('\x00', '\\0'), option=option,
                          fix='remove the NUL (\\0) character; no path or pattern can hold one')


def check_params(params):
    """Every option checked before the first file is opened."""
    paths = params.get('paths') or []
    if not paths:
        raise ConfigError('is empty', option='paths', fix='give at least one directory, file or glob to search')
    for path in paths:
        if not isinstance(path, str):
            raise ConfigError('holds %r, not a path' % (path,), option='paths', fix='give paths as strings')
        check_path_text(path, 'paths')
        if not path.startswith('/'):
            raise ConfigError('%s is not an absolute path' % path, option='paths',
                              fix='give absolute paths (a module runs in a temporary directory)')
    for name in ('patterns', 'excludes'):
        for pattern in params.get(name) or []:
            _no_nul(pattern, name)
            if pattern == '':
                raise ConfigError('holds an empty pattern', option=name, fix='remove it, or give a glob like *.pem')
    for path in params.get('managed_dirs') or []:
        check_path_text(path, 'managed_dirs')
        if not path.startswith('/'):
            raise ConfigError('%s is not an absolute path' % path, option='managed_dirs',
                              fix='give absolute directory paths')
    depth = params.get('max_depth')
    if depth is not None and depth < 0:
        raise ConfigError('is %d; it cannot be negative' % depth, option='max_depth',
                          fix='give 0 (only the files directly in each path), a positive depth, or leave it out')
    size = params.get('max_file_size')
    if size is None or size <= 0:
        raise ConfigError('is %s; it must be positive' % size, option='max_file_size',
                          fix='give a size in bytes, e.g. 1048576 (the default, 1 MiB)')
    if size > MAX_FILE_SIZE_LIMIT:
        raise ConfigError('is %d; the largest allowed is %d (256 MiB)' % (size, MAX_FILE_SIZE_LIMIT),
                          option='max_file_size', fix='give a smaller size; certificate files are small')
    days = params.get('renew_before_days')
    if days is not None and days < 0:
        raise ConfigError('is %d; it cannot be negative' % days, option='renew_before_days',
                          fix='give the number of days before expiry at which a certificate counts as due')
    for password in params.get('passwords') or []:
        if '\x00' in password:
            raise ConfigError('one of them contains a NUL byte', option='passwords', fix='remove the NUL character')


def _glob_regex(patterns):
    """One compiled regex matching any of the globs (case-insensitive)."""
    if not patterns:
        return None
    return re.compile('|'.join('(?:%s)' % fnmatch.translate(p) for p in patterns), re.IGNORECASE | re.DOTALL)


# ----------------------------------------------------------------------------- DER helpers

def _der_header(data, pos):
    """``(tag, content_start, content_end)`` of the DER element at ``pos``; ValueError when
    malformed."""
    if pos + 2 > len(data):
        raise ValueError('truncated DER')
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError('bad DER length')
        length = int.from_bytes(data[pos:pos + count], 'big')
        pos += count
    if pos + length > len(data):
        raise ValueError('truncated DER')
    return tag, pos, pos + length


_OID_PKCS7_SIGNED = bytes.fromhex('06092a864886f70d010702')
_OID_PKCS7_DATA = bytes.fromhex('06092a864886f70d010701')


def _der_kind(data):
    """What a DER blob most likely is: ``certificate``, ``pkcs7``, ``pkcs12``, ``key`` or None."""
    try:
        tag, start, end = _der_header(data, 0)
        if tag != 0x30:
            return None
        tag2, start2, end2 = _der_header(data, start)
    except ValueError:
        return None
    if tag2 == 0x30:
        return 'certificate'
    if tag2 == 0x06:
        return 'pkcs7' if data[start:start + len(_OID_PKCS7_SIGNED)] == _OID_PKCS7_SIGNED else None
    if tag2 == 0x02:
        version = data[start2:end2]
        if version == b'\x03':
            try:
                tag3, start3, dummy = _der_header(data, end2)
            except ValueError:
                return None
            if tag3 == 0x30 and data[start3:start3 + len(_OID_PKCS7_DATA)] == _OID_PKCS7_DATA:
                return 'pkcs12'
            return None
        if version in (b'\x00', b'\x01'):
            return 'key'
    return None


# ----------------------------------------------------------------------------- JKS

JKS_MAGIC = 0xFEEDFEED
JCEKS_MAGIC = 0xCECECECE
_JKS_KEY_PROTECTOR_OID = bytes.fromhex('060a2b060104012a02110101')


class BadPassword(Exception):
    pass


class Unsupported(Exception):
    pass


def _jks_password_bytes(password):
    return password.encode('utf-16-be')


def jks_integrity_ok(data, password):
    """Whether ``password`` opens the keystore: SHA-1 over the password as UTF-16BE,
    ``b"Mighty Aphrodite"`` and every byte before the 20-byte digest at the end."""
    if len(data) < 20:
        return False
    digest = hashlib.sha1(_jks_password_bytes(password) + b'Mighty Aphrodite' + data[:-20]).digest()
    return digest == data[-20:]


def jks_decrypt_key(protected, password):
    """PKCS#8 DER of a JKS private key entry (Sun's key protector: SHA-1 keystream), or None
    when the entry uses another scheme or the password is wrong."""
    try:
        tag, start, end = _der_header(protected, 0)
        tag_alg, start_alg, end_alg = _der_header(protected, start)
        tag_oid, start_oid, end_oid = _der_header(protected, start_alg)
        if protected[start_alg:end_oid] != _JKS_KEY_PROTECTOR_OID:
            return None
        tag_oct, start_oct, end_oct = _der_header(protected, end_alg)
    except ValueError:
        return None
    blob = protected[start_oct:end_oct]
    if tag_oct != 0x04 or len(blob) < 40:
        return None
    salt, encrypted, check = blob[:20], blob[20:-20], blob[-20:]
    pw = _jks_password_bytes(password)
    stream = bytearray()
    digest = salt
    while len(stream) < len(encrypted):
        digest = hashlib.sha1(pw + digest).digest()
        stream.extend(digest)
    plain = bytes(a ^ b for a, b in zip(encrypted, stream))
    if hashlib.sha1(pw + plain).digest() != check:
        return None
    return plain


def _jks_utf(data, pos):
    (length,) = struct.unpack_from('>H', data, pos)
    pos += 2
    if pos + length > len(data):
        raise ValueError('truncated JKS string')
    return data[pos:pos + length].decode('utf-8', 'replace'), pos + length


def _jks_cert(data, pos, version):
    cert_type = 'X.509'
    if version == 2:
        cert_type, pos = _jks_utf(data, pos)
    (length,) = struct.unpack_from('>I', data, pos)
    pos += 4
    if pos + length > len(data):
        raise ValueError('truncated JKS certificate')
    return cert_type, data[pos:pos + length], pos + length


def parse_jks(data, passwords):
    """Entries of a JKS keystore whose integrity one of ``passwords`` verifies.

    Returns ``(password, entries)``; each entry is ``dict(alias, kind, certificates=[DER...],
    key=PKCS#8 DER or None)``.  Raises BadPassword when no password verifies, ValueError when
    the file is malformed."""
    magic, version, count = struct.unpack_from('>III', data, 0)
    if magic != JKS_MAGIC:
        raise ValueError('not a JKS keystore')
    if version not in (1, 2):
        raise Unsupported('JKS version %d' % version)
    password = None
    for candidate in passwords:
        if jks_integrity_ok(data, candidate):
            password = candidate
            break
    if password is None:
        raise BadPassword()
    pos = 12
    entries = []
    for dummy in range(count):
        (tag,) = struct.unpack_from('>I', data, pos)
        pos += 4
        alias, pos = _jks_utf(data, pos)
        pos += 8  # creation time (milliseconds)
        if tag == 1:
            (length,) = struct.unpack_from('>I', data, pos)
            pos += 4
            protected = data[pos:pos + length]
            pos += length
            (chain_len,) = struct.unpack_from('>I', data, pos)
            pos += 4
            chain = []
            for dummy2 in range(chain_len):
                cert_type, der, pos = _jks_cert(data, pos, version)
                if cert_type == 'X.509':
                    chain.append(der)
            entries.append(dict(alias=alias, kind='private_key', certificates=chain,
                                key=jks_decrypt_key(protected, password)))
        elif tag == 2:
            cert_type, der, pos = _jks_cert(data, pos, version)
            entries.append(dict(alias=alias, kind='trusted_certificate',
                                certificates=[der] if cert_type == 'X.509' else [], key=None))
        else:
            raise Unsupported('JKS entry type %d (secret keys are JCEKS)' % tag)
    if pos != len(data) - 20:
        raise ValueError('JKS entries do not end at the digest')
    return password, entries


# ----------------------------------------------------------------------------- parsing one file

_PEM_BLOCK = re.compile(br'-----BEGIN ([A-Z0-9 #]+)-----\r?\n(.*?)-----END \1-----', re.DOTALL)
_CERT_LABELS = (b'CERTIFICATE', b'X509 CERTIFICATE', b'TRUSTED CERTIFICATE')
_PKCS7_LABELS = (b'PKCS7', b'PKCS #7 SIGNED DATA', b'CERTIFICATE CHAIN')
_KEY_LABELS = (b'PRIVATE KEY', b'RSA PRIVATE KEY', b'EC PRIVATE KEY', b'DSA PRIVATE KEY',
               b'ENCRYPTED PRIVATE KEY')


class Found(object):
    """What one file holds."""

    __slots__ = ('fmt', 'certs', 'keys', 'problem', 'detail')

    def __init__(self, fmt=None):
        self.fmt = fmt
        self.certs = []     # (cryptography certificate, alias or None)
        self.keys = []      # dict(key=private key or None, encrypted=bool, alias=None)
        self.problem = None
        self.detail = None


def _load_key(lib, data, der, passwords, encrypted):
    """``(key or None, encrypted)``; tries no password first, then each of ``passwords``."""
    loader = lib.serialization.load_der_private_key if der else lib.serialization.load_pem_private_key
    extra = {}
    if _SKIP_RSA_CHECK:
        extra['unsafe_skip_rsa_key_validation'] = True
    candidates = [None] if not encrypted else []
    candidates += [p.encode('utf-8') for p in passwords]
    for password in candidates:
        try:
            return loader(data, password=password, **extra), encrypted or password is not None
        except TypeError:
            encrypted = True  # a password was needed (or was given to an unencrypted key)
        except (ValueError, lib.UnsupportedAlgorithm):
            if password is None and not encrypted:
                return None, False
    return None, True


_SKIP_RSA_CHECK = False


def _prepare(lib):
    global _SKIP_RSA_CHECK
    if not hasattr(lib, 'UnsupportedAlgorithm'):
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
        lib.UnsupportedAlgorithm = UnsupportedAlgorithm
        lib.pkcs7 = pkcs7
        lib.pkcs12 = pkcs12
        try:
            major = int(lib.version.split('.')[0])
        except ValueError:
            major = 0
        _SKIP_RSA_CHECK = major >= 39


def _parse_pem(lib, data, found, passwords):
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1)
        block = match.group(0)
        if label in _CERT_LABELS:
            if label != b'CERTIFICATE':
                block = block.replace(b'-----BEGIN ' + label, b'-----BEGIN CERTIFICATE', 1)
                block = block.replace(b'-----END ' + label, b'-----END CERTIFICATE', 1)
            try:
                found.certs.append((lib.x509.load_pem_x509_certificate(block), None))
            except ValueError:
                if label == b'TRUSTED CERTIFICATE':
                    # OpenSSL's trusted form: the certificate followed by its trust settings
                    der = _der_prefix(_pem_body(match.group(2)))
                    if der is not None:
                        try:
                            found.certs.append((lib.x509.load_der_x509_certificate(der), None))
                            continue
                        except ValueError:
                            pass
                found.detail = 'a malformed %s block' % label.decode('ascii')
        elif label in _PKCS7_LABELS:
            body = block.replace(b'-----BEGIN ' + label, b'-----BEGIN PKCS7', 1).replace(
                b'-----END ' + label, b'-----END PKCS7', 1)
            try:
                for cert in lib.pkcs7.load_pem_pkcs7_certificates(body):
                    found.certs.append((cert, None))
                found.fmt = 'pkcs7'
            except (ValueError, lib.UnsupportedAlgorithm):
                found.detail = 'a malformed PKCS7 block'
        elif label in _KEY_LABELS:
            encrypted = label == b'ENCRYPTED PRIVATE KEY' or b'Proc-Type: 4,ENCRYPTED' in match.group(2)
            key, encrypted = _load_key(lib, block, False, passwords, encrypted)
            if key is None and not encrypted:
                found.detail = 'a malformed %s block' % label.decode('ascii')
                continue
            found.keys.append(dict(key=key, encrypted=encrypted, alias=None))
    if found.fmt is None:
        found.fmt = 'pem'


def _pem_body(text):
    import base64
    lines = [line for line in text.splitlines() if line and b':' not in line]
    try:
        return base64.b64decode(b''.join(lines))
    except ValueError:
        return b''


def _der_prefix(data):
    try:
        tag, start, end = _der_header(data, 0)
    except ValueError:
        return None
    return data[:end] if tag == 0x30 else None


_PBE_OID_PREFIXES = (bytes.fromhex('2a864886f70d0105'), bytes.fromhex('2a864886f70d010c01'))


def _parse_der(lib, data, found, passwords, hint):
    kind = _der_kind(data)
    if kind == 'certificate':
        try:
            found.certs.append((lib.x509.load_der_x509_certificate(data), None))
            found.fmt = 'der'
            return
        except ValueError:
            pass
        if any(oid in data[:40] for oid in _PBE_OID_PREFIXES):
            # an encrypted PKCS#8 key in DER: SEQUENCE { SEQUENCE { PBE algorithm }, OCTET STRING }
            key, encrypted = _load_key(lib, data, True, passwords, True)
            found.fmt = 'der'
            found.keys.append(dict(key=key, encrypted=True, alias=None))
            return
        found.problem, found.detail = 'not_a_certificate', 'a DER structure that is no X.509 certificate'
        return
    if kind == 'pkcs7':
        try:
            for cert in lib.pkcs7.load_der_pkcs7_certificates(data):
                found.certs.append((cert, None))
            found.fmt = 'pkcs7'
        except (ValueError, lib.UnsupportedAlgorithm):
            found.problem, found.detail = 'not_a_certificate', 'a malformed PKCS#7 structure'
        return
    if kind == 'pkcs12':
        found.fmt = 'pkcs12'
        candidates = [None, b''] + [p.encode('utf-8') for p in passwords]
        for password in candidates:
            try:
                loaded = lib.pkcs12.load_pkcs12(data, password)
            except (ValueError, TypeError, lib.UnsupportedAlgorithm):
                continue
            if loaded.cert is not None:
                found.certs.append((loaded.cert.certificate, _alias(loaded.cert)))
            for extra in loaded.additional_certs:
                found.certs.append((extra.certificate, _alias(extra)))
            if loaded.key is not None:
                found.keys.append(dict(key=loaded.key, encrypted=password not in (None, b''), alias=None))
            return
        found.problem = 'bad_password' if passwords else 'password_required'
        found.detail = ('none of the passwords opens this PKCS#12 file' if passwords
                        else 'this PKCS#12 file needs a password (passwords)')
        return
    if kind == 'key':
        key, encrypted = _load_key(lib, data, True, passwords, False)
        if key is not None:
            found.fmt = 'der'
            found.keys.append(dict(key=key, encrypted=encrypted, alias=None))
            return
    found.problem = 'not_a_certificate'
    found.detail = 'no certificate, PKCS#7, PKCS#12, JKS or private key found in the content'


def _alias(obj):
    name = getattr(obj, 'friendly_name', None)
    return name.decode('utf-8', 'replace') if name else None


def _parse_jks(lib, data, found, passwords):
    found.fmt = 'jks'
    if not passwords:
        found.problem, found.detail = 'password_required', 'a JKS keystore is read with its password (passwords)'
        return
    try:
        dummy, entries = parse_jks(data, passwords)
    except BadPassword:
        found.problem, found.detail = 'bad_password', 'none of the passwords verifies the keystore integrity digest'
        return
    except Unsupported as exc:
        found.problem, found.detail = 'unsupported', str(exc)
        return
    except (ValueError, struct.error):
        found.problem, found.detail = 'not_a_certificate', 'a malformed JKS keystore'
        return
    for entry in entries:
        for der in entry['certificates']:
            try:
                found.certs.append((lib.x509.load_der_x509_certificate(der), entry['alias']))
            except ValueError:
                found.detail = 'a malformed certificate in entry %s' % entry['alias']
        if entry['kind'] == 'private_key':
            key = None
            if entry['key'] is not None:
                try:
                    key = lib.serialization.load_der_private_key(entry['key'], password=None)
                except (ValueError, TypeError, lib.UnsupportedAlgorithm):
                    key = None
            found.keys.append(dict(key=key, encrypted=True, alias=entry['alias']))


def parse_content(data, passwords=(), name=''):
    """A ``Found`` for the bytes of one file."""
    lib = cx509.require_cryptography()
    _prepare(lib)
    found = Found()
    if len(data) >= 4 and data[:4] == b'\xfe\xed\xfe\xed':
        _parse_jks(lib, data, found, passwords)
    elif len(data) >= 4 and data[:4] == b'\xce\xce\xce\xce':
        found.fmt, found.problem, found.detail = 'jceks', 'unsupported', 'JCEKS keystores are not read'
    elif data[:1] == b'\x30' and _der_kind(data) is not None:
        _parse_der(lib, data, found, passwords, name)
    elif b'-----BEGIN ' in data:
        _parse_pem(lib, data, found, passwords)
    else:
        found.problem = 'not_a_certificate'
        found.detail = 'no certificate, PKCS#7, PKCS#12, JKS or private key found in the content'
        return found
    if found.problem is None and not found.certs and not found.keys:
        found.problem = 'not_a_certificate'
        found.detail = found.detail or 'no certificate or private key in the PEM blocks'
    return found


# ----------------------------------------------------------------------------- facts

_SIG_NAMES = {}


def _sig_name(cert):
    oid = cert.signature_algorithm_oid
    name = _SIG_NAMES.get(oid.dotted_string)
    if name is None:
        name = getattr(oid, '_name', None) or oid.dotted_string
        if name == 'Unknown OID':
            name = oid.dotted_string
        _SIG_NAMES[oid.dotted_string] = name
    return name


def _fingerprint(lib, cert, algorithm):
    text = cert.fingerprint(algorithm).hex().upper()
    return ':'.join(text[i:i + 2] for i in range(0, len(text), 2))


class _Facts(object):
    """Per-run caches of what many certificates share (names, hash objects)."""

    def __init__(self, lib):
        self.lib = lib
        self.names = {}
        self.sha256 = lib.hashes.SHA256()
        self.sha1 = lib.hashes.SHA1()

    def name(self, name):
        try:
            key = name.public_bytes()
        except (AttributeError, TypeError, ValueError):
            return name.rfc4514_string()
        text = self.names.get(key)
        if text is None:
            text = self.names[key] = name.rfc4514_string()
        return text


def cert_entry(lib, cert, now, renew_before_days, facts=None):
    """The JSON facts of one certificate."""
    facts = facts or _Facts(lib)
    end = cx509.not_after(cert)
    days_left = round((end - now).total_seconds() / 86400.0, 2)
    try:
        bc = cert.extensions.get_extension_for_class(lib.x509.BasicConstraints).value
        is_ca = bool(bc.ca)
    except lib.x509.ExtensionNotFound:
        is_ca = False
    except ValueError:
        is_ca = False
    try:
        sans = cx509.san_list(cert)
    except ConfigError:
        sans = []
    try:
        key = cx509.key_description(cert)
    except (ValueError, TypeError, lib.UnsupportedAlgorithm):
        key = {'type': 'unknown'}
    expired = now >= end
    subject = facts.name(cert.subject)
    issuer = facts.name(cert.issuer)
    return {
        'subject': subject,
        'sans': sans,
        'issuer': issuer,
        'serial': cx509.serial_hex(cert),
        'fingerprint_sha256': _fingerprint(lib, cert, facts.sha256),
        'fingerprint_sha1': _fingerprint(lib, cert, facts.sha1),
        'not_before': cx509.iso8601(cx509.not_before(cert)),
        'not_after': cx509.iso8601(end),
        'days_left': days_left,
        'expired': expired,
        'due': days_left <= renew_before_days,
        'key_type': key.get('type'),
        'key_size': key.get('size'),
        'key_curve': key.get('curve'),
        'signature_algorithm': _sig_name(cert),
        'self_signed': subject == issuer and cert.subject == cert.issuer and cx509.is_self_signed(cert),
        'is_ca': is_ca,
    }


def _spki(lib, obj):
    try:
        return hashlib.sha256(cx509.public_key_der(obj)).hexdigest()
    except (ValueError, TypeError, lib.UnsupportedAlgorithm):
        return None


# ----------------------------------------------------------------------------- the walk

def _shown(path):
    try:
        path.encode('utf-8')
        return path
    except UnicodeError:
        return os.fsencode(path).decode('utf-8', 'backslashreplace')


class Scanner(object):
    """One discovery run over ``params``."""

    def __init__(self, params, now=None):
        self.lib = cx509.require_cryptography()
        _prepare(self.lib)
        self.params = params
        self.now = now or cx509.utcnow()
        patterns = params.get('patterns')
        self.patterns = _glob_regex(DEFAULT_PATTERNS if patterns is None else patterns)
        excludes = params.get('excludes') or []
        self.exclude_names = _glob_regex([p for p in excludes if '/' not in p])
        self.exclude_paths = _glob_regex([p for p in excludes if '/' in p])
        self.max_depth = params.get('max_depth')
        self.follow = bool(params.get('follow_symlinks'))
        self.max_size = params['max_file_size']
        self.passwords = list(params.get('passwords') or [])
        self.renew_before_days = params.get('renew_before_days')
        if self.renew_before_days is None:
            self.renew_before_days = 30
        self.managed_dirs = [os.path.normpath(p).rstrip('/') + '/' for p in params.get('managed_dirs') or []]
        self.seen_dirs = set()
        self.seen_files = set()
        self.files_seen = 0
        self.candidates = 0
        self.certificates = []
        self.keys = []
        self.skipped = []
        self._key_objs = []       # (entry, public key fingerprint)
        self._cert_objs = []      # (entry, certificate)
        self.facts = _Facts(self.lib)
        self.recorded = set()     # paths named in certificate_request's records

    # -- helpers
    def skip(self, path, reason, detail):
        self.skipped.append({'path': path, 'reason': reason, 'detail': detail})

    def excluded(self, name, path):
        if self.exclude_names is not None and self.exclude_names.match(name):
            return True
        return self.exclude_paths is not None and self.exclude_paths.match(path) is not None

    # -- walking
    def run(self):
        for given in self.params['paths']:
            if glob.has_magic(given):
                matches = sorted(glob.glob(given))
                if not matches:
                    self.skip(given, 'missing', 'the glob matches nothing')
                for path in matches:
                    if not self.excluded(os.path.basename(path.rstrip('/')), os.path.normpath(path)):
                        self.start(path)
            else:
                self.start(given)
        self.match_keys()
        self.mark_managed()
        return self.result()

    def start(self, path):
        path = os.path.normpath(path)
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                self.skip(path, 'missing', 'no such file or directory')
            elif exc.errno == errno.ELOOP:
                self.skip(path, 'loop', 'too many levels of symbolic links')
            else:
                self.skip(path, 'unreadable', exc.strerror or str(exc))
            return
        if stat.S_ISDIR(st.st_mode):
            self.walk(path, st, 0)
        else:
            # a file named in paths is read whatever its name (patterns select inside directories)
            self.files_seen += 1
            self.consider(path, st)

    def walk(self, top, st, depth):
        ident = (st.st_dev, st.st_ino)
        if ident in self.seen_dirs:
            self.skip(top, 'loop', 'this directory was already searched (symbolic link loop or second path to it)')
            return
        self.seen_dirs.add(ident)
        try:
            with os.scandir(top) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.skip(top, 'unreadable', exc.strerror or str(exc))
            return
        subdirs = []
        links = []
        patterns = self.patterns
        for entry in entries:
            name = entry.name
            path = top + '/' + name if top != '/' else '/' + name
            if self.excluded(name, path):
                continue
            try:
                if entry.is_symlink():
                    links.append(entry)
                    continue
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry)
                    continue
            except OSError:
                continue
            self.files_seen += 1
            if name == REQUEST_RECORD and entry.is_file(follow_symlinks=False):
                self.read_request_record(path)
            if patterns is not None and not patterns.match(name):
                continue
            try:
                fst = entry.stat(follow_symlinks=False)
            except OSError as exc:
                self.skip(path, 'unreadable', exc.strerror or str(exc))
                continue
            self.consider(path, fst)
        for entry in links:
            path = top + '/' + entry.name if top != '/' else '/' + entry.name
            try:
                lst = os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    self.skip(path, 'loop', 'too many levels of symbolic links')
                # a dangling link is no file
                continue
            if stat.S_ISDIR(lst.st_mode):
                if self.follow:
                    subdirs.append((entry, lst))
                continue
            self.files_seen += 1
            if patterns is not None and not patterns.match(entry.name):
                continue
            self.consider(path, lst)
        if self.max_depth is not None and depth >= self.max_depth:
            return
        for item in subdirs:
            if isinstance(item, tuple):
                entry, dst = item
            else:
                entry = item
                try:
                    dst = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    self.skip(entry.path, 'unreadable', exc.strerror or str(exc))
                    continue
            path = top + '/' + entry.name if top != '/' else '/' + entry.name
            self.walk(path, dst, depth + 1)

    def consider(self, path, st):
        """Read and parse one candidate file (``st`` follows links)."""
        if not stat.S_ISREG(st.st_mode):
            self.skip(path, 'not_a_regular_file', 'a FIFO, socket or device is never opened')
            return
        ident = (st.st_dev, st.st_ino)
        if ident in self.seen_files:
            return  # the same file under a second name (hard or symbolic link)
        self.seen_files.add(ident)
        if st.st_size > self.max_size:
            self.skip(path, 'too_large', '%d bytes; max_file_size is %d' % (st.st_size, self.max_size))
            return
        if st.st_size == 0:
            self.skip(path, 'not_a_certificate', 'the file is empty')
            return
        self.candidates += 1
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_NOCTTY', 0))
        except OSError as exc:
            self.skip(path, 'unreadable', exc.strerror or str(exc))
            return
        try:
            with os.fdopen(fd, 'rb') as handle:
                data = handle.read(self.max_size + 1)
        except OSError as exc:
            self.skip(path, 'unreadable', exc.strerror or str(exc))
            return
        if len(data) > self.max_size:
            self.skip(path, 'too_large', 'more than max_file_size (%d) bytes' % self.max_size)
            return
        try:
            found = parse_content(data, self.passwords, path)
        except Exception as exc:  # pylint: disable=broad-except
            # one strange file never stops the scan; the message carries no file content
            self.skip(path, 'not_a_certificate', 'cannot be parsed (%s)' % type(exc).__name__)
            return
        if found.problem:
            self.skip(path, found.problem, found.detail)
            return
        self.record(path, found)

    def record(self, path, found):
        lib = self.lib
        for index, (cert, alias) in enumerate(found.certs):
            try:
                entry = cert_entry(lib, cert, self.now, self.renew_before_days, self.facts)
            except Exception as exc:  # pylint: disable=broad-except
                self.skip(path, 'not_a_certificate', 'certificate %d cannot be read (%s)' % (index, type(exc).__name__))
                continue
            item = {'path': path, 'format': found.fmt, 'index': index, 'alias': alias}
            item.update(entry)
            item['key_match'] = None
            item['managed'] = False
            self.certificates.append(item)
            self._cert_objs.append((item, cert))
        for index, key in enumerate(found.keys):
            obj = key['key']
            desc = {}
            spki = None
            if obj is not None:
                try:
                    desc = cx509.key_description(obj)
                except (ValueError, TypeError):
                    desc = {}
                spki = _spki(lib, obj)
            item = {'path': path, 'format': found.fmt, 'index': index, 'alias': key['alias'],
                    'type': desc.get('type'), 'size': desc.get('size'), 'curve': desc.get('curve'),
                    'encrypted': bool(key['encrypted']), 'certificates': [], 'managed': False}
            self.keys.append(item)
            self._key_objs.append((item, spki))

    def match_keys(self):
        by_dir = {}
        for item, spki in self._key_objs:
            if spki is not None:
                by_dir.setdefault(os.path.dirname(item['path']), {}).setdefault(spki, []).append(item)
        if not by_dir:
            return
        for item, cert in self._cert_objs:
            keys = by_dir.get(os.path.dirname(item['path']))
            if not keys:
                continue
            spki = _spki(self.lib, cert)
            matches = keys.get(spki) or []
            if not matches:
                continue
            # the key in the same file first (PKCS#12, JKS, combined PEM), else the first by path
            same = [k for k in matches if k['path'] == item['path']]
            item['key_match'] = (same or matches)[0]['path']
            for key in matches:
                if item['path'] not in key['certificates']:
                    key['certificates'].append(item['path'])

    # -- managed
    def read_request_record(self, path):
        """The files certificate_request keeps the state of (keys, CSRs, certificates): managed.
        A record that cannot be read or has another shape adds nothing."""
        try:
            if os.path.getsize(path) > self.max_size:
                return
            with open(path, 'rb') as handle:
                record = json.loads(handle.read().decode('utf-8'))
            files = record.get('files')
            if isinstance(files, dict):
                for name in files:
                    if isinstance(name, str) and name.startswith('/'):
                        self.recorded.add(os.path.normpath(name))
        except (OSError, ValueError, AttributeError):
            return

    def _stem(self, path):
        for suffix in MANAGED_SUFFIXES:
            if path.endswith(suffix) and len(path) > len(suffix) and path[-len(suffix) - 1] != '/':
                return path[:-len(suffix)]
        return None

    def _stem_managed(self, stem, cache):
        if stem in cache:
            return cache[stem]
        cache[stem] = False
        lib = self.lib
        try:
            with open(stem + '.csr', 'rb') as handle:
                csr_data = handle.read(self.max_size)
            with open(stem + '.crt', 'rb') as handle:
                crt_data = handle.read(self.max_size)
            csr = lib.x509.load_pem_x509_csr(csr_data)
            cert = lib.x509.load_pem_x509_certificate(crt_data)
        except (OSError, ValueError):
            return False
        cache[stem] = cx509.public_key_der(csr) == cx509.public_key_der(cert)
        return cache[stem]

    def managed_by(self, path, cache):
        for directory in self.managed_dirs:
            if path.startswith(directory):
                return 'managed_dirs'
        stem = self._stem(path)
        if stem is not None and self._stem_managed(stem, cache):
            return 'layout'
        if path in self.recorded:
            return 'request_record'
        return None

    def mark_managed(self):
        cache = {}
        for item in self.certificates + self.keys:
            how = self.managed_by(item['path'], cache)
            item['managed'] = how is not None
            item['managed_by'] = how

    def result(self):
        # a file name that is not UTF-8 is shown with backslash escapes (a result must be UTF-8)
        for item in self.certificates:
            item['path'] = _shown(item['path'])
            if item['key_match'] is not None:
                item['key_match'] = _shown(item['key_match'])
        for item in self.keys:
            item['path'] = _shown(item['path'])
            item['certificates'] = [_shown(p) for p in item['certificates']]
        for item in self.skipped:
            item['path'] = _shown(item['path'])
        expired = sum(1 for c in self.certificates if c['expired'])
        expiring = sum(1 for c in self.certificates if c['due'] and not c['expired'])
        totals = {'files_seen': self.files_seen, 'files_read': self.candidates,
                  'certificates': len(self.certificates), 'keys': len(self.keys),
                  'expired': expired, 'expiring': expiring, 'problems': len(self.skipped),
                  'managed': sum(1 for c in self.certificates if c['managed'])}
        return {'changed': False, 'certificates': self.certificates, 'keys': self.keys,
                'problems': self.skipped, 'totals': totals}


SPEC = ArgumentSpec(OPTIONS)


def run(params, now=None):
    """The whole discovery for ``params`` (raises ConfigError for bad options)."""
    check_params(params)
    return Scanner(params, now=now).run()


def execute(ctx):
    return run(ctx.params)
