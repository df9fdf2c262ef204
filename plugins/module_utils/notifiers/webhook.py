# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``webhook`` notifier: a JSON POST to any URL, signed with HMAC-SHA256.

Payload (one event, or every event of a digest)::

    {"type": "certforge.event" | "certforge.digest", "version": 1, "sent_at": "<UTC ISO 8601>",
     "notifier": "<name>", "events": [{"kind", "name", "severity", "summary", "days_left",
     "not_after", "host", "path", "endpoint", "issuer", "target", "serial", "details"}]}

Signature scheme (when ``secret`` is set)::

    X-Certforge-Timestamp: <unix seconds>
    X-Certforge-Delivery:  <random id, the same for every retry of one message>
    X-Certforge-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

A receiver recomputes the HMAC over the timestamp, a dot and the raw request body, compares it
in constant time, and refuses a timestamp older than its tolerance (five minutes is usual) and
a delivery id it has seen before: a captured request cannot be replayed later, and the
timestamp cannot be changed without breaking the signature.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import hmac
import time
import uuid

from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.notifiers import common

SIGNATURE_HEADER = 'X-Certforge-Signature'
TIMESTAMP_HEADER = 'X-Certforge-Timestamp'
DELIVERY_HEADER = 'X-Certforge-Delivery'


def signature(secret, timestamp, body):
    """``sha256=<hex>`` of HMAC-SHA256(secret, "<timestamp>." + body)."""
    material = ('%s.' % timestamp).encode('ascii') + body
    return 'sha256=' + hmac.new(secret.encode('utf-8'), material, hashlib.sha256).hexdigest()


class WebhookNotifier(common.BaseNotifier):
    name = 'webhook'
    option_spec = dict(
        url=dict(type='str', required=True, no_log=True),
        secret=dict(type='str', no_log=True),
        headers=dict(type='dict', default={}),
        **common.HTTP_OPTIONS
    )

    def build(self, events, digest=False):
        body = dict(type='certforge.digest' if digest else 'certforge.event', version=1, sent_at=common.now_iso(),
                    notifier=self.instance, events=[self.view(e) for e in events])
        headers = dict((str(k), str(v)) for k, v in (self.options.get('headers') or {}).items())
        headers['X-Certforge-Event'] = 'digest' if digest else events[0].kind
        return [common.Message(self.options['url'], body, headers, label='digest' if digest else events[0].kind,
                               events=len(events))]

    def send(self, message):
        data = message.data()
        timestamp = str(int(time.time()))
        message.headers[TIMESTAMP_HEADER] = timestamp
        message.headers.setdefault(DELIVERY_HEADER, uuid.uuid4().hex)
        if self.options.get('secret'):
            message.headers[SIGNATURE_HEADER] = signature(self.options['secret'], timestamp, data)
        message.body = data
        return super(WebhookNotifier, self).send(message)


class Plugin:
    @hookimpl
    def certforge_notifiers(self):
        return {'webhook': WebhookNotifier}


PLUGIN = Plugin()
