# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``java_keystore`` target: the key, leaf and chain as one alias of a JKS or PKCS#12
keystore, through ``keytool``.

* Passwords (store, key) come from secret per-certificate options and reach keytool only through
  0600 files in a private temporary directory (``-storepass:file``), never on its command line,
  where every user of the host could read them in the process list.
* The new keystore is built beside nothing that is live: the current keystore is copied into the
  private directory, the alias deleted there and imported again from a PKCS#12 bundle, and the
  result is written by the core as a new file renamed over the old one (atomic; byte-exact backup
  and rollback).  Other aliases stay as they are.
* A keystore that already holds this alias with the same certificate chain is left alone (no
  change); a wrong store password fails naming the option, the keystore untouched.
* ``state: absent`` removes the alias (an alias that does not exist is an error).
* verify: ``keytool -list -v`` on the written keystore; the alias must show the new serial.
* ``restart_command`` (optional argv) restarts the application that reads the keystore.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.deployment import split_certificates
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import FileSpec
from ansible_collections.certforge.pki.plugins.module_utils.sdk import TargetConnector, hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.targets import common
from ansible_collections.certforge.pki.plugins.module_utils.targets.pkcs12 import build_pkcs12

STORE_TYPES = {'jks': 'JKS', 'pkcs12': 'PKCS12'}
_SERIAL = re.compile(r'^Serial number:\s*([0-9A-Fa-f]+)\s*$', re.M)
_WRONG_PASSWORD = ('password was incorrect', 'keystore password was incorrect', 'Integrity check failed',
                   'failed to decrypt', 'Given final block not properly padded')
_NO_ALIAS = re.compile(r'Alias <[^>]*> does not exist')
#: keystores built in this process, keyed by what went in (planning twice gives the same bytes)
_BUILT = {}


def find_keytool(option):
    candidates = []
    java_home = os.environ.get('JAVA_HOME')
    if java_home:
        candidates.append(os.path.join(java_home, 'bin', 'keytool'))
    found = shutil.which('keytool')
    if found:
        candidates.append(found)
    candidates += ['/usr/bin/keytool', '/usr/local/bin/keytool']
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise ConfigError('keytool was not found', option=option,
                      fix='install a Java runtime on the host (keytool), set JAVA_HOME, or give target_options.keytool')


class _Workdir:
    """A private (0700) temporary directory holding password files; removed on exit."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix='certforge-keytool-')
        os.chmod(self.path, 0o700)
        return self

    def secret(self, name, value):
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write(value + '\n')
        return path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def run_keytool(keytool, args):
    """(rc, output) of keytool; its argv holds file names, never a password."""
    env = dict(os.environ, LC_ALL='C', LANG='C')
    env.pop('JAVA_TOOL_OPTIONS', None)
    proc = subprocess.run([keytool] + list(args), stdin=subprocess.DEVNULL, capture_output=True, env=env,
                          check=False, timeout=120)
    output = (proc.stdout + b'\n' + proc.stderr).decode('utf-8', 'replace')
    return proc.returncode, output


class JavaKeystoreTarget(TargetConnector):
    """One alias in a JKS or PKCS#12 keystore, through keytool."""

    name = 'java_keystore'
    certificate_options = ('name', 'certificate', 'chain', 'key_path', 'owner', 'group')
    certificate_option_spec = {
        'keystore_path': {'type': 'path'},
        'keystore_type': {'type': 'str', 'choices': sorted(STORE_TYPES), 'default': 'pkcs12'},
        'alias': {'type': 'str'},
        'store_password': {'type': 'str', 'no_log': True},
        'key_password': {'type': 'str', 'no_log': True},
        'state': {'type': 'str', 'choices': ['present', 'absent'], 'default': 'present'},
    }
    needs_destination = False
    option_spec = {
        'keytool': {'type': 'path'},
        'restart_command': {'type': 'raw'},
        'allowed_directories': common.ALLOWED_DIRECTORIES,
    }

    def __init__(self, options=None, runner=None):
        super(JavaKeystoreTarget, self).__init__(options, runner)
        self.restart_command = None
        if self.options.get('restart_command') is not None:
            self.restart_command = common.command_argv(self, 'restart_command', ['systemctl', 'restart', 'app'])
        self._settings = {}

    def _keytool(self):
        return self.options.get('keytool') or find_keytool('keytool')

    def _settings_of(self, request):
        prefix = (request.options or {}).get('option_prefix', '')
        own = request.certificate_options or {}
        path, option = common.cert_path(request, 'keystore_path')
        common.check_allowed(self, [(path, option)])
        store_password = own.get('store_password')
        if not store_password:
            raise ConfigError('no store password given', option=prefix + 'certificate_options.store_password',
                              fix='give certificate_options.store_password (from a vault)')
        kind = STORE_TYPES[own.get('keystore_type') or 'pkcs12']
        key_password = own.get('key_password') or store_password
        if kind == 'PKCS12' and key_password != store_password:
            raise ConfigError('a PKCS12 keystore has one password for the store and its keys',
                              option=prefix + 'certificate_options.key_password',
                              fix='drop key_password, or use keystore_type: jks')
        return {'path': path, 'option': option, 'prefix': prefix, 'type': kind,
                'alias': own.get('alias') or request.name, 'store_password': store_password,
                'key_password': key_password, 'state': own.get('state') or 'present'}

    def files(self, request):
        settings = self._settings_of(request)
        prefix = settings['prefix']
        keytool = self._keytool()
        chain_pems = [request.certificate_pem] + list(request.chain_pem or [])
        key_pem = self.read_private_key(request, option=prefix + 'key_path') if settings['state'] == 'present' else b''
        current = None
        if os.path.exists(settings['path']):
            with open(settings['path'], 'rb') as handle:
                current = handle.read()
        digest = hashlib.sha256(repr((settings['path'], settings['type'], settings['alias'], settings['state'],
                                      hashlib.sha256(settings['store_password'].encode()).hexdigest(),
                                      hashlib.sha256(settings['key_password'].encode()).hexdigest(),
                                      chain_pems, hashlib.sha256(key_pem).hexdigest(),
                                      hashlib.sha256(current or b'').hexdigest())).encode()).hexdigest()
        if digest not in _BUILT:
            _BUILT[digest] = self._build(keytool, settings, request, chain_pems, key_pem, current)
        self._settings[settings['path']] = settings
        opts = request.options or {}
        return [FileSpec(path=settings['path'], content=_BUILT[digest], mode='0600', owner=opts.get('owner'),
                         group=opts.get('group'), label='keystore', option='certificate_options.keystore_path',
                         secret=True)]

    def _build(self, keytool, settings, request, chain_pems, key_pem, current):
        prefix = settings['prefix']
        with _Workdir() as work:
            store_pass = work.secret('store.pass', settings['store_password'])
            key_pass = work.secret('key.pass', settings['key_password'])
            store = os.path.join(work.path, 'keystore')
            have_alias = False
            if current is not None:
                with open(store, 'wb') as handle:
                    handle.write(current)
                rc, output = run_keytool(keytool, ['-list', '-rfc', '-keystore', store, '-storetype', settings['type'],
                                                   '-storepass:file', store_pass, '-alias', settings['alias']])
                if rc != 0 and any(text in output for text in _WRONG_PASSWORD):
                    raise ConfigError('the keystore %s does not open with store_password (keytool: %s); the keystore '
                                      'is left untouched' % (settings['path'], _first_line(output)),
                                      option=prefix + 'certificate_options.store_password',
                                      fix='give the password of this keystore, or keystore_type matching the file')
                if rc != 0 and not _NO_ALIAS.search(output):
                    raise ConfigError('keytool cannot read %s: %s' % (settings['path'], _first_line(output)),
                                      option=settings['option'], fix='point keystore_path at a %s keystore'
                                      % settings['type'])
                have_alias = rc == 0
                if have_alias and settings['state'] == 'present' and _chain_in(output) == chain_pems:
                    return current          # the alias holds this chain already
            if settings['state'] == 'absent':
                if not have_alias:
                    raise ConfigError('alias %r does not exist in %s' % (settings['alias'], settings['path']),
                                      option=prefix + 'certificate_options.alias',
                                      fix='give the alias to remove (keytool -list shows them)')
            if have_alias:
                self._keytool_ok(keytool, ['-delete', '-alias', settings['alias'], '-keystore', store, '-storetype',
                                           settings['type'], '-storepass:file', store_pass], settings, 'delete')
            if settings['state'] == 'present':
                bundle = os.path.join(work.path, 'entry.p12')
                data = build_pkcs12(chain_pems[0], chain_pems[1:], key_pem, settings['key_password'],
                                    settings['alias'], 'modern', prefix + 'key_path')
                with open(bundle, 'wb') as handle:
                    handle.write(data)
                self._keytool_ok(keytool, ['-importkeystore', '-noprompt', '-srckeystore', bundle, '-srcstoretype',
                                           'PKCS12', '-srcstorepass:file', key_pass, '-srcalias', settings['alias'],
                                           '-destkeystore', store, '-deststoretype', settings['type'],
                                           '-deststorepass:file', store_pass, '-destalias', settings['alias']]
                                 + (['-destkeypass:file', key_pass] if settings['type'] == 'JKS' else []),
                                 settings, 'import')
            with open(store, 'rb') as handle:
                return handle.read()

    @staticmethod
    def _keytool_ok(keytool, args, settings, what):
        rc, output = run_keytool(keytool, args)
        if rc != 0:
            raise ConfigError('keytool %s failed for %s: %s' % (what, settings['path'], _first_line(output)),
                              option=settings['option'], fix='check the keystore and its passwords')

    def reload(self, applied):
        if self.restart_command is None:
            return False
        common.run_checked(self, self.restart_command, 'restart_command', 'restart',
                           'check that restart_command restarts the application that reads the keystore')
        return True

    def verify(self, applied):
        item = applied[0] if isinstance(applied, list) else applied
        spec = item.plan.files[0]
        settings = self._settings.get(spec.path)
        if settings is None:
            return None
        with _Workdir() as work:
            store_pass = work.secret('store.pass', settings['store_password'])
            rc, output = run_keytool(self._keytool(), ['-list', '-v', '-keystore', spec.path, '-storetype', settings['type'],
                                                       '-storepass:file', store_pass, '-alias', settings['alias']])
        if settings['state'] == 'absent':
            if rc == 0:
                raise DeployError('alias %r is still in %s' % (settings['alias'], spec.path),
                                  option=settings['prefix'] + 'certificate_options.alias')
            return None
        found = _SERIAL.search(output) if rc == 0 else None
        expected = item.plan.diff['after']['serial']
        if not found or int(found.group(1), 16) != int(expected, 16):
            raise DeployError('keytool -list -v does not show serial %s for alias %r in %s (%s)'
                              % (expected, settings['alias'], spec.path,
                                 found.group(1) if found else _first_line(output)),
                              option=settings['option'], fix='check whether another process writes the keystore')
        return cx509.serial_hex(int(found.group(1), 16))


def _first_line(output):
    for line in output.splitlines():
        line = line.strip()
        if line and not line.startswith('Warning'):
            return line[:300]
    return '(no output)'


def _chain_in(output):
    """The certificates keytool -list -rfc printed for one alias, normalised PEM."""
    try:
        return split_certificates(output[output.index('-----BEGIN CERTIFICATE-----'):])
    except (ValueError, ConfigError):
        return []


class JavaKeystoreTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'java_keystore': JavaKeystoreTarget}


plugin = JavaKeystoreTargetPlugin()
