import os
import stat

import pytest

from ansible_collections.certforge.pki.plugins.module_utils.core import files
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, PermanentError
from ansible_collections.certforge.pki.plugins.module_utils.core.files import (
    BACKUP_DIR_NAME,
    Transaction,
    atomic_write,
    ensure_parent_dir,
    ensure_within,
    file_state,
    parse_mode,
)

IS_ROOT = os.geteuid() == 0
NOBODY = 65534


def snapshot(path):
    """Everything a byte-exact restore must bring back."""
    st = os.stat(path)
    with open(path, 'rb') as handle:
        data = handle.read()
    return data, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns


def write(path, data, mode=0o644):
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)


def leftovers(directory):
    return [n for n in os.listdir(directory) if 'certforge-tmp' in n]


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


# -- parse_mode / names ------------------------------------------------------------------------

@pytest.mark.parametrize('value, expected', [
    ('0644', 0o644), ('644', 0o644), ('0o600', 0o600), (0o640, 0o640), ('2750', 0o2750), (None, None),
])
def test_parse_mode_accepts(value, expected):
    assert parse_mode(value) == expected


@pytest.mark.parametrize('value', ['u=rw', '0999', '', True, 0o17777, 'rw-r--r--'])
def test_parse_mode_refuses_with_option(value):
    with pytest.raises(ConfigError) as info:
        parse_mode(value, option='certificates[1].mode')
    assert info.value.option == 'certificates[1].mode'
    assert "'0644'" in str(info.value)


@pytest.mark.parametrize('name', ['..', '../x', 'a/b', '/abs', '', 'a..b', '.', 'x\x00'])
def test_ensure_within_refuses_escapes(tmp_path, name):
    with pytest.raises(ConfigError) as info:
        ensure_within(str(tmp_path), name, 'name')
    assert info.value.option == 'name'


def test_ensure_within_refuses_symlink_escape(tmp_path):
    os.symlink('/etc', str(tmp_path / 'link'))
    with pytest.raises(ConfigError):
        ensure_within(str(tmp_path), 'link', 'name')


def test_ensure_within_joins(tmp_path):
    assert ensure_within(str(tmp_path), 'web.example.com', 'name') == str(tmp_path / 'web.example.com')


def test_ensure_parent_dir_names_option_and_fix(tmp_path):
    with pytest.raises(ConfigError) as info:
        ensure_parent_dir(str(tmp_path / 'missing' / 'cert.pem'), 'certificate_path')
    assert info.value.option == 'certificate_path'
    assert 'create the directory first' in str(info.value)
    assert ensure_parent_dir(str(tmp_path / 'cert.pem'), 'certificate_path') == str(tmp_path)


def test_unknown_owner_and_group(tmp_path):
    with pytest.raises(ConfigError) as info:
        Transaction().stage(str(tmp_path / 'x'), b'x', owner='no-such-user-certforge')
    assert info.value.option == 'owner'
    with pytest.raises(ConfigError) as info:
        Transaction().stage(str(tmp_path / 'x'), b'x', group='no-such-group-certforge')
    assert info.value.option == 'group'


# -- file_state --------------------------------------------------------------------------------

def test_file_state(tmp_path):
    path = str(tmp_path / 'a')
    assert file_state(path) == dict(exists=False, sha256=None, mode=None, uid=None, gid=None)
    write(path, b'abc', 0o640)
    state = file_state(path)
    assert state['exists'] and state['mode'] == '0640' and state['uid'] == os.getuid()
    assert state['sha256'] == 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'


# -- atomic_write ------------------------------------------------------------------------------

@pytest.mark.parametrize('mask', [0o077, 0o022, 0o000])
def test_atomic_write_exact_mode_whatever_umask(tmp_path, umask, mask):
    umask(mask)
    path = str(tmp_path / 'cert.pem')
    atomic_write(path, b'data', mode='0644')
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    atomic_write(path, b'data', mode=0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert leftovers(str(tmp_path)) == []


def test_atomic_write_never_wider_than_final_mode_at_creation(tmp_path, umask, monkeypatch):
    umask(0o000)
    created = []
    real_open = os.open

    def spy(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT:
            created.append(mode)
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(files.os, 'open', spy)
    atomic_write(str(tmp_path / 'key.pem'), b'secret', mode='0600')
    assert created == [0o600]


def test_atomic_write_keeps_mode_and_owner_of_existing_file(tmp_path):
    path = str(tmp_path / 'cert.pem')
    write(path, b'old', 0o640)
    if IS_ROOT:
        os.chown(path, NOBODY, NOBODY)
    atomic_write(path, b'new')
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o640
    if IS_ROOT:
        assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
    with open(path, 'rb') as handle:
        assert handle.read() == b'new'


@pytest.mark.skipif(not IS_ROOT, reason='chown needs root')
def test_atomic_write_owner_group(tmp_path):
    path = str(tmp_path / 'cert.pem')
    atomic_write(path, b'x', mode='0640', owner=str(NOBODY), group=NOBODY)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOBODY, 0o640)


def test_atomic_write_failure_leaves_original_and_no_temp(tmp_path, monkeypatch):
    path = str(tmp_path / 'cert.pem')
    write(path, b'old')
    before = snapshot(path)

    def boom(src, dst):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(files.os, 'replace', boom)
    with pytest.raises(OSError):
        atomic_write(path, b'new', mode='0644')
    assert snapshot(path) == before
    assert leftovers(str(tmp_path)) == []


def test_atomic_write_needs_bytes(tmp_path):
    with pytest.raises(TypeError):
        atomic_write(str(tmp_path / 'x'), 'text')


# -- Transaction -------------------------------------------------------------------------------

def test_commit_backs_up_byte_exact_and_writes(tmp_path):
    a, b = str(tmp_path / 'a.pem'), str(tmp_path / 'b.pem')
    write(a, b'old-a\r\n\x00binary', 0o600)
    if IS_ROOT:
        os.chown(a, NOBODY, NOBODY)
    os.utime(a, ns=(1000000000, 2000000000))
    before_a = snapshot(a)
    txn = Transaction()
    txn.stage(a, b'new-a', mode='0644')
    txn.stage(b, b'new-b', mode='0640')
    txn.commit()

    backup = txn.backups[a]
    assert txn.backups[b] is None
    assert os.path.dirname(backup) == str(tmp_path / BACKUP_DIR_NAME)
    assert stat.S_IMODE(os.stat(os.path.dirname(backup)).st_mode) == 0o700
    assert os.path.basename(backup).startswith('a.pem.') and backup.endswith('Z.bak')
    assert snapshot(backup) == before_a
    assert txn.written == [a, b] and txn.created == [b]
    assert snapshot(a)[:2] == (b'new-a', 0o644)
    assert snapshot(b)[:2] == (b'new-b', 0o640)


def test_rollback_restores_byte_exact_and_removes_new_files(tmp_path):
    a, b = str(tmp_path / 'a.pem'), str(tmp_path / 'b.pem')
    write(a, b'old-a', 0o600)
    if IS_ROOT:
        os.chown(a, NOBODY, 0)
    os.utime(a, ns=(1000000000, 2000000000))
    before_a = snapshot(a)
    txn = Transaction()
    txn.stage(a, b'new-a', mode='0644', owner=0)
    txn.stage(b, b'new-b')
    txn.commit()
    assert snapshot(a)[:2] == (b'new-a', 0o644)

    report = txn.rollback()
    assert report == {'restored': [a], 'removed': [b]}
    assert snapshot(a) == before_a
    assert not os.path.exists(b)
    assert leftovers(str(tmp_path)) == []
    assert txn.rollback() == {'restored': [], 'removed': []}   # idempotent


def test_failed_write_rolls_back_earlier_writes(tmp_path, monkeypatch):
    a, b, c = (str(tmp_path / n) for n in ('a', 'b', 'c'))
    write(a, b'old-a', 0o644)
    write(c, b'old-c', 0o600)
    before = {a: snapshot(a), c: snapshot(c)}
    real = files.atomic_write
    calls = []

    def flaky(path, data, **kwargs):
        calls.append(path)
        if path == c and len(calls) == 3:
            raise OSError(13, 'Permission denied')
        return real(path, data, **kwargs)

    monkeypatch.setattr(files, 'atomic_write', flaky)
    txn = Transaction()
    for path in (a, b, c):
        txn.stage(path, b'new', mode='0644')
    with pytest.raises(PermanentError) as info:
        txn.commit()
    assert 'writing %s failed' % c in str(info.value)
    assert 'restored byte-exact' in str(info.value)
    assert snapshot(a) == before[a] and snapshot(c) == before[c]
    assert not os.path.exists(b)


def test_retention_prunes_oldest_per_file(tmp_path):
    path = str(tmp_path / 'cert.pem')
    other = str(tmp_path / 'other.pem')
    write(path, b'v0')
    write(other, b'o0')
    made = []
    for i in range(1, 6):
        txn = Transaction(retention=2)
        txn.stage(path, b'v%d' % i)
        if i == 1:
            txn.stage(other, b'o1')
        txn.commit()
        made.append(txn.backups[path])
    backup_dir = str(tmp_path / BACKUP_DIR_NAME)
    kept = sorted(n for n in os.listdir(backup_dir) if n.startswith('cert.pem.'))
    assert kept == sorted(os.path.basename(p) for p in made[-2:])
    with open(os.path.join(backup_dir, kept[-1]), 'rb') as handle:
        assert handle.read() == b'v4'
    assert len([n for n in os.listdir(backup_dir) if n.startswith('other.pem.')]) == 1


def test_shared_backup_dir_uses_names(tmp_path):
    (tmp_path / 'x').mkdir()
    (tmp_path / 'y').mkdir()
    shared = str(tmp_path / 'backups' / 'certs')
    x, y = str(tmp_path / 'x' / 'cert.pem'), str(tmp_path / 'y' / 'cert.pem')
    write(x, b'x0')
    write(y, b'y0')
    txn = Transaction(backup_dir=shared)
    txn.stage(x, b'x1', name='www')
    txn.stage(y, b'y1', name='api')
    txn.commit()
    assert os.path.basename(txn.backups[x]).startswith('www.cert.pem.')
    assert os.path.basename(txn.backups[y]).startswith('api.cert.pem.')
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o700

    clash = Transaction(backup_dir=shared)
    clash.stage(x, b'x2')
    with pytest.raises(ConfigError) as info:
        clash.stage(y, b'y2')
    assert info.value.option == 'backup_dir'


def test_stage_refuses_same_path_twice_and_bad_retention(tmp_path):
    txn = Transaction()
    txn.stage(str(tmp_path / 'a'), b'1')
    with pytest.raises(ConfigError):
        txn.stage(str(tmp_path / 'a'), b'2')
    for bad in (0, -1, 'x', True):
        with pytest.raises(ConfigError) as info:
            Transaction(retention=bad)
        assert info.value.option == 'backup_retention'


def test_rollback_before_commit_is_an_error(tmp_path):
    txn = Transaction()
    txn.stage(str(tmp_path / 'a'), b'1')
    with pytest.raises(RuntimeError):
        txn.rollback()
