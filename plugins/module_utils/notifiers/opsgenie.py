# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``opsgenie`` notifier: the Opsgenie Alert API.

Create: ``POST <url>/v2/alerts`` with ``Authorization: GenieKey <api_key>``; ``message`` at
most 130 characters, ``alias`` at most 512 (derived from the certificate's name, so repeated
findings are deduplicated into one alert), ``description`` at most 15000, ``priority``
P1..P5 (critical P1, error P2, warning P3, info P5), at most 20 ``tags`` of 50 characters,
``details`` a map of strings.  An ``issued`` or ``renewed`` event closes the alert:
``POST <url>/v2/alerts/<alias>/close?identifierType=alias``.  Opsgenie answers 202.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from urllib.parse import quote

from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.notifiers import common

URL = 'https://api.opsgenie.com'
PRIORITY = {'critical': 'P1', 'error': 'P2', 'warning': 'P3', 'info': 'P5'}


def _details(view):
    out = {}
    for key, value in view.items():
        if key in ('summary', 'details') or value in (None, ''):
            continue
        out[common.truncate(key, 50)] = common.truncate(value, 500)
    return out


class OpsgenieNotifier(common.BaseNotifier):
    name = 'opsgenie'
    option_spec = dict(
        api_key=dict(type='str', required=True, no_log=True),
        url=dict(type='str', default=URL),
        tags=dict(type='list', elements='str', default=['certforge']),
        responders=dict(type='list', elements='dict'),
        entity=dict(type='str'),
        source=dict(type='str', default=common.PROJECT),
        alias_prefix=dict(type='str', default='certforge'),
        close_on=dict(type='list', elements='str', default=list(common.CLEARING_KINDS)),
        **common.HTTP_OPTIONS
    )

    def _headers(self):
        return {'Authorization': 'GenieKey %s' % self.options['api_key']}

    def _base(self):
        return str(self.options.get('url') or URL).rstrip('/')

    def _alert(self, message, alias, description, severity, details, label, events=1):
        tags = [common.truncate(t, 50) for t in (self.options.get('tags') or [])][:20]
        body = dict(message=common.truncate(message, 130), alias=common.truncate(alias, 512),
                    description=common.truncate(description, 15000), priority=PRIORITY.get(severity, 'P3'),
                    tags=tags, details=details, source=common.truncate(self.options.get('source') or common.PROJECT, 100))
        if self.options.get('entity'):
            body['entity'] = common.truncate(self.options['entity'], 512)
        if self.options.get('responders'):
            body['responders'] = self.options['responders']
        return common.Message(self._base() + '/v2/alerts', body, self._headers(), label=label, events=events)

    def _event(self, event):
        view = self.view(event)
        alias = common.dedup_key(event, self.options.get('alias_prefix') or 'certforge')[:512]
        if event.kind in (self.options.get('close_on') or ()):
            url = '%s/v2/alerts/%s/close?identifierType=alias' % (self._base(), quote(alias, safe=''))
            body = dict(source=common.truncate(self.options.get('source') or common.PROJECT, 100),
                        note=common.truncate(view['summary'], 25000))
            return common.Message(url, body, self._headers(), label='close')
        return self._alert(view['summary'], alias, view['summary'], view['severity'], _details(view), 'alert')

    def build(self, events, digest=False):
        if not digest:
            return [self._event(events[0])]
        clearing = [e for e in events if e.kind in (self.options.get('close_on') or ())]
        rest = [e for e in events if e not in clearing]
        out = [self._event(e) for e in clearing]
        if rest:
            views = [self.view(e) for e in rest]
            message = '%d certificate%s need attention' % (len(views), '' if len(views) == 1 else 's')
            description = '\n'.join('[%s] %s' % (v['severity'], v['summary']) for v in views)
            details = dict(('%d' % (i + 1), common.truncate(v['summary'], 300)) for i, v in enumerate(views[:20]))
            alias = '%s:digest:%s' % (self.options.get('alias_prefix') or 'certforge', self.instance)
            out.append(self._alert(message, alias, description, common.worst(v['severity'] for v in views),
                                   details, 'digest', events=len(rest)))
        return out


class Plugin:
    @hookimpl
    def certforge_notifiers(self):
        return {'opsgenie': OpsgenieNotifier}


PLUGIN = Plugin()
