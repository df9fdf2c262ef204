"""meta/ee/execution-environment.yml: ``ansible-builder create`` makes a build context (no image
can be built here); the context installs the collection, the optional packages and the
collection's own requirements, which its introspection step (run here as the build would run
it, against this collection) resolves."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
EE = REPO / 'meta' / 'ee' / 'execution-environment.yml'


def _tool(name):
    venv = REPO / '.venv' / 'bin' / name
    return str(venv) if venv.exists() else shutil.which(name)


@pytest.fixture(scope='module')
def context(tmp_path_factory):
    builder = _tool('ansible-builder')
    if not builder:
        pytest.skip('ansible-builder is not installed (tests/requirements.txt)')
    ctx = tmp_path_factory.mktemp('ee') / 'context'
    proc = subprocess.run([builder, 'create', '-f', str(EE), '--context', str(ctx),
                           '--output-filename', 'Containerfile'],
                          capture_output=True, text=True, timeout=300, check=False, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ctx


def test_context_installs_the_collection_and_the_optional_packages(context):
    containerfile = (context / 'Containerfile').read_text()
    assert 'ansible-galaxy collection install' in containerfile
    assert 'introspect.py introspect' in containerfile
    galaxy = yaml.safe_load((context / '_build' / 'requirements.yml').read_text())
    assert [c['name'] for c in galaxy['collections']] == ['certforge.pki']
    python = (context / '_build' / 'requirements.txt').read_text()
    for package in ('psycopg[binary]', 'cryptography', 'requests'):
        assert package in python, package
    assert 'postgresql' in (context / '_build' / 'bindep.txt').read_text()


def test_introspection_adds_the_collections_own_requirements(context, tmp_path):
    out_pip, out_bindep = tmp_path / 'pip.txt', tmp_path / 'bindep.txt'
    proc = subprocess.run([sys.executable, str(context / '_build' / 'scripts' / 'introspect.py'), 'introspect',
                           '--user-pip', str(context / '_build' / 'requirements.txt'),
                           '--user-bindep', str(context / '_build' / 'bindep.txt'),
                           '--write-pip', str(out_pip), '--write-bindep', str(out_bindep),
                           str(REPO / 'build' / 'collections')],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pip = out_pip.read_text()
    for line in (REPO / 'requirements.txt').read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            assert '%s  # from collection certforge.pki' % line.strip() in pip, line
    assert 'psycopg[binary]>=3.1  # from collection user' in pip
    assert 'openssl' in out_bindep.read_text()
