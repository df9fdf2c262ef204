# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Persistent order store on the controller: intent before submit, id after, resume.

One JSON file per order key in a 0700 directory, written atomically (temp file in the same
directory, fsync, rename) with mode 0600, so a reader never sees a half-written record.
A per-key ``fcntl.flock`` lock file serialises parallel Ansible forks.  The protocol::

    key = order_key(issuer.name, request.name)
    fingerprint = request_fingerprint(request)
    with store.lock(key):
        found = store.resume_or_new(key, fingerprint)
        if found.action == 'resume':        # pending order with an id: poll it
            order = found.record.get_order()
        elif found.action == 'recover':     # intent without id: a submit answer may be lost
            orders = issuer.find_orders(request)      # adopt one, or submit if none
        elif found.action == 'changed':     # inputs changed while an order is open
            ...                             # caller decides: abandon it, or fail
        else:                               # 'new'
            store.record_intent(key, fingerprint, token, issuer.name)
            order = issuer.submit(request)
            store.record_submitted(key, order)

Lock files are never deleted (deleting a lock file another process waits on breaks mutual
exclusion); they are empty and cheap.

Backends: :class:`BaseOrderStore` holds the protocol on top of five primitives (``lock``,
``load``, ``_write``, ``_delete``, ``keys``).  :class:`OrderStore` is the file store (the
embedded default); ``core.store_pg.PostgresOrderStore`` keeps the same records in PostgreSQL
for many controllers.  :func:`open_store` picks one from a path or a ``postgresql://`` URL.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import contextlib
import datetime
import errno
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    ConfigError, PermanentError, TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.model import (
    ORDER_FAILED, ORDER_ISSUED, ORDER_PENDING, ORDER_REVOKED, Order,
)

try:
    import fcntl
    HAS_FCNTL = True
except ImportError:  # pragma: no cover - controller is POSIX
    fcntl = None
    HAS_FCNTL = False

RECORD_VERSION = 1

STATUS_INTENT = 'intent'
STATUS_PENDING = ORDER_PENDING
STATUS_ISSUED = ORDER_ISSUED
STATUS_FAILED = ORDER_FAILED
STATUS_REVOKED = ORDER_REVOKED
#: Statuses of an order that is still open (may be resumed).
OPEN_STATUSES = (STATUS_INTENT, STATUS_PENDING)

ACTION_NEW = 'new'
ACTION_RESUME = 'resume'
ACTION_RECOVER = 'recover'
ACTION_CHANGED = 'changed'

DEFAULT_LOCK_TIMEOUT = 60.0

_SAFE = re.compile(r'[^A-Za-z0-9._-]')
_KEY = re.compile(r'^[A-Za-z0-9._+-]{1,200}$')
_MAX_PART = 80
_PEM = re.compile(r'-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----', re.S)


def _check_name(value, option):
    if not isinstance(value, str) or not value.strip():
        raise ConfigError('must be a non-empty string', option=option,
                          fix='give a stable name such as the certificate common name')
    bad = [part for part in ('..', '/', '\\', '\x00', os.sep, os.altsep) if part and part in value]
    if bad:
        raise ConfigError('%r must not contain %s' % (value, ' or '.join(repr(b) for b in sorted(set(bad)))),
                          option=option,
                          fix='use a plain name without path separators or "..", '
                              'for example www.example.com')
    return value


def _safe_part(value):
    safe = _SAFE.sub('_', value)
    if safe != value or len(safe) > _MAX_PART:
        digest = hashlib.sha256(value.encode('utf-8')).hexdigest()[:10]
        safe = '%s-%s' % (safe[:_MAX_PART], digest)
    return safe


def order_key(issuer, name):
    """The store key of ``name`` (the request name) at ``issuer``: ``<issuer>+<name>``,
    sanitized to ``[A-Za-z0-9._-]`` (a short hash keeps altered names distinct).

    Raises ConfigError (option ``name`` or ``issuer``) on '..', path separators or empty names.
    """
    _check_name(issuer, 'issuer')
    _check_name(name, 'name')
    return '%s+%s' % (_safe_part(issuer), _safe_part(name))


def _pem_der(text):
    """DER bytes of every PEM block in ``text`` (whitespace-insensitive), else the stripped text."""
    blocks = _PEM.findall(text or '')
    if not blocks:
        return (text or '').strip().encode('utf-8')
    out = []
    for label, body in blocks:
        payload = ''.join(body.split())
        try:
            out.append(label.encode('ascii') + b':' + base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            out.append(label.encode('ascii') + b':' + payload.encode('ascii', 'replace'))
    return b'\n'.join(out)


def request_fingerprint(request, ignore_options=()):
    """sha256 (hex) of what makes a request distinct: the CSR (DER, so PEM wrapping does not
    matter), common name, SANs (as a set), profile, validity, issuer options (minus
    ``ignore_options``) and the certificate being replaced.  The request ``name`` and
    ``token`` are not part of it: they identify the intent, not its content.
    """
    options = dict(request.issuer_options or {})
    for name in ignore_options:
        options.pop(name, None)
    canonical = {
        'csr': hashlib.sha256(_pem_der(request.csr_pem)).hexdigest(),
        'common_name': request.common_name,
        'subject_alt_names': sorted(set(str(s).strip() for s in request.subject_alt_names or [])),
        'profile': request.profile,
        'validity_days': request.validity_days,
        'issuer_options': options,
        'replaces': (hashlib.sha256(_pem_der(request.replaces)).hexdigest()
                     if request.replaces else None),
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(blob.encode('utf-8')).hexdigest()


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


@dataclass
class OrderRecord:
    """One stored order.  ``order`` is ``model.Order.to_dict()`` (None before submit);
    ``previous`` summarises the record an intent replaced (key fields only)."""

    key: str
    issuer: Optional[str]
    request_fingerprint: Optional[str]
    token: Optional[str]
    status: str = STATUS_INTENT
    content_fingerprint: Optional[str] = None
    order: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    created: Optional[str] = None
    updated: Optional[str] = None
    previous: Optional[Dict[str, Any]] = None
    version: int = RECORD_VERSION

    @property
    def order_id(self):
        return (self.order or {}).get('id')

    @property
    def is_open(self):
        return self.status in OPEN_STATUSES

    def get_order(self):
        """The stored ``model.Order``, or None before submit."""
        return None if self.order is None else Order.from_dict(self.order)

    def to_dict(self):
        return {
            'version': self.version, 'key': self.key, 'issuer': self.issuer,
            'request_fingerprint': self.request_fingerprint, 'token': self.token,
            'content_fingerprint': self.content_fingerprint, 'status': self.status, 'order': self.order, 'extra': self.extra,
            'created': self.created, 'updated': self.updated, 'previous': self.previous,
        }

    @classmethod
    def from_dict(cls, data):
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class Resumption:
    """Answer of :meth:`OrderStore.resume_or_new`.

    ``action`` is one of:

    - ``'new'``: nothing open for this key (no record, or the last one is issued/failed/
      revoked; ``record`` then holds it for reference): record an intent and submit.
    - ``'resume'``: an open order with a CA id for the same fingerprint: poll it, do not submit.
    - ``'recover'``: an intent (or pending record) without a CA id for the same fingerprint:
      a previous submit may have reached the CA and lost its answer.  Call the issuer's
      ``find_orders(request)`` and adopt a match before submitting again (reuse
      ``record.token`` so a CA that dedupes by token can help).
    - ``'changed'``: an open order exists but its fingerprint differs (inputs changed since):
      the caller decides, e.g. abandon it (``record_intent`` replaces it and keeps a summary
      in ``previous``) or fail and ask the user.
    """

    action: str
    record: Optional[OrderRecord] = None
    reason: str = ''


class BaseOrderStore:
    """The order-store protocol on top of five primitives a backend provides:

    - ``lock(key, timeout=None)``: context manager holding the exclusive lock of ``key``
      (re-entrant within one thread; TransientError after ``timeout`` seconds);
    - ``load(key)``: the :class:`OrderRecord` of ``key`` or None;
    - ``_write(record)``: store ``record`` atomically (readers see the old or the new one);
    - ``_delete(key)``: remove the record, True when there was one;
    - ``keys()``: every stored key, sorted.

    ``location`` says where the records live (a directory or a redacted URL).
    """

    location = None
    path_option = 'order_store'

    def lock(self, key, timeout=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, key):  # pragma: no cover - abstract
        raise NotImplementedError

    def _write(self, record):  # pragma: no cover - abstract
        raise NotImplementedError

    def _delete(self, key):  # pragma: no cover - abstract
        raise NotImplementedError

    def keys(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self):
        """Release connections (a no-op for the file store)."""
        return None

    def record_intent(self, key, request_fingerprint, token=None, issuer=None, extra=None,
                      content_fingerprint=None):
        """Record the intent to submit (status 'intent') BEFORE calling the CA.

        ``token`` is the idempotency token sent to the CA (a random one is made when None).
        An existing record is replaced; a summary of it is kept in ``previous``.
        Returns the new :class:`OrderRecord`.
        """
        with self.lock(key):
            old = self.load(key)
            now = _now()
            previous = None
            if old is not None:
                fields = ('request_fingerprint', 'token', 'status', 'created', 'updated')
                previous = {k: getattr(old, k) for k in fields}
                previous['order_id'] = old.order_id
            record = OrderRecord(key=key, issuer=issuer, request_fingerprint=request_fingerprint,
                                 token=token or uuid.uuid4().hex, status=STATUS_INTENT,
                                 order=None, extra=dict(extra or {}), created=now, updated=now,
                                 previous=previous, content_fingerprint=content_fingerprint)
            return self._write(record)

    def _set_order(self, key, order, extra, what):
        with self.lock(key):
            record = self.load(key)
            if record is None:
                raise PermanentError('no order record for %s' % key,
                                     fix='call record_intent before %s' % what)
            data = order.to_dict() if isinstance(order, Order) else dict(order)
            if record.order and record.order.get('id') and data.get('id') is None:
                data['id'] = record.order['id']   # never lose a known CA id
            record.order = data
            record.status = data.get('status') or STATUS_PENDING
            if record.issuer is None:
                record.issuer = data.get('issuer')
            if extra:
                record.extra.update(extra)
            record.updated = _now()
            return self._write(record)

    def record_submitted(self, key, order, extra=None):
        """Store the CA's answer to submit (``model.Order``, with its id); status follows
        the order ('pending', 'issued', 'failed')."""
        return self._set_order(key, order, extra, 'record_submitted')

    def update(self, key, order, extra=None):
        """Store the order after a poll; status follows the order."""
        return self._set_order(key, order, extra, 'update')

    def complete(self, key, order=None):
        """Mark the order issued (keeping the record, so later runs see it is done)."""
        with self.lock(key):
            record = self.load(key)
            if record is None:
                raise PermanentError('no order record for %s' % key,
                                     fix='call record_intent before complete')
            if order is not None:
                record.order = order.to_dict() if isinstance(order, Order) else dict(order)
            record.status = STATUS_ISSUED
            if record.order is not None:
                record.order['status'] = STATUS_ISSUED
            record.updated = _now()
            return self._write(record)

    def restore(self, key, record):
        """Put back ``record`` (an earlier ``load(key)``), or remove the key when it was None:
        undoes an intent the CA refused outright."""
        with self.lock(key):
            if record is None:
                return self.forget(key)
            return self._write(record)

    def forget(self, key):
        """Remove the record of ``key``; True when there was one."""
        with self.lock(key):
            return self._delete(key)

    def resume_or_new(self, key, fingerprint):
        """Decide how to proceed for ``key`` given the current request ``fingerprint``
        (see :class:`Resumption` for the actions).  Call it under ``lock(key)`` and keep the
        lock until the intent or submit is recorded."""
        record = self.load(key)
        if record is None:
            return Resumption(ACTION_NEW, None, 'no order recorded')
        if not record.is_open:
            return Resumption(ACTION_NEW, record, 'last order is %s' % record.status)
        if record.request_fingerprint != fingerprint:
            return Resumption(ACTION_CHANGED, record,
                              'an open order (%s) exists for different inputs' % record.status)
        if record.order_id:
            return Resumption(ACTION_RESUME, record, 'order %s is %s' % (record.order_id,
                                                                         record.status))
        return Resumption(ACTION_RECOVER, record,
                          'a submit was started without a recorded answer; look the order up '
                          'at the CA before submitting again')


class OrderStore(BaseOrderStore):
    """Order records under ``path`` (a directory created 0700).

    ``clock``/``sleep`` drive the bounded wait for locks (injectable for tests);
    ``path_option`` names the module option that set ``path`` in error messages.
    Safe across processes (flock) and across threads sharing one store.
    """

    def __init__(self, path, lock_timeout=DEFAULT_LOCK_TIMEOUT, clock=time.monotonic,
                 sleep=time.sleep, path_option='order_store'):
        if not HAS_FCNTL:  # pragma: no cover
            raise ConfigError('the order store needs a POSIX controller (fcntl)', option=path_option,
                              fix='run issuer modules on a Linux or macOS controller')
        if not path or not isinstance(path, str):
            raise ConfigError('must be a directory path', option=path_option,
                              fix='give a writable directory on the controller')
        self.path = os.path.abspath(os.path.expanduser(path))
        self.location = self.path
        self.lock_timeout = lock_timeout
        self.clock = clock
        self.sleep = sleep
        self.path_option = path_option
        self._local = threading.local()
        self._ensure_dir()

    # -- files ---------------------------------------------------------------------------

    def _ensure_dir(self):
        try:
            if not os.path.isdir(self.path):
                try:
                    os.makedirs(self.path, mode=0o700)
                except OSError as exc:
                    if exc.errno != errno.EEXIST:
                        raise
                else:
                    os.chmod(self.path, 0o700)  # makedirs mode is subject to the umask
            if not os.access(self.path, os.W_OK | os.X_OK):
                raise OSError(errno.EACCES, 'not writable', self.path)
        except OSError as exc:
            raise ConfigError('cannot use %s as order store: %s' % (self.path, exc.strerror or exc),
                              option=self.path_option,
                              fix='give a directory the controller user can create and write')

    def _check_key(self, key):
        if not isinstance(key, str) or not _KEY.match(key) or '..' in key:
            raise ConfigError('invalid order key %r' % (key,), option='name',
                              fix='build keys with order_key(issuer, name)')
        return key

    def record_path(self, key):
        return os.path.join(self.path, self._check_key(key) + '.json')

    def lock_path(self, key):
        return os.path.join(self.path, self._check_key(key) + '.lock')

    def _write(self, record):
        target = self.record_path(record.key)
        data = json.dumps(record.to_dict(), indent=1, sort_keys=True).encode('utf-8') + b'\n'
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % record.key, suffix='.tmp', dir=self.path)
        try:
            with os.fdopen(fd, 'wb') as handle:
                os.fchmod(handle.fileno(), stat.S_IRUSR | stat.S_IWUSR)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir()
        return record

    def _fsync_dir(self):
        with contextlib.suppress(OSError):
            dfd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    # -- locking -------------------------------------------------------------------------

    def _held(self):
        held = getattr(self._local, 'held', None)
        if held is None or getattr(self._local, 'pid', None) != os.getpid():
            held = self._local.held = {}   # a forked child does not inherit our locks
            self._local.pid = os.getpid()
        return held

    @contextlib.contextmanager
    def lock(self, key, timeout=None):
        """Hold the exclusive lock of ``key``; wait at most ``timeout`` seconds (default
        ``lock_timeout``), then raise TransientError.  Re-entrant within one thread."""
        held = self._held()
        if key in held:
            held[key][1] += 1
            try:
                yield
            finally:
                held[key][1] -= 1
            return
        timeout = self.lock_timeout if timeout is None else float(timeout)
        fd = os.open(self.lock_path(key), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._acquire(fd, key, timeout)
            held[key] = [fd, 1]
            try:
                yield
            finally:
                del held[key]
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _acquire(self, fd, key, timeout):
        start = self.clock()
        pause = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
            remaining = timeout - (self.clock() - start)
            if remaining <= 0:
                raise TransientError(
                    'order %s is locked by another run (waited %.1fs)' % (key, timeout),
                    fix='let the other run finish (several hosts may share this certificate) '
                        'or raise the lock timeout',
                    details={'key': key, 'lock_timeout': timeout})
            self.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.1)

    # -- records -------------------------------------------------------------------------

    def load(self, key):
        """The record of ``key``, or None.  No lock needed: files are replaced atomically."""
        path = self.record_path(key)
        try:
            with open(path, 'rb') as handle:
                raw = handle.read()
        except (IOError, OSError) as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise ConfigError('cannot read order record %s: %s' % (path, exc.strerror or exc),
                              option=self.path_option,
                              fix='check the permissions of the order store directory')
        try:
            data = json.loads(raw.decode('utf-8'))
            if not isinstance(data, dict):
                raise ValueError('not an object')
            return OrderRecord.from_dict(data)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ConfigError('order record %s is corrupt: %s' % (path, exc),
                              option=self.path_option,
                              fix='inspect it; remove it (the next run looks the order up at '
                                  'the CA) if the order is no longer needed')

    def _delete(self, key):
        try:
            os.unlink(self.record_path(key))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        self._fsync_dir()
        return True

    def keys(self):
        """Keys of all stored records, sorted."""
        return sorted(n[:-5] for n in os.listdir(self.path)
                      if n.endswith('.json') and _KEY.match(n[:-5]))


#: The file store under its own name (``OrderStore`` stays for existing callers).
FileOrderStore = OrderStore

POSTGRES_SCHEMES = ('postgresql://', 'postgres://')


def is_postgres_url(location):
    return isinstance(location, str) and location.lower().startswith(POSTGRES_SCHEMES)


def open_store(location, path_option='order_store', **kwargs):
    """The order store at ``location``: a directory path (file store) or a PostgreSQL URL
    (``postgresql://user@host:port/db``, shared by many controllers).  The PostgreSQL backend
    and its driver (psycopg 3) are imported only when such a URL is given."""
    if is_postgres_url(location):
        from ansible_collections.certforge.pki.plugins.module_utils.core import store_pg
        return store_pg.PostgresOrderStore(location, path_option=path_option, **kwargs)
    return OrderStore(location, path_option=path_option, **kwargs)


def store_secrets(params):
    """The password of a ``postgresql://user:password@host/db`` order store given as an option
    (the environment or PGPASSWORD keep it out of the task): hidden like a no_log value."""
    try:
        from urllib.parse import unquote, urlsplit
    except ImportError:  # pragma: no cover - Python 2 is not supported
        return set()
    out = set()
    for value in ((params or {}).get('order_store'),
                  ((params or {}).get('issuer_options') or {}).get('order_store')):
        if isinstance(value, str) and value.lower().startswith(('postgresql://', 'postgres://')):
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                out.update((password, unquote(password)))
    return out
