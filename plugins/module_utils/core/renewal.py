# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one renewal decision of the collection, with reasons.

It works on parsed certificate facts (``core.x509.cert_facts``), so it is cheap and needs no
cryptography import of its own: the no-op path of a module can decide from facts alone.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError

REASON_MISSING = 'missing'
REASON_EXPIRED = 'expired'
REASON_WINDOW = 'inside_window'
REASON_FRACTION = 'lifetime_fraction'
REASON_SAN = 'san_changed'
REASON_KEY = 'key_changed'
REASON_ISSUER = 'issuer_changed'
REASON_PROFILE = 'profile_changed'
REASON_FORCED = 'forced'
REASON_CA_ADVISED = 'ca_advised'

DEFAULT_POLICY = {'renew_before_days': 30, 'renew_at_fraction': None, 'force': False}

#: Option names and docs shared by every module that decides renewal (kept in step with
#: the ``renewal`` doc fragment).
ARGSPEC = dict(
    renew_before_days=dict(type='int', default=30),
    renew_at_fraction=dict(type='float'),
    force=dict(type='bool', default=False),
)


def parse_time(value):
    """ISO 8601 (``2026-01-02T03:04:05Z``) or datetime -> aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        dt = value
    else:
        text = str(value).strip()
        if text.endswith('Z'):
            text = text[:-1] + '+00:00'
        dt = datetime.datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.astimezone(datetime.timezone.utc)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def check_policy(policy):
    """Validate policy options; raise ConfigError naming the option and the fix."""
    days = policy.get('renew_before_days')
    if days is not None and days < 0:
        raise ConfigError('must be 0 or more, got %s' % days, option='renew_before_days',
                          fix='give the number of days before expiry to renew, e.g. 30')
    frac = policy.get('renew_at_fraction')
    if frac is not None and not 0 < frac < 1:
        raise ConfigError('must be between 0 and 1 (exclusive), got %s' % frac,
                          option='renew_at_fraction',
                          fix='e.g. 0.67 renews once two thirds of the lifetime have passed')


def _norm_sans(values):
    out = set()
    for v in values or []:
        v = str(v).strip()
        if ':' not in v:
            v = 'DNS:' + v
        prefix, rest = v.split(':', 1)
        prefix = {'dns': 'DNS', 'ip': 'IP', 'email': 'email', 'uri': 'URI'}.get(prefix.lower(), prefix)
        if prefix == 'DNS':
            rest = rest.lower().rstrip('.')
        out.add('%s:%s' % (prefix, rest))
    return out


def _issuer_matches(facts, expected):
    """``expected`` is an RFC 4514 string, a fragment of it, or a subject dict of the CA."""
    if isinstance(expected, dict):
        actual = facts.get('issuer') or {}
        return all(str(actual.get(k)) == str(v) for k, v in expected.items())
    actual = facts.get('issuer_string') or ''
    return str(expected) == actual or str(expected) in actual


def decide(cert_facts=None, policy=None, expected=None, window=None, now=None):
    """Decide whether a certificate needs renewal.

    :param cert_facts: dict from ``x509.cert_facts`` (needs ``not_before``, ``not_after``,
        ``subject_alt_names``, ``public_key.fingerprint``, ``issuer_string``), or None when
        there is no certificate.
    :param policy: ``renew_before_days``, ``renew_at_fraction``, ``force``.
    :param expected: ``subject_alt_names``, ``public_key_fingerprint``, ``issuer``, ``profile``
        (each None = do not compare).  ``profile`` is compared with ``cert_facts['profile']``
        when the caller knows it (e.g. from the order store).
    :param window: a CA-advised window (``model.RenewalWindow`` or a dict with start/end);
        inside or past its start means renew now.
    :returns: ``(needs_renewal, reasons)``; reasons are stable strings, most important first.
    """
    pol = dict(DEFAULT_POLICY)
    pol.update({k: v for k, v in (policy or {}).items() if v is not None or k == 'renew_at_fraction'})
    check_policy(pol)
    exp = expected or {}
    now = parse_time(now) if now is not None else utcnow()
    reasons = []
    if pol.get('force'):
        reasons.append(REASON_FORCED)
    if not cert_facts:
        reasons.insert(0, REASON_MISSING)
        return True, reasons

    not_before = parse_time(cert_facts.get('not_before'))
    not_after = parse_time(cert_facts.get('not_after'))
    if not_after is not None and now >= not_after:
        reasons.append(REASON_EXPIRED)
    else:
        if window is not None:
            start = parse_time(window.get('start') if isinstance(window, dict) else window.start)
            if start is not None and now >= start:
                reasons.append(REASON_CA_ADVISED)
        elif not_after is not None:
            days = pol.get('renew_before_days')
            if days is not None and now >= not_after - datetime.timedelta(days=days):
                reasons.append(REASON_WINDOW)
            frac = pol.get('renew_at_fraction')
            if frac is not None and not_before is not None:
                due = not_before + (not_after - not_before) * frac
                if now >= due:
                    reasons.append(REASON_FRACTION)

    want_sans = exp.get('subject_alt_names')
    if want_sans is not None and _norm_sans(want_sans) != _norm_sans(cert_facts.get('subject_alt_names')):
        reasons.append(REASON_SAN)
    want_key = exp.get('public_key_fingerprint')
    if want_key:
        have_key = (cert_facts.get('public_key') or {}).get('fingerprint')
        if have_key and have_key.lower() != str(want_key).lower():
            reasons.append(REASON_KEY)
    want_issuer = exp.get('issuer')
    if want_issuer and not _issuer_matches(cert_facts, want_issuer):
        reasons.append(REASON_ISSUER)
    want_profile = exp.get('profile')
    if want_profile and cert_facts.get('profile') and cert_facts.get('profile') != want_profile:
        reasons.append(REASON_PROFILE)
    return bool(reasons), reasons
