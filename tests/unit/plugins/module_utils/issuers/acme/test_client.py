# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ACME client and connector against a local server replaying recorded-style answers."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
from ansible_collections.certforge.pki.plugins.module_utils.core import polling
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    AuthError, ConfigError, PermanentError, PolicyError, TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.model import CertificateRequest
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import client as aclient
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import connector, jws

EAB_KEY = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W'


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def make_csr(*names):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode('ascii')


def account_pem():
    return jws.AccountKey.generate('ec256').private_pem()


def options(fake, tmp_path, **extra):
    opts = dict(acme_directory=fake.directory_url, account_key_content=account_pem(),
                order_store=str(tmp_path / 'orders'), terms_agreed=True,
                http01_listen_port=fake.http01_port)
    opts.update(extra)
    return opts


def run_issue(issuer, name, csr, current=None, policy=None, wait=10, tmp_path=None):
    registry = Registry([connector.PLUGIN])
    request = CertificateRequest(name=name, csr_pem=csr, replaces=current)
    clock = Clock()
    try:
        return core_issue.issue(registry, issuer, request, current_pem=current, policy=policy,
                                store_path=issuer.options['order_store'], wait_timeout=wait,
                                schedule=polling.Schedule.steps((0.01, 0.05), jitter=0),
                                sleep=lambda s: None)
    finally:
        issuer.close()
        del clock


def test_directory_unreachable_names_option():
    client = aclient.AcmeClient('http://127.0.0.1:9/dir', retries=0, deadline=0)
    with pytest.raises(TransientError) as info:
        client.directory()
    assert info.value.option == 'acme_directory'


def test_not_a_directory(fake_acme):
    fake = fake_acme()
    client = aclient.AcmeClient(fake.base + '/nothing', retries=0)
    with pytest.raises(PermanentError):
        client.directory()


def test_issue_http01_listener_alternate_chain_and_bad_nonce(fake_acme, tmp_path):
    fake = fake_acme()
    fake.inject('/new-order', 400, 'badNonce', 'JWS has an invalid anti-replay nonce', times=2)
    issuer = connector.AcmeIssuer(options(fake, tmp_path, preferred_chain='Fake Alt Root'))
    result = run_issue(issuer, 'www', make_csr('www.example.test'))
    assert result['status'] == 'issued', result
    assert 'www.example.test' in str(result['subject_alt_names'])
    chain = x509.load_pem_x509_certificate(result['chain'].encode())
    assert chain.issuer.rfc4514_string() == 'CN=Fake Alt Root'
    posts = [p for m, p in fake.log if m == 'POST']
    assert posts.count('/new-order') == 3       # two badNonce answers re-signed and retried
    # the account is cached: a second certificate sends no newAccount
    before = posts.count('/new-acct')
    issuer2 = connector.AcmeIssuer(dict(issuer.options))
    result2 = run_issue(issuer2, 'api', make_csr('api.example.test'))
    assert result2['status'] == 'issued'
    assert [p for m, p in fake.log if m == 'POST'].count('/new-acct') == before


def test_noop_sends_nothing(fake_acme, tmp_path):
    fake = fake_acme()
    issuer = connector.AcmeIssuer(options(fake, tmp_path))
    csr = make_csr('www.example.test')
    first = run_issue(issuer, 'www', csr)
    count = len(fake.log)
    again = run_issue(connector.AcmeIssuer(dict(issuer.options)), 'www', csr, current=first['certificate'])
    assert again['status'] == 'valid' and again['changed'] is False
    assert len(fake.log) == count


def test_ari_window_cached_and_replaces_refused_then_retried(fake_acme, tmp_path):
    fake = fake_acme(ari=True, refuse_replaces=True)
    opts = options(fake, tmp_path, renewal_info=True)
    csr = make_csr('www.example.test')
    first = run_issue(connector.AcmeIssuer(opts), 'www', csr)
    gets = len([1 for m, p in fake.log if p.startswith('/ari/')])
    again = run_issue(connector.AcmeIssuer(opts), 'www', csr, current=first['certificate'],
                      policy={'renew_before_days': 100})
    # ARI leaves 40 days: not due although renew_before_days would say so
    assert again['status'] == 'valid'
    count = len(fake.log)
    assert len([1 for m, p in fake.log if p.startswith('/ari/')]) == gets + 1
    run_issue(connector.AcmeIssuer(opts), 'www', csr, current=first['certificate'])
    assert len(fake.log) == count              # cached within Retry-After: nothing sent
    forced = run_issue(connector.AcmeIssuer(opts), 'www', csr, current=first['certificate'],
                       policy={'force': True})
    assert forced['status'] == 'issued'
    replaced = [p for p in fake.orders_payloads if p.get('replaces')]
    assert replaced and 'replaces' not in fake.orders_payloads[-1]
    cert = x509.load_pem_x509_certificate(first['certificate'].encode())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert replaced[0]['replaces'].split('.')[0] == jws.b64u(aki)


def test_ari_cert_id_rfc9773_serial_encoding():
    # RFC 9773 section 4.1 example: serial 0x0087654321 -> "AIdlQyE"
    assert jws.b64u(bytes.fromhex('0087654321')) == 'AIdlQyE'
    serial = 0x87654321
    assert jws.b64u(serial.to_bytes(serial.bit_length() // 8 + 1, 'big')) == 'AIdlQyE'


def test_manual_http01_pending_then_continued(fake_acme, tmp_path):
    fake = fake_acme()
    opts = options(fake, tmp_path)
    del opts['http01_listen_port']
    csr = make_csr('www.example.test')
    first = run_issue(connector.AcmeIssuer(opts), 'www', csr)
    assert first['status'] == 'pending'
    store = connector.AccountCache(opts['order_store']).store
    record = store.load('acme+www')
    info = list(record.order['details']['challenges'].values())[0]
    assert info['type'] == 'http-01' and info['key_authorization'].startswith(info['token'] + '.')
    orders = len(fake.orders)
    # the user serves the token; the next run answers the same order
    from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme.challenges import Http01Listener
    listener = Http01Listener(fake.http01_port)
    listener.add(info['token'], info['key_authorization'])
    try:
        second = run_issue(connector.AcmeIssuer(opts), 'www', csr)
    finally:
        listener.stop()
    assert second['status'] == 'issued' and second.get('resumed')
    assert len(fake.orders) == orders


def test_failed_challenge_shows_ca_error(fake_acme, tmp_path):
    fake = fake_acme()
    opts = options(fake, tmp_path)
    fake.http01_port = 9   # the CA cannot reach the answer
    with pytest.raises(PermanentError) as info:
        run_issue(connector.AcmeIssuer(opts), 'www', make_csr('www.example.test'))
    assert info.value.option == 'challenge' and 'Connection refused' in info.value.msg


def test_wildcard_http01_refused_up_front(fake_acme, tmp_path):
    fake = fake_acme()
    with pytest.raises(ConfigError) as info:
        run_issue(connector.AcmeIssuer(options(fake, tmp_path)), 'w', make_csr('*.example.test'))
    assert info.value.option == 'challenge'
    assert not [p for m, p in fake.log if m == 'POST']


def test_dns01_hooks_wildcard_and_apex_share_a_name(fake_acme, tmp_path):
    fake = fake_acme()
    log = tmp_path / 'hook.log'
    hook = ['sh', '-c', 'echo "$0 $CERTFORGE_ACME_RECORD_NAME $CERTFORGE_ACME_VALUE" >> %s' % log]
    opts = options(fake, tmp_path, challenge='dns-01', dns_hook_add=hook[:2] + [hook[2], 'add'],
                   dns_hook_remove=hook[:2] + [hook[2], 'del'])
    # the fake CA validates dns-01 without looking (like PEBBLE_VA_ALWAYS_VALID)
    result = run_issue(connector.AcmeIssuer(opts), 'w', make_csr('*.example.test', 'example.test'))
    assert result['status'] == 'issued'
    lines = log.read_text().splitlines()
    adds = [line for line in lines if line.startswith('add')]
    assert len(adds) == 2 and len({line.split()[2] for line in adds}) == 2
    assert {line.split()[1] for line in adds} == {'_acme-challenge.example.test'}
    assert len([line for line in lines if line.startswith('del')]) == 2


def test_rate_limit_waits_then_pending(fake_acme, tmp_path):
    fake = fake_acme()
    fake.inject('/new-order', 429, 'rateLimited', 'too many new orders recently', {'Retry-After': '3600'})
    result = run_issue(connector.AcmeIssuer(options(fake, tmp_path)), 'www', make_csr('www.example.test'))
    assert result['status'] == 'pending'
    short = fake_acme()
    short.inject('/new-order', 429, 'rateLimited', 'slow down', {'Retry-After': '1'})
    clock = Clock()
    client = aclient.AcmeClient(short.directory_url, account_key=jws.AccountKey.generate(), clock=clock,
                                sleep=clock.sleep)
    client.new_account(terms_agreed=True)
    url, dummy, dummy2 = client.new_order([{'type': 'dns', 'value': 'a.test'}],
                                          deadline=polling.Deadline(10, clock=clock))
    assert url and clock.sleeps == [1.0]


def test_problem_documents_become_named_errors(fake_acme):
    fake = fake_acme()
    client = aclient.AcmeClient(fake.directory_url, account_key=jws.AccountKey.generate())
    client.new_account(terms_agreed=True)
    fake.inject('/new-order', 400, 'rejectedIdentifier', 'Error creating new order :: Cannot issue for "x.invalid"')
    with pytest.raises(PolicyError) as info:
        client.new_order([{'type': 'dns', 'value': 'x.invalid'}])
    assert 'Cannot issue for' in str(info.value) and info.value.option == 'csr'
    fake.inject('/new-order', 403, 'caa', 'CAA record for example.test prevents issuance')
    with pytest.raises(PolicyError) as info:
        client.new_order([{'type': 'dns', 'value': 'example.test'}])
    assert 'CAA record' in str(info.value)


def test_eab_required_missing_and_wrong_hmac(fake_acme, tmp_path):
    fake = fake_acme(eab_keys={'kid-1': EAB_KEY})
    with pytest.raises(ConfigError) as info:
        run_issue(connector.AcmeIssuer(options(fake, tmp_path)), 'www', make_csr('www.example.test'))
    assert info.value.option == 'eab_kid'
    wrong = EAB_KEY[:-4] + 'AAAA'
    with pytest.raises(AuthError) as info:
        run_issue(connector.AcmeIssuer(options(fake, tmp_path, eab_kid='kid-1', eab_hmac_key=wrong)),
                  'www', make_csr('www.example.test'))
    assert info.value.option == 'eab_hmac_key' and wrong not in str(info.value)
    ok = run_issue(connector.AcmeIssuer(options(fake, tmp_path, eab_kid='kid-1', eab_hmac_key=EAB_KEY)),
                   'www', make_csr('www.example.test'))
    assert ok['status'] == 'issued'


def test_profiles_checked_against_directory(fake_acme):
    fake = fake_acme(profiles={'classic': 'x', 'shortlived': 'y'})
    client = aclient.AcmeClient(fake.directory_url, account_key=jws.AccountKey.generate())
    client.new_account(terms_agreed=True)
    with pytest.raises(ConfigError) as info:
        client.new_order([{'type': 'dns', 'value': 'a.test'}], profile='nope')
    assert info.value.option == 'profile' and 'classic' in info.value.fix
    client.new_order([{'type': 'dns', 'value': 'a.test'}], profile='shortlived')
    assert fake.orders_payloads[-1]['profile'] == 'shortlived'


def test_revoke_reasons_and_cert_key(fake_acme, tmp_path):
    fake = fake_acme()
    opts = options(fake, tmp_path)
    issued = run_issue(connector.AcmeIssuer(opts), 'www', make_csr('www.example.test'))
    from ansible_collections.certforge.pki.plugins.module_utils.core.model import Revocation
    issuer = connector.AcmeIssuer(opts)
    with pytest.raises(ConfigError) as info:
        issuer.revoke(Revocation(certificate_pem=issued['certificate'], reason='bored'))
    assert info.value.option == 'reason'
    assert issuer.revoke(Revocation(certificate_pem=issued['certificate'], reason='key_compromise'))
    assert fake.revoked[-1]['reason'] == 1
    cert_key = jws.AccountKey.generate()
    client = aclient.AcmeClient(fake.directory_url)
    assert client.revoke(b'\x30\x00', 4, key=cert_key)


def test_key_rollover(fake_acme):
    fake = fake_acme()
    client = aclient.AcmeClient(fake.directory_url, account_key=jws.AccountKey.generate())
    client.new_account(terms_agreed=True)
    new = jws.AccountKey.generate('ec384')
    client.key_change(new)
    assert client.key is new


def test_parse_links_many_alternates():
    class Resp:
        url = 'https://ca.test/cert/1'
        headers = {'Link': '<https://ca.test/dir>;rel="index", </cert/1/1>;rel="alternate", '
                           '</cert/1/2>; rel="alternate"'}
    links = aclient.parse_links(Resp())
    assert links['alternate'] == ['https://ca.test/cert/1/1', 'https://ca.test/cert/1/2']
    assert datetime is not None
