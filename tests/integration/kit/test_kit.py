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
PACKAGES = ('toy_async_ca', 'toy_haproxy_like')
CONNECTORS = [('issuer', 'local_ca'), ('target', 'files'), ('target', 'nginx'),
              ('issuer', 'toy_async_ca'), ('target', 'toy_haproxy_like')]
#: the server targets (tests/integration/kit/kit_setups.py SERVER_TARGETS)
CONNECTORS += [('target', 'haproxy'), ('target', 'apache'), ('target', 'pkcs12'), ('target', 'java_keystore'),
               ('target', 'caddy'), ('target', 'postfix'), ('target', 'dovecot')]


def install(source, site):
    """Install a pure-Python package the way pip lays it out (package + .dist-info with its entry
    points), with no network and no wheel tooling.  pip builds the same layout where the wheel
    package is at hand."""
    import shutil
    import tomllib
    project = tomllib.loads((source / 'pyproject.toml').read_text())['project']
    module = project['name'].replace('-', '_')
    shutil.copytree(str(source / module), str(site / module))
    info = site / ('%s-%s.dist-info' % (module, project['version']))
    info.mkdir()
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\n'
                                   % (project['name'], project['version'], project.get('description', '')))
    lines = []
    for group, entries in project.get('entry-points', {}).items():
        lines.append('[%s]' % group)
        lines.extend('%s = %s' % item for item in entries.items())
    (info / 'entry_points.txt').write_text('\n'.join(lines) + '\n')
    (info / 'INSTALLER').write_text('certforge-tests\n')


@pytest.fixture(scope='session')
def third_party_site(tmp_path_factory):
    site = tmp_path_factory.mktemp('site-packages')
    for name in PACKAGES:
        install(HERE / 'packages' / name, site)
    old_path = os.environ.get('PYTHONPATH', '')
    extra = [str(site), str(HERE)]
    os.environ['PYTHONPATH'] = os.pathsep.join(extra + ([old_path] if old_path else []))
    sys.path[:0] = extra
    yield site
    os.environ['PYTHONPATH'] = old_path
    for entry in extra:
        sys.path.remove(entry)


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
