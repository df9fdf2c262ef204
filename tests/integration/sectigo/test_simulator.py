"""The Sectigo Certificate Manager simulator, exercised directly over HTTP with requests."""

import datetime
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[3]
COST = [{'name': 'cost-center', 'value': 'CC-42'}]
DV, DV_MULTI, OV, EV, OV_NO_RENEW = 101, 102, 201, 301, 203
ORG, DEPT_WEB, DEPT_LEGACY, ORG_DISABLED, ORG_UNVALIDATED = 310, 312, 313, 320, 330


def make_csr(common_name, key=None, sans=()):
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]),
                                        critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def enroll_body(common_name='www.example.com', cert_type=DV, **extra):
    body = {'orgId': ORG, 'certType': cert_type, 'term': 365, 'csr': make_csr(common_name),
            'subjAltNames': common_name, 'customFields': COST, 'comments': 'test',
            'externalRequester': '', 'numberServers': 1, 'serverType': -1}
    body.update(extra)
    return body


def enroll(sim, session, common_name='www.example.com', cert_type=DV, **extra):
    response = session.post(sim.base_url + '/ssl/v1/enroll', json=enroll_body(common_name, cert_type, **extra))
    assert response.status_code == 200, response.text
    return response.json()['sslId']


def error_of(response):
    return response.status_code, response.json()['code']


def certs_of(text):
    return x509.load_pem_x509_certificates(text.encode() if isinstance(text, str) else text)


# ------------------------------------------------------------------------------------ auth

def test_bad_credentials_get_401_code_minus_16(sectigo_sim):
    sim = sectigo_sim
    url = sim.base_url + '/ssl/v1/types'
    for headers in ({'login': sim.login, 'password': 'wrong', 'customerUri': sim.customer_uri},
                    {'login': sim.login, 'password': sim.password, 'customerUri': 'other'},
                    {'login': 'nobody', 'password': sim.password, 'customerUri': sim.customer_uri},
                    {}):
        response = requests.get(url, headers=headers, verify=sim.ca_bundle, timeout=10)
        assert response.status_code == 401
        assert response.json() == {'code': -16, 'description': 'Unknown user'}
    assert sim.session().get(url, timeout=10).status_code == 200
    # the audit records a request once its answer is written: the client may read the answer
    # a moment before the entry lands
    deadline = time.monotonic() + 5
    while len(sim.audit()) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e['status'] for e in sim.audit()] == [401, 401, 401, 401, 200]
    assert {e['auth'] for e in sim.audit()} == {'password'}


def test_private_api_needs_the_client_certificate(sectigo_sim):
    sim = sectigo_sim
    url = sim.private_base_url + '/ssl/v1/types'
    no_cert = requests.get(url, headers=sim.headers(password=True), verify=sim.ca_bundle, timeout=10)
    assert error_of(no_cert) == (401, -16)
    with_cert = sim.session(certificate=True).get(url, timeout=10)
    assert with_cert.status_code == 200 and with_cert.json()
    other_login = requests.get(url, headers={'login': sim.approver_login, 'customerUri': sim.customer_uri},
                               cert=(sim.client_cert, sim.client_key), verify=sim.ca_bundle, timeout=10)
    assert error_of(other_login) == (401, -16)          # the certificate belongs to sim.login
    assert sim.audit()[-2]['auth'] == 'certificate'
    key, cert, dummy = pkcs12.load_key_and_certificates(Path(sim.client_p12).read_bytes(),
                                                        sim.client_p12_passphrase.encode())
    assert key is not None and cert.subject.rfc4514_string() == 'CN=' + sim.login


def test_mtls_mode_refuses_a_handshake_without_certificate(sectigo_sim_factory):
    sim = sectigo_sim_factory(mtls=True)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(sim.base_url + '/ssl/v1/types', headers=sim.headers(), verify=sim.ca_bundle, timeout=10)
    session = sim.session()
    session.cert = (sim.client_cert, sim.client_key)
    assert session.get(sim.base_url + '/ssl/v1/types', timeout=10).status_code == 200


# ------------------------------------------------------------------------------------ catalog

def test_profiles_custom_fields_organizations_domains(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    types = session.get(sim.base_url + '/ssl/v1/types', timeout=10).json()
    by_id = {t['id']: t for t in types}
    assert {DV, DV_MULTI, OV, EV} <= set(by_id)
    for profile in types:
        assert set(profile) == {'id', 'name', 'description', 'terms', 'keyTypes', 'useSecondaryOrgName'}
    assert by_id[OV]['terms'] == [365, 395] and 'Multi-Domain' in by_id[DV_MULTI]['name']
    only_dv = session.get(sim.base_url + '/ssl/v1/types', params={'organizationId': ORG_UNVALIDATED},
                          timeout=10).json()
    assert {t['id'] for t in only_dv} == {101, 102, 103}
    fields = session.get(sim.base_url + '/ssl/v1/customFields', timeout=10).json()
    assert {'id': 7, 'name': 'cost-center', 'mandatory': True} in fields
    orgs = session.get(sim.base_url + '/organization/v1', timeout=10).json()
    assert orgs[0]['departments'][0] == {'id': DEPT_WEB, 'name': 'Web Team', 'parentName': 'Example Org'}
    assert session.get(sim.base_url + '/organization/v1/%d' % ORG_DISABLED, timeout=10).json()[
        'sslCertsApiEnabled'] is False
    dept = session.get(sim.base_url + '/organization/v1/%d' % DEPT_LEGACY, timeout=10).json()
    assert dept['sslCertsApiEnabled'] is False and dept['certTypes'] == []
    page = session.get(sim.base_url + '/domain/v1', params={'size': 3, 'position': 0}, timeout=10)
    assert page.headers['X-Total-Count'] == '7' and len(page.json()) == 3
    domain = session.get(sim.base_url + '/domain/v1/5103', timeout=10).json()
    assert domain['validationStatus'] == 'Expired' and domain['dcvExpiration'] < datetime.date.today().isoformat()


# ------------------------------------------------------------------------------------ list

def test_paging_filters_and_count(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    sim.seed(450)
    url = sim.base_url + '/ssl/v1'
    seen, position = [], 0
    while True:
        response = session.get(url, params={'size': 200, 'position': position}, timeout=10)
        assert response.headers['X-Total-Count'] == '450'
        seen += response.json()
        if len(response.json()) < 200:
            break
        position += 200
    assert len(seen) == 450 and len({i['sslId'] for i in seen}) == 450
    assert set(seen[0]) <= {'sslId', 'commonName', 'subjectAlternativeNames', 'serialNumber'}
    issued = session.head(url, params={'status': 'Issued'}, timeout=10)
    assert issued.status_code == 200 and issued.content == b''
    count = int(issued.headers['X-Total-Count'])
    assert 150 < count < 350
    some = session.get(url, params={'status': 'Issued', 'size': 5, 'sslTypeId': OV, 'orgId': ORG},
                       timeout=10).json()
    details = session.get(url + '/%d' % some[0]['sslId'], timeout=10).json()
    assert details['status'] == 'Issued' and details['certType']['id'] == OV and details['orgId'] == ORG
    assert len(details['expires']) == 10 and details['expires'][2] == '/'         # MM/dd/yyyy
    by_serial = session.get(url, params={'serialNumber': details['serialNumber'].lower()}, timeout=10).json()
    assert [i['sslId'] for i in by_serial] == [details['sslId']]
    by_cn = session.get(url, params={'commonName': details['commonName']}, timeout=10).json()
    assert by_cn[0]['sslId'] == details['sslId']
    assert len(session.get(url, params={'position': -1, 'size': 3}, timeout=10).json()) == 3
    assert len(session.get(url, timeout=10).json()) == 10                       # default size
    assert error_of(session.get(url, params={'size': 201}, timeout=10)) == (400, -1601)


def test_seeding_is_fast_and_collect_signs_lazily(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    started = time.monotonic()
    ids = sim.seed(20000, seed=7)
    assert time.monotonic() - started < 5
    total = session.head(sim.base_url + '/ssl/v1', timeout=10).headers['X-Total-Count']
    assert total == '20000' and len(ids) == 20000
    issued = session.get(sim.base_url + '/ssl/v1', params={'status': 'Issued', 'size': 1}, timeout=10).json()[0]
    pem = session.get(sim.base_url + '/ssl/v1/collect/%d/x509CO' % issued['sslId'], timeout=10).text
    leaf = certs_of(pem)[0]
    assert '%X' % leaf.serial_number == issued['serialNumber'].replace(':', '').lstrip('0')
    assert sim.enroll_count() == 0 and sim.orders() == []


# ------------------------------------------------------------------------------------ life cycle

def _verify_chain(sim, leaf, chain, name):
    from cryptography.x509.verification import PolicyBuilder, Store  # pylint: disable=import-outside-toplevel
    store = Store(x509.load_pem_x509_certificates(Path(sim.ca_bundle).read_bytes()))
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name))
    verifier.verify(leaf, chain)


def test_dv_enroll_is_pending_then_collects_a_real_chain(sectigo_sim, tmp_path):
    sim, session = sectigo_sim, sectigo_sim.session()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    body = enroll_body('www.example.com', DV_MULTI, csr=make_csr('www.example.com', key),
                       subjAltNames='www.example.com,api.example.net')
    answer = session.post(sim.base_url + '/ssl/v1/enroll', json=body, timeout=10).json()
    sid = answer['sslId']
    assert isinstance(answer['renewId'], str) and answer['renewId']
    assert session.get(sim.base_url + '/ssl/v1/%d' % sid, timeout=10).json()['status'] == 'Applied'
    for url in ('/ssl/v1/collect/%d/x509CO' % sid, '/ssl/v1/collect/%d?format=x509CO' % sid):
        pending = session.get(sim.base_url + url, timeout=10)
        assert pending.status_code == 400
        assert pending.json() == {'code': 0, 'description': 'Being processed by Sectigo'}
    sim.advance(4)
    assert session.get(sim.base_url + '/ssl/v1/collect/%d' % sid, timeout=10).status_code == 400
    sim.advance(1)
    details = session.get(sim.base_url + '/ssl/v1/%d' % sid, timeout=10).json()
    assert details['status'] == 'Issued' and details['serialNumber']
    assert details['keyType'] == 'RSA - 2048'
    full = session.get(sim.base_url + '/ssl/v1/collect/%d/x509' % sid, timeout=10)
    assert full.headers['Content-Type'].startswith('application/octet-stream')
    assert 'attachment' in full.headers['Content-Disposition']
    root, inter, leaf = certs_of(full.text)                                  # root first
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ['www.example.com', 'api.example.net']
    _verify_chain(sim, leaf, [inter], 'api.example.net')
    forms = {fmt: session.get(sim.base_url + '/ssl/v1/collect/%d' % sid, params={'format': fmt}, timeout=10)
             for fmt in ('x509CO', 'pemco', 'x509IO', 'x509IOR', 'pemia', 'x509R', 'pem', 'base64', 'bin')}
    assert certs_of(forms['x509CO'].text) == [leaf] == certs_of(forms['pemco'].text)
    assert certs_of(forms['x509IO'].text) == [root, inter]
    assert certs_of(forms['x509IOR'].text) == [inter, root]
    assert certs_of(forms['pemia'].text) == [leaf, inter, root] == certs_of(forms['x509R'].text)
    assert certs_of(forms['pem'].text) == [root, inter, leaf]
    assert pkcs7.load_pem_pkcs7_certificates(forms['base64'].content) == [root, inter, leaf]
    assert pkcs7.load_der_pkcs7_certificates(forms['bin'].content) == [root, inter, leaf]
    assert session.get(sim.base_url + '/ssl/v1/collect/%d' % sid, timeout=10).content.startswith(
        b'-----BEGIN PKCS7-----')                                            # default: base64
    assert error_of(session.get(sim.base_url + '/ssl/v1/collect/%d/zip' % sid, timeout=10)) == (400, -126)
    if shutil.which('openssl'):
        (tmp_path / 'leaf.pem').write_text(forms['x509CO'].text)
        (tmp_path / 'inter.pem').write_text(certs_of(forms['x509IOR'].text)[0].public_bytes(
            serialization.Encoding.PEM).decode())
        result = subprocess.run(['openssl', 'verify', '-CAfile', sim.ca_bundle, '-untrusted',
                                 str(tmp_path / 'inter.pem'), str(tmp_path / 'leaf.pem')],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_ov_takes_longer_and_pending_code_is_switchable(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    sim.configure(pending_code=-183)
    sid = enroll(sim, session, 'shop.example.com', OV)
    sim.advance(30)
    assert error_of(session.get(sim.base_url + '/ssl/v1/collect/%d' % sid, timeout=10)) == (400, -183)
    sim.advance(30)
    assert session.get(sim.base_url + '/ssl/v1/collect/%d/x509CO' % sid, timeout=10).status_code == 200
    leaf = certs_of(session.get(sim.base_url + '/ssl/v1/collect/%d/x509CO' % sid, timeout=10).text)[0]
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == 'Example Org'


def test_ev_needs_approval_by_another_admin(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    sid = enroll(sim, session, 'bank.example.com', EV)
    assert session.get(sim.base_url + '/ssl/v1/%d' % sid, timeout=10).json()['status'] == 'Requested'
    sim.advance(3600)
    assert error_of(session.get(sim.base_url + '/ssl/v1/collect/%d' % sid, timeout=10)) == (400, 0)
    own = session.post(sim.base_url + '/ssl/v1/approve/%d' % sid, json={'message': 'ok'}, timeout=10)
    assert error_of(own) == (400, -1140)
    approver = requests.post(sim.base_url + '/ssl/v1/approve/%d' % sid, json={'message': 'vetted'},
                             headers={'login': sim.approver_login, 'password': sim.approver_password,
                                      'customerUri': sim.customer_uri}, verify=sim.ca_bundle, timeout=10)
    assert approver.status_code == 204
    again = session.post(sim.base_url + '/ssl/v1/approve/%d' % sid, json={'message': 'x'}, timeout=10)
    assert error_of(again) == (400, -1112)
    sim.advance(10)
    assert session.get(sim.base_url + '/ssl/v1/%d' % sid, timeout=10).json()['status'] == 'Issued'
    other = enroll(sim, session, 'bank2.example.com', EV)
    sim.approve(other)                                           # fixture: as the second admin
    assert sim.order(other)['status'] == 'Applied'
    third = enroll(sim, session, 'bank3.example.com', EV)
    assert session.post(sim.base_url + '/ssl/v1/decline/%d' % third, json={'message': 'no'},
                        timeout=10).status_code == 204
    assert error_of(session.get(sim.base_url + '/ssl/v1/collect/%d' % third, timeout=10)) == (400, -183)


@pytest.mark.parametrize('changes, expected', [
    ({'orgId': None}, -7),
    ({'orgId': 999}, -1601),
    ({'orgId': ORG_DISABLED}, -3),
    ({'orgId': DEPT_LEGACY}, -3),
    ({'csr': 'not a csr!'}, -9),
    ({'csr': 'TUlJQ0lq'}, -10),
    ({'certType': 999}, -39),
    ({'term': 730}, -36),
    ({'certType': OV, 'orgId': ORG_UNVALIDATED, 'csr': None, 'subjAltNames': 'www.startup.test'}, -843),
    ({'certType': OV_NO_RENEW}, -141),
    ({'subjAltNames': 'www.example.com,api.example.com'}, -1601),
    ({'subjAltNames': '*.example.com'}, -1010),
    ({'csr': None, 'subjAltNames': 'a.unvalidated.example'}, -1137),
    ({'csr': None, 'subjAltNames': 'a.expired-dcv.example.org'}, -1137),
    ({'csr': None, 'subjAltNames': 'www.suspended.example'}, -715),
    ({'csr': None, 'subjAltNames': 'www.unknown.example'}, -727),
    ({'comments': 'x' * 1025}, -1601),
    ({'externalRequester': 'not-an-email'}, -1601),
    ({'customFields': []}, -62),
    ({'customFields': COST + [{'name': 'nope', 'value': '1'}]}, -135),
])
def test_enroll_refuses_bad_requests(sectigo_sim, changes, expected):
    sim, session = sectigo_sim, sectigo_sim.session()
    body = enroll_body()
    for name, value in changes.items():
        if name == 'csr' and value is None:
            first = changes['subjAltNames'].split(',')[0]
            body['csr'] = make_csr(first)
            body['subjAltNames'] = first
        elif value is None:
            body.pop(name)
        else:
            body[name] = value
    response = session.post(sim.base_url + '/ssl/v1/enroll', json=body, timeout=10)
    assert error_of(response) == (400, expected), response.text
    assert sim.enroll_count() == 0


def test_enroll_accepts_client_quirks(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    body = enroll_body('www.example.com', subjAltNames=None, externalRequester=None, dcvMode='CNAME',
                       comments=None)
    body['csr'] = body['csr'].strip().replace('\n', '\\n')                # escaped newlines
    assert session.post(sim.base_url + '/ssl/v1/enroll', json=body, timeout=10).status_code == 200
    wildcard = enroll_body('*.example.com', 103)
    assert session.post(sim.base_url + '/ssl/v1/enroll', json=wildcard, timeout=10).status_code == 200
    dept = enroll_body('web.example.com', orgId=DEPT_WEB)
    assert session.post(sim.base_url + '/ssl/v1/enroll', json=dept, timeout=10).status_code == 200
    assert sim.enroll_count() == 3 and sim.enroll_count('WWW.example.com') == 1


def test_revoke_renew_replace(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    api = sim.base_url + '/ssl/v1'
    sid = enroll(sim, session, 'www.example.com')
    assert error_of(session.post(api + '/revoke/%d' % sid, json={'reasonCode': 4, 'reason': 'x'},
                                 timeout=10)) == (400, -102)
    sim.advance(5)
    renewed = session.post(api + '/renewById/%d' % sid, data='""',
                           headers={'Content-Type': 'application/json'}, timeout=10)
    assert renewed.status_code == 200
    new_id = renewed.json()['sslId']
    assert new_id != sid and session.get(api + '/%d' % sid, timeout=10).json()['renewed'] is True
    assert session.post(api + '/renew/%s' % sim.renew_id(sid), json={}, timeout=10).status_code == 204
    assert error_of(session.post(api + '/renew/nonexistent', timeout=10)) == (400, -123)
    assert error_of(session.post(api + '/renewById/%d' % new_id, timeout=10)) == (400, -130)
    old_serial = session.get(api + '/%d' % sid, timeout=10).json()['serialNumber']
    replaced = session.post(api + '/replace/%d' % sid, json={
        'csr': make_csr('www.example.com'), 'reason': 'key rotation', 'commonName': 'www.example.com',
        'subjectAlternativeNames': ['www.example.com']}, timeout=10)
    assert replaced.status_code == 204
    assert session.get(api + '/%d' % sid, timeout=10).json()['status'] == 'Applied'
    sim.advance(5)
    details = session.get(api + '/%d' % sid, timeout=10).json()
    assert details['status'] == 'Issued' and details['serialNumber'] != old_serial
    assert session.post(api + '/revoke/%d' % sid, json={'reason': 'no code'}, timeout=10).status_code == 204
    assert session.get(api + '/%d' % sid, timeout=10).json()['reasonCode'] == 0
    assert error_of(session.post(api + '/revoke/%d' % sid, json={'reasonCode': 1}, timeout=10)) == (400, -159)
    assert error_of(session.get(api + '/collect/%d/x509' % sid, timeout=10)) == (400, -110)
    serial = session.get(api + '/%d' % new_id, timeout=10).json()['serialNumber']
    assert error_of(session.post(api + '/revoke/serial/%s' % serial, json={'reasonCode': 2},
                                 timeout=10)) == (400, -1601)
    assert session.post(api + '/revoke/serial/%s' % serial, json={'reasonCode': 5, 'reason': 'gone'},
                        timeout=10).status_code == 204
    assert error_of(session.post(api + '/revoke/serial/AB:CD', json={'reasonCode': 5}, timeout=10)) == (404, -5101)
    no_renew = enroll(sim, session, 'legacy.example.com', OV_NO_RENEW,
                      csr=make_csr('legacy.example.com', rsa.generate_private_key(65537, 2048)))
    sim.advance(60)
    assert error_of(session.post(api + '/renewById/%d' % no_renew, timeout=10)) == (400, -180)


def test_unknown_ids(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    assert error_of(session.get(sim.base_url + '/ssl/v1/424242', timeout=10)) == (404, -5101)
    assert error_of(session.post(sim.base_url + '/ssl/v1/revoke/424242', json={'reasonCode': 0},
                                 timeout=10)) == (404, -5101)
    sim.configure(unknown_id='wrong_id')
    assert error_of(session.get(sim.base_url + '/ssl/v1/collect/424242/x509CO', timeout=10)) == (400, -124)


# ------------------------------------------------------------------------------------ faults

def test_rate_limit_and_server_errors_then_recovery(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    url = sim.base_url + '/ssl/v1/types'
    sim.fault('rate_limit', '/ssl/v1/types', method='GET', times=2, retry_after=3)
    sim.fault('server_error', '/ssl/v1/customFields', status=502)
    first, second, third = (session.get(url, timeout=10) for dummy in range(3))
    assert (first.status_code, first.headers['Retry-After']) == (429, '3')
    assert second.status_code == 429 and third.status_code == 200
    assert first.json()['code'] < 0
    assert session.get(sim.base_url + '/ssl/v1/customFields', timeout=10).status_code == 502
    assert session.get(sim.base_url + '/ssl/v1/customFields', timeout=10).status_code == 200
    assert [e['fault'] for e in sim.audit()] == ['rate_limit', 'rate_limit', None, 'server_error', None]
    sim.fault('status', '/ssl/v1/enroll', method='POST', times=None, status=400, code=-195,
              description='CA temporarily unavailable')
    assert error_of(session.post(sim.base_url + '/ssl/v1/enroll', json=enroll_body(), timeout=10)) == (400, -195)
    assert session.get(url, timeout=10).status_code == 200           # a GET does not match the fault
    sim.clear_faults()
    assert session.post(sim.base_url + '/ssl/v1/enroll', json=enroll_body(), timeout=10).status_code == 200


def test_slow_answer(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    sim.fault('delay', '/ssl/v1/collect/*', delay=0.5)
    with pytest.raises(requests.exceptions.Timeout):
        session.get(sim.base_url + '/ssl/v1/collect/1/x509CO', timeout=0.1)
    started = time.monotonic()
    assert session.get(sim.base_url + '/ssl/v1/types', timeout=10).status_code == 200
    assert time.monotonic() - started < 0.5


def test_reset_loses_the_request_and_drop_loses_the_answer(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    sim.fault('reset', '/ssl/v1/enroll', method='POST')
    with pytest.raises(requests.exceptions.ConnectionError):
        session.post(sim.base_url + '/ssl/v1/enroll', json=enroll_body('www.example.com'), timeout=10)
    assert sim.enroll_count('www.example.com') == 0
    sim.fault('drop', '/ssl/v1/enroll', method='POST')
    with pytest.raises(requests.exceptions.ConnectionError):
        session.post(sim.base_url + '/ssl/v1/enroll', json=enroll_body('www.example.com'), timeout=10)
    assert sim.enroll_count('www.example.com') == 1                 # committed, answer lost
    found = session.get(sim.base_url + '/ssl/v1', params={'commonName': 'www.example.com', 'size': 200},
                        timeout=10)
    assert found.headers['X-Total-Count'] == '1'
    assert [(e['fault'], e['status']) for e in sim.audit(method='POST', path='/ssl/v1/enroll')] == [
        ('reset', 'reset'), ('drop', 'dropped')]
    assert sim.audit(path='/ssl/v1/enroll')[-1]['common_name'] == 'www.example.com'
    assert session.get(sim.base_url + '/ssl/v1/types', timeout=10).status_code == 200


def test_skip_lets_the_first_calls_through(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    sim.fault('server_error', '/ssl/v1/types', skip=1, times=1)
    codes = [session.get(sim.base_url + '/ssl/v1/types', timeout=10).status_code for dummy in range(3)]
    assert codes == [200, 503, 200]
    assert sim.faults()[0]['fired'] == 1


def test_probability_faults_replay_with_the_same_seed(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()

    def storm():
        sim.clear_faults()
        sim.seed_faults(7)
        sim.fault('server_error', '/ssl/v1/types', times=None, probability=0.5)
        return [session.get(sim.base_url + '/ssl/v1/types', timeout=10).status_code for dummy in range(12)]

    first = storm()
    assert set(first) == {200, 503}
    assert storm() == first
    assert sim.faults()[0]['probability'] == 0.5 and sim.faults()[0]['fired'] == first.count(503)


def test_arrivals_show_a_request_while_it_is_in_flight(sectigo_sim):
    sim, session = sectigo_sim, sectigo_sim.session()
    sim.fault('delay', '/ssl/v1/enroll', method='POST', delay=1.0)
    worker = threading.Thread(target=lambda: session.post(sim.base_url + '/ssl/v1/enroll',
                                                          json=enroll_body(), timeout=10))
    worker.start()
    deadline = time.monotonic() + 5
    while not sim.arrivals('POST', '/ssl/v1/enroll') and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.arrivals('POST', '/ssl/v1/enroll')[0]['route'] == '/ssl/v1/enroll'
    assert not sim.audit(method='POST', path='/ssl/v1/enroll')        # not answered yet
    worker.join(10)
    assert len(sim.audit(method='POST', path='/ssl/v1/enroll')) == 1


# ------------------------------------------------------------------------------------ control API

def test_control_api_over_http(sectigo_sim):
    sim = sectigo_sim
    control = requests.Session()
    control.trust_env = False
    control.verify = sim.ca_bundle
    session = sim.session()
    sid = enroll(sim, session, 'ctl.example.com', EV)
    assert control.post(sim.control_url + '/approve/%d' % sid, timeout=10).json()['status'] == 'Applied'
    before = sim.now()
    assert control.post(sim.control_url + '/advance', json={'seconds': 10}, timeout=10).json()['now'] == before + 10
    assert sim.order(sid)['status'] == 'Issued'
    fault = control.post(sim.control_url + '/faults', json={'kind': 'rate_limit', 'path': '/ssl/v1/*',
                                                            'times': 1}, timeout=10).json()
    assert fault['id'] and control.get(sim.control_url + '/faults', timeout=10).json()[0]['kind'] == 'rate_limit'
    assert session.get(sim.base_url + '/ssl/v1/%d' % sid, timeout=10).status_code == 429
    audit = control.get(sim.control_url + '/audit', params={'method': 'POST'}, timeout=10).json()
    assert [e['route'] for e in audit] == ['/ssl/v1/enroll']
    assert control.get(sim.control_url + '/enroll-count', params={'commonName': 'ctl.example.com'},
                       timeout=10).json() == {'count': 1}
    assert control.post(sim.control_url + '/seed', json={'count': 50}, timeout=10).json()['created'] == 50
    assert control.get(sim.control_url + '/state', timeout=10).json()['records'] == 51
    assert len(sim.audit()) == 2                                      # control calls are not audited


def test_command_line_starts_and_prints_its_facts(tmp_path):
    process = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, '-m', 'tests.simulators.sectigo_scm', '--port', '0', '--tls', '--seed', '20',
         '--dir', str(tmp_path / 'files')], cwd=str(REPO), stdout=subprocess.PIPE, text=True)
    try:
        lines, deadline = [], time.monotonic() + 20
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith('}'):
                break
        info = json.loads(''.join(lines))
        assert Path(info['ca_bundle']).is_file() and Path(info['client_p12']).is_file()
        response = requests.head(info['base_url'] + '/ssl/v1', verify=info['ca_bundle'], timeout=10, headers={
            'login': info['login'], 'password': info['password'], 'customerUri': info['customer_uri']})
        assert response.headers['X-Total-Count'] == '20'
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()
