# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exactly one certificate per need, whatever happens to the run (issue 7, item 10).

Each test runs one scenario of ``scenarios.SCENARIOS`` with the file or the PostgreSQL order
store: real ansible-playbook runs, a fault, one rerun, orders counted at the CA.  Where the
scenario is strict (every one except pebble-store-deleted with the file store), the
goals are asserted: no certificate ordered twice, every certificate issued after one rerun,
and in the fault storm every certificate issued or pending after the first run.
"""

import pytest

SCENARIOS = (
    'sectigo-group-kill', 'sectigo-tree-kill', 'sectigo-answer-lost', 'sectigo-store-deleted',
    'sectigo-two-controllers', 'sectigo-in-flight', 'role-issue-deploy', 'shared-name-hosts',
    'pebble-group-kill', 'pebble-tree-kill', 'pebble-store-deleted',
    'local-ca-group-kill', 'local-ca-tree-kill', 'local-ca-store-deleted', 'local-ca-two-controllers',
    'storm',
)


@pytest.mark.parametrize('store', ('file', 'pg'))
@pytest.mark.parametrize('scenario', SCENARIOS)
def test_exactly_once(chaos_run, scenario, store):
    tally = chaos_run(scenario, store)
    if tally.strict:
        failures = tally.failures()
        assert not failures, '%s\n%s' % ('\n'.join(failures), tally.line())
