"""certificate_report end to end: a fixture fleet (three hosts' discovery results, TLS scans of
three endpoints, an order store and a local CA filled by the real certificate and local_ca
modules) merged through real ansible-playbook runs, then the page opened in headless Chromium
(Playwright driving Debian's chromium): no console error, no request, the right rows, counts,
chart bars and per-host counts, filtering and sorting by clicking and typing, and a subject made
to break out of the page staying text."""

import csv
import datetime
import io
import json
import os
import re
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ENV = {'ANSIBLE_DISPLAY_TRACEBACK': 'error'}
EXCEPTION_MARKS = ('Task failed: Module failed', 'TypeError:', 'KeyError:', 'AttributeError:', 'ValueError:',
                   'unexpected failure')
EXCEPTION_LINE = re.compile(r'^\s*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)):', re.M)
HANDLED = ('AnsibleTaskError', 'AnsibleActionCapturedError', 'AnsibleModuleCapturedError', 'AnsibleActionFail',
           'ConfigError', 'AnsibleError')
OUR_FRAME = re.compile(r'File "[^"]*(ansible_collections/certforge/|/plugins/(module_utils|action|modules)/)')
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / 'tests' / 'output' / 'report'
CHROMIUM = '/usr/bin/chromium'
NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
EVIL = '</script><img src=x onerror=window.__pwned=1>'


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn, key, issuer=None, issuer_key=None, days_left=60, ca=False, sans=None):
    """A certificate that ends ``days_left`` days and 12 hours from NOW (so ``days_left`` is
    exactly that number for the whole test run); negative for one that has expired."""
    end = NOW + datetime.timedelta(days=days_left, hours=12)
    start = min(NOW, end) - datetime.timedelta(days=30)
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(issuer.subject if issuer is not None else _name(cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _fp(cert, colons=True):
    raw = cert.fingerprint(hashes.SHA256())
    return ':'.join('%02X' % b for b in raw) if colons else raw.hex()


def _facts(cert, path=None, colons=True):
    """A certificate as certificate_discovery (and, without path, tls_scan) reports it."""
    end = cert.not_valid_after_utc
    facts = {
        'subject': cert.subject.rfc4514_string(), 'issuer': cert.issuer.rfc4514_string(),
        'serial': '%X' % cert.serial_number, 'fingerprint_sha256': _fp(cert, colons),
        'not_after': end.strftime('%Y-%m-%dT%H:%M:%SZ'),
        'days_left': round((end - NOW).total_seconds() / 86400.0, 2),
        'self_signed': cert.subject == cert.issuer, 'is_ca': cert.extensions.get_extension_for_class(
            x509.BasicConstraints).value.ca,
    }
    try:
        facts['sans'] = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
    except x509.ExtensionNotFound:
        facts['sans'] = []
    if path:
        facts.update(path=path, key_match=None, managed=False)
    return facts


class Fleet:
    """The fixture fleet and what the report must say about it."""

    def __init__(self):
        root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _cert('Fleet Root CA', root_key, days_left=3000, ca=True)
        inter_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = _cert('Fleet Issuing CA', inter_key, self.root, root_key, days_left=400, ca=True)
        leaf = {}
        for cn, days in (('www.fleet.test', 5), ('api.fleet.test', 20), ('old.fleet.test', -3),
                         ('db.fleet.test', 60), ('mail.fleet.test', 45)):
            leaf[cn] = _cert(cn, ec.generate_private_key(ec.SECP256R1()), self.inter, inter_key, days_left=days,
                             sans=[cn])
        self.leaf = leaf
        evil_key = ec.generate_private_key(ec.SECP256R1())
        self.evil = _cert(EVIL, evil_key, days_left=200, sans=['evil.fleet.test'])
        www = leaf['www.fleet.test']
        self.discovery = {
            'web1': {'changed': False, 'certificates': [
                _facts(www, '/etc/ssl/certs/www.crt'),
                _facts(leaf['api.fleet.test'], '/etc/ssl/certs/api.crt'),
                _facts(self.inter, '/etc/ssl/certs/chain.pem')]},
            # the same www certificate on a second host, its fingerprint written without colons
            'web2': {'changed': False, 'certificates': [
                _facts(www, '/srv/www/tls.crt', colons=False),
                _facts(leaf['old.fleet.test'], '/srv/www/old.crt')]},
            'db1': {'changed': False, 'certificates': [
                _facts(leaf['db.fleet.test'], '/etc/pki/db.crt'),
                _facts(self.evil, '/etc/pki/self.crt')]},
            'down1': {'unreachable': True, 'msg': 'Failed to connect to the host via ssh'},
        }
        self.scans = [{'changed': False, 'endpoints': [
            {'host': '127.0.0.1', 'port': 8443, 'sni': 'www.fleet.test', 'protocol': 'TLSv1.3',
             'cipher': 'TLS_AES_256_GCM_SHA384', 'chain': [_facts(www), _facts(self.inter)],
             'problems': ['expires in 5 days']},
            {'host': '127.0.0.1', 'port': 9443, 'sni': 'mail.fleet.test', 'protocol': 'TLSv1.3',
             'cipher': 'TLS_AES_128_GCM_SHA256', 'chain': [_facts(leaf['mail.fleet.test'])], 'problems': []},
            {'host': '127.0.0.1', 'port': 10443, 'sni': None, 'chain': [],
             'problems': ['connection refused'], 'error': 'connection refused'},
        ]}]

    def expected(self, app_days_left):
        """rows (by common name -> (days_left, bucket, status, hosts, number of locations))."""
        return {
            'www.fleet.test': (5, 'le7', 'critical', ['127.0.0.1', 'web1', 'web2'], 3),
            'api.fleet.test': (20, 'le30', 'warning', ['web1'], 1),
            'old.fleet.test': (-3, 'expired', 'expired', ['web2'], 1),
            'db.fleet.test': (60, 'le90', 'ok', ['db1'], 1),
            'mail.fleet.test': (45, 'le90', 'ok', ['127.0.0.1'], 1),
            'Fleet Issuing CA': (400, 'later', 'ok', ['127.0.0.1', 'web1'], 2),
            EVIL: (200, 'later', 'ok', ['db1'], 1),
            'app.fleet.test': (app_days_left, 'le90', 'ok', [], 2),
            'Fleet Local CA': (None, 'later', 'ok', [], 1),
        }


def report_play(args, name='report'):
    return [{'name': 'certificate report', 'hosts': 'localhost', 'gather_facts': False,
             'tasks': [{'name': name, 'certforge.pki.certificate_report': args, 'register': 'out'}]}]


def no_exception(result):
    """No exception of ours: with ANSIBLE_DISPLAY_TRACEBACK=error ansible-core prints its own
    frames for every failed task, so what counts is a frame of this collection, a Python error
    class or the marks of a crashed module."""
    text = result.stdout + result.stderr
    for mark in EXCEPTION_MARKS:
        assert mark not in text, result
    assert not OUR_FRAME.search(text), result
    raised = [t for t in EXCEPTION_LINE.findall(text) if t.split('.')[-1] not in HANDLED]
    assert not raised, (raised, str(result))


@pytest.fixture(scope='module')
def fleet():
    return Fleet()


@pytest.fixture
def issued(run_playbook, tmp_path):
    """A local CA and an order store with one certificate issued through the real modules."""
    ca_path, store, keys = tmp_path / 'ca', tmp_path / 'orders', tmp_path / 'host'
    keys.mkdir()
    result = run_playbook([{
        'name': 'issue', 'hosts': 'localhost', 'gather_facts': False,
        'tasks': [
            {'name': 'ca', 'certforge.pki.local_ca': {'path': str(ca_path), 'common_name': 'Fleet Local CA'}},
            {'name': 'csr', 'certforge.pki.certificate_request': {
                'privatekey_path': str(keys / 'app.key'), 'common_name': 'app.fleet.test',
                'certificate_path': str(keys / 'app.crt')}, 'register': 'req'},
            {'name': 'issue', 'certforge.pki.certificate': {
                'name': 'app', 'issuer': 'local_ca', 'issuer_options': {'ca_path': str(ca_path)},
                'csr': '{{ req.csr }}', 'validity_days': 50, 'order_store': str(store)}},
        ]}], env=ENV)
    assert result.rc == 0, result
    no_exception(result)
    # days_left is whole days: in the very second of issuance the 50-day certificate has 50 left,
    # a second later 49.  Wait (at most a second) until that second has passed, so that two
    # reports of the same data in a test see the same days_left.
    issued_at = x509.load_pem_x509_certificate(result.task('issue')['certificate'].encode()).not_valid_after_utc
    boundary = issued_at.timestamp() - 50 * 86400 + 1
    deadline = time.monotonic() + 5
    while time.time() < boundary and time.monotonic() < deadline:
        time.sleep(0.05)
    return ca_path, store


def _args(fleet, out, issued, **extra):
    ca_path, store = issued
    args = {'discovery': fleet.discovery, 'scans': fleet.scans, 'order_store': str(store),
            'local_ca_path': str(ca_path), 'html_path': str(out / 'report.html'),
            'json_path': str(out / 'report.json'), 'csv_path': str(out / 'report.csv'),
            'title': 'Fleet <certificates> & more'}
    args.update(extra)
    return args


def _playwright_or_skip():
    """Playwright and Debian's chromium; in CI (CI=true) their absence is a failure."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright  # pylint: disable=unused-import
    except ImportError:
        missing.append('the Python package playwright')
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(CHROMIUM)
    if missing:
        reason = '%s missing (make deps installs them)' % ' and '.join(missing)
        if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    return sync_playwright


def _rows_of(result):
    return dict((r['common_name'], r) for r in result['certificates'])


# ---------------------------------------------------------------------------------------------


def test_report_merges_the_fleet_and_is_stable(fleet, issued, run_playbook, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    result = run_playbook(report_play(_args(fleet, out, issued)), env=ENV)
    assert result.rc == 0, result
    no_exception(result)
    rep = result.task('report')
    assert rep['changed'] is True
    rows = _rows_of(rep)
    expected = fleet.expected(app_days_left=rows['app.fleet.test']['days_left'])
    assert 48 <= rows['app.fleet.test']['days_left'] <= 50   # 50: report in the second of issuance
    assert sorted(rows) == sorted(expected)
    for cn, (days, bucket, status, hosts, nloc) in expected.items():
        row = rows[cn]
        if days is not None:
            assert row['days_left'] == days, (cn, row)
        assert (row['bucket'], row['status'], row['hosts'], len(row['locations'])) == (bucket, status, hosts, nloc), \
            (cn, row)
    www = rows['www.fleet.test']
    assert www['fingerprint_sha256'] == _fp(fleet.leaf['www.fleet.test'])
    assert sorted((loc['kind'], loc.get('host'), loc.get('path') or loc.get('port')) for loc in www['locations']) == [
        ('endpoint', '127.0.0.1', 8443), ('file', 'web1', '/etc/ssl/certs/www.crt'), ('file', 'web2', '/srv/www/tls.crt')]
    assert www['problems'] == ['expires in 5 days']
    assert sorted(loc['kind'] for loc in rows['app.fleet.test']['locations']) == ['local_ca', 'order_store']
    assert rows['app.fleet.test']['managed'] is True
    assert rep['summary']['by_bucket'] == {'expired': 1, 'le7': 1, 'le30': 1, 'le90': 3, 'later': 3, 'unknown': 0}
    assert (rep['total'], rep['expired'], rep['critical'], rep['warning']) == (9, 1, 1, 1)
    assert sorted(r['common_name'] for r in rep['attention']) == ['api.fleet.test', 'old.fleet.test', 'www.fleet.test']
    assert {s.get('host') for s in rep['left_out']} == {'down1', '127.0.0.1'}
    assert rep['sources']['endpoints'] == 3 and rep['sources']['endpoints_failed'] == 1

    # JSON and CSV hold the same rows; files are 0644
    data = json.loads((out / 'report.json').read_text())
    assert [r['fingerprint_sha256'] for r in data['certificates']] == [r['fingerprint_sha256'] for r in rep['certificates']]
    table = list(csv.DictReader(io.StringIO((out / 'report.csv').read_text())))
    assert [r['fingerprint_sha256'] for r in table] == [r['fingerprint_sha256'] or '' for r in rep['certificates']]
    assert [int(r['days_left']) for r in table] == [r['days_left'] for r in rep['certificates']]
    for name in ('report.html', 'report.json', 'report.csv'):
        assert stat.S_IMODE(os.stat(str(out / name)).st_mode) == 0o644
    html = (out / 'report.html').read_text()
    assert EVIL not in html and '<img' not in html
    assert 'Fleet &lt;certificates&gt; &amp; more' in html
    for marker in ('http://', 'https://', '//cdn', '@import', 'url('):
        assert marker not in html.replace('http://www.w3.org/2000/svg', ''), marker

    # the same data again (a later moment: only the generation time differs): nothing rewritten
    before = dict((n, (out / n).stat().st_mtime_ns) for n in ('report.html', 'report.json', 'report.csv'))
    again = run_playbook(report_play(_args(fleet, out, issued)), env=ENV, diff=True)
    assert again.rc == 0, again
    assert again.task('report')['changed'] is False
    assert all(not f['changed'] for f in again.task('report')['files'].values())
    assert before == dict((n, (out / n).stat().st_mtime_ns) for n in ('report.html', 'report.json', 'report.csv'))

    # check mode with other thresholds: would change, writes nothing; --diff shows the data
    check = run_playbook(report_play(_args(fleet, out, issued, warn_days=60)), env=ENV, check=True, diff=True)
    assert check.rc == 0, check
    crep = check.task('report')
    assert crep['changed'] is True
    assert before == dict((n, (out / n).stat().st_mtime_ns) for n in ('report.html', 'report.json', 'report.csv'))
    assert (out / 'report.html').read_text() == html
    assert len(crep['diff']) == 3 and all(d['before'] != d['after'] for d in crep['diff'])
    assert '"status": "warning"' in crep['diff'][0]['after']


def test_report_page_in_chromium(fleet, issued, run_playbook, tmp_path):
    sync_playwright = _playwright_or_skip()
    out = tmp_path / 'out'
    out.mkdir()
    result = run_playbook(report_play(_args(fleet, out, issued)), env=ENV)
    assert result.rc == 0, result
    rep = result.task('report')
    rows = _rows_of(rep)
    url = (out / 'report.html').as_uri()
    months = {}
    for row in rep['certificates']:
        months[row['not_after'][:7]] = months.get(row['not_after'][:7], 0) + 1
    # the months of the fixture, counted from the certificates themselves (not from the report)
    own = {}
    for cert in (list(fleet.leaf.values()) + [fleet.inter, fleet.evil]):
        key = cert.not_valid_after_utc.strftime('%Y-%m')
        own[key] = own.get(key, 0) + 1
    for name in ('app.fleet.test', 'Fleet Local CA'):
        key = rows[name]['not_after'][:7]
        own[key] = own.get(key, 0) + 1

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console, errors, requests, failed, dialogs = [], [], [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'])
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.on('console', lambda msg: console.append((msg.type, msg.text)))
            page.on('pageerror', lambda exc: errors.append(str(exc)))
            page.on('request', lambda req: requests.append(req.url))
            page.on('requestfailed', lambda req: failed.append(req.url))
            page.on('dialog', lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            page.wait_for_selector('body[data-ready=true]', timeout=15000)

            def shown():
                return int(page.get_attribute('#shown', 'data-shown'))

            def names():
                return page.eval_on_selector_all('#certs tbody tr td.name', 'els => els.map(e => e.textContent)')

            def days():
                return page.eval_on_selector_all('#certs tbody tr', 'els => els.map(e => e.dataset.daysLeft)')

            assert shown() == 9 and page.locator('#certs tbody tr').count() == 9
            assert page.text_content('#total') == '9'
            # the hostile subject is text in its cell, no element, no script run
            assert EVIL in names()
            assert page.locator('img').count() == 0
            assert page.evaluate('window.__pwned') is None
            assert page.title() == 'Fleet <certificates> & more'

            # counts by days-left bucket, by issuer, the timeline bars, per host
            buckets = dict(page.eval_on_selector_all(
                '#buckets .card', 'els => els.map(e => [e.dataset.bucket, +e.querySelector(".count").dataset.count])'))
            assert buckets == {'expired': 1, 'le7': 1, 'le30': 1, 'le90': 3, 'later': 3}
            issuers = dict(page.eval_on_selector_all(
                '#issuers tbody tr', 'els => els.map(e => [e.dataset.issuer, +e.children[1].dataset.count])'))
            local_ca = rows['Fleet Local CA']['issuer']
            assert 'CN=Fleet Local CA' in local_ca
            assert issuers == {'CN=Fleet Issuing CA': 5, 'CN=Fleet Root CA': 1, local_ca: 2, rows[EVIL]['issuer']: 1}
            bars = dict(page.eval_on_selector_all('#timeline g.bar', 'els => els.map(e => [e.dataset.month, +e.dataset.count])'))
            assert bars == own == months
            hosts = dict(page.eval_on_selector_all(
                '#hosts tbody tr', 'els => els.map(e => [e.dataset.host, +e.children[1].dataset.count])'))
            assert hosts == {'127.0.0.1': 3, 'web1': 3, 'web2': 2, 'db1': 2}

            # sorting: days left ascending at first; a click sorts descending; name ascending
            ascending = [int(d) for d in days()]
            assert ascending == sorted(ascending) and ascending[0] == -3
            page.click('#certs th[data-key=days_left]')
            descending = [int(d) for d in days()]
            assert descending == sorted(ascending, reverse=True)
            assert page.get_attribute('#certs th[data-key=days_left]', 'aria-sort') == 'descending'
            page.click('#certs th[data-key=common_name]')
            assert names() == sorted(names(), key=str.lower)
            assert names()[0] == EVIL  # '<' sorts before letters

            # filtering: text, days-left bucket, status, host (selector and host table)
            page.fill('#filter', 'mail.fleet')
            assert names() == ['mail.fleet.test'] and shown() == 1
            page.fill('#filter', '/srv/www')   # a path: both files on web2
            assert sorted(names()) == ['old.fleet.test', 'www.fleet.test']
            page.fill('#filter', '')
            page.select_option('#bucket-filter', 'le90')
            assert sorted(names()) == ['app.fleet.test', 'db.fleet.test', 'mail.fleet.test']
            page.select_option('#bucket-filter', '')
            page.select_option('#status-filter', 'critical')
            assert names() == ['www.fleet.test']
            page.select_option('#status-filter', '')
            page.select_option('#host-filter', 'web2')
            assert sorted(names()) == ['old.fleet.test', 'www.fleet.test']
            page.click('#hosts tbody tr[data-host=db1]')
            assert sorted(names()) == sorted(['db.fleet.test', EVIL])
            page.select_option('#host-filter', '')
            page.click('#buckets .card[data-bucket=expired]')
            assert names() == ['old.fleet.test']
            page.click('#buckets .card[data-bucket=expired]')
            assert shown() == 9
            page.screenshot(path=str(ARTIFACTS / 'report.png'), full_page=True)
        finally:
            browser.close()
    assert errors == [], errors
    assert [c for c in console if c[0] in ('error', 'warning')] == [], console
    assert failed == [], failed
    assert requests == [url], requests
    assert dialogs == []
    assert (ARTIFACTS / 'report.png').stat().st_size > 10000


@pytest.mark.parametrize('case', ['missing_dir', 'html_is_dir', 'discovery_string', 'discovery_item',
                                  'discovery_no_certificates', 'scans_not_list', 'scans_bad_chain', 'as_of',
                                  'order_store_missing', 'critical_above_warn', 'warn_days_text', 'mode_world_writable'])
def test_report_bad_input(case, fleet, run_playbook, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    args = {'discovery': fleet.discovery, 'scans': fleet.scans, 'json_path': str(out / 'r.json'),
            'html_path': str(out / 'r.html')}
    option = {
        'missing_dir': 'html_path', 'html_is_dir': 'html_path', 'discovery_string': 'discovery',
        'discovery_item': 'discovery[1]', 'discovery_no_certificates': 'discovery[web1]', 'scans_not_list': 'scans',
        'scans_bad_chain': 'scans[0].endpoints[0]', 'as_of': 'as_of', 'order_store_missing': 'order_store',
        'critical_above_warn': 'critical_days', 'warn_days_text': 'warn_days', 'mode_world_writable': 'mode'}[case]
    if case == 'missing_dir':
        args['html_path'] = str(out / 'nowhere' / 'r.html')
    elif case == 'html_is_dir':
        args['html_path'] = str(out)
    elif case == 'discovery_string':
        args['discovery'] = 'found'
    elif case == 'discovery_item':
        args['discovery'] = [{'certificates': [], 'host': 'a'}, 42]
    elif case == 'discovery_no_certificates':
        args['discovery'] = {'web1': {'changed': False, 'files': []}}
    elif case == 'scans_not_list':
        args['scans'] = 'scan'
    elif case == 'scans_bad_chain':
        args['scans'] = [{'endpoints': [{'host': 'x', 'port': 1, 'chain': 'pem'}]}]
    elif case == 'as_of':
        args['as_of'] = 'yesterday'
    elif case == 'order_store_missing':
        args['order_store'] = str(tmp_path / 'no-store')
    elif case == 'critical_above_warn':
        args.update(critical_days=40, warn_days=30)
    elif case == 'warn_days_text':
        args['warn_days'] = 'thirty'
    elif case == 'mode_world_writable':
        args['mode'] = '0666'
    result = run_playbook(report_play(args), env=ENV)
    assert result.rc != 0, result
    no_exception(result)
    rep = result.task('report')
    assert result.status('report') == 'failed', result
    if case == 'warn_days_text':      # ansible-core's own type check
        assert "'warn_days'" in rep['msg'], rep['msg']
    else:
        assert rep['msg'].startswith(option + ':') or ('%s:' % option) in rep['msg'], rep['msg']
        assert 'Fix:' in rep['msg'], rep['msg']
    assert sorted(os.listdir(str(out))) == [], os.listdir(str(out))
    assert not (tmp_path / 'no-store').exists()


def test_report_postgres_url_password_never_shown(fleet, run_playbook, tmp_path):
    """A postgresql:// order store whose server is not there: the error names order_store and
    the password appears nowhere in the output."""
    secret = 'S3cr3t-pw-for-report'
    url = 'postgresql://certforge:%s@127.0.0.1:1/orders' % secret
    result = run_playbook(report_play({'discovery': fleet.discovery, 'order_store': url,
                                       'json_path': str(tmp_path / 'r.json')}), env=ENV)
    assert result.rc != 0, result
    rep = result.task('report')
    assert secret not in result.stdout + result.stderr + json.dumps(rep)
    assert 'order_store' in rep['msg'], rep['msg']
    assert not (tmp_path / 'r.json').exists()


# ---------------------------------------------------------------------------------------------
# the nightly playbook: real certificate_discovery on two local hosts, real tls_scan against a
# real TLS listener, the report, and notify to a real webhook receiver
# ---------------------------------------------------------------------------------------------

class _TLSListener:
    """A TLS listener on 127.0.0.1 (a free port) serving one chain; handshakes only."""

    def __init__(self, chain_pem, key_pem, directory):
        import socket
        import ssl
        import threading
        directory.mkdir(parents=True, exist_ok=True)
        (directory / 'chain.pem').write_bytes(chain_pem)
        (directory / 'key.pem').write_bytes(key_pem)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(directory / 'chain.pem'), str(directory / 'key.pem'))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import ssl
        while True:
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            try:
                conn.settimeout(5)
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    def stop(self):
        import socket
        try:
            self.sock.shutdown(socket.SHUT_RDWR)   # wakes accept(): close() alone keeps it listening
        except OSError:
            pass
        self.sock.close()
        self.thread.join(10)


class _Webhook:
    """An HTTP receiver on 127.0.0.1 (a free port) that keeps every POST body."""

    def __init__(self):
        import http.server
        import threading
        bodies = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the name http.server calls
                length = int(self.headers.get('Content-Length') or 0)
                bodies.append(self.rfile.read(length).decode('utf-8', 'replace'))
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def tls_listener(fleet, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    # a www certificate of its own (the fleet's www key is not kept): served and on web1's disk
    www = _cert('www.fleet.test', key, days_left=5, sans=['www.fleet.test'])
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    listener = _TLSListener(www.public_bytes(serialization.Encoding.PEM), key_pem, tmp_path / 'tls')
    try:
        yield listener, www
    finally:
        listener.stop()


@pytest.fixture
def webhook():
    hook = _Webhook()
    try:
        yield hook
    finally:
        hook.stop()


def test_fleet_nightly_playbook(fleet, tls_listener, webhook, run_playbook, tmp_path):
    import socket
    import sys
    import yaml
    listener, www = tls_listener
    pem = serialization.Encoding.PEM
    web1, web2, report_dir = tmp_path / 'web1', tmp_path / 'web2', tmp_path / 'report'
    web1.mkdir()
    web2.mkdir()
    (web1 / 'www.crt').write_bytes(www.public_bytes(pem))
    (web1 / 'api.crt').write_bytes(fleet.leaf['api.fleet.test'].public_bytes(pem))
    (web2 / 'www.crt').write_bytes(www.public_bytes(pem))
    (web2 / 'old.crt').write_bytes(fleet.leaf['old.fleet.test'].public_bytes(pem))
    (web2 / 'db.crt').write_bytes(fleet.leaf['db.fleet.test'].public_bytes(pem))
    closed = socket.socket()
    closed.bind(('127.0.0.1', 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    python = sys.executable
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'fleet': {'hosts': {
        'web1': {'ansible_connection': 'local', 'ansible_python_interpreter': python,
                 'fleet_discovery_paths': [str(web1)]},
        'web2': {'ansible_connection': 'local', 'ansible_python_interpreter': python,
                 'fleet_discovery_paths': [str(web2)]},
    }}}))
    token = 'hook-token-9f8e7d'
    extra = {
        'fleet_hosts': 'fleet', 'fleet_report_dir': str(report_dir),
        'fleet_tls_targets': [{'host': '127.0.0.1', 'port': listener.port, 'sni': 'www.fleet.test'},
                              '127.0.0.1:%d' % closed_port],
        'fleet_tls_allow': ['127.0.0.0/8'],
        'fleet_notifiers': [{'name': 'hook', 'type': 'webhook',
                             'options': {'url': 'http://127.0.0.1:%d/hook?token=%s' % (webhook.port, token)}}],
        'ansible_python_interpreter': python,
    }
    playbook = REPO / 'playbooks' / 'fleet_nightly.yml'
    result = run_playbook(playbook, extra_vars=extra, inventory=str(inventory), env=ENV)
    assert result.rc == 0, result
    no_exception(result)
    rep = result.task('Write the fleet certificate report', host='web1')
    rows = _rows_of(rep)
    assert sorted(rows) == ['api.fleet.test', 'db.fleet.test', 'old.fleet.test', 'www.fleet.test'], rows.keys()
    assert rows['www.fleet.test']['hosts'] == ['127.0.0.1', 'web1', 'web2']
    assert sorted(loc['kind'] for loc in rows['www.fleet.test']['locations']) == ['endpoint', 'file', 'file']
    assert rows['db.fleet.test']['hosts'] == ['web2']
    assert (rep['expired'], rep['critical'], rep['warning']) == (1, 1, 1)
    assert rep['sources']['endpoints'] == 2 and rep['sources']['endpoints_failed'] == 1
    for name in ('certificates.html', 'certificates.json', 'certificates.csv'):
        assert (report_dir / name).stat().st_size > 0
    # the webhook got the three certificates that need attention (the receiver keeps a body
    # before it answers, and notify waits for the answers)
    notified = result.task('Notify about certificates that expire soon or have expired', host='web1')
    assert notified['delivered'] >= 1, notified
    text = '\n'.join(webhook.bodies)
    for name in ('www.fleet.test', 'api.fleet.test', 'old.fleet.test'):
        assert name in text, text[:2000]
    assert 'db.fleet.test' not in text
    assert token not in result.stdout + result.stderr + json.dumps(result.tasks, default=str)

    # the next night with nothing changed: the report is left alone
    again = run_playbook(playbook, extra_vars=extra, inventory=str(inventory), env=ENV)
    assert again.rc == 0, again
    assert again.task('Write the fleet certificate report', host='web1')['changed'] is False

    # the page made from the real modules' results, in the browser
    sync_playwright = _playwright_or_skip()
    url = (report_dir / 'certificates.html').as_uri()
    problems = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'])
        try:
            page = browser.new_page()
            page.on('pageerror', lambda exc: problems.append(str(exc)))
            page.on('console', lambda msg: problems.append(msg.text) if msg.type in ('error', 'warning') else None)
            page.on('request', lambda req: problems.append(req.url) if req.url != url else None)
            page.goto(url)
            page.wait_for_selector('body[data-ready=true]', timeout=15000)
            assert page.locator('#certs tbody tr').count() == 4
            hosts = dict(page.eval_on_selector_all(
                '#hosts tbody tr', 'els => els.map(e => [e.dataset.host, +e.children[1].dataset.count])'))
            assert hosts == {'127.0.0.1': 1, 'web1': 2, 'web2': 3}
            page.select_option('#host-filter', 'web1')
            assert sorted(page.eval_on_selector_all('#certs tbody td.name', 'els => els.map(e => e.textContent)')) == [
                'api.fleet.test', 'www.fleet.test']
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / 'fleet_nightly.png'), full_page=True)
        finally:
            browser.close()
    assert problems == [], problems
