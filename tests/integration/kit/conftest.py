"""Prints the conformance kit's ``KIT <kind> <name> <passed>/<total>`` lines after the run."""

KIT_LINES = []


def pytest_terminal_summary(terminalreporter):
    if not KIT_LINES:
        return
    terminalreporter.section('connector conformance kit')
    for line in KIT_LINES:
        terminalreporter.write_line(line)
