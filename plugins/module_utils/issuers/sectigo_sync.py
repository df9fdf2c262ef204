# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Search and sync the SSL certificates a Sectigo Certificate Manager account already has
(the engine of ``sectigo_certificate_info``).

How a sync runs:

* ``GET /ssl/v1`` pages (``size`` <= 200, ``position`` 0-based) are read one after another and
  streamed: every listed identity is handed to a bounded pool of worker threads as soon as its
  page arrives, and at most ``max_workers * 4`` records are in flight, so memory holds the
  results, not the whole listing plus every pending answer.
* List items carry identities only (sslId, common name, SANs, serial); a worker fetches the
  details (``GET /ssl/v1/{sslId}``) with its own ``SectigoClient`` (one requests Session per
  worker thread; sessions are not shared between threads).
* Incremental sync (a ``state_file``): the status is not in the list items, so the listing is
  partitioned by status (one pass per SCM status, the status filter being a server-side one);
  a record whose serial and status equal the stored ones is taken from the state file without
  a detail call.  One ``HEAD /ssl/v1`` count guards the partitioning: when SCM counts more
  records than the status passes returned (a status outside the documented vocabulary), an
  unfiltered pass picks up the rest.  The first sync (no usable state) lists without
  partitions.  The state file is written atomically (temporary file, fsync, rename).
* ``download_dir``: issued certificates are collected as leaf + chain (format ``x509R``, the
  self-signed root dropped) into ``<dir>/<sslId>.pem``, atomically; a file that already holds
  the record's serial is not collected again.
* ``expiring_within_days`` is applied to the details (SCM has no date filter in its list API).

Everything raises ``core.errors`` exceptions naming the option; nothing here sleeps except
the HTTP layer's Retry-After handling.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import datetime
import json
import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.certforge.pki.plugins.module_utils.core import files
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import ArgumentSpec
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    CertforgeError, ConfigError, NotReadyError, PermanentError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.http import safe_url
from ansible_collections.certforge.pki.plugins.module_utils.issuers import sectigo

STATE_VERSION = 1
MAX_WORKERS = 64
#: SCM status vocabulary (API reference 4.3); ``Unmanaged`` is deprecated and always empty.
STATUSES = ('Issued', 'Expired', 'Revoked', 'Applied', 'Requested', 'Approved', 'SA Approved',
            'Declined', 'Rejected', 'Invalid', 'Replaced', 'Init', 'Unmanaged')
PARTITION_STATUSES = tuple(s for s in STATUSES if s != 'Unmanaged')
COLLECT_FORMAT = 'x509R'
_DETAIL_PATH = re.compile(r'^ssl/v1/\d+$')

SYNC_OPTIONS = dict(
    common_name=dict(type='str'),
    status=dict(type='list', elements='str'),
    profile_ids=dict(type='list', elements='int', aliases=['ssl_type_ids']),
    organization_id=dict(type='int'),
    serial=dict(type='str'),
    expiring_within_days=dict(type='int'),
    page_size=dict(type='int', default=sectigo.MAX_PAGE),
    max_workers=dict(type='int', default=8),
    state_file=dict(type='path'),
    force_complete_sync=dict(type='bool', default=False),
    download_dir=dict(type='path'),
    query=dict(type='str'),
)

INFO_SPEC = ArgumentSpec(SYNC_OPTIONS)
INFO_SPEC.update(sectigo.CONNECTION_ARGSPEC)


def status_key(status):
    """``'SA Approved'`` / ``'saapproved'`` -> ``'saapproved'`` (how SCM compares them)."""
    return re.sub(r'[\s_-]', '', str(status or '')).lower()


def canonical_status(value, option='status'):
    wanted = status_key(value)
    for status in STATUSES:
        if status_key(status) == wanted:
            return status
    raise ConfigError('%r is not a Sectigo certificate status' % (value,), option=option,
                      fix='use one of: %s' % ', '.join(STATUSES))


# ----------------------------------------------------------------------------- records

_US_DATE = re.compile(r'^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$')
_ISO_DATE = re.compile(r'^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?'
                       r'(?:Z|[+-]00:?00)?$')


def parse_date(value, end_of_day=False):
    """An SCM date (``MM/dd/yyyy`` by default, ``MM/dd/yyyy HH:mm:ss``, or an ISO form) ->
    aware UTC datetime, or None.  A date without time is the start of that day (UTC), or with
    ``end_of_day`` its last second: Sectigo certificates run from 00:00:00 UTC of the issue
    day to 23:59:59 of the last day."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    match = _ISO_DATE.match(text)
    if match:
        year, month, day, hour, minute, second = match.groups()
    else:
        match = _US_DATE.match(text)
        if not match:
            return None
        month, day, year, hour, minute, second = match.groups()
    try:
        if hour is None:
            hms = (23, 59, 59) if end_of_day else (0, 0, 0)
        else:
            hms = (int(hour), int(minute), int(second or 0))
        return datetime.datetime(int(year), int(month), int(day), *hms, tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def _iso(dt):
    return dt.strftime('%Y-%m-%dT%H:%M:%SZ') if dt is not None else None


def _day(value):
    parsed = parse_date(value)
    return parsed.strftime('%Y-%m-%d') if parsed is not None else None


def normalize(details):
    """The result entry of one ``GET /ssl/v1/{sslId}`` answer (no ``days_left``; see
    :func:`with_days_left`)."""
    cert_type = details.get('certType') if isinstance(details.get('certType'), dict) else {}
    ssl_id = details.get('sslId') if details.get('sslId') is not None else details.get('id')
    fields = details.get('customFields') or []
    return dict(
        ssl_id=int(ssl_id),
        common_name=details.get('commonName'),
        subject_alt_names=list(details.get('subjectAlternativeNames') or []),
        status=details.get('status'),
        serial=sectigo.colon_serial(details.get('serialNumber')) or None,
        profile=cert_type.get('name'),
        profile_id=cert_type.get('id'),
        organization_id=details.get('orgId'),
        validation_type=details.get('validationType'),
        term=details.get('term'),
        key_type=details.get('keyType'),
        requester=details.get('requester'),
        requested_via=details.get('requestedVia'),
        external_requester=details.get('externalRequester') or None,
        comments=details.get('comments') or None,
        requested=_day(details.get('requested')),
        approved=_day(details.get('approved')),
        revoked=_day(details.get('revoked')),
        renewed=bool(details.get('renewed')),
        not_before=_iso(parse_date(details.get('issued'))),
        not_after=_iso(parse_date(details.get('expires'), end_of_day=True)),
        custom_fields=dict((f.get('name'), f.get('value')) for f in fields if isinstance(f, dict)),
    )


def days_left(record, now):
    """Whole days until ``not_after`` (negative once expired), or None."""
    not_after = parse_date(record.get('not_after'))
    if not_after is None:
        return None
    return int(math.floor((not_after.timestamp() - now) / 86400.0))


# ----------------------------------------------------------------------------- state file

def load_state(path, tenant):
    """Records of the last sync for ``tenant`` (``{ssl_id: record}``, ``{ssl_id: serial}`` of
    downloads).  A missing file, another tenant or an older format gives empty maps; a file
    that is not ours is refused (ConfigError naming ``state_file``)."""
    if not path or not os.path.exists(path):
        return {}, {}
    try:
        with open(path, 'r') as handle:
            data = json.load(handle)
    except ValueError as exc:
        raise ConfigError('%s is not a sync state file (%s)' % (path, exc), option='state_file',
                          fix='point state_file at a file of its own (it is created on the first sync), '
                              'or remove the damaged file')
    except (IOError, OSError) as exc:
        raise ConfigError('cannot read %s: %s' % (path, exc.strerror or exc), option='state_file',
                          fix='check the path and its permissions on the controller')
    if not isinstance(data, dict) or not isinstance(data.get('records'), dict):
        raise ConfigError('%s is not a sync state file' % path, option='state_file',
                          fix='point state_file at a file of its own, or remove it')
    if data.get('version') != STATE_VERSION or data.get('tenant') != tenant:
        return {}, {}
    records = {}
    for key, record in data['records'].items():
        if isinstance(record, dict):
            records[int(key)] = record
    downloads = dict((int(k), v) for k, v in (data.get('downloads') or {}).items())
    return records, downloads


def write_state(path, tenant, records, downloads):
    files.ensure_parent_dir(path, 'state_file')
    data = dict(version=STATE_VERSION, tenant=tenant,
                synced_at=_iso(datetime.datetime.now(datetime.timezone.utc)),
                records=dict((str(k), v) for k, v in records.items()),
                downloads=dict((str(k), v) for k, v in downloads.items()))
    try:
        files.atomic_write(path, json.dumps(data, separators=(',', ':'), sort_keys=True).encode('utf-8'),
                           mode=0o600)
    except (IOError, OSError) as exc:
        raise ConfigError('cannot write %s: %s' % (path, exc.strerror or exc), option='state_file',
                          fix='make its directory writable by the user running Ansible on the controller')


def tenant_key(options):
    """What identifies the account a state file belongs to (no secret)."""
    cfg = sectigo.env_options(options)
    return '%s|%s|%s' % (safe_url(cfg.get('base_url') or sectigo.DEFAULT_BASE_URL),
                         cfg.get('customer_uri') or '', cfg.get('login') or '')


# ----------------------------------------------------------------------------- clients

class ClientPool:
    """One ``SectigoClient`` (and so one requests Session) per thread, made on first use."""

    def __init__(self, factory):
        self.factory = factory
        self._local = threading.local()
        self._lock = threading.Lock()
        self.clients = []

    def get(self):
        client = getattr(self._local, 'client', None)
        if client is None:
            client = self.factory()
            self._local.client = client
            with self._lock:
                self.clients.append(client)
        return client

    def calls(self):
        """Requests made by every client, by kind: list, count, details, collect, other."""
        counts = dict(list=0, count=0, details=0, collect=0, other=0)
        with self._lock:
            clients = list(self.clients)
        for client in clients:
            for method, path in list(client.calls):
                path = str(path).lstrip('/')
                if path == 'ssl/v1':
                    counts['count' if method == 'HEAD' else 'list'] += 1
                elif path.startswith('ssl/v1/collect/'):
                    counts['collect'] += 1
                elif method == 'GET' and _DETAIL_PATH.match(path):
                    counts['details'] += 1
                else:
                    counts['other'] += 1
        return counts

    def warnings(self):
        found = []
        for client in self.clients:
            for warning in client.warnings:
                if warning not in found:
                    found.append(warning)
        return found

    def close(self):
        for client in self.clients:
            try:
                client.close()
            except Exception:  # pylint: disable=broad-except
                pass


# ----------------------------------------------------------------------------- the engine

def _check_int(value, option, low, high, fix):
    if value is None or isinstance(value, bool) or not isinstance(value, int) or value < low or value > high:
        raise ConfigError('must be a whole number from %d to %d, got %r' % (low, high, value),
                          option=option, fix=fix)
    return value


class CertificateSync:
    """One search/sync run.  ``client_factory()`` returns a new ``SectigoClient`` (called once
    for the listing thread and once per worker thread).  ``filters`` are module option names
    (``common_name``, ``status``, ``profile_ids``, ``organization_id``, ``serial``,
    ``expiring_within_days``).  ``limit`` stops after that many listed records (benchmarks)."""

    def __init__(self, client_factory, filters=None, page_size=sectigo.MAX_PAGE, max_workers=8,
                 state_file=None, tenant='', force_complete_sync=False, download_dir=None,
                 check_mode=False, now=None, limit=None):
        self.filters = dict(filters or {})
        self.page_size = _check_int(page_size, 'page_size', 1, sectigo.MAX_PAGE,
                                    'SCM returns at most %d records per page; use page_size <= %d'
                                    % (sectigo.MAX_PAGE, sectigo.MAX_PAGE))
        self.max_workers = _check_int(max_workers, 'max_workers', 1, MAX_WORKERS,
                                      'use 1 (one request at a time) up to %d parallel requests' % MAX_WORKERS)
        self.state_file = state_file
        self.tenant = tenant
        self.force = bool(force_complete_sync)
        self.download_dir = download_dir
        self.check_mode = bool(check_mode)
        self.now = time.time() if now is None else now
        self.limit = limit
        self.pool = ClientPool(client_factory)
        self.server_filters = self._server_filters()
        self.expiring = self.filters.get('expiring_within_days')
        if self.expiring is not None and (isinstance(self.expiring, bool) or self.expiring < 0):
            raise ConfigError('must be 0 or more days, got %r' % (self.expiring,), option='expiring_within_days',
                              fix='give the number of days ahead to look, for example 30')
        if download_dir:
            if not os.path.isdir(download_dir):
                raise ConfigError('%s is not a directory' % download_dir, option='download_dir',
                                  fix='create the directory first (ansible.builtin.file state=directory)')
        if state_file:
            files.ensure_parent_dir(state_file, 'state_file')
        self.counts = dict(listed=0, fetched=0, skipped_unchanged=0, downloaded=0, download_skipped=0)
        self.downloaded_paths = []
        self.warnings = []

    # -- filters
    def _server_filters(self):
        """A list of SCM filter dicts: one listing pass each (SCM takes one value per filter,
        so several statuses or profiles mean several passes, as Keyfactor's plugin does)."""
        base = {}
        f = self.filters
        if f.get('common_name'):
            base['commonName'] = f['common_name']
        if f.get('organization_id') is not None:
            base['orgId'] = int(f['organization_id'])
        if f.get('serial'):
            serial = sectigo.colon_serial(f['serial'])
            if not serial or re.search(r'[^0-9a-fA-F:\s]', str(f['serial'])):
                raise ConfigError('%r is not a hexadecimal serial number' % (f['serial'],), option='serial',
                                  fix='give the serial as hex, with or without colons')
            base['serialNumber'] = serial
        passes = [base]
        statuses = f.get('status') or []
        if statuses:
            unique = []
            for value in statuses:
                status = canonical_status(value)
                if status not in unique:
                    unique.append(status)
            passes = [dict(p, status=s) for p in passes for s in unique]
        profiles = f.get('profile_ids') or []
        if profiles:
            unique = []
            for value in profiles:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError('%r is not a profile id' % (value,), option='profile_ids',
                                      fix='give the numeric ids of certificate profiles (see sectigo_account_info)')
                if value not in unique:
                    unique.append(value)
            passes = [dict(p, sslTypeId=v) for p in passes for v in unique]
        return passes

    @property
    def filtered(self):
        return any(self.server_filters[0]) or len(self.server_filters) > 1

    # -- listing
    def _list_page(self, filters, position):
        return self.pool.get().list_ssl(filters, size=self.page_size, position=position)

    def _pages(self, executor, passes):
        """(filters, items) of every page of every pass.  The first pages of all passes are
        asked for at once and tell the totals (``X-Total-Count``); the remaining pages of ALL
        passes are then read ahead together by the worker threads, at most ``max_workers``
        pages at a time (a re-sync lists once per status: those passes overlap)."""
        firsts = [(f, executor.submit(self._list_page, f, 0)) for f in passes]
        rest = collections.deque()
        for filters, future in firsts:
            items, total = future.result()
            yield filters, items
            if not items or len(items) < self.page_size:
                continue
            if total is None:           # no total: one page after the other until a short one
                position = len(items)
                while True:
                    items, dummy = self._list_page(filters, position)
                    yield filters, items
                    position += len(items)
                    if not items or len(items) < self.page_size:
                        break
                continue
            rest.extend((filters, position) for position in range(self.page_size, total, self.page_size))
        ahead = collections.deque()
        while rest or ahead:
            while rest and len(ahead) < self.max_workers:
                filters, position = rest.popleft()
                ahead.append((filters, executor.submit(self._list_page, filters, position)))
            filters, future = ahead.popleft()
            items, dummy = future.result()
            yield filters, items

    def _listing(self, executor, partitioned):
        """Yield (sslId, serial, status or None) of every listed record, once each."""
        seen = set()
        passes = self.server_filters
        by_status = partitioned and not any('status' in p for p in passes)
        if by_status:
            passes = [dict(p, status=s) for p in passes for s in PARTITION_STATUSES]
        for filters, items in self._pages(executor, passes):
            for item in items:
                ssl_id = item.get('sslId') if item.get('sslId') is not None else item.get('id')
                if ssl_id is None or int(ssl_id) in seen:
                    continue
                seen.add(int(ssl_id))
                yield int(ssl_id), _serial(item.get('serialNumber')), filters.get('status')
                if self.limit is not None and len(seen) >= self.limit:
                    return
        if by_status:
            # a status outside the documented vocabulary would be missed: count, and catch up
            client = self.pool.get()
            expected = sum(client.count_ssl(p) for p in self.server_filters)
            if expected > len(seen):
                for filters, items in self._pages(executor, self.server_filters):
                    for item in items:
                        ssl_id = item.get('sslId') if item.get('sslId') is not None else item.get('id')
                        if ssl_id is None or int(ssl_id) in seen:
                            continue
                        seen.add(int(ssl_id))
                        yield int(ssl_id), _serial(item.get('serialNumber')), None

    # -- one record (runs in a worker thread)
    def _work(self, ssl_id, cached, downloaded_serial):
        client = self.pool.get()
        if cached is None:
            try:
                record = normalize(client.get_ssl(ssl_id))
            except PermanentError as exc:
                if sectigo.scm_code(exc) in sectigo.UNKNOWN_ID_CODES or exc.details.get('status') == 404:
                    return None, None       # deleted between the listing and the details
                raise
        else:
            record = cached
        outcome = None
        if self.download_dir and status_key(record.get('status')) == 'issued' and record.get('serial'):
            outcome = self._download(client, record, downloaded_serial)
        return record, outcome

    def _download(self, client, record, downloaded_serial):
        path = os.path.join(self.download_dir, '%d.pem' % record['ssl_id'])
        serial = record['serial']
        if os.path.exists(path) and (downloaded_serial == serial or _file_serial(path) == sectigo.plain_serial(serial)):
            return ('skipped', path, serial)
        if self.check_mode:
            return ('written', path, serial)
        try:
            text = client.collect(record['ssl_id'], COLLECT_FORMAT)
        except NotReadyError:
            return ('not_ready', path, None)
        leaf, chain = sectigo.split_collected(text)
        files.atomic_write(path, (leaf + ''.join(chain)).encode('ascii'), mode=0o644)
        return ('written', path, serial)

    # -- the run
    def run(self):
        old_records, old_downloads = ({}, {})
        if self.state_file:
            old_records, old_downloads = load_state(self.state_file, self.tenant)
        incremental = bool(old_records) and not self.force
        new_records = {}
        new_downloads = {}
        results = []
        bound = self.max_workers * 4
        pending = collections.deque()
        executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix='certforge-scm')
        ok = False
        try:
            def settle(entry):
                ssl_id, future = entry
                record, outcome = future.result() if future is not None else (old_records[ssl_id], None)
                if record is None:
                    return
                new_records[ssl_id] = record
                if outcome is not None:
                    kind, path, serial = outcome
                    if kind == 'written':
                        self.counts['downloaded'] += 1
                        self.downloaded_paths.append(path)
                    elif kind == 'skipped':
                        self.counts['download_skipped'] += 1
                    elif kind == 'not_ready':
                        self.warnings.append('certificate %s is Issued but SCM did not hand it out yet; '
                                             'it is downloaded on the next run' % ssl_id)
                    if serial and kind != 'not_ready' and not (kind == 'written' and self.check_mode):
                        new_downloads[ssl_id] = serial
                record['days_left'] = days_left(record, self.now)
                if self._wanted(record):
                    results.append(record)

            for ssl_id, serial, status in self._listing(executor, incremental):
                self.counts['listed'] += 1
                cached = old_records.get(ssl_id) if incremental else None
                if cached is not None and (status is None or cached.get('serial') != serial
                                           or status_key(cached.get('status')) != status_key(status)):
                    cached = None
                if cached is None:
                    self.counts['fetched'] += 1
                else:
                    self.counts['skipped_unchanged'] += 1
                if cached is not None and (not self.download_dir or status_key(cached.get('status')) != 'issued'):
                    pending.append((ssl_id, None))      # nothing to fetch: no worker needed
                else:
                    pending.append((ssl_id, executor.submit(self._work, ssl_id, cached,
                                                            old_downloads.get(ssl_id))))
                while len(pending) > bound:
                    settle(pending.popleft())
            while pending:
                settle(pending.popleft())
            ok = True
        finally:
            executor.shutdown(wait=True, cancel_futures=not ok)
            if not ok:
                self.pool.close()
        if self.filtered:
            merged = dict(old_records)
            merged.update(new_records)
            new_records = merged
            downloads = dict(old_downloads)
            downloads.update(new_downloads)
            new_downloads = downloads
        state_written = False
        if self.state_file and not self.check_mode:
            write_state(self.state_file, self.tenant, new_records, new_downloads)
            state_written = True
        results.sort(key=lambda r: r['ssl_id'])
        calls = self.pool.calls()
        self.warnings.extend(w for w in self.pool.warnings() if w not in self.warnings)
        self.pool.close()
        return dict(
            certificates=results, total=len(results), listed=self.counts['listed'],
            fetched=self.counts['fetched'], skipped_unchanged=self.counts['skipped_unchanged'],
            incremental=incremental, downloaded=sorted(self.downloaded_paths),
            download_skipped=self.counts['download_skipped'], state_file_written=state_written,
            calls=sum(calls.values()), calls_by_kind=calls)

    def _wanted(self, record):
        if self.expiring is None:
            return True
        left = record.get('days_left')
        if left is None:
            return False
        not_after = parse_date(record.get('not_after'))
        return not_after.timestamp() >= self.now and left <= self.expiring


_COLON_SERIAL = re.compile(r'^(?:[0-9A-F]{2}:)*[0-9A-F]{2}$')


def _serial(value):
    """Colon form of a listed serial (SCM's own form passes through untouched), or None."""
    if isinstance(value, str) and _COLON_SERIAL.match(value):
        return value
    return sectigo.colon_serial(value) or None


def _file_serial(path):
    """Plain hex serial of the first certificate in ``path``, or None."""
    try:
        from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
        with open(path, 'rb') as handle:
            data = handle.read()
        return cx509.serial_hex(cx509.load_certificate(data, option='download_dir'))
    except (CertforgeError, IOError, OSError, ValueError, ImportError):
        return None


# ----------------------------------------------------------------------------- the module

def compile_query(query):
    """The compiled JMESPath expression (jmespath imported here, not at module load)."""
    try:
        import jmespath
    except ImportError:
        from ansible.module_utils.basic import missing_required_lib
        raise ConfigError(missing_required_lib('jmespath'), option='query',
                          fix='install jmespath for the Python that runs Ansible on the controller')
    try:
        return jmespath.compile(query)
    except jmespath.exceptions.JMESPathError as exc:
        raise ConfigError('is not a valid JMESPath expression: %s' % ' '.join(str(exc).split()),
                          option='query', fix="for example \"[?days_left < `30`].common_name\"")


def execute_certificate_info(ctx, client_factory=None):
    """``execute(ctx)`` of sectigo_certificate_info."""
    p = ctx.params
    expression = compile_query(p['query']) if p.get('query') else None
    options = dict((k, p.get(k)) for k in sectigo.CONNECTION_ARGSPEC if p.get(k) is not None)
    if client_factory is None:
        sectigo.SectigoClient.from_options(options).close()      # bad options fail before any thread

        def client_factory():
            return sectigo.SectigoClient.from_options(options)
    filters = dict((k, p.get(k)) for k in ('common_name', 'status', 'profile_ids', 'organization_id',
                                           'serial', 'expiring_within_days'))
    sync = CertificateSync(client_factory, filters=filters, page_size=p.get('page_size'),
                           max_workers=p.get('max_workers'), state_file=p.get('state_file'),
                           tenant=tenant_key(options), force_complete_sync=p.get('force_complete_sync'),
                           download_dir=p.get('download_dir'), check_mode=ctx.check_mode)
    result = sync.run()
    for warning in sync.warnings:
        ctx.warn(warning)
    result['changed'] = bool(result['downloaded'])
    if expression is not None:
        try:
            result['query_result'] = expression.search(result['certificates'])
        except Exception as exc:  # pylint: disable=broad-except
            raise ConfigError('failed on the results: %s' % exc, option='query',
                              fix='check the expression against the certificates list (fields such as '
                                  'common_name, status, days_left)')
    return result
