# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``slack`` notifier: a Slack incoming webhook with Block Kit ``blocks`` (header,
section, context) and a ``text`` fallback for notifications and clients without blocks.

Limits kept (docs.slack.dev, Block Kit reference): at most 50 blocks per message; header text
(plain_text) 150 characters; section text 3000 characters, at most 10 fields of 2000; context
at most 10 elements.  A digest longer than the block limit ends with a context block saying how
many more there are.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.notifiers import common

MAX_BLOCKS = 50
ICON = {'critical': ':rotating_light:', 'error': ':x:', 'warning': ':warning:', 'info': ':information_source:'}


def _section(view):
    text = '%s *%s*\n%s' % (ICON.get(view['severity'], ''), view['name'], view['summary'])
    fields = [{'type': 'mrkdwn', 'text': '*Severity*\n%s' % view['severity']}]
    for key, label in (('days_left', 'Days left'), ('not_after', 'Expires'), ('issuer', 'Issuer'),
                       ('target', 'Target'), ('serial', 'Serial')):
        if view.get(key) not in (None, ''):
            fields.append({'type': 'mrkdwn', 'text': common.truncate('*%s*\n%s' % (label, view[key]), 2000)})
    return {'type': 'section', 'text': {'type': 'mrkdwn', 'text': common.truncate(text, 3000)}, 'fields': fields[:10]}


class SlackNotifier(common.BaseNotifier):
    name = 'slack'
    option_spec = dict(
        url=dict(type='str', required=True, no_log=True),
        **common.HTTP_OPTIONS
    )

    def build(self, events, digest=False):
        views = [self.view(e) for e in events]
        if digest:
            title = '%d certificate notification%s' % (len(views), '' if len(views) == 1 else 's')
            text = '%s (worst: %s)' % (title, common.worst(v['severity'] for v in views))
        else:
            title = '%s: %s' % (views[0]['severity'].capitalize(), views[0]['name'])
            text = views[0]['summary']
        blocks = [{'type': 'header', 'text': {'type': 'plain_text', 'text': common.truncate(title, 150), 'emoji': True}}]
        room = MAX_BLOCKS - 2
        shown = views if len(views) <= room else views[:room - 1]
        blocks.extend(_section(v) for v in shown)
        context = 'Sent by %s (%s)' % (common.PROJECT, self.instance)
        if len(shown) < len(views):
            context = '%d more not shown. %s' % (len(views) - len(shown), context)
        blocks.append({'type': 'context', 'elements': [{'type': 'mrkdwn', 'text': common.truncate(context, 3000)}]})
        body = {'text': common.truncate(text, 3000), 'blocks': blocks}
        return [common.Message(self.options['url'], body, label='digest' if digest else events[0].kind,
                               events=len(events))]


class Plugin:
    @hookimpl
    def certforge_notifiers(self):
        return {'slack': SlackNotifier}


PLUGIN = Plugin()
