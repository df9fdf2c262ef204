"""sectigo_certificate_info through real ansible-playbook runs against the Sectigo Certificate
Manager simulator: paging over 5,000 records, filters, incremental re-sync, forced complete
sync, downloads, JMESPath query and bad input."""

import math
import os

from cryptography import x509


def connection(sim, **extra):
    conn = dict(base_url=sim.base_url, customer_uri=sim.customer_uri, login=sim.login,
                password=sim.password, ca_bundle=sim.ca_bundle)
    conn.update(extra)
    return conn


def play(sim, tasks, conn=None):
    return [{'hosts': 'localhost', 'gather_facts': False,
             'module_defaults': {'group/certforge.pki.sectigo': conn or connection(sim)},
             'tasks': tasks}]


def info(name, **args):
    return {'name': name, 'register': name, 'certforge.pki.sectigo_certificate_info': args}


def _mark(sim):
    return max([e['seq'] for e in sim.audit()] or [0])


def test_sync_5000_filters_incremental_and_forced(sectigo_sim_factory, run_playbook, tmp_path):
    sim = sectigo_sim_factory(seed=5000)
    truth = dict((o['sslId'], o) for o in sim.orders(include_seeded=True))
    state = str(tmp_path / 'sync.json')
    mark = _mark(sim)
    result = run_playbook(play(sim, [info('sync', state_file=state)]))
    assert result.rc == 0, result
    sync = result.task('sync')
    ids = [c['ssl_id'] for c in sync['certificates']]
    assert sync['total'] == 5000 and len(ids) == 5000 and set(ids) == set(truth)
    lists = sim.audit(method='GET', path='/ssl/v1', since=mark)
    assert len(lists) == math.ceil(5000 / 200.0) == sync['calls_by_kind']['list']
    assert sorted(int(e['query']['position']) for e in lists) == list(range(0, 5000, 200))
    assert sync['fetched'] == 5000 and not sync['changed'] and sync['state_file_written']
    sample = sync['certificates'][123]
    assert sample['status'] == truth[sample['ssl_id']]['status']
    assert sim.password not in result.stdout

    # a few records change; the re-sync reads only those
    changed = [i for i in ids if truth[i]['status'] == 'Issued'][:7]
    for ssl_id in changed:
        sim.set_status(ssl_id, 'Revoked')
    mark = _mark(sim)
    result = run_playbook(play(sim, [
        info('resync', state_file=state),
        info('forced', state_file=state, force_complete_sync=True),
        info('issued_dv_ov', status=['Issued'], profile_ids=[101, 201],
             query="[?days_left < `30`].common_name"),
        info('expiring', expiring_within_days=60, status=['issued']),
        info('one', serial=sample['serial'] or truth[changed[0]]['serialNumber']),
    ]))
    assert result.rc == 0, result
    resync = result.task('resync')
    assert resync['incremental'] and resync['fetched'] == 7 and resync['skipped_unchanged'] == 4993
    assert resync['total'] == 5000 and not resync['changed']
    first_run_details = [e['route'] for e in sim.audit(since=mark) if e['route'].startswith('/ssl/v1/')]
    assert sorted(first_run_details[:7]) == sorted('/ssl/v1/%d' % i for i in changed)
    statuses = dict((c['ssl_id'], c['status']) for c in resync['certificates'])
    assert all(statuses[i] == 'Revoked' for i in changed)
    forced = result.task('forced')
    assert forced['fetched'] == 5000 and forced['skipped_unchanged'] == 0 and not forced['incremental']

    filtered = result.task('issued_dv_ov')
    want = {i for i, o in truth.items() if o['status'] == 'Issued' and o['certType']['id'] in (101, 201)
            and i not in changed}
    assert {c['ssl_id'] for c in filtered['certificates']} == want
    assert filtered['query_result'] == [c['common_name'] for c in filtered['certificates'] if c['days_left'] < 30]
    expiring = result.task('expiring')
    assert expiring['certificates'] and all(0 <= c['days_left'] <= 60 and c['status'] == 'Issued'
                                            for c in expiring['certificates'])
    assert expiring['listed'] > expiring['total']
    one = result.task('one')
    assert one['total'] == 1 and one['calls'] == 2


def test_download_dir_check_mode_and_rerun(sectigo_sim_factory, run_playbook, tmp_path):
    sim = sectigo_sim_factory(seed=200)
    out = tmp_path / 'certs'
    out.mkdir()
    state = str(tmp_path / 'state.json')
    tasks = [info('dl', download_dir=str(out), state_file=state, organization_id=312)]
    checked = run_playbook(play(sim, tasks), check=True)
    assert checked.rc == 0, checked
    assert checked.task('dl')['downloaded'] and not os.listdir(str(out)) and not os.path.exists(state)
    result = run_playbook(play(sim, tasks))
    assert result.rc == 0, result
    dl = result.task('dl')
    issued = [c for c in dl['certificates'] if c['status'] == 'Issued']
    assert issued and result.status('dl') == 'changed'
    assert sorted(os.listdir(str(out))) == sorted('%d.pem' % c['ssl_id'] for c in issued)
    first = issued[0]
    chain = x509.load_pem_x509_certificates((out / ('%d.pem' % first['ssl_id'])).read_bytes())
    assert len(chain) == 2 and chain[0].issuer == chain[1].subject
    assert '%X' % chain[0].serial_number == first['serial'].replace(':', '').lstrip('0')
    mark = _mark(sim)
    again = run_playbook(play(sim, tasks))
    assert again.rc == 0 and again.status('dl') == 'ok', again
    assert again.task('dl')['downloaded'] == [] and again.task('dl')['download_skipped'] == len(issued)
    assert not sim.audit(path='/ssl/v1/collect/*', since=mark)
    assert not sim.audit(method='POST')


def test_bad_input(sectigo_sim, run_playbook):
    sim = sectigo_sim
    tasks = [dict(t, ignore_errors=True) for t in (
        info('big_page', page_size=500),
        info('bad_query', query='[?status=='),
        info('bad_status', status=['Shipped']),
        info('bad_serial', serial='xyz'),
        {'name': 'bad_password', 'register': 'bad_password', 'ignore_errors': True,
         'certforge.pki.sectigo_certificate_info': {'password': 'Wr0ng-password!'}},
    )]
    result = run_playbook(play(sim, tasks))
    for name, option in (('big_page', 'page_size'), ('bad_query', 'query'), ('bad_status', 'status'),
                         ('bad_serial', 'serial'), ('bad_password', 'password')):
        assert result.status(name) in ('failed', 'ignored'), (name, result)
        assert result.task(name)['error_option'] == option, result.task(name)
        assert 'Traceback' not in result.task(name)['msg']
    assert '200' in result.task('big_page')['msg']
    assert 'Wr0ng-password!' not in result.stdout
