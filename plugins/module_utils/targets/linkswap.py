# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate and key for servers that watch files (``traefik``, ``envoy`` mode ``files``),
switched together by one directory-link swap.

Per certificate ``<name>`` in ``certificate_options.directory``:

* ``<name>.pair.pem`` (``0600``): leaf, chain and key, written through the core's transaction
  like any file (byte-exact backups and rollback, diff facts from the leaf);
* ``<name>.<digest>/tls.crt`` (leaf + chain) and ``tls.key`` (``0600``): one directory per
  pair, named by the SHA-256 of the pair file, made complete (files fsynced) under a temporary
  name and renamed into place;
* ``<name>`` -> ``<name>.<digest>``: a symbolic link, switched by making a new link under a
  temporary name and renaming it over the old one (one ``rename(2)``), so a reader that resolves
  the link once sees the old pair or the new pair, never a mix;
* the server's configuration (``config_path``), naming the files through the link, written once.

``reload`` makes the link follow the pair file; after a rollback (pair file restored or
removed) it is called again and puts the link back, removing the directories it made.  After a
successful ``verify`` the versions beyond ``keep_versions`` (newest first, the current one
always kept) are removed.  Runs on the managed host: Python 3.9+, standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shutil

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.deployment import as_list
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.core.files import resolve_gid, resolve_uid
from ansible_collections.certforge.pki.plugins.module_utils.core.model import FileSpec
from ansible_collections.certforge.pki.plugins.module_utils.sdk import TargetConnector
from ansible_collections.certforge.pki.plugins.module_utils.targets import common
from ansible_collections.certforge.pki.plugins.module_utils.targets.nginx import verify_settings

CERT_FILE = 'tls.crt'
KEY_FILE = 'tls.key'
PAIR_SUFFIX = '.pair.pem'
DIGEST_LENGTH = 16

LINK_OPTIONS = dict(
    keep_versions=dict(type='int', default=3),
    allowed_directories=common.ALLOWED_DIRECTORIES,
)


def quoted(value):
    """A YAML scalar for ``value`` (a JSON string is a valid YAML double-quoted scalar)."""
    return json.dumps(str(value))


def block(text, indent):
    """A YAML literal block scalar (``|``) of ``text`` (PEM: ASCII lines, no leading spaces)."""
    pad = ' ' * indent
    return '|\n' + ''.join(pad + line + '\n' for line in text.splitlines())


def pem_bundle(target, request, prefix):
    """Leaf + chain + key as one text, empty lines dropped, ending with a newline."""
    key = target.read_private_key(request, option=prefix + 'key_path').decode('ascii', 'replace')
    body = request.certificate_pem + ''.join(request.chain_pem or []) + key
    return '\n'.join(line.rstrip() for line in body.splitlines() if line.strip()) + '\n'


def split_bundle(text):
    """(certificates PEM, key PEM) of a bundle made by ``pem_bundle``."""
    labels = cx509.pem_labels(text)
    blocks = cx509.split_pem(text)
    certs = ''.join(b if b.endswith('\n') else b + '\n' for label, b in zip(labels, blocks) if label == 'CERTIFICATE')
    keys = [b if b.endswith('\n') else b + '\n' for label, b in zip(labels, blocks) if label.endswith('PRIVATE KEY')]
    return certs, (keys[0] if keys else '')


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path, data, mode, uid, gid):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


class LinkSwapTarget(TargetConnector):
    """Pair file through the transaction; versioned directory + atomic link swap as the reload."""

    certificate_options = common.KEY_ONLY_CERTIFICATE_OPTIONS
    needs_destination = False
    #: default name of the configuration file, ``{name}`` replaced
    config_default = '{name}.yml'

    @classmethod
    def option_spec(cls):
        return dict((k, dict(v)) for k, v in LINK_OPTIONS.items())

    def __init__(self, options=None, runner=None):
        super(LinkSwapTarget, self).__init__(options, runner)
        keep = self.options.get('keep_versions')
        self.keep_versions = 3 if keep is None else keep
        if isinstance(self.keep_versions, bool) or not isinstance(self.keep_versions, int) or self.keep_versions < 2:
            raise ConfigError('%r is not a valid number of versions to keep' % (keep,), option='keep_versions',
                              fix='give 2 or more: the previous pair stays for readers still on it and for rollback')
        #: version directories made by this deploy (removed again when rolled back)
        self.created = []
        #: link switches done by this deploy (for results and tests)
        self.swaps = 0

    # -- paths ---------------------------------------------------------------------------------

    @staticmethod
    def directory_of(request):
        prefix = (request.options or {}).get('option_prefix', '')
        option = prefix + 'certificate_options.directory'
        value = (request.certificate_options or {}).get('directory')
        if not value:
            raise ConfigError('no directory given', option=option,
                              fix='set certificate_options.directory to the directory the server watches')
        value = os.path.expanduser(str(value))
        if not os.path.isabs(value):
            raise ConfigError('%s is not an absolute path' % value, option=option, fix='give an absolute path')
        if not os.path.isdir(value):
            raise ConfigError('the directory %s does not exist' % value, option=option,
                              fix='create the directory first, then run again')
        return os.path.normpath(value), option

    def paths(self, request):
        """(directory, link, pair file, config file, (option names)) of ``request``."""
        directory, option = self.directory_of(request)
        prefix = (request.options or {}).get('option_prefix', '')
        link = os.path.join(directory, request.name)
        if os.path.lexists(link) and not os.path.islink(link):
            raise ConfigError('%s exists and is not a symbolic link' % link, option=option,
                              fix='move it away: the target keeps a link of the certificate name there')
        config, config_option = common.cert_path(request, 'config_path', required=False)
        if config is None:
            config = os.path.join(directory, self.config_default.format(name=request.name))
            config_option = option
        common.check_allowed(self, [(link, option), (config, config_option)])
        # FileSpec options are named without the certificates[i]. prefix (the core adds it)
        names = tuple(o[len(prefix):] if prefix and o.startswith(prefix) else o for o in (option, config_option))
        return directory, link, os.path.join(directory, request.name + PAIR_SUFFIX), config, names

    # -- what is written -----------------------------------------------------------------------

    def render_config(self, request, directory, link):
        raise NotImplementedError

    def link_specs(self, request):
        prefix = (request.options or {}).get('option_prefix', '')
        if not request.key_path:
            raise ConfigError('the %s target needs key_path' % self.name, option=prefix + 'key_path',
                              fix='set key_path: key and certificate are switched together')
        directory, link, pair, config, options = self.paths(request)
        verify_settings((request.options or {}).get('verify'), prefix + 'verify')
        opts = request.options or {}
        owner, group = opts.get('owner'), opts.get('group')
        return [
            FileSpec(path=pair, content=pem_bundle(self, request, prefix).encode('ascii'), mode='0600', owner=owner,
                     group=group, label='combined', option=options[0], secret=True),
            FileSpec(path=config, content=self.render_config(request, directory, link).encode('utf-8'),
                     mode='0644', owner=owner, group=group, label='config', option=options[1]),
        ]

    def files(self, request):
        return self.link_specs(request)

    # -- validate / reload (the link swap) / verify --------------------------------------------

    def validate(self, applied):
        for item in applied:
            pair = self._pair_spec(item)
            if pair is None:
                continue
            certs, key = split_bundle(pair.content.decode('ascii', 'replace'))
            if not certs or not key:
                raise DeployError('%s does not hold a certificate and a key' % pair.path, option=pair.option)
        return None

    @staticmethod
    def _pair_spec(item):
        found = [s for s in item.plan.files if s.label == 'combined']
        return found[0] if found else None

    def reload(self, applied):
        swapped = False
        for item in applied:
            request = item.plan.request
            directory, link, pair, dummy, dummy = self.paths(request)
            swapped = self._follow(request, directory, link, pair) or swapped
        return swapped

    def _follow(self, request, directory, link, pair):
        """Point ``link`` at the version directory of what ``pair`` holds now (made when
        missing); no pair file: no link.  Versions this deploy made that are no longer current
        are removed.  True when the link changed."""
        try:
            with open(pair, 'rb') as handle:
                data = handle.read()
        except FileNotFoundError:
            data = None
        current = os.readlink(link) if os.path.islink(link) else None
        wanted = None
        if data is not None:
            wanted = '%s.%s' % (request.name, hashlib.sha256(data).hexdigest()[:DIGEST_LENGTH])
            if not os.path.isdir(os.path.join(directory, wanted)):
                self._materialise(request, directory, wanted, data)
        changed = False
        if wanted != current:
            if wanted is None:
                os.unlink(link)
            else:
                temporary = os.path.join(directory, '.%s.link-%d' % (request.name, os.getpid()))
                if os.path.lexists(temporary):
                    os.unlink(temporary)
                os.symlink(wanted, temporary)
                os.rename(temporary, link)          # the switch: one rename over the old link
            _fsync_dir(directory)
            self.swaps += 1
            changed = True
        for path in list(self.created):
            if os.path.basename(path) != wanted and os.path.dirname(path) == directory:
                shutil.rmtree(path, ignore_errors=True)
                self.created.remove(path)
        return changed

    def _materialise(self, request, directory, version, data):
        certs, key = split_bundle(data.decode('ascii', 'replace'))
        opts = request.options or {}
        uid, gid = resolve_uid(opts.get('owner')), resolve_gid(opts.get('group'))
        temporary = os.path.join(directory, '.%s.new-%d' % (version, os.getpid()))
        shutil.rmtree(temporary, ignore_errors=True)
        os.mkdir(temporary, 0o750)
        try:
            os.chmod(temporary, 0o755)
            if uid is not None or gid is not None:
                os.chown(temporary, -1 if uid is None else uid, -1 if gid is None else gid)
            _write(os.path.join(temporary, CERT_FILE), certs.encode('ascii'), 0o644, uid, gid)
            _write(os.path.join(temporary, KEY_FILE), key.encode('ascii'), 0o600, uid, gid)
            _fsync_dir(temporary)
            os.rename(temporary, os.path.join(directory, version))
        except OSError as exc:
            shutil.rmtree(temporary, ignore_errors=True)
            raise DeployError('cannot make %s (%s)' % (os.path.join(directory, version), exc),
                              option='certificate_options.directory', fix='check the permissions of the directory')
        self.created.append(os.path.join(directory, version))

    def verify(self, applied):
        served = common.live_verify(self, applied)
        for item in as_list(applied):
            directory, link, dummy, dummy, dummy = self.paths(item.plan.request)
            self.prune(item.plan.request.name, directory, link)
        return served

    def prune(self, name, directory, link):
        """Remove version directories of ``name`` beyond ``keep_versions`` (newest first; the
        one the link names is always kept)."""
        current = os.readlink(link) if os.path.islink(link) else None
        prefix = name + '.'
        versions = []
        for entry in os.listdir(directory):
            path = os.path.join(directory, entry)
            rest = entry[len(prefix):]
            if entry.startswith(prefix) and len(rest) == DIGEST_LENGTH and os.path.isdir(path) \
                    and not os.path.islink(path) and all(c in '0123456789abcdef' for c in rest):
                versions.append((os.stat(path).st_mtime, entry))
        versions.sort(reverse=True)
        kept = [entry for dummy, entry in versions if entry == current]
        for dummy, entry in versions:
            if entry in kept:
                continue
            if len(kept) < self.keep_versions:
                kept.append(entry)
                continue
            shutil.rmtree(os.path.join(directory, entry), ignore_errors=True)
