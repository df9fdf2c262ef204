"""The certificate role run the way AWX runs a job template: ansible-runner, a new private data
directory and a new HOME per job, the CA and state-store credentials injected as environment
variables rendered from the credential types in docs/awx.md, state in a shared PostgreSQL store,
certificates ordered at the Sectigo SCM simulator."""

import json
import sys
import textwrap
from pathlib import Path

NAMES = ['awx1.example.com', 'awx2.example.com', 'awx3.example.com']
PYTHON = str(Path(sys.executable))


def _venv_python():
    venv = Path(__file__).resolve().parents[3] / '.venv' / 'bin' / 'python'
    return str(venv) if venv.exists() else PYTHON


INVENTORY = 'web1 ansible_connection=local ansible_python_interpreter=%s\n' % _venv_python()


def _role_vars(host_dir):
    return {
        'certificate_dir': str(host_dir),
        'certificate_owner': 'root',
        'certificate_group': 'root',
        'certificate_issuer': 'sectigo',
        'certificate_profile': 'Sectigo DV SSL',
        # connection and credentials come from the SECTIGO_* variables of the credential
        'certificate_issuer_options': {'organization': 'Example Org',
                                       'custom_fields': {'cost-center': 'CC-42'}},
        'certificate_target': 'files',
        'certificate_list': [{'name': n.split('.', maxsplit=1)[0], 'common_name': n} for n in NAMES],
    }


def _role_play(host_dir):
    return textwrap.dedent("""
        - name: Certificates of the web servers (job template)
          hosts: all
          gather_facts: false
          vars: %s
          roles:
            - certforge.pki.certificate
        """) % json.dumps(_role_vars(host_dir))


def _keys_play(host_dir):
    """What a host provisioned earlier already has: keys and CSRs with the role's defaults."""
    requests = [{'privatekey_path': '%s/%s.key' % (host_dir, n.split('.', maxsplit=1)[0]),
                 'csr_path': '%s/%s.csr' % (host_dir, n.split('.', maxsplit=1)[0]),
                 'common_name': n, 'subject_alt_names': ['DNS:' + n]} for n in NAMES]
    return textwrap.dedent("""
        - name: Keys and CSRs on the host
          hosts: all
          gather_facts: false
          tasks:
            - name: Keys and CSRs
              certforge.pki.certificate_request:
                requests: %s
                owner: root
                group: root
        """) % json.dumps(requests)


def _credentials(awx, scm, pg_server, tmp_path, dbname):
    """env/envvars of a job with the Sectigo (with CA bundle) and state store credentials."""
    types = awx.credential_types()
    sectigo = types['Sectigo Certificate Manager']
    store = types['certforge state store (PostgreSQL)']
    creds = tmp_path / 'creds'
    creds.mkdir(exist_ok=True)
    env = awx.render_injector(sectigo['injectors'][1], {
        'base_url': scm.base_url, 'customer_uri': scm.customer_uri, 'login': scm.login,
        'password': scm.password, 'ca_bundle': Path(scm.ca_bundle).read_text()}, creds)[0]
    store_env = awx.render_injector(store['injectors'][0], {
        'url': pg_server.url_for(dbname, password=False), 'password': pg_server.password}, creds)[0]
    env.update(store_env)
    assert pg_server.password not in env['CERTFORGE_ORDER_STORE']
    return env


def _no_secrets_in(job, *secrets):
    text = job.output
    for path in job.artifacts.rglob('*'):
        # runner's own record of the environment it was given ('command') aside
        if path.is_file() and path.name not in ('env', 'envvars', 'command'):
            text += path.read_text(errors='replace')
    for secret in secrets:
        assert secret not in text, 'secret leaked into the job output or artifacts'


def test_second_job_is_a_noop_that_sends_nothing(awx, scm, pg_server, tmp_path):
    db = pg_server.create_database().rsplit('/', 1)[1]
    envvars = _credentials(awx, scm, pg_server, tmp_path, db)
    host = tmp_path / 'web1'
    host.mkdir()

    first = awx.Job(tmp_path, 'job-1', _role_play(host), INVENTORY, envvars)
    assert first.start().wait() == 0, str(first)
    for name in NAMES:
        assert scm.enroll_count(common_name=name) == 1
        assert (host / (name.split('.', maxsplit=1)[0] + '.crt')).exists()
    # the order records live in the shared store, not under the job's HOME
    keys = pg_server.psql('SELECT key FROM certforge_orders ORDER BY key', db).split()
    assert keys == ['sectigo+' + n.split('.', maxsplit=1)[0] for n in NAMES]
    assert not list((first.home).rglob('*.json'))
    _no_secrets_in(first, scm.password, pg_server.password)

    calls = len(scm.audit())
    second = awx.Job(tmp_path, 'job-2', _role_play(host), INVENTORY, envvars)
    assert second.start().wait() == 0, str(second)
    assert second.stats()['changed'] == {}, str(second)
    assert len(scm.audit()) == calls                  # nothing due: not one request to the CA
    for name in NAMES:
        assert scm.enroll_count(common_name=name) == 1


def test_two_jobs_launched_together_order_each_certificate_once(awx, scm, pg_server, tmp_path):
    db = pg_server.create_database().rsplit('/', 1)[1]
    envvars = _credentials(awx, scm, pg_server, tmp_path, db)
    host = tmp_path / 'web1'
    host.mkdir()
    keys = awx.Job(tmp_path, 'keys', _keys_play(host), INVENTORY, envvars)
    assert keys.start().wait() == 0, str(keys)

    jobs = [awx.Job(tmp_path, 'job-%s' % x, _role_play(host), INVENTORY, envvars) for x in 'ab']
    for job in jobs:
        job.start()
    for job in jobs:
        assert job.wait() == 0, str(job)
    for name in NAMES:
        assert scm.enroll_count(common_name=name) == 1, name
    # both jobs answered with the same certificate for each name (one ordered, one was handed it)
    # the role issues for all hosts in one call: its result lists each certificate under results
    issued = [sorted((r['item'][0]['name'], r['serial'])
                     for res in job.task_results('Issue or renew on the controller')
                     for r in res.get('results', [res]) if 'serial' in r)
              for job in jobs]
    assert len(issued[0]) == len(NAMES) and issued[0] == issued[1], issued
    _no_secrets_in(jobs[0], scm.password, pg_server.password)
