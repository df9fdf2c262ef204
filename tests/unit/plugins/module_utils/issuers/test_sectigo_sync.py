"""Unit tests of the Sectigo certificate sync engine (sectigo_sync.py) against the SCM simulator
running in this process on 127.0.0.1."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import math
import os
import sys
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import AuthError, ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.issuers import sectigo_sync
from ansible_collections.certforge.pki.plugins.module_utils.issuers.sectigo import SectigoClient
from ansible_collections.certforge.pki.plugins.module_utils.issuers.sectigo_sync import (
    CertificateSync, days_left, execute_certificate_info, normalize, parse_date, tenant_key,
)

try:
    from ansible_collections.certforge.pki.tests.simulators.sectigo_scm import start_simulator
except ImportError:  # run without the build/collections link on PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[5]))
    from tests.simulators.sectigo_scm import start_simulator  # noqa: E402  pylint: disable=import-error

SEEDED = 1000


def _options(sim, **kw):
    options = dict(base_url=sim.base_url, customer_uri=sim.customer_uri, login=sim.login,
                   password=sim.password, ca_bundle=sim.ca_bundle)
    options.update(kw)
    return options


def _sync(sim, **kw):
    options = _options(sim)
    kw.setdefault('tenant', tenant_key(options))
    return CertificateSync(lambda: SectigoClient.from_options(options), **kw)


class Ctx:
    def __init__(self, params, check_mode=False):
        validated = ArgumentSpecValidator(**sectigo_sync.INFO_SPEC.kwargs()).validate(params)
        assert not validated.error_messages, validated.error_messages
        self.params = validated.validated_parameters
        self.check_mode = check_mode
        self.diff = False
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


@pytest.fixture(scope='module')
def sim(tmp_path_factory):
    with start_simulator(seed=SEEDED, workdir=str(tmp_path_factory.mktemp('scm'))) as started:
        yield started


@pytest.fixture
def fresh_sim(tmp_path):
    with start_simulator(seed=600, workdir=str(tmp_path / 'scm')) as started:
        yield started


def _truth(sim):
    return dict((o['sslId'], o) for o in sim.orders(include_seeded=True))


def _lists(sim, since):
    return list(sim.audit(method='GET', path='/ssl/v1', since=since))


def _mark(sim):
    return max([e['seq'] for e in sim.audit()] or [0])


# ----------------------------------------------------------------------------- full sync

def test_full_sync_pages_and_every_record_once(sim):
    mark = _mark(sim)
    result = _sync(sim).run()
    truth = _truth(sim)
    ids = [c['ssl_id'] for c in result['certificates']]
    assert result['total'] == len(truth) == SEEDED
    assert sorted(ids) == ids and len(set(ids)) == len(ids) and set(ids) == set(truth)
    lists = _lists(sim, mark)
    assert len(lists) == math.ceil(SEEDED / 200.0)
    assert all(e['query']['size'] == '200' for e in lists)
    assert sorted(int(e['query']['position']) for e in lists) == list(range(0, SEEDED, 200))
    assert result['calls_by_kind'] == dict(list=5, count=0, details=SEEDED, collect=0, other=0)
    assert result['calls'] == SEEDED + 5 and result['fetched'] == SEEDED and result['skipped_unchanged'] == 0
    for cert in result['certificates'][:50]:
        real = truth[cert['ssl_id']]
        assert cert['status'] == real['status'] and cert['common_name'] == real['commonName']
        assert cert['serial'] == real.get('serialNumber') and cert['profile_id'] == real['certType']['id']
        assert cert['organization_id'] == real['orgId']
        if real.get('expires'):
            assert cert['not_after'][:10] == real['expires'][:10]


def test_page_size_and_sequential_worker(sim):
    mark = _mark(sim)
    result = _sync(sim, page_size=150, max_workers=1).run()
    assert result['total'] == SEEDED
    assert result['calls_by_kind']['list'] == math.ceil(SEEDED / 150.0) == len(_lists(sim, mark))


def test_one_session_per_worker(sim):
    sync = _sync(sim, max_workers=4, filters={'status': ['Issued']})
    made = []
    factory = sync.pool.factory
    sync.pool.factory = lambda: made.append(1) or factory()
    sync.run()
    assert 2 <= len(made) <= 5


# ----------------------------------------------------------------------------- filters

def test_server_filters(sim):
    truth = _truth(sim)
    issued = _sync(sim, filters={'status': ['issued']}).run()
    assert {c['ssl_id'] for c in issued['certificates']} == {i for i, o in truth.items() if o['status'] == 'Issued'}
    both = _sync(sim, filters={'profile_ids': [101, 201], 'status': ['Issued', 'Expired']}).run()
    want = {i for i, o in truth.items() if o['certType']['id'] in (101, 201) and o['status'] in ('Issued', 'Expired')}
    assert {c['ssl_id'] for c in both['certificates']} == want and both['calls_by_kind']['list'] >= 4
    org = _sync(sim, filters={'organization_id': 312}).run()
    assert {c['ssl_id'] for c in org['certificates']} == {i for i, o in truth.items() if o['orgId'] == 312}
    some = [o for o in truth.values() if o.get('serialNumber')][3]
    by_serial = _sync(sim, filters={'serial': some['serialNumber'].replace(':', '').lower()}).run()
    assert [c['ssl_id'] for c in by_serial['certificates']] == [some['sslId']]
    by_cn = _sync(sim, filters={'common_name': some['commonName'].upper()}).run()
    assert some['sslId'] in [c['ssl_id'] for c in by_cn['certificates']]
    assert all(c['common_name'] == some['commonName'] for c in by_cn['certificates'])


def test_expiring_within_days(sim):
    now = sim.now()
    result = _sync(sim, filters={'expiring_within_days': 30}, now=now).run()
    expected = set()
    for ssl_id, order in _truth(sim).items():
        end = parse_date(order.get('expires', '')[:10], end_of_day=True) if order.get('expires') else None
        if end is not None and now <= end.timestamp() <= now + 30 * 86400:
            expected.add(ssl_id)
    assert expected and {c['ssl_id'] for c in result['certificates']} == expected
    assert all(0 <= c['days_left'] <= 30 for c in result['certificates'])
    assert result['listed'] == SEEDED and result['total'] == len(expected)


# ----------------------------------------------------------------------------- incremental

def test_incremental_resync_fetches_only_changed(fresh_sim, tmp_path):
    state = str(tmp_path / 'state.json')
    first = _sync(fresh_sim, state_file=state).run()
    assert not first['incremental'] and first['fetched'] == 600 and os.stat(state).st_mode & 0o777 == 0o600
    changed = [c['ssl_id'] for c in first['certificates'] if c['status'] == 'Issued'][:5]
    for ssl_id in changed:
        fresh_sim.set_status(ssl_id, 'Revoked')
    mark = _mark(fresh_sim)
    second = _sync(fresh_sim, state_file=state).run()
    assert second['incremental'] and second['fetched'] == 5 and second['skipped_unchanged'] == 595
    details = [e['route'] for e in fresh_sim.audit(since=mark) if e['route'].startswith('/ssl/v1/')]
    assert sorted(details) == sorted('/ssl/v1/%d' % i for i in changed)
    assert second['total'] == 600 and second['calls_by_kind']['count'] == 1
    by_id = dict((c['ssl_id'], c) for c in second['certificates'])
    assert all(by_id[i]['status'] == 'Revoked' for i in changed)
    third = _sync(fresh_sim, state_file=state).run()
    assert third['fetched'] == 0 and third['skipped_unchanged'] == 600
    forced = _sync(fresh_sim, state_file=state, force_complete_sync=True).run()
    assert not forced['incremental'] and forced['fetched'] == 600


def test_state_of_another_tenant_is_ignored(fresh_sim, tmp_path):
    state = str(tmp_path / 'state.json')
    _sync(fresh_sim, state_file=state, tenant='elsewhere|x|y').run()
    result = _sync(fresh_sim, state_file=state).run()
    assert not result['incremental'] and result['fetched'] == 600
    assert json.loads(Path(state).read_text())['tenant'] == tenant_key(_options(fresh_sim))


def test_check_mode_writes_nothing(fresh_sim, tmp_path):
    state = tmp_path / 'state.json'
    out = tmp_path / 'pem'
    out.mkdir()
    ctx = Ctx(dict(_options(fresh_sim), state_file=str(state), download_dir=str(out), status=['Issued'],
                   organization_id=312), check_mode=True)
    result = execute_certificate_info(ctx)
    assert result['downloaded'] and result['changed'] and not result['state_file_written']
    assert not state.exists() and not list(out.iterdir())
    assert not fresh_sim.audit(path='/ssl/v1/collect/*')


# ----------------------------------------------------------------------------- downloads

def test_download_dir(fresh_sim, tmp_path):
    from cryptography import x509
    out = tmp_path / 'pem'
    out.mkdir()
    params = dict(_options(fresh_sim), download_dir=str(out), organization_id=312)
    first = execute_certificate_info(Ctx(params))
    issued = [c for c in first['certificates'] if c['status'] == 'Issued']
    assert issued and first['changed'] and len(first['downloaded']) == len(issued)
    assert sorted(os.listdir(str(out))) == sorted('%d.pem' % c['ssl_id'] for c in issued)
    cert = issued[0]
    pems = x509.load_pem_x509_certificates((out / ('%d.pem' % cert['ssl_id'])).read_bytes())
    assert len(pems) == 2 and '%X' % pems[0].serial_number == cert['serial'].replace(':', '').lstrip('0')
    assert pems[1].subject == pems[0].issuer
    mark = _mark(fresh_sim)
    second = execute_certificate_info(Ctx(params))
    assert not second['changed'] and second['downloaded'] == [] and second['download_skipped'] == len(issued)
    assert not fresh_sim.audit(path='/ssl/v1/collect/*', since=mark)


# ----------------------------------------------------------------------------- module entry and errors

def test_query(sim):
    ctx = Ctx(dict(_options(sim), status=['Revoked'], query="[?status=='Revoked'].ssl_id | length(@)"))
    result = execute_certificate_info(ctx)
    assert result['query_result'] == result['total'] > 0 and not result['changed']


@pytest.mark.parametrize('params, option', [
    (dict(page_size=201), 'page_size'),
    (dict(page_size=0), 'page_size'),
    (dict(max_workers=0), 'max_workers'),
    (dict(status=['Shipped']), 'status'),
    (dict(serial='not-hex'), 'serial'),
    (dict(expiring_within_days=-1), 'expiring_within_days'),
    (dict(query='[?status=='), 'query'),
    (dict(download_dir='/nonexistent/certforge'), 'download_dir'),
    (dict(state_file='/nonexistent/certforge/state.json'), 'state_file'),
])
def test_bad_input_names_the_option(sim, params, option):
    mark = _mark(sim)
    with pytest.raises(ConfigError) as info:
        execute_certificate_info(Ctx(dict(_options(sim), **params)))
    assert info.value.option == option and info.value.fix
    assert not sim.audit(since=mark)


def test_wrong_password(sim):
    with pytest.raises(AuthError) as info:
        execute_certificate_info(Ctx(_options(sim, password='wrong-password')))
    assert info.value.option == 'password' and 'wrong-password' not in str(info.value)


def test_damaged_state_file(sim, tmp_path):
    state = tmp_path / 'state.json'
    state.write_text('{not json')
    with pytest.raises(ConfigError) as info:
        _sync(sim, state_file=str(state)).run()
    assert info.value.option == 'state_file'


def test_dates_and_days_left():
    record = normalize({'sslId': 5, 'status': 'Issued', 'serialNumber': '0a:1b', 'issued': '01/02/2026',
                        'expires': '01/02/2027', 'certType': {'id': 101, 'name': 'DV'}})
    assert record['not_before'] == '2026-01-02T00:00:00Z' and record['not_after'] == '2027-01-02T23:59:59Z'
    assert record['serial'] == '0A:1B' and record['profile'] == 'DV'
    now = datetime.datetime(2027, 1, 1, 12, tzinfo=datetime.timezone.utc).timestamp()
    assert days_left(record, now) == 1
    assert days_left(record, now + 3 * 86400) == -2
    assert parse_date('2026-03-04T05:06:07Z').hour == 5 and parse_date('garbage') is None
