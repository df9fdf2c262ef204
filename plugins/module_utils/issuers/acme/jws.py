# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""JSON Web Signature for ACME (RFC 7515, RFC 7638, RFC 8555 section 6.2).

Flattened JSON serialization with ES256 / ES384 (ECDSA P-256 / P-384, raw ``r || s``),
RS256 (RSA PKCS#1 v1.5) and HS256 (the external account binding MAC).  cryptography is
imported lazily: the no-op path of a module never signs anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import hmac
import json

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError

#: (curve name, JWK crv, alg, hash, coordinate size in bytes)
EC_CURVES = {
    'secp256r1': ('P-256', 'ES256', 'sha256', 32),
    'secp384r1': ('P-384', 'ES384', 'sha384', 48),
}


def b64u(data):
    """base64url without padding (RFC 7515 section 2)."""
    if isinstance(data, str):
        data = data.encode('utf-8')
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def b64u_decode(text, option=None):
    """Decode base64url with or without padding; ConfigError naming ``option`` when invalid."""
    if isinstance(text, bytes):
        text = text.decode('ascii', 'replace')
    text = ''.join(str(text).split())
    try:
        return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ConfigError('is not valid base64url: %s' % exc, option=option,
                          fix='give the value exactly as the CA issued it (base64url)')


def json_bytes(obj):
    return json.dumps(obj, separators=(',', ':'), sort_keys=True).encode('utf-8')


def _int_bytes(value, size=None):
    size = size or max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(size, 'big')


def _crypto():
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
    except ImportError as exc:
        raise ConfigError('the Python library cryptography is required on the controller (%s)' % exc,
                          fix='install cryptography for the Python that runs Ansible')
    return hashes, serialization, ec, padding, rsa, utils


class AccountKey:
    """An account (or certificate) private key that signs JWS: ECDSA P-256/P-384 or RSA."""

    def __init__(self, private_key, option='account_key'):
        hashes, dummy, ec, dummy2, rsa, dummy3 = _crypto()
        self.key = private_key
        self.option = option
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            curve = private_key.curve.name
            if curve not in EC_CURVES:
                raise ConfigError('ECDSA curve %s is not usable for ACME' % curve, option=option,
                                  fix='use an ECDSA P-256 or P-384 key, or RSA (2048 bits or more)')
            self.kty = 'EC'
            self.crv, self.alg, hname, self.size = EC_CURVES[curve]
            self._hash = getattr(hashes, hname.upper())()
        elif isinstance(private_key, rsa.RSAPrivateKey):
            if private_key.key_size < 2048:
                raise ConfigError('RSA key of %d bits is too small' % private_key.key_size,
                                  option=option, fix='use an RSA key of 2048 bits or more')
            self.kty = 'RSA'
            self.alg = 'RS256'
            self._hash = hashes.SHA256()
        else:
            raise ConfigError('unsupported key type %s' % type(private_key).__name__, option=option,
                              fix='use an ECDSA P-256 or P-384 key, or RSA')

    @classmethod
    def from_pem(cls, data, passphrase=None, option='account_key'):
        dummy, serialization = _crypto()[:2]
        if isinstance(data, str):
            data = data.encode('utf-8')
        if isinstance(passphrase, str):
            passphrase = passphrase.encode('utf-8')
        try:
            key = serialization.load_pem_private_key(data, password=passphrase or None)
        except (ValueError, TypeError) as exc:
            raise ConfigError('cannot load the private key: %s' % exc, option=option,
                              fix='give an unencrypted PEM private key (ECDSA P-256/P-384 or RSA), '
                                  'or its passphrase')
        return cls(key, option=option)

    @classmethod
    def generate(cls, key_type='ec256'):
        dummy, dummy2, ec, dummy3, rsa, dummy4 = _crypto()
        if key_type == 'ec384':
            return cls(ec.generate_private_key(ec.SECP384R1()))
        if key_type.startswith('rsa'):
            bits = int(key_type[3:] or 2048)
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=bits))
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def private_pem(self):
        serialization = _crypto()[1]
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode('ascii')

    def jwk(self):
        """The public JWK with only the required members (RFC 7638 section 3.2)."""
        numbers = self.key.public_key().public_numbers()
        if self.kty == 'EC':
            return {'crv': self.crv, 'kty': 'EC', 'x': b64u(_int_bytes(numbers.x, self.size)),
                    'y': b64u(_int_bytes(numbers.y, self.size))}
        return {'e': b64u(_int_bytes(numbers.e)), 'kty': 'RSA', 'n': b64u(_int_bytes(numbers.n))}

    def thumbprint(self):
        return jwk_thumbprint(self.jwk())

    def sign(self, data):
        """The JWS signature of ``data`` (bytes): raw r||s for ECDSA, PKCS#1 v1.5 for RSA."""
        dummy, dummy2, ec, padding, dummy3, utils = _crypto()
        if self.kty == 'EC':
            der = self.key.sign(data, ec.ECDSA(self._hash))
            r, s = utils.decode_dss_signature(der)
            return _int_bytes(r, self.size) + _int_bytes(s, self.size)
        return self.key.sign(data, padding.PKCS1v15(), self._hash)


def jwk_thumbprint(jwk):
    """RFC 7638 SHA-256 thumbprint (base64url) of a public JWK."""
    required = {'EC': ('crv', 'kty', 'x', 'y'), 'RSA': ('e', 'kty', 'n'), 'oct': ('k', 'kty'),
                'OKP': ('crv', 'kty', 'x')}.get(jwk.get('kty'))
    if required is None:
        raise ValueError('unknown kty %r' % (jwk.get('kty'),))
    canonical = json_bytes({k: jwk[k] for k in required})
    return b64u(hashlib.sha256(canonical).digest())


def signing_input(protected_b64, payload_b64):
    return ('%s.%s' % (protected_b64, payload_b64)).encode('ascii')


def encode_payload(payload):
    """'' for POST-as-GET (payload None), else base64url of the JSON (or raw bytes)."""
    if payload is None:
        return ''
    if isinstance(payload, bytes):
        return b64u(payload)
    return b64u(json_bytes(payload))


def sign_jws(key, url, payload, nonce=None, kid=None, extra_protected=None):
    """A flattened JWS (dict) signed by ``key`` (AccountKey).  ``kid`` (account URL) or, when
    None, the JWK goes in the protected header (RFC 8555 section 6.2)."""
    protected = {'alg': key.alg, 'url': url}
    if nonce is not None:
        protected['nonce'] = nonce
    if kid:
        protected['kid'] = kid
    else:
        protected['jwk'] = key.jwk()
    protected.update(extra_protected or {})
    protected_b64 = b64u(json_bytes(protected))
    payload_b64 = encode_payload(payload)
    signature = key.sign(signing_input(protected_b64, payload_b64))
    return {'protected': protected_b64, 'payload': payload_b64, 'signature': b64u(signature)}


def hs256(key_bytes, data):
    return hmac.new(key_bytes, data, hashlib.sha256).digest()


def eab_jws(account_key, kid, hmac_key, url):
    """The externalAccountBinding object (RFC 8555 section 7.3.4): the account JWK signed with
    the CA's MAC key (base64url, as issued) under key id ``kid``."""
    key_bytes = b64u_decode(hmac_key, option='eab_hmac_key')
    if not key_bytes:
        raise ConfigError('is empty', option='eab_hmac_key', fix='give the HMAC key the CA issued')
    protected_b64 = b64u(json_bytes({'alg': 'HS256', 'kid': kid, 'url': url}))
    payload_b64 = b64u(json_bytes(account_key.jwk()))
    signature = hs256(key_bytes, signing_input(protected_b64, payload_b64))
    return {'protected': protected_b64, 'payload': payload_b64, 'signature': b64u(signature)}


def key_authorization(token, account_key):
    return '%s.%s' % (token, account_key.thumbprint())


def dns01_value(key_auth):
    return b64u(hashlib.sha256(key_auth.encode('ascii')).digest())
