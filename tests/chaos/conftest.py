# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pytest wiring of the chaos suite (docs/chaos.md).

Environment: ``CHAOS_PROFILE`` (``bounded``, the default, or ``full``), ``CHAOS_SEED`` (replay),
``CHAOS_BUDGET`` (seconds for the whole suite), ``CHAOS_RUNS`` (runs per scenario, overrides the
profile), ``CHAOS_PG_URL`` (a PostgreSQL order store URL for the ``pg`` variant),
``CHAOS_REPORT`` (a file that receives the table too).

The table (one ``CHAOS ...`` line per scenario and store) is printed in the terminal summary,
so it shows in ``make`` output although pytest captures the tests' output.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _load(name, path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, str(path))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


scenarios = _load('certforge_chaos_scenarios', HERE / 'scenarios.py')
harness = scenarios.harness
pg_server_module = _load('certforge_pg_server', HERE.parent / 'integration' / 'pg_server.py')
pg_server = pg_server_module.pytest_fixture()      # session: a throw-away cluster on 127.0.0.1

_STATE = {'chaos': None, 'left': 0, 'pg_url': None}


def _chaos():
    if _STATE['chaos'] is None:
        _STATE['chaos'] = harness.Chaos()
    return _STATE['chaos']


def pytest_report_header(config):
    del config
    return [_chaos().header()]


def _mine(items):
    return [item for item in items if 'chaos_run' in getattr(item, 'fixturenames', ())]


def pytest_collection_modifyitems(config, items):
    del config
    for item in _mine(items):
        item.add_marker(pytest.mark.timeout(int(_chaos().budget) + 900))


def pytest_collection_finish(session):
    """Scenarios left to run (after -k / deselection): each gets a share of the budget."""
    _STATE['left'] = len(_mine(session.items))


@pytest.fixture(scope='session')
def chaos_lab(tmp_path_factory):
    lab = scenarios.Lab(_chaos(), tmp_path_factory.mktemp('chaos'))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def chaos_pg_url(request):
    """(URL, why): ``CHAOS_PG_URL``, else a database in the session's throw-away PostgreSQL
    cluster (``pg_server``) when the collection's PostgreSQL store and psycopg import."""
    url = os.environ.get('CHAOS_PG_URL')
    if url:
        return url, ''
    if _STATE['pg_url']:
        return _STATE['pg_url'], ''
    ok, why = harness.pg_backend_importable()
    if ok:
        ok, why = pg_server_module.available()
    if not ok:
        return None, why
    server = request.getfixturevalue('pg_server')
    _STATE['pg_url'] = server.create_database('chaos')
    return _STATE['pg_url'], ''


@pytest.fixture
def chaos_run(chaos_lab, request):
    """``chaos_run(scenario, store)`` -> Tally (recorded for the table)."""
    def run(scenario, store):
        _STATE['left'] = max(0, _STATE['left'] - 1)
        if store == 'pg':
            url, why = request.getfixturevalue('chaos_pg_url')
            if not url:
                chaos_lab.chaos.skipped(scenario, store, 'pg store not available')
                pytest.skip('pg store not available: %s' % why)
            chaos_lab.pg_url = url
        try:
            return scenarios.run(chaos_lab, scenario, store, _STATE['left'] + 1)
        except harness.ChaosError as exc:
            chaos_lab.chaos.skipped(scenario, store, str(exc))
            pytest.skip(str(exc))
        return None
    return run


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    del exitstatus, config
    chaos = _STATE['chaos']
    if chaos is None or not chaos.lines:
        return
    lines = [chaos.header()] + chaos.lines + [
        'CHAOS total time %.0fs (goals: duplicates=0 and issued_after_rerun=n/n where strict=yes)'
        % chaos.elapsed()]
    terminalreporter.write_sep('=', 'chaos: orders counted at the CA')
    for line in lines:
        terminalreporter.write_line(line)
    report = os.environ.get('CHAOS_REPORT')
    if report:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text('\n'.join(lines) + '\n')
