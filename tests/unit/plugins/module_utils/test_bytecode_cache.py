# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bytecode_cache: compiled module_utils kept between module calls, only inside a zip payload,
only in a private directory, never stale.  Each case runs in a fresh Python (as a module call
does) over a zip laid out like an AnsiballZ payload."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[4] / 'plugins' / 'module_utils' / 'bytecode_cache.py'

RUN = r'''
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.certforge.pki.plugins.module_utils import bytecode_cache
bytecode_cache.install()
from ansible_collections.certforge.pki.plugins.module_utils import probe
print(probe.VALUE, type(probe.__loader__).__name__)
'''


def _payload(tmp_path, value):
    path = tmp_path / ('payload-%s.zip' % value)
    base = 'ansible_collections/certforge/pki/plugins/module_utils/'
    with zipfile.ZipFile(str(path), 'w') as z:
        for pkg in ('ansible_collections/', 'ansible_collections/certforge/', 'ansible_collections/certforge/pki/',
                    'ansible_collections/certforge/pki/plugins/', base):
            z.writestr(pkg + '__init__.py', '')
        z.writestr(base + 'bytecode_cache.py', SOURCE.read_text())
        z.writestr(base + 'probe.py', 'VALUE = %r\n' % value)
    return str(path)


def _run(payload, cache, extra_env=None):
    env = dict(os.environ, CERTFORGE_BYTECODE_CACHE=str(cache))
    env.update(extra_env or {})
    env.pop('PYTHONPATH', None)
    out = subprocess.run([sys.executable, '-c', RUN, payload], capture_output=True, text=True, env=env, check=True)
    return out.stdout.split()


def test_compiled_once_then_loaded_and_never_stale(tmp_path):
    cache = tmp_path / 'cache'
    first = _payload(tmp_path, 'one')
    assert _run(first, cache) == ['one', '_Loader']
    entries = sorted(os.listdir(str(cache)))
    assert len(entries) == 1 and oct(os.stat(str(cache)).st_mode & 0o777) == '0o700'
    assert oct(os.stat(str(cache / entries[0])).st_mode & 0o777) == '0o600'
    mtime = os.stat(str(cache / entries[0])).st_mtime_ns
    assert _run(first, cache) == ['one', '_Loader']
    assert os.stat(str(cache / entries[0])).st_mtime_ns == mtime      # read, not written again
    # another source under the same name: another entry, the new value
    assert _run(_payload(tmp_path, 'two'), cache) == ['two', '_Loader']
    assert len(os.listdir(str(cache))) == 2


def test_corrupt_entry_is_compiled_again(tmp_path):
    cache = tmp_path / 'cache'
    payload = _payload(tmp_path, 'three')
    _run(payload, cache)
    entry = cache / os.listdir(str(cache))[0]
    entry.write_bytes(b'\x00garbage')
    assert _run(payload, cache) == ['three', '_Loader']


@pytest.mark.parametrize('setting', ['group_writable', 'off'])
def test_not_used_when_shared_or_off(tmp_path, setting):
    cache = tmp_path / 'cache'
    payload = _payload(tmp_path, 'four')
    if setting == 'off':
        assert _run(payload, cache, {'CERTFORGE_BYTECODE_CACHE': '0'})[1] != '_Loader'
        return
    cache.mkdir(mode=0o770)
    os.chmod(str(cache), 0o770)
    assert _run(payload, cache)[1] != '_Loader'
    assert os.listdir(str(cache)) == []


def test_no_op_outside_a_zip(tmp_path):
    """Imported from the file system (unit tests, ansible-test) it does nothing."""
    code = ('import sys; sys.path.insert(0, %r)\n'
            'from ansible_collections.certforge.pki.plugins.module_utils import bytecode_cache as b\n'
            'b.install(); print(any(type(f).__name__ == "_Finder" for f in sys.meta_path))' % sys.path[0])
    env = dict(os.environ, CERTFORGE_BYTECODE_CACHE=str(tmp_path / 'cache'))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == 'False'
    assert not (tmp_path / 'cache').exists()
