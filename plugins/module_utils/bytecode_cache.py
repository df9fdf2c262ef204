# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compiled code of this collection's module_utils, kept on the managed host between calls.

AnsiballZ ships module_utils as sources in a zip, and Python's zipimport compiles every imported
source again on every module call: for the deploy module that is about a quarter of a second
per call, more than ansible-core's own imports.  ``install()`` (a no-op anywhere but inside an
AnsiballZ payload) puts a finder in front of zipimport for ``ansible_collections.certforge.*``
modules (and ``ansible.module_utils.*``, which a direct run imports after it, see direct.py),
loaded from the payload's zip only, that keeps each compiled module in ``~/.ansible/certforge/bytecode/`` under the sha256
of its source, its name and the Python's cache tag, the way Python keeps ``__pycache__`` for
sources on disk.

Trust: the directory is made mode 0700 and used only while it is owned by the user running the
module and writable by nobody else; entries are written 0600 and renamed into place, so readers
never see a partial one.  A source that changed has another digest, so a stale entry is never
used; an unreadable or corrupt entry is compiled again.  Anything unexpected and the import
goes on exactly as without this cache.  ``CERTFORGE_BYTECODE_CACHE=0`` in the module's
environment turns it off; ``CERTFORGE_BYTECODE_CACHE=<directory>`` puts it elsewhere.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import marshal
import os
import stat
import sys

#: this collection's modules and ansible-core's module_utils, as shipped in the payload (a direct
#: run, plugins/module_utils/direct.py, imports the latter after this cache is installed)
PREFIXES = ('ansible_collections.certforge.', 'ansible.module_utils.')
MAX_ENTRIES = 400
_INSTALLED = []


def _directory():
    where = os.environ.get('CERTFORGE_BYTECODE_CACHE', '')
    if where.lower() in ('0', 'no', 'off', 'false'):
        return None
    path = where or os.path.join(os.path.expanduser('~'), '.ansible', 'certforge', 'bytecode')
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return None
    return path


class _Loader:
    """zipimport's loader, except that compiled code comes from (and goes to) the cache."""

    def __init__(self, inner, directory, origin, package, source):
        self.inner = inner
        self.directory = directory
        self.origin = origin
        self.package = package
        self.source = source

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def create_module(self, spec):  # pylint: disable=unused-argument
        return None

    def get_filename(self, fullname):  # pylint: disable=unused-argument
        return self.origin

    def is_package(self, fullname):  # pylint: disable=unused-argument
        return self.package

    def get_source(self, fullname):  # pylint: disable=unused-argument
        return self.source().decode('utf-8')

    def _code(self, fullname):
        data = self.source()
        tag = sys.implementation.cache_tag or 'python'
        digest = hashlib.sha256(tag.encode() + b'\0' + fullname.encode() + b'\0' + data).hexdigest()
        path = os.path.join(self.directory, '%s-%s.bin' % (tag, digest))
        try:
            with open(path, 'rb') as handle:
                return marshal.loads(handle.read())
        except (OSError, ValueError, EOFError, TypeError):
            pass
        code = compile(data, self.origin, 'exec', dont_inherit=True)
        tmp = '%s.%d.tmp' % (path, os.getpid())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
            with os.fdopen(fd, 'wb') as handle:
                handle.write(marshal.dumps(code))
            os.replace(tmp, path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return code

    def get_code(self, fullname):
        return self._code(fullname)

    def exec_module(self, module):
        exec(self._code(module.__spec__.name), module.__dict__)  # pylint: disable=exec-used


def _in_zip(entry):
    """``(archive, directory inside it)`` for a sys.path / __path__ entry inside a zip file."""
    marker = entry.find('.zip')
    while marker != -1:
        end = marker + len('.zip')
        if end == len(entry) or entry[end] == os.sep:
            return entry[:end], entry[end + 1:]
        marker = entry.find('.zip', end)
    return None, None


class _Finder:
    """Finds the modules of the payload's zip itself.  zipimport's own find_spec compiles every
    module it finds (Python 3.11's zipimporter.get_filename compiles the source to learn the
    file name), which would cost as much as the compile this cache saves."""

    def __init__(self, directory):
        self.directory = directory
        self.members = {}
        self.importers = {}

    def _members(self, archive):
        if archive not in self.members:
            import zipfile  # pylint: disable=import-outside-toplevel
            import zipimport  # pylint: disable=import-outside-toplevel
            handle = zipfile.ZipFile(archive)   # kept open: every module of the call is read from it
            self.members[archive] = frozenset(handle.namelist())
            self.importers[archive] = (zipimport.zipimporter(archive), handle)
        return self.members[archive]

    def find_spec(self, fullname, path=None, target=None):  # pylint: disable=unused-argument
        if not fullname.startswith(PREFIXES):
            return None
        import importlib.machinery  # pylint: disable=import-outside-toplevel
        base = fullname.rpartition('.')[2]
        for entry in (path if path is not None else sys.path):
            if not isinstance(entry, str):
                continue
            archive, inside = _in_zip(entry)
            if archive is None:
                continue
            try:
                members = self._members(archive)
            except Exception:  # pylint: disable=broad-except
                return None   # zipimport decides, as without this cache
            rel = (inside.replace(os.sep, '/') + '/' if inside else '') + base
            if (rel + '/__init__.py') in members:
                member, package = rel + '/__init__.py', True
            elif (rel + '.py') in members:
                member, package = rel + '.py', False
            else:
                continue
            importer, handle = self.importers[archive]
            origin = os.path.join(archive, *member.split('/'))
            loader = _Loader(importer, self.directory, origin, package,
                             lambda handle=handle, member=member: handle.read(member))
            spec = importlib.machinery.ModuleSpec(fullname, loader, origin=origin, is_package=package)
            if package:
                spec.submodule_search_locations = [os.path.join(archive, *rel.split('/'))]
            spec.has_location = True
            return spec
        return None

    def invalidate_caches(self):
        return None


def _prune(directory):
    try:
        names = os.listdir(directory)
        if len(names) <= MAX_ENTRIES:
            return
        paths = sorted((os.path.join(directory, n) for n in names), key=os.path.getmtime)
        for path in paths[:len(paths) - MAX_ENTRIES // 2]:
            os.unlink(path)
    except OSError:
        return


def install():
    """Use the cache for the rest of this module call (only inside an AnsiballZ payload)."""
    if _INSTALLED:
        return
    _INSTALLED.append(True)
    try:
        import zipimport  # pylint: disable=import-outside-toplevel
        if not isinstance(getattr(__spec__, 'loader', None), zipimport.zipimporter):
            return
        directory = _directory()
        if directory is None:
            return
        _prune(directory)
        sys.meta_path.insert(0, _Finder(directory))
    except Exception:  # pylint: disable=broad-except
        return
