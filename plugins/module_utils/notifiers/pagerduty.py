# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``pagerduty`` notifier: PagerDuty Events API v2 (``POST /v2/enqueue``).

A certificate's alert is keyed by a ``dedup_key`` derived from its name (the same for every
run), so repeated findings update one alert, and an ``issued`` or ``renewed`` event for the
same name resolves it (``event_action: resolve``).  Trigger payload: ``summary`` (at most
1024 characters), ``source``, ``severity`` (critical, error, warning, info),
``timestamp``, ``component``, ``group``, ``class``, ``custom_details``.  A digest is
one trigger keyed by the notifier's name; resolves are still sent one per certificate.
PagerDuty answers 202 with ``{"status": "success", "dedup_key": ...}``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.notifiers import common

URL = 'https://events.pagerduty.com/v2/enqueue'


class PagerDutyNotifier(common.BaseNotifier):
    name = 'pagerduty'
    url_option = 'url'
    option_spec = dict(
        routing_key=dict(type='str', required=True, no_log=True),
        url=dict(type='str', default=URL),
        source=dict(type='str'),
        component=dict(type='str', default='certificate'),
        group=dict(type='str'),
        event_class=dict(type='str', default='certificate'),
        dedup_key_prefix=dict(type='str', default='certforge'),
        resolve_on=dict(type='list', elements='str', default=list(common.CLEARING_KINDS)),
        **common.HTTP_OPTIONS
    )

    def _payload(self, summary, severity, source, custom):
        payload = dict(summary=common.truncate(summary, 1024), source=common.truncate(source, 255),
                       severity=severity, timestamp=common.now_iso(),
                       component=self.options.get('component') or 'certificate',
                       group=self.options.get('group') or self.instance,
                       custom_details=custom)
        payload['class'] = self.options.get('event_class') or 'certificate'
        return payload

    def _source(self, view):
        return self.options.get('source') or view.get('host') or view.get('endpoint') or common.PROJECT

    def _event(self, event):
        view = self.view(event)
        key = common.dedup_key(event, self.options.get('dedup_key_prefix') or 'certforge')
        if event.kind in (self.options.get('resolve_on') or ()):
            return common.Message(self.options['url'], dict(routing_key=self.options['routing_key'],
                                                            event_action='resolve', dedup_key=key), label='resolve')
        body = dict(routing_key=self.options['routing_key'], event_action='trigger', dedup_key=key,
                    client=common.PROJECT,
                    payload=self._payload(view['summary'], view['severity'], self._source(view), view))
        return common.Message(self.options['url'], body, label='trigger')

    def build(self, events, digest=False):
        if not digest:
            return [self._event(events[0])]
        clearing = [e for e in events if e.kind in (self.options.get('resolve_on') or ())]
        rest = [e for e in events if e not in clearing]
        out = [self._event(e) for e in clearing]
        if rest:
            views = [self.view(e) for e in rest]
            summary = '%d certificate%s need attention: %s' % (
                len(views), '' if len(views) == 1 else 's', '; '.join(v['summary'] for v in views))
            key = ('%s:digest:%s' % (self.options.get('dedup_key_prefix') or 'certforge', self.instance))[:255]
            body = dict(routing_key=self.options['routing_key'], event_action='trigger', dedup_key=key,
                        client=common.PROJECT,
                        payload=self._payload(summary, common.worst(v['severity'] for v in views),
                                              self.options.get('source') or common.PROJECT,
                                              {'certificates': views}))
            out.append(common.Message(self.options['url'], body, label='digest', events=len(rest)))
        return out


class Plugin:
    @hookimpl
    def certforge_notifiers(self):
        return {'pagerduty': PagerDutyNotifier}


PLUGIN = Plugin()
