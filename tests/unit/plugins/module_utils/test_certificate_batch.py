# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_batch: many requests (of many hosts) in one controller-side call through
core.issue, each as the certificate module would; and certificate_request's ``directory``."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils import certificate_batch as batch
from ansible_collections.certforge.pki.plugins.module_utils import key_request
from ansible_collections.certforge.pki.plugins.module_utils import local_ca_modules as lcm
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError


class Ctx:
    def __init__(self, params, spec, check_mode=False):
        from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
        res = ArgumentSpecValidator(**spec.kwargs()).validate(params)
        assert not res.error_messages, res.error_messages
        self.params = res.validated_parameters
        spec.check(self.params, check_mode=check_mode)
        self.check_mode = check_mode
        self.diff = False
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


def make_csr(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def ca(tmp_path):
    lcm.execute_local_ca(Ctx(dict(path=str(tmp_path / 'root'), common_name='Test Root CA'), lcm.LOCAL_CA_SPEC))
    return str(tmp_path / 'root')


def run(tmp_path, ca, requests, check_mode=False, workers=1):
    params = dict(issuer='local_ca', issuer_options={'ca_path': ca}, requests=requests,
                  order_store=str(tmp_path / 'orders'), max_workers=workers)
    return batch.execute(Ctx(params, batch.SPEC, check_mode=check_mode))


@pytest.mark.parametrize('workers', [1, 4])
def test_many_hosts_one_call_then_noop(tmp_path, ca, workers):
    requests = [dict(name='h%d' % i, host='host%d' % i, csr=make_csr('h%d.example.test' % i), item=[{'n': i}, None])
                for i in range(6)]
    first = run(tmp_path, ca, requests, workers=workers)
    assert first['changed'] and first['issued'] == 6 and first['failed_requests'] == 0
    assert [r['host'] for r in first['results']] == ['host%d' % i for i in range(6)]
    assert [r['item'][0]['n'] for r in first['results']] == list(range(6))
    assert len(set(r['serial'] for r in first['results'])) == 6
    for req, res in zip(requests, first['results']):
        req['current_certificate'] = res['certificate']
    second = run(tmp_path, ca, requests, workers=workers)
    assert not second['changed'] and second['issued'] == 0
    assert [r['serial'] for r in second['results']] == [r['serial'] for r in first['results']]


def test_same_name_on_two_hosts_is_issued_once(tmp_path, ca):
    csr = make_csr('shared.example.test')
    out = run(tmp_path, ca, [dict(name='shared', host='a', csr=csr), dict(name='shared', host='b', csr=csr)])
    serials = [r['serial'] for r in out['results']]
    assert serials[0] == serials[1]
    assert sum(1 for r in out['results'] if r.get('changed')) >= 1


def test_a_failing_request_does_not_stop_the_others(tmp_path, ca):
    out = run(tmp_path, ca, [dict(name='bad', host='a', csr=make_csr('a.example.test'), issuer='nope'),
                             dict(name='good', host='b', csr=make_csr('b.example.test'))])
    bad, good = out['results']
    assert bad['failed'] and bad['error_option'] == 'issuer' and 'local_ca' in bad['msg']
    assert good['status'] == 'issued' and out['failed_requests'] == 1


def test_check_mode_and_missing_csr(tmp_path, ca):
    out = run(tmp_path, ca, [dict(name='new', host='a', csr=None), dict(name='www', host='a', csr=make_csr('w.test'))],
              check_mode=True)
    skipped, planned = out['results']
    assert skipped['skipped'] and not skipped['changed']
    assert planned['changed'] and planned['renewal_reasons'] == ['missing'] and 'certificate' not in planned
    assert not os.path.exists(str(tmp_path / 'orders')) or not os.listdir(str(tmp_path / 'orders'))


# -- certificate_request: directory ----------------------------------------------------------------

def kr_params(**kwargs):
    out = dict((name, None) for name in key_request.REQUEST_OPTIONS)
    out.update(key_request.DEFAULTS)
    out.update(requests=None, directory=None, directory_mode='0755')
    out.update(kwargs)
    return out


def test_directory_made_before_the_key(tmp_path):
    d = tmp_path / 'a' / 'certs'
    p = kr_params(directory=str(d), requests=[dict(privatekey_path=str(d / 'w.key'), csr_path=str(d / 'w.csr'),
                                                   common_name='w.test', meta={'name': 'w'})])
    key_request.SPEC.check(p)
    out = key_request.run(p)
    assert out['changed'] and out['directory']['changed_reasons'] == ['directory_created']
    assert stat.S_IMODE(os.stat(str(d)).st_mode) == 0o755 and (d / 'w.key').exists()
    assert out['results'][0]['meta'] == {'name': 'w'}
    again = key_request.run(p)
    assert not again['changed'] and not again['directory']['changed']


def test_directory_check_mode_writes_nothing(tmp_path):
    d = tmp_path / 'certs'
    p = kr_params(directory=str(d), requests=[dict(privatekey_path=str(d / 'w.key'), common_name='w.test')])
    out = key_request.run(p, check_mode=True)
    assert out['changed'] and out['directory']['changed_reasons'] == ['directory_created']
    assert not d.exists()


def test_directory_that_is_a_file_changes_nothing(tmp_path):
    f = tmp_path / 'file'
    f.write_text('x')
    p = kr_params(directory=str(f), requests=[dict(privatekey_path=str(tmp_path / 'w.key'), common_name='w.test')])
    with pytest.raises(ConfigError) as exc:
        key_request.run(p)
    assert exc.value.option == 'directory'
    assert sorted(os.listdir(str(tmp_path))) == ['file']


def test_bad_request_does_not_make_the_directory(tmp_path):
    d = tmp_path / 'certs'
    p = kr_params(directory=str(d), requests=[dict(privatekey_path=str(d / 'w.key'), common_name='w.test',
                                                   key_usage=['noSuchUsage'])])
    with pytest.raises(ConfigError):
        key_request.run(p)
    assert not d.exists()


def test_refuse_wins_and_changes_nothing(tmp_path):
    d = tmp_path / 'certs'
    p = kr_params(directory=str(d) + '/\x00x', refuse=['certificate_dir: must be an absolute path'])
    with pytest.raises(ConfigError) as exc:
        key_request.SPEC.check(p)
    assert str(exc.value) == 'certificate_dir: must be an absolute path'
    with pytest.raises(ConfigError):
        key_request.run(p)
    assert os.listdir(str(tmp_path)) == []
