"""Backups: a rolled-back deploy leaves no new backup, equal contents are backed up once, and
retention counts distinct contents, so failed runs never push the real history out."""

import os

from ansible_collections.certforge.pki.plugins.module_utils.core.files import BACKUP_DIR_NAME, Transaction


def _backups(directory):
    path = directory / BACKUP_DIR_NAME
    return sorted(os.listdir(str(path))) if path.exists() else []


def _contents(directory):
    return [(directory / BACKUP_DIR_NAME / n).read_bytes() for n in _backups(directory)]


def _deploy(path, data, fail=False):
    txn = Transaction(retention=3)
    txn.stage(str(path), data, mode='0644')
    txn.commit()
    if fail:
        txn.rollback()
    return txn


def test_rolled_back_deploy_leaves_no_new_backup(tmp_path):
    cert = tmp_path / 'www.crt'
    cert.write_bytes(b'v1')
    before = _backups(tmp_path)
    for attempt in range(5):
        txn = _deploy(cert, b'bad-%d' % attempt, fail=True)
        assert cert.read_bytes() == b'v1'
        assert txn.backups[str(cert)] is None
    assert _backups(tmp_path) == before


def test_equal_contents_are_backed_up_once(tmp_path):
    cert = tmp_path / 'www.crt'
    cert.write_bytes(b'v1')
    _deploy(cert, b'v2')
    _deploy(cert, b'v1')        # back to v1: v2 is backed up
    _deploy(cert, b'v2')        # v1 again: the newest backup is v2, so v1 gets its own
    _deploy(cert, b'v2')        # same bytes written again: v2 is already the newest backup
    contents = _contents(tmp_path)
    assert contents.count(b'v2') == 1, contents


def test_retention_counts_distinct_contents(tmp_path):
    cert = tmp_path / 'www.crt'
    cert.write_bytes(b'v0')
    for version in range(1, 6):
        _deploy(cert, b'v%d' % version)
    # only the three newest distinct contents stay
    assert _contents(tmp_path) == [b'v2', b'v3', b'v4']
    # failed deploys of the current certificate add nothing and remove nothing
    for dummy in range(5):
        _deploy(cert, b'broken', fail=True)
    assert _contents(tmp_path) == [b'v2', b'v3', b'v4']
