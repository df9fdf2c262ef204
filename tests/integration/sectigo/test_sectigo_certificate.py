"""sectigo_certificate (and certificate with issuer: sectigo) through real ansible-playbook runs
against the Sectigo Certificate Manager simulator.  The simulator's clock is frozen unless the
test advances it, so nothing here waits for real time beyond tiny poll steps."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DV = 'Sectigo DV SSL'
FAST = {'poll_schedule': [0.05], 'poll_jitter': 0}


def make_csr(directory, name, cn, sans=None, key=None, org=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    attrs = ([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []) + [
        x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if sans != []:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in (sans or [cn])]), critical=False)
    path = directory / ('%s.csr' % name)
    path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return str(path), key


def connection(sim, **extra):
    conn = dict(base_url=sim.base_url, customer_uri=sim.customer_uri, login=sim.login,
                password=sim.password, ca_bundle=sim.ca_bundle)
    conn.update(extra)
    return conn


def play(sim, tasks, store, conn=None):
    return [{'hosts': 'localhost', 'gather_facts': False,
             'module_defaults': {'group/certforge.pki.sectigo': conn or connection(sim)},
             'tasks': tasks}]


def cert_task(name, store, register='cert', **args):
    base = dict(name=name, organization='Example Org', custom_fields={'cost-center': 'CC-42'},
                order_store=store, wait_timeout=2)
    base.update(FAST)
    base.update(args)
    return {'name': register, 'certforge.pki.sectigo_certificate': base, 'register': register}


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / 'orders')


def _serial(path):
    return '%X' % x509.load_pem_x509_certificate(open(path, 'rb').read()).serial_number


def test_dv_issue_idempotent_then_generic_module(sectigo_sim, run_playbook, tmp_path, store):
    sectigo_sim.configure(issue_delays={'DV': 0})
    csr, dummy = make_csr(tmp_path, 'www', 'www.example.com')
    crt, chain, full = (str(tmp_path / n) for n in ('www.crt', 'chain.crt', 'full.crt'))
    tasks = [cert_task('www', store, profile=DV, csr_path=csr, certificate_path=crt, chain_path=chain,
                       fullchain_path=full)]
    result = run_playbook(play(sectigo_sim, tasks, store))
    assert result.rc == 0, result
    out = result.task('cert')
    assert out['changed'] and out['status'] == 'issued' and out['ssl_id'] > 0
    assert out['renewal_reasons'] == ['missing']
    assert open(crt).read() == out['certificate'] and open(full).read() == out['certificate'] + out['chain']
    assert sectigo_sim.issuing_pem.strip() in out['chain'] and sectigo_sim.root_pem.strip() not in out['chain']
    assert out['serial'] and out['not_after']
    again = run_playbook(play(sectigo_sim, tasks, store))
    assert again.rc == 0 and not again.task('cert')['changed'] and again.task('cert')['status'] == 'valid'
    assert sectigo_sim.enroll_count() == 1

    generic = [{'name': 'generic', 'register': 'generic', 'certforge.pki.certificate': dict(
        name='api', issuer='sectigo', csr_path=make_csr(tmp_path, 'api', 'api.example.com')[0],
        order_store=store, wait_timeout=2, poll_schedule=[0.05],
        issuer_options=dict(connection(sectigo_sim), profile=DV, organization='Example Org',
                            custom_fields={'cost-center': 'CC-42'}))}]
    result = run_playbook(play(sectigo_sim, generic, store))
    assert result.rc == 0, result
    assert result.task('generic')['status'] == 'issued'
    assert sectigo_sim.password not in result.stdout
    assert sectigo_sim.enroll_count() == 2


def test_ov_pending_past_deadline_then_resumed(sectigo_sim, run_playbook, tmp_path, store):
    csr, dummy = make_csr(tmp_path, 'ov', 'shop.example.com')
    crt = str(tmp_path / 'ov.crt')
    tasks = [cert_task('ov', store, profile='Sectigo OV SSL', term=395, csr_path=csr, certificate_path=crt,
                       wait_timeout=1)]
    first = run_playbook(play(sectigo_sim, tasks, store))
    assert first.rc == 0, first
    out = first.task('cert')
    assert out['status'] == 'pending' and out['changed'] and out['ssl_id']
    sectigo_sim.advance(61)
    second = run_playbook(play(sectigo_sim, tasks, store))
    assert second.rc == 0, second
    done = second.task('cert')
    assert done['status'] == 'issued' and done['ssl_id'] == out['ssl_id'] and done.get('resumed')
    assert sectigo_sim.enroll_count() == 1
    assert len(sectigo_sim.audit(method='POST', path='/ssl/v1/enroll')) == 1


def test_fail_on_pending(sectigo_sim, run_playbook, tmp_path, store):
    csr, dummy = make_csr(tmp_path, 'ov', 'shop.example.com')
    tasks = [cert_task('ov', store, profile='Sectigo OV SSL', csr_path=csr, wait_timeout=0, fail_on_pending=True)]
    result = run_playbook(play(sectigo_sim, tasks, store))
    assert result.status('cert') == 'failed' and result.task('cert')['error_option'] == 'wait_timeout'


def test_ev_waits_for_approval(sectigo_sim, run_playbook, tmp_path, store):
    csr, dummy = make_csr(tmp_path, 'ev', 'bank.example.com')
    tasks = [cert_task('ev', store, profile='Sectigo EV SSL', csr_path=csr, wait_timeout=0)]
    first = run_playbook(play(sectigo_sim, tasks, store))
    ssl_id = first.task('cert')['ssl_id']
    assert first.task('cert')['status'] == 'pending'
    sectigo_sim.advance(3600)
    assert run_playbook(play(sectigo_sim, tasks, store)).task('cert')['status'] == 'pending'
    sectigo_sim.approve(ssl_id)
    sectigo_sim.advance(11)
    done = run_playbook(play(sectigo_sim, tasks, store)).task('cert')
    assert done['status'] == 'issued' and done['ssl_id'] == ssl_id
    assert sectigo_sim.enroll_count() == 1


def test_renewal_in_window_then_replace_after_key_rotation(sectigo_sim, run_playbook, tmp_path, store):
    sectigo_sim.configure(issue_delays={'DV': 0})
    csr, key = make_csr(tmp_path, 'www', 'www.example.com')
    crt = str(tmp_path / 'www.crt')
    tasks = [cert_task('www', store, profile=DV, csr_path=csr, certificate_path=crt)]
    first = run_playbook(play(sectigo_sim, tasks, store)).task('cert')
    serial1 = _serial(crt)
    renew = [cert_task('www', store, profile=DV, csr_path=csr, certificate_path=crt, renew_before_days=400)]
    second = run_playbook(play(sectigo_sim, renew, store))
    assert second.rc == 0, second
    out = second.task('cert')
    assert out['status'] == 'issued' and 'inside_window' in ' '.join(out['renewal_reasons']) or out['renewal_reasons']
    assert out['ssl_id'] != first['ssl_id'] and _serial(crt) != serial1
    assert len(sectigo_sim.audit(method='POST', path='/ssl/v1/renewById/*')) == 1
    # rotate the key: same names, new key -> replace keeps the sslId
    csr2, dummy = make_csr(tmp_path, 'www2', 'www.example.com')
    rotated = [cert_task('www', store, profile=DV, csr_path=csr2, certificate_path=crt)]
    third = run_playbook(play(sectigo_sim, rotated, store))
    assert third.rc == 0, third
    out3 = third.task('cert')
    assert out3['status'] == 'issued' and out3['ssl_id'] == out['ssl_id']
    assert len(sectigo_sim.audit(method='POST', path='/ssl/v1/replace/*')) == 1
    assert sectigo_sim.enroll_count() == 1


def test_revoke_by_id_and_by_serial(sectigo_sim, run_playbook, tmp_path, store):
    sectigo_sim.configure(issue_delays={'DV': 0})
    tasks = [cert_task('a', store, register='a', profile=DV, csr_path=make_csr(tmp_path, 'a', 'a.example.com')[0]),
             cert_task('b', store, register='b', profile=DV, csr_path=make_csr(tmp_path, 'b', 'b.example.com')[0])]
    issued = run_playbook(play(sectigo_sim, tasks, store))
    a, b = issued.task('a'), issued.task('b')
    revoke = [{'name': 'by_id', 'certforge.pki.sectigo_certificate': {
        'state': 'revoked', 'ssl_id': a['ssl_id'], 'revocation_reason': 'superseded'}},
        {'name': 'by_serial', 'certforge.pki.sectigo_certificate': {
            'state': 'revoked', 'serial': b['serial'], 'revocation_reason': 'key_compromise'}}]
    check = run_playbook(play(sectigo_sim, revoke, store), check=True)
    assert check.task('by_id')['changed'] and not sectigo_sim.audit(method='POST', path='/ssl/v1/revoke*')
    result = run_playbook(play(sectigo_sim, revoke, store))
    assert result.rc == 0, result
    assert result.task('by_id')['changed'] and result.task('by_serial')['changed']
    assert sectigo_sim.order(a['ssl_id'])['status'] == 'Revoked'
    assert sectigo_sim.order(b['ssl_id'])['status'] == 'Revoked'
    assert sectigo_sim.order(b['ssl_id'])['reasonCode'] == 1
    again = run_playbook(play(sectigo_sim, revoke, store))
    assert not again.task('by_id')['changed'] and not again.task('by_serial')['changed']


@pytest.mark.parametrize('mode', ['pem', 'pkcs12'])
def test_client_certificate_auth(sectigo_sim, run_playbook, tmp_path, store, mode):
    sectigo_sim.configure(issue_delays={'DV': 0})
    conn = dict(base_url=sectigo_sim.private_base_url, customer_uri=sectigo_sim.customer_uri,
                login=sectigo_sim.login, ca_bundle=sectigo_sim.ca_bundle)
    if mode == 'pem':
        conn.update(client_cert=sectigo_sim.client_cert, client_key=sectigo_sim.client_key)
    else:
        conn.update(pkcs12_path=sectigo_sim.client_p12, pkcs12_passphrase=sectigo_sim.client_p12_passphrase)
    tasks = [cert_task('m', store, profile=DV, csr_path=make_csr(tmp_path, 'm', 'mtls.example.com')[0])]
    result = run_playbook(play(sectigo_sim, tasks, store, conn=conn))
    assert result.rc == 0, result
    assert result.task('cert')['status'] == 'issued'
    audit = sectigo_sim.audit(method='POST', path='/ssl/v1/enroll')
    assert audit and all(e['auth'] == 'certificate' for e in audit)


@pytest.mark.parametrize('fault', [
    dict(kind='rate_limit', path='/ssl/v1/enroll', method='POST', retry_after=1),
    dict(kind='server_error', path='/ssl/v1/*', method='GET', times=2),
    dict(kind='reset', path='/ssl/v1/enroll', method='POST'),
    dict(kind='rate_limit', path='/ssl/v1/types', method='GET', retry_after=1),
    dict(kind='drop', path='/ssl/v1/enroll', method='POST'),
])
def test_faults_end_with_one_order(sectigo_sim, run_playbook, tmp_path, store, fault):
    sectigo_sim.configure(issue_delays={'DV': 0})
    sectigo_sim.fault(**fault)
    tasks = [cert_task('f', store, profile=DV, csr_path=make_csr(tmp_path, 'f', 'faults.example.com')[0])]
    tasks[0]['certforge.pki.sectigo_certificate']['recover_window'] = 1
    first = run_playbook(play(sectigo_sim, tasks, store))
    assert first.rc == 0, first                     # transient trouble is waited out, never failed
    out = first.task('cert')
    if out['status'] == 'pending':                  # a lost answer: the next run recovers
        assert fault['kind'] in ('drop', 'reset'), first
        second = run_playbook(play(sectigo_sim, tasks, store))
        assert second.rc == 0, second
        out = second.task('cert')
        if fault['kind'] == 'drop':
            assert out.get('recovered')
    assert out['status'] == 'issued'
    assert sectigo_sim.enroll_count() == 1


def test_wrong_credentials(sectigo_sim, run_playbook, tmp_path, store):
    tasks = [cert_task('x', store, profile=DV, csr_path=make_csr(tmp_path, 'x', 'x.example.com')[0])]
    result = run_playbook(play(sectigo_sim, tasks, store, conn=connection(sectigo_sim, password='wrong-pass')))
    assert result.status('cert') == 'failed'
    assert result.task('cert')['error_option'] == 'password' and 'wrong-pass' not in result.stdout
    assert sectigo_sim.enroll_count() == 0


BAD = [
    ({'profile': 'No Such Profile'}, 'profile'),
    ({'profile': '99999'}, 'profile'),
    ({'profile': 'Sectigo OV SSL', 'term': 730}, 'term'),
    ({'organization': 'Nope Org'}, 'organization'),
    ({'department': 'Nope Team'}, 'department'),
    ({'department': 'Legacy Team'}, 'department'),
    ({'organization': 'Dormant Org'}, 'organization'),
    ({'custom_fields': {'ticket': 'T-1'}}, 'custom_fields'),
    ({'comments': 'x' * 1020}, 'comments'),
    ({'external_requester': ['nope']}, 'external_requester'),
    ({'csr': '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n'}, 'csr'),
    ({'cn_not_in_sans': True}, 'csr'),
    ({'single_many': True}, 'subject_alt_names'),
]


def test_bad_input_fails_naming_the_option(sectigo_sim, run_playbook, tmp_path, store):
    """Every bad input in one playbook (ignore_errors): each task fails naming its option, and
    nothing is written at SCM."""
    tasks = []
    for index, (bad, option) in enumerate(BAD):
        bad = dict(bad)
        args = dict(profile=DV)
        if bad.pop('cn_not_in_sans', False):
            args['csr_path'] = make_csr(tmp_path, 'x%d' % index, 'www.example.com', sans=['shop.example.com'])[0]
        elif bad.pop('single_many', False):
            args['csr_path'] = make_csr(tmp_path, 'x%d' % index, 'www.example.com',
                                        sans=['www.example.com', 'shop.example.com'])[0]
        elif 'csr' not in bad:
            args['csr_path'] = make_csr(tmp_path, 'x%d' % index, 'www.example.com')[0]
        args.update(bad)
        task = cert_task('x%d' % index, store, register='bad%d' % index, **args)
        task['certforge.pki.sectigo_certificate']['custom_fields'] = args.get(
            'custom_fields', {'cost-center': 'CC-42'})
        task['ignore_errors'] = True
        tasks.append(task)
    result = run_playbook(play(sectigo_sim, tasks, store))
    assert 'Traceback' not in result.stdout
    for index, (bad, option) in enumerate(BAD):
        out = result.task('bad%d' % index)
        assert result.status('bad%d' % index) == 'ignored', (bad, out)
        assert out['error_option'] == option, (bad, out['msg'])
    assert sectigo_sim.enroll_count() == 0
    assert not sectigo_sim.audit(method='POST')


def test_revoke_errors(sectigo_sim, run_playbook, tmp_path, store):
    tasks = [cert_task('ov', store, profile='Sectigo OV SSL', csr_path=make_csr(tmp_path, 'ov', 'o.example.com')[0],
                       wait_timeout=0)]
    pending = run_playbook(play(sectigo_sim, tasks, store)).task('cert')
    revoke = [{'name': 'unknown', 'ignore_errors': True,
               'certforge.pki.sectigo_certificate': {'state': 'revoked', 'ssl_id': 987654}},
              {'name': 'not_issued', 'ignore_errors': True,
               'certforge.pki.sectigo_certificate': {'state': 'revoked', 'ssl_id': pending['ssl_id']}}]
    result = run_playbook(play(sectigo_sim, revoke, store))
    assert result.status('unknown') == 'ignored' and result.task('unknown')['error_option'] == 'ssl_id'
    assert result.status('not_issued') == 'ignored' and result.task('not_issued')['error_option'] == 'ssl_id'
    assert 'Applied' in result.task('not_issued')['msg'] or 'Requested' in result.task('not_issued')['msg']


def test_client_cert_with_public_base_url_refused(sectigo_sim, run_playbook, tmp_path, store):
    conn = dict(base_url=sectigo_sim.base_url, customer_uri=sectigo_sim.customer_uri, login=sectigo_sim.login,
                ca_bundle=sectigo_sim.ca_bundle, client_cert=sectigo_sim.client_cert,
                client_key=sectigo_sim.client_key)
    tasks = [cert_task('m', store, profile=DV, csr_path=make_csr(tmp_path, 'm', 'mtls.example.com')[0])]
    result = run_playbook(play(sectigo_sim, tasks, store, conn=conn))
    assert result.status('cert') == 'failed'
    out = result.task('cert')
    assert out['error_option'] == 'base_url' and '/private/api' in out['msg']
    assert not sectigo_sim.audit()


def test_generic_module_renews_through_the_cas_renewal_and_never_twice(sectigo_sim, run_playbook, tmp_path, store):
    """certificate (the generic module the role uses) passes the certificate it replaces: a kept
    key renews by id, a new key replaces; a rerun after a deploy that never happened and a job
    with an empty store return the certificate already issued.  Counted in the SCM audit."""
    sectigo_sim.configure(issue_delays={'DV': 0})
    csr, dummy = make_csr(tmp_path, 'web', 'web.example.com')

    def generic(current=None, force=False, order_store=store, csr_path=csr):
        args = dict(name='web', issuer='sectigo', csr_path=csr_path, order_store=order_store,
                    wait_timeout=5, poll_schedule=[0.05], force=force,
                    issuer_options=dict(connection(sectigo_sim), profile=DV, organization='Example Org',
                                        custom_fields={'cost-center': 'CC-42'}))
        if current:
            args['current_certificate'] = current
        result = run_playbook(play(sectigo_sim, [{'name': 'g', 'register': 'g', 'certforge.pki.certificate': args}],
                                   store))
        assert result.rc == 0, result
        return result.task('g')

    first = generic()
    assert first['status'] == 'issued' and sectigo_sim.enroll_count() == 1
    renewed = generic(current=first['certificate'], force=True)
    assert renewed['status'] == 'issued' and renewed['serial'] != first['serial']
    assert len(sectigo_sim.audit(method='POST', path='/ssl/v1/renewById/*')) == 1
    # the deploy of the renewal failed (the host still has the first certificate): no new order
    again = generic(current=first['certificate'], force=True)
    assert again['reused'] and again['serial'] == renewed['serial']
    # an AWX job with a fresh store: the renewal is found at the CA, not ordered again
    fresh = generic(current=first['certificate'], force=True, order_store=str(tmp_path / 'fresh'))
    assert fresh['serial'] == renewed['serial'] and fresh.get('recovered')
    assert len(sectigo_sim.audit(method='POST', path='/ssl/v1/renewById/*')) == 1
    # a new key for the same names: replace (the same sslId), not a fresh enroll
    csr2, dummy = make_csr(tmp_path, 'web2', 'web.example.com')
    replaced = generic(current=renewed['certificate'], csr_path=csr2, force=True)
    assert replaced['status'] == 'issued'
    assert len(sectigo_sim.audit(method='POST', path='/ssl/v1/replace/*')) == 1
    assert sectigo_sim.enroll_count() == 1
