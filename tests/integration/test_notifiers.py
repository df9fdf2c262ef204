"""Notifiers end to end: real ansible-playbook runs of certforge.pki.notify (and of the certificate
role with certificate_notifiers) against real receivers on 127.0.0.1 - a threaded HTTP server that
records every request and can answer 500/429 or drop the connection, and an SMTP server (aiosmtpd)
that requires STARTTLS with a certificate from the test CA.

Payloads are checked against JSON schemas written from each service's published reference (the
URL is next to each schema), webhook signatures are recomputed, retries are counted, and every
secret is searched for in stdout, stderr and the task results."""

import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest

ENV = {'ANSIBLE_DISPLAY_TRACEBACK': 'error'}
CRASH_TEXT = ('Traceback', 'Task failed: Module failed', 'TypeError:', 'KeyError:', 'AttributeError:')

# ---------------------------------------------------------------------------------------------
# schemas, from the published references
# ---------------------------------------------------------------------------------------------

SEVERITY = {'enum': ['critical', 'error', 'warning', 'info']}

# PagerDuty Events API v2, "Send an Alert Event" / "Resolve":
# https://developer.pagerduty.com/docs/send-alert-event and
# https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty
# routing_key, event_action (trigger|acknowledge|resolve), dedup_key (max 255), payload.summary
# (max 1024), payload.source, payload.severity (critical|error|warning|info), payload.timestamp
# (ISO 8601), component, group, class, custom_details (object); client, client_url, links, images.
PD_TRIGGER = {
    'type': 'object',
    'required': ['routing_key', 'event_action', 'payload'],
    'additionalProperties': False,
    'properties': {
        'routing_key': {'type': 'string', 'minLength': 1},
        'event_action': {'const': 'trigger'},
        'dedup_key': {'type': 'string', 'minLength': 1, 'maxLength': 255},
        'client': {'type': 'string'},
        'client_url': {'type': 'string'},
        'links': {'type': 'array'},
        'images': {'type': 'array'},
        'payload': {
            'type': 'object',
            'required': ['summary', 'source', 'severity'],
            'additionalProperties': False,
            'properties': {
                'summary': {'type': 'string', 'minLength': 1, 'maxLength': 1024},
                'source': {'type': 'string', 'minLength': 1},
                'severity': SEVERITY,
                'timestamp': {'type': 'string', 'pattern': r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$'},
                'component': {'type': 'string'},
                'group': {'type': 'string'},
                'class': {'type': 'string'},
                'custom_details': {'type': 'object'},
            },
        },
    },
}
PD_RESOLVE = {
    'type': 'object',
    'required': ['routing_key', 'event_action', 'dedup_key'],
    'additionalProperties': False,
    'properties': {
        'routing_key': {'type': 'string', 'minLength': 1},
        'event_action': {'const': 'resolve'},
        'dedup_key': {'type': 'string', 'minLength': 1, 'maxLength': 255},
    },
}

# Opsgenie Alert API, "Create Alert" and "Close Alert":
# https://docs.opsgenie.com/docs/alert-api#create-alert and
# https://docs.opsgenie.com/docs/alerts-and-alert-fields (message <= 130, alias <= 512,
# description <= 15000, at most 20 tags of <= 50, details a map of strings <= 8000 in total,
# entity <= 512, source <= 100, user <= 100, note <= 25000, priority P1..P5)
OG_CREATE = {
    'type': 'object',
    'required': ['message'],
    'additionalProperties': False,
    'properties': {
        'message': {'type': 'string', 'minLength': 1, 'maxLength': 130},
        'alias': {'type': 'string', 'maxLength': 512},
        'description': {'type': 'string', 'maxLength': 15000},
        'responders': {'type': 'array'},
        'visibleTo': {'type': 'array'},
        'actions': {'type': 'array', 'items': {'type': 'string'}},
        'tags': {'type': 'array', 'maxItems': 20, 'items': {'type': 'string', 'maxLength': 50}},
        'details': {'type': 'object', 'additionalProperties': {'type': 'string'}},
        'entity': {'type': 'string', 'maxLength': 512},
        'source': {'type': 'string', 'maxLength': 100},
        'priority': {'enum': ['P1', 'P2', 'P3', 'P4', 'P5']},
        'user': {'type': 'string', 'maxLength': 100},
        'note': {'type': 'string', 'maxLength': 25000},
    },
}
OG_CLOSE = {
    'type': 'object',
    'additionalProperties': False,
    'properties': {'user': {'type': 'string', 'maxLength': 100}, 'source': {'type': 'string', 'maxLength': 100},
                   'note': {'type': 'string', 'maxLength': 25000}},
}

# Slack incoming webhooks + Block Kit:
# https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks (text fallback + blocks),
# https://docs.slack.dev/reference/block-kit/blocks/header-block (plain_text, <= 150),
# https://docs.slack.dev/reference/block-kit/blocks/section-block (text <= 3000, fields <= 10 of <= 2000),
# https://docs.slack.dev/reference/block-kit/blocks/context-block (1..10 elements); <= 50 blocks.
_TEXT = {'type': 'object', 'required': ['type', 'text'],
         'properties': {'type': {'enum': ['mrkdwn', 'plain_text']}, 'text': {'type': 'string', 'minLength': 1},
                        'emoji': {'type': 'boolean'}, 'verbatim': {'type': 'boolean'}},
         'additionalProperties': False}
SLACK = {
    'type': 'object',
    'required': ['text', 'blocks'],
    'additionalProperties': False,
    'properties': {
        'text': {'type': 'string', 'minLength': 1},
        'blocks': {'type': 'array', 'minItems': 1, 'maxItems': 50, 'items': {'oneOf': [
            {'type': 'object', 'required': ['type', 'text'], 'additionalProperties': False,
             'properties': {'type': {'const': 'header'}, 'block_id': {'type': 'string', 'maxLength': 255},
                            'text': {'allOf': [_TEXT, {'properties': {'type': {'const': 'plain_text'},
                                                                      'text': {'maxLength': 150}}}]}}},
            {'type': 'object', 'required': ['type'], 'additionalProperties': False,
             'anyOf': [{'required': ['text']}, {'required': ['fields']}],
             'properties': {'type': {'const': 'section'}, 'block_id': {'type': 'string', 'maxLength': 255},
                            'text': {'allOf': [_TEXT, {'properties': {'text': {'maxLength': 3000}}}]},
                            'fields': {'type': 'array', 'maxItems': 10,
                                       'items': {'allOf': [_TEXT, {'properties': {'text': {'maxLength': 2000}}}]}}}},
            {'type': 'object', 'required': ['type', 'elements'], 'additionalProperties': False,
             'properties': {'type': {'const': 'context'}, 'block_id': {'type': 'string', 'maxLength': 255},
                            'elements': {'type': 'array', 'minItems': 1, 'maxItems': 10, 'items': _TEXT}}},
        ]}},
    },
}

# Microsoft Teams, Workflows "Send webhook alerts to a channel": a message with an Adaptive Card
# attachment. https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
# and the card schema http://adaptivecards.io/schemas/adaptive-card.json (TextBlock, FactSet).
TEAMS = {
    'type': 'object',
    'required': ['type', 'attachments'],
    'properties': {
        'type': {'const': 'message'},
        'attachments': {'type': 'array', 'minItems': 1, 'items': {
            'type': 'object', 'required': ['contentType', 'content'],
            'properties': {
                'contentType': {'const': 'application/vnd.microsoft.card.adaptive'},
                'contentUrl': {'type': 'null'},
                'content': {
                    'type': 'object', 'required': ['$schema', 'type', 'version', 'body'],
                    'properties': {
                        '$schema': {'const': 'http://adaptivecards.io/schemas/adaptive-card.json'},
                        'type': {'const': 'AdaptiveCard'},
                        'version': {'enum': ['1.4', '1.5']},
                        'body': {'type': 'array', 'minItems': 1, 'items': {'oneOf': [
                            {'type': 'object', 'required': ['type', 'text'],
                             'properties': {'type': {'const': 'TextBlock'}, 'text': {'type': 'string'},
                                            'wrap': {'type': 'boolean'},
                                            'weight': {'enum': ['Default', 'Lighter', 'Bolder']},
                                            'size': {'enum': ['Default', 'Small', 'Medium', 'Large', 'ExtraLarge']},
                                            'color': {'enum': ['Default', 'Dark', 'Light', 'Accent', 'Good',
                                                               'Warning', 'Attention']},
                                            'isSubtle': {'type': 'boolean'}}},
                            {'type': 'object', 'required': ['type', 'facts'],
                             'properties': {'type': {'const': 'FactSet'}, 'facts': {'type': 'array', 'items': {
                                 'type': 'object', 'required': ['title', 'value'], 'additionalProperties': False,
                                 'properties': {'title': {'type': 'string'}, 'value': {'type': 'string'}}}}}},
                        ]}},
                    },
                },
            }}},
    },
}

# The webhook notifier's own documented payload (plugins/module_utils/notifiers/webhook.py).
WEBHOOK = {
    'type': 'object',
    'required': ['type', 'version', 'sent_at', 'notifier', 'events'],
    'additionalProperties': False,
    'properties': {
        'type': {'enum': ['certforge.event', 'certforge.digest']},
        'version': {'const': 1},
        'sent_at': {'type': 'string'},
        'notifier': {'type': 'string'},
        'events': {'type': 'array', 'minItems': 1, 'items': {
            'type': 'object', 'required': ['kind', 'name', 'severity', 'summary'],
            'properties': {'kind': {'type': 'string'}, 'name': {'type': 'string'}, 'severity': SEVERITY,
                           'summary': {'type': 'string'}, 'days_left': {'type': 'integer'}}}},
    },
}


def _valid(instance, schema):
    jsonschema.validate(instance, schema, cls=jsonschema.Draft7Validator)


# ---------------------------------------------------------------------------------------------
# receivers
# ---------------------------------------------------------------------------------------------

class Receiver:
    """Threaded HTTP server on 127.0.0.1 recording every request (also the ones it answers with
    an error or drops).  ``plan[path_prefix]`` is a list of answers used first, then
    ``always[path_prefix]`` (``'drop'`` or a status), then 200/202."""

    def __init__(self):
        self.requests = []
        self.plan = {}
        self.always = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
                answer = owner.answer(self.path)
                with owner.lock:
                    owner.requests.append(dict(path=self.path, headers=dict(self.headers), body=body,
                                               answer=answer if isinstance(answer, str) else answer[0]))
                if answer == 'drop':
                    self.close_connection = True
                    return
                status, headers, text = answer
                data = text.encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path):
        with self.lock:
            for prefix, answers in self.plan.items():
                if path.startswith(prefix) and answers:
                    return answers.pop(0)
            for prefix, answer in self.always.items():
                if path.startswith(prefix):
                    return answer
        if path.startswith('/slack'):
            return (200, {'Content-Type': 'text/plain'}, 'ok')
        if path.startswith('/pd'):
            return (202, {'Content-Type': 'application/json'},
                    '{"status":"success","message":"Event processed","dedup_key":"x"}')
        if path.startswith('/og'):
            return (202, {'Content-Type': 'application/json'},
                    '{"result":"Request will be processed","took":0.01,"requestId":"r"}')
        if path.startswith('/teams'):
            return (202, {}, '')
        return (200, {'Content-Type': 'application/json'}, '{}')

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.port, path)

    def hits(self, prefix):
        with self.lock:
            return [r for r in self.requests if r['path'].startswith(prefix)]

    def delivered(self, prefix):
        return [r for r in self.hits(prefix) if r['answer'] != 'drop' and 200 <= r['answer'] < 300]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def receiver():
    rcv = Receiver()
    try:
        yield rcv
    finally:
        rcv.stop()


def _server_cert(test_ca, tmp_path):
    """A leaf for 127.0.0.1 (IP SAN) signed by the test CA's intermediate; the root as trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'smtp.test')]))
            .issuer_name(test_ca.inter.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(test_ca.inter_key, hashes.SHA256()))
    chain = tmp_path / 'smtp.fullchain.pem'
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + test_ca.chain_pem.encode())
    keyfile = tmp_path / 'smtp.key'
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    root = tmp_path / 'root.pem'
    root.write_text(test_ca.root_pem)
    return str(chain), str(keyfile), str(root)


SMTP_USER, SMTP_PASSWORD = 'notifier', 'smtp-Pa55-9f3c1e'


class SMTPSink:
    def __init__(self, test_ca, tmp_path):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult
        chain, key, self.ca_path = _server_cert(test_ca, tmp_path)
        self.messages = []
        self.logins = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                      message_from_bytes(envelope.original_content)))
                return '250 OK'

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = getattr(auth_data, 'login', None) == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
            sink.logins.append(ok)
            return AuthResult(success=ok)

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(chain, key)
        # the Controller checks its own start by connecting to its port: give it a free one
        probe = socket.socket()
        probe.bind(('127.0.0.1', 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.controller = Controller(Handler(), hostname='127.0.0.1', port=self.port, tls_context=tls,
                                     require_starttls=True, authenticator=authenticator, auth_require_tls=True)
        self.controller.start()

    def stop(self):
        self.controller.stop()


@pytest.fixture
def smtp(test_ca, tmp_path):
    sink = SMTPSink(test_ca, tmp_path)
    try:
        yield sink
    finally:
        sink.stop()


# ---------------------------------------------------------------------------------------------
# plays
# ---------------------------------------------------------------------------------------------

SECRETS = dict(routing_key='R0UT1NGKEY0000000000000000000000', genie='9a1b7c3e-GENIE-KEY-55aa',
               hmac='hmac-S3CRET-value-77', slack='SLACKTOKEN0xK9', teams='TEAMSSIG-sig-Zq81', hook='HOOKTOKEN-44b',
               header='hdr-T0KEN-913')
FINDINGS = [
    {'name': 'www.example.test', 'host': 'web1', 'path': '/etc/ssl/www.pem', 'days_left': 5.4,
     'not_after': '2030-01-01T00:00:00Z'},
    {'name': 'api.example.test', 'endpoint': 'api.example.test:443', 'days_left': 21},
    {'name': 'mail.example.test', 'host': 'mx1', 'path': '/etc/postfix/mail.pem', 'days_left': 80},
]
EVENTS = [{'kind': 'renewed', 'name': 'www.example.test', 'issuer': 'local_ca', 'details': {'serial': '0A1B'}}]


def _notifiers(rcv, smtp=None, fast=True):
    retry = {'retries': 2, 'retry_delay': 0.01, 'retry_max_delay': 1} if fast else {}
    out = [
        {'name': 'pager', 'type': 'pagerduty',
         'options': dict(retry, routing_key=SECRETS['routing_key'], url=rcv.url('/pd/v2/enqueue'))},
        {'name': 'chat', 'type': 'slack', 'options': dict(retry, url=rcv.url('/slack/services/T0/B0/' + SECRETS['slack']))},
        {'name': 'hook', 'type': 'webhook',
         'options': dict(retry, url=rcv.url('/hook/' + SECRETS['hook']), secret=SECRETS['hmac'],
                         headers={'X-Team': 'pki', 'X-Api-Token': SECRETS['header']})},
        {'name': 'teams', 'type': 'teams',
         'options': dict(retry, url=rcv.url('/teams/workflows/run?sig=' + SECRETS['teams']))},
        {'name': 'genie', 'type': 'opsgenie', 'options': dict(retry, api_key=SECRETS['genie'], url=rcv.url('/og'))},
    ]
    if smtp is not None:
        out.append({'name': 'mail', 'type': 'email', 'options': dict(
            retry, host='127.0.0.1', port=smtp.port, ca_path=smtp.ca_path, username=SMTP_USER, password=SMTP_PASSWORD,
            from_address='certforge@example.test', to=['ops@example.test', 'pki@example.test'])})
    return out


ROUTES = [
    {'when': {'days_left_max': 7}, 'notifier': 'pager'},
    {'when': {'kinds': ['issued', 'renewed']}, 'notifier': 'pager'},
    {'when': {'days_left_max': 30}, 'notifier': 'chat'},
    {'notifier': 'mail', 'digest': True},
    {'notifier': 'hook'},
    {'when': {'days_left_max': 30}, 'notifier': 'teams', 'digest': True},
    {'notifier': 'genie'},
]


def _play(args, name='Notify', extra_tasks=()):
    return [{'name': 'notify', 'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': name, 'certforge.pki.notify': args, 'register': 'out'}] + list(extra_tasks)}]


def _no_secret(result, secrets, expect_failure=False):
    """No secret anywhere; no crash text (for a run with an intended task failure, ansible itself
    prints the task's failure as a traceback with ANSIBLE_DISPLAY_TRACEBACK=error: then the task
    results and the other crash markers are searched)."""
    text = result.stdout + result.stderr + json.dumps(result.tasks)
    for secret in secrets:
        at = text.find(secret)
        assert at < 0, 'secret %r shows in the output: ...%s...' % (secret, text[max(0, at - 300):at + 50])
    for crash in CRASH_TEXT:
        if expect_failure and crash in ('Traceback', 'Task failed: Module failed'):
            results = [dict((k, v) for k, v in t['result'].items() if k != 'exception') for t in result.tasks]
            assert crash not in json.dumps(results), str(result)
            continue
        assert crash not in text, str(result)


def _bodies(rcv, prefix):
    return [json.loads(r['body']) for r in rcv.delivered(prefix)]


def _wait_for(condition, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError('timed out waiting for %s' % what)


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------

def test_every_notifier_routes_and_delivers_the_published_shapes(run_playbook, receiver, smtp):
    args = dict(findings=FINDINGS, events=EVENTS, notifiers=_notifiers(receiver, smtp), routes=ROUTES)
    result = run_playbook(_play(args), env=ENV, args=('-v',))
    assert result.rc == 0, str(result)
    out = result.task('Notify')
    counts = dict((n['name'], (n['events'], n['delivered'], n['failed'])) for n in out['notifiers'])
    # <= 7 days -> pager (+ the renewal resolves it), <= 30 -> chat, all -> ONE digest mail
    assert counts == {'pager': (2, 2, 0), 'chat': (2, 2, 0), 'hook': (4, 4, 0), 'teams': (2, 1, 0),
                      'genie': (4, 4, 0), 'mail': (4, 1, 0)}, counts
    assert out['delivered'] == 14 and out['undelivered'] == 0 and out['changed'] is True and out['events'] == 4

    # PagerDuty: one trigger (5 days: critical), one resolve with the same dedup_key
    pd = _bodies(receiver, '/pd/v2/enqueue')
    assert [b['event_action'] for b in pd] == ['trigger', 'resolve'], pd
    _valid(pd[0], PD_TRIGGER)
    _valid(pd[1], PD_RESOLVE)
    assert pd[0]['payload']['severity'] == 'critical' and pd[0]['routing_key'] == SECRETS['routing_key']
    assert pd[0]['dedup_key'] == pd[1]['dedup_key'] == 'certforge:www.example.test'
    assert 'www.example.test' in pd[0]['payload']['summary'] and pd[0]['payload']['source'] == 'web1'

    # Slack: Block Kit + text, www critical and api warning, nothing for mail (80 days)
    slack = _bodies(receiver, '/slack/')
    assert len(slack) == 2
    for body in slack:
        _valid(body, SLACK)
    assert [b['blocks'][0]['text']['text'] for b in slack] == ['Critical: www.example.test', 'Warning: api.example.test']

    # Teams: one digest card with both certificates
    teams = _bodies(receiver, '/teams/')
    assert len(teams) == 1
    _valid(teams[0], TEAMS)
    card_text = json.dumps(teams[0])
    assert 'www.example.test' in card_text and 'api.example.test' in card_text and 'mail.example.test' not in card_text

    # Opsgenie: three alerts (P1, P3, P5) with the GenieKey, and the renewal closes www's alert by alias
    og = receiver.delivered('/og/')
    creates = [r for r in og if r['path'] == '/og/v2/alerts']
    closes = [r for r in og if '/close' in r['path']]
    assert len(creates) == 3 and len(closes) == 1, [r['path'] for r in og]
    for r in creates:
        _valid(json.loads(r['body']), OG_CREATE)
        assert r['headers']['Authorization'] == 'GenieKey ' + SECRETS['genie']
    assert [json.loads(r['body'])['priority'] for r in creates] == ['P1', 'P3', 'P5']
    assert closes[0]['path'] == '/og/v2/alerts/certforge%3Awww.example.test/close?identifierType=alias'
    _valid(json.loads(closes[0]['body']), OG_CLOSE)
    assert json.loads(creates[0]['body'])['alias'] == 'certforge:www.example.test'

    # webhook: the documented payload, the custom header, a signature recomputed over timestamp.body
    hooks = receiver.delivered('/hook/')
    assert len(hooks) == 4
    for r in hooks:
        _valid(json.loads(r['body']), WEBHOOK)
        stamp = r['headers']['X-Certforge-Timestamp']
        assert abs(int(stamp) - time.time()) < 300
        expected = 'sha256=' + hmac.new(SECRETS['hmac'].encode(), stamp.encode() + b'.' + r['body'],
                                        hashlib.sha256).hexdigest()
        assert hmac.compare_digest(r['headers']['X-Certforge-Signature'], expected)
        assert r['headers']['X-Team'] == 'pki' and r['headers']['X-Api-Token'] == SECRETS['header']
        assert len(r['headers']['X-Certforge-Delivery']) == 32
    assert [json.loads(r['body'])['events'][0]['kind'] for r in hooks] == ['expiring'] * 3 + ['renewed']
    # a changed body does not verify
    tampered = hooks[0]['body'].replace(b'www', b'wwx')
    assert 'sha256=' + hmac.new(SECRETS['hmac'].encode(), hooks[0]['headers']['X-Certforge-Timestamp'].encode()
                                + b'.' + tampered, hashlib.sha256).hexdigest() != hooks[0]['headers']['X-Certforge-Signature']

    # email: ONE digest over STARTTLS, logged in, text + HTML naming every certificate
    _wait_for(lambda: len(smtp.messages) == 1, 'the digest mail')
    sender, rcpts, mail = smtp.messages[0]
    assert sender == 'certforge@example.test' and rcpts == ['ops@example.test', 'pki@example.test']
    assert smtp.logins == [True]
    assert mail['Subject'] == '[certforge] 4 certificate notifications (worst: critical)'
    parts = dict((p.get_content_type(), p.get_payload(decode=True).decode()) for p in mail.walk()
                 if not p.is_multipart())
    assert set(parts) == {'text/plain', 'text/html'}
    for name in ('www.example.test', 'api.example.test', 'mail.example.test'):
        assert name in parts['text/plain'] and name in parts['text/html']

    _no_secret(result, list(SECRETS.values()) + [SMTP_PASSWORD])


def test_retries_a_dead_endpoint_and_the_others_still_deliver(run_playbook, receiver):
    # the webhook answers 500, then 429 (Retry-After: 0), then 200: delivered on the third attempt
    receiver.plan['/hook/'] = [(500, {}, 'boom'), (429, {'Retry-After': '0'}, 'slow down')]
    # the Slack endpoint drops every connection; the Teams one asks for a wait longer than allowed
    receiver.always['/slack/'] = 'drop'
    receiver.always['/teams/'] = (429, {'Retry-After': '120'}, '')
    notifiers = _notifiers(receiver)
    args = dict(findings=FINDINGS[:1], notifiers=notifiers)
    result = run_playbook(_play(args), env=ENV, args=('-v',))
    assert result.rc == 0, str(result)
    out = result.task('Notify')
    counts = dict((n['name'], (n['delivered'], n['failed'])) for n in out['notifiers'])
    assert counts == {'pager': (1, 0), 'chat': (0, 1), 'hook': (1, 0), 'teams': (0, 1), 'genie': (1, 0)}, counts
    assert [r['answer'] for r in receiver.hits('/hook/')] == [500, 429, 200]
    assert len(receiver.hits('/slack/')) == 3              # retries: 2 -> three attempts, then reported
    assert len(receiver.hits('/teams/')) == 1              # Retry-After 120 > retry_max_delay: no retry
    warnings = ' '.join(out.get('warnings', []))
    assert 'slack notifier chat' in warnings and 'connection failed' in warnings and '(after 3 attempts)' in warnings
    assert 'http://127.0.0.1:%d/…' % receiver.port in warnings
    assert 'asked to wait 120s' in warnings
    chat = [n for n in out['notifiers'] if n['name'] == 'chat'][0]
    assert chat['errors'] and SECRETS['slack'] not in chat['errors'][0]
    _no_secret(result, list(SECRETS.values()))

    # fail_on_error: the task fails naming the failure, after the others delivered again
    before = len(receiver.delivered('/pd/'))
    args['fail_on_error'] = True
    result = run_playbook(_play(args), env=ENV, args=('-v',))
    assert result.rc != 0, str(result)
    failed = result.task('Notify')
    assert result.status('Notify') == 'failed' and '2 notification(s) not delivered' in failed['msg'], failed
    assert len(receiver.delivered('/pd/')) == before + 1
    assert 'Module failed' not in result.stdout + result.stderr
    _no_secret(result, list(SECRETS.values()), expect_failure=True)


def test_check_mode_sends_nothing_and_shows_redacted_messages(run_playbook, receiver, smtp):
    args = dict(findings=FINDINGS, events=EVENTS, notifiers=_notifiers(receiver, smtp), routes=ROUTES)
    result = run_playbook(_play(args), env=ENV, check=True, args=('-v',))
    assert result.rc == 0, str(result)
    out = result.task('Notify')
    assert receiver.requests == [] and smtp.messages == []
    assert out['delivered'] == 0 and out['changed'] is True
    shown = dict((n['name'], n['messages']) for n in out['would_send'])
    assert dict((k, len(v)) for k, v in shown.items()) == {'pager': 2, 'chat': 2, 'hook': 4, 'teams': 1,
                                                           'genie': 4, 'mail': 1}
    assert shown['pager'][0]['body']['routing_key'] == '********'
    _valid(dict(shown['pager'][0]['body'], routing_key='x'), PD_TRIGGER)
    assert shown['chat'][0]['url'] == 'http://127.0.0.1:%d/…' % receiver.port
    assert shown['genie'][0]['headers']['Authorization'] == '********'
    assert shown['hook'][0]['headers'] == {'X-Team': 'pki', 'X-Api-Token': '********', 'X-Certforge-Event': 'expiring'}
    assert 'www.example.test' in shown['mail'][0]['body']
    _no_secret(result, list(SECRETS.values()) + [SMTP_PASSWORD])


def test_bad_input_is_refused_before_anything_is_sent(run_playbook, receiver):
    good = _notifiers(receiver)
    cases = [
        ('Unknown type', dict(findings=FINDINGS, notifiers=[dict(good[1], type='slak')]),
         ['notifiers[0].type', 'did you mean slack']),
        ('Misspelt option', dict(findings=FINDINGS, notifiers=[dict(good[0], options={
            'routing_kye': SECRETS['routing_key'], 'url': receiver.url('/pd/v2/enqueue')})]),
         ['notifiers[0].options.routing_kye', 'did you mean routing_key']),
        ('Unknown route', dict(findings=FINDINGS, notifiers=good, routes=[{'notifier': 'pagr'}]),
         ['routes[0].notifier', 'did you mean pager']),
        ('Finding without dates', dict(findings=[{'name': 'x'}], notifiers=good),
         ['findings[0]', 'days_left or not_after']),
        ('Bad severity threshold', dict(findings=FINDINGS, notifiers=good, critical_days=40),
         ['critical_days']),
    ]
    tasks = [{'name': name, 'certforge.pki.notify': args, 'ignore_errors': True} for name, args, dummy in cases]
    result = run_playbook([{'name': 'bad', 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], env=ENV)
    assert result.rc == 0, str(result)
    for name, dummy, words in cases:
        res = result.task(name)
        assert result.status(name) in ('failed', 'ignored'), (name, res)
        for word in words:
            assert word in res['msg'], (name, res['msg'])
    assert receiver.requests == []
    _no_secret(result, list(SECRETS.values()), expect_failure=True)


def test_findings_of_discovery_tls_scan_and_report_shapes(run_playbook, receiver):
    """The shapes other modules return are taken as they are."""
    soon = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3, hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')
    findings = [
        # certificate_discovery: certificates[]
        {'path': '/etc/ssl/a.pem', 'subject': 'CN=a.example.test', 'days_left': 12.5, 'expired': False,
         'not_after': soon, 'serial': '01'},
        # tls_scan: endpoints[]
        {'host': 'b.example.test', 'address': '127.0.0.1', 'port': 443, 'sni': 'b.example.test', 'error': None,
         'chain': [{'subject': 'CN=b.example.test', 'not_after': soon, 'days_left': -1.2}]},
        # a report's rows
        {'common_name': 'c.example.test', 'subject': 'CN=c.example.test', 'not_after': soon, 'hosts': ['h1', 'h2'],
         'issuer': 'CN=Example CA', 'status': 'critical',
         'locations': [{'kind': 'file', 'host': 'h1', 'path': '/etc/c.pem'},
                       {'kind': 'endpoint', 'host': '10.0.0.5', 'port': 443, 'sni': 'c.example.test'}]},
        # an endpoint that could not be read
        {'host': 'd.example.test', 'port': 443, 'sni': 'd.example.test', 'error': 'connection refused', 'chain': []},
    ]
    notifiers = [n for n in _notifiers(receiver) if n['name'] == 'hook']
    result = run_playbook(_play(dict(findings=findings, notifiers=notifiers, digest=True)), env=ENV)
    assert result.rc == 0, str(result)
    (body,) = _bodies(receiver, '/hook/')
    _valid(body, WEBHOOK)
    seen = dict((e['name'], e) for e in body['events'])
    assert seen['a.example.test']['days_left'] == 12 and seen['a.example.test']['severity'] == 'warning'
    assert seen['a.example.test']['path'] == '/etc/ssl/a.pem'
    assert seen['b.example.test']['kind'] == 'expired' and seen['b.example.test']['endpoint'] == 'b.example.test:443'
    assert seen['c.example.test']['days_left'] == 3 and seen['c.example.test']['severity'] == 'critical'
    assert seen['c.example.test']['host'] == 'h1, h2'
    assert seen['c.example.test']['path'] == 'h1:/etc/c.pem, c.example.test:443'
    assert seen['d.example.test']['kind'] == 'failed' and seen['d.example.test']['severity'] == 'error'


def _role_play(tmp_path, notifiers):
    role_vars = {
        'local_ca_dir': str(tmp_path / 'ca'),
        'certificate_dir': str(tmp_path / 'certs'),
        'certificate_owner': 'root', 'certificate_group': 'root',
        'certificate_issuer_options': {'ca_path': str(tmp_path / 'ca' / 'root')},
        'certificate_target': 'files',
        'certificate_list': [{'name': 'www', 'common_name': 'www.notify.test',
                              'subject_alt_names': ['DNS:www.notify.test']}],
        'certificate_notifiers': notifiers,
    }
    return [{'name': 'Role with notifiers', 'hosts': 'localhost', 'gather_facts': False, 'vars': role_vars,
             'tasks': [{'name': 'CA', 'ansible.builtin.include_role': {'name': 'certforge.pki.local_ca'}},
                       {'name': 'Certificates', 'ansible.builtin.include_role': {'name': 'certforge.pki.certificate'}}]}]


def test_role_sends_issued_event_once_and_nothing_on_a_noop_run(run_playbook, receiver, tmp_path):
    env = dict(ENV, CERTFORGE_ORDER_STORE=str(tmp_path / 'orders'))
    notifiers = [n for n in _notifiers(receiver) if n['name'] == 'hook']
    first = run_playbook(_role_play(tmp_path, notifiers), env=env, args=('-v',))
    assert first.rc == 0, str(first)
    hooks = receiver.delivered('/hook/')
    assert len(hooks) == 1, [r['body'] for r in hooks]
    body = json.loads(hooks[0]['body'])
    _valid(body, WEBHOOK)
    (event,) = body['events']
    assert event['kind'] == 'issued' and event['name'] == 'www' and event['issuer'] == 'local_ca'
    assert event['serial']
    _no_secret(first, [SECRETS['hook'], SECRETS['hmac']])

    second = run_playbook(_role_play(tmp_path, notifiers), env=env)
    assert second.rc == 0, str(second)
    assert len(receiver.hits('/hook/')) == 1               # the no-op run sent nothing
    assert os.path.exists(str(tmp_path / 'certs'))


def test_certificate_module_sends_issued_and_revoked_events(run_playbook, receiver, test_ca, tmp_path):
    """The generic certificate module with notifiers: issued, then nothing for a kept certificate,
    then revoked; routes pick the notifier; a dead notifier is a warning and the run goes on."""
    receiver.always['/slack/'] = 'drop'
    notifiers = [n for n in _notifiers(receiver) if n['name'] in ('hook', 'chat', 'pager')]
    routes = [{'notifier': 'hook'}, {'when': {'kinds': ['revoked']}, 'notifier': 'pager'},
              {'when': {'kinds': ['issued']}, 'notifier': 'chat'}]
    env = dict(ENV, CERTFORGE_ORDER_STORE=str(tmp_path / 'orders'))
    common = {'name': 'www', 'issuer': 'local_ca', 'issuer_options': {'ca_path': str(tmp_path / 'ca')},
              'notifiers': notifiers, 'notify_routes': routes}
    play = [{'name': 'certificate with notifiers', 'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'CA', 'certforge.pki.local_ca': {'path': str(tmp_path / 'ca'), 'common_name': 'Notify Test CA'}},
        {'name': 'Key and CSR', 'certforge.pki.certificate_request': {
            'privatekey_path': str(tmp_path / 'www.key'), 'common_name': 'www.notify.test'}, 'register': 'req'},
        {'name': 'Issue', 'certforge.pki.certificate': dict(common, csr='{{ req.csr }}'), 'register': 'cert'},
        {'name': 'Keep', 'certforge.pki.certificate': dict(common, csr='{{ req.csr }}',
                                                           current_certificate='{{ cert.certificate }}')},
        {'name': 'Revoke', 'certforge.pki.certificate': dict(common, state='revoked', revocation_reason='superseded',
                                                             current_certificate='{{ cert.certificate }}')},
    ]}]
    result = run_playbook(play, env=env, args=('-v',))
    assert result.rc == 0, str(result)
    kinds = [json.loads(r['body'])['events'][0]['kind'] for r in receiver.delivered('/hook/')]
    assert kinds == ['issued', 'revoked'], kinds
    (pd,) = _bodies(receiver, '/pd/')
    _valid(pd, PD_TRIGGER)
    assert pd['payload']['severity'] == 'warning' and 'revoked' in pd['payload']['summary']
    assert len(receiver.hits('/slack/')) == 3                     # the issued event, tried three times
    issued = result.task('Issue')
    assert [(n['name'], n['delivered'], n['failed']) for n in issued['notifications']] == [
        ('pager', 0, 0), ('chat', 0, 1), ('hook', 1, 0)]
    assert any('slack notifier chat' in w for w in issued['warnings'])
    assert 'notifications' not in result.task('Keep') or result.task('Keep')['notifications'] == []
    _no_secret(result, list(SECRETS.values()))


def test_real_discovery_and_report_results_feed_notify(run_playbook, receiver, test_ca, tmp_path):
    """certificate_discovery's certificates and certificate_report's attention rows, as those
    modules return them, go to notify unchanged."""
    certs = tmp_path / 'certs'
    certs.mkdir()
    (certs / 'soon.pem').write_text(test_ca.issue('soon.notify.test', days=5).cert_pem)
    (certs / 'later.pem').write_text(test_ca.issue('later.notify.test', days=20).cert_pem)
    hook = [n for n in _notifiers(receiver) if n['name'] == 'hook']
    play = [{'name': 'discovery, report, notify', 'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'Discover', 'certforge.pki.certificate_discovery': {'paths': [str(certs)]}, 'register': 'found'},
        {'name': 'Notify discovery', 'certforge.pki.notify': {
            'findings': '{{ found.certificates }}', 'notifiers': hook, 'digest': True}},
        {'name': 'Report', 'certforge.pki.certificate_report': {
            'discovery': {'localhost': '{{ found }}'}, 'json_path': str(tmp_path / 'report.json')}, 'register': 'report'},
        {'name': 'Notify report', 'certforge.pki.notify': {
            'findings': '{{ report.attention }}', 'notifiers': hook, 'digest': True}},
    ]}]
    result = run_playbook(play, env=ENV)
    assert result.rc == 0, str(result)
    bodies = _bodies(receiver, '/hook/')
    assert len(bodies) == 2, bodies
    for body in bodies:
        _valid(body, WEBHOOK)
        seen = dict((e['name'], e) for e in body['events'])
        assert set(seen) == {'soon.notify.test', 'later.notify.test'}, seen
        assert seen['soon.notify.test']['severity'] == 'critical' and seen['soon.notify.test']['days_left'] in (4, 5)
        assert seen['later.notify.test']['severity'] == 'warning'
        assert str(certs / 'soon.pem') in seen['soon.notify.test']['path']


def test_email_refuses_a_server_without_starttls_or_with_an_untrusted_certificate(run_playbook, smtp, tmp_path):
    from aiosmtpd.controller import Controller
    plain_messages = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            plain_messages.append(envelope)
            return '250 OK'

    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    plain = Controller(Handler(), hostname='127.0.0.1', port=port)
    plain.start()
    try:
        base = dict(from_address='certforge@example.test', to=['ops@example.test'], retries=0, host='127.0.0.1')
        notifiers = [
            {'name': 'plain', 'type': 'email', 'options': dict(base, port=port)},
            {'name': 'untrusted', 'type': 'email', 'options': dict(base, port=smtp.port, username=SMTP_USER,
                                                                   password=SMTP_PASSWORD)},
            {'name': 'good', 'type': 'email', 'options': dict(base, port=smtp.port, ca_path=smtp.ca_path)},
        ]
        result = run_playbook(_play(dict(findings=FINDINGS[:1], notifiers=notifiers)), env=ENV)
    finally:
        plain.stop()
    assert result.rc == 0, str(result)
    out = dict((n['name'], n) for n in result.task('Notify')['notifiers'])
    assert (out['plain']['failed'], out['untrusted']['failed'], out['good']['delivered']) == (1, 1, 1), out
    assert 'offers no STARTTLS' in out['plain']['errors'][0]
    assert 'not trusted' in out['untrusted']['errors'][0] and 'ca_path' in out['untrusted']['errors'][0]
    assert plain_messages == [] and smtp.logins == []             # nothing sent in the clear, no login
    _wait_for(lambda: len(smtp.messages) == 1, 'the mail of the good notifier')
    _no_secret(result, [SMTP_PASSWORD])


def test_role_refuses_bad_notifiers_before_issuing(run_playbook, receiver, tmp_path):
    env = dict(ENV, CERTFORGE_ORDER_STORE=str(tmp_path / 'orders'))
    bad = [{'name': 'hook', 'type': 'webhook', 'options': {'url': receiver.url('/hook/' + SECRETS['hook']),
                                                           'secrett': SECRETS['hmac']}}]
    result = run_playbook(_role_play(tmp_path, bad), env=env)
    assert result.rc != 0, str(result)
    failed = [t for t in result.tasks if t['status'] == 'failed']
    assert failed and failed[-1]['task'].endswith('Issue or renew on the controller'), str(result)
    msg = failed[-1]['result']['msg']
    assert 'notifiers[0].options.secrett' in msg and 'did you mean secret' in msg, msg
    assert not list((tmp_path / 'certs').glob('*.crt')), 'a certificate was written'
    assert receiver.requests == []
    _no_secret(result, [SECRETS['hook'], SECRETS['hmac']], expect_failure=True)
