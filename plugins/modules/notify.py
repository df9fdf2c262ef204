#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: notify
short_description: Tell people and systems about expiring certificates and certificate events
version_added: 0.2.0
description:
  - Sends notifications about O(findings) (certificates with the days they have left, as
    M(certforge.pki.certificate_discovery), M(certforge.pki.tls_scan) or a report list them) and O(events)
    (what the issue and deploy path did) through O(notifiers) - C(webhook), C(slack), C(teams), C(pagerduty),
    C(opsgenie), C(email), or a notifier connector package installed on the controller.
  - Runs on the controller (an action plugin, in-process); nothing runs on the managed host.
  - Severity comes from the days left (expired or at most O(critical_days) C(critical), at most
    O(warning_days) C(warning), else C(info)) and from the event kind (C(failed) and C(rolled_back) are C(error)).
  - "Routing is all-matching: an event goes to the notifier of every rule of O(routes) it matches (once per
    notifier); C(stop: true) on a rule ends the routing of the events it matched. Without O(routes) every event
    goes to every notifier."
  - A digest sends ONE message per notifier for all the certificates routed to it.
  - HTTP notifiers use bounded timeouts and retry 429, 5xx and connection errors with exponential backoff and
    jitter, honouring C(Retry-After). A notifier that still fails is reported (RV(notifiers), a warning) and the
    others deliver; O(fail_on_error) makes the task fail then.
  - Secrets (webhook URLs, routing keys, API keys, SMTP passwords) never show in results, warnings or errors;
    URLs are shown as C(scheme://host/...).
author: certforge.pki contributors (@certforge)
extends_documentation_fragment:
  - certforge.pki.attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode builds every message and returns them redacted in RV(would_send); nothing is sent.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run sends its notifications again (PagerDuty and Opsgenie deduplicate by certificate).
requirements:
  - requests (on the controller, for the HTTP notifiers)
options:
  findings:
    description:
      - Certificates to report, each a dictionary with a name (C(name), C(common_name), C(subject), C(path) or
        C(endpoint)) and C(days_left) (or C(days_remaining)) or C(not_after) (ISO 8601 UTC); C(host), C(path),
        C(endpoint) (or C(address) and C(port)), C(serial) and C(issuer) are shown when present.
      - Accepts the entries of certificate_discovery's C(certificates), tls_scan's C(endpoints) and a report's rows
        as they are. An entry with only an C(error) becomes a C(failed) event.
      - Each becomes an C(expiring) event (C(expired) when its days left are below zero).
    type: list
    elements: raw
    default: []
  events:
    description:
      - Lifecycle events, each C({kind, name, issuer, target, details}); C(kind) is one of C(issued), C(renewed),
        C(pending), C(revoked), C(deployed), C(rolled_back), C(failed), C(expiring), C(expired).
    type: list
    elements: raw
    default: []
  notifiers:
    description:
      - The notifiers, each used by name in O(routes).
      - "C(webhook) options: C(url) (required, secret), C(secret) (HMAC key: the request carries
        C(X-Certforge-Timestamp) and C(X-Certforge-Signature: sha256=<hex HMAC-SHA256 of \"<timestamp>.<raw body>\">);
        receivers refuse old timestamps and repeated C(X-Certforge-Delivery) ids), C(headers)."
      - "C(slack) options: C(url) (the incoming webhook URL, required, secret). Block Kit header/section/context
        blocks plus a C(text) fallback."
      - "C(teams) options: C(url) (the Workflows webhook URL, required, secret), C(card_version) (C(1.4) or
        C(1.5)). An Adaptive Card attachment."
      - "C(pagerduty) options: C(routing_key) (required, secret), C(url) (default
        C(https://events.pagerduty.com/v2/enqueue)), C(source), C(component), C(group), C(event_class),
        C(dedup_key_prefix), C(resolve_on) (event kinds that resolve the certificate's alert, default
        C([issued, renewed]))."
      - "C(opsgenie) options: C(api_key) (required, secret), C(url) (default C(https://api.opsgenie.com); the EU
        instance is C(https://api.eu.opsgenie.com)), C(tags), C(responders), C(entity), C(source), C(alias_prefix),
        C(close_on) (default C([issued, renewed]))."
      - "C(email) options: C(host) (required), C(port) (587), C(starttls) (C(required) or C(never), default
        C(required)), C(ca_path) (CA bundle that signed the server's certificate), C(validate_certs),
        C(username) and C(password) (secret), C(from_address) and C(to) (required), C(subject_prefix), C(html)
        (add an HTML part, default true), C(local_hostname)."
      - "Every HTTP notifier also takes C(timeout) (seconds, default 10), C(retries) (default 3), C(retry_delay)
        (first backoff, default 1), C(retry_max_delay) (default 30; a longer C(Retry-After) ends the retries),
        C(validate_certs) and C(ca_path); C(email) takes C(timeout), C(retries), C(retry_delay), C(retry_max_delay)."
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The name routes use.
        type: str
        required: true
      type:
        description: The notifier connector.
        type: str
        required: true
      options:
        description: Options of the notifier type (see above); unknown keys are refused naming the closest one.
        type: dict
        default: {}
      events:
        description: Only these event kinds go to this notifier; all when omitted.
        type: list
        elements: str
      digest:
        description: One message for all events routed here; O(digest) when omitted.
        type: bool
  routes:
    description: Routing rules, applied all-matching (see the description).
    type: list
    elements: dict
    default: []
    suboptions:
      notifier:
        description: Name of a notifier of O(notifiers).
        type: str
        required: true
      when:
        description: Conditions, all of which must hold; a rule without them matches every event.
        type: dict
        suboptions:
          days_left_max:
            description: At most this many days left (events without days left do not match).
            type: int
          days_left_min:
            description: At least this many days left.
            type: int
          kinds:
            description: Event kinds.
            type: list
            elements: str
          severity:
            description: Severities.
            type: list
            elements: str
            choices: [critical, error, warning, info]
          names:
            description: Shell-style patterns of certificate names.
            type: list
            elements: str
      digest:
        description: The events of this rule go into the notifier's digest.
        type: bool
      stop:
        description: Events this rule matched are not routed further.
        type: bool
        default: false
  digest:
    description: Notifiers without their own C(digest) setting send one digest message instead of one per event.
    type: bool
    default: false
  fail_on_error:
    description: Fail the task when a notification could not be delivered (the others are still sent first).
    type: bool
    default: false
  critical_days:
    description: Days left at or below which a certificate is C(critical).
    type: int
    default: 7
  warning_days:
    description: Days left at or below which a certificate is C(warning).
    type: int
    default: 30
seealso:
  - module: certforge.pki.certificate_batch
'''

EXAMPLES = r'''
- name: Routing as the issue asks - <= 7 days PagerDuty, <= 30 days Slack, all in a digest mail
  certforge.pki.notify:
    findings:
      - name: www.example.com
        host: web1
        path: /etc/ssl/certs/www.pem
        days_left: 5
      - name: api.example.com
        endpoint: api.example.com:443
        days_left: 21
      - name: mail.example.com
        host: mx1
        path: /etc/postfix/mail.pem
        days_left: 80
    notifiers:
      - name: pager
        type: pagerduty
        options:
          routing_key: "{{ pagerduty_routing_key }}"
          url: "{{ pagerduty_url | default(omit) }}"
      - name: chat
        type: slack
        options:
          url: "{{ slack_webhook_url }}"
      - name: mail
        type: email
        options:
          host: "{{ smtp_host }}"
          port: "{{ smtp_port }}"
          ca_path: "{{ smtp_ca_path }}"
          from_address: certificates@example.com
          to: [ops@example.com]
    routes:
      - when: {days_left_max: 7}
        notifier: pager
      - when: {days_left_max: 30}
        notifier: chat
      - notifier: mail
        digest: true

- name: A signed webhook for every lifecycle event, shown but not sent in check mode
  certforge.pki.notify:
    events:
      - kind: renewed
        name: www
        issuer: local_ca
        details: {serial: 0A1B2C}
    notifiers:
      - name: hook
        type: webhook
        options:
          url: "{{ webhook_url }}"
          secret: "{{ webhook_secret }}"
  check_mode: true
  register: preview
'''

RETURN = r'''
events:
  description: Number of events made of O(findings) and O(events).
  returned: always
  type: int
  sample: 3
routed:
  description: Number of (event, notifier) pairs the routes chose.
  returned: always
  type: int
  sample: 5
delivered:
  description: Messages delivered, all notifiers.
  returned: always
  type: int
  sample: 3
undelivered:
  description: Messages not delivered after their retries, all notifiers.
  returned: always
  type: int
  sample: 0
notifiers:
  description: Per notifier - C(name), C(type), C(events) routed to it, C(delivered) and C(failed) message counts,
    C(errors) (redacted); C(would_send) in check mode.
  returned: always
  type: list
  elements: dict
  sample: [{name: chat, type: slack, events: 2, delivered: 2, failed: 0, errors: []}]
would_send:
  description: Check mode - per notifier, the messages that would be sent (C(label), C(method), C(url) as
    C(scheme://host/...), C(headers) and C(body) with secrets replaced by C(********)).
  returned: check mode
  type: list
  elements: dict
'''

# The work happens in the action plugin (plugins/action/notify.py), in-process on the controller.
