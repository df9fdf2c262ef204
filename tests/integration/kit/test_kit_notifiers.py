"""The conformance kit's notifier clauses against every built-in notifier, each with a real
receiver on 127.0.0.1 (tests/integration/kit/kit_notifiers.py); and the documented command line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
NOTIFIERS = ('webhook', 'slack', 'teams', 'pagerduty', 'opsgenie', 'email')


@pytest.mark.parametrize('name', NOTIFIERS)
def test_builtin_notifier_passes_the_kit(tmp_path, name, kit_lines):
    from ansible_collections.certforge.pki.plugins.plugin_utils import connector_kit
    results = connector_kit.run_kit('notifier', name, 'kit_notifiers', workdir=str(tmp_path))
    line = connector_kit.summary_line('notifier', name, results)
    kit_lines.append(line)
    failed = ['%s: %s' % (c, why) for c, ok, why in results if ok is False]
    assert not failed, line + '\n' + '\n'.join(failed)
    assert line == 'KIT notifier %s 6/6' % name, line


def test_notifier_kit_command_line(tmp_path):
    collections = Path(__import__('ansible_collections').__path__[0]).parent
    env = {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'HOME': os.environ.get('HOME', '/'),
           'PYTHONPATH': os.pathsep.join([str(collections), str(HERE)])}
    proc = subprocess.run([sys.executable, '-m', 'ansible_collections.certforge.pki.plugins.plugin_utils.connector_kit',
                           '--notifier', 'webhook', '--setup', 'kit_notifiers'],
                          capture_output=True, text=True, timeout=300, check=False, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0 and proc.stdout == 'KIT notifier webhook 6/6\n', proc.stdout + proc.stderr
