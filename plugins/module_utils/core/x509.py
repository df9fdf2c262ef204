# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse certificates, CSRs and keys; facts, fingerprints, SANs, names and chain ordering.

``cryptography`` is imported lazily: importing this file costs next to nothing, and the
first call that needs the library imports it.  A module's ``main()`` calls
``require_cryptography()`` early and reports an ``ImportError`` with
``missing_required_lib('cryptography')`` and ``CRYPTOGRAPHY_IMP_ERR``.

Malformed input raises ``errors.ConfigError`` naming the option it came from, never a
traceback.  Nothing here ever puts private key material or a passphrase into a message.

Conventions of the returned facts:

* serial: upper-case hex without colons, even length (``serial_hex``);
* certificate fingerprints: colon-separated upper-case hex (``fingerprint``);
* public key fingerprint: lower-case hex SHA-256 of the DER SubjectPublicKeyInfo
  (``public_key_fingerprint``), so it is the same for a key, its CSR and its certificates;
* key identifiers (SKI/AKI): colon-separated upper-case hex;
* times: ISO 8601 UTC with ``Z`` (``2026-01-02T03:04:05Z``);
* SANs: ``DNS:name`` (lower case), ``IP:1.2.3.4``, ``email:x@y``, ``URI:scheme:...``,
  and for the rare kinds ``RID:1.2.3``, ``dirName:CN=x``, ``otherName:1.2.3;hex``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import datetime
import hashlib
import ipaddress
import re
import traceback

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError

try:
    from importlib.util import find_spec as _find_spec
    HAS_CRYPTOGRAPHY = _find_spec('cryptography') is not None
except (ImportError, ValueError):  # pragma: no cover
    HAS_CRYPTOGRAPHY = False

#: Traceback text of the failed import (for ``fail_json(exception=...)``), or None.
CRYPTOGRAPHY_IMP_ERR = None if HAS_CRYPTOGRAPHY else 'ImportError: No module named cryptography'

#: What ``missing_required_lib`` should name.
CRYPTOGRAPHY_REQUIREMENT = 'cryptography >= 3.3'
MIN_CRYPTOGRAPHY_VERSION = (3, 3)

_UTC = datetime.timezone.utc


class _Lib(object):
    """The cryptography names this file uses, filled in by ``require_cryptography()``."""


_LIB = None


def require_cryptography():
    """Import cryptography (once) and return a namespace of its parts.

    Raises ImportError whose ``name`` is ``CRYPTOGRAPHY_REQUIREMENT`` (the message says what
    failed, or which version is too old); ``main()`` turns it into
    ``fail_json(msg=missing_required_lib(CRYPTOGRAPHY_REQUIREMENT), exception=CRYPTOGRAPHY_IMP_ERR)``.
    """
    global _LIB, HAS_CRYPTOGRAPHY, CRYPTOGRAPHY_IMP_ERR
    if _LIB is not None:
        return _LIB
    try:
        import cryptography
        from cryptography import x509 as _x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
        from cryptography.x509 import oid
    except ImportError as exc:
        HAS_CRYPTOGRAPHY = False
        CRYPTOGRAPHY_IMP_ERR = traceback.format_exc()
        raise ImportError('cannot import cryptography (%s)' % exc, name=CRYPTOGRAPHY_REQUIREMENT)
    version = getattr(cryptography, '__version__', '0')
    parts = []
    for piece in version.split('.')[:2]:
        digits = re.match(r'\d+', piece)
        parts.append(int(digits.group(0)) if digits else 0)
    if tuple(parts) < MIN_CRYPTOGRAPHY_VERSION:
        HAS_CRYPTOGRAPHY = False
        CRYPTOGRAPHY_IMP_ERR = 'cryptography %s is too old; %s is needed' % (version, CRYPTOGRAPHY_REQUIREMENT)
        raise ImportError(CRYPTOGRAPHY_IMP_ERR, name=CRYPTOGRAPHY_REQUIREMENT)
    lib = _Lib()
    lib.version = version
    lib.x509 = _x509
    lib.oid = oid
    lib.hashes = hashes
    lib.serialization = serialization
    lib.rsa = rsa
    lib.ec = ec
    lib.dsa = dsa
    lib.ed25519 = ed25519
    lib.ed448 = ed448
    lib.padding = padding
    lib.InvalidSignature = InvalidSignature
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMP_ERR = None
    _LIB = lib
    return lib


_c = require_cryptography


# ----------------------------------------------------------------------------- small helpers

def utcnow():
    """The current time as an aware UTC datetime."""
    return datetime.datetime.now(_UTC)


def iso8601(dt):
    """Aware or naive-UTC datetime -> ``2026-01-02T03:04:05Z``."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_UTC)
    return dt.astimezone(_UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def _as_utc(dt):
    if dt is None:
        return None
    if isinstance(dt, str):
        text = dt.strip()
        if text.endswith('Z'):
            text = text[:-1] + '+00:00'
        dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_UTC)
    return dt.astimezone(_UTC)


def not_before(cert):
    """notBefore as an aware UTC datetime (any cryptography version)."""
    value = getattr(cert, 'not_valid_before_utc', None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=_UTC)


def not_after(cert):
    """notAfter as an aware UTC datetime (any cryptography version)."""
    value = getattr(cert, 'not_valid_after_utc', None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=_UTC)


def _hex_colon(data):
    return ':'.join('%02X' % b for b in bytearray(data))


def _to_bytes(data):
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray):
        return bytes(data)
    if isinstance(data, str):
        return data.encode('utf-8')
    raise TypeError('expected str or bytes, got %s' % type(data).__name__)


def _to_text(data):
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode('utf-8', errors='replace')
    return data


def _oid_name(oid_obj):
    name = getattr(oid_obj, '_name', None)
    if name and name != 'Unknown OID':
        return name
    return oid_obj.dotted_string


# ----------------------------------------------------------------------------- PEM

_PEM_RE = re.compile(r'-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----', re.DOTALL)


def _pem_blocks(text):
    """[(label, normalized_block)] of the PEM blocks in text (str or bytes)."""
    text = _to_text(text) or ''
    blocks = []
    for match in _PEM_RE.finditer(text):
        label = match.group(1)
        body = [line.rstrip() for line in match.group(2).replace('\r\n', '\n').split('\n')]
        while body and not body[-1]:
            body.pop()
        while body and not body[0]:
            body.pop(0)
        block = '-----BEGIN %s-----\n%s\n-----END %s-----\n' % (label, '\n'.join(line.strip() for line in body), label)
        blocks.append((label, block))
    return blocks


def split_pem(text):
    """The PEM blocks in ``text`` (str or bytes), each normalized (LF line ends, no stray
    whitespace) and ending with one newline.  Text outside the blocks is dropped."""
    return [block for _label, block in _pem_blocks(text)]


def pem_labels(text):
    """Labels of the PEM blocks in ``text`` (``['CERTIFICATE', 'PRIVATE KEY']``)."""
    return [label for label, _block in _pem_blocks(text)]


def pem_kind(text):
    """What the PEM blocks in ``text`` are: ``'certificate'``, ``'csr'``, ``'private_key'``, or
    None; the first match in that order of precedence: private key, certificate, CSR."""
    labels = pem_labels(text)
    if any(label in _KEY_LABELS or label.endswith('PRIVATE KEY') for label in labels):
        return 'private_key'
    if any(label in _CERT_LABELS for label in labels):
        return 'certificate'
    if any(label in _CSR_LABELS for label in labels):
        return 'csr'
    return None


def describe_pem(text):
    """Human words for what ``text`` holds (``'a certificate and a private key'``)."""
    labels = pem_labels(text)
    return _describe_labels(labels) if labels else 'no PEM data'


def _looks_like_pem(data):
    return b'-----BEGIN ' in _to_bytes(data)


_CERT_LABELS = ('CERTIFICATE', 'X509 CERTIFICATE', 'TRUSTED CERTIFICATE')
_CSR_LABELS = ('CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST')
_KEY_LABELS = ('PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'DSA PRIVATE KEY',
               'ENCRYPTED PRIVATE KEY')


def _describe_labels(labels):
    kinds = []
    for label in labels:
        if label in _CERT_LABELS:
            kind = 'a certificate'
        elif label in _CSR_LABELS:
            kind = 'a certificate signing request'
        elif label in _KEY_LABELS or label.endswith('PRIVATE KEY'):
            kind = 'a private key'
        elif label.endswith('PUBLIC KEY'):
            kind = 'a public key'
        else:
            kind = label
        if kind not in kinds:
            kinds.append(kind)
    return ' and '.join(kinds)


# ----------------------------------------------------------------------------- loading

def _is_certificate(obj):
    return obj is not None and hasattr(obj, 'serial_number') and hasattr(obj, 'issuer')


def _is_csr(obj):
    return obj is not None and hasattr(obj, 'is_signature_valid') and not hasattr(obj, 'serial_number')


def load_certificates(data, option='certificates'):
    """All certificates of a PEM bundle (str or bytes), or the one certificate of DER bytes.

    Raises ConfigError naming ``option`` when nothing parses."""
    lib = _c()
    if isinstance(data, (list, tuple)):
        certs = []
        for item in data:
            certs.extend(load_certificates(item, option=option))
        return certs
    if _is_certificate(data):
        return [data]
    if data is None or (isinstance(data, (str, bytes)) and not data.strip()):
        raise ConfigError('no certificate given (empty)', option=option,
                          fix='give a PEM or DER encoded X.509 certificate')
    raw = _to_bytes(data)
    if not _looks_like_pem(raw):
        if isinstance(data, str):
            raise ConfigError('is not a PEM certificate (no -----BEGIN CERTIFICATE----- line)',
                              option=option, fix='give a PEM encoded X.509 certificate')
        try:
            return [lib.x509.load_der_x509_certificate(raw)]
        except (ValueError, TypeError) as exc:
            raise ConfigError('is neither a PEM nor a DER certificate (%s)' % exc, option=option,
                              fix='give a PEM or DER encoded X.509 certificate')
    blocks = _pem_blocks(raw)
    certs = []
    for label, block in blocks:
        if label not in _CERT_LABELS:
            continue
        if label != 'CERTIFICATE':
            block = block.replace(label, 'CERTIFICATE')
        try:
            certs.append(lib.x509.load_pem_x509_certificate(block.encode('ascii')))
        except (ValueError, TypeError, UnicodeError) as exc:
            raise ConfigError('holds a malformed PEM certificate (%s)' % exc, option=option,
                              fix='give an intact PEM encoded X.509 certificate')
    if not certs:
        labels = [label for label, _block in blocks]
        what = _describe_labels(labels) if labels else 'no complete PEM block'
        raise ConfigError('holds %s, not a certificate' % what, option=option,
                          fix='give a PEM encoded X.509 certificate (-----BEGIN CERTIFICATE-----)')
    return certs


def load_certificate(data, option='certificate'):
    """One certificate from PEM (str/bytes; the first of a bundle) or DER bytes."""
    return load_certificates(data, option=option)[0]


def load_csr(data, option='csr'):
    """A CSR from PEM (str/bytes) or DER bytes; ConfigError naming ``option`` otherwise."""
    lib = _c()
    if _is_csr(data):
        return data
    if data is None or (isinstance(data, (str, bytes)) and not data.strip()):
        raise ConfigError('no CSR given (empty)', option=option,
                          fix='give a PEM or DER encoded PKCS#10 certificate signing request')
    raw = _to_bytes(data)
    if not _looks_like_pem(raw):
        if isinstance(data, str):
            raise ConfigError('is not a PEM CSR (no -----BEGIN CERTIFICATE REQUEST----- line)',
                              option=option, fix='give a PEM encoded certificate signing request')
        try:
            return lib.x509.load_der_x509_csr(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError('is neither a PEM nor a DER CSR (%s)' % exc, option=option,
                              fix='give a PEM or DER encoded certificate signing request')
    blocks = _pem_blocks(raw)
    for label, block in blocks:
        if label in _CSR_LABELS:
            if label != 'CERTIFICATE REQUEST':
                block = block.replace(label, 'CERTIFICATE REQUEST')
            try:
                return lib.x509.load_pem_x509_csr(block.encode('ascii'))
            except (ValueError, TypeError, UnicodeError) as exc:
                raise ConfigError('holds a malformed PEM CSR (%s)' % exc, option=option,
                                  fix='give an intact PEM encoded certificate signing request')
    labels = [label for label, _block in blocks]
    what = _describe_labels(labels) if labels else 'no complete PEM block'
    raise ConfigError('holds %s, not a certificate signing request' % what, option=option,
                      fix='give a PEM encoded CSR (-----BEGIN CERTIFICATE REQUEST-----)')


def verify_csr_signature(csr, option='csr'):
    """True when the CSR's self-signature verifies; ConfigError otherwise."""
    csr = load_csr(csr, option=option)
    try:
        valid = csr.is_signature_valid
    except Exception as exc:  # unsupported algorithm and the like
        raise ConfigError('CSR signature does not verify (%s)' % exc, option=option,
                          fix='create the CSR again with its own private key')
    if not valid:
        raise ConfigError('CSR signature does not verify (the CSR was altered or signed with another key)',
                          option=option, fix='create the CSR again with its own private key')
    return True


def load_private_key(data, passphrase=None, option='privatekey_path',
                     passphrase_option='privatekey_passphrase'):
    """A private key from PEM (PKCS#8 or traditional, encrypted or not) or DER bytes.

    Wrong or missing passphrase, a file that holds something else (a certificate, a CSR)
    or garbage raise ConfigError naming ``option``.  Messages never hold key material."""
    lib = _c()
    ser = lib.serialization
    if data is None or (isinstance(data, (str, bytes)) and not data.strip()):
        raise ConfigError('is empty, not a private key', option=option,
                          fix='point it to a PEM private key, or remove the empty file so a key is created')
    raw = _to_bytes(data)
    pw = None
    if passphrase not in (None, ''):
        pw = _to_bytes(passphrase)
    if _looks_like_pem(raw):
        blocks = _pem_blocks(raw)
        keys = [block for label, block in blocks if label in _KEY_LABELS]
        if not keys:
            labels = [label for label, _block in blocks]
            if 'OPENSSH PRIVATE KEY' in labels:
                raise ConfigError('holds an OpenSSH private key, which is not supported for TLS here',
                                  option=option, fix='give a PEM (PKCS#8) private key')
            what = _describe_labels(labels) if labels else 'no complete PEM block'
            raise ConfigError('holds %s, not a private key' % what, option=option,
                              fix='point it to the private key file (-----BEGIN PRIVATE KEY-----), '
                                  'not to a certificate or CSR')
        raw = keys[0].encode('ascii')
        loader = ser.load_pem_private_key
    else:
        loader = ser.load_der_private_key
    try:
        return loader(raw, password=pw)
    except TypeError as exc:
        text = str(exc)
        if 'not encrypted' in text:
            raise ConfigError('a passphrase was given but the private key is not encrypted', option=option,
                              fix='remove %s, or replace the key (rotate_key) to have it encrypted'
                                  % passphrase_option)
        if 'encrypted' in text:
            raise ConfigError('the private key is encrypted and no passphrase was given', option=option,
                              fix='give its passphrase in %s' % passphrase_option)
        raise ConfigError('cannot load the private key (%s)' % text, option=option,
                          fix='give a PEM (PKCS#8 or traditional) private key')
    except ValueError as exc:
        text = str(exc)
        low = text.lower()
        encrypted = b'ENCRYPTED' in raw[:200] or (not _looks_like_pem(raw) and pw is not None)
        # a wrong passphrase on a traditional (CBC) key can decrypt to garbage with valid padding:
        # then the parser, not the cipher, fails; with a passphrase and an encrypted key it is
        # still the passphrase that is wrong
        if pw is not None and ('decrypt' in low or 'password' in low or encrypted):
            raise ConfigError('cannot decrypt the private key: wrong passphrase', option=option,
                              fix='give the right passphrase in %s' % passphrase_option)
        if not _looks_like_pem(_to_bytes(data)):
            raise ConfigError('is not a private key (neither PEM nor DER)', option=option,
                              fix='point it to a PEM private key file')
        raise ConfigError('holds a malformed or unsupported private key (%s)' % text.split('. ', maxsplit=1)[0],
                          option=option, fix='point it to an intact PEM private key file')
    except Exception as exc:  # pragma: no cover - unsupported algorithm etc.
        raise ConfigError('cannot load the private key (%s)' % type(exc).__name__, option=option,
                          fix='give a PEM (PKCS#8) RSA, ECDSA or Ed25519 private key')


# ----------------------------------------------------------------------------- keys

def _public_key(obj):
    """Public key of a public key, private key, certificate or CSR."""
    lib = _c()
    public_types = (lib.rsa.RSAPublicKey, lib.ec.EllipticCurvePublicKey, lib.ed25519.Ed25519PublicKey,
                    lib.ed448.Ed448PublicKey, lib.dsa.DSAPublicKey)
    if isinstance(obj, public_types):
        return obj
    if hasattr(obj, 'public_key'):
        return obj.public_key()
    raise TypeError('no public key in %s' % type(obj).__name__)


def public_key_der(obj):
    lib = _c()
    return _public_key(obj).public_bytes(lib.serialization.Encoding.DER,
                                         lib.serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_fingerprint(public_key):
    """Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo (also takes a private key,
    certificate or CSR)."""
    return hashlib.sha256(public_key_der(public_key)).hexdigest()


def key_matches_cert(private_key, cert):
    """True when ``private_key`` (or a public key) belongs to ``cert`` (or a CSR)."""
    try:
        return public_key_der(private_key) == public_key_der(cert)
    except (TypeError, ValueError):
        return False


def key_description(public_key):
    """``{'type': 'ECDSA', 'curve': 'secp256r1', 'size': 256}``, ``{'type': 'RSA', 'size': 2048}``,
    ``{'type': 'Ed25519', 'size': 256}`` (also takes a private key, certificate or CSR)."""
    lib = _c()
    pub = _public_key(public_key)
    if isinstance(pub, lib.rsa.RSAPublicKey):
        return {'type': 'RSA', 'size': pub.key_size}
    if isinstance(pub, lib.ec.EllipticCurvePublicKey):
        return {'type': 'ECDSA', 'curve': pub.curve.name, 'size': pub.curve.key_size}
    if isinstance(pub, lib.ed25519.Ed25519PublicKey):
        return {'type': 'Ed25519', 'size': 256}
    if isinstance(pub, lib.ed448.Ed448PublicKey):
        return {'type': 'Ed448', 'size': 456}
    if isinstance(pub, lib.dsa.DSAPublicKey):
        return {'type': 'DSA', 'size': pub.key_size}
    return {'type': type(pub).__name__}


def public_key_facts(obj):
    """``key_description`` plus ``fingerprint`` (``public_key_fingerprint``)."""
    facts = key_description(obj)
    facts['fingerprint'] = public_key_fingerprint(obj)
    return facts


KEY_TYPES = ('RSA', 'ECDSA', 'Ed25519')
RSA_SIZES = (2048, 3072, 4096)
EC_CURVES = ('secp256r1', 'secp384r1')
_CURVE_ALIASES = {'secp256r1': 'secp256r1', 'prime256v1': 'secp256r1', 'p256': 'secp256r1',
                  'secp384r1': 'secp384r1', 'p384': 'secp384r1'}


def normalize_curve(curve, option='privatekey_curve'):
    """``secp256r1``/``prime256v1``/``P-256`` -> ``secp256r1``; ConfigError for others."""
    key = re.sub(r'[^a-z0-9]', '', str(curve or '').lower())
    if key not in _CURVE_ALIASES:
        raise ConfigError('curve %r is not supported' % (curve,), option=option,
                          fix='use one of %s' % ', '.join(EC_CURVES))
    return _CURVE_ALIASES[key]


def normalize_key_type(key_type, option='privatekey_type'):
    key = str(key_type or '').strip().lower()
    for name in KEY_TYPES:
        if key == name.lower() or (key in ('ec', 'ecc') and name == 'ECDSA'):
            return name
    raise ConfigError('key type %r is not supported' % (key_type,), option=option,
                      fix='use one of %s' % ', '.join(KEY_TYPES))


def generate_private_key(key_type='ECDSA', size=None, curve=None, type_option='privatekey_type',
                         size_option='privatekey_size', curve_option='privatekey_curve'):
    """A new RSA (2048/3072/4096), ECDSA (secp256r1/secp384r1) or Ed25519 private key."""
    lib = _c()
    key_type = normalize_key_type(key_type, option=type_option)
    if key_type == 'RSA':
        size = 2048 if size is None else size
        try:
            size = int(size)
        except (TypeError, ValueError):
            size = None
        if size not in RSA_SIZES:
            raise ConfigError('RSA key size %s is not supported' % (size,), option=size_option,
                              fix='use one of %s' % ', '.join(str(s) for s in RSA_SIZES))
        return lib.rsa.generate_private_key(public_exponent=65537, key_size=size)
    if key_type == 'ECDSA':
        curve = normalize_curve(curve or 'secp256r1', option=curve_option)
        curve_cls = {'secp256r1': lib.ec.SECP256R1, 'secp384r1': lib.ec.SECP384R1}[curve]
        return lib.ec.generate_private_key(curve_cls())
    return lib.ed25519.Ed25519PrivateKey.generate()


def private_key_to_pem(private_key, passphrase=None):
    """PKCS#8 PEM bytes, encrypted with the best available cipher when a passphrase is given."""
    lib = _c()
    ser = lib.serialization
    if passphrase not in (None, ''):
        enc = ser.BestAvailableEncryption(_to_bytes(passphrase))
    else:
        enc = ser.NoEncryption()
    return private_key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, enc)


def hash_for_key(private_key):
    """Signature hash that suits the key: SHA-384 for P-384, none for EdDSA, else SHA-256."""
    lib = _c()
    if isinstance(private_key, (lib.ed25519.Ed25519PrivateKey, lib.ed448.Ed448PrivateKey)):
        return None
    if isinstance(private_key, lib.ec.EllipticCurvePrivateKey):
        if private_key.curve.key_size >= 512:
            return lib.hashes.SHA512()
        if private_key.curve.key_size >= 384:
            return lib.hashes.SHA384()
    return lib.hashes.SHA256()


# ----------------------------------------------------------------------------- serial, fingerprints

def serial_hex(cert):
    """Serial number as upper-case hex, no colons, even length (also takes an int)."""
    number = cert if isinstance(cert, int) else cert.serial_number
    text = '%X' % number
    if len(text) % 2:
        text = '0' + text
    return text


_HASHES = {'sha1': 'SHA1', 'sha224': 'SHA224', 'sha256': 'SHA256', 'sha384': 'SHA384',
           'sha512': 'SHA512', 'md5': 'MD5'}


def fingerprint(cert, algorithm='sha256'):
    """Certificate fingerprint, colon-separated upper-case hex (``AB:CD:...``)."""
    lib = _c()
    name = re.sub(r'[^a-z0-9]', '', str(algorithm).lower())
    if name not in _HASHES:
        raise ConfigError('unknown hash algorithm %r' % (algorithm,), option='algorithm',
                          fix='use one of %s' % ', '.join(sorted(_HASHES)))
    return _hex_colon(cert.fingerprint(getattr(lib.hashes, _HASHES[name])()))


# ----------------------------------------------------------------------------- subject alternative names

_DNS_LABEL = re.compile(r'^(?!-)[a-z0-9_-]{1,63}(?<!-)$')


def _normalize_dns(value, option):
    name = value.strip().rstrip('.')
    if not name:
        raise ConfigError('empty DNS name', option=option, fix="write names like 'DNS:www.example.com'")
    try:
        name.encode('ascii')
    except UnicodeError:
        try:
            name = name.encode('idna').decode('ascii')
        except UnicodeError:
            raise ConfigError('%r is not a valid internationalized DNS name' % (value,), option=option,
                              fix='give the name in its A-label (xn--) form')
    name = name.lower()
    try:
        ipaddress.ip_address(name.strip('[]'))
        raise ConfigError('%r is an IP address, not a DNS name' % (value,), option=option,
                          fix="write it as 'IP:%s'" % name.strip('[]'))
    except ValueError:
        pass
    labels = name.split('.')
    if labels[0] == '':
        labels = labels[1:]          # '.example.com' (name constraints)
    if labels and labels[0] == '*':
        labels = labels[1:]          # wildcard
    if not labels or len(name) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise ConfigError('%r is not a valid DNS name' % (value,), option=option,
                          fix="write names like 'DNS:www.example.com' or 'DNS:*.example.com'")
    return name


def _parse_ip(value, option):
    text = value.strip()
    try:
        if '/' in text:
            return ipaddress.ip_network(text, strict=True)
        return ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError('%r is not a valid IP address' % (value,), option=option,
                          fix="write addresses like 'IP:192.0.2.10' or 'IP:2001:db8::10'")


def parse_san(strings, option='subject_alt_names'):
    """``['DNS:www.example.com', 'IP:192.0.2.1', 'email:a@b', 'URI:https://x', 'example.org']``
    -> list of ``x509.GeneralName`` (duplicates dropped, order kept).

    A bare value is a DNS name (or an IP address when it parses as one).  Prefixes are
    case-insensitive.  ``IP:`` also takes a network (``IP:10.0.0.0/8``) for name
    constraints.  Anything else raises ConfigError naming ``option``."""
    lib = _c()
    x509 = lib.x509
    if strings is None:
        return []
    if isinstance(strings, (str, bytes)):
        strings = [s for s in re.split(r'[,\s]+', _to_text(strings)) if s]
    names = []
    seen = set()
    for item in strings:
        if isinstance(item, x509.GeneralName):
            general = item
        else:
            if not isinstance(item, str):
                raise ConfigError('%r is not a string' % (item,), option=option,
                                  fix="write each entry like 'DNS:www.example.com'")
            text = item.strip()
            prefix, sep, rest = text.partition(':')
            kind = prefix.strip().lower() if sep else ''
            if kind in ('dns',):
                general = x509.DNSName(_normalize_dns(rest, option))
            elif kind in ('ip', 'ip address', 'ipaddress'):
                general = x509.IPAddress(_parse_ip(rest, option))
            elif kind in ('email', 'rfc822', 'rfc822name'):
                addr = rest.strip()
                if '@' not in addr.strip('@') and not addr.startswith('.'):
                    raise ConfigError('%r is not an e-mail address' % (item,), option=option,
                                      fix="write 'email:user@example.com'")
                general = x509.RFC822Name(addr)
            elif kind in ('uri', 'url'):
                uri = rest.strip()
                if not re.match(r'^[A-Za-z][A-Za-z0-9+.-]*:', uri):
                    raise ConfigError('%r is not an absolute URI' % (item,), option=option,
                                      fix="write 'URI:spiffe://example.org/service'")
                general = x509.UniformResourceIdentifier(uri)
            elif kind in ('rid',):
                try:
                    general = x509.RegisteredID(x509.ObjectIdentifier(rest.strip()))
                except ValueError:
                    raise ConfigError('%r is not a dotted OID' % (item,), option=option,
                                      fix="write 'RID:1.2.3.4'")
            elif kind in ('dirname',):
                general = x509.DirectoryName(_parse_rfc4514(rest.strip(), option))
            elif not sep:
                try:
                    general = x509.IPAddress(ipaddress.ip_address(text))
                except ValueError:
                    general = x509.DNSName(_normalize_dns(text, option))
            else:
                try:
                    general = x509.IPAddress(ipaddress.ip_address(text))
                except ValueError:
                    raise ConfigError('%r has an unknown prefix %r' % (item, prefix), option=option,
                                      fix="use one of the prefixes 'DNS:', 'IP:', 'email:', 'URI:'")
        key = _general_name_string(general)
        if key in seen:
            continue
        seen.add(key)
        names.append(general)
    return names


def _general_name_string(general):
    lib = _c()
    x509 = lib.x509
    if isinstance(general, x509.DNSName):
        return 'DNS:' + general.value.lower()
    if isinstance(general, x509.IPAddress):
        return 'IP:' + str(general.value)
    if isinstance(general, x509.RFC822Name):
        return 'email:' + general.value
    if isinstance(general, x509.UniformResourceIdentifier):
        return 'URI:' + general.value
    if isinstance(general, x509.RegisteredID):
        return 'RID:' + general.value.dotted_string
    if isinstance(general, x509.DirectoryName):
        return 'dirName:' + general.value.rfc4514_string()
    if isinstance(general, x509.OtherName):
        return 'otherName:%s;%s' % (general.type_id.dotted_string,
                                    binascii.hexlify(general.value).decode('ascii'))
    return '%s:%r' % (type(general).__name__, getattr(general, 'value', general))


def _extension(obj, ext_class):
    """Value of the extension of class ``ext_class`` or None."""
    lib = _c()
    try:
        return obj.extensions.get_extension_for_class(ext_class).value
    except lib.x509.ExtensionNotFound:
        return None
    except ValueError as exc:
        raise ConfigError('has malformed extensions (%s)' % exc, option='certificate',
                          fix='re-issue the certificate or CSR')


def _extension_critical(obj, ext_class):
    lib = _c()
    try:
        return obj.extensions.get_extension_for_class(ext_class).critical
    except (lib.x509.ExtensionNotFound, ValueError):
        return None


def san_list(cert_or_csr):
    """SANs of a certificate or CSR in canonical string form (``DNS:`` names lower case),
    in the order they appear."""
    lib = _c()
    value = _extension(cert_or_csr, lib.x509.SubjectAlternativeName)
    if value is None:
        return []
    return [_general_name_string(general) for general in value]


def normalize_san_strings(strings, option='subject_alt_names'):
    """Canonical strings of user SAN input (validated by ``parse_san``)."""
    return [_general_name_string(general) for general in parse_san(strings, option=option)]


# ----------------------------------------------------------------------------- names

#: (long name, short names, dotted OID) in the canonical order of a DN (most significant first).
NAME_ATTRIBUTES = (
    ('domainComponent', ('DC',), '0.9.2342.19200300.100.1.25'),
    ('countryName', ('C',), '2.5.4.6'),
    ('stateOrProvinceName', ('ST', 'S'), '2.5.4.8'),
    ('localityName', ('L',), '2.5.4.7'),
    ('streetAddress', ('street',), '2.5.4.9'),
    ('postalCode', (), '2.5.4.17'),
    ('jurisdictionCountryName', (), '1.3.6.1.4.1.311.60.2.1.3'),
    ('jurisdictionStateOrProvinceName', (), '1.3.6.1.4.1.311.60.2.1.2'),
    ('jurisdictionLocalityName', (), '1.3.6.1.4.1.311.60.2.1.1'),
    ('businessCategory', (), '2.5.4.15'),
    ('organizationName', ('O',), '2.5.4.10'),
    ('organizationIdentifier', (), '2.5.4.97'),
    ('organizationalUnitName', ('OU',), '2.5.4.11'),
    ('title', (), '2.5.4.12'),
    ('commonName', ('CN',), '2.5.4.3'),
    ('serialNumber', (), '2.5.4.5'),
    ('surname', ('SN',), '2.5.4.4'),
    ('givenName', ('GN',), '2.5.4.42'),
    ('initials', (), '2.5.4.43'),
    ('generationQualifier', (), '2.5.4.44'),
    ('pseudonym', (), '2.5.4.65'),
    ('dnQualifier', (), '2.5.4.46'),
    ('userId', ('UID',), '0.9.2342.19200300.100.1.1'),
    ('emailAddress', ('E', 'email'), '1.2.840.113549.1.9.1'),
)

_NAME_BY_KEY = {}
_NAME_BY_OID = {}
_NAME_RANK = {}
for _rank, (_long, _shorts, _dotted) in enumerate(NAME_ATTRIBUTES):
    _NAME_BY_OID[_dotted] = _long
    _NAME_RANK[_dotted] = _rank
    for _key in (_long,) + _shorts:
        _NAME_BY_KEY[_key.lower()] = (_long, _dotted)
del _rank, _long, _shorts, _dotted, _key


def _attribute_oid(key, option):
    lib = _c()
    text = str(key).strip()
    found = _NAME_BY_KEY.get(text.lower())
    if found:
        return lib.x509.ObjectIdentifier(found[1])
    if re.match(r'^\d+(\.\d+)+$', text):
        return lib.x509.ObjectIdentifier(text)
    raise ConfigError('unknown subject attribute %r' % (key,), option=option,
                      fix='use names like commonName/CN, organizationName/O, organizationalUnitName/OU, '
                          'countryName/C, stateOrProvinceName/ST, localityName/L, emailAddress, '
                          'or a dotted OID')


def name_to_dict(name):
    """``x509.Name`` -> ``{'commonName': 'x', 'organizationName': 'y', ...}``.  Attributes that
    occur more than once (e.g. two OUs) become lists, in order."""
    out = {}
    for attribute in name:
        dotted = attribute.oid.dotted_string
        key = _NAME_BY_OID.get(dotted) or _oid_name(attribute.oid)
        value = attribute.value
        if isinstance(value, bytes):
            value = binascii.hexlify(value).decode('ascii')
        if key in out:
            if not isinstance(out[key], list):
                out[key] = [out[key]]
            out[key].append(value)
        else:
            out[key] = value
    return out


def _name_pairs(subject, option):
    """Pairs (key, value) of a subject dict or a list of one-key dicts (ordered)."""
    if isinstance(subject, dict):
        return list(subject.items()), False
    if isinstance(subject, (list, tuple)):
        pairs = []
        for item in subject:
            if not isinstance(item, dict):
                raise ConfigError('entries of an ordered subject must be one-key dicts, got %r' % (item,),
                                  option=option, fix="write e.g. [{'CN': 'www.example.com'}, {'O': 'Example'}]")
            pairs.extend(item.items())
        return pairs, True
    raise ConfigError('must be a dict of subject attributes', option=option,
                      fix="write e.g. {'commonName': 'www.example.com', 'organizationName': 'Example'}")


def _parse_rfc4514(text, option):
    """A small RFC 4514 reader for ``dirName:`` SANs: ``CN=x,O=y`` (no escaped commas)."""
    lib = _c()
    attrs = []
    for part in reversed([p for p in re.split(r'(?<!\\),', text) if p.strip()]):
        key, sep, value = part.partition('=')
        if not sep:
            raise ConfigError('%r is not an RFC 4514 name' % (text,), option=option,
                              fix="write e.g. 'dirName:CN=Example,O=Example Org'")
        attrs.append(lib.x509.NameAttribute(_attribute_oid(key, option), value.replace('\\,', ',').strip()))
    return lib.x509.Name(attrs)


def dict_to_name(subject, option='subject'):
    """Subject dict (long names, short names or dotted OIDs as keys; a value may be a list
    for repeated attributes) -> ``x509.Name`` in canonical DN order (C, ST, L, O, OU, CN, ...).
    A list of one-key dicts keeps the order given.  None and empty values are skipped."""
    lib = _c()
    x509 = lib.x509
    if subject is None:
        return x509.Name([])
    pairs, ordered = _name_pairs(subject, option)
    attrs = []
    for key, value in pairs:
        oid = _attribute_oid(key, '%s' % option)
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is None or (isinstance(item, str) and not item.strip()):
                continue
            text = str(item).strip() if not isinstance(item, str) else item.strip()
            try:
                attrs.append(x509.NameAttribute(oid, text))
            except ValueError as exc:
                raise ConfigError('%s=%r is not allowed (%s)' % (key, text, exc), option=option,
                                  fix='countryName must be a two-letter ISO 3166 code such as DE or US'
                                  if oid.dotted_string == '2.5.4.6' else 'give a valid value')
    if not ordered:
        attrs = sorted(attrs, key=lambda a: _NAME_RANK.get(a.oid.dotted_string, len(NAME_ATTRIBUTES)))
    return x509.Name(attrs)


def normalize_subject(subject, option='subject'):
    """The canonical dict form of a user subject (``name_to_dict(dict_to_name(...))``)."""
    return name_to_dict(dict_to_name(subject, option=option))


# ----------------------------------------------------------------------------- key usage

KEY_USAGES = (
    ('digitalSignature', 'digital_signature'),
    ('nonRepudiation', 'content_commitment'),
    ('keyEncipherment', 'key_encipherment'),
    ('dataEncipherment', 'data_encipherment'),
    ('keyAgreement', 'key_agreement'),
    ('keyCertSign', 'key_cert_sign'),
    ('cRLSign', 'crl_sign'),
    ('encipherOnly', 'encipher_only'),
    ('decipherOnly', 'decipher_only'),
)
_KU_ALIASES = {'contentcommitment': 'nonRepudiation', 'certificatesign': 'keyCertSign',
               'certsign': 'keyCertSign', 'crlsign': 'cRLSign'}

EXTENDED_KEY_USAGES = (
    ('serverAuth', '1.3.6.1.5.5.7.3.1', ('tlswebserverauthentication',)),
    ('clientAuth', '1.3.6.1.5.5.7.3.2', ('tlswebclientauthentication',)),
    ('codeSigning', '1.3.6.1.5.5.7.3.3', ()),
    ('emailProtection', '1.3.6.1.5.5.7.3.4', ('emailprotection', 'smime')),
    ('ipsecEndSystem', '1.3.6.1.5.5.7.3.5', ()),
    ('ipsecTunnel', '1.3.6.1.5.5.7.3.6', ()),
    ('ipsecUser', '1.3.6.1.5.5.7.3.7', ()),
    ('timeStamping', '1.3.6.1.5.5.7.3.8', ()),
    ('OCSPSigning', '1.3.6.1.5.5.7.3.9', ()),
    ('ipsecIKE', '1.3.6.1.5.5.7.3.17', ()),
    ('msSmartcardLogin', '1.3.6.1.4.1.311.20.2.2', ('smartcardlogon',)),
    ('anyExtendedKeyUsage', '2.5.29.37.0', ('any',)),
)
_EKU_BY_OID = dict((dotted, name) for name, dotted, _aliases in EXTENDED_KEY_USAGES)


def _norm_token(text):
    return re.sub(r'[^a-z0-9]', '', str(text).lower())


def normalize_key_usage(names, option='key_usage'):
    """``['Digital Signature', 'key_encipherment']`` -> ``['digitalSignature', 'keyEncipherment']``
    (canonical order, duplicates dropped)."""
    if not names:
        return []
    wanted = set()
    for name in names:
        token = _norm_token(name)
        match = _KU_ALIASES.get(token)
        if match is None:
            for canonical, _attr in KEY_USAGES:
                if token == canonical.lower():
                    match = canonical
        if match is None:
            raise ConfigError('unknown key usage %r' % (name,), option=option,
                              fix='use %s' % ', '.join(k for k, _a in KEY_USAGES))
        wanted.add(match)
    return [canonical for canonical, _attr in KEY_USAGES if canonical in wanted]


def key_usage_extension(names, option='key_usage'):
    """``x509.KeyUsage`` of key usage names (see ``normalize_key_usage``), or None."""
    lib = _c()
    canonical = normalize_key_usage(names, option=option)
    if not canonical:
        return None
    flags = dict((attr, canonical_name in canonical) for canonical_name, attr in KEY_USAGES)
    if (flags['encipher_only'] or flags['decipher_only']) and not flags['key_agreement']:
        raise ConfigError('encipherOnly and decipherOnly need keyAgreement', option=option,
                          fix='add keyAgreement or drop encipherOnly/decipherOnly')
    return lib.x509.KeyUsage(**flags)


def _key_usage_names(value):
    names = []
    for canonical, attr in KEY_USAGES:
        try:
            if getattr(value, attr):
                names.append(canonical)
        except ValueError:  # encipher_only/decipher_only without key_agreement
            pass
    return names


def normalize_extended_key_usage(names, option='extended_key_usage'):
    """``['TLS Web Server Authentication', 'clientAuth', '1.2.3.4']`` -> canonical names
    (or dotted OIDs for unknown ones), order kept, duplicates dropped."""
    out = []
    for name in names or []:
        text = str(name).strip()
        token = _norm_token(text)
        match = None
        for canonical, dotted, aliases in EXTENDED_KEY_USAGES:
            if token == canonical.lower() or token in aliases or text == dotted:
                match = canonical
        if match is None and re.match(r'^\d+(\.\d+)+$', text):
            match = text
        if match is None:
            raise ConfigError('unknown extended key usage %r' % (name,), option=option,
                              fix='use %s, or a dotted OID' % ', '.join(n for n, _d, _a in EXTENDED_KEY_USAGES))
        if match not in out:
            out.append(match)
    return out


def extended_key_usage_extension(names, option='extended_key_usage'):
    """``x509.ExtendedKeyUsage`` of EKU names (see ``normalize_extended_key_usage``), or None."""
    lib = _c()
    canonical = normalize_extended_key_usage(names, option=option)
    if not canonical:
        return None
    by_name = dict((name, dotted) for name, dotted, _aliases in EXTENDED_KEY_USAGES)
    return lib.x509.ExtendedKeyUsage([lib.x509.ObjectIdentifier(by_name.get(n, n)) for n in canonical])


def _eku_names(value):
    return [_EKU_BY_OID.get(o.dotted_string, o.dotted_string) for o in value]


# ----------------------------------------------------------------------------- CSR building

def build_csr(private_key, subject=None, subject_alt_names=None, key_usage=None, extended_key_usage=None,
              subject_option='subject', san_option='subject_alt_names', ku_option='key_usage',
              eku_option='extended_key_usage'):
    """A CSR signed with ``private_key``.  ``subject`` is an ``x509.Name`` or a subject dict;
    SANs are strings or GeneralNames; key usage critical, EKU not; the SAN extension is
    critical when the subject is empty (RFC 5280 4.2.1.6)."""
    lib = _c()
    x509 = lib.x509
    name = subject if isinstance(subject, x509.Name) else dict_to_name(subject, option=subject_option)
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    sans = parse_san(subject_alt_names, option=san_option)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=len(name) == 0)
    ku = key_usage_extension(key_usage, option=ku_option)
    if ku is not None:
        builder = builder.add_extension(ku, critical=True)
    eku = extended_key_usage_extension(extended_key_usage, option=eku_option)
    if eku is not None:
        builder = builder.add_extension(eku, critical=False)
    return builder.sign(private_key, hash_for_key(private_key))


# ----------------------------------------------------------------------------- facts

def _days(delta):
    return round(delta.total_seconds() / 86400.0, 2)


def _aia(cert):
    lib = _c()
    value = _extension(cert, lib.x509.AuthorityInformationAccess)
    ocsp, issuers = [], []
    for desc in value or []:
        if not isinstance(desc.access_location, lib.x509.UniformResourceIdentifier):
            continue
        if desc.access_method == lib.oid.AuthorityInformationAccessOID.OCSP:
            ocsp.append(desc.access_location.value)
        elif desc.access_method == lib.oid.AuthorityInformationAccessOID.CA_ISSUERS:
            issuers.append(desc.access_location.value)
    return ocsp, issuers


def _common_extension_facts(obj):
    lib = _c()
    x509 = lib.x509
    facts = {}
    bc = _extension(obj, x509.BasicConstraints)
    facts['is_ca'] = bool(bc.ca) if bc is not None else False
    facts['path_length'] = bc.path_length if bc is not None else None
    ku = _extension(obj, x509.KeyUsage)
    facts['key_usage'] = _key_usage_names(ku) if ku is not None else []
    facts['key_usage_critical'] = _extension_critical(obj, x509.KeyUsage)
    eku = _extension(obj, x509.ExtendedKeyUsage)
    facts['extended_key_usage'] = _eku_names(eku) if eku is not None else []
    facts['extended_key_usage_critical'] = _extension_critical(obj, x509.ExtendedKeyUsage)
    facts['subject_alt_names'] = san_list(obj)
    return facts


def cert_facts(cert, now=None):
    """Parsed facts of a certificate (object, PEM or DER), JSON-friendly.

    ``now`` (aware datetime or ISO string; default: the current time) drives ``days_left``
    and ``expired``."""
    lib = _c()
    x509 = lib.x509
    cert = load_certificate(cert)
    now = _as_utc(now) if now is not None else utcnow()
    start, end = not_before(cert), not_after(cert)
    facts = {
        'subject': name_to_dict(cert.subject),
        'subject_string': cert.subject.rfc4514_string(),
        'issuer': name_to_dict(cert.issuer),
        'issuer_string': cert.issuer.rfc4514_string(),
        'serial': serial_hex(cert),
        'serial_number': cert.serial_number,
        'not_before': iso8601(start),
        'not_after': iso8601(end),
        'days_left': _days(end - now),
        'lifetime_days': _days(end - start),
        'expired': now >= end,
        'not_yet_valid': now < start,
        'fingerprints': {'sha1': fingerprint(cert, 'sha1'), 'sha256': fingerprint(cert, 'sha256')},
        'public_key': public_key_facts(cert),
        'signature_algorithm': _oid_name(cert.signature_algorithm_oid),
        'version': cert.version.name,
        'self_signed': is_self_signed(cert),
    }
    facts.update(_common_extension_facts(cert))
    ski = _extension(cert, x509.SubjectKeyIdentifier)
    facts['subject_key_identifier'] = _hex_colon(ski.digest) if ski is not None else None
    aki = _extension(cert, x509.AuthorityKeyIdentifier)
    facts['authority_key_identifier'] = (_hex_colon(aki.key_identifier)
                                         if aki is not None and aki.key_identifier else None)
    facts['ocsp_uri'], facts['ca_issuers_uri'] = _aia(cert)
    return facts


def csr_facts(csr):
    """Parsed facts of a CSR (object, PEM or DER): subject, SANs, key usage, EKU, basic
    constraints, public key and whether its signature verifies."""
    csr = load_csr(csr)
    try:
        valid = bool(csr.is_signature_valid)
    except Exception:
        valid = False
    facts = {
        'subject': name_to_dict(csr.subject),
        'subject_string': csr.subject.rfc4514_string(),
        'public_key': public_key_facts(csr),
        'signature_valid': valid,
        'signature_algorithm': _oid_name(csr.signature_algorithm_oid),
    }
    facts.update(_common_extension_facts(csr))
    return facts


# ----------------------------------------------------------------------------- chains

def _verify_signature(cert, issuer):
    """True when ``issuer``'s key made ``cert``'s signature (``issuer`` may be ``cert``)."""
    lib = _c()
    if hasattr(cert, 'verify_directly_issued_by'):
        try:
            cert.verify_directly_issued_by(issuer)
            return True
        except (ValueError, TypeError, lib.InvalidSignature):
            return False
    if cert.issuer != issuer.subject:  # pragma: no cover - cryptography < 40
        return False
    pub = issuer.public_key()  # pragma: no cover
    try:  # pragma: no cover
        if isinstance(pub, lib.rsa.RSAPublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, lib.padding.PKCS1v15(),
                       cert.signature_hash_algorithm)
        elif isinstance(pub, lib.ec.EllipticCurvePublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, lib.ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(pub, (lib.ed25519.Ed25519PublicKey, lib.ed448.Ed448PublicKey)):
            pub.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
        return True
    except (lib.InvalidSignature, ValueError, TypeError):  # pragma: no cover
        return False


def is_issued_by(cert, issuer):
    """True when ``issuer`` is the issuer of ``cert`` (names match, signature verifies)."""
    return cert.issuer == issuer.subject and _verify_signature(cert, issuer)


def is_self_signed(cert):
    """Subject equals issuer and the certificate's own key verifies its signature."""
    return cert.subject == cert.issuer and _verify_signature(cert, cert)


def order_chain(leaf, others):
    """The issuers of ``leaf`` taken from ``others`` (certificates, PEM bundles or a mix),
    issuer first, root last; certificates that are not on the path (and duplicates) are
    dropped.  Returns ``x509.Certificate`` objects (``to_pem`` turns them into text)."""
    leaf = load_certificate(leaf, option='certificate')
    pool = []
    seen = set([fingerprint(leaf)])
    for cert in load_certificates(others, option='chain') if others else []:
        fp = fingerprint(cert)
        if fp not in seen:
            seen.add(fp)
            pool.append(cert)
    chain = []
    used = set()
    current = leaf
    while not is_self_signed(current):
        nxt = None
        for index, cand in enumerate(pool):
            if index not in used and is_issued_by(current, cand):
                nxt = index
                break
        if nxt is None:
            break
        used.add(nxt)
        current = pool[nxt]
        chain.append(current)
    return chain


def to_pem(obj):
    """PEM text of a certificate, CSR, public key, or a list of them (concatenated).
    PEM text passes through normalized."""
    lib = _c()
    ser = lib.serialization
    if obj is None:
        return None
    if isinstance(obj, (list, tuple)):
        return ''.join(to_pem(item) for item in obj)
    if isinstance(obj, (str, bytes)):
        return ''.join(split_pem(obj))
    if hasattr(obj, 'private_bytes'):
        raise TypeError('to_pem() does not serialize private keys; use private_key_to_pem()')
    if _is_certificate(obj) or _is_csr(obj):
        return obj.public_bytes(ser.Encoding.PEM).decode('ascii')
    try:
        return _public_key(obj).public_bytes(ser.Encoding.PEM,
                                             ser.PublicFormat.SubjectPublicKeyInfo).decode('ascii')
    except TypeError:
        raise TypeError('cannot turn %s into PEM' % type(obj).__name__)
