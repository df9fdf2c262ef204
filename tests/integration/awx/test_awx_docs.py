"""docs/awx.md: the credential types parse, their secrets are marked secret, every injected
variable is one the collection (or libpq) reads, and rendering them gives a working job
environment (the job tests use exactly these renderings)."""

import re
from pathlib import Path

from ansible_collections.certforge.pki.plugins.module_utils.core import issue
from ansible_collections.certforge.pki.plugins.module_utils.issuers.sectigo import ENV_VARS as SECTIGO_ENV

REPO = Path(__file__).resolve().parents[3]
SECRET_FIELDS = {'password', 'client_key', 'eab_hmac_key'}
#: variables libpq reads itself
LIBPQ_ENV = {'PGPASSWORD', 'PGSSLROOTCERT'}
#: the ACME EAB variables are read by the lookups of the documented playbook snippet
ACME_ENV = {'CERTFORGE_ACME_DIRECTORY', 'CERTFORGE_ACME_EAB_KID', 'CERTFORGE_ACME_EAB_HMAC_KEY'}


def test_every_credential_type_is_complete_and_consistent(awx):
    types = awx.credential_types()
    assert set(types) == {'Sectigo Certificate Manager', 'Sectigo Certificate Manager (client certificate)',
                          'ACME external account binding (EAB)', 'certforge state store (PostgreSQL)'}
    known = set(SECTIGO_ENV.values()) | {issue.ORDER_STORE_ENV} | LIBPQ_ENV | ACME_ENV
    for title, spec in types.items():
        fields = {f['id']: f for f in spec['inputs']['fields']}
        assert set(spec['inputs'].get('required', [])) <= set(fields), title
        for name, field in fields.items():
            assert field.get('type') == 'string' and field.get('label'), (title, name)
            if name in SECRET_FIELDS:
                assert field.get('secret') is True, '%s: %s must be secret: true' % (title, name)
        assert spec['injectors'], title
        for injector in spec['injectors']:
            assert set(injector) <= {'env', 'file', 'extra_vars'}, title
            assert set(injector['env']) <= known, (title, set(injector['env']) - known)
            used = set()
            for template in list(injector['env'].values()) + list((injector.get('file') or {}).values()):
                used |= set(re.findall(r'{{\s*([a-z_]+)', template)) - {'tower'}
            assert used <= set(fields), (title, used - set(fields))
            for name in injector.get('file') or {}:
                assert name.startswith('template.') and name.split('.', 1)[1] in fields
            # secrets only travel in environment variables or files, never in extra vars
            assert 'extra_vars' not in injector


def test_sectigo_variables_cover_the_connection_options(awx):
    types = awx.credential_types()
    injected = set()
    for title in ('Sectigo Certificate Manager', 'Sectigo Certificate Manager (client certificate)'):
        for injector in types[title]['injectors']:
            injected |= set(injector['env'])
    assert {SECTIGO_ENV[o] for o in ('base_url', 'customer_uri', 'login', 'password', 'client_cert',
                                     'client_key', 'ca_bundle')} <= injected


def test_store_credential_keeps_the_password_out_of_the_url(awx, tmp_path):
    store = awx.credential_types()['certforge state store (PostgreSQL)']
    env, files = awx.render_injector(store['injectors'][1], {
        'url': 'postgresql://certforge@db.example.com/certforge?sslmode=verify-full',
        'password': 's3cret', 'ssl_root_cert': '-----BEGIN CERTIFICATE-----\n'}, tmp_path)
    assert env[issue.ORDER_STORE_ENV].startswith('postgresql://certforge@')
    assert env['PGPASSWORD'] == 's3cret' and 's3cret' not in env[issue.ORDER_STORE_ENV]
    assert Path(env['PGSSLROOTCERT']).read_text().startswith('-----BEGIN')
    assert (Path(files['ssl_root_cert']).stat().st_mode & 0o077) == 0


def test_acme_snippet_reads_the_injected_variables(awx):
    text = (REPO / 'docs' / 'awx.md').read_text()
    acme = awx.credential_types()['ACME external account binding (EAB)']
    for name in acme['injectors'][0]['env']:
        assert "lookup('ansible.builtin.env', '%s')" % name in text, name
