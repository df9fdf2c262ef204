# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routing and delivery of notifications: the ``notify`` module, and the ``notifiers`` option of
the ``certificate`` and ``certificate_batch`` modules (events of the issue path).

Inputs become ``Event`` objects: lifecycle events as given, and findings (certificates with
days left, from certificate_discovery, tls_scan or a report) as ``expiring`` (or ``expired``)
events.  Each event is routed (``routes``), then every notifier gets its events, one message
per event or one digest message for all of them.

Routing is ALL-MATCHING: an event goes to the notifier of every rule whose ``when`` it matches
(at most once per notifier), so "<= 7 days -> pagerduty, <= 30 days -> slack, everything ->
digest email" sends a certificate with 5 days left to all three.  A rule with ``stop: true``
ends the routing of the events it matched (first-match behaviour where wanted).  Without
``routes`` every event goes to every notifier.

Everything is checked (notifier types, their options, route names) before anything is sent.
A notifier that fails after its retries is reported (``failed`` count, ``errors``, a warning)
and the others still deliver.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import fnmatch
import math
import threading

from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import ArgumentSpec
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.core.model import Event
from ansible_collections.certforge.pki.plugins.module_utils.core.options import check_options, closest
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
from ansible_collections.certforge.pki.plugins.module_utils.notifiers import (
    common, email, opsgenie, pagerduty, slack, teams, webhook)

BUILTIN_PLUGINS = (webhook.PLUGIN, slack.PLUGIN, teams.PLUGIN, pagerduty.PLUGIN, opsgenie.PLUGIN, email.PLUGIN)

NOTIFIER = dict(
    name=dict(type='str', required=True),
    type=dict(type='str', required=True),
    options=dict(type='dict', default={}),
    events=dict(type='list', elements='str'),
    digest=dict(type='bool'),
)
WHEN = dict(
    days_left_max=dict(type='int'),
    days_left_min=dict(type='int'),
    kinds=dict(type='list', elements='str'),
    severity=dict(type='list', elements='str', choices=list(common.SEVERITIES)),
    names=dict(type='list', elements='str'),
)
ROUTE = dict(
    notifier=dict(type='str', required=True),
    when=dict(type='dict', options=WHEN),
    digest=dict(type='bool'),
    stop=dict(type='bool', default=False),
)

#: field names accepted in a finding (first found wins)
NAME_KEYS = ('name', 'common_name', 'subject_cn', 'cn', 'subject', 'server_name', 'path', 'endpoint')
DAYS_KEYS = ('days_left', 'days_remaining', 'expires_in_days', 'days_to_expiry')
NOT_AFTER_KEYS = ('not_after', 'not_valid_after', 'notAfter', 'expires', 'expiry', 'expires_at')


# ---------------------------------------------------------------------------------------------
# inputs -> events
# ---------------------------------------------------------------------------------------------

def _parse_time(value):
    if value in (None, ''):
        return None
    text = str(value).strip()
    for fmt in ('%Y-%m-%dT%H:%M:%SZ', '%Y-%m-%dT%H:%M:%S%z', '%Y-%m-%d %H:%M:%S%z', '%Y-%m-%dT%H:%M:%S',
                '%Y%m%d%H%M%SZ', '%Y-%m-%d %H:%M:%S', '%Y-%m-%d', '%b %d %H:%M:%S %Y %Z'):
        try:
            when = datetime.datetime.strptime(text.replace('+00:00', 'Z') if fmt.endswith('Z') else text, fmt)
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return when
    return None


def _first(item, keys):
    for key in keys:
        if item.get(key) not in (None, ''):
            return item[key]
    return None


def _subject_cn(subject):
    if isinstance(subject, dict):
        return subject.get('commonName') or subject.get('CN') or subject.get('common_name')
    text = str(subject or '')
    for part in text.replace('/', ',').split(','):
        part = part.strip()
        if part.upper().startswith('CN='):
            return part[3:]
    return text or None


def _location_text(loc):
    """A report row's location ({kind, host, path} or {kind: endpoint, host, port, sni}) as text."""
    if not isinstance(loc, dict):
        return str(loc)
    if loc.get('kind') == 'endpoint':
        return '%s:%s' % (loc.get('sni') or loc.get('host'), loc.get('port'))
    parts = [str(loc[k]) for k in ('host', 'path') if loc.get(k)]
    return ':'.join(parts) or str(loc.get('name') or loc.get('kind') or '')


def finding_event(item, index, now=None):
    """An ``expiring``/``expired`` event of one finding (a dict of certificate_discovery's
    ``certificates``, tls_scan's ``endpoints`` or a report's rows), or a ``failed`` event when
    the finding carries only an error.  ConfigError for something that is no finding."""
    option = 'findings[%d]' % index
    if not isinstance(item, dict):
        raise ConfigError('is %s, not a dictionary' % type(item).__name__, option=option,
                          fix='give each finding as a dictionary with name (or subject) and days_left or not_after')
    cert = item.get('certificate') if isinstance(item.get('certificate'), dict) else {}
    chain = item.get('chain') if isinstance(item.get('chain'), list) else []
    if chain and isinstance(chain[0], dict):        # tls_scan: the served leaf comes first
        cert = dict(chain[0], **cert)
    merged = dict(cert)
    merged.update(dict((k, v) for k, v in item.items() if k not in ('certificate', 'chain')))
    tls = 'port' in merged and ('chain' in item or 'sni' in item)
    if isinstance(merged.get('hosts'), list):       # a report's rows
        merged.setdefault('host', ', '.join(str(h) for h in merged['hosts']))
    if isinstance(merged.get('locations'), list) and merged['locations'] and not merged.get('path'):
        merged['path'] = ', '.join(_location_text(loc) for loc in merged['locations'][:5])
    now = now or datetime.datetime.now(datetime.timezone.utc)
    days = _first(merged, DAYS_KEYS)
    not_after = _first(merged, NOT_AFTER_KEYS)
    if days is not None:
        try:
            days = int(math.floor(float(days)))
        except (TypeError, ValueError):
            raise ConfigError('days_left %r is not a number' % (days,), option='%s.days_left' % option,
                              fix='give days_left as a whole number of days')
    elif not_after is not None:
        when = _parse_time(not_after)
        if when is None:
            raise ConfigError('not_after %r is not a date' % (not_after,), option='%s.not_after' % option,
                              fix='give not_after as an ISO 8601 UTC time such as 2030-01-31T12:00:00Z')
        days = int(math.floor((when - now).total_seconds() / 86400.0))
    endpoint = merged.get('endpoint')
    if not endpoint and merged.get('port') and (merged.get('host') or merged.get('address')):
        endpoint = '%s:%s' % (merged.get('host') or merged.get('address'), merged['port'])
    name = merged.get('name') or merged.get('common_name') or _subject_cn(merged.get('subject')) \
        or merged.get('sni') or merged.get('server_name') or merged.get('path') or endpoint
    if not name:
        raise ConfigError('names no certificate', option=option,
                          fix='give name, subject, path or endpoint in each finding')
    host = None if tls else (merged.get('host') or merged.get('inventory_hostname'))
    details = dict(days_left=days, not_after=not_after, host=host,
                   path=merged.get('path'), endpoint=endpoint, serial=merged.get('serial'),
                   subject=merged.get('subject') if isinstance(merged.get('subject'), str) else None,
                   issuer_dn=merged.get('issuer') if isinstance(merged.get('issuer'), str) else None)
    if merged.get('certificate_id'):
        details['certificate_id'] = merged['certificate_id']
    details = dict((k, v) for k, v in details.items() if v not in (None, ''))
    if days is None:
        error = merged.get('error') or merged.get('msg')
        if not error:
            raise ConfigError('has neither days_left nor not_after', option=option,
                              fix='give days_left or not_after (or error for an endpoint that could not be read)')
        details['error'] = str(error)
        return Event('failed', str(name), details=details)
    return Event('expired' if days < 0 or merged.get('expired') is True else 'expiring', str(name), details=details)


def event_from_dict(item, index):
    option = 'events[%d]' % index
    if isinstance(item, Event):
        return item
    if not isinstance(item, dict):
        raise ConfigError('is %s, not a dictionary' % type(item).__name__, option=option,
                          fix='give each event as {kind, name, issuer, target, details}')
    if not item.get('kind') or not item.get('name'):
        raise ConfigError('needs kind and name', option=option,
                          fix='give kind (one of %s) and name' % ', '.join(common.KINDS))
    details = item.get('details') or {}
    if not isinstance(details, dict):
        raise ConfigError('details must be a dictionary', option='%s.details' % option, fix='give details as a dictionary')
    return Event(str(item['kind']), str(item['name']), issuer=item.get('issuer'), target=item.get('target'),
                 details=dict(details))


# ---------------------------------------------------------------------------------------------
# routing
# ---------------------------------------------------------------------------------------------

def matches(when, event, severity):
    if not when:
        return True
    left = common.days_left(event)
    if when.get('days_left_max') is not None and (left is None or left > when['days_left_max']):
        return False
    if when.get('days_left_min') is not None and (left is None or left < when['days_left_min']):
        return False
    if when.get('kinds') and event.kind not in when['kinds']:
        return False
    if when.get('severity') and severity not in when['severity']:
        return False
    if when.get('names') and not any(fnmatch.fnmatchcase(event.name, pattern) for pattern in when['names']):
        return False
    return True


class Dispatcher:
    """Checked notifiers and routes; ``plan(events)`` and ``send(plan)``."""

    def __init__(self, notifiers, routes=None, digest=False, critical_days=common.CRITICAL_DAYS,
                 warning_days=common.WARNING_DAYS, option='notifiers', routes_option='routes',
                 load_entry_points=False, registry=None, no_log_values=None):
        self.option, self.routes_option = option, routes_option
        self.digest = bool(digest)
        self.critical_days, self.warning_days = critical_days, warning_days
        self.registry = registry or Registry(BUILTIN_PLUGINS, load_entry_points=load_entry_points)
        # the caller's set, so values found before a refusal (a misspelt secret) are hidden too
        self.no_log_values = no_log_values if no_log_values is not None else set()
        self.entries = []
        seen = {}
        for index, entry in enumerate(notifiers or []):
            where = '%s[%d]' % (option, index)
            if not isinstance(entry, dict) or not entry.get('name') or not entry.get('type'):
                raise ConfigError('needs name and type', option=where,
                                  fix='give each notifier as {name, type, options}; types: %s'
                                  % ', '.join(sorted(self.registry.notifiers())))
            name = str(entry['name'])
            if name in seen:
                raise ConfigError('the name %r is used twice' % name, option='%s.name' % where,
                                  fix='give every notifier a name of its own')
            try:
                cls = self.registry.connector_class('notifier', entry['type'])
            except ConfigError as exc:
                exc.option = '%s.type' % where
                raise
            checked = check_options(cls, dict(entry.get('options') or {}), option='%s.options' % where,
                                    kind='notifier', no_log_values=self.no_log_values)
            wanted = entry.get('events')
            for kind in wanted or ():
                if kind not in common.KINDS:
                    near = closest(kind, common.KINDS)
                    raise ConfigError('%r is no event kind' % kind, option='%s.events' % where,
                                      fix=('did you mean %s? ' % near if near else '') + 'use %s' % ', '.join(common.KINDS))
            if issubclass(cls, common.BaseNotifier):
                checked = dict(checked, _instance=name, _critical_days=critical_days, _warning_days=warning_days)
            connector = cls(checked)
            self.entries.append(dict(name=name, type=entry['type'], connector=connector,
                                     events=list(wanted or getattr(cls, 'events', ()) or ()),
                                     digest=entry.get('digest')))
            seen[name] = self.entries[-1]
        self.by_name = seen
        self.routes = []
        for index, route in enumerate(routes or []):
            where = '%s[%d]' % (routes_option, index)
            if not isinstance(route, dict) or not route.get('notifier'):
                raise ConfigError('needs notifier', option=where, fix='give each route as {notifier, when, digest}')
            if route['notifier'] not in seen:
                near = closest(route['notifier'], seen)
                raise ConfigError('no notifier is named %r' % route['notifier'], option='%s.notifier' % where,
                                  fix=('did you mean %s? ' % near if near else '')
                                  + 'use one of the names in %s: %s' % (option, ', '.join(sorted(seen)) or '(none)'))
            when = route.get('when') or {}
            unknown = sorted(set(when) - set(WHEN))
            if unknown:
                near = closest(unknown[0], WHEN)
                raise ConfigError('%r is not a route condition' % unknown[0], option='%s.when.%s' % (where, unknown[0]),
                                  fix=('did you mean %s? ' % near if near else '') + 'use %s' % ', '.join(sorted(WHEN)))
            self.routes.append(dict(route, when=when))

    def severity(self, event):
        return common.severity_of(event, self.critical_days, self.warning_days)

    def plan(self, events):
        """``{notifier name: {'single': [events], 'digest': [events]}}`` in notifier order."""
        plan = dict((e['name'], {'single': [], 'digest': []}) for e in self.entries)
        routes = self.routes or [dict(notifier=e['name'], when={}) for e in self.entries]
        for event in events:
            severity = self.severity(event)
            taken = set()
            for route in routes:
                if not matches(route.get('when'), event, severity):
                    continue
                entry = self.by_name[route['notifier']]
                if entry['name'] not in taken and (not entry['events'] or event.kind in entry['events']):
                    taken.add(entry['name'])
                    digest = route.get('digest')
                    if digest is None:
                        digest = entry['digest'] if entry['digest'] is not None else self.digest
                    plan[entry['name']]['digest' if digest else 'single'].append(event)
                if route.get('stop'):
                    break
        return plan

    def _secrets(self, entry):
        connector = entry['connector']
        found = set(self.no_log_values)
        getter = getattr(connector, 'secrets', None)
        if callable(getter):
            found.update(getter())
        return found

    def preview(self, plan):
        out = []
        for entry in self.entries:
            todo = plan[entry['name']]
            connector = entry['connector']
            messages = []
            show = getattr(connector, 'preview', None)
            for event in todo['single']:
                messages.extend(show([event]) if callable(show) else [common.view(event)])
            if todo['digest']:
                messages.extend(show(todo['digest'], digest=True) if callable(show)
                                else [dict(label='digest', events=len(todo['digest']))])
            out.append(dict(name=entry['name'], type=entry['type'], events=len(todo['single']) + len(todo['digest']),
                            messages=messages))
        return out

    def send(self, plan, warn=None):
        """Deliver; return per-notifier counts.  Never raises for a failed delivery."""
        out = []
        for entry in self.entries:
            todo = plan[entry['name']]
            connector = entry['connector']
            delivered, failed, errors = 0, 0, []
            jobs = [('single', [event]) for event in todo['single']]
            if todo['digest']:
                jobs.append(('digest', todo['digest']))
            for how, events in jobs:
                try:
                    if how == 'single':
                        connector.notify(events[0])
                    elif callable(getattr(connector, 'notify_digest', None)):
                        connector.notify_digest(events)
                    else:
                        connector.notify(digest_event(events, entry['name'], self.severity))
                    delivered += 1
                except Exception as exc:  # pylint: disable=broad-except
                    # a notifier never fails a run
                    failed += 1
                    text = common.scrub(str(exc) or type(exc).__name__, self._secrets(entry))
                    if not isinstance(exc, common.NotifyError):
                        text = '%s notifier %s: %s: %s' % (entry['type'], entry['name'], type(exc).__name__, text)
                    errors.append(text)
                    if warn:
                        warn('notification not delivered: %s' % text)
            out.append(dict(name=entry['name'], type=entry['type'], events=len(todo['single']) + len(todo['digest']),
                            delivered=delivered, failed=failed, errors=errors))
        return out


def digest_event(events, notifier, severity_of):
    """One ``digest`` event carrying every event, for a notifier without ``notify_digest``."""
    views = [common.view(e) for e in events]
    return Event('digest', '%d certificates' % len(views),
                 details=dict(severity=common.worst(severity_of(e) for e in events), notifier=notifier,
                              events=views))


# ---------------------------------------------------------------------------------------------
# the notify module
# ---------------------------------------------------------------------------------------------

SPEC = ArgumentSpec(dict(
    findings=dict(type='list', elements='raw', default=[]),
    events=dict(type='list', elements='raw', default=[]),
    notifiers=dict(type='list', elements='dict', required=True, options=NOTIFIER),
    routes=dict(type='list', elements='dict', default=[], options=ROUTE),
    digest=dict(type='bool', default=False),
    fail_on_error=dict(type='bool', default=False),
    critical_days=dict(type='int', default=common.CRITICAL_DAYS),
    warning_days=dict(type='int', default=common.WARNING_DAYS),
))


def _hidden(ctx):
    hidden = getattr(ctx, 'no_log_values', None)
    if hidden is None:
        hidden = set()
        ctx.no_log_values = hidden
    return hidden


def _hide(ctx, values):
    _hidden(ctx).update(v for v in values if v)


SECRET_NAMES = ('url', 'secret', 'routing_key', 'api_key', 'password', 'token', 'webhook_url', 'integration_key')
SECRET_ENDINGS = ('_key', 'password', 'secret', 'token')


def secret_guess(notifiers):
    """Option values of notifiers that look secret, hidden even when the options are refused."""
    out = set()
    for entry in notifiers or []:
        for key, value in ((entry or {}).get('options') or {}).items() if isinstance(entry, dict) else ():
            low = str(key).lower()
            if isinstance(value, str) and value and (low in SECRET_NAMES or low.endswith(SECRET_ENDINGS)):
                out.add(value)
            if low == 'headers' and isinstance(value, dict):
                out.update(str(v) for k, v in value.items()
                           if v and any(w in str(k).lower() for w in common.SENSITIVE_HEADER_WORDS))
    return out


def execute(ctx):
    p = ctx.params
    _hide(ctx, secret_guess(p.get('notifiers')))
    if p['critical_days'] > p['warning_days']:
        raise ConfigError('critical_days (%d) is above warning_days (%d)' % (p['critical_days'], p['warning_days']),
                          option='critical_days', fix='make critical_days at most warning_days')
    dispatcher = Dispatcher(p['notifiers'], p.get('routes'), digest=p.get('digest'), critical_days=p['critical_days'],
                            warning_days=p['warning_days'], load_entry_points=getattr(ctx, 'load_entry_points', False),
                            no_log_values=_hidden(ctx))
    _hide(ctx, dispatcher.no_log_values)
    for entry in dispatcher.entries:
        getter = getattr(entry['connector'], 'secrets', None)
        if callable(getter):
            _hide(ctx, getter())
    events = [finding_event(item, i) for i, item in enumerate(p.get('findings') or [])]
    events += [event_from_dict(item, i) for i, item in enumerate(p.get('events') or [])]
    plan = dispatcher.plan(events)
    routed = sum(len(v['single']) + len(v['digest']) for v in plan.values())
    result = dict(changed=False, events=len(events), routed=routed)
    if ctx.check_mode:
        result['would_send'] = dispatcher.preview(plan)
        result['changed'] = any(n['messages'] for n in result['would_send'])
        result['notifiers'] = [dict(name=n['name'], type=n['type'], events=n['events'], delivered=0, failed=0,
                                    would_send=len(n['messages'])) for n in result['would_send']]
        result['delivered'] = result['undelivered'] = 0
        return result
    warnings = []
    result['notifiers'] = dispatcher.send(plan, warn=warnings.append)
    for text in warnings:
        ctx.warn(text)
    result['delivered'] = sum(n['delivered'] for n in result['notifiers'])
    result['undelivered'] = sum(n['failed'] for n in result['notifiers'])
    result['changed'] = result['delivered'] > 0
    if result['undelivered'] and p.get('fail_on_error'):
        errors = [e for n in result['notifiers'] for e in n['errors']]
        result.update(failed=True, msg='%d notification(s) not delivered: %s' % (result['undelivered'], '; '.join(errors)),
                      error_option='notifiers')
    return result


# ---------------------------------------------------------------------------------------------
# events of the issue path (certificate, certificate_batch)
# ---------------------------------------------------------------------------------------------

class Feed:
    """A ``certforge_event`` observer that queues the events of one module call; ``flush()``
    delivers each once, after the work is done, failures as warnings."""

    def __init__(self, ctx, notifiers, routes=None, option='notifiers', routes_option='notify_routes'):
        _hide(ctx, secret_guess(notifiers))
        self.dispatcher = Dispatcher(notifiers, routes, option=option, routes_option=routes_option,
                                     load_entry_points=getattr(ctx, 'load_entry_points', False),
                                     no_log_values=_hidden(ctx))
        _hide(ctx, self.dispatcher.no_log_values)
        for entry in self.dispatcher.entries:
            getter = getattr(entry['connector'], 'secrets', None)
            if callable(getter):
                _hide(ctx, getter())
        self.events = []
        self.lock = threading.Lock()

    @hookimpl
    def certforge_event(self, event):
        with self.lock:
            self.events.append(event)

    def flush(self, ctx):
        with self.lock:
            events, self.events = self.events, []
        if not events:
            return []
        warnings = []
        sent = self.dispatcher.send(self.dispatcher.plan(events), warn=warnings.append)
        for text in warnings:
            ctx.warn(text)
        return sent


def feed(ctx, registry, notifiers, routes=None):
    """Register a Feed in ``registry`` when ``notifiers`` are given; None otherwise (nothing is
    imported or built for a call without notifiers)."""
    if not notifiers:
        return None
    observer = Feed(ctx, notifiers, routes)
    registry.pm.register(observer)
    return observer
