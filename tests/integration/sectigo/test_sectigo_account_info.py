"""sectigo_account_info through real ansible-playbook runs against the SCM simulator."""


def test_account_info(sectigo_sim, run_playbook, monkeypatch):
    # connection from SECTIGO_* environment variables, as an AWX/AAP credential type injects them
    for var, value in (('SECTIGO_BASE_URL', sectigo_sim.base_url), ('SECTIGO_CUSTOMER_URI', sectigo_sim.customer_uri),
                       ('SECTIGO_LOGIN', sectigo_sim.login), ('SECTIGO_PASSWORD', sectigo_sim.password),
                       ('SECTIGO_CA_BUNDLE', sectigo_sim.ca_bundle)):
        monkeypatch.setenv(var, value)
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'info', 'register': 'info', 'certforge.pki.sectigo_account_info': {}},
        {'name': 'profiles', 'register': 'profiles',
         'certforge.pki.sectigo_account_info': {'gather_subset': ['profiles']}}]}]
    result = run_playbook(play, check=True)
    assert result.rc == 0, result
    info = result.task('info')
    assert not info['changed']
    names = {p['name']: p for p in info['profiles']}
    assert names['Sectigo OV SSL']['terms'] == [365, 395]
    org = [o for o in info['organizations'] if o['name'] == 'Example Org'][0]
    assert org['ssl_api_enabled'] and {d['name']: d['ssl_api_enabled'] for d in org['departments']} == {
        'Web Team': True, 'Legacy Team': False}
    assert not [o for o in info['organizations'] if o['name'] == 'Dormant Org'][0]['ssl_api_enabled']
    domains = {d['name']: d for d in info['domains']}
    assert domains['example.com']['validation_status'] == 'Validated' and domains['example.com']['dcv_expiration']
    assert domains['suspended.example']['state'] == 'SUSPENDED'
    assert {f['name']: f['mandatory'] for f in info['custom_fields']} == {'cost-center': True, 'ticket': False}
    assert set(result.task('profiles')) >= {'profiles'} and 'domains' not in result.task('profiles')
    assert not sectigo_sim.audit(method='POST')
    assert sectigo_sim.password not in result.stdout


def test_account_info_wrong_password(sectigo_sim, run_playbook):
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'info', 'certforge.pki.sectigo_account_info': {
            'base_url': sectigo_sim.base_url, 'customer_uri': sectigo_sim.customer_uri, 'login': sectigo_sim.login,
            'password': 'not-the-password', 'ca_bundle': sectigo_sim.ca_bundle}}]}]
    result = run_playbook(play)
    assert result.status('info') == 'failed'
    assert result.task('info')['error_option'] == 'password' and 'not-the-password' not in result.stdout
