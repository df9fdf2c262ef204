"""Fixtures of the kit tests: the two throw-away third-party packages installed through their
entry points into a directory of their own, and the ``KIT <kind> <name> <passed>/<total>``
lines printed after the run."""

import os
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PACKAGES = ('toy_async_ca', 'toy_haproxy_like')

# shared with test_kit.py through the pytest module (conftest modules load under their own names)
KIT_LINES = pytest.__dict__.setdefault('_certforge_kit_lines', [])


@pytest.fixture(scope='session')
def kit_lines():
    """The list the summary prints (a fixture: with --import-mode=importlib, importing this file
    by name gives another module object than the one pytest loaded)."""
    return KIT_LINES


def pytest_terminal_summary(terminalreporter):
    if not KIT_LINES:
        return
    terminalreporter.section('connector conformance kit')
    for line in KIT_LINES:
        terminalreporter.write_line(line)


def install(source, site):
    """Install a pure-Python package the way pip lays it out (package + .dist-info with its entry
    points), with no network and no wheel tooling: the test virtualenv has no setuptools build
    backend offline, and a pip install would land in the shared virtualenv where every other
    test would see the packages."""
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
    (info / 'RECORD').write_text('')


@pytest.fixture(scope='session')
def third_party_site(tmp_path_factory):
    """A site directory holding both packages (``site``), on ``sys.path`` and ``PYTHONPATH`` of
    this process (the kit's child processes) together with this directory (``kit_setups``)."""
    site = tmp_path_factory.mktemp('site-packages')
    for name in PACKAGES:
        install(HERE / 'packages' / name, site)
    old_path = os.environ.get('PYTHONPATH')
    extra = [str(site), str(HERE)]
    os.environ['PYTHONPATH'] = os.pathsep.join(extra + ([old_path] if old_path else []))
    sys.path[:0] = extra
    yield site
    if old_path is None:
        os.environ.pop('PYTHONPATH', None)
    else:
        os.environ['PYTHONPATH'] = old_path
    for entry in extra:
        sys.path.remove(entry)
