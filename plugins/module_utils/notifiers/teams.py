# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``teams`` notifier: Microsoft Teams through a Workflows (Power Automate) webhook, the
"Send webhook alerts to a channel" template.  The request is a message whose ``attachments``
hold one Adaptive Card (contentType ``application/vnd.microsoft.card.adaptive``, schema
http://adaptivecards.io/schemas/adaptive-card.json, version 1.4 or 1.5) with TextBlocks and a
FactSet per certificate.  The workflow answers 202 Accepted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.notifiers import common

COLOR = {'critical': 'Attention', 'error': 'Attention', 'warning': 'Warning', 'info': 'Default'}
MAX_ITEMS = 50


def _facts(view):
    facts = [{'title': 'Severity', 'value': view['severity']}]
    for key, label in (('days_left', 'Days left'), ('not_after', 'Expires'), ('host', 'Host'), ('path', 'Path'),
                       ('endpoint', 'Endpoint'), ('issuer', 'Issuer'), ('target', 'Target'), ('serial', 'Serial')):
        if view.get(key) not in (None, ''):
            facts.append({'title': label, 'value': str(view[key])})
    return {'type': 'FactSet', 'facts': facts}


class TeamsNotifier(common.BaseNotifier):
    name = 'teams'
    option_spec = dict(
        url=dict(type='str', required=True, no_log=True),
        card_version=dict(type='str', default='1.4', choices=['1.4', '1.5']),
        **common.HTTP_OPTIONS
    )

    def build(self, events, digest=False):
        views = [self.view(e) for e in events]
        if digest:
            title = '%d certificate notification%s' % (len(views), '' if len(views) == 1 else 's')
        else:
            title = '%s: %s' % (views[0]['severity'].capitalize(), views[0]['name'])
        top = common.worst(v['severity'] for v in views)
        body = [{'type': 'TextBlock', 'text': title, 'weight': 'Bolder', 'size': 'Medium', 'wrap': True,
                 'color': COLOR.get(top, 'Default')}]
        for v in views[:MAX_ITEMS]:
            body.append({'type': 'TextBlock', 'text': v['summary'], 'wrap': True, 'color': COLOR.get(v['severity'], 'Default')})
            body.append(_facts(v))
        if len(views) > MAX_ITEMS:
            body.append({'type': 'TextBlock', 'text': '%d more not shown' % (len(views) - MAX_ITEMS), 'isSubtle': True,
                         'wrap': True})
        card = {'$schema': 'http://adaptivecards.io/schemas/adaptive-card.json', 'type': 'AdaptiveCard',
                'version': self.options.get('card_version') or '1.4', 'body': body}
        message = {'type': 'message', 'attachments': [
            {'contentType': 'application/vnd.microsoft.card.adaptive', 'contentUrl': None, 'content': card}]}
        return [common.Message(self.options['url'], message, label='digest' if digest else events[0].kind,
                               events=len(events))]


class Plugin:
    @hookimpl
    def certforge_notifiers(self):
        return {'teams': TeamsNotifier}


PLUGIN = Plugin()
