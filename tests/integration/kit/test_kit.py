"""The conformance kit against every built-in connector and two throw-away third-party
packages, built here and installed through their entry points into a directory of their own
(put on PYTHONPATH for the kit's child processes and the ansible runs)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CONNECTORS = [('issuer', 'local_ca'), ('issuer', 'acme'), ('issuer', 'sectigo'), ('target', 'files'), ('target', 'nginx'),
              ('issuer', 'toy_async_ca'), ('target', 'toy_haproxy_like')]
#: the server targets (tests/integration/kit/kit_setups.py SERVER_TARGETS)
CONNECTORS += [('target', 'haproxy'), ('target', 'apache'), ('target', 'pkcs12'), ('target', 'java_keystore'),
               ('target', 'caddy'), ('target', 'postfix'), ('target', 'dovecot'), ('target', 'traefik'),
               ('target', 'envoy')]


@pytest.mark.parametrize('kind, name', CONNECTORS, ids=['%s-%s' % c for c in CONNECTORS])
def test_connector_passes_the_kit(third_party_site, tmp_path, kind, name, kit_lines):
    from ansible_collections.certforge.pki.plugins.plugin_utils import connector_kit
    results = connector_kit.run_kit(kind, name, 'kit_setups', ['kit_setups'], workdir=str(tmp_path))
    line = connector_kit.summary_line(kind, name, results)
    kit_lines.append(line)
    failed = ['%s: %s' % (c, why) for c, ok, why in results if ok is False]
    assert not failed, line + '\n' + '\n'.join(failed)


BROKEN_SETUP = """
import kit_setups


def kit_setup(kind, name, workdir):
    setup = kit_setups.kit_setup(kind, name, workdir)
    setup.pop('reject_common_name', None)     # the kit cannot check rejections without it
    return setup
"""


def _kit_command(args, pythonpath):
    """The documented command from a clean environment: only PATH, HOME and PYTHONPATH (the
    directory holding ansible_collections, the installed packages, the setup module)."""
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': os.environ.get('HOME', '/'),
           'PYTHONPATH': os.pathsep.join(str(p) for p in pythonpath)}
    return subprocess.run([sys.executable, '-m', 'ansible_collections.certforge.pki.plugins.plugin_utils.connector_kit']
                          + args, capture_output=True, text=True, timeout=300, check=False, env=env, cwd='/')


def test_kit_command_line(third_party_site, tmp_path):
    """The documented command a third party runs: one KIT line, exit 0; a failing clause is
    printed by name with its reason, exit 1."""
    collections = Path(__import__('ansible_collections').__path__[0]).parent
    path = [collections, third_party_site, HERE]
    proc = _kit_command(['--issuer', 'toy_async_ca', '--setup', 'kit_setups'], path)
    assert proc.returncode == 0 and proc.stdout == 'KIT issuer toy_async_ca 14/14\n', proc.stdout + proc.stderr

    (tmp_path / 'broken_setup.py').write_text(BROKEN_SETUP)
    proc = _kit_command(['--issuer', 'toy_async_ca', '--setup', 'broken_setup'], path + [tmp_path])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == ['KIT issuer toy_async_ca 13/14 FAILED: rejection_is_raised',
                                        '  rejection_is_raised: the setup names no reject_common_name'], proc.stdout

    # a built-in connector by name, with no package installed
    proc = _kit_command(['--issuer', 'local_ca', '--setup', 'kit_setups'], [collections, HERE])
    assert proc.returncode == 0 and proc.stdout.startswith('KIT issuer local_ca 12/12'), proc.stdout + proc.stderr
