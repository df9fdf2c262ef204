"""Prints the conformance kit's ``KIT <kind> <name> <passed>/<total>`` lines after the run."""

import pytest

import pytest

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
