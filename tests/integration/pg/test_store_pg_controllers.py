"""Many controllers, one PostgreSQL order store: real processes, a real server.

- two controller processes race over the same ten certificates: each is ordered exactly once;
- a controller SIGKILLed while it holds a lock: the other gets the lock well within the lease
  (the database sees the dead session at once);
- a controller SIGSTOPped while it holds a lock: the other gets it once the lease runs out, and
  the frozen one's write after SIGCONT is refused (fencing).
"""

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import TransientError
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import open_store

REPO = Path(__file__).resolve().parents[3]
WORKER = str(Path(__file__).with_name('store_worker.py'))
KEYS = ['ca+cert%02d.example.com' % i for i in range(10)]


def _python():
    venv = REPO / '.venv' / 'bin' / 'python'
    return str(venv) if venv.exists() else sys.executable


def _env():
    env = dict(os.environ)
    env['PYTHONPATH'] = str(REPO / 'build' / 'collections')
    return env


def _spawn(*args):
    return subprocess.Popen([_python(), WORKER] + list(args), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _readline(proc, timeout=60):
    """One line of ``proc``'s stdout within ``timeout`` seconds (AssertionError otherwise)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError('no output from worker within %ss' % timeout)
        return proc.stdout.readline().strip()
    finally:
        sel.close()


def _reap(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


def test_two_controllers_race_over_ten_certificates_each_ordered_once(pg_store_url, tmp_path):
    url = pg_store_url + '?lease=5'
    open_store(url).keys()                   # schema made before the race (it is also safe during it)
    ledger, start = str(tmp_path / 'ledger'), str(tmp_path / 'start')
    procs = [_spawn('race', url, ledger, start, *keys) for keys in (KEYS, list(reversed(KEYS)))]
    try:
        Path(start).touch()
        answers = [json.loads(_readline(p, 120)) for p in procs]
        for proc in procs:
            assert proc.wait(60) == 0, proc.stderr.read()
    finally:
        for proc in procs:
            _reap(proc)
    lines = Path(ledger).read_text().splitlines()
    ordered = sorted(line.split()[0] for line in lines)
    assert ordered == sorted(KEYS)                       # every certificate ordered exactly once
    for key in KEYS:
        actions = sorted(a[key] for a in answers)
        assert actions == ['resume', 'submitted'], (key, actions)
        record = open_store(url).load(key)
        submitter = [l.split()[1] for l in lines if l.split()[0] == key][0]
        assert record.order_id == '%s-%s' % (key, submitter)


def test_a_killed_holder_frees_the_lock_well_within_the_lease(pg_store_url):
    lease = 30.0
    url = pg_store_url + '?lease=%d' % lease
    holder = _spawn('hold', url, KEYS[0])
    try:
        assert _readline(holder) == 'locked'
        store = open_store(url)
        with pytest.raises(TransientError):
            with store.lock(KEYS[0], timeout=0):
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
        started = time.monotonic()
        with store.lock(KEYS[0], timeout=lease):
            waited = time.monotonic() - started
            store.record_intent(KEYS[0], 'fp', issuer='ca')
    finally:
        _reap(holder)
    assert waited < lease / 3, waited
    assert open_store(url).load(KEYS[0]).request_fingerprint == 'fp'


def test_a_frozen_holder_loses_the_lock_after_the_lease_and_its_write_is_refused(pg_store_url):
    lease = 2.0
    url = pg_store_url + '?lease=%d' % lease
    holder = _spawn('hold', url, KEYS[0])
    try:
        assert _readline(holder) == 'locked'
        holder.stdin.write('write\n')
        holder.stdin.flush()
        assert _readline(holder) == 'written'                # while it holds the lease, it writes
        os.kill(holder.pid, signal.SIGSTOP)
        store = open_store(url)
        started = time.monotonic()
        with store.lock(KEYS[0], timeout=30):
            waited = time.monotonic() - started
            store.record_intent(KEYS[0], 'fp-new-owner', token='new', issuer='ca')
            os.kill(holder.pid, signal.SIGCONT)
            holder.stdin.write('write\n')
            holder.stdin.flush()
            assert _readline(holder) == 'refused LeaseLostError'
            record = store.load(KEYS[0])
            assert (record.token, record.request_fingerprint) == ('new', 'fp-new-owner')
        holder.stdin.write('exit\n')
        holder.stdin.flush()
        assert _readline(holder) == 'release LeaseLostError'   # it learns it lost the lock
        assert holder.wait(30) == 0
    finally:
        os.kill(holder.pid, signal.SIGCONT) if holder.poll() is None else None
        _reap(holder)
    # it waited for the lease to run out (the frozen session was still connected), not longer
    assert lease * 0.5 <= waited < lease * 5, waited
