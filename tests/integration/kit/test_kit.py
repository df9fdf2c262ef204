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


def test_kit_command_line(third_party_site):
    """The documented command a third party runs."""
    proc = subprocess.run([sys.executable, '-m', 'ansible_collections.certforge.pki.plugins.plugin_utils.connector_kit',
                           '--issuer', 'toy_async_ca', '--setup', 'kit_setups'],
                          capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ))
    assert proc.stdout.startswith('KIT issuer toy_async_ca '), proc.stdout + proc.stderr
