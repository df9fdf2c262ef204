# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ARI (renewalInfo) and profiles against a real acme2certifier 0.46.3 on 127.0.0.1."""

from pathlib import Path

import pytest

import certforge_acme_servers as servers   # loaded by conftest.py  # pylint: disable=import-error

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(not (HERE.parents[2] / 'plugins' / 'modules' / 'acme_certificate.py').exists(),
                                reason='the acme_certificate module is not in this tree yet')

MODULE = 'certforge.pki.acme_certificate'
CONTACT = ['mailto:ops@example.test']     # acme2certifier refuses accounts without one


def _lifetime_days(path):
    cert = servers.load_cert(path)[0]
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).days


def test_ari_window_drives_ca_advised_renewal(a2c, acme):
    task = acme.task(a2c, ['ari.example.test'], name='issue', renewal_info=True,
                     http01_listen_port=servers.free_port(), contact=CONTACT)
    first = acme.run(task)
    assert first.rc == 0, str(first)
    assert first.task('issue')['status'] == 'issued'
    cert_path = task[MODULE]['certificate_path']
    status, info = a2c.renewal_info(Path(cert_path).read_text())
    assert status == 200 and 'suggestedWindow' in info, info
    first_serial = servers.load_cert(cert_path)[0].serial_number

    quiet = acme.run(task)          # window starts at 66 % of the lifetime: nothing due
    assert quiet.rc == 0, str(quiet)
    assert quiet.task('issue')['status'] == 'valid' and quiet.task('issue')['renewal_reasons'] == []

    try:
        a2c.reconfigure({'Renewalinfo': {'renewal_force': 'True'}})   # window [now-364 d, now+1 d]
        task[MODULE]['acme_directory'] = a2c.directory_url
        due = acme.run(task)
        assert due.rc == 0, str(due)
        result = due.task('issue')
        assert result['status'] == 'issued', result
        assert result['renewal_reasons'] == ['ca_advised'], result
        assert servers.load_cert(cert_path)[0].serial_number != first_serial
    finally:
        a2c.reconfigure({})


def test_profile_listed_in_meta_profiles_is_used(a2c, acme):
    task = acme.task(a2c, ['short.example.test'], name='issue', profile='shortlived',
                     http01_listen_port=servers.free_port(), contact=CONTACT)
    result = acme.run(task)
    assert result.rc == 0, str(result)
    assert _lifetime_days(task[MODULE]['certificate_path']) == servers.A2C_PROFILE_DAYS['shortlived']


def test_unknown_profile_is_refused_naming_the_option(a2c, acme):
    task = acme.task(a2c, ['noprofile.example.test'], name='issue', profile='no-such-profile',
                     http01_listen_port=servers.free_port(), contact=CONTACT)
    result = acme.run(dict(task, ignore_errors=True))
    assert result.status('issue') == 'ignored', str(result)
    message = result.task('issue')['msg']
    assert 'profile' in message and 'no-such-profile' in message, message
    assert 'Traceback' not in result.stdout + result.stderr
