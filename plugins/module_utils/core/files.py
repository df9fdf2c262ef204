# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes, byte-exact backups and multi-file transactions.

* ``atomic_write`` writes a temp file in the destination's directory, created with the final
  mode from the first byte (never wider, whatever the umask), fsyncs it, sets owner/group/mode,
  renames it over the destination and fsyncs the directory.  Readers see the old file or the
  new one, never a torn one.
* ``Transaction`` collects the files of one deploy (all certificates of a host), backs up every
  existing file byte-exact (content, mode, owner, group, times) and writes them all; a failed
  write rolls back the ones already written, and ``rollback()`` restores everything later (after
  a failed validate, reload or verify) and removes the files that did not exist before.
* ``file_state``, ``ensure_within`` and ``ensure_parent_dir`` help targets plan and refuse bad
  input with a ``ConfigError`` naming the option.

Standard library only; runs on managed hosts (Python 3.9+).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import grp
import hashlib
import os
import pwd
import re
import stat

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    ConfigError,
    PermanentError,
)

BACKUP_DIR_NAME = '.certforge-backup'
BACKUP_DIR_MODE = 0o700
_TIMESTAMP_FORMAT = '%Y%m%dT%H%M%S.%fZ'
_TIMESTAMP_RE = r'\d{8}T\d{6}\.\d{6}Z(?:-\d+)?'
_CHUNK = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# small helpers: modes, owners, names
# ---------------------------------------------------------------------------------------------

def parse_mode(mode, option='mode'):
    """Return ``mode`` as an int (``None`` stays ``None``).

    Accepts an int (as YAML ``0644`` or Ansible already converted it) or an octal string such
    as ``'0644'``, ``'644'`` or ``'0o644'``.  Symbolic modes are refused: a certificate file's
    mode should be read at a glance."""
    if mode is None:
        return None
    if isinstance(mode, bool):
        value = None
    elif isinstance(mode, int):
        value = mode
    else:
        text = str(mode).strip().lower()
        if text.startswith('0o'):
            text = text[2:]
        value = int(text, 8) if re.match(r'^[0-7]{1,4}$', text) else None
    if value is None or value < 0 or value > 0o7777:
        raise ConfigError('%r is not a file mode' % (mode,), option=option,
                          fix="give an octal string such as '0644' (quoted in YAML)")
    return value


def check_file_mode(mode, option='mode', secret=False):
    """A mode given by a user for a key or certificate file: an octal string (``'0644'``), never
    setuid, setgid or sticky, never world-writable; for a ``secret`` file never readable by
    others.  Returns the int (``None`` stays ``None``); ConfigError naming ``option`` otherwise.

    A YAML number is refused: ``mode: 644`` unquoted is the decimal 644, which is mode 01204."""
    if mode is None:
        return None
    if isinstance(mode, bool) or not isinstance(mode, (int, str)):
        raise ConfigError('%r is not a file mode' % (mode,), option=option,
                          fix="give an octal string such as '0644' (quoted in YAML)")
    if isinstance(mode, int):
        raise ConfigError('%d is a number, not an octal string: unquoted, YAML reads 644 as the '
                          'decimal 644 (mode %04o)' % (mode, mode & 0o7777), option=option,
                          fix="quote the mode as an octal string, e.g. mode: '0644'")
    text = mode.strip().lower()
    if text.startswith('0o'):
        text = text[2:]
    if not re.match(r'^[0-7]{3,4}$', text):
        raise ConfigError('%r is not an octal file mode' % (mode,), option=option,
                          fix="give an octal string such as '0644' (symbolic modes are not accepted)")
    value = int(text, 8)
    if value & 0o7000:
        raise ConfigError('%r sets setuid, setgid or sticky bits, which key and certificate files '
                          'must never have' % (mode,), option=option,
                          fix="drop the leading digit, e.g. mode: '0644'")
    if value & 0o002:
        raise ConfigError('%r makes the file world-writable' % (mode,), option=option,
                          fix="use mode: '0644' (or '0640' with a group)")
    if secret and value & 0o037:
        raise ConfigError('%r lets others read or write a private key' % (mode,), option=option,
                          fix="use mode: '0600' (or '0640' with a trusted group)")
    return value


def format_mode(mode):
    """``0o644`` -> ``'0644'``; ``None`` stays ``None``."""
    return None if mode is None else '%04o' % mode


def resolve_uid(owner, option='owner'):
    """User name or numeric id -> uid (``None`` stays ``None``)."""
    if owner is None or owner == '':
        return None
    if isinstance(owner, int) and not isinstance(owner, bool):
        return owner
    text = str(owner)
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise ConfigError('user %r does not exist on this host' % text, option=option,
                          fix='create the user first, or give an existing user name or uid')


def resolve_gid(group, option='group'):
    """Group name or numeric id -> gid (``None`` stays ``None``)."""
    if group is None or group == '':
        return None
    if isinstance(group, int) and not isinstance(group, bool):
        return group
    text = str(group)
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ConfigError('group %r does not exist on this host' % text, option=option,
                          fix='create the group first, or give an existing group name or gid')


def validate_name(name, option='name'):
    """Refuse names that could escape a directory: empty, '.', '..', separators, NUL."""
    text = '' if name is None else str(name)
    bad = (not text or text == '.' or '..' in text or '/' in text or os.sep in text
           or (os.altsep and os.altsep in text) or '\x00' in text)
    if bad:
        raise ConfigError('%r is not a valid name' % (name,), option=option,
                          fix="use letters, digits, '-', '_' and single dots; no '..' and no '/'")
    return text


def ensure_within(base_dir, name, option='name'):
    """Join ``name`` to ``base_dir``; refuse names with '..' or separators, or that would resolve
    outside ``base_dir`` (ConfigError naming ``option``).  Returns the joined path."""
    validate_name(name, option)
    base = os.path.realpath(base_dir)
    joined = os.path.join(base_dir, name)
    real = os.path.realpath(joined)
    if os.path.dirname(real) != base:
        raise ConfigError('%r resolves outside %s' % (name, base_dir), option=option,
                          fix="use a plain file name without '..' or '/'")
    return joined


def read_text(path, option, fix='check the path and its permissions'):
    """Text of ``path``; ConfigError naming ``option`` when it cannot be read."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise ConfigError('cannot read %s: %s' % (path, exc.strerror or exc), option=option, fix=fix)
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        raise ConfigError('%s holds binary data, not PEM text' % path, option=option,
                          fix='give a PEM file (-----BEGIN ...-----)')


def ensure_parent_dir(path, option):
    """The directory a file goes into must exist: we never create it (its owner and mode are
    the playbook's decision).  ConfigError naming ``option`` otherwise."""
    parent = os.path.dirname(os.path.abspath(path)) or '/'
    if not os.path.isdir(parent):
        raise ConfigError(
            'the directory %s of %s does not exist' % (parent, path), option=option,
            fix='create the directory first (for example with ansible.builtin.file '
                'state=directory), then run again')
    return parent


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def file_state(path):
    """What is at ``path`` now, for planning: ``exists``, ``sha256`` (hex), ``mode`` ('0644'),
    ``uid``, ``gid``.  Follows symbolic links; a missing file gives ``exists=False`` and Nones."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return dict(exists=False, sha256=None, mode=None, uid=None, gid=None)
        raise
    digest = sha256_file(path) if stat.S_ISREG(st.st_mode) else None
    return dict(exists=True, sha256=digest, mode=format_mode(stat.S_IMODE(st.st_mode)),
                uid=st.st_uid, gid=st.st_gid)


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories; the rename still happened
        pass
    finally:
        os.close(fd)


def _open_exclusive(path, mode):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
    return os.open(path, flags, mode)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _set_owner_mode(fd, uid, gid, mode, strict_uid=True, strict_gid=True):
    """fchown then fchmod (chown clears set-id bits, so chmod comes last).  An owner or group
    that is only being preserved (not asked for) is best effort: an unprivileged run cannot
    give a file away, and that must not fail the write."""
    st = os.fstat(fd)
    want_uid = -1 if uid is None or uid == st.st_uid else uid
    want_gid = -1 if gid is None or gid == st.st_gid else gid
    if want_uid != -1 or want_gid != -1:
        try:
            os.fchown(fd, want_uid, want_gid)
        except PermissionError:
            if (want_uid != -1 and strict_uid) or (want_gid != -1 and strict_gid):
                raise
    if mode is not None and stat.S_IMODE(os.fstat(fd).st_mode) != mode:
        os.fchmod(fd, mode)


# ---------------------------------------------------------------------------------------------
# atomic write
# ---------------------------------------------------------------------------------------------

def atomic_write(path, data, mode=None, owner=None, group=None):
    """Replace ``path`` with ``data`` (bytes) atomically.

    The temp file lives in the same directory (so the rename is atomic) and is created with
    ``mode`` from the first byte: ``os.open`` applies the umask, which can only narrow it, then
    ``fchmod`` sets it exactly.  ``mode``/``owner``/``group`` of ``None`` keep those of the file
    being replaced (a new file gets the process defaults).  ``owner``/``group`` may be names or
    ids.  Raises ``OSError`` on I/O failure, leaving ``path`` untouched."""
    if not isinstance(data, bytes):
        raise TypeError('atomic_write needs bytes')
    path = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(path)
    mode = parse_mode(mode)
    uid = resolve_uid(owner)
    gid = resolve_gid(group)
    preserve_uid = preserve_gid = False
    try:
        current = os.stat(path)
    except OSError:
        current = None
    if current is not None and stat.S_ISREG(current.st_mode):
        if mode is None:
            mode = stat.S_IMODE(current.st_mode)
        if uid is None:
            uid, preserve_uid = current.st_uid, True
        if gid is None:
            gid, preserve_gid = current.st_gid, True
    create_mode = 0o666 if mode is None else (mode & 0o777)

    base = os.path.basename(path)
    tmp = None
    fd = None
    for dummy in range(100):
        candidate = os.path.join(directory, '.%s.%s.certforge-tmp' % (base, os.urandom(6).hex()))
        try:
            fd = _open_exclusive(candidate, create_mode)
            tmp = candidate
            break
        except FileExistsError:
            continue
    if fd is None:
        raise OSError(errno.EEXIST, 'could not create a temporary file', directory)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
            _set_owner_mode(fd, uid, gid, mode, strict_uid=not preserve_uid, strict_gid=not preserve_gid)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(directory)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# transactions
# ---------------------------------------------------------------------------------------------

class _Staged:
    __slots__ = ('path', 'data', 'mode', 'uid', 'gid', 'name')

    def __init__(self, path, data, mode, uid, gid, name):
        self.path, self.data, self.mode, self.uid, self.gid, self.name = path, data, mode, uid, gid, name


class _Snapshot:
    """Everything needed to put a file back exactly as it was."""

    __slots__ = ('path', 'exists', 'data', 'mode', 'uid', 'gid', 'atime_ns', 'mtime_ns')

    def __init__(self, path):
        self.path = path
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                raise
            self.exists = False
            self.data = self.mode = self.uid = self.gid = self.atime_ns = self.mtime_ns = None
            return
        if not stat.S_ISREG(st.st_mode):
            raise PermanentError('%s is not a regular file' % path,
                                 fix='remove it or choose another path')
        with open(path, 'rb') as handle:
            self.data = handle.read()
        self.exists = True
        self.mode = stat.S_IMODE(st.st_mode)
        self.uid, self.gid = st.st_uid, st.st_gid
        self.atime_ns, self.mtime_ns = st.st_atime_ns, st.st_mtime_ns

    def restore(self):
        if self.exists:
            atomic_write(self.path, self.data, mode=self.mode, owner=self.uid, group=self.gid)
            os.utime(self.path, ns=(self.atime_ns, self.mtime_ns))
            return 'restored'
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        _fsync_dir(os.path.dirname(self.path))
        return 'removed'


def _utc_timestamp(now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime(_TIMESTAMP_FORMAT)


class Transaction:
    """All-or-nothing write of several files, with byte-exact backups.

    ``backup_dir`` None keeps backups in a ``.certforge-backup`` directory (mode 0700) beside
    each file, named ``<basename>.<UTC timestamp>.bak``.  With a shared ``backup_dir`` the names
    are ``<name>.<basename>.<UTC timestamp>.bak`` (``name`` from ``stage()`` or the
    transaction), so certificates with equal file names do not mix.  After a successful commit
    only the ``retention`` newest backups of each file are kept.

    After ``commit()``: ``backups`` maps every written path to its backup file (``None`` when the
    file is new), ``written`` lists the paths written, ``created`` the ones that did not exist.
    """

    def __init__(self, backup_dir=None, retention=5, name=None, clock=None):
        if retention is None:
            retention = 5
        if isinstance(retention, bool) or not isinstance(retention, int) or retention < 1:
            raise ConfigError('%r is not a valid backup retention' % (retention,),
                              option='backup_retention',
                              fix='give a whole number of at least 1 (the newest backup is what '
                                  'a rollback restores from disk)')
        if backup_dir is not None:
            backup_dir = os.path.abspath(os.fspath(backup_dir))
        if name is not None:
            validate_name(name)
        self.backup_dir = backup_dir
        self.retention = retention
        self.name = name
        self._clock = clock
        self._staged = []
        self._snapshots = []
        self.backups = {}
        self.written = []
        self.created = []
        self.pruned = []
        self.new_backups = []        # backup files this transaction made (not reused ones)
        self._pruned_data = []
        self.state = 'open'

    # -- staging -----------------------------------------------------------------------------

    @property
    def staged_paths(self):
        return [item.path for item in self._staged]

    def stage(self, path, data, mode=None, owner=None, group=None, name=None):
        """Add a file to write.  Owner/group/mode are resolved now, so bad values fail before
        anything is written."""
        if self.state != 'open':
            raise RuntimeError('transaction already %s' % self.state)
        if not isinstance(data, bytes):
            raise TypeError('Transaction.stage needs bytes')
        path = os.path.abspath(os.fspath(path))
        if path in self.staged_paths:
            raise ConfigError('%s is written twice in one deploy' % path, option='path',
                              fix='give every certificate, chain and fullchain its own path')
        if name is not None:
            validate_name(name)
        item = _Staged(path, data, parse_mode(mode), resolve_uid(owner), resolve_gid(group),
                       name if name is not None else self.name)
        directory, prefix = self._backup_location(item)
        for other in self._staged:
            if self._backup_location(other) == (directory, prefix):
                raise ConfigError(
                    '%s and %s would share backup names in %s' % (other.path, path, directory),
                    option='backup_dir',
                    fix='give each certificate a distinct name, or leave backup_dir unset to '
                        'keep backups beside each file')
        self._staged.append(item)
        return path

    def _backup_location(self, item):
        base = os.path.basename(item.path)
        if self.backup_dir is None:
            return os.path.join(os.path.dirname(item.path), BACKUP_DIR_NAME), base
        prefix = '%s.%s' % (item.name, base) if item.name else base
        return self.backup_dir, prefix

    # -- commit ------------------------------------------------------------------------------

    def commit(self):
        """Back up, then write every staged file.  On a failed write, restore the files written
        so far and raise ``PermanentError``; nothing is left half done."""
        if self.state != 'open':
            raise RuntimeError('transaction already %s' % self.state)
        self.state = 'committing'
        try:
            self._snapshots = [_Snapshot(item.path) for item in self._staged]
            stamp = _utc_timestamp(self._clock() if self._clock else None)
            for item, snap in zip(self._staged, self._snapshots):
                self.backups[item.path] = self._backup(item, snap, stamp) if snap.exists else None
        except ConfigError:
            self.state = 'failed'
            raise
        except (OSError, PermanentError) as exc:
            self.state = 'failed'
            raise PermanentError('could not back up the files before writing: %s' % exc,
                                 option='backup_dir',
                                 fix='check that the backup directory is writable and has space; '
                                     'nothing was changed')
        done = []
        for item, snap in zip(self._staged, self._snapshots):
            try:
                atomic_write(item.path, item.data, mode=item.mode, owner=item.uid, group=item.gid)
            except (OSError, ConfigError) as exc:
                failures = self._restore(done + [snap])
                self.state = 'failed'
                msg = 'writing %s failed: %s' % (item.path, exc)
                if failures:
                    msg += '; RESTORE FAILED for %s' % '; '.join(failures)
                else:
                    msg += '; every file written before it was restored byte-exact'
                raise PermanentError(msg, details={'path': item.path},
                                     fix='check ownership, permissions and free space of the '
                                         'destination directory')
            done.append(snap)
            self.written.append(item.path)
            if not snap.exists:
                self.created.append(item.path)
        self.state = 'committed'
        self._prune()
        return self.backups

    def _backup(self, item, snap, stamp):
        directory, prefix = self._backup_location(item)
        self._ensure_backup_dir(directory)
        same = self._same_backup(directory, prefix, snap)
        if same is not None:
            return same         # the newest backup already holds these bytes: no copy of a copy
        counter = 0
        while True:
            suffix = '' if counter == 0 else '-%d' % counter
            filename = '%s.%s%s.bak' % (prefix, stamp, suffix)
            target = os.path.join(directory, filename)
            try:
                fd = _open_exclusive(target, 0o600)
                break
            except FileExistsError:
                counter += 1
        try:
            _write_all(fd, snap.data)
            os.fsync(fd)
            _set_owner_mode(fd, snap.uid, snap.gid, snap.mode, strict_uid=False, strict_gid=False)
        finally:
            os.close(fd)
        os.utime(target, ns=(snap.atime_ns, snap.mtime_ns))
        _fsync_dir(directory)
        self.new_backups.append(target)
        return target

    @staticmethod
    def _backup_names(directory, prefix):
        pattern = re.compile(r'^%s\.%s\.bak$' % (re.escape(prefix), _TIMESTAMP_RE))
        try:
            return sorted(n for n in os.listdir(directory) if pattern.match(n))
        except OSError:
            return []

    def _same_backup(self, directory, prefix, snap):
        """The newest backup of this file when it holds exactly ``snap``'s bytes and mode."""
        names = self._backup_names(directory, prefix)
        if not names:
            return None
        newest = os.path.join(directory, names[-1])
        try:
            st = os.stat(newest)
            if stat.S_IMODE(st.st_mode) != snap.mode or st.st_size != len(snap.data):
                return None
            with open(newest, 'rb') as handle:
                return newest if handle.read() == snap.data else None
        except OSError:
            return None

    @staticmethod
    def _ensure_backup_dir(directory):
        if os.path.isdir(directory):
            return
        os.makedirs(directory, mode=BACKUP_DIR_MODE, exist_ok=True)
        os.chmod(directory, BACKUP_DIR_MODE)

    def _prune(self):
        seen = set()
        for item in self._staged:
            if self.backups.get(item.path) is None:
                continue
            directory, prefix = self._backup_location(item)
            if (directory, prefix) in seen:
                continue
            seen.add((directory, prefix))
            names = self._backup_names(directory, prefix)
            # retention counts distinct contents: of backups with equal bytes only the newest
            # stays, so failed runs cannot push the real history out with copies
            keep, seen_digests = set(), set()
            for name in reversed(names):
                try:
                    digest = sha256_file(os.path.join(directory, name))
                except OSError:
                    continue
                if digest in seen_digests or len(seen_digests) >= self.retention:
                    continue
                seen_digests.add(digest)
                keep.add(name)
            keep.add(os.path.basename(self.backups[item.path]))
            for old in names:
                if old in keep:
                    continue
                path = os.path.join(directory, old)
                try:
                    st = os.stat(path)
                    with open(path, 'rb') as handle:
                        data = handle.read()
                    os.unlink(path)
                except OSError:
                    continue
                self.pruned.append(path)
                # kept until the deploy's outcome is known: a rollback puts them back
                self._pruned_data.append((path, data, stat.S_IMODE(st.st_mode), st.st_atime_ns, st.st_mtime_ns))

    # -- rollback ----------------------------------------------------------------------------

    @staticmethod
    def _restore(snapshots):
        failures = []
        for snap in reversed(snapshots):
            try:
                snap.restore()
            except OSError as exc:
                failures.append('%s (%s)' % (snap.path, exc))
        return failures

    def rollback(self):
        """Put every written file back byte-exact (content, mode, owner, group, times) and remove
        the files this transaction created.  Returns ``{'restored': [...], 'removed': [...]}``;
        raises ``PermanentError`` naming the files it could not restore (their backups are
        listed in ``backups``)."""
        if self.state == 'rolled_back':
            return {'restored': [], 'removed': []}
        if self.state != 'committed':
            raise RuntimeError('nothing to roll back (transaction %s)' % self.state)
        written = set(self.written)
        snaps = [s for s in self._snapshots if s.path in written]
        failures = self._restore(snaps)
        if failures:
            self.state = 'rollback_failed'
            raise PermanentError(
                'could not restore %s' % '; '.join(failures),
                fix='restore by hand from the backups: %s' % ', '.join(
                    '%s -> %s' % (p, b) for p, b in sorted(self.backups.items()) if b))
        self.state = 'rolled_back'
        self._drop_new_backups(snaps)
        return {'restored': [s.path for s in snaps if s.exists],
                'removed': [s.path for s in snaps if not s.exists]}

    def _drop_new_backups(self, snaps):
        """A rolled-back deploy leaves no new backup: once every restored file is verified
        byte-exact, the backups this transaction made are removed (the files they hold are
        back in place)."""
        for snap in snaps:
            if not snap.exists:
                continue
            try:
                with open(snap.path, 'rb') as handle:
                    if handle.read() != snap.data:
                        return
            except OSError:
                return
        for path in self.new_backups:
            try:
                os.unlink(path)
            except OSError:
                continue
            for key, value in list(self.backups.items()):
                if value == path:
                    self.backups[key] = None
        self.new_backups = []
        for path, data, mode, atime_ns, mtime_ns in self._pruned_data:
            try:
                fd = _open_exclusive(path, 0o600)
            except OSError:
                continue
            try:
                _write_all(fd, data)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            os.utime(path, ns=(atime_ns, mtime_ns))
            if path in self.pruned:
                self.pruned.remove(path)
        self._pruned_data = []
