# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""JWS, JWK thumbprint and EAB MAC against the RFC test vectors."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import jws

# RFC 7515 appendix A.1 (HS256)
A1_PROTECTED = 'eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9'
PAYLOAD = ('eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0'
           'cnVlfQ')
A1_KEY = 'AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow'
A1_SIG = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'
# RFC 7515 appendix A.3 (ES256)
A3_PROTECTED = 'eyJhbGciOiJFUzI1NiJ9'
A3_X = 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU'
A3_Y = 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0'
A3_D = 'jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI'
A3_SIG = 'DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q'
# RFC 7638 section 3.1
RFC7638_N = ('0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXj'
             'BZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZ'
             'gnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw'
             '0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw')


def _int(b64):
    return int.from_bytes(jws.b64u_decode(b64), 'big')


def _a3_key():
    public = ec.EllipticCurvePublicNumbers(_int(A3_X), _int(A3_Y), ec.SECP256R1())
    return ec.EllipticCurvePrivateNumbers(_int(A3_D), public).private_key()


def _verify_es(key, signature, data, hash_alg, size):
    r = int.from_bytes(signature[:size], 'big')
    s = int.from_bytes(signature[size:], 'big')
    key.public_key().verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(hash_alg))


def test_hs256_matches_rfc7515_a1_exactly():
    signature = jws.hs256(jws.b64u_decode(A1_KEY), jws.signing_input(A1_PROTECTED, PAYLOAD))
    assert jws.b64u(signature) == A1_SIG


def test_eab_jws_structure_and_mac():
    account = jws.AccountKey(_a3_key())
    eab = jws.eab_jws(account, 'kid-1', A1_KEY, 'https://ca.test/new-account')
    header = json.loads(jws.b64u_decode(eab['protected']))
    assert header == {'alg': 'HS256', 'kid': 'kid-1', 'url': 'https://ca.test/new-account'}
    assert json.loads(jws.b64u_decode(eab['payload'])) == account.jwk()
    expected = jws.hs256(jws.b64u_decode(A1_KEY), jws.signing_input(eab['protected'], eab['payload']))
    assert eab['signature'] == jws.b64u(expected)


def test_eab_bad_key_names_option():
    account = jws.AccountKey(_a3_key())
    with pytest.raises(ConfigError) as info:
        jws.eab_jws(account, 'kid', '', 'https://ca.test/x')
    assert info.value.option == 'eab_hmac_key'


def test_es256_rfc7515_a3_signature_verifies_and_ours_too():
    key = _a3_key()
    data = jws.signing_input(A3_PROTECTED, PAYLOAD)
    _verify_es(key, jws.b64u_decode(A3_SIG), data, hashes.SHA256(), 32)
    account = jws.AccountKey(key)
    assert account.alg == 'ES256'
    assert account.jwk() == {'crv': 'P-256', 'kty': 'EC', 'x': A3_X, 'y': A3_Y}
    ours = account.sign(data)
    assert len(ours) == 64
    _verify_es(key, ours, data, hashes.SHA256(), 32)


def test_sign_jws_signing_input_and_header():
    account = jws.AccountKey(_a3_key())
    body = jws.sign_jws(account, 'https://ca.test/acct', {'a': 1}, nonce='n1', kid='https://ca.test/acct/1')
    header = json.loads(jws.b64u_decode(body['protected']))
    assert header == {'alg': 'ES256', 'kid': 'https://ca.test/acct/1', 'nonce': 'n1',
                      'url': 'https://ca.test/acct'}
    data = jws.signing_input(body['protected'], body['payload'])
    _verify_es(account.key, jws.b64u_decode(body['signature']), data, hashes.SHA256(), 32)
    as_get = jws.sign_jws(account, 'https://ca.test/order', None, nonce='n2')
    assert as_get['payload'] == ''
    assert 'jwk' in json.loads(jws.b64u_decode(as_get['protected']))


def test_es384_and_rs256():
    p384 = jws.AccountKey.generate('ec384')
    assert p384.alg == 'ES384' and p384.jwk()['crv'] == 'P-384' and len(p384.jwk()['x']) == 64
    data = b'abc.def'
    _verify_es(p384.key, p384.sign(data), data, hashes.SHA384(), 48)
    rsa_key = jws.AccountKey.generate('rsa2048')
    assert rsa_key.alg == 'RS256'
    rsa_key.key.public_key().verify(rsa_key.sign(data), data, padding.PKCS1v15(), hashes.SHA256())
    again = jws.AccountKey.from_pem(rsa_key.private_pem())
    assert again.jwk() == rsa_key.jwk()


def test_rfc7638_thumbprint_exact():
    jwk = {'kty': 'RSA', 'n': RFC7638_N, 'e': 'AQAB', 'alg': 'RS256', 'kid': '2011-04-29'}
    assert jws.jwk_thumbprint(jwk) == 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs'


def test_key_authorization_and_dns_value():
    account = jws.AccountKey(_a3_key())
    key_auth = jws.key_authorization('tok', account)
    assert key_auth == 'tok.' + account.thumbprint()
    assert len(jws.dns01_value(key_auth)) == 43


def test_unsupported_keys_refused():
    with pytest.raises(ConfigError) as info:
        jws.AccountKey(ec.generate_private_key(ec.SECP521R1()))
    assert info.value.option == 'account_key'
    with pytest.raises(ConfigError):
        jws.AccountKey.from_pem('not a key', option='account_key_content')
