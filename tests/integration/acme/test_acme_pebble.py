# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""acme_certificate through real ansible-playbook runs against a real Pebble on 127.0.0.1."""

import os
from pathlib import Path

import pytest

import certforge_acme_servers as servers   # loaded by conftest.py  # pylint: disable=import-error

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(not (HERE.parents[2] / 'plugins' / 'modules' / 'acme_certificate.py').exists(),
                                reason='the acme_certificate module is not in this tree yet')


def _verify(path, pebble):
    assert servers.chains_to(path, pebble.roots_pem, pebble.intermediate_pem()), path
    return servers.load_cert(path)[0]


def _names(cert):
    from cryptography import x509
    return sorted(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))


def test_http01_builtin_listener_then_noop_sends_nothing(pebble, acme):
    task = acme.task(pebble, ['www.example.test', 'alt.example.test'], name='issue')
    first = acme.run(task)
    assert first.rc == 0, str(first)
    assert first.status('issue') == 'changed'
    cert = _verify(task['certforge.pki.acme_certificate']['certificate_path'], pebble)
    assert _names(cert) == ['alt.example.test', 'www.example.test']
    assert pebble.cert_status(cert.serial_number)['Status'] == 'Valid'

    mark = pebble.log_mark()
    second = acme.run(task)
    assert second.rc == 0, str(second)
    assert second.status('issue') == 'ok'
    assert pebble.requests_since(mark) == [], 'a no-op run must not contact the ACME server'


def test_http01_webroot_through_nginx(pebble, acme, webroot_nginx):
    server = webroot_nginx(pebble)
    task = acme.task(pebble, ['webroot.example.test'], name='issue', http01_webroot=server.webroot)
    result = acme.run(task)
    assert result.rc == 0, str(result)
    _verify(task['certforge.pki.acme_certificate']['certificate_path'], pebble)
    with open(os.path.join(server.root, 'logs', 'access.log')) as handle:
        hits = [line for line in handle if '/.well-known/acme-challenge/' in line and '" 200 ' in line]
    assert hits, 'Pebble validated through nginx'


def test_dns01_wildcard_and_apex_through_hook(pebble, acme, dns_hook):
    task = acme.task(pebble, ['dns.example.test', '*.dns.example.test'], name='issue', challenge='dns-01',
                     dns_hook_add=dns_hook['add'], dns_hook_remove=dns_hook['remove'])
    result = acme.run(task)
    assert result.rc == 0, str(result)
    cert = _verify(task['certforge.pki.acme_certificate']['certificate_path'], pebble)
    assert _names(cert) == ['*.dns.example.test', 'dns.example.test']
    calls = dns_hook['log'].read_text().split('\n')
    assert any(c.startswith('add _acme-challenge.dns.example.test.') for c in calls)
    assert any(c.startswith('remove _acme-challenge.dns.example.test.') for c in calls)


def test_eab_missing_wrong_right(pebble_eab, acme):
    missing = acme.run(dict(acme.task(pebble_eab, ['eab.example.test'], name='issue'), ignore_errors=True))
    result = missing.task('issue')
    assert missing.status('issue') == 'ignored'
    assert 'eab_kid' in result['msg'] and 'external account' in result['msg'].lower(), str(result)

    import base64
    wrong_key = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b'=').decode()
    wrong = acme.run(dict(acme.task(pebble_eab, ['eab.example.test'], name='issue', eab_kid=pebble_eab.eab_kid,
                                    eab_hmac_key=wrong_key), ignore_errors=True))
    assert wrong.status('issue') == 'ignored'
    message = wrong.task('issue')['msg']
    assert 'eab' in message.lower() or 'external account' in message.lower(), message
    assert wrong_key not in wrong.stdout + wrong.stderr + str(wrong.tasks)

    right = acme.run(acme.task(pebble_eab, ['eab.example.test'], name='issue', eab_kid=pebble_eab.eab_kid,
                               eab_hmac_key=pebble_eab.eab_hmac))
    assert right.rc == 0, str(right)
    assert pebble_eab.eab_hmac not in right.stdout + right.stderr + str(right.tasks)


def test_revoke_then_status_on_pebble(pebble, acme):
    task = acme.task(pebble, ['revoke.example.test'], name='issue')
    assert acme.run(task).rc == 0
    cert_path = task['certforge.pki.acme_certificate']['certificate_path']
    serial = _verify(cert_path, pebble).serial_number
    revoke = {'name': 'revoke', 'certforge.pki.acme_certificate_revoke':
              acme.options(pebble, certificate_path=cert_path, reason='superseded')}
    result = acme.run(revoke)
    assert result.rc == 0, str(result)
    assert result.status('revoke') == 'changed'
    assert pebble.cert_status(serial)['Status'] == 'Revoked'
    again = acme.run(revoke)
    assert again.rc == 0 and again.status('revoke') == 'ok', str(again)

    bad = acme.run(dict(revoke, **{'certforge.pki.acme_certificate_revoke':
                                   acme.options(pebble, certificate_path=cert_path, reason='no_such_reason')},
                        ignore_errors=True))
    assert bad.status('revoke') == 'ignored'
    assert 'reason' in bad.task('revoke')['msg'], bad.task('revoke')


def test_bad_nonce_storm_still_issues(pebble_nonce_storm, acme):
    mark = pebble_nonce_storm.log_mark()
    tasks = [acme.task(pebble_nonce_storm, ['storm%d.example.test' % i]) for i in range(3)]
    result = acme.run(tasks)
    assert result.rc == 0, str(result)
    for task in tasks:
        _verify(task['certforge.pki.acme_certificate']['certificate_path'], pebble_nonce_storm)
    assert pebble_nonce_storm.requests_since(mark)


def test_slow_validation_pending_then_resumed(pebble_slow, acme, dns_hook):
    # The answers must outlive the first run (Pebble validates after its sleep): dns-01 records
    # added by the hook and never removed.  Six names, each validation sleeping 0..3 s: all six
    # done within the 1 s deadline has a chance of (1/4)**6.
    names = ['slow%d.example.test' % i for i in range(6)]
    task = acme.task(pebble_slow, names, name='issue', wait_timeout=1, challenge='dns-01',
                     dns_hook_add=dns_hook['add'])
    first = acme.run(task)
    assert first.rc == 0, str(first)
    result = first.task('issue')
    assert result.get('status') == 'pending', str(result)
    assert result.get('order_id'), str(result)
    assert not os.path.exists(task['certforge.pki.acme_certificate']['certificate_path'])

    mark = pebble_slow.log_mark()
    task['certforge.pki.acme_certificate']['wait_timeout'] = 60
    second = acme.run(task)
    assert second.rc == 0, str(second)
    assert second.task('issue').get('status') == 'issued', second.task('issue')
    _verify(task['certforge.pki.acme_certificate']['certificate_path'], pebble_slow)
    assert not [r for r in pebble_slow.requests_since(mark) if 'order-plz' in r], 'resumed, not re-ordered'


def test_slow_validation_webroot_answers_survive_pending(pebble_slow, acme, webroot_nginx):
    server = webroot_nginx(pebble_slow)
    names = ['slowweb%d.example.test' % i for i in range(6)]
    task = acme.task(pebble_slow, names, name='issue', wait_timeout=1, http01_webroot=server.webroot)
    first = acme.run(task)
    assert first.rc == 0 and first.task('issue').get('status') == 'pending', str(first)
    task['certforge.pki.acme_certificate']['wait_timeout'] = 60
    second = acme.run(task)
    assert second.rc == 0 and second.task('issue').get('status') == 'issued', str(second)
    # once issued, every answer placed by either run is gone
    challenge_dir = os.path.join(server.webroot, '.well-known', 'acme-challenge')
    assert not os.path.isdir(challenge_dir) or os.listdir(challenge_dir) == []


# -- bad input --------------------------------------------------------------------------------

def _fails(acme, task):
    result = acme.run(dict(task, ignore_errors=True))
    assert result.status(task['name']) == 'ignored', str(result)
    data = result.task(task['name'])
    assert 'Traceback' not in result.stdout + result.stderr, str(result)
    return data['msg']


def test_unreachable_directory(acme):
    port = servers.free_port()

    class Gone:
        directory_url = 'https://127.0.0.1:%d/dir' % port
        ca_bundle = None
    message = _fails(acme, acme.task(Gone, ['gone.example.test'], name='issue', http01_listen_port=port))
    assert '127.0.0.1:%d' % port in message


def test_tls_error_names_the_ca_bundle_option(pebble, acme):
    task = acme.task(pebble, ['tls.example.test'], name='issue')
    del task['certforge.pki.acme_certificate']['acme_ca_bundle']
    message = _fails(acme, task)
    assert 'acme_ca_bundle' in message, message


def test_rejected_identifier(pebble, acme):
    blocked = servers.BLOCKED_NAMES[0]
    message = _fails(acme, acme.task(pebble, [blocked], name='issue'))
    assert 'rejectedIdentifier' in message or 'blocked' in message.lower(), message


def test_failed_challenge_reports_the_ca_error(pebble, acme, tmp_path):
    webroot = tmp_path / 'not-served'
    webroot.mkdir()
    message = _fails(acme, acme.task(pebble, ['unserved.example.test'], name='issue', http01_webroot=str(webroot)))
    assert 'unserved.example.test' in message and 'connection' in message.lower(), message


def test_wildcard_with_http01_is_refused_before_any_request(pebble, acme):
    mark = pebble.log_mark()
    message = _fails(acme, acme.task(pebble, ['*.wild.example.test'], name='issue', challenge='http-01'))
    assert 'challenge' in message and 'dns-01' in message, message
    assert not [r for r in pebble.requests_since(mark) if r.startswith('POST')]


def test_fresh_store_finds_the_order_in_the_account_orders_list(pebble, acme, tmp_path):
    """Every AWX job starts with an empty store: the certificate already issued for this CSR
    (the deploy never happened: no certificate on disk) comes from the account's orders list,
    not from a second newOrder."""
    task = acme.task(pebble, ['awx-fresh.example.test'], name='issue', order_store=str(tmp_path / 'job1'))
    first = acme.run(task)
    assert first.rc == 0 and first.task('issue').get('status') == 'issued', str(first)
    cert_path = task['certforge.pki.acme_certificate']['certificate_path']
    serial = _verify(cert_path, pebble).serial_number
    os.unlink(cert_path)
    mark = pebble.log_mark()
    task['certforge.pki.acme_certificate']['order_store'] = str(tmp_path / 'job2')
    second = acme.run(task)
    assert second.rc == 0, str(second)
    out = second.task('issue')
    assert out.get('status') == 'issued' and out.get('recovered'), out
    assert _verify(cert_path, pebble).serial_number == serial
    assert not [r for r in pebble.requests_since(mark) if 'order-plz' in r], 'found, not ordered again'
