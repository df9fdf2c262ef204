# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The order store in PostgreSQL, shared by many controllers (AWX/AAP jobs, CI runners).

``order_store: postgresql://certforge@db.example.com:5432/certforge`` (or the same URL in
``$CERTFORGE_ORDER_STORE``) keeps every record the file store keeps (intents, orders,
issued-not-deployed certificates, ACME state) in one table, one JSON document per key, and
holds the per-key locks in the database with a lease:

- a lock is a row ``(key, owner, token, backend_pid, expires_at)`` taken with
  ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE`` the old lease has run out or the
  holder's database session is gone (a SIGKILLed controller's connection closes, so its locks
  are free at once); a heartbeat thread renews the leases this process holds every third of
  the lease; the row is deleted on release;
- a frozen controller (SIGSTOP, a VM paused) stops renewing and loses its locks after the
  lease; its later writes are refused: every write and delete checks, in the same statement,
  that the lock row still carries this holder's token (fencing), and raises
  :class:`LeaseLostError` otherwise;
- locks are re-entrant per thread and store object, like the file store's, and the
  wait for a lock is bounded (``lock_timeout``, then TransientError).

The password is never printed: ``location`` and every message show the URL with the password
replaced by ``***``.  Give it in the URL, in ``$PGPASSWORD`` or in a passfile (``~/.pgpass``,
``$PGPASSFILE`` or ``?passfile=``): libpq reads them all.  Two query parameters are ours and
are removed before connecting: ``lease`` (seconds a lock survives without renewal, default
30) and ``lock_timeout`` (seconds to wait for a lock, default 60).  Use a direct connection
or a session-pooling proxy (a transaction-pooling proxy breaks the session liveness check).

Cost: constructing a store parses the URL only.  The driver (psycopg 3, an optional
dependency: ``pip install "psycopg[binary]"``) is imported, the connection made and the schema
checked on the first operation, once per process and URL; later stores reuse the connection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import os
import socket
import threading
import time
import uuid

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    ConfigError, TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import (
    _KEY, DEFAULT_LOCK_TIMEOUT, BaseOrderStore, OrderRecord,
)

try:
    from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit
except ImportError:  # pragma: no cover - Python 2 is not supported
    parse_qsl = unquote = urlencode = urlsplit = urlunsplit = None

SCHEMA_VERSION = 1
DEFAULT_LEASE = 30.0
MIN_LEASE = 1.0
CONNECT_TIMEOUT = 10
APPLICATION_NAME = 'certforge.pki'
#: query parameters of the URL that configure the store (removed before connecting)
STORE_PARAMS = ('lease', 'lock_timeout')
INSTALL_FIX = 'install the PostgreSQL driver on the controller (in the execution environment): pip install "psycopg[binary]"'
#: advisory lock key serialising schema creation between controllers starting together
_SCHEMA_LOCK = 0x63657274   # 'cert'

_SCHEMA_SQL = (
    "CREATE TABLE IF NOT EXISTS certforge_schema ("
    " component text PRIMARY KEY, version integer NOT NULL,"
    " updated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS certforge_orders ("
    " key text PRIMARY KEY, record jsonb NOT NULL,"
    " updated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS certforge_locks ("
    " key text PRIMARY KEY, owner text NOT NULL, token bigint NOT NULL, backend_pid integer,"
    " acquired_at timestamptz NOT NULL DEFAULT now(), expires_at timestamptz NOT NULL)",
    "CREATE SEQUENCE IF NOT EXISTS certforge_lock_tokens",
)

_ACQUIRE = (
    "INSERT INTO certforge_locks AS l (key, owner, token, backend_pid, acquired_at, expires_at)"
    " VALUES (%(key)s, %(owner)s, nextval('certforge_lock_tokens'), pg_backend_pid(), now(),"
    "         now() + make_interval(secs => %(lease)s))"
    " ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, token = EXCLUDED.token,"
    "   backend_pid = EXCLUDED.backend_pid, acquired_at = EXCLUDED.acquired_at,"
    "   expires_at = EXCLUDED.expires_at"
    " WHERE l.expires_at < now()"
    "    OR (l.backend_pid IS NOT NULL AND l.backend_pid <> pg_backend_pid()"
    "        AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend_pid))"
    " RETURNING token"
)
_HOLDER = ("SELECT owner, expires_at - now(), backend_pid FROM certforge_locks WHERE key = %(key)s")
_RELEASE = "DELETE FROM certforge_locks WHERE key = %(key)s AND token = %(token)s RETURNING 1"
_RENEW = (
    "UPDATE certforge_locks SET expires_at = now() + make_interval(secs => %(lease)s),"
    " backend_pid = pg_backend_pid()"
    " WHERE key = %(key)s AND token = %(token)s RETURNING 1"
)
# A write or delete happens only while the lock row still carries this holder's token (a
# takeover always sets a new one): the row is renewed and row-locked by the same statement, so
# a takeover waits for the write to commit, or the write sees the takeover and changes nothing.
_OWN = (
    "own AS (UPDATE certforge_locks SET expires_at = now() + make_interval(secs => %(lease)s)"
    " WHERE key = %(key)s AND token = %(token)s RETURNING key)"
)
_WRITE = (
    "WITH " + _OWN + ", up AS ("
    " INSERT INTO certforge_orders (key, record, updated_at)"
    " SELECT key, %(record)s::jsonb, now() FROM own"
    " ON CONFLICT (key) DO UPDATE SET record = EXCLUDED.record, updated_at = EXCLUDED.updated_at"
    " RETURNING 1)"
    " SELECT (SELECT count(*) FROM own), (SELECT count(*) FROM up)"
)
_DELETE = (
    "WITH " + _OWN + ", del AS ("
    " DELETE FROM certforge_orders o USING own WHERE o.key = own.key RETURNING 1)"
    " SELECT (SELECT count(*) FROM own), (SELECT count(*) FROM del)"
)


class LeaseLostError(TransientError):
    """This controller no longer holds the lock it wrote under: its lease ran out (it was
    frozen or cut off longer than the lease) and another controller took the key over."""


def _psycopg():
    try:
        import psycopg  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise ConfigError('a postgresql:// order store needs the psycopg 3 driver, which is not '
                          'installed for this Python (%s)' % exc,
                          option='order_store', fix=INSTALL_FIX)
    return psycopg


def split_url(url):
    """(libpq URL without our parameters, {our parameters}, password or None)."""
    parts = urlsplit(url)
    ours, theirs = {}, []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in STORE_PARAMS:
            ours[name] = value
        else:
            theirs.append((name, value))
    password = unquote(parts.password) if parts.password else None
    for name, value in theirs:
        if name == 'password':
            password = value
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(theirs), parts.fragment))
    return clean, ours, password


def redact_url(url):
    """``url`` with its password (in the user part or ``?password=``) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None and '@' in netloc:
            userinfo, host = netloc.rsplit('@', 1)
            netloc = '%s:***@%s' % (userinfo.split(':', 1)[0], host)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query = [(k, '***' if k == 'password' else v) for k, v in query]
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe='*'), parts.fragment))
    except ValueError:
        return 'postgresql://***'


def _number(value, name, minimum, default):
    if value is None or value == '':
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or math.isnan(number) or number < minimum:
        raise ConfigError('%s=%r in the PostgreSQL URL is not a number of seconds >= %s'
                          % (name, value, minimum), option='order_store',
                          fix='give e.g. ?%s=%d' % (name, max(minimum, default)))
    return number


class _Session:
    """One connection per (process, URL), shared by every store object of that URL: the lock
    bookkeeping of each thread, the leases to renew and the heartbeat thread."""

    def __init__(self, url, redacted, password, lease):
        self.url = url
        self.redacted = redacted
        self.password = password
        self.lease = lease
        self.pid = os.getpid()
        self.conn = None
        self.schema_ok = False
        self.mutex = threading.RLock()
        self.leases = {}          # key -> token, for the heartbeat
        self.lost = set()         # (key, token) the heartbeat found taken over
        self.wake = threading.Event()
        self.heartbeat = None
        self.owner_prefix = '%s:%d:%s' % (socket.gethostname()[:64], os.getpid(), uuid.uuid4().hex[:8])

    # -- errors --------------------------------------------------------------------------

    def scrub(self, text):
        text = str(text)
        if self.password:
            text = text.replace(self.password, '***')
        return text.strip()

    def failure(self, exc, doing):
        """A ConfigError or TransientError for a driver error, naming the store (redacted)."""
        text = self.scrub(exc)
        lowered = text.lower()
        if any(s in lowered for s in ('password authentication failed', 'no password supplied',
                                      'authentication failed', 'role "', 'pg_hba.conf')):
            return ConfigError('cannot log in to the order store %s: %s' % (self.redacted, text),
                               option='order_store',
                               fix='check the user and give the password in $PGPASSWORD, a passfile '
                                   '(~/.pgpass or $PGPASSFILE) or the URL; the role needs CREATE on '
                                   'the schema for the first run')
        if 'database "' in lowered and 'does not exist' in lowered:
            return ConfigError('the order store database does not exist: %s' % text,
                               option='order_store', fix='create it (CREATE DATABASE ...) or fix the URL')
        if 'permission denied' in lowered:
            return ConfigError('the order store refused %s: %s' % (doing, text), option='order_store',
                               fix='grant the role SELECT, INSERT, UPDATE, DELETE on the certforge_* '
                                   'tables and USAGE on the certforge_lock_tokens sequence '
                                   '(CREATE on the schema for the first run)')
        return TransientError('order store %s: %s failed: %s' % (self.redacted, doing, text),
                              option='order_store',
                              fix='check that the database is reachable from this controller and '
                                  'run again; nothing was ordered twice')

    # -- connection ----------------------------------------------------------------------

    def connection(self):
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return self.conn
        psycopg = _psycopg()
        self.conn = None
        kwargs = {'autocommit': True, 'application_name': APPLICATION_NAME}
        if 'connect_timeout' not in self.url and not os.environ.get('PGCONNECT_TIMEOUT'):
            kwargs['connect_timeout'] = CONNECT_TIMEOUT
        try:
            self.conn = psycopg.connect(self.url, **kwargs)
        except psycopg.Error as exc:
            raise self.failure(exc, 'connecting')
        if not self.schema_ok:
            self._ensure_schema()
        return self.conn

    def _ensure_schema(self):
        psycopg = _psycopg()
        conn = self.conn
        version = None
        try:
            row = conn.execute("SELECT version FROM certforge_schema WHERE component = 'orders'").fetchone()
            version = row[0] if row else None
        except psycopg.errors.UndefinedTable:
            version = None
        except psycopg.Error as exc:
            raise self.failure(exc, 'reading the schema version')
        if version is None:
            try:
                with conn.transaction():
                    conn.execute('SELECT pg_advisory_xact_lock(%s)', (_SCHEMA_LOCK,))
                    for statement in _SCHEMA_SQL:
                        conn.execute(statement)
                    conn.execute("INSERT INTO certforge_schema (component, version) VALUES ('orders', %s)"
                                 " ON CONFLICT (component) DO NOTHING", (SCHEMA_VERSION,))
                    version = conn.execute("SELECT version FROM certforge_schema WHERE component = 'orders'").fetchone()[0]
            except psycopg.Error as exc:
                raise self.failure(exc, 'creating the certforge tables')
        if version > SCHEMA_VERSION:
            raise ConfigError('the order store %s has schema version %s, newer than this collection '
                              'understands (%s)' % (self.redacted, version, SCHEMA_VERSION),
                              option='order_store',
                              fix='upgrade certforge.pki on this controller (every controller sharing a '
                                  'store must run the same or a newer version)')
        self.schema_ok = True

    def execute(self, sql, params=None, doing='a query', fetch='one'):
        """Run one statement (autocommit) and fetch; one reconnect on a broken connection
        (every statement here is safe to repeat)."""
        psycopg = _psycopg()
        for attempt in (1, 2):
            with self.mutex:
                conn = self.connection()
                try:
                    cursor = conn.execute(sql, params)
                    if fetch == 'all':
                        return cursor.fetchall()
                    return cursor.fetchone()
                except psycopg.OperationalError as exc:
                    if attempt == 1 and (conn.broken or conn.closed):
                        self.conn = None
                        continue
                    raise self.failure(exc, doing)
                except psycopg.Error as exc:
                    raise self.failure(exc, doing)
        raise AssertionError('unreachable')  # pragma: no cover

    # -- locks ---------------------------------------------------------------------------

    def owner(self):
        return '%s:%s' % (self.owner_prefix, threading.current_thread().name[:40])

    def start_heartbeat(self):
        """Start the renewing thread unless it runs (call with ``mutex`` held)."""
        if self.heartbeat is not None:
            return
        self.heartbeat = threading.Thread(target=self._beat, name='certforge-order-store-lease')
        self.heartbeat.daemon = True
        self.heartbeat.start()

    def _beat(self):
        while True:
            self.wake.wait(self.lease / 3.0)
            self.wake.clear()
            with self.mutex:
                leases = dict(self.leases)
                if not leases:
                    self.heartbeat = None
                    return
            for key, token in leases.items():
                try:
                    row = self.execute(_RENEW, {'key': key, 'token': token, 'lease': self.lease},
                                       doing='renewing the lease of %s' % key)
                except Exception:  # pylint: disable=broad-except
                    continue        # the next beat tries again; writes are fenced anyway
                if row is None:
                    with self.mutex:
                        if self.leases.get(key) == token:
                            self.lost.add((key, token))


_SESSIONS = {}
_SESSIONS_LOCK = threading.Lock()


def _session(url, redacted, password, lease):
    pid = os.getpid()
    with _SESSIONS_LOCK:
        session = _SESSIONS.get((pid, url, lease))
        if session is None:
            for stale in [k for k in _SESSIONS if k[0] != pid]:
                # inherited through fork: the child must not use (or close) the parent's
                # connection; psycopg leaves it to the parent when the object is collected
                del _SESSIONS[stale]
            session = _SESSIONS[(pid, url, lease)] = _Session(url, redacted, password, lease)
        return session


class PostgresOrderStore(BaseOrderStore):
    """Order records and their locks in PostgreSQL (see the module documentation).

    ``lease`` and ``lock_timeout`` come from the arguments, else from the URL's query, else the
    defaults.  ``clock``/``sleep`` drive the bounded wait for locks (injectable for tests).
    """

    def __init__(self, url, lock_timeout=None, lease=None, clock=time.monotonic, sleep=time.sleep,
                 path_option='order_store'):
        if not isinstance(url, str) or '://' not in url:
            raise ConfigError('must be a postgresql:// URL', option=path_option,
                              fix='give e.g. postgresql://certforge@db.example.com:5432/certforge')
        try:
            clean, ours, password = split_url(url)
        except ValueError as exc:
            raise ConfigError('cannot parse the PostgreSQL URL %s: %s' % (redact_url(url), exc),
                              option=path_option,
                              fix='give postgresql://user@host:port/database (percent-encode special characters)')
        self.path_option = path_option
        self.location = redact_url(url)
        self.lease = float(lease) if lease is not None else _number(ours.get('lease'), 'lease', MIN_LEASE, DEFAULT_LEASE)
        if lock_timeout is None:
            lock_timeout = _number(ours.get('lock_timeout'), 'lock_timeout', 0, DEFAULT_LOCK_TIMEOUT)
        self.lock_timeout = float(lock_timeout)
        self.clock = clock
        self.sleep = sleep
        self._url = clean
        self._password = password
        self._session_obj = None
        self._local = threading.local()

    def __repr__(self):
        return '%s(%r)' % (type(self).__name__, self.location)

    @property
    def _session(self):
        session = self._session_obj
        if session is None or session.pid != os.getpid():
            session = self._session_obj = _session(self._url, self.location, self._password, self.lease)
        return session

    def _held(self):
        """{key: [token, depth]} of the locks this thread holds through this store object."""
        held = getattr(self._local, 'held', None)
        if held is None or getattr(self._local, 'pid', None) != os.getpid():
            held = self._local.held = {}   # a forked child does not inherit our locks
            self._local.pid = os.getpid()
        return held

    def _check_key(self, key):
        if not isinstance(key, str) or not _KEY.match(key) or '..' in key:
            raise ConfigError('invalid order key %r' % (key,), option='name',
                              fix='build keys with order_key(issuer, name)')
        return key

    # -- locking -------------------------------------------------------------------------

    def lock(self, key, timeout=None):
        """Hold the lock of ``key`` in the database; wait at most ``timeout`` seconds (default
        ``lock_timeout``), then raise TransientError.  Re-entrant within one thread."""
        return _Lock(self, self._check_key(key), self.lock_timeout if timeout is None else float(timeout))

    def _acquire(self, key, timeout):
        session = self._session
        owner = session.owner()
        start = self.clock()
        pause = 0.005
        while True:
            row = session.execute(_ACQUIRE, {'key': key, 'owner': owner, 'lease': self.lease},
                                  doing='taking the lock of %s' % key)
            if row is not None:
                return row[0]
            remaining = timeout - (self.clock() - start)
            if remaining <= 0:
                holder = session.execute(_HOLDER, {'key': key}, doing='reading the lock of %s' % key)
                details = {'key': key, 'lock_timeout': timeout, 'lease': self.lease}
                if holder is not None:
                    details['holder'] = holder[0]
                    details['lease_left'] = round(holder[1].total_seconds(), 1)
                raise TransientError(
                    'order %s is locked by another run (waited %.1fs; holder %s)'
                    % (key, timeout, details.get('holder', 'gone')),
                    option='order_store',
                    fix='let the other controller finish (a dead one loses the lock after its lease '
                        'of %gs), or wait longer with ?lock_timeout=SECONDS in the order_store URL'
                        % self.lease,
                    details=details)
            self.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.1)

    def _token(self, key):
        """The token under which this thread holds ``key``, or None."""
        entry = self._held().get(key)
        return entry[0] if entry else None

    def _fenced(self, sql, key, params, doing):
        token = self._token(key)
        if token is None:
            return None
        session = self._session
        values = {'key': key, 'token': token, 'lease': self.lease}
        values.update(params)
        row = session.execute(sql, values, doing=doing)
        if not row or not row[0]:
            with session.mutex:
                session.lost.add((key, token))
            raise LeaseLostError(
                'refused to %s: this run no longer holds the lock of %s (its lease of %gs ran out '
                'and another controller took it over)' % (doing, key, self.lease),
                option='order_store',
                fix='run again: the next run decides afresh under the lock; keep controllers from '
                    'freezing longer than the lease, or raise ?lease=SECONDS in the order_store URL',
                details={'key': key, 'lease': self.lease})
        return row

    # -- records -------------------------------------------------------------------------

    def load(self, key):
        """The record of ``key``, or None (a consistent snapshot; no lock needed)."""
        self._check_key(key)
        row = self._session.execute('SELECT record FROM certforge_orders WHERE key = %(key)s',
                                    {'key': key}, doing='reading %s' % key)
        if row is None:
            return None
        data = row[0]
        try:
            if isinstance(data, str):
                data = json.loads(data)
            if not isinstance(data, dict):
                raise ValueError('not an object')
            return OrderRecord.from_dict(data)
        except (ValueError, TypeError) as exc:
            raise ConfigError('order record %s in %s is corrupt: %s' % (key, self.location, exc),
                              option=self.path_option,
                              fix='inspect it (SELECT record FROM certforge_orders WHERE key = ...); delete '
                                  'the row (the next run looks the order up at the CA) if the order is '
                                  'no longer needed')

    def _write(self, record):
        key = self._check_key(record.key)
        data = json.dumps(record.to_dict(), sort_keys=True)
        with self.lock(key):
            self._fenced(_WRITE, key, {'record': data}, 'write %s' % key)
        return record

    def _delete(self, key):
        self._check_key(key)
        with self.lock(key):
            row = self._fenced(_DELETE, key, {}, 'delete %s' % key)
        return bool(row[1])

    def keys(self):
        """Keys of all stored records, sorted."""
        rows = self._session.execute('SELECT key FROM certforge_orders ORDER BY key', doing='listing keys',
                                     fetch='all')
        return [r[0] for r in rows]

    def close(self):
        """Close this process's connection to the store (locks held are released first)."""
        session = self._session_obj
        if session is None:
            return None
        with session.mutex:
            if session.leases:
                return None          # still in use by a lock holder
            conn, session.conn, session.schema_ok = session.conn, None, False
        if conn is not None:
            conn.close()
        return None


class _Lock:
    """Context manager of :meth:`PostgresOrderStore.lock`."""

    def __init__(self, store, key, timeout):
        self.store, self.key, self.timeout = store, key, timeout

    def __enter__(self):
        session = self.store._session
        held = self.store._held()
        entry = held.get(self.key)
        if entry is not None:
            entry[1] += 1
            return self
        token = self.store._acquire(self.key, self.timeout)
        held[self.key] = [token, 1]
        with session.mutex:
            session.leases[self.key] = token
            session.lost.discard((self.key, token))
            session.start_heartbeat()
        return self

    def __exit__(self, exc_type, exc, tb):
        session = self.store._session
        held = self.store._held()
        entry = held[self.key]
        entry[1] -= 1
        if entry[1] > 0:
            return False
        del held[self.key]
        token = entry[0]
        with session.mutex:
            if session.leases.get(self.key) == token:
                del session.leases[self.key]
            lost = (self.key, token) in session.lost
            session.lost.discard((self.key, token))
            if not session.leases:
                session.wake.set()      # let the heartbeat thread end now
        released = None
        try:
            released = session.execute(_RELEASE, {'key': self.key, 'token': token},
                                       doing='releasing the lock of %s' % self.key)
        except TransientError:
            if exc_type is None:
                raise
            return False     # the lease runs out by itself; keep the original error
        if exc_type is None and (lost or released is None):
            raise LeaseLostError(
                'the lock of %s was lost while this run held it (its lease of %gs ran out and '
                'another controller took it over)' % (self.key, self.store.lease),
                option='order_store',
                fix='run again: the next run decides afresh; keep controllers from freezing longer '
                    'than the lease, or raise ?lease=SECONDS in the order_store URL',
                details={'key': self.key, 'lease': self.store.lease})
        return False


def close_all():
    """Close every connection this process holds to any store (tests, long-lived processes)."""
    with _SESSIONS_LOCK:
        sessions = [s for k, s in _SESSIONS.items() if k[0] == os.getpid()]
        _SESSIONS.clear()
    for session in sessions:
        with session.mutex:
            conn, session.conn = session.conn, None
            session.leases.clear()
            session.wake.set()
        if conn is not None:
            conn.close()
