"""Fixtures for AWX-style job runs: ``pg_server`` (tests/integration/pg_server.py), ``awx``
(the helpers in awx.py), ``scm`` (a Sectigo SCM simulator on 127.0.0.1, DV issued at once)."""

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def _load(name, path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, str(path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


pg_server_module = _load('certforge_pg_server', HERE.parent / 'pg_server.py')
pg_server = pg_server_module.pytest_fixture()


@pytest.fixture(scope='session')
def awx():
    return _load('certforge_awx', HERE / 'awx.py')


@pytest.fixture
def scm(tmp_path):
    try:
        from ansible_collections.certforge.pki.tests.simulators.sectigo_scm import Simulator
    except ImportError:
        sys.path.insert(0, str(REPO))
        from tests.simulators.sectigo_scm import Simulator  # pylint: disable=import-error
    sim = Simulator(workdir=str(tmp_path / 'scm'))
    sim.start()
    try:
        sim.configure(issue_delays={'DV': 0})
        yield sim
    finally:
        sim.stop()
