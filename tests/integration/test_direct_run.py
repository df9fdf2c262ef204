# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_request and deploy run on the host without ansible-core's module runtime
(plugins/plugin_utils/direct_action.py, plugins/module_utils/direct.py), through real
ansible-playbook runs on localhost.

The promise: the same answer as the usual run (``CERTFORGE_DIRECT=0``), byte for byte where the
inputs are the same, failures included (same message, no traceback, nothing written), with
ansible-core's ``ansible.module_utils.basic`` never imported on the host (an interpreter that
logs every import shows it); anything the controller cannot check (an unknown option, a
secret) runs the usual way.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import pytest

SECRET = 'Direct-p12-7Hq2'


@pytest.fixture
def host(tmp_path):
    """An inventory whose interpreter logs every import of every module call."""
    log = tmp_path / 'imports.log'
    wrapper = tmp_path / 'python-logging-imports'
    wrapper.write_text('#!/bin/sh\nexec %s -X importtime "$@" 2>>%s\n' % (sys.executable, log))
    wrapper.chmod(0o755)
    return 'localhost ansible_connection=local ansible_python_interpreter=%s\n' % wrapper, log


def run(run_playbook, host, tasks, direct, args=()):
    inventory, log = host
    log.write_text('')
    result = run_playbook([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], inventory=inventory,
                          env={'CERTFORGE_DIRECT': '1' if direct else '0'}, args=list(args))
    return result, log.read_text()


def runtime_imported(imports):
    return 'ansible.module_utils.basic\n' in imports


def tree(root):
    """sha256 and mode of every file under root (the disk, for before/after comparisons)."""
    out = {}
    for path in sorted(root.rglob('*')):
        if path.is_file():
            out[str(path.relative_to(root))] = (hashlib.sha256(path.read_bytes()).hexdigest(),
                                                oct(os.stat(path).st_mode & 0o7777))
    return out


def _request(d):
    return {'name': 'req', 'certforge.pki.certificate_request': {
        'directory': str(d), 'owner': str(os.getuid()),
        'requests': [{'privatekey_path': '%s/www.key' % d, 'csr_path': '%s/www.csr' % d,
                      'common_name': 'www.direct.test', 'certificate_path': '%s/www.crt' % d}]}}


def _deploy(d, issued, key_path, **extra):
    args = {'target': 'files', 'name': 'www', 'certificate': issued.cert_pem, 'chain': issued.chain_pem,
            'key_path': key_path, 'certificate_path': '%s/www.crt' % d, 'chain_path': '%s/www.chain.pem' % d,
            'fullchain_path': '%s/www.fullchain.pem' % d}
    args.update(extra)
    return {'name': 'deploy', 'certforge.pki.deploy': args}


def _same(result, base, d_result, d_base):
    """The two results with each run's directory written as DIR."""
    return json.loads(json.dumps(result).replace(str(d_result), 'DIR')) == \
        json.loads(json.dumps(base).replace(str(d_base), 'DIR'))


def test_request_and_deploy_without_the_module_runtime_same_answers(run_playbook, host, tmp_path, test_ca):
    answers = {}
    for direct in (True, False):
        d = tmp_path / ('direct' if direct else 'usual')
        made, imports = run(run_playbook, host, [_request(d)], direct)
        assert made.rc == 0, str(made)
        assert runtime_imported(imports) is (not direct), imports[-1500:]
        req = made.task('req')
        assert req['changed'] is True and req['results'][0]['changed_reasons'] == ['key_created', 'csr_created']
        issued = test_ca.issue('www.direct.test', key_pem=(d / 'www.key').read_text())
        deployed, imports = run(run_playbook, host, [_deploy(d, issued, str(d / 'www.key'))], direct)
        assert deployed.rc == 0, str(deployed)
        assert runtime_imported(imports) is (not direct), imports[-1500:]
        again, imports = run(run_playbook, host, [_deploy(d, issued, str(d / 'www.key'))], direct)
        assert again.rc == 0 and again.changed() == 0, str(again)
        answers[direct] = (d, req, deployed.task('deploy'), again.task('deploy'))
    (d1, req1, dep1, again1), (d0, req0, dep0, again0) = answers[True], answers[False]
    # the key and CSR differ (new keys); everything but them is the same
    for r in (req1, req0):
        for entry in r['results']:
            entry.pop('csr'), entry['privatekey'].pop('public_key_fingerprint'), entry['csr_info'].pop('public_key')
    assert _same(req1, req0, d1, d0)
    # the certificates deployed differ (other keys, other serials): the same shape of answer,
    # a change the first time and the same no-op the second
    assert dep1['changed'] is dep0['changed'] is True and sorted(dep1) == sorted(dep0)
    assert again1['changed'] is again0['changed'] is False and sorted(again1) == sorted(again0)
    assert again1['changed_reasons'] == again0['changed_reasons'] == []


def test_a_refused_input_is_the_same_refusal_and_writes_nothing(run_playbook, host, tmp_path, test_ca):
    """Bad input the controller's check cannot see (a key that does not belong to the
    certificate: found by the module's own checks) is refused with the same message either way,
    no traceback, nothing written."""
    issued = test_ca.issue('www.direct.test')
    other = test_ca.issue('other.direct.test')
    refusals = {}
    for direct in (True, False):
        d = tmp_path / ('direct' if direct else 'usual')
        d.mkdir()
        (d / 'www.key').write_text(other.key_pem)
        os.chmod(d / 'www.key', 0o600)
        before = tree(d)
        result, imports = run(run_playbook, host, [_deploy(d, issued, str(d / 'www.key'))], direct)
        assert result.rc != 0, str(result)
        failed = result.task('deploy')
        assert result.status('deploy') == 'failed' and 'key' in failed['msg'].lower(), failed
        assert 'Traceback' not in result.stdout + result.stderr
        assert tree(d) == before
        assert runtime_imported(imports) is (not direct)
        refusals[direct] = json.loads(json.dumps(dict((k, v) for k, v in failed.items() if k != 'invocation'))
                                      .replace(str(d), 'DIR'))
    assert refusals[True] == refusals[False]


def test_what_the_controller_cannot_check_runs_the_usual_way(run_playbook, host, tmp_path, test_ca):
    """An unknown option (the validator's own message) and a secret among the options (masked by
    AnsibleModule) go the usual way: ansible-core's module runtime runs."""
    d = tmp_path / 'certs'
    task = _request(d)
    task['certforge.pki.certificate_request']['no_such_option'] = 1
    result, imports = run(run_playbook, host, [task], True)
    assert result.rc != 0 and 'no_such_option' in result.task('req')['msg']
    assert runtime_imported(imports)
    task = _request(d)
    task['certforge.pki.certificate_request']['privatekey_passphrase'] = SECRET
    result, imports = run(run_playbook, host, [task], True, args=['-vvvv'])
    assert result.rc == 0, str(result)
    assert runtime_imported(imports)
    assert SECRET not in result.stdout + result.stderr + json.dumps(result.task('req'))


def test_a_secret_the_deploy_finds_in_target_options_is_masked(run_playbook, host, tmp_path, test_ca):
    """A PKCS#12 password given among the certificate's target options: the direct run masks it
    as AnsibleModule would (in the result, -vvvv output included)."""
    d = tmp_path / 'certs'
    d.mkdir()
    issued = test_ca.issue('app.direct.test')
    (d / 'app.key').write_text(issued.key_pem)
    os.chmod(d / 'app.key', 0o600)
    task = {'name': 'deploy', 'certforge.pki.deploy': {
        'target': 'pkcs12', 'name': 'app', 'certificate': issued.cert_pem, 'chain': issued.chain_pem,
        'key_path': str(d / 'app.key'),
        'certificate_options': {'pkcs12_path': str(d / 'app.p12'), 'password': SECRET}}}
    result, dummy = run(run_playbook, host, [task], True, args=['-vvvv'])
    assert result.rc == 0, str(result)
    assert (d / 'app.p12').exists()
    assert SECRET not in result.stdout + result.stderr + json.dumps(result.task('deploy'))
