# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_report's merge, escaping and change detection, without a playbook (the page in a
browser and the real modules are in tests/integration/test_certificate_report.py)."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import re

import pytest

from ansible_collections.certforge.pki.plugins.module_utils import report
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.report_page import render_page, script_json

AS_OF = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
FP = 'ab' * 32


class Ctx:
    def __init__(self, params, check_mode=False, diff=False):
        self.params = dict((k, v.get('default')) for k, v in report.SPEC.argument_spec.items())
        self.params.update(params)
        self.check_mode = check_mode
        self.diff = diff
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


def cert(**kwargs):
    base = dict(path='/etc/ssl/a.crt', subject='CN=a.test', issuer='CN=CA', serial='0A',
                fingerprint_sha256=FP, not_after='2026-12-21T12:00:00Z')
    base.update(kwargs)
    return base


def test_script_json_cannot_end_the_script_tag():
    text = script_json({'s': '</script><img src=x onerror=alert(1)><!-- & \u2028'})
    assert '<' not in text and '>' not in text and '&' not in text and '\u2028' not in text
    assert json.loads(text) == {'s': '</script><img src=x onerror=alert(1)><!-- & \u2028'}


def test_page_title_escaped_and_csp_hashes_match_the_inline_code():
    page = render_page({'title': '<b>"x"</b>', 'warn_days': 30, 'critical_days': 7, 'certificates': []},
                       '2026-12-01T00:00:00Z')
    assert '<title>&lt;b&gt;&quot;x&quot;&lt;/b&gt;</title>' in page
    import base64
    import hashlib
    for tag, directive in (('script', 'script-src'), ('style', 'style-src')):
        body = re.search(r'<%s>(.*?)</%s>' % (tag, tag), page, re.S).group(1)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert "%s 'sha256-%s'" % (directive, digest) in page


@pytest.mark.parametrize('value, expected', [
    (FP, FP.upper()), (':'.join(['AB'] * 32), FP.upper()), ('sha256:' + FP, FP.upper()), ('abc', None), (None, None)])
def test_normalize_fingerprint(value, expected):
    assert report.normalize_fingerprint(value) == expected


def test_rows_merge_by_fingerprint_and_by_issuer_serial():
    inv = report.Inventory(AS_OF, 30, 7)
    inv.add(dict(subject='CN=b.test', issuer='CN=CA', serial='0b', not_after='2027-01-01T00:00:00Z'),
            dict(kind='local_ca', path='/ca', serial='0B'), 'local_ca_path')
    inv.add(cert(serial='0B', fingerprint_sha256=FP), dict(kind='file', host='h1', path='/x'), 'discovery[h1]')
    inv.add(cert(serial='0B', fingerprint_sha256=FP.upper()), dict(kind='file', host='h2', path='/y'), 'discovery[h2]')
    rows = inv.finished_rows()
    assert len(rows) == 1
    assert rows[0]['fingerprint_sha256'] == ':'.join(['AB'] * 32)
    assert rows[0]['hosts'] == ['h1', 'h2'] and rows[0]['sources'] == ['file', 'local_ca']
    assert rows[0]['managed'] is True


@pytest.mark.parametrize('not_after, days, bucket, status', [
    ('2026-11-30T00:00:00Z', -1, 'expired', 'expired'),
    ('2026-12-01T05:00:00Z', 0, 'le7', 'critical'),
    ('2026-12-08T12:00:00Z', 7, 'le7', 'critical'),
    ('2026-12-09T12:00:00Z', 8, 'le30', 'warning'),
    ('2026-12-31T12:00:00Z', 30, 'le30', 'warning'),
    ('2027-03-01T12:00:00Z', 90, 'le90', 'ok'),
    ('20270401000000Z', 121, 'later', 'ok'),
])
def test_days_left_bucket_and_status(not_after, days, bucket, status):
    inv = report.Inventory(AS_OF, 30, 7)
    inv.add(cert(not_after=not_after), dict(kind='file', host='h', path='/p'), 'discovery')
    row = inv.finished_rows()[0]
    assert (row['days_left'], row['bucket'], row['status']) == (days, bucket, status)


def test_csv_cells_that_look_like_formulas_are_quoted():
    rows = [dict(report.Inventory._new_row(FP.upper()), subject='=HYPERLINK("x")', common_name='@x', days_left=-2,
                 status='expired', bucket='expired', hosts=['h'], sources=['file'],
                 locations=[dict(kind='file', host='h', path='/p')])]
    line = list(csv.DictReader(io.StringIO(report.render_csv(rows))))[0]
    assert line['subject'] == "'=HYPERLINK(\"x\")" and line['common_name'] == "'@x" and line['days_left'] == '-2'


def test_unchanged_data_is_not_rewritten_and_check_mode_writes_nothing(tmp_path):
    params = dict(discovery={'h': {'certificates': [cert()]}}, html_path=str(tmp_path / 'r.html'),
                  json_path=str(tmp_path / 'r.json'), csv_path=str(tmp_path / 'r.csv'), as_of='2026-12-01T00:00:00Z')
    first = report.execute(Ctx(params))
    assert first['changed'] and sorted(os.listdir(str(tmp_path))) == ['r.csv', 'r.html', 'r.json']
    mtimes = [os.stat(str(tmp_path / n)).st_mtime_ns for n in ('r.csv', 'r.html', 'r.json')]
    # a few hours later the same day: only the generation time differs
    later = report.execute(Ctx(dict(params, as_of='2026-12-01T05:00:00Z')))
    assert later['changed'] is False
    assert mtimes == [os.stat(str(tmp_path / n)).st_mtime_ns for n in ('r.csv', 'r.html', 'r.json')]
    check = report.execute(Ctx(dict(params, as_of='2026-12-03T00:00:00Z'), check_mode=True, diff=True))
    assert check['changed'] is True and len(check['diff']) == 3
    assert mtimes == [os.stat(str(tmp_path / n)).st_mtime_ns for n in ('r.csv', 'r.html', 'r.json')]


@pytest.mark.parametrize('discovery, option', [
    ('found', 'discovery'), (42, 'discovery'), ([{'certificates': []}], 'discovery[0]'),
    ({'h': {'certificates': 'x'}}, 'discovery[h]'), ({'h': {'certificates': [1]}}, 'discovery[h].certificates[0]'),
    ({'h': {'certificates': [cert(not_after='soon')]}}, 'discovery[h].certificates[0].not_after'),
])
def test_bad_discovery_names_the_option(discovery, option, tmp_path):
    with pytest.raises(ConfigError) as info:
        report.execute(Ctx(dict(discovery=discovery, html_path=str(tmp_path / 'r.html'))))
    assert info.value.option == option
    assert os.listdir(str(tmp_path)) == []


def test_failed_and_unreachable_hosts_are_left_out():
    result = report.execute(Ctx(dict(discovery={
        'a': {'failed': True, 'msg': 'boom'}, 'b': {'unreachable': True}, 'c': {'skipped': True},
        'd': {'certificates': [cert()], 'skipped': [{'path': '/x', 'reason': 'too_big'}]}})))
    assert [x['host'] for x in result['left_out']] == ['a', 'b', 'c']
    assert result['total'] == 1
