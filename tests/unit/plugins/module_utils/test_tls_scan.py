# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tls_scan without a network: RFC 6125 name matching, the endpoint plan and its allow-list
(refusals happen in ``plan``, before any socket exists), and the LDAP StartTLS BER."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils import tls_scan
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError


def params(**kwargs):
    base = dict(targets=None, cidrs=None, ports=None, allow=['127.0.0.0/8'], server_names=None, starttls='none',
                concurrency=50, timeout=5.0, warn_days=30, ca_path=None, max_targets=4096)
    base.update(kwargs)
    return base


def cert_with(sans=None, cn='cn.test'):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)))
    if sans is not None:
        names = [x509.IPAddress(ipaddress.ip_address(v[3:])) if v.startswith('IP:') else x509.DNSName(v)
                 for v in sans]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256())


@pytest.mark.parametrize('pattern,name,expected', [
    ('www.example.com', 'WWW.Example.com', True),
    ('www.example.com.', 'www.example.com', True),
    ('*.example.com', 'www.example.com', True),
    ('*.example.com', 'a.b.example.com', False),       # one label only
    ('*.example.com', 'example.com', False),           # not the empty label
    ('*.com', 'example.com', False),                   # at least two labels after the wildcard
    ('w*.example.com', 'www.example.com', False),      # partial-label wildcards are not honoured
    ('www.*.com', 'www.example.com', False),           # left-most label only
    ('*.example.com', 'xn--bcher-kva.example.com', False),
])
def test_dns_match(pattern, name, expected):
    assert tls_scan._dns_match(pattern, name) is expected


def test_name_matches_sans_ip_and_cn_fallback():
    assert tls_scan.name_matches(cert_with(['www.example.com', 'IP:127.0.0.1']), '127.0.0.1')
    assert not tls_scan.name_matches(cert_with(['www.example.com']), '127.0.0.1')
    # with DNS SANs the CN is not consulted (RFC 6125 6.4.4)
    assert not tls_scan.name_matches(cert_with(['www.example.com'], cn='cn.test'), 'cn.test')
    assert tls_scan.name_matches(cert_with(None, cn='cn.test'), 'cn.test')
    assert not tls_scan.name_matches(cert_with(None, cn='127.0.0.1'), '127.0.0.1')


def test_plan_expands_targets_ranges_and_names():
    eps = tls_scan.plan(params(targets=['127.0.0.1:443', {'host': '127.0.0.2', 'port': 8443, 'sni': 'a.test',
                                                          'starttls': 'smtp'}, '127.0.0.3'],
                               cidrs=['127.0.0.8/30'], ports=[25, 443]))
    got = [(e['address'], e['port'], e['sni'], e['starttls']) for e in eps]
    assert got == [('127.0.0.1', 443, None, 'none'), ('127.0.0.2', 8443, 'a.test', 'smtp'),
                   ('127.0.0.3', 25, None, 'none'), ('127.0.0.3', 443, None, 'none'),
                   ('127.0.0.9', 25, None, 'none'), ('127.0.0.9', 443, None, 'none'),
                   ('127.0.0.10', 25, None, 'none'), ('127.0.0.10', 443, None, 'none')]
    named = tls_scan.plan(params(targets=['127.0.0.1:443'], server_names=['a.test', 'b.test']))
    assert [e['sni'] for e in named] == ['a.test', 'b.test']
    local = tls_scan.plan(params(targets=['localhost:443']))      # ::1 too, perhaps: only 127.0.0.1 is allowed
    assert (local[0]['address'], local[0]['sni']) == ('127.0.0.1', 'localhost')
    v6 = tls_scan.plan(params(targets=['[::1]:443'], allow=['::1/128']))
    assert (v6[0]['address'], v6[0]['port']) == ('::1', 443)


@pytest.mark.parametrize('kwargs,option', [
    (dict(targets=['127.0.0.1:443', '10.0.0.1:443']), 'allow'),
    (dict(cidrs=['127.0.0.0/30', '10.0.0.0/30'], ports=[443]), 'allow'),
    (dict(targets=['127.0.0.1:443'], allow=['not-a-range']), 'allow'),
    (dict(targets=['127.0.0.1:443'], allow=[]), 'allow'),
    (dict(targets=['[::1]:443']), 'allow'),                  # an IPv6 address is not inside an IPv4 range
    (dict(targets=['localhost:443'], allow=['10.0.0.0/8']), 'allow'),
    (dict(cidrs=['127.0.0.0/16'], ports=[443]), 'max_targets'),
    (dict(targets=['127.0.0.1:443'], server_names=['a', 'b'], max_targets=1), 'max_targets'),
    (dict(targets=['127.0.0.1:0']), 'targets[0].port'),
    (dict(targets=['127.0.0.1']), 'targets[0]'),
    (dict(targets=[{'port': 443}]), 'targets[0].host'),
    (dict(targets=[{'host': '127.0.0.1', 'port': 443, 'sni': ''}]), 'targets[0].sni'),
    (dict(targets=[{'host': '127.0.0.1', 'port': 443, 'verify': True}]), 'targets[0]'),
    (dict(targets=[42]), 'targets[0]'),
    (dict(cidrs=['127.0.0.0/30']), 'ports'),
    (dict(targets=['127.0.0.1:443'], ports=[443, 443]), 'ports'),
    (dict(targets=['127.0.0.1:443'], concurrency=0), 'concurrency'),
    (dict(targets=['127.0.0.1:443'], timeout=0), 'timeout'),
    (dict(targets=['127.0.0.1:443'], warn_days=-1), 'warn_days'),
    (dict(targets=['127.0.0.1:443'], ca_path='/nonexistent/ca.pem'), 'ca_path'),
    (dict(), 'targets'),
])
def test_plan_refuses(kwargs, option):
    with pytest.raises(ConfigError) as info:
        tls_scan.plan(params(**kwargs))
    assert info.value.option == option, str(info.value)
    assert info.value.fix


def test_ldap_starttls_ber():
    request = tls_scan.ldap_starttls_request(1)
    assert request == (b'\x30\x1d\x02\x01\x01\x77\x18\x80\x16' + b'1.3.6.1.4.1.1466.20037')
    # ExtendedResponse: success, empty matchedDN and diagnosticMessage, responseName
    response = (b'\x02\x01\x01\x78\x1d\x0a\x01\x00\x04\x00\x04\x00\x8a\x16' + b'1.3.6.1.4.1.1466.20037')
    assert tls_scan.parse_ldap_extended_response(response) == (1, 0, '')
    refused = b'\x02\x01\x01\x78\x0b\x0a\x01\x02\x04\x00\x04\x04nope'
    assert tls_scan.parse_ldap_extended_response(refused) == (1, 2, 'nope')
    with pytest.raises(OSError):
        tls_scan.parse_ldap_extended_response(b'\x02\x01\x01\x61\x07\x0a\x01\x00\x04\x00\x04\x00')


def _issued(issuer_cert, issuer_key, cn, ca=False):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name)
            .issuer_name(issuer_cert.subject if issuer_cert is not None else name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(issuer_key or key, hashes.SHA256()))
    return cert, key


class _OldSocket:
    """What a TLS socket offers on a Python without get_unverified_chain: the leaf only."""

    def __init__(self, der):
        self.der = der

    def getpeercert(self, binary_form=False):
        return self.der


def test_leaf_only_fallback_says_unknown(tmp_path):
    from cryptography.hazmat.primitives.serialization import Encoding
    root, root_key = _issued(None, None, 'Root', ca=True)
    inter, inter_key = _issued(root, root_key, 'Issuing', ca=True)
    leaf, dummy = _issued(inter, inter_key, 'www.test')
    ca_file = tmp_path / 'root.pem'
    ca_file.write_bytes(root.public_bytes(Encoding.PEM))
    ders, source = tls_scan.served_chain(_OldSocket(leaf.public_bytes(Encoding.DER)))
    assert source == 'leaf_only' and ders == [leaf.public_bytes(Encoding.DER)]
    analyzer = tls_scan.Analyzer(ca_path=str(ca_file))
    problems, dummy, complete, trusted = analyzer.judge(ders, source, 'www.test')
    assert (problems, complete, trusted) == ([], 'unknown', None)
    # the same leaf, its chain served: complete and trusted; without the intermediate: incomplete
    served = [leaf.public_bytes(Encoding.DER), inter.public_bytes(Encoding.DER)]
    assert analyzer.judge(served, 'served', 'www.test')[2:] == (True, True)
    assert analyzer.judge(served[:1], 'served', 'www.test')[0] == ['incomplete_chain', 'untrusted']
