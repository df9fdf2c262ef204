# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``haproxy`` target: one combined PEM file per certificate (leaf, chain, key; ``0600``).

Two modes (``target_options.mode``):

* ``runtime_api`` (the default when ``stats_socket`` is given): after the file is written, the
  certificate is swapped in the running process through the runtime API (``set ssl cert <path>``
  with the new PEM, then ``commit ssl cert <path>``; ``abort ssl cert`` when either fails) with no
  reload, so no connection is dropped.  The file is written too, so a restart serves the same.
  ``<path>`` is the file's path exactly as the ``crt`` directive names it.  A rollback pushes the
  restored file the same way.
* ``reload``: ``validate_command`` (default ``[haproxy, -c, -f, <config>]``), then a master-worker
  reload: ``reload`` on the master CLI (``master_socket``; success read from ``show proc``), or
  ``reload_command`` (default ``[systemctl, reload, haproxy]``).

``verify`` checks the served serial with a TLS handshake, polled with a deadline.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import FileSpec
from ansible_collections.certforge.pki.plugins.module_utils.sdk import TargetConnector, hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.targets import common
from ansible_collections.certforge.pki.plugins.module_utils.targets.nginx import verify_settings

MODES = ('runtime_api', 'reload')
DEFAULT_CONFIG = '/etc/haproxy/haproxy.cfg'
DEFAULT_RELOAD_COMMAND = ['systemctl', 'reload', 'haproxy']

HAPROXY_OPTIONS = dict(
    mode=dict(type='str', choices=list(MODES)),
    stats_socket=dict(type='path'),
    master_socket=dict(type='path'),
    config=dict(type='path', default=DEFAULT_CONFIG),
    validate_command=dict(type='raw'),
    reload_command=dict(type='raw'),
    socket_timeout=dict(type='float', default=10.0),
    reload_timeout=dict(type='float', default=30.0),
    allowed_directories=common.ALLOWED_DIRECTORIES,
)

_PROC_MASTER = re.compile(r'^\s*(\d+)\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]', re.M)


class HaproxyTarget(TargetConnector):
    """Combined PEM + runtime API swap (no reload) or config test + master-worker reload."""

    name = 'haproxy'
    certificate_options = common.KEY_ONLY_CERTIFICATE_OPTIONS
    certificate_option_spec = {'pem_path': {'type': 'path'}}
    needs_destination = False

    @classmethod
    def option_spec(cls):
        return dict((k, dict(v)) for k, v in HAPROXY_OPTIONS.items())

    def __init__(self, options=None, runner=None):
        super(HaproxyTarget, self).__init__(options, runner)
        mode = self.options.get('mode')
        if mode is None:
            mode = 'runtime_api' if self.options.get('stats_socket') else 'reload'
        self.mode = mode
        if mode == 'runtime_api' and not self.options.get('stats_socket'):
            raise ConfigError('mode runtime_api needs stats_socket', option='stats_socket',
                              fix='give the admin-level stats socket (stats socket ... level admin), or use mode: reload')
        config = self.options.get('config') or DEFAULT_CONFIG
        self.validate_command = common.command_argv(self, 'validate_command', ['haproxy', '-c', '-f', config])
        self.reload_command = common.command_argv(self, 'reload_command', DEFAULT_RELOAD_COMMAND)
        self.timeout = float(self.options.get('socket_timeout') or 10.0)
        #: runtime API swaps done in this deploy (for results and tests)
        self.runtime_updates = 0

    # -- files ---------------------------------------------------------------------------------

    def files(self, request):
        path, option = common.cert_path(request, 'pem_path')
        common.check_allowed(self, [(path, option)])
        if self.mode == 'runtime_api':
            common.check_socket(self.options['stats_socket'], 'stats_socket')
        elif self.options.get('master_socket'):
            common.check_socket(self.options['master_socket'], 'master_socket')
        prefix = (request.options or {}).get('option_prefix', '')
        verify_settings((request.options or {}).get('verify'), prefix + 'verify')
        key = self.read_private_key(request, option=prefix + 'key_path').decode('ascii', 'replace')
        if not key.endswith('\n'):
            key += '\n'
        body = request.certificate_pem + ''.join(request.chain_pem or []) + key
        # the runtime API payload ends at the first empty line
        body = '\n'.join(line for line in body.splitlines() if line.strip()) + '\n'
        opts = request.options or {}
        return [FileSpec(path=path, content=body.encode('ascii'), mode='0600', owner=opts.get('owner'),
                         group=opts.get('group'), label='combined', option='certificate_options.pem_path',
                         secret=True)]

    # -- validate / reload ---------------------------------------------------------------------

    def validate(self, applied):
        if self.mode == 'runtime_api':
            return None      # the runtime API checks the pair itself at commit
        common.run_checked(self, self.validate_command, 'validate_command', 'config test',
                           'fix the haproxy configuration (the output says where), then run again')
        return None

    def reload(self, applied):
        if self.mode == 'runtime_api':
            for item in applied:
                for spec in item.plan.files:
                    self._runtime_swap(spec.path)
            return True
        if self.options.get('master_socket'):
            return self._master_reload()
        common.run_checked(self, self.reload_command, 'reload_command', 'reload',
                           'check that haproxy runs and that reload_command reaches it')
        return True

    def _runtime_swap(self, path):
        sock = self.options['stats_socket']
        with open(path, 'r') as handle:
            payload = handle.read()
        answer = common.socket_command(sock, 'set ssl cert %s' % path, self.timeout, 'stats_socket', payload=payload)
        if 'Transaction created' not in answer and 'Transaction updated' not in answer:
            self._abort(path)
            raise DeployError('haproxy refused `set ssl cert %s`: %s' % (path, common.trimmed(answer)),
                              option='stats_socket',
                              fix='the path must be the crt path exactly as haproxy.cfg names it, on an admin-level socket')
        answer = common.socket_command(sock, 'commit ssl cert %s' % path, self.timeout, 'stats_socket')
        if 'Success' not in answer:
            self._abort(path)
            raise DeployError('haproxy refused `commit ssl cert %s`: %s' % (path, common.trimmed(answer)),
                              option='stats_socket', fix='check that the key belongs to the certificate')
        self.runtime_updates += 1

    def _abort(self, path):
        try:
            common.socket_command(self.options['stats_socket'], 'abort ssl cert %s' % path, self.timeout,
                                  'stats_socket')
        except DeployError:
            pass

    def _master_state(self):
        answer = common.socket_command(self.options['master_socket'], 'show proc', self.timeout, 'master_socket')
        found = _PROC_MASTER.search(answer)
        if not found:
            raise DeployError('unexpected answer to `show proc` on the master CLI: %s' % common.trimmed(answer),
                              option='master_socket', fix='give the master CLI socket (haproxy -W -S <socket>)')
        return int(found.group(2)), int(found.group(3))

    def _master_reload(self):
        reloads, failed = self._master_state()
        common.socket_command(self.options['master_socket'], 'reload', self.timeout, 'master_socket')
        deadline = time.monotonic() + float(self.options.get('reload_timeout') or 30.0)
        delay = 0.02
        while True:
            try:
                now_reloads, now_failed = self._master_state()
            except DeployError:     # the master re-executes itself: its socket comes back
                now_reloads, now_failed = reloads, failed
            if now_failed > failed:
                raise DeployError('haproxy refused the reload (show proc: %d failed reloads); the old '
                                  'workers keep serving' % now_failed, option='master_socket',
                                  fix='run haproxy -c -f on the configuration to see why')
            if now_reloads > reloads:
                return True
            if time.monotonic() >= deadline:
                raise DeployError('haproxy did not report the reload within %ss' % self.options.get('reload_timeout'),
                                  option='master_socket', fix='check the haproxy master process')
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def verify(self, applied):
        return common.live_verify(self, applied)


class HaproxyTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'haproxy': HaproxyTarget}


plugin = HaproxyTargetPlugin()
