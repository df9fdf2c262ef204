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

_STATE = {'chaos': None, 'left': 0}


def _chaos():
    if _STATE['chaos'] is None:
        _STATE['chaos'] = harness.Chaos()
    return _STATE['chaos']


def pytest_report_header(config):
    del config
    return [_chaos().header()]


def pytest_collection_modifyitems(config, items):
    del config
    chaos = _chaos()
    mine = [item for item in items if 'chaos_lab' in getattr(item, 'fixturenames', ())]
    _STATE['left'] = len(mine)
    for item in mine:
        item.add_marker(pytest.mark.timeout(int(chaos.budget) + 900))


@pytest.fixture(scope='session')
def chaos_lab(tmp_path_factory):
    lab = scenarios.Lab(_chaos(), tmp_path_factory.mktemp('chaos'))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def chaos_pg_url(request):
    """A PostgreSQL order store URL, or None: ``CHAOS_PG_URL``, else (when the collection has
    a PostgreSQL backend that imports) the first fixture of ``harness.PG_FIXTURES`` found."""
    url = os.environ.get('CHAOS_PG_URL')
    if url:
        return url
    if not harness.pg_backend_importable():
        return None
    for name in harness.PG_FIXTURES:
        try:
            value = request.getfixturevalue(name)
        except pytest.FixtureLookupError:
            continue
        found = harness.pg_url_of(value)
        if found:
            return found
    return None


@pytest.fixture
def chaos_run(chaos_lab, request):
    """``chaos_run(scenario, store)`` -> Tally (recorded for the table)."""
    def run(scenario, store):
        _STATE['left'] = max(0, _STATE['left'] - 1)
        if store == 'pg':
            url = request.getfixturevalue('chaos_pg_url')
            if not url:
                chaos_lab.chaos.skipped(scenario, store, 'pg store not available')
                pytest.skip('pg store not available')
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
