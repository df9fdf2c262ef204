# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_request's kept result (plugins/module_utils/request_cache.py), through real
ansible-playbook runs on localhost.

The promise: a no-op is answered from what the last call kept, without parsing anything (shown
by a run whose Python cannot import cryptography at all), and any change of what the result was
computed from (a byte of a key, CSR or certificate, a mode, an option) makes the call plan as
usual again, with the same answer as a call that never had a cache.  No secret is ever kept.

Every test runs twice: as the controller sends the module by default (the kept-result probe in
front of the payload, the module run without ansible-core's module runtime where the probe does
not answer: plugins/plugin_utils/direct_action.py) and with the payload unchanged
(``CERTFORGE_DIRECT=0``), where the module itself, under AnsibleModule, checks what was kept.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

CACHE = '.certforge-request.json'


@pytest.fixture(params=['probe', 'module'])
def run_playbook(request, run_playbook):  # pylint: disable=redefined-outer-name
    """The conftest runner, with the controller's probe on or off."""
    env_probe = {'CERTFORGE_DIRECT': '1' if request.param == 'probe' else '0'}

    def run(playbook, **kwargs):
        kwargs['env'] = dict(env_probe, **(kwargs.get('env') or {}))
        return run_playbook(playbook, **kwargs)
    run.probe = request.param == 'probe'
    return run


def play(run_playbook, tasks, expect_rc=0):
    result = run_playbook([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}])
    if expect_rc is not None:
        assert result.rc == expect_rc, str(result)
    return Results(result)


class Results:
    def __init__(self, result):
        self.result = result

    def __getitem__(self, name):
        return self.result.task(name)

    def status(self, name):
        return self.result.status(name)


def request_task(name, **args):
    return {'name': name, 'certforge.pki.certificate_request': args}


def _requests(d):
    return [{'privatekey_path': '%s/%s.key' % (d, n), 'csr_path': '%s/%s.csr' % (d, n),
             'common_name': '%s.example.com' % n, 'certificate_path': '%s/%s.crt' % (d, n),
             'meta': {'name': n}} for n in ('www', 'api')]


@pytest.fixture
def poisoned(tmp_path):
    """A PYTHONPATH entry whose ``cryptography`` cannot be imported: a call that parses anything fails."""
    root = tmp_path / 'poison'
    (root / 'cryptography').mkdir(parents=True)
    (root / 'cryptography' / '__init__.py').write_text("raise ImportError('cryptography is poisoned for this test')\n")
    return str(root)


def _task(name, d, **extra):
    args = dict({'directory': str(d), 'requests': _requests(d)}, **extra)
    return request_task(name, **args)


def _strip(result):
    return dict((k, v) for k, v in result.items() if k not in ('invocation', 'changed', '_ansible_no_log'))


def test_noop_answered_without_cryptography_and_equal_to_a_full_run(run_playbook, tmp_path, poisoned):
    d = tmp_path / 'certs'
    first = play(run_playbook, [_task('make', d)])['make']
    assert first['changed'] is True
    kept = json.loads((d / CACHE).read_text())
    assert stat.S_IMODE(os.stat(d / CACHE).st_mode) == 0o600
    assert kept['result']['changed'] is False

    # the no-op with a Python that cannot import cryptography: only the kept result can answer
    noop_task = dict(_task('noop', d), environment={'PYTHONPATH': poisoned})
    noop = play(run_playbook, [noop_task])['noop']
    assert noop['changed'] is False, noop
    assert [r['changed_reasons'] for r in noop['results']] == [[], []]

    # the same no-op with the cache removed plans for real: the same answer
    os.unlink(d / CACHE)
    full = play(run_playbook, [_task('full', d)])['full']
    assert full['changed'] is False
    assert _strip(full) == _strip(noop)


@pytest.mark.parametrize('change', ['key_mode', 'csr_bytes', 'option', 'cache_garbage', 'cert_appears',
                                    'cert_behind_link'])
def test_any_change_plans_again(run_playbook, tmp_path, poisoned, change, test_ca):
    d = tmp_path / 'certs'
    play(run_playbook, [_task('make', d)])
    before = (d / 'www.csr').read_bytes()
    extra = {}
    if change == 'cert_behind_link':
        # certificate_path is a link to a file that is later rewritten in place (link unchanged)
        real = tmp_path / 'real.crt'
        real.write_text(test_ca.issue('www.example.com', key_pem=(d / 'www.key').read_text()).cert_pem)
        os.symlink(str(real), str(d / 'www.crt'))
        kept = play(run_playbook, [_task('read', d)])['read']
        assert kept['results'][0]['current_certificate']['key_matches'] is True
        real.write_text(test_ca.issue('www.example.com', key_pem=(d / 'www.key').read_text()).cert_pem)
    if change == 'key_mode':
        os.chmod(d / 'www.key', 0o644)
    elif change == 'csr_bytes':
        (d / 'www.csr').write_bytes(before + b'\n')
    elif change == 'option':
        extra = {'requests': [dict(r, subject_alt_names=['DNS:other.example.com']) if r['meta']['name'] == 'www'
                              else r for r in _requests(d)]}
    elif change == 'cache_garbage':
        (d / CACHE).write_text('{"key": "x", "files": [], "result": 1')
    elif change == 'cert_appears':
        # a certificate deployed into certificate_path since: read (and so parsed) by the next call
        (d / 'www.crt').write_text((d / 'www.csr').read_text())
    # with cryptography unavailable the call must fail if it does not answer from the cache: it
    # plans (parses) because the input changed
    poisoned_run = play(run_playbook, [dict(_task('after', d, **extra), environment={'PYTHONPATH': poisoned})],
                        expect_rc=None)
    status = poisoned_run.status('after')
    if change == 'cache_garbage':
        assert status == 'failed', 'a garbage cache must never answer'
        real = play(run_playbook, [_task('real', d)])['real']
        assert real['changed'] is False
        return
    assert status == 'failed', 'a changed %s was answered from the cache' % change
    assert 'cryptography' in json.dumps(poisoned_run['after'])
    real = play(run_playbook, [_task('real', d, **extra)])['real']
    www = real['results'][0]
    if change == 'key_mode':
        assert www['changed_reasons'] == ['key_mode_tightened']
        assert stat.S_IMODE(os.stat(d / 'www.key').st_mode) == 0o600
    elif change == 'csr_bytes':
        assert www['changed'] is False      # same CSR, other bytes: nothing to do, but it was read
    elif change == 'option':
        assert 'csr_san_changed' in www['changed_reasons']
    elif change == 'cert_appears':
        assert www['current_certificate']['error']
    elif change == 'cert_behind_link':
        assert www['current_certificate']['serial'] != kept['results'][0]['current_certificate']['serial']


def test_days_left_is_computed_again(run_playbook, tmp_path, test_ca):
    d = tmp_path / 'certs'
    play(run_playbook, [_task('make', d)])
    issued = test_ca.issue('www.example.com', key_pem=(d / 'www.key').read_text(), days=10)
    (d / 'www.crt').write_text(issued.cert_pem)
    first = play(run_playbook, [_task('read', d)])['read']
    assert 9 < first['results'][0]['current_certificate']['days_left'] <= 10
    assert first['results'][0]['current_certificate']['key_matches'] is True
    kept = json.loads((d / CACHE).read_text())
    kept['result']['results'][0]['current_certificate']['days_left'] = 999
    kept['result']['results'][0]['current_certificate']['expired'] = True
    (d / CACHE).write_text(json.dumps(kept, sort_keys=True))
    again = play(run_playbook, [_task('again', d)])['again']
    cert = again['results'][0]['current_certificate']
    assert 9 < cert['days_left'] <= 10 and cert['expired'] is False


def test_nothing_kept_with_a_passphrase_or_rotate_key(run_playbook, tmp_path):
    d = tmp_path / 'pass'
    task = request_task('pass', directory=str(d), requests=_requests(d), privatekey_passphrase='sekrit-7Qz')
    play(run_playbook, [task])
    assert not (d / CACHE).exists()
    d2 = tmp_path / 'rotate'
    play(run_playbook, [request_task('rotate', directory=str(d2), requests=_requests(d2), rotate_key=True)])
    assert not (d2 / CACHE).exists()
    for path in list(d.rglob('*')) + list(d2.rglob('*')):
        if path.is_file():
            assert b'sekrit-7Qz' not in path.read_bytes(), path


ROLE_PLAY = """
- name: Local CA, then the certificate role (files target)
  hosts: localhost
  gather_facts: false
  vars:
    local_ca_dir: %(ca)s
    certificate_dir: %(certs)s
    certificate_owner: root
    certificate_group: root
    certificate_issuer_options: {ca_path: %(ca)s/root}
    certificate_list:
      - {name: www, common_name: www.cache.test}
      - {name: api, common_name: api.cache.test}
  tasks:
    - name: CA
      ansible.builtin.include_role:
        name: certforge.pki.local_ca
    - name: Certificates
      ansible.builtin.include_role:
        name: certforge.pki.certificate
"""


def test_role_noop_right_after_the_first_run_parses_nothing(run_playbook, tmp_path, poisoned):
    """The deploy that wrote the certificates updated the kept result: the very next no-op of
    the role runs with a Python that cannot import cryptography on the host side."""
    if os.geteuid() != 0:
        pytest.skip('the role sets owner root')
    text = ROLE_PLAY % {'ca': tmp_path / 'ca', 'certs': tmp_path / 'certs'}
    first = run_playbook(text)
    assert first.rc == 0 and first.changed() > 0, str(first)
    kept = json.loads((tmp_path / 'certs' / CACHE).read_text())
    assert all(r['current_certificate'] and r['current_certificate']['key_matches'] for r in kept['result']['results'])
    poisoned_text = text.replace('  gather_facts: false\n', '  gather_facts: false\n  environment:\n    PYTHONPATH: %s\n'
                                 % poisoned, 1)
    noop = run_playbook(poisoned_text)
    assert noop.rc == 0 and noop.changed() == 0, str(noop)
    prepared = noop.task('certforge.pki.certificate : Make keys and CSRs on the host and read the certificates in use')
    assert [r['current_certificate']['serial'] for r in prepared['results']] == \
        [r['current_certificate']['serial'] for r in kept['result']['results']]


def _interpreter_logging_imports(tmp_path):
    """An interpreter for the host that logs every import (python -X importtime) to a file."""
    import sys
    log = tmp_path / 'imports.log'
    wrapper = tmp_path / 'python-logging-imports'
    wrapper.write_text('#!/bin/sh\nexec %s -X importtime "$@" 2>>%s\n' % (sys.executable, log))
    wrapper.chmod(0o755)
    return wrapper, log


def test_the_probe_answers_a_noop_without_the_module_runtime(run_playbook, tmp_path):
    """By default a no-op imports neither ansible-core's module runtime
    (ansible.module_utils.basic) nor the planning code (key_request) on the host: the probe
    answered.  A changed file and the module plans again, by default still without the module
    runtime (the direct run); with the payload unchanged, through AnsibleModule both times."""
    d = tmp_path / 'certs'
    play(run_playbook, [_task('make', d)])
    wrapper, log = _interpreter_logging_imports(tmp_path)
    inventory = 'localhost ansible_connection=local ansible_python_interpreter=%s\n' % wrapper
    noop = run_playbook([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [_task('noop', d)]}],
                        inventory=inventory)
    assert noop.rc == 0 and noop.changed() == 0, str(noop)
    imported = log.read_text()
    assert ('ansible.module_utils.basic\n' in imported) is (not run_playbook.probe), imported[-2000:]
    assert ('module_utils.key_request\n' in imported) is False, imported[-2000:]
    os.chmod(d / 'api.key', 0o640)
    log.write_text('')
    again = run_playbook([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [_task('again', d)]}],
                         inventory=inventory)
    assert again.rc == 0, str(again)
    imported = log.read_text()
    assert 'module_utils.key_request\n' in imported, imported[-2000:]
    assert ('ansible.module_utils.basic\n' in imported) is (not run_playbook.probe), imported[-2000:]
    assert again.task('again')['results'][1]['changed_reasons'] == ['key_mode_tightened']
    # the untouched certificate's answer is the same from the probe and from the module
    assert noop.task('noop')['results'][0] == again.task('again')['results'][0]
