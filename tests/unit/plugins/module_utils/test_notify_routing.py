# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routing, severity and the no-op path of the notifiers (no network: check mode previews)."""

import subprocess
import sys

import pytest

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import Event
from ansible_collections.certforge.pki.plugins.module_utils.notifiers import common, dispatch

NOTIFIERS = [{'name': 'pager', 'type': 'pagerduty', 'options': {'routing_key': 'rk-secret'}},
             {'name': 'chat', 'type': 'slack', 'options': {'url': 'https://hooks.example.test/services/T/B/SECRET'}},
             {'name': 'mail', 'type': 'email', 'options': {'host': 'smtp.example.test', 'from_address': 'a@example.test',
                                                           'to': ['b@example.test']}}]
ISSUE_ROUTES = [{'when': {'days_left_max': 7}, 'notifier': 'pager'},
                {'when': {'days_left_max': 30}, 'notifier': 'chat'},
                {'notifier': 'mail', 'digest': True}]


def _finding(name, days):
    return Event('expiring' if days >= 0 else 'expired', name, details={'days_left': days})


def _names(plan, notifier, how):
    return [e.name for e in plan[notifier][how]]


def test_all_matching_routes_as_the_issue_example():
    d = dispatch.Dispatcher(NOTIFIERS, ISSUE_ROUTES)
    plan = d.plan([_finding('a', 5), _finding('b', 21), _finding('c', 80), _finding('d', -2)])
    assert _names(plan, 'pager', 'single') == ['a', 'd']
    assert _names(plan, 'chat', 'single') == ['a', 'b', 'd']
    assert _names(plan, 'mail', 'digest') == ['a', 'b', 'c', 'd'] and plan['mail']['single'] == []


def test_stop_makes_a_rule_first_match():
    routes = [dict(ISSUE_ROUTES[0], stop=True)] + ISSUE_ROUTES[1:]
    plan = dispatch.Dispatcher(NOTIFIERS, routes).plan([_finding('a', 5), _finding('b', 21)])
    assert _names(plan, 'pager', 'single') == ['a']
    assert _names(plan, 'chat', 'single') == ['b'] and _names(plan, 'mail', 'digest') == ['b']


def test_one_message_per_notifier_even_when_two_rules_match():
    routes = [{'notifier': 'chat'}, {'when': {'kinds': ['expiring']}, 'notifier': 'chat'}]
    plan = dispatch.Dispatcher(NOTIFIERS, routes).plan([_finding('a', 5)])
    assert _names(plan, 'chat', 'single') == ['a']


@pytest.mark.parametrize('event, severity', [
    (_finding('x', -1), 'critical'), (_finding('x', 7), 'critical'), (_finding('x', 8), 'warning'),
    (_finding('x', 30), 'warning'), (_finding('x', 31), 'info'), (Event('failed', 'x'), 'error'),
    (Event('rolled_back', 'x', target='nginx'), 'error'), (Event('issued', 'x'), 'info'),
    (Event('revoked', 'x'), 'warning')])
def test_severity(event, severity):
    assert common.severity_of(event) == severity


def test_refusals_name_the_option():
    with pytest.raises(ConfigError) as info:
        dispatch.Dispatcher(NOTIFIERS, [{'notifier': 'chatt'}])
    assert info.value.option == 'routes[0].notifier' and 'did you mean chat' in str(info.value)
    with pytest.raises(ConfigError) as info:
        dispatch.Dispatcher([dict(NOTIFIERS[0], type='pagerdty')])
    assert info.value.option == 'notifiers[0].type' and 'did you mean pagerduty' in str(info.value)
    with pytest.raises(ConfigError) as info:
        dispatch.Dispatcher(NOTIFIERS, [{'notifier': 'chat', 'when': {'days_left_maxx': 3}}])
    assert info.value.option == 'routes[0].when.days_left_maxx'


def test_redaction():
    assert common.redact_url('https://hooks.slack.com/services/T/B/XYZ') == 'https://hooks.slack.com/…'
    assert common.redact_url('https://example.test') == 'https://example.test/'
    text = common.scrub('failed: https://user:pw@hooks.example.test/services/T/B/XYZ?x=1 key rk-secret', ['rk-secret'])
    assert text == 'failed: https://hooks.example.test/… key ********'


def test_no_notifier_code_on_a_call_without_notifiers():
    code = ('import sys\n'
            'import ansible_collections.certforge.pki.plugins.module_utils.certificate_batch\n'
            'import ansible_collections.certforge.pki.plugins.module_utils.certificate\n'
            'print(sorted(m for m in sys.modules if ".notifiers" in m))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                         env={'PYTHONPATH': ':'.join(sys.path)})
    assert out.stdout.strip() == '[]', out.stdout + out.stderr
