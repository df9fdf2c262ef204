"""Fixtures for the order-store tests: ``pg_server`` (a throw-away PostgreSQL cluster for the
session, see tests/integration/pg_server.py) and ``pg_url`` (a fresh schema per test)."""

import importlib.util
import itertools
import os
import sys

import pytest

_PATH = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'integration', 'pg_server.py')


def _load_pg_server():
    name = 'certforge_pg_server'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.abspath(_PATH))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


pg_server_module = _load_pg_server()
pg_server = pg_server_module.pytest_fixture()
_SCHEMAS = itertools.count(1)


@pytest.fixture
def pg_url(pg_server):
    """URL of a fresh, empty schema in the session cluster (lease 2 s for the lease tests)."""
    try:
        import psycopg  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        why = 'psycopg 3 is not installed (pip install "psycopg[binary]")'
        if os.environ.get('CI'):
            pytest.fail('the PostgreSQL order store tests must run under CI: ' + why)
        pytest.skip(why)
    schema = 'test_%d_%d' % (os.getpid(), next(_SCHEMAS))
    pg_server.psql('CREATE SCHEMA %s' % schema)
    yield pg_server.url_for('postgres', options='-csearch_path=%s' % schema, lease=2)
    from ansible_collections.certforge.pki.plugins.module_utils.core import store_pg
    store_pg.close_all()
