# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the generic deploy module: target lookup (built-ins, installed connectors),
target_options checked against the target's own options, and main() end to end with real
commands (``true``/``false``) instead of a server."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys

import pytest
from ansible.module_utils.testing import patch_module_args
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core import registry as core_registry
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.core.lifecycle import check_target_options, target_class
from ansible_collections.certforge.pki.plugins.module_utils.targets import files as files_target
from ansible_collections.certforge.pki.plugins.module_utils.targets import nginx as nginx_target
from ansible_collections.certforge.pki.plugins.modules import deploy as mod

SECRET = 'unit-test-token-7f3a'


def _pem(serial, name='www.test'):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def run_main(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            mod.main()
    out = json.loads(capsys.readouterr().out)
    return exit_info.value.code, out


class Recorder(files_target.FilesTarget):
    """A target from 'another package': records what it was given."""

    name = 'recorder'
    certificate_options = files_target.CERTIFICATE_OPTIONS
    seen = []

    @classmethod
    def option_spec(cls):
        return dict(endpoint=dict(type='str', required=True), token=dict(type='str', no_log=True),
                    retries=dict(type='int', default=3))

    def __init__(self, options, runner):
        Recorder.seen.append(dict(options))
        if options.get('endpoint') == 'refuse':
            raise ConfigError('endpoint refused the token %s' % options.get('token'), option='token')
        super(Recorder, self).__init__(options, runner)


class Unchecked(files_target.FilesTarget):
    """A target without an option_spec: it checks its options itself."""

    name = 'unchecked'
    option_spec = None


class ThirdParty:
    @hookimpl
    def certforge_targets(self):
        return {'recorder': Recorder, 'unchecked': Unchecked}


# -- target lookup -----------------------------------------------------------------------------

def test_builtin_names_never_scan_installed_packages(monkeypatch):
    def scan(self):
        raise AssertionError('entry points scanned for a built-in target')

    monkeypatch.setattr(core_registry.Registry, '_load_entry_points', scan)
    assert target_class('nginx', mod.all_plugins(), discover=True) is nginx_target.NginxTarget
    assert target_class('files', mod.all_plugins(), discover=True) is files_target.FilesTarget


def test_other_names_come_from_installed_packages(monkeypatch):
    def scan(self):
        self.pm.register(ThirdParty())

    monkeypatch.setattr(core_registry.Registry, '_load_entry_points', scan)
    assert target_class('recorder', mod.all_plugins(), discover=True) is Recorder
    with pytest.raises(ConfigError) as info:
        target_class('recorder', mod.all_plugins())                 # without discover: built-ins only
    assert info.value.option == 'target'


def test_unknown_target_lists_the_known_ones(monkeypatch):
    monkeypatch.setattr(core_registry.Registry, '_load_entry_points', lambda self: None)
    with pytest.raises(ConfigError) as info:
        target_class('no_such_server', mod.all_plugins(), discover=True)
    assert info.value.option == 'target'
    assert 'files, ' in info.value.fix and 'nginx' in info.value.fix and 'install the package' in info.value.fix


# -- target options ----------------------------------------------------------------------------

def test_nginx_options_get_types_and_defaults():
    options = check_target_options(nginx_target.NginxTarget, {'reload': 'no', 'pid_file': '/run/nginx.pid'})
    assert options['reload'] is False and options['pid_file'] == '/run/nginx.pid'
    assert options['validate_command'] == ['nginx', '-t'] and options['start_command'] is None


@pytest.mark.parametrize('cls, options, option, words', [
    (nginx_target.NginxTarget, {'reload_comand': ['x']}, 'target_options.reload_comand', 'use pid_file, reload,'),
    (nginx_target.NginxTarget, {'reload': 'maybe'}, 'target_options.reload', 'give a value of type bool'),
    (files_target.FilesTarget, {'reload': True}, 'target_options.reload', 'has no options of its own'),
    (nginx_target.NginxTarget, ['reload'], 'target_options', 'dictionary'),
    (Recorder, {'retries': 2}, 'target_options', 'endpoint'),          # a required option is missing
])
def test_bad_target_options_are_named(cls, options, option, words):
    with pytest.raises(ConfigError) as info:
        check_target_options(cls, options)
    assert info.value.option == option
    assert words in str(info.value)


def test_options_of_a_target_without_spec_pass_unchanged():
    assert check_target_options(Unchecked, {'anything': [1]}) == {'anything': [1]}


def _params(tmp_path, **kwargs):
    out = dict((key, None) for key in files_target.deploy_argument_spec())
    out.update(mode='0644', backup_retention=5, target_options={},
               certificate=_pem(0x21), certificate_path=str(tmp_path / 'www.crt'))
    out.update(kwargs)
    return out


def test_third_party_target_gets_checked_options_and_secrets_are_collected(tmp_path):
    Recorder.seen[:] = []
    secrets = set()
    plugins = mod.all_plugins() + (ThirdParty(),)
    result = files_target.deploy_from_params(
        _params(tmp_path, target='recorder', target_options={'endpoint': 'x', 'token': SECRET}),
        plugins, None, no_log_values=secrets)
    assert result['changed'] is True and 'started' not in result
    assert Recorder.seen == [{'endpoint': 'x', 'token': SECRET, 'retries': 3,
                              'backup_dir': None, 'backup_retention': 5}]
    assert SECRET in secrets
    with pytest.raises(ConfigError) as info:
        files_target.deploy_from_params(
            _params(tmp_path, target='recorder', target_options={'endpoint': 'refuse', 'token': SECRET}),
            plugins, None)
    assert info.value.option == 'target_options.token'


# -- main() --------------------------------------------------------------------------------------

def test_files_target_deploys_once_and_warns_about_verify(tmp_path, capsys):
    args = dict(target='files', certificate=_pem(0x31), certificate_path=str(tmp_path / 'www.crt'),
                verify={'port': 443})
    code, out = run_main(args, capsys)
    assert code == 0 and out['changed'] is True and out['reloaded'] is False and out['verified'] == {}
    assert out['certificates']['www']['serial'] == '31'
    assert 'verify is ignored: the files target has no live endpoint' in json.dumps(out['warnings'])
    assert 'started' not in out
    code, out = run_main(args, capsys)
    assert code == 0 and out['changed'] is False


@pytest.mark.parametrize('target_options, option', [
    ({'reload_command': 'nginx -s reload'}, 'target_options.reload_command'),
    ({'start_command': ['nginx']}, 'target_options.start_command'),
    ({'pid_file': 'nginx.pid'}, 'target_options.pid_file'),
    ({'validate': ['nginx', '-t']}, 'target_options.validate'),
    ({'backup_dir': '/var/backups'}, 'target_options.backup_dir'),          # a module option
])
def test_bad_nginx_options_fail_before_writing(tmp_path, capsys, target_options, option):
    args = dict(target='nginx', target_options=target_options, certificate=_pem(0x32),
                certificate_path=str(tmp_path / 'www.crt'))
    code, out = run_main(args, capsys)
    assert code == 1 and out['error_option'] == option and out['msg'].startswith(option + ': ')
    if option == 'target_options.backup_dir':
        assert 'move backup_dir out of target_options' in out['msg']
    assert 'Traceback' not in json.dumps(out)
    assert os.listdir(str(tmp_path)) == []


def test_nginx_target_reloads_a_running_server(tmp_path, capsys):
    pid_file = tmp_path / 'nginx.pid'
    pid_file.write_text('%d\n' % os.getpid())
    marker = tmp_path / 'reloaded'
    args = dict(target='nginx', certificate=_pem(0x33), certificate_path=str(tmp_path / 'www.crt'),
                target_options={'validate_command': ['true'], 'pid_file': str(pid_file),
                                'reload_command': [sys.executable, '-c', 'open(%r, "w").close()' % str(marker)],
                                'start_command': ['false']})
    code, out = run_main(args, capsys)
    assert code == 0, out
    assert out['reloaded'] is True and out['started'] is False and marker.exists()


def test_nginx_target_starts_a_server_that_does_not_run(tmp_path, capsys):
    marker = tmp_path / 'started'
    args = dict(target='nginx', certificate=_pem(0x34), certificate_path=str(tmp_path / 'www.crt'),
                target_options={'validate_command': ['true'], 'reload_command': ['false'],
                                'pid_file': str(tmp_path / 'nginx.pid'),
                                'start_command': [sys.executable, '-c', 'open(%r, "w").close()' % str(marker)]})
    code, out = run_main(args, capsys)
    assert code == 0, out
    assert out['reloaded'] is True and out['started'] is True and marker.exists()


def test_nginx_not_running_fails_naming_pid_file_and_rolls_back(tmp_path, capsys):
    args = dict(target='nginx', certificate=_pem(0x35), certificate_path=str(tmp_path / 'www.crt'),
                target_options={'validate_command': ['true'], 'pid_file': str(tmp_path / 'nginx.pid')})
    code, out = run_main(args, capsys)
    assert code == 1
    assert out['error_option'] == 'target_options.pid_file'
    assert 'nginx is not running' in out['msg'] and out['error_details']['rolled_back'] is True
    assert not (tmp_path / 'www.crt').exists()


def test_secret_target_options_are_masked(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(mod, 'plugins_for', lambda name: mod.all_plugins() + (ThirdParty(),))
    args = dict(target='recorder', target_options={'endpoint': 'refuse', 'token': SECRET},
                certificate=_pem(0x36), certificate_path=str(tmp_path / 'www.crt'))
    code, out = run_main(args, capsys)
    assert code == 1 and out['error_option'] == 'target_options.token'
    assert SECRET not in json.dumps(out)


def test_no_change_path_does_not_import_cryptography(tmp_path):
    """The generic module's no-op path (option checks included) stays as cheap as the others'."""
    pem = _pem(0x41)
    (tmp_path / 'www.crt').write_text(pem)
    os.chmod(str(tmp_path / 'www.crt'), 0o644)
    (tmp_path / 'input.pem').write_text(pem)
    code = (
        'import sys, json\n'
        'from ansible_collections.certforge.pki.plugins.module_utils.targets import files as f\n'
        'from ansible_collections.certforge.pki.plugins.modules import deploy as d\n'
        'p = dict((k, None) for k in f.deploy_argument_spec())\n'
        'p.update(target="nginx", target_options={"reload": "yes", "pid_file": "/run/x.pid"}, mode="0644",\n'
        '         backup_retention=5, certificate=open(sys.argv[1]).read(), certificate_path=sys.argv[2],\n'
        '         verify={"port": 1})\n'
        'r = f.deploy_from_params(p, d.plugins_for("nginx"), None)\n'
        'print(json.dumps([r["changed"], any(m.startswith("cryptography") for m in sys.modules)]))\n')
    out = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'input.pem'), str(tmp_path / 'www.crt')],
                         capture_output=True, text=True, check=False,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[false, false]'


def test_doc_fragment_lists_stay_in_step_with_the_argument_specs():
    """The two certificates lists of the doc fragment differ by verify only, and together with the
    shared options they are exactly the argument specs of the deploy modules."""
    import yaml
    from ansible_collections.certforge.pki.plugins.doc_fragments.deploy import ModuleDocFragment as Fragment

    shared = yaml.safe_load(Fragment.DOCUMENTATION)['options']
    plain = yaml.safe_load(Fragment.CERTIFICATES)['options']
    served = yaml.safe_load(Fragment.VERIFY)['options']
    with_verify = dict(served['certificates'], suboptions=dict(served['certificates']['suboptions']))
    del with_verify['suboptions']['verify']
    assert with_verify == plain['certificates']

    def names(spec):
        return dict((key, sorted(value.get('options') or {})) for key, value in spec.items())

    def doc_names(*parts):
        merged = {}
        for part in parts:
            merged.update(part)
        return dict((key, sorted(value.get('suboptions') or {})) for key, value in merged.items())

    assert doc_names(shared, plain) == names(files_target.files_argument_spec())
    assert doc_names(shared, served) == names(files_target.files_argument_spec(verify=True))
