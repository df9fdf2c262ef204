# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the built-in notifiers share: the event view (severity, summary, location), the
retrying delivery (bounded timeouts; exponential backoff with jitter on 429, 5xx and connection
errors; ``Retry-After`` honoured) and redaction (secrets and URL paths never shown).

A built-in notifier builds its messages first (``build(events, digest)``: a list of
``Message``), then sends them.  Check mode shows ``preview()`` of the same messages, redacted,
and sends nothing.  After its retries a message that could not be delivered raises
``NotifyError``, whose text holds no secret and no URL path; the caller reports it and goes on
with the other notifications.

Notifiers run on the controller.  requests is imported when a message is sent, never before.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import email.utils
import json
import random
import re
import time
from urllib.parse import urlsplit

from ansible_collections.certforge.pki.plugins.module_utils.core.connectors import NotifierConnector
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import TransientError

REDACTED = '********'
#: custom header names holding credentials: their values are secrets
SENSITIVE_HEADER_WORDS = ('auth', 'token', 'key', 'secret', 'signature', 'cookie', 'password', 'credential')
PROJECT = 'certforge.pki'

#: event kinds of the issue/deploy path, plus the two the notify module makes of findings
KINDS = ('issued', 'renewed', 'pending', 'revoked', 'deployed', 'rolled_back', 'failed', 'expiring', 'expired')
SEVERITIES = ('critical', 'error', 'warning', 'info')
#: default thresholds: days left at or below which a certificate is critical / warning
CRITICAL_DAYS = 7
WARNING_DAYS = 30
#: kinds that clear an alert raised for the same certificate (PagerDuty resolve, Opsgenie close)
CLEARING_KINDS = ('issued', 'renewed')

#: options every HTTP notifier takes
HTTP_OPTIONS = dict(
    timeout=dict(type='float', default=10.0),
    retries=dict(type='int', default=3),
    retry_delay=dict(type='float', default=1.0),
    retry_max_delay=dict(type='float', default=30.0),
    validate_certs=dict(type='bool', default=True),
    ca_path=dict(type='path'),
)


class NotifyError(TransientError):
    """A message could not be delivered after its retries.  The text names the notifier, the
    redacted endpoint and the reason; never a secret."""

    kind = 'notify'


def redact_url(url):
    """``scheme://host[:port]/…``: the path and query of a webhook URL often are its secret."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.hostname:
        return REDACTED
    host = parts.hostname
    if parts.port:
        host = '%s:%s' % (host, parts.port)
    tail = '/…' if (parts.path not in ('', '/') or parts.query) else '/'
    return '%s://%s%s' % (parts.scheme, host, tail)


_URL = re.compile(r'(?i)\b(https?)://([^/\s\'"<>]+)(/[^\s\'"<>)]*)?')


def scrub(text, secrets=()):
    """``text`` with every secret replaced and every URL cut to scheme://host/…."""
    text = str(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(str(secret), REDACTED)

    def cut(match):
        host = match.group(2).rsplit('@', 1)[-1]
        return '%s://%s%s' % (match.group(1), host, '/…' if match.group(3) and match.group(3) != '/' else '')
    return _URL.sub(cut, text)


# ---------------------------------------------------------------------------------------------
# the event view
# ---------------------------------------------------------------------------------------------

def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def days_left(event):
    return _int((getattr(event, 'details', None) or {}).get('days_left'))


def severity_of(event, critical_days=CRITICAL_DAYS, warning_days=WARNING_DAYS):
    """``failed``/``rolled_back``: error.  With days left: expired or at most ``critical_days``
    critical, at most ``warning_days`` warning, else info.  ``expired``: critical; ``revoked``:
    warning; anything else info.  A severity set in ``details['severity']`` wins."""
    details = getattr(event, 'details', None) or {}
    if details.get('severity') in SEVERITIES:
        return details['severity']
    kind = getattr(event, 'kind', '')
    if kind in ('failed', 'rolled_back'):
        return 'error'
    if kind == 'expired':
        return 'critical'
    left = days_left(event)
    if left is not None and kind in ('expiring', 'expired'):
        if left <= critical_days:
            return 'critical'
        if left <= warning_days:
            return 'warning'
        return 'info'
    if kind == 'revoked':
        return 'warning'
    return 'info'


def worst(severities):
    found = [s for s in severities if s in SEVERITIES]
    return min(found, key=SEVERITIES.index) if found else 'info'


def location(event):
    """Where the certificate is: ``host:path``, the endpoint, or the host."""
    d = getattr(event, 'details', None) or {}
    if d.get('endpoint'):
        return str(d['endpoint'])
    host, path = d.get('host'), d.get('path')
    if host and path:
        return '%s:%s' % (host, path)
    return str(host or path or '')


def summary(event):
    """One line saying what happened, for titles and chat messages."""
    d = getattr(event, 'details', None) or {}
    kind, name = event.kind, event.name
    where = location(event)
    at = ' on %s' % where if where else ''
    left = days_left(event)
    if kind == 'expiring' or (kind == 'expired' and left is not None):
        when = ' (%s)' % d['not_after'] if d.get('not_after') else ''
        if left is not None and left < 0:
            return 'Certificate %s expired %d day%s ago%s%s' % (name, -left, '' if left == -1 else 's', when, at)
        if left is not None:
            return 'Certificate %s expires in %d day%s%s%s' % (name, left, '' if left == 1 else 's', when, at)
        return 'Certificate %s expires%s%s' % (name, when, at)
    if kind == 'expired':
        return 'Certificate %s has expired%s' % (name, at)
    if kind in ('issued', 'renewed'):
        serial = ' (serial %s)' % d['serial'] if d.get('serial') else ''
        by = ' by %s' % event.issuer if getattr(event, 'issuer', None) else ''
        return 'Certificate %s %s%s%s' % (name, kind, by, serial)
    if kind == 'pending':
        return 'Certificate %s: order pending at %s' % (name, event.issuer or 'the CA')
    if kind == 'revoked':
        return 'Certificate %s revoked%s' % (name, ' (%s)' % d['reason'] if d.get('reason') else '')
    if kind == 'deployed':
        return 'Certificate %s deployed to %s%s' % (name, event.target or 'its target', at)
    if kind == 'rolled_back':
        return 'Deploy of certificate %s to %s rolled back%s' % (name, event.target or 'its target', at)
    if kind == 'failed':
        why = d.get('error') or d.get('msg') or ''
        what = 'deploy' if event.target else 'run'
        return 'Certificate %s: %s failed%s%s' % (name, what, at, (': %s' % why) if why else '')
    return 'Certificate %s: %s%s' % (name, kind, at)


def view(event, critical_days=CRITICAL_DAYS, warning_days=WARNING_DAYS):
    """A JSON-safe dict of an event, as every notifier shows it."""
    d = dict(getattr(event, 'details', None) or {})
    out = dict(kind=event.kind, name=event.name, severity=severity_of(event, critical_days, warning_days),
               summary=summary(event))
    for key in ('issuer', 'target'):
        if getattr(event, key, None):
            out[key] = getattr(event, key)
    for key in ('days_left', 'not_after', 'host', 'path', 'endpoint', 'subject', 'serial', 'reason', 'error'):
        if d.get(key) not in (None, ''):
            out[key] = d[key]
    extra = dict((k, v) for k, v in d.items() if k not in out and k != 'severity')
    if extra:
        out['details'] = json.loads(json.dumps(extra, default=str))
    return out


def dedup_key(event, prefix='certforge'):
    """The same key for every event of one certificate (name, plus where it lives when known)."""
    d = getattr(event, 'details', None) or {}
    key = d.get('certificate_id') or event.name
    return ('%s:%s' % (prefix, key))[:255]


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def truncate(text, limit):
    text = str(text)
    return text if len(text) <= limit else text[:max(0, limit - 1)] + '…'


# ---------------------------------------------------------------------------------------------
# messages and delivery
# ---------------------------------------------------------------------------------------------

class Message:
    """One request a notifier sends: ``url``, ``body`` (a JSON-able object, or bytes/text),
    ``headers``; ``label`` says what it is (``trigger``, ``resolve``, ``digest`` ...)."""

    def __init__(self, url, body, headers=None, label='message', method='POST', events=1):
        self.url, self.body, self.headers, self.label, self.method = url, body, dict(headers or {}), label, method
        self.events = events

    def data(self):
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode('utf-8')
        return json.dumps(self.body, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def retry_after_seconds(value):
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


class BaseNotifier(NotifierConnector):
    """The built-in notifiers' base: ``build`` makes the messages, the rest is shared."""

    #: option names whose values are secrets (besides those with ``no_log`` in the spec)
    secret_options = ()
    #: the option holding the endpoint URL, for error messages
    url_option = 'url'

    def __init__(self, options):
        super(BaseNotifier, self).__init__(options)
        #: instance name given by the user (``notifiers[].name``)
        self.instance = self.options.pop('_instance', None) or self.name
        self.critical_days = self.options.pop('_critical_days', CRITICAL_DAYS)
        self.warning_days = self.options.pop('_warning_days', WARNING_DAYS)
        self.sleep = time.sleep

    def __repr__(self):
        return '<%s notifier %s>' % (self.name, self.instance)

    # -- what a notifier implements ------------------------------------------------------------

    def build(self, events, digest=False):
        """The messages for ``events`` (one event when not ``digest``)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------

    def view(self, event):
        return view(event, self.critical_days, self.warning_days)

    def secrets(self):
        spec = self.options_argument_spec()
        out = set()
        for key, value in self.options.items():
            if (spec.get(key, {}).get('no_log') or key in self.secret_options) and value:
                out.add(str(value))
        for key, value in (self.options.get('headers') or {}).items():
            if value and any(word in str(key).lower() for word in SENSITIVE_HEADER_WORDS):
                out.add(str(value))
        return out

    def notify(self, event):
        return self.deliver([event], digest=False)

    def notify_digest(self, events):
        return self.deliver(list(events), digest=True)

    def deliver(self, events, digest=False):
        sent = 0
        for message in self.build(events, digest=digest):
            self.send(message)
            sent += 1
        return sent

    def preview(self, events, digest=False):
        """The messages that would be sent, redacted (check mode)."""
        out = []
        secrets = self.secrets()
        for message in self.build(events, digest=digest):
            body = message.body
            if isinstance(body, bytes):
                body = body.decode('utf-8', 'replace')
            text = scrub(json.dumps(body, sort_keys=True, default=str), secrets)
            headers = dict((k, REDACTED if (str(v) in secrets or any(w in k.lower() for w in SENSITIVE_HEADER_WORDS))
                            else v) for k, v in message.headers.items())
            out.append(dict(label=message.label, method=message.method, url=redact_url(message.url),
                            headers=headers, body=json.loads(text), events=message.events))
        return out

    def fail(self, what, message, retryable=True):
        text = '%s notifier %s: %s %s: %s' % (self.name, self.instance, message.method, redact_url(message.url),
                                              scrub(what, self.secrets()))
        raise NotifyError(text,
                          option='%s.%s' % (self.instance, self.url_option),
                          details=dict(notifier=self.instance, type=self.name, retryable=retryable))

    def backoff(self, attempt):
        base = float(self.options.get('retry_delay', 1.0) or 0.0)
        cap = float(self.options.get('retry_max_delay', 30.0) or 0.0)
        delay = min(cap, base * (2 ** attempt))
        return delay * (0.5 + random.random() / 2.0)      # "equal jitter"

    def send(self, message):
        """POST ``message`` with retries; return the response.  Raises NotifyError."""
        try:
            import requests
        except ImportError:
            raise NotifyError('%s notifier %s: the Python library requests is missing on the controller'
                              % (self.name, self.instance), option=self.instance,
                              fix='install requests for the Python that runs ansible-playbook')
        timeout = float(self.options.get('timeout') or 10.0)
        retries = max(0, int(self.options.get('retries', 3)))
        cap = float(self.options.get('retry_max_delay', 30.0) or 0.0)
        verify = self.options.get('ca_path') or bool(self.options.get('validate_certs', True))
        headers = {'Content-Type': 'application/json', 'User-Agent': PROJECT}
        headers.update(message.headers)
        data = message.data()
        last = 'no attempt'
        for attempt in range(retries + 1):
            wait = None
            try:
                resp = requests.request(message.method, message.url, data=data, headers=headers,
                                        timeout=(min(timeout, 10.0), timeout), verify=verify, allow_redirects=False)
            except requests.RequestException as exc:
                last = 'connection failed (%s)' % type(exc).__name__
            else:
                if 200 <= resp.status_code < 300:
                    return resp
                body = scrub((resp.text or '')[:300].strip(), self.secrets())
                last = 'HTTP %d%s' % (resp.status_code, (': %s' % body) if body else '')
                if resp.status_code != 429 and resp.status_code < 500:
                    self.fail(last, message, retryable=False)
                wait = retry_after_seconds(resp.headers.get('Retry-After'))
                if wait is not None and wait > cap:
                    self.fail('%s; asked to wait %.0fs, more than retry_max_delay (%.0fs)' % (last, wait, cap), message)
            if attempt >= retries:
                break
            self.sleep(wait if wait is not None else self.backoff(attempt))
        self.fail('%s (after %d attempt%s)' % (last, retries + 1, '' if retries == 0 else 's'), message)
        return None
