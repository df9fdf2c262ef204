"""The SCM simulator's state machine and rules, without HTTP."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.tests.simulators.sectigo_scm import ApiError, SimClock, Tenant, catalog
from ansible_collections.certforge.pki.tests.simulators.sectigo_scm.pki import (
    SimulatorPKI, normalize_serial, serial_to_colon_hex)


@pytest.fixture(scope='module')
def pki():
    return SimulatorPKI('api')


@pytest.fixture
def tenant(pki):
    return Tenant(pki, SimClock(start=1_800_000_000), 'api', 'pw', 'cust', 'approver', 'pw2')


def csr(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


def body(common_name='www.example.com', cert_type=catalog.DV):
    return {'orgId': catalog.ORG, 'certType': cert_type, 'term': 365, 'csr': csr(common_name),
            'customFields': [{'name': 'cost-center', 'value': 'x'}]}


def test_clock_is_frozen_until_advanced():
    clock = SimClock(start=100)
    assert clock.now() == 100 and clock.advance(5) == 105
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_serial_forms():
    assert serial_to_colon_hex(0xA1B) == '0A:1B'
    assert normalize_serial('0a:1b') == normalize_serial('0A1B') == normalize_serial('0x0a1b') == 0xA1B
    assert normalize_serial('zz') is None


def test_login_checks(tenant):
    tenant.check_login('api', 'pw', 'cust')
    tenant.check_login('api', None, 'cust', certificate_cn='api')
    for args, cn in ((('api', 'bad', 'cust'), None), (('api', 'pw', 'other'), None), (('api', None, 'cust'), 'x')):
        with pytest.raises(ApiError) as info:
            tenant.check_login(*args, certificate_cn=cn)
        assert (info.value.status, info.value.code) == (401, -16)


def test_dv_and_ov_timing(tenant):
    dv = tenant.enroll(body(), 'api')
    ov = tenant.enroll(body('shop.example.com', catalog.OV), 'api')
    assert (dv.status, ov.status) == ('Applied', 'Applied')
    tenant.clock.advance(5)
    assert tenant.details(dv.id)['status'] == 'Issued' and tenant.details(ov.id)['status'] == 'Applied'
    tenant.clock.advance(55)
    assert tenant.details(ov.id)['status'] == 'Issued'
    tenant.clock.advance(366 * 86400)
    assert tenant.details(dv.id)['status'] == 'Expired'


def test_ev_waits_for_another_admin(tenant):
    rec = tenant.enroll(body('bank.example.com', catalog.EV), 'api')
    tenant.clock.advance(86400)
    assert tenant.details(rec.id)['status'] == 'Requested'
    with pytest.raises(ApiError) as info:
        tenant.approve(rec.id, 'api')
    assert info.value.code == -1140
    tenant.approve(rec.id, 'approver')
    tenant.clock.advance(10)
    assert tenant.details(rec.id)['status'] == 'Issued'


def test_seed_mix_and_lazy_signing(tenant):
    ids = tenant.seed(2000, seed=3)
    stats = tenant.stats()['byStatus']
    assert len(ids) == 2000 and {'Issued', 'Expired', 'Revoked', 'Applied', 'Requested'} <= set(stats)
    issued = next(r for r in tenant.records.values() if r.status == 'Issued')
    assert issued.cert is None
    data, dummy = tenant.collect(issued.id, 'x509CO')
    assert x509.load_pem_x509_certificate(data).serial_number == issued.serial


def test_list_paging_limits(tenant):
    tenant.seed(30)
    total, items = tenant.list({'size': '7', 'position': '28'})
    assert (total, len(items)) == (30, 2)
    with pytest.raises(ApiError):
        tenant.list({'size': '500'})
