# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""direct.py: the stand-in for AnsibleModule in a run without ansible-core's module runtime, and
the controller's check that decides whether such a run is allowed."""

import json
import os

import pytest

from ansible_collections.certforge.pki.plugins.module_utils import direct


def test_path_options_are_text_on_the_controller_and_expanded_on_the_host(monkeypatch):
    spec = {'directory': {'type': 'path'}, 'names': {'type': 'list', 'elements': 'path'},
            'requests': {'type': 'list', 'elements': 'dict', 'options': {'csr_path': {'type': 'path'},
                                                                         'common_name': {'type': 'str'}}},
            'target_options': {'type': 'dict', 'options': {'dir': {'type': 'path'}}}}
    text, paths = direct.text_paths(spec)
    assert spec['directory']['type'] == 'path'          # the module's own spec is untouched
    assert text['directory']['type'] == 'str' and text['names']['elements'] == 'str'
    assert text['requests']['options']['csr_path']['type'] == 'str'
    assert sorted(paths) == sorted([['directory'], ['names', '*'], ['requests', '*', 'csr_path'],
                                    ['target_options', 'dir']])
    monkeypatch.setenv('HOME', '/home/deploy')
    monkeypatch.setenv('CERTS', '/srv/certs')
    params = {'directory': '~/certs', 'names': ['$CERTS/a', None],
              'requests': [{'csr_path': '~/x.csr', 'common_name': '~not'}], 'target_options': None}
    direct.expand_paths(params, paths)
    assert params == {'directory': '/home/deploy/certs', 'names': ['/srv/certs/a', None],
                      'requests': [{'csr_path': '/home/deploy/x.csr', 'common_name': '~not'}],
                      'target_options': None}


def test_run_command_and_get_bin_path(tmp_path):
    module = direct.DirectModule({})
    rc, out, err = module.run_command(['sh', '-c', 'echo out; echo err >&2; exit 3'])
    assert (rc, out, err) == (3, 'out\n', 'err\n')
    assert module.get_bin_path('sh').endswith('/sh')
    assert module.get_bin_path('no-such-program-here') is None
    with pytest.raises(OSError):
        module.run_command([str(tmp_path / 'missing')], handle_exceptions=False)


def test_exit_masks_secrets_and_keeps_booleans(capsys):
    module = direct.DirectModule({'name': 'www', 'target_options': {'password': 's3cret-pw'}})
    module.no_log_values.add('s3cret-pw')
    module.warn('a warning')
    with pytest.raises(SystemExit) as ended:
        module.exit_json(changed=True, note='uses s3cret-pw', flag=False)
    assert ended.value.code == 0
    out = capsys.readouterr().out
    assert 's3cret-pw' not in out
    result = json.loads(out)
    assert result['changed'] is True and result['flag'] is False and result['warnings'] == ['a warning']
    assert result['invocation']['module_args']['name'] == 'www'


def test_fail_keeps_a_traceback_out_of_the_message(capsys):
    module = direct.DirectModule({})
    with pytest.raises(SystemExit) as ended:
        module.fail_json(msg='refused', exception='Traceback (most recent call last): ...', error_option='x')
    assert ended.value.code == 1
    result = json.loads(capsys.readouterr().out)
    assert result['failed'] is True and result['msg'] == 'refused' and 'exception' not in result
    assert result['error_option'] == 'x'


def test_password_like_options_are_not_logged(monkeypatch):
    logged = []

    class FakeSyslog:
        LOG_USER = 8
        LOG_INFO = 6

        @staticmethod
        def openlog(*args):
            logged.append(('open',) + args)

        @staticmethod
        def syslog(priority, msg):
            logged.append(msg)

        @staticmethod
        def closelog():
            pass

    monkeypatch.setitem(__import__('sys').modules, 'syslog', FakeSyslog)
    direct.log_invocation('deploy', {'store_password': 'pw-1', 'key_path': '/k', 'name': 'www'}, 'LOG_USER')
    assert logged[0] == ('open', 'ansible-deploy', 0, 8)
    assert 'pw-1' not in logged[1] and 'store_password=NOT_LOGGING_PASSWORD' in logged[1]
    assert 'key_path=/k' in logged[1] and os.sep in logged[1]
