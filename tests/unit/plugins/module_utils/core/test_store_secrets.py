"""A PostgreSQL order store URL given as an option never shows its password."""

from ansible_collections.certforge.pki.plugins.module_utils.core.orders import store_secrets


def test_password_of_a_postgres_url_is_hidden():
    assert store_secrets({'order_store': 'postgresql://certforge:s%40cret@127.0.0.1:5432/pki'}) == {'s%40cret', 's@cret'}
    assert store_secrets({'issuer_options': {'order_store': 'postgres://u:pw@db/pki'}}) == {'pw'}


def test_paths_and_urls_without_password_hide_nothing():
    assert store_secrets({'order_store': '/var/lib/certforge/orders'}) == set()
    assert store_secrets({'order_store': 'postgresql://certforge@127.0.0.1/pki'}) == set()
    assert store_secrets({}) == set()
