# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The no-op of ``certforge.pki.certificate_request`` without parsing a key, a CSR or a
certificate.

A call with O(directory) keeps its result in ``<directory>/.certforge-request.json`` together
with what it was computed from: every option, the user and group ids they name, the code that
computed it (a digest of the module_utils sources), and for the directory and every key, CSR and
certificate file its type, mode, owner, group, size, inode, mtime and sha256.  The next call with
the same options returns that result when all of it is still the same: no cryptography import,
no parsing, no write.  Anything different (a byte of a file, a mode, an option, the code) and the
call plans as usual, then keeps the new result.

What the cache never holds or answers: calls with a passphrase (no secret is written), with
``rotate_key`` (a new key every run), with ``refuse``, in --diff mode (the diff needs the parsed
facts), and results that came with a warning or a message.  Results depending on the time of
the run (``days_left``, ``expired``, ``not_yet_valid`` of the certificate in use) are computed
again from the kept dates.  A result is kept as the no-op it stands for: ``changed`` false and
no reasons, with the files as they are after the call.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import grp
import hashlib
import json
import os
import pkgutil
import pwd
import stat

from ansible_collections.certforge.pki.plugins.module_utils import role_requests
from ansible_collections.certforge.pki.plugins.module_utils.key_request_spec import merge_request

CACHE_NAME = '.certforge-request.json'
VERSION = 1
FILE_OPTIONS = ('privatekey_path', 'csr_path', 'certificate_path')
#: the sources whose behaviour the kept result stands for
SOURCES = ('key_request.py', 'key_request_spec.py', 'request_cache.py', 'role_requests.py', 'core/x509.py', 'core/files.py',
           'core/argspec.py', 'core/errors.py')
_PACKAGE = 'ansible_collections.certforge.pki.plugins.module_utils'
_CODE = []
#: the call's options as the controller sent them (``_ansible_*`` keys left out), set by the
#: module before it plans; kept with the result (as ``raw``) for the controller's probe
RAW_ARGS = []


def code_digest(read):
    """The digest of SOURCES, each read by ``read(name) -> bytes``: on the host from the payload,
    on the controller (the probe's copy, plugins/plugin_utils/direct_action.py) from the files."""
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode('ascii') + b'\0' + (read(name) or b'') + b'\0')
    return digest.hexdigest()


def _code_digest():
    if not _CODE:
        try:
            _CODE.append(code_digest(lambda name: pkgutil.get_data(_PACKAGE, name)))
        except Exception:  # pylint: disable=broad-except
            _CODE.append(None)
    return _CODE[0]


def _requests(params):
    if params.get('role_vars') is not None:
        batch = role_requests.requests(role_requests.with_defaults(params['role_vars']))
    else:
        batch = params.get('requests')
    if batch:
        return [merge_request(params, entry) for entry in batch]
    return [params]


def _cacheable(params, check_mode, diff):
    if diff or not params.get('directory') or params.get('refuse'):
        return False
    try:
        for req in _requests(params):
            if req.get('privatekey_passphrase') or str(req.get('rotate_key')).lower() not in ('false', 'none', 'no', '0', 'off', 'n', 'f'):
                return False
    except Exception:  # pylint: disable=broad-except
        return False    # role variables that do not even expand: the call refuses them
    return True


def _resolve(name, value):
    try:
        if str(value).isdigit():
            return int(value)
        return pwd.getpwnam(value).pw_uid if name == 'owner' else grp.getgrnam(value).gr_gid
    except (KeyError, ValueError, OverflowError, TypeError):
        return None


def _ids(params):
    """The ids the names of owner/group stand for right now (an account renamed or renumbered
    changes what the module would do)."""
    out = {}
    for req in _requests(params):
        for name in ('owner', 'group'):
            value = req.get(name)
            if value is not None:
                out['%s:%s' % (name, value)] = _resolve(name, value)
    return out


def _file_state(path):
    """Type, mode, owner, group and inode of ``path`` itself; for a regular file also size, mtime
    and sha256; for a symbolic link also where it points and the state of what it reaches (a
    file rewritten behind an unchanged link is a change)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    state = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ino]
    if stat.S_ISLNK(st.st_mode):
        try:
            state.append(os.readlink(path))
            state.append(_file_state(os.path.realpath(path)))
        except OSError:
            return ['unreadable']
    elif stat.S_ISREG(st.st_mode):
        state += [st.st_size, st.st_mtime_ns]
        try:
            with open(path, 'rb') as handle:
                state.append(hashlib.sha256(handle.read()).hexdigest())
        except OSError:
            return ['unreadable']
    return state


def _files(params):
    paths = [os.path.abspath(params['directory'])]
    for req in _requests(params):
        for name in FILE_OPTIONS:
            if req.get(name):
                paths.append(os.path.abspath(os.path.expanduser(req[name])))
    return dict((path, _file_state(path)) for path in paths)


def _key(params, check_mode):
    code = _code_digest()
    if code is None:
        return None
    options = dict((k, v) for k, v in params.items() if not k.startswith('_ansible'))
    if params.get('role_vars') is not None:
        options.pop('requests', None)     # made from role_vars by the call (after the lookup)
    try:
        text = json.dumps({'v': VERSION, 'code': code, 'options': options, 'ids': _ids(params),
                           'euid': os.geteuid()}, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode('utf-8', 'surrogateescape')).hexdigest()


def _path(params):
    return os.path.join(os.path.abspath(params['directory']), CACHE_NAME)


def _read_kept(path):
    """The kept result at ``path``, only from a regular file (not a link) owned by the user this
    runs as and writable by nobody else: a result someone else wrote is never trusted (it holds
    the CSR the controller would have signed).  None when there is none to trust."""
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        handle = os.fdopen(fd, 'rb')
        fd = None
        with handle:
            return json.loads(handle.read().decode('utf-8'))
    finally:
        if fd is not None:
            os.close(fd)


def _parse_time(text):
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)


def _refresh_times(result):
    """``days_left`` / ``expired`` / ``not_yet_valid`` of the certificates in use, as of now."""
    now = datetime.datetime.now(datetime.timezone.utc)
    for entry in result.get('results') or [result]:
        cert = entry.get('current_certificate')
        if not isinstance(cert, dict) or 'not_after' not in cert:
            continue
        end, start = _parse_time(cert['not_after']), _parse_time(cert['not_before'])
        cert['days_left'] = round((end - now).total_seconds() / 86400.0, 2)
        cert['expired'] = now >= end
        cert['not_yet_valid'] = now < start


def lookup(params, check_mode=False, diff=False):
    """The kept result when nothing it was computed from has changed, else None."""
    if not _cacheable(params, check_mode, diff):
        return None
    try:
        kept = _read_kept(_path(params))
        if not isinstance(kept, dict) or kept.get('key') != _key(params, check_mode) or kept.get('files') != _files(params):
            return None
        result = kept['result']
        _refresh_times(result)
        return result
    except Exception:  # pylint: disable=broad-except
        return None   # no cache, an unreadable one or another version: plan as usual


def raw_key(args, code):
    """What the controller's probe (plugins/action/certificate_request.py) compares: the options
    as sent, before the module typed them, with the code, the user and its home directory.  None
    (never probed) for options naming environment variables, which only the module expands."""
    if code is None or not isinstance(args, dict):
        return None
    try:
        text = json.dumps(args, sort_keys=True)
        if '$' in text:
            return None
        text = json.dumps({'v': VERSION, 'code': code, 'args': json.loads(text), 'euid': os.geteuid(),
                           'home': os.path.expanduser('~')}, sort_keys=True)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode('utf-8', 'surrogateescape')).hexdigest()


def probe(args, code):
    """The controller's probe, run on the host without ansible-core's module runtime: the kept
    result when it was kept for exactly these options (``raw``) and nothing it was computed from
    has changed (the ids of owner and group, every file's state); None otherwise, and the module
    runs as usual.  Never raises."""
    try:
        key = raw_key(args, code)
        directory = args.get('directory')
        if key is None or not isinstance(directory, str) or not directory:
            return None
        path = os.path.join(os.path.abspath(os.path.expanduser(directory)), CACHE_NAME)
        kept = _read_kept(path)
        if not isinstance(kept, dict) or kept.get('raw') != key or not isinstance(kept.get('ids'), dict):
            return None
        for name_value, wanted in kept['ids'].items():
            name, value = name_value.split(':', 1)
            if _resolve(name, value) != wanted:
                return None
        for path, state in kept['files'].items():
            if _file_state(path) != state:
                return None
        result = kept['result']
        _refresh_times(result)
        return result
    except Exception:  # pylint: disable=broad-except
        return None


def _as_noop(result):
    out = json.loads(json.dumps(result))
    for entry in out.get('results') or [out]:
        entry['changed'] = False
        entry['changed_reasons'] = []
        entry['privatekey_changed'] = False
        entry['csr_changed'] = False
        entry.pop('backup_file', None)
        if entry.get('msg') or entry.get('diff'):
            return None
        cert = entry.get('current_certificate')
        if isinstance(cert, dict) and ('error' in cert or ('not_after' in cert and 'not_before' not in cert)):
            return None
    out['changed'] = False
    if isinstance(out.get('directory'), dict):
        out['directory'] = dict(out['directory'], changed=False, changed_reasons=[])
    return out


def remember(params, result, check_mode=False, diff=False):
    """Keep ``result`` (of a call that did not fail) for the next call with the same options.
    Never raises: the cache is an optimisation only."""
    if check_mode or not _cacheable(params, check_mode, diff):
        return
    try:
        noop = _as_noop(result)
        key = _key(params, check_mode)
        if noop is None or key is None:
            return
        certs = [os.path.abspath(os.path.expanduser(r['certificate_path'])) if r.get('certificate_path') else None
                 for r in _requests(params)]
        kept = {'key': key, 'files': _files(params), 'certs': certs, 'result': noop}
        raw = raw_key(RAW_ARGS[-1], _code_digest()) if RAW_ARGS else None
        if raw is not None:
            kept.update(raw=raw, ids=_ids(params))
        _write(_path(params), kept)
    except Exception:  # pylint: disable=broad-except
        return


def note_certificates(notes):
    """A deploy wrote certificates: ``notes`` is a list of ``(certificate_path, key_path, facts)``.
    Where a kept result (in that file's directory) reads a certificate_path with the key at
    key_path, its ``current_certificate`` becomes ``facts()`` (None: leave it) and the file's
    state is taken again; each kept result is read and written once.  Never raises."""
    by_cache = {}
    for certificate_path, key_path, facts in notes:
        cert = os.path.abspath(certificate_path)
        by_cache.setdefault(os.path.join(os.path.dirname(cert), CACHE_NAME), []).append((cert, key_path, facts))
    for path, entries in by_cache.items():
        try:
            _note(path, entries)
        except Exception:  # pylint: disable=broad-except
            continue


def _note(path, notes):
    try:
        kept = _read_kept(path)
    except (OSError, ValueError):
        return
    if not isinstance(kept, dict):
        return
    certs = kept.get('certs') or []
    results = kept['result'].get('results') or [kept['result']]
    changed = False
    for cert, key_path, facts in notes:
        if cert not in certs or cert not in kept.get('files', {}):
            continue
        entry = results[certs.index(cert)]
        if (entry.get('privatekey') or {}).get('path') != os.path.abspath(key_path):
            continue
        new = facts()
        if new is None:
            continue
        entry['current_certificate'] = new
        kept['files'][cert] = _file_state(cert)
        changed = True
    if changed:
        _write(path, kept)


def _write(path, kept):
    data = json.dumps(kept, sort_keys=True).encode('utf-8')
    try:
        with open(path, 'rb') as handle:
            if handle.read() == data:
                return
    except OSError:
        pass
    tmp = '%s.%d.tmp' % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, 'O_NOFOLLOW', 0), 0o600)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
        os.replace(tmp, path)
    except Exception:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
