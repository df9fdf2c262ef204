import datetime
import json
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.certforge.pki.plugins.module_utils import local_ca_modules as lcm
from ansible_collections.certforge.pki.plugins.module_utils.certificate import execute as certificate_execute
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, PolicyError


class Ctx:
    def __init__(self, params, spec, check_mode=False, diff=False):
        from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
        res = ArgumentSpecValidator(**spec.kwargs()).validate(params)
        assert not res.error_messages, res.error_messages
        self.params = res.validated_parameters
        self.check_mode = check_mode
        self.diff = diff
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


def make_csr(names=('www.example.com',), key=None, cn='www.example.com'):
    key = key or ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if names:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    csr = b.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def root(tmp_path, name='root', **kw):
    params = dict(path=str(tmp_path / name), common_name='Test Root CA', **kw)
    return lcm.execute_local_ca(Ctx(params, lcm.LOCAL_CA_SPEC))


def sign(tmp_path, csr, ca='root', check_mode=False, **kw):
    params = dict(ca_path=str(tmp_path / ca), name=kw.pop('name', 'www'), csr=csr,
                  order_store=str(tmp_path / 'orders'), **kw)
    ctx = Ctx(params, lcm.CERT_SPEC, check_mode=check_mode, diff=True)
    return lcm.execute_local_ca_certificate(ctx), ctx


def test_root_created_then_left_alone(tmp_path):
    r1 = root(tmp_path)
    assert r1['changed'] and r1['changed_reasons'] == ['created']
    assert oct(os.stat(tmp_path / 'root' / 'ca.key').st_mode & 0o777) == '0o600'
    cert = x509.load_pem_x509_certificate(r1['certificate'].encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    r2 = root(tmp_path)
    assert not r2['changed'] and r2['serial'] == r1['serial']


def test_check_mode_creates_nothing(tmp_path):
    params = dict(path=str(tmp_path / 'root'), common_name='X')
    res = lcm.execute_local_ca(Ctx(params, lcm.LOCAL_CA_SPEC, check_mode=True))
    assert res['changed'] and not (tmp_path / 'root').exists()


def test_intermediate_chain_path_length_and_constraints(tmp_path):
    root(tmp_path)
    params = dict(path=str(tmp_path / 'int'), type='intermediate', parent_path=str(tmp_path / 'root'),
                  common_name='Issuing CA', name_constraints_permitted=['DNS:example.com'])
    res = lcm.execute_local_ca(Ctx(params, lcm.LOCAL_CA_SPEC))
    cert = x509.load_pem_x509_certificate(res['certificate'].encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    nc = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    assert [g.value for g in nc.permitted_subtrees] == ['example.com']
    assert 'Test Root CA' in res['chain'] or res['chain'].startswith('-----BEGIN CERTIFICATE-----')
    csr = make_csr()
    out = sign(tmp_path, csr, ca='int')[0]
    leaf = x509.load_pem_x509_certificate(out['certificate'].encode())
    chain = x509.load_pem_x509_certificates(out['chain'].encode())
    assert leaf.issuer == chain[0].subject and chain[0].issuer == chain[1].subject
    leaf.verify_directly_issued_by(chain[0])
    chain[0].verify_directly_issued_by(chain[1])


def test_import_refuses_non_ca_and_mismatched_key(tmp_path):
    root(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr(key=key)
    out = sign(tmp_path, csr)[0]
    (tmp_path / 'leaf.crt').write_text(out['certificate'])
    (tmp_path / 'leaf.key').write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    params = dict(path=str(tmp_path / 'imp'), type='import', certificate_path=str(tmp_path / 'leaf.crt'),
                  privatekey_path=str(tmp_path / 'leaf.key'))
    with pytest.raises(ConfigError) as exc:
        lcm.execute_local_ca(Ctx(params, lcm.LOCAL_CA_SPEC))
    assert exc.value.option == 'certificate_path' and 'not a CA' in str(exc.value)
    params['certificate_path'] = str(tmp_path / 'root' / 'ca.crt')
    with pytest.raises(ConfigError) as exc:
        lcm.execute_local_ca(Ctx(params, lcm.LOCAL_CA_SPEC))
    assert exc.value.option == 'privatekey_path'
    assert not (tmp_path / 'imp').exists()
    params['privatekey_path'] = str(tmp_path / 'root' / 'ca.key')
    res = lcm.execute_local_ca(Ctx(params, lcm.LOCAL_CA_SPEC))
    assert res['changed'] and res['changed_reasons'] == ['imported']


def test_ca_key_not_matching_certificate(tmp_path):
    root(tmp_path)
    root(tmp_path, name='other')
    os.replace(tmp_path / 'other' / 'ca.key', tmp_path / 'root' / 'ca.key')
    csr = make_csr()
    with pytest.raises(ConfigError) as exc:
        sign(tmp_path, csr)
    assert 'does not match' in str(exc.value)


@pytest.mark.parametrize('profile,eku', [
    ('tls_server', ExtendedKeyUsageOID.SERVER_AUTH),
    ('tls_client', ExtendedKeyUsageOID.CLIENT_AUTH),
    ('code_signing', ExtendedKeyUsageOID.CODE_SIGNING),
])
def test_profiles_set_eku(tmp_path, profile, eku):
    root(tmp_path)
    csr = make_csr()
    out = sign(tmp_path, csr, profile=profile)[0]
    cert = x509.load_pem_x509_certificate(out['certificate'].encode())
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [eku]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign


def test_email_profile_needs_email_san(tmp_path):
    root(tmp_path)
    csr = make_csr()
    with pytest.raises(PolicyError):
        sign(tmp_path, csr, profile='email')


def test_rsa_key_gets_key_encipherment(tmp_path):
    root(tmp_path)
    csr = make_csr(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    out = sign(tmp_path, csr)[0]
    cert = x509.load_pem_x509_certificate(out['certificate'].encode())
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_allowed_domains_and_wildcards(tmp_path):
    root(tmp_path)
    csr = make_csr(['www.evil.test'])
    with pytest.raises(PolicyError) as exc:
        sign(tmp_path, csr, allowed_domains=['example.com'])
    assert exc.value.option == 'subject_alt_names' and 'allowed domains' in str(exc.value)
    csr = make_csr(['*.example.com'])
    with pytest.raises(PolicyError) as exc:
        sign(tmp_path, csr, profile='tls_client')
    assert 'wildcard' in str(exc.value)
    with pytest.raises(PolicyError):
        sign(tmp_path, csr, allow_wildcards=False)
    out = sign(tmp_path, csr, allowed_domains=['example.com'])[0]
    assert out['subject_alt_names'] == ['DNS:*.example.com']
    from ansible_collections.certforge.pki.plugins.module_utils.issuers.local_ca import LocalCA
    assert 'evil' not in json.dumps(LocalCA(str(tmp_path / 'root')).index())


def test_bad_csr_signature_and_garbage(tmp_path):
    root(tmp_path)
    csr = make_csr()
    der = bytearray(x509.load_pem_x509_csr(csr.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF
    import base64
    body = base64.encodebytes(bytes(der)).decode()
    tampered = '-----BEGIN CERTIFICATE REQUEST-----\n%s-----END CERTIFICATE REQUEST-----\n' % body
    with pytest.raises(ConfigError) as exc:
        sign(tmp_path, tampered)
    assert exc.value.option == 'csr'
    with pytest.raises(ConfigError) as exc:
        sign(tmp_path, 'not a csr')
    assert exc.value.option == 'csr'


def test_validity_capped_with_warning(tmp_path):
    root(tmp_path)
    csr = make_csr()
    out, ctx = sign(tmp_path, csr, validity_days=1000, max_ttl_days=100)
    cert = x509.load_pem_x509_certificate(out['certificate'].encode())
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=99) < life <= datetime.timedelta(days=100, minutes=6)
    assert any('capped' in w for w in ctx.warnings)


def test_renewal_idempotence_and_reasons(tmp_path):
    root(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr(key=key)
    path = str(tmp_path / 'www.crt')
    first = sign(tmp_path, csr, path=path)[0]
    assert first['changed'] and first['renewal_reasons'] == ['missing']
    second = sign(tmp_path, csr, path=path)[0]
    assert not second['changed'] and second['serial'] == first['serial']
    # same key, more names -> san_changed
    csr2 = make_csr(['www.example.com', 'api.example.com'], key=key)
    third = sign(tmp_path, csr2, path=path, check_mode=True)[0]
    assert third['changed'] and third['renewal_reasons'] == ['san_changed']
    assert open(path).read() == first['certificate']
    # inside the window
    fourth = sign(tmp_path, csr, path=path, renew_before_days=200)[0]
    assert fourth['changed'] and fourth['renewal_reasons'] == ['inside_window']
    # another profile
    fifth = sign(tmp_path, csr, path=path, profile='tls_client')[0]
    assert fifth['renewal_reasons'] == ['profile_changed']


def test_revoke_and_crl(tmp_path):
    root(tmp_path)
    csr = make_csr()
    out = sign(tmp_path, csr)[0]
    crl_params = dict(ca_path=str(tmp_path / 'root'), path=str(tmp_path / 'ca.crl'),
                      der_path=str(tmp_path / 'ca.crl.der'))
    r = lcm.execute_local_ca_crl(Ctx(crl_params, lcm.CRL_SPEC))
    assert r['changed'] and r['revoked_serials'] == []
    assert not lcm.execute_local_ca_crl(Ctx(crl_params, lcm.CRL_SPEC))['changed']
    rv = lcm.execute_local_ca_certificate(Ctx(dict(ca_path=str(tmp_path / 'root'), state='revoked',
                                                   serial=out['serial'], revocation_reason='key_compromise'),
                                              lcm.CERT_SPEC))
    assert rv['changed'] and rv['revocation_reason'] == 'key_compromise'
    again = lcm.execute_local_ca_certificate(Ctx(dict(ca_path=str(tmp_path / 'root'), state='revoked',
                                                      serial=out['serial']), lcm.CERT_SPEC))
    assert not again['changed']
    r = lcm.execute_local_ca_crl(Ctx(crl_params, lcm.CRL_SPEC))
    assert r['changed'] and r['changed_reasons'] == ['revocations_changed'] and r['crl_number'] == 2
    crl = x509.load_der_x509_crl((tmp_path / 'ca.crl.der').read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(int(out['serial'], 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise


def test_revoke_unknown_serial(tmp_path):
    root(tmp_path)
    with pytest.raises(ConfigError) as exc:
        lcm.execute_local_ca_certificate(Ctx(dict(ca_path=str(tmp_path / 'root'), state='revoked',
                                                  serial='0A0B'), lcm.CERT_SPEC))
    assert exc.value.option == 'serial'


def test_generic_certificate_module_dispatches_local_ca(tmp_path):
    root(tmp_path)
    csr = make_csr()
    from ansible_collections.certforge.pki.plugins.module_utils.certificate import SPEC
    params = dict(name='www', issuer='local_ca', issuer_options={'ca_path': str(tmp_path / 'root'),
                                                                 'ca_passphrase': None},
                  csr=csr, order_store=str(tmp_path / 'orders'))
    res = certificate_execute(Ctx(params, SPEC))
    assert res['status'] == 'issued' and res['renewal_reasons'] == ['missing']
    params['current_certificate'] = res['certificate']
    res2 = certificate_execute(Ctx(params, SPEC))
    assert res2['status'] == 'valid' and not res2['changed'] and res2['serial'] == res['serial']
    params['issuer'] = 'nope'
    with pytest.raises(ConfigError) as exc:
        certificate_execute(Ctx(params, SPEC))
    assert exc.value.option == 'issuer' and 'local_ca' in str(exc.value)


def _index(tmp_path, ca='root'):
    from ansible_collections.certforge.pki.plugins.module_utils.issuers.local_ca import LocalCA
    return LocalCA(str(tmp_path / ca)).index()


def test_empty_store_returns_the_certificate_already_signed(tmp_path):
    """Every job with a fresh order store (AWX): the CA is searched by the derived token."""
    root(tmp_path)
    csr = make_csr()
    from ansible_collections.certforge.pki.plugins.module_utils.certificate import SPEC
    serials = set()
    for job in range(5):
        params = dict(name='www', issuer='local_ca', issuer_options={'ca_path': str(tmp_path / 'root')},
                      csr=csr, order_store=str(tmp_path / ('orders-%d' % job)))
        res = certificate_execute(Ctx(params, SPEC))
        assert res['status'] == 'issued' and res['changed']
        serials.add(res['serial'])
    assert len(serials) == 1 and len(_index(tmp_path)) == 1


def test_failed_deploys_do_not_sign_again_and_renewal_records_what_it_supersedes(tmp_path):
    root(tmp_path)
    csr = make_csr()
    from ansible_collections.certforge.pki.plugins.module_utils.certificate import SPEC
    params = dict(name='www', issuer='local_ca', issuer_options={'ca_path': str(tmp_path / 'root')},
                  csr=csr, order_store=str(tmp_path / 'orders'))
    first = certificate_execute(Ctx(params, SPEC))
    for dummy in range(20):                       # the deploy keeps failing: nothing reaches the host
        again = certificate_execute(Ctx(params, SPEC))
        assert again['serial'] == first['serial'] and again['reused']
    assert len(_index(tmp_path)) == 1
    params.update(current_certificate=first['certificate'], force=True)
    renewed = certificate_execute(Ctx(params, SPEC))
    index = _index(tmp_path)
    assert len(index) == 2 and index[renewed['serial']]['replaces'] == first['serial']
    assert index[first['serial']]['superseded_by'] == renewed['serial']


def test_a_ca_made_by_an_earlier_version_keeps_working(tmp_path):
    """index.json of an earlier version is read (records, tokens, revocations), never rewritten."""
    import shutil
    from ansible_collections.certforge.pki.plugins.module_utils.issuers.local_ca import LocalCA
    root(tmp_path)
    csr = make_csr()
    from ansible_collections.certforge.pki.plugins.module_utils.certificate import SPEC
    params = dict(name='www', issuer='local_ca', issuer_options={'ca_path': str(tmp_path / 'root')},
                  csr=csr, order_store=str(tmp_path / 'orders'))
    first = certificate_execute(Ctx(params, SPEC))
    ca_dir = tmp_path / 'root'
    legacy = LocalCA(str(ca_dir)).index()
    (ca_dir / 'index.json').write_text(json.dumps(legacy))
    shutil.rmtree(str(ca_dir / 'records'))
    shutil.rmtree(str(ca_dir / 'tokens'))
    before = (ca_dir / 'index.json').read_text()
    # an empty store finds the legacy record by its token: no second signature
    params['order_store'] = str(tmp_path / 'orders-2')
    again = certificate_execute(Ctx(params, SPEC))
    assert again['serial'] == first['serial']
    ca = LocalCA(str(ca_dir))
    assert ca.revoke(first['serial'])[0] and first['serial'] in ca.revoked()
    assert LocalCA(str(ca_dir)).record(first['serial'])['status'] == 'revoked'
    assert (ca_dir / 'index.json').read_text() == before


def test_a_signature_killed_between_its_files_is_never_repeated(tmp_path):
    """The token is written first, the certificate second, the record last: a kill after the
    certificate was kept returns that certificate again; a kill before it signs anew."""
    from ansible_collections.certforge.pki.plugins.module_utils.issuers.local_ca import LocalCA
    root(tmp_path)
    ca = LocalCA(str(tmp_path / 'root')).load()
    csr = make_csr()
    dummy, first = ca.sign(csr, name='www', token='t' * 32)
    # killed after the certificate, before the record
    os.unlink(str(tmp_path / 'root' / 'records' / (first['serial'] + '.json')))
    dummy, again = LocalCA(str(tmp_path / 'root')).load().sign(csr, name='www', token='t' * 32)
    assert again['serial'] == first['serial']
    assert len(LocalCA(str(tmp_path / 'root')).index()) == 1
    # killed after the token, before the certificate: that signature never existed
    os.unlink(str(tmp_path / 'root' / 'records' / (first['serial'] + '.json')))
    os.unlink(str(tmp_path / 'root' / 'certs' / (first['serial'] + '.pem')))
    ca = LocalCA(str(tmp_path / 'root')).load()
    assert ca.find(token='t' * 32) == []
    dummy, fresh = ca.sign(csr, name='www', token='t' * 32)
    assert fresh['serial'] != first['serial']
    assert [r['serial'] for r in ca.find(token='t' * 32)] == [fresh['serial']]
