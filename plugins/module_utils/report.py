# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet certificate report: one inventory from discovery results, TLS scans, the order
store and the local CA's records, written as a self-contained HTML page, JSON and CSV.

Merging: a certificate is keyed by its SHA-256 fingerprint (upper-case hex, no colons); a
source without a fingerprint (and without the PEM to compute one) is keyed by issuer and
serial.  Every place a certificate was seen is kept in its ``locations``: a file on a host
(discovery), an endpoint (scan, with the chain position), an order-store record, a local CA
record.

Determinism: rows, counts and the embedded data depend only on the inputs and on ``as_of``
(which decides ``days_left`` and the status).  The generation time appears once per file (a
``<meta>`` tag in the page, the ``generated_at`` key of the JSON); an existing file whose
content differs only there is left alone, so a report whose data did not change is not
rewritten and the task reports ``changed=false``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import datetime
import hashlib
import io
import json
import math
import os
import re
import stat

from ansible_collections.certforge.pki.plugins.module_utils.core import files
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import ArgumentSpec, destination, number
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.report_page import render_page

SPEC = ArgumentSpec(
    dict(
        discovery=dict(type='raw', default=[]),
        scans=dict(type='raw', default=[]),
        order_store=dict(type='str'),
        local_ca_path=dict(type='path'),
        warn_days=dict(type='int', default=30),
        critical_days=dict(type='int', default=7),
        html_path=dict(type='path'),
        json_path=dict(type='path'),
        csv_path=dict(type='path'),
        title=dict(type='str', default='Certificate report'),
        as_of=dict(type='str'),
        mode=dict(type='raw', default='0644'),
    ),
    checks={
        'html_path': [destination], 'json_path': [destination], 'csv_path': [destination],
        'warn_days': [number(0, 36500, example=30, unit=' days')],
        'critical_days': [number(0, 36500, example=7, unit=' days')],
    },
)

BUCKETS = ('expired', 'le7', 'le30', 'le90', 'later', 'unknown')
BUCKET_LABELS = {'expired': 'expired', 'le7': '<= 7 days', 'le30': '<= 30 days', 'le90': '<= 90 days',
                 'later': 'later', 'unknown': 'no expiry date'}
STATUSES = ('expired', 'critical', 'warning', 'ok', 'unknown')
CSV_COLUMNS = ('fingerprint_sha256', 'common_name', 'subject', 'sans', 'issuer', 'serial', 'not_after',
               'days_left', 'status', 'bucket', 'self_signed', 'is_ca', 'managed', 'hosts', 'locations',
               'sources', 'problems')

_GENERATED_HTML = re.compile(r'(<meta name="certforge-generated-at" content=")[^"]*(">)')
_GENERATED_JSON = re.compile(r'^(  "generated_at": )"[^"\n]*"(,?)$', re.M)
_DATA_BLOCK = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


# ---------------------------------------------------------------------------------------------
# small parsers
# ---------------------------------------------------------------------------------------------

def parse_time(value, option):
    """An aware UTC datetime from ISO 8601 text (``Z`` or an offset; naive means UTC), the ASN.1
    form ``YYYYMMDDHHMMSSZ`` or a datetime.  ConfigError naming ``option`` otherwise."""
    if isinstance(value, datetime.datetime):
        dt = value
    else:
        text = str(value).strip()
        match = re.match(r'^(\d{14})Z$', text)
        try:
            if match:
                dt = datetime.datetime.strptime(match.group(1), '%Y%m%d%H%M%S')
            else:
                if text.endswith('Z') or text.endswith('z'):
                    text = text[:-1] + '+00:00'
                text = re.sub(r'(\.\d{6})\d+', r'\1', text)
                dt = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ConfigError('%r is not an ISO 8601 date and time' % (str(value)[:80],), option=option,
                              fix='give a time such as 2026-12-01T00:00:00Z')
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.astimezone(datetime.timezone.utc)


def iso(dt):
    return dt.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def normalize_fingerprint(value):
    """Upper-case hex without separators, or None when ``value`` is no SHA-256 fingerprint."""
    if not isinstance(value, str):
        return None
    text = re.sub(r'^sha256[:/]', '', value.strip(), flags=re.I)
    text = re.sub(r'[\s:-]', '', text).upper()
    return text if re.match(r'^[0-9A-F]{64}$', text) else None


def colon_fingerprint(hexstr):
    return ':'.join(hexstr[i:i + 2] for i in range(0, len(hexstr), 2))


def normalize_serial(value):
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = '%X' % value
    else:
        text = re.sub(r'[\s:]', '', str(value)).upper()
        if text.startswith('0X'):
            text = text[2:]
    if not text:
        return None
    return ('0' + text) if len(text) % 2 else text


def name_text(value):
    """A subject or issuer as one string (RFC 4514 text as given, or a dict of attributes)."""
    if value is None:
        return ''
    if isinstance(value, dict):
        order = ('commonName', 'CN', 'organizationalUnitName', 'OU', 'organizationName', 'O', 'countryName', 'C')
        short = {'commonName': 'CN', 'organizationalUnitName': 'OU', 'organizationName': 'O', 'countryName': 'C'}
        parts = []
        for key in list(order) + sorted(k for k in value if k not in order):
            if key in value and value[key] not in (None, ''):
                parts.append('%s=%s' % (short.get(key, key), value[key]))
        return ','.join(parts)
    if isinstance(value, (list, tuple)):
        return ','.join('%s=%s' % tuple(p) if isinstance(p, (list, tuple)) and len(p) == 2 else str(p)
                        for p in value)
    return str(value)


def common_name(subject):
    subject = subject or ''
    if subject.startswith('/'):          # OpenSSL's one-line form: /C=DE/O=Example/CN=www
        match = re.search(r'/CN=([^/]*)', subject)
    else:                                # RFC 4514: CN=www,O=Example
        match = re.search(r'(?:^|,)\s*CN\s*=\s*((?:\\.|[^,\\])*)', subject)
    return re.sub(r'\\(.)', r'\1', match.group(1).strip()) if match else ''


def san_texts(value):
    if value is None:
        return []
    if isinstance(value, str):
        value = [s for s in re.split(r'[,\s]+', value) if s]
    if not isinstance(value, (list, tuple)):
        return [str(value)]
    out = []
    for item in value:
        if isinstance(item, dict):
            item = item.get('value') or item.get('name') or ''
        text = str(item).strip()
        if text and text not in out:
            out.append(text)
    return out


def bucket_of(days_left, expired):
    if days_left is None:
        return 'unknown'
    if expired:
        return 'expired'
    if days_left <= 7:
        return 'le7'
    if days_left <= 30:
        return 'le30'
    if days_left <= 90:
        return 'le90'
    return 'later'


def status_of(days_left, expired, warn_days, critical_days):
    if days_left is None:
        return 'unknown'
    if expired:
        return 'expired'
    if days_left <= critical_days:
        return 'critical'
    if days_left <= warn_days:
        return 'warning'
    return 'ok'


# ---------------------------------------------------------------------------------------------
# the inventory
# ---------------------------------------------------------------------------------------------

class Inventory:
    """Rows keyed by fingerprint (or issuer+serial), with every location of each."""

    def __init__(self, as_of, warn_days, critical_days):
        self.as_of = as_of
        self.warn_days = warn_days
        self.critical_days = critical_days
        self.rows = {}
        self.aliases = {}          # issuer+serial key -> row key (a fingerprint once known)
        self.skipped = []          # hosts or endpoints without usable results, with the reason
        self.counts = dict(discovery_hosts=0, discovery_certificates=0, endpoints=0, endpoints_failed=0,
                           order_store_records=0, local_ca_records=0)

    @staticmethod
    def _serial_key(issuer, serial):
        return 'serial:%s:%s' % (issuer, serial) if serial else None

    def add(self, facts, location, option, attach_only=False):
        """Merge ``facts`` (dict of certificate fields) seen at ``location``.  With
        ``attach_only`` the location is added only to a certificate already known."""
        fingerprints = facts.get('fingerprints') if isinstance(facts.get('fingerprints'), dict) else {}
        fp = normalize_fingerprint(facts.get('fingerprint_sha256') or facts.get('sha256')
                                   or fingerprints.get('sha256'))
        issuer = name_text(facts.get('issuer'))
        serial = normalize_serial(facts.get('serial'))
        skey = self._serial_key(issuer, serial)
        key = None
        if fp and fp in self.rows:
            key = fp
        elif skey and skey in self.aliases:
            key = self.aliases[skey]
            if fp and key != fp and key.startswith('serial:'):
                # the issuer+serial row learns its fingerprint: re-key it
                self.rows[fp] = self.rows.pop(key)
                self.rows[fp]['fingerprint_sha256'] = colon_fingerprint(fp)
                for alias, target in list(self.aliases.items()):
                    if target == key:
                        self.aliases[alias] = fp
                key = fp
        if key is None:
            if attach_only:
                return None
            key = fp or skey
            if key is None:
                subject = name_text(facts.get('subject'))
                key = 'subject:%s:%s:%s' % (subject, issuer, facts.get('not_after'))
            self.rows[key] = self._new_row(fp)
        if skey:
            self.aliases.setdefault(skey, key)
        row = self.rows[key]
        self._merge(row, facts, issuer, serial, option)
        if location not in row['locations']:
            row['locations'].append(location)
        return row

    @staticmethod
    def _new_row(fp):
        return dict(fingerprint_sha256=colon_fingerprint(fp) if fp else None, subject='', common_name='',
                    sans=[], issuer='', serial=None, not_before=None, not_after=None, self_signed=None,
                    is_ca=None, key_match=None, managed=False, locations=[], problems=[])

    def _merge(self, row, facts, issuer, serial, option):
        subject = name_text(facts.get('subject'))
        if subject and not row['subject']:
            row['subject'] = subject
            row['common_name'] = facts.get('common_name') or common_name(subject)
        if not row['common_name'] and facts.get('common_name'):
            row['common_name'] = str(facts['common_name'])
        for san in san_texts(facts.get('sans', facts.get('subject_alt_names'))):
            if san not in row['sans']:
                row['sans'].append(san)
        if issuer and not row['issuer']:
            row['issuer'] = issuer
        if serial and not row['serial']:
            row['serial'] = serial
        for name in ('not_before', 'not_after'):
            value = facts.get(name)
            if value not in (None, '') and row[name] is None:
                row[name] = iso(parse_time(value, '%s.%s' % (option, name)))
        for name in ('self_signed', 'is_ca', 'key_match'):
            value = facts.get(name)
            if name == 'key_match' and isinstance(value, str):
                value = bool(value)          # discovery names the matching key file
            if isinstance(value, bool) and row[name] is None:
                row[name] = value
        if facts.get('managed') is True:
            row['managed'] = True
        for problem in facts.get('problems') or []:
            text = problem if isinstance(problem, str) else json.dumps(problem, sort_keys=True, default=str)
            if text not in row['problems']:
                row['problems'].append(text)

    # -- result ------------------------------------------------------------------------------

    def finished_rows(self):
        out = []
        for row in self.rows.values():
            row = dict(row)
            if row['not_after']:
                end = parse_time(row['not_after'], 'not_after')
                seconds = (end - self.as_of).total_seconds()
                row['days_left'] = int(math.floor(seconds / 86400.0))
                expired = seconds <= 0
            else:
                row['days_left'] = None
                expired = False
            row['bucket'] = bucket_of(row['days_left'], expired)
            row['status'] = status_of(row['days_left'], expired, self.warn_days, self.critical_days)
            row['locations'] = sorted(row['locations'], key=_location_sort_key)
            row['hosts'] = sorted(set(loc['host'] for loc in row['locations'] if loc.get('host')))
            row['sources'] = sorted(set(loc['kind'] for loc in row['locations']))
            if any(loc['kind'] in ('order_store', 'local_ca') for loc in row['locations']):
                row['managed'] = True
            if not row['common_name'] and row['sans']:
                row['common_name'] = row['sans'][0]
            out.append(row)
        out.sort(key=lambda r: (r['days_left'] is None, r['days_left'] if r['days_left'] is not None else 0,
                                r['common_name'], r['fingerprint_sha256'] or '', r['serial'] or ''))
        return out


def _location_sort_key(loc):
    return (loc.get('kind', ''), str(loc.get('host') or ''), str(loc.get('path') or ''),
            str(loc.get('port') or ''), str(loc.get('sni') or ''), str(loc.get('position', '')),
            str(loc.get('key') or ''), str(loc.get('serial') or ''))


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------

def _skipped_reason(result):
    # True only: a discovery result carries a list named 'skipped' (files it could not read)
    if result.get('unreachable') is True:
        return 'unreachable'
    if result.get('skipped') is True:
        return 'skipped'
    if result.get('failed') is True:
        return 'failed: %s' % str(result.get('msg') or '')[:200]
    return None


def discovery_entries(value):
    """``[(host, result, option)]`` from a list of registered results or a dict host -> result."""
    option = 'discovery'
    if value is None:
        return []
    if isinstance(value, str):
        raise ConfigError('is a string; a list of registered results or a dict host -> result is needed',
                          option=option, fix="pass the registered variables themselves, e.g. "
                                             "discovery: \"{{ dict(ansible_play_hosts | zip(ansible_play_hosts "
                                             "| map('extract', hostvars, 'found'))) }}\"")
    entries = []
    if isinstance(value, dict):
        if 'certificates' in value or 'results' in value:
            value = [value]
        else:
            for host in sorted(value, key=str):
                entries.append((str(host), value[host], '%s[%s]' % (option, host)))
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            entries.append((None, item, '%s[%d]' % (option, index)))
    elif not isinstance(value, dict):
        raise ConfigError('is a %s; a list of registered results or a dict host -> result is needed'
                          % type(value).__name__, option=option,
                          fix='pass the results registered from certforge.pki.certificate_discovery')
    out = []
    for host, result, opt in entries:
        if not isinstance(result, dict):
            raise ConfigError('is a %s, not a certificate_discovery result' % type(result).__name__, option=opt,
                              fix='pass the registered results of certforge.pki.certificate_discovery')
        if isinstance(result.get('results'), list) and 'certificates' not in result:
            # a registered loop: one result per item
            for index, sub in enumerate(result['results']):
                if not isinstance(sub, dict):
                    raise ConfigError('is a %s, not a certificate_discovery result' % type(sub).__name__,
                                      option='%s.results[%d]' % (opt, index),
                                      fix='pass the registered results of certforge.pki.certificate_discovery')
                out.append((host, sub, '%s.results[%d]' % (opt, index)))
        else:
            out.append((host, result, opt))
    return out


def add_discovery(inv, value):
    for host, result, opt in discovery_entries(value):
        host = host or result.get('host') or result.get('inventory_hostname') or result.get('_ansible_delegated_vars', {}).get('ansible_host')
        reason = _skipped_reason(result)
        if reason:
            inv.skipped.append(dict(source='discovery', host=host, reason=reason))
            continue
        certificates = result.get('certificates')
        if not isinstance(certificates, list):
            raise ConfigError('has no list "certificates"; is it a certforge.pki.certificate_discovery result?',
                              option=opt, fix='pass the registered results of certforge.pki.certificate_discovery')
        if not host:
            raise ConfigError('does not say which host it is from', option=opt,
                              fix="give a dict host -> result, e.g. \"{{ dict(ansible_play_hosts | "
                                  "zip(ansible_play_hosts | map('extract', hostvars, 'found'))) }}\"")
        inv.counts['discovery_hosts'] += 1
        for index, cert in enumerate(certificates):
            copt = '%s.certificates[%d]' % (opt, index)
            if not isinstance(cert, dict):
                raise ConfigError('is a %s, not a certificate' % type(cert).__name__, option=copt,
                                  fix='pass the registered results of certforge.pki.certificate_discovery')
            if cert.get('error') and not cert.get('not_after') and not cert.get('fingerprint_sha256'):
                inv.skipped.append(dict(source='discovery', host=str(host), path=cert.get('path'),
                                        reason=str(cert.get('error'))[:200]))
                continue
            location = dict(kind='file', host=str(host), path=str(cert.get('path') or ''))
            if isinstance(cert.get('position'), int):
                location['position'] = cert['position']
            for name in ('key_match', 'managed', 'managed_by'):
                if isinstance(cert.get(name), (bool, str)):
                    location[name] = cert[name]
            inv.add(cert, location, copt)
            inv.counts['discovery_certificates'] += 1


def scan_endpoints(value):
    option = 'scans'
    if value is None:
        return []
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError('is a %s; a list of certforge.pki.tls_scan results is needed' % type(value).__name__,
                          option=option, fix='pass the registered results of certforge.pki.tls_scan as a list')
    out = []
    for index, result in enumerate(value):
        opt = '%s[%d]' % (option, index)
        if not isinstance(result, dict):
            raise ConfigError('is a %s, not a tls_scan result' % type(result).__name__, option=opt,
                              fix='pass the registered results of certforge.pki.tls_scan')
        if isinstance(result.get('results'), list) and 'endpoints' not in result:
            subs = [('%s.results[%d]' % (opt, i), r) for i, r in enumerate(result['results'])]
        else:
            subs = [(opt, result)]
        for sopt, sub in subs:
            if not isinstance(sub, dict):
                raise ConfigError('is a %s, not a tls_scan result' % type(sub).__name__, option=sopt,
                                  fix='pass the registered results of certforge.pki.tls_scan')
            reason = _skipped_reason(sub)
            if reason:
                out.append((sopt, None, reason))
                continue
            endpoints = sub.get('endpoints')
            if not isinstance(endpoints, list):
                raise ConfigError('has no list "endpoints"; is it a certforge.pki.tls_scan result?', option=sopt,
                                  fix='pass the registered results of certforge.pki.tls_scan')
            for eindex, endpoint in enumerate(endpoints):
                out.append(('%s.endpoints[%d]' % (sopt, eindex), endpoint, None))
    return out


def add_scans(inv, value):
    for opt, endpoint, reason in scan_endpoints(value):
        if endpoint is None:
            inv.skipped.append(dict(source='scan', reason=reason))
            continue
        if not isinstance(endpoint, dict):
            raise ConfigError('is a %s, not an endpoint' % type(endpoint).__name__, option=opt,
                              fix='pass the registered results of certforge.pki.tls_scan')
        host = str(endpoint.get('host') or '')
        port = endpoint.get('port')
        inv.counts['endpoints'] += 1
        chain = endpoint.get('chain') or []
        if not isinstance(chain, list):
            raise ConfigError('"chain" is a %s, not a list' % type(chain).__name__, option=opt,
                              fix='pass the registered results of certforge.pki.tls_scan')
        problems = [p if isinstance(p, str) else json.dumps(p, sort_keys=True, default=str)
                    for p in (endpoint.get('problems') or [])]
        if not chain:
            inv.counts['endpoints_failed'] += 1
            inv.skipped.append(dict(source='scan', host=host, port=port,
                                    reason=str(endpoint.get('error') or '; '.join(problems) or 'no certificate')[:200]))
            continue
        for position, cert in enumerate(chain):
            copt = '%s.chain[%d]' % (opt, position)
            if not isinstance(cert, dict):
                raise ConfigError('is a %s, not a certificate' % type(cert).__name__, option=copt,
                                  fix='pass the registered results of certforge.pki.tls_scan')
            location = dict(kind='endpoint', host=host, port=port, sni=endpoint.get('sni'), position=position)
            if position == 0 and (endpoint.get('protocol') or endpoint.get('cipher')):
                location.update(protocol=endpoint.get('protocol'), cipher=endpoint.get('cipher'))
            facts = dict(cert)
            if position == 0 and problems:
                facts['problems'] = list(cert.get('problems') or []) + problems
            inv.add(facts, location, copt)


def _pem_facts(pem, option):
    from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
    cert = cx509.load_certificate(pem, option=option)
    facts = cx509.cert_facts(cert)
    return dict(subject=facts['subject_string'], issuer=facts['issuer_string'], serial=facts['serial'],
                not_before=facts['not_before'], not_after=facts['not_after'],
                fingerprint_sha256=facts['fingerprints']['sha256'], sans=cx509.san_list(cert),
                self_signed=facts['self_signed'], is_ca=bool(facts.get('is_ca')))


def add_order_store(inv, location):
    from ansible_collections.certforge.pki.plugins.module_utils.core.orders import is_postgres_url, open_store
    if not is_postgres_url(location):
        path = os.path.abspath(os.path.expanduser(location))
        if not os.path.isdir(path):
            raise ConfigError('order store %s does not exist' % path, option='order_store',
                              fix='give the directory the certificate modules use as order store, or leave '
                                  'the option out')
        location = path
    store = open_store(location)
    try:
        for key in store.keys():
            record = store.load(key)
            if record is None or record.status != 'issued':
                continue
            pem = (record.order or {}).get('certificate_pem')
            if not pem:
                continue
            facts = _pem_facts(pem, 'order_store')
            name = key.split('+', 1)[1] if '+' in key else key
            inv.add(facts, dict(kind='order_store', issuer=record.issuer, name=name, key=key), 'order_store')
            inv.counts['order_store_records'] += 1
    finally:
        store.close()


def add_local_ca(inv, path):
    from ansible_collections.certforge.pki.plugins.module_utils.issuers.local_ca import LocalCA
    path = os.path.abspath(os.path.expanduser(path))
    ca = LocalCA(path, option='local_ca_path').load(need_key=False)
    ca_facts = _pem_facts(ca.cert_pem, 'local_ca_path')
    inv.add(ca_facts, dict(kind='local_ca', path=path, role='ca'), 'local_ca_path')
    later = []
    for serial, record in sorted(ca.index().items()):
        pem = ca.certificate_pem(serial)
        if pem:
            facts = _pem_facts(pem, 'local_ca_path')
        else:
            facts = dict(subject=record.get('subject'), issuer=ca_facts['subject'], serial=serial,
                         not_before=record.get('not_before'), not_after=record.get('not_after'),
                         sans=record.get('subject_alt_names'))
        state = 'revoked' if record.get('status') == 'revoked' else (
            'superseded' if record.get('superseded_by') else 'valid')
        location = dict(kind='local_ca', path=path, serial=normalize_serial(serial), name=record.get('name'),
                        state=state)
        inv.counts['local_ca_records'] += 1
        if state == 'valid':
            inv.add(facts, location, 'local_ca_path')
        else:
            later.append((facts, location))
    # revoked and superseded certificates are listed only where they are still found in use
    for facts, location in later:
        inv.add(facts, location, 'local_ca_path', attach_only=True)


# ---------------------------------------------------------------------------------------------
# summary and outputs
# ---------------------------------------------------------------------------------------------

def summarize(rows):
    by_bucket = dict((b, 0) for b in BUCKETS)
    by_status = dict((s, 0) for s in STATUSES)
    by_issuer = {}
    by_host = {}
    timeline = {}
    for row in rows:
        by_bucket[row['bucket']] += 1
        by_status[row['status']] += 1
        issuer = row['issuer'] or '(unknown)'
        by_issuer[issuer] = by_issuer.get(issuer, 0) + 1
        for host in row['hosts']:
            counts = by_host.setdefault(host, dict((s, 0) for s in ('total',) + STATUSES))
            counts['total'] += 1
            counts[row['status']] += 1
        if row['not_after']:
            month = row['not_after'][:7]
            timeline[month] = timeline.get(month, 0) + 1
    return dict(
        total=len(rows), by_bucket=by_bucket, by_status=by_status,
        by_issuer=[dict(issuer=k, count=v) for k, v in sorted(by_issuer.items(), key=lambda kv: (-kv[1], kv[0]))],
        by_host=dict(sorted(by_host.items())),
        timeline=[dict(month=k, count=v) for k, v in sorted(timeline.items())],
    )


def _location_text(loc):
    kind = loc.get('kind')
    if kind == 'file':
        return '%s:%s' % (loc.get('host'), loc.get('path'))
    if kind == 'endpoint':
        text = '%s:%s' % (loc.get('host'), loc.get('port'))
        if loc.get('sni'):
            text += ' (sni %s)' % loc['sni']
        if loc.get('position'):
            text += ' chain[%s]' % loc['position']
        return 'tls ' + text
    if kind == 'order_store':
        return 'order store %s/%s' % (loc.get('issuer'), loc.get('name'))
    if kind == 'local_ca':
        if loc.get('role') == 'ca':
            return 'local CA certificate %s' % loc.get('path')
        return 'local CA %s serial %s (%s)' % (loc.get('path'), loc.get('serial'), loc.get('state'))
    return json.dumps(loc, sort_keys=True, default=str)


def _csv_cell(value):
    """Text cells that a spreadsheet would run as a formula get a leading quote."""
    if isinstance(value, str) and value[:1] in ('=', '+', '-', '@', '\t', '\r'):
        return "'" + value
    return value


def render_csv(rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = []
        for col in CSV_COLUMNS:
            value = row.get(col)
            if col in ('sans', 'hosts', 'sources'):
                value = ' '.join(value)
            elif col == 'problems':
                value = '; '.join(value)
            elif col == 'locations':
                value = '; '.join(_location_text(loc) for loc in value)
            elif isinstance(value, bool):
                value = 'true' if value else 'false'
            elif value is None:
                value = ''
            if col not in ('days_left',):
                value = _csv_cell(value)
            values.append(value)
        writer.writerow(values)
    return out.getvalue()


def render_json(report, generated_at):
    body = dict(report)
    body['generated_at'] = generated_at
    text = json.dumps(body, indent=2, sort_keys=True, default=str)
    return text + '\n'


def _stable(kind, text):
    if kind == 'html':
        return _GENERATED_HTML.sub(r'\1\2', text)
    if kind == 'json':
        return _GENERATED_JSON.sub(r'\1""\2', text)
    return text


def _diff_text(kind, text):
    """What --diff shows of a file: the CSV and JSON as they are (without the generation
    time), the page's embedded data (pretty-printed) instead of the whole page."""
    if text is None:
        return ''
    if kind == 'html':
        match = _DATA_BLOCK.search(text)
        if not match:
            return text
        try:
            return json.dumps(json.loads(match.group(1)), indent=1, sort_keys=True) + '\n'
        except ValueError:
            return match.group(1)
    return _stable(kind, text)


def _read_existing(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'replace')
    except (IOError, OSError):
        return None


def execute(ctx):
    p = ctx.params
    if p['critical_days'] > p['warn_days']:
        raise ConfigError('%d is larger than warn_days (%d)' % (p['critical_days'], p['warn_days']),
                          option='critical_days', fix='give critical_days <= warn_days, e.g. 7 and 30')
    if p.get('as_of'):
        as_of = parse_time(p['as_of'], 'as_of')
    else:
        as_of = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    mode = files.parse_mode(p.get('mode'), 'mode')
    outputs = []
    seen = {}
    for kind in ('html', 'json', 'csv'):
        option = '%s_path' % kind
        path = p.get(option)
        if not path:
            continue
        path = os.path.abspath(os.path.expanduser(path))
        if path in seen:
            raise ConfigError('is the same file as %s' % seen[path], option=option,
                              fix='give each output its own file name')
        seen[path] = option
        if os.path.isdir(path):
            raise ConfigError('%s is a directory, not a regular file' % path, option=option,
                              fix='give a file name inside it, e.g. %s/report.%s' % (path.rstrip('/'), kind))
        outputs.append((kind, option, path))

    inv = Inventory(as_of, p['warn_days'], p['critical_days'])
    add_discovery(inv, p.get('discovery'))
    add_scans(inv, p.get('scans'))
    if p.get('order_store'):
        add_order_store(inv, p['order_store'])
    if p.get('local_ca_path'):
        add_local_ca(inv, p['local_ca_path'])
    rows = inv.finished_rows()
    summary = summarize(rows)
    report = dict(title=p['title'], warn_days=p['warn_days'], critical_days=p['critical_days'],
                  certificates=rows, summary=summary, left_out=inv.skipped, sources=inv.counts,
                  bucket_labels=BUCKET_LABELS)
    generated_at = iso(as_of)

    rendered = {}
    for kind, option, path in outputs:
        if kind == 'html':
            rendered[kind] = render_page(report, generated_at)
        elif kind == 'json':
            rendered[kind] = render_json(report, generated_at)
        else:
            rendered[kind] = render_csv(rows)

    changed = False
    written = {}
    diffs = []
    for kind, option, path in outputs:
        text = rendered[kind]
        existing = _read_existing(path)
        content_changed = existing is None or _stable(kind, existing) != _stable(kind, text)
        mode_changed = False
        if not content_changed and mode is not None:
            mode_changed = stat.S_IMODE(os.stat(path).st_mode) != mode
        file_changed = content_changed or mode_changed
        if file_changed and not ctx.check_mode:
            if content_changed:
                try:
                    files.atomic_write(path, text.encode('utf-8'), mode=mode)
                except OSError as exc:
                    raise ConfigError('cannot write %s: %s' % (path, exc.strerror or exc), option=option,
                                      fix='check that the controller user may write into %s'
                                          % os.path.dirname(path))
            else:
                os.chmod(path, mode)
        changed = changed or file_changed
        # the digest of what the file holds afterwards (an unchanged file keeps its generation time)
        kept = existing if (existing is not None and not content_changed) else text
        written[kind] = dict(path=path, changed=file_changed,
                             sha256=hashlib.sha256(kept.encode('utf-8')).hexdigest())
        if ctx.diff and content_changed:
            diffs.append(dict(before_header=path if existing is not None else '%s (absent)' % path,
                              after_header=path, before=_diff_text(kind, existing), after=_diff_text(kind, text)))

    attention = [r for r in rows if r['status'] in ('expired', 'critical', 'warning')]
    result = dict(changed=changed, certificates=rows, summary=summary, files=written, left_out=inv.skipped,
                  sources=inv.counts, as_of=generated_at, attention=attention,
                  total=summary['total'], expired=summary['by_status']['expired'],
                  critical=summary['by_status']['critical'], warning=summary['by_status']['warning'])
    if diffs:
        result['diff'] = diffs
    return result
