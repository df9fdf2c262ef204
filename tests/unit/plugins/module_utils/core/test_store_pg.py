"""PostgreSQL order store specifics (the protocol itself is tested on both backends in
test_orders.py): laziness, connection reuse, schema, redaction, passwords, lease and fencing.
Needs the session cluster (conftest.py); processes killed or frozen while holding a lock are
tested in tests/integration/pg/."""

import os
import sys
import threading

import pytest

from ansible_collections.certforge.pki.plugins.module_utils.core import store_pg
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, TransientError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import Order
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import open_store
from ansible_collections.certforge.pki.plugins.module_utils.core.store_pg import (
    LeaseLostError, PostgresOrderStore, redact_url,
)


def psql(server, url, sql):
    schema = url.split('search_path%3D', 1)[1].split('&', 1)[0]
    return server.psql('SET search_path TO %s; %s' % (schema, sql)).strip()


# -- no server needed -------------------------------------------------------------------------

@pytest.mark.parametrize('url, shown', [
    ('postgresql://u:s3cret@db:5432/x', 'postgresql://u:***@db:5432/x'),
    ('postgresql://u:s%40c@db/x?sslmode=require', 'postgresql://u:***@db/x?sslmode=require'),
    ('postgres://db/x?user=u&password=s3cret&lease=5', 'postgres://db/x?user=u&password=***&lease=5'),
    ('postgresql://u@db/x', 'postgresql://u@db/x'),
])
def test_location_and_repr_never_show_the_password(url, shown):
    store = PostgresOrderStore(url)
    assert store.location == redact_url(url) == shown
    assert 's3cret' not in repr(store) and 's@c' not in repr(store)


def test_store_parameters_come_from_the_url_and_are_not_sent_to_libpq():
    store = PostgresOrderStore('postgresql://u@db/x?lease=7&lock_timeout=3&sslmode=disable')
    assert (store.lease, store.lock_timeout) == (7.0, 3.0)
    assert 'lease' not in store._url and 'lock_timeout' not in store._url
    assert 'sslmode=disable' in store._url
    assert PostgresOrderStore('postgresql://u@db/x', lease=4, lock_timeout=1).lease == 4.0


@pytest.mark.parametrize('query', ['lease=0', 'lease=abc', 'lock_timeout=-1', 'lease=nan'])
def test_bad_store_parameters_are_config_errors(query):
    with pytest.raises(ConfigError) as info:
        PostgresOrderStore('postgresql://u:pw@db/x?' + query)
    assert info.value.option == 'order_store' and info.value.fix


def test_constructing_a_store_connects_to_nothing():
    # port 1 on 127.0.0.1 refuses: only an operation would notice
    store = open_store('postgresql://u:pw@127.0.0.1:1/x')
    assert isinstance(store, PostgresOrderStore)
    assert not [k for k in store_pg._SESSIONS if k[1].startswith('postgresql://u:pw@127.0.0.1:1/')]


def test_missing_driver_is_a_config_error_with_the_install_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, 'psycopg', None)     # import psycopg -> ImportError
    store = PostgresOrderStore('postgresql://u:pw@127.0.0.1:1/x')
    with pytest.raises(ConfigError) as info:
        store.load('ca+www')
    assert info.value.option == 'order_store'
    assert 'pip install "psycopg[binary]"' in info.value.fix


def test_unreachable_server_is_transient_and_redacted():
    store = PostgresOrderStore('postgresql://u:s3cret@127.0.0.1:1/x?connect_timeout=2')
    with pytest.raises(TransientError) as info:
        store.keys()
    assert info.value.option == 'order_store'
    assert 's3cret' not in str(info.value) and '***' in str(info.value)


# -- against the session cluster --------------------------------------------------------------

def test_wrong_password_is_a_config_error_that_never_shows_it(pg_server):
    url = pg_server.url_for('postgres', password=False).replace('postgres@', 'postgres:Wr0ngPass@')
    with pytest.raises(ConfigError) as info:
        PostgresOrderStore(url).keys()
    text = str(info.value)
    assert 'Wr0ngPass' not in text and 'PGPASSWORD' in info.value.fix
    assert 'postgres:***@127.0.0.1' in text


def test_password_from_pgpassword(pg_server, pg_url, monkeypatch):
    no_password = pg_url.replace(':' + pg_server.password + '@', '@')
    assert pg_server.password not in no_password
    monkeypatch.setenv('PGPASSWORD', pg_server.password)
    store = PostgresOrderStore(no_password)
    store.record_intent('ca+www', 'fp', issuer='ca')
    assert store.keys() == ['ca+www']


def test_password_from_a_passfile(pg_server, pg_url, tmp_path, monkeypatch):
    passfile = tmp_path / 'pgpass'
    passfile.write_text('127.0.0.1:%d:*:postgres:%s\n' % (pg_server.port, pg_server.password))
    passfile.chmod(0o600)
    monkeypatch.delenv('PGPASSWORD', raising=False)
    monkeypatch.setenv('PGPASSFILE', str(passfile))
    store = PostgresOrderStore(pg_url.replace(':' + pg_server.password + '@', '@'))
    assert store.keys() == []


def test_one_connection_per_process_and_schema_made_once(pg_server, pg_url):
    first = open_store(pg_url)
    first.record_intent('ca+a', 'fp', issuer='ca')
    conn = first._session.conn
    second = open_store(pg_url)
    assert second.load('ca+a').issuer == 'ca'
    assert second._session.conn is conn
    assert psql(pg_server, pg_url, "SELECT version FROM certforge_schema WHERE component = 'orders'") == '1'
    tables = psql(pg_server, pg_url, "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables"
                  " WHERE schemaname = current_schema()")
    assert tables == 'certforge_locks,certforge_orders,certforge_schema'


def test_a_newer_schema_is_refused(pg_server, pg_url):
    open_store(pg_url).keys()
    psql(pg_server, pg_url, "UPDATE certforge_schema SET version = 99")
    store_pg.close_all()
    with pytest.raises(ConfigError) as info:
        open_store(pg_url).keys()
    assert 'upgrade certforge.pki' in info.value.fix


def test_records_are_jsonb_rows(pg_server, pg_url):
    store = open_store(pg_url)
    store.record_intent('ca+www', 'fp', token='tok', issuer='ca', extra={'certificate': 'PEM'})
    assert psql(pg_server, pg_url, "SELECT record->>'token' || '|' || (record->'extra'->>'certificate')"
                " FROM certforge_orders WHERE key = 'ca+www'") == 'tok|PEM'


def test_lock_row_holds_a_lease_renewed_while_held_and_is_deleted_on_release(pg_server, pg_url):
    store = open_store(pg_url)           # lease=2 from the fixture: renewed every ~0.7 s
    with store.lock('ca+www'):
        first = psql(pg_server, pg_url, "SELECT expires_at FROM certforge_locks WHERE key = 'ca+www'")
        assert first
        renewed = threading.Event()

        def later():
            return psql(pg_server, pg_url, "SELECT expires_at > '%s' FROM certforge_locks WHERE key = 'ca+www'" % first) == 't'

        for dummy in range(100):                      # bounded poll, no fixed sleep
            if later():
                renewed.set()
                break
            renewed.wait(0.1)
        assert renewed.is_set()
    assert psql(pg_server, pg_url, 'SELECT count(*) FROM certforge_locks') == '0'


def test_lock_timeout_names_the_option_and_the_holder(pg_url):
    holder = open_store(pg_url)
    with holder.lock('ca+www'):
        out = {}

        def other():
            try:
                with open_store(pg_url).lock('ca+www', timeout=0.2):
                    out['got'] = True
            except TransientError as exc:
                out['error'] = exc

        thread = threading.Thread(target=other, name='waiter')
        thread.start()
        thread.join(60)
    exc = out['error']
    assert exc.option == 'order_store' and 'lock_timeout' in exc.fix
    assert exc.details['holder'].endswith(':MainThread') and exc.details['key'] == 'ca+www'


def test_a_taken_over_lock_refuses_writes_and_deletes(pg_server, pg_url):
    store = open_store(pg_url)
    store.record_intent('ca+www', 'fp', issuer='ca')
    with pytest.raises(LeaseLostError) as info:
        with store.lock('ca+www'):
            # another controller took the key over (what an expired lease allows)
            psql(pg_server, pg_url, "UPDATE certforge_locks SET token = nextval('certforge_lock_tokens'),"
                 " owner = 'other' WHERE key = 'ca+www'")
            with pytest.raises(LeaseLostError):
                store.record_submitted('ca+www', Order(issuer='ca', id='1'))
            with pytest.raises(LeaseLostError):
                store.forget('ca+www')
    assert info.value.option == 'order_store' and 'run again' in info.value.fix
    assert store.load('ca+www').order is None          # nothing written under the lost lock
    assert psql(pg_server, pg_url, "SELECT owner FROM certforge_locks WHERE key = 'ca+www'") == 'other'


def test_a_dead_sessions_lock_is_taken_over_at_once(pg_server, pg_url):
    psql(pg_server, pg_url, "SELECT 1")
    open_store(pg_url).keys()          # schema
    # a lock row left by a session that is gone (its controller was killed), lease still valid
    psql(pg_server, pg_url, "INSERT INTO certforge_locks (key, owner, token, backend_pid, expires_at)"
         " VALUES ('ca+www', 'dead', nextval('certforge_lock_tokens'), 2147483000, now() + interval '1 hour')")
    with open_store(pg_url).lock('ca+www', timeout=0):
        pass
    # a live session's lock (the psql below holds one open) is not
    psql(pg_server, pg_url, "INSERT INTO certforge_locks (key, owner, token, backend_pid, expires_at)"
         " VALUES ('ca+x', 'alive', nextval('certforge_lock_tokens'), (SELECT pid FROM pg_stat_activity"
         " WHERE backend_type = 'checkpointer'), now() + interval '1 hour')")
    with pytest.raises(TransientError):
        with open_store(pg_url).lock('ca+x', timeout=0):
            pass


def test_an_expired_lease_is_taken_over(pg_server, pg_url):
    open_store(pg_url).keys()
    psql(pg_server, pg_url, "INSERT INTO certforge_locks (key, owner, token, backend_pid, expires_at)"
         " VALUES ('ca+www', 'frozen', nextval('certforge_lock_tokens'), (SELECT pid FROM pg_stat_activity"
         " WHERE backend_type = 'checkpointer'), now() - interval '1 second')")
    with open_store(pg_url).lock('ca+www', timeout=0):
        assert psql(pg_server, pg_url, "SELECT owner FROM certforge_locks").endswith(':MainThread')


def test_forked_child_uses_its_own_connection(pg_url):
    store = open_store(pg_url)
    store.keys()
    parent_conn = store._session.conn
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover - child
        try:
            ok = store.keys() == [] and store._session.conn is not parent_conn
            os.write(write, b'1' if ok else b'0')
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b'1'
    os.waitpid(pid, 0)
    assert store.keys() == []           # the parent's connection still works
