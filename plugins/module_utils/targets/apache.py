# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``apache`` target: separate certificate, chain (and/or fullchain) files for mod_ssl, a
config test, a key/certificate match check, one graceful reload and a live check.

Apache accepts a key that does not belong to the certificate at ``apachectl -t`` and then dies on
the graceful reload.  So this target needs ``key_path`` (the file ``SSLCertificateKeyFile``
names): the core checks the pair before anything is written, and ``validate`` checks it again
against the files as written, after the config test and before the reload; a mismatch raises
and the core rolls back without ever reloading.

* validate: ``validate_command`` (default ``[apache2ctl, -t]``, or ``[apachectl, -t]`` where
  there is no apache2ctl), then the pair check;
* reload: ``reload_command`` (default ``[apache2ctl, graceful]`` / ``[apachectl, graceful]``);
* verify: a TLS handshake polled with a deadline until the new serial is served.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.deployment import check_key_matches
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.sdk import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.targets import common
from ansible_collections.certforge.pki.plugins.module_utils.targets.files import VERIFY_CERTIFICATE_OPTIONS, FilesTarget
from ansible_collections.certforge.pki.plugins.module_utils.targets.nginx import verify_settings

APACHE_OPTIONS = dict(
    validate_command=dict(type='raw'),
    reload_command=dict(type='raw'),
    reload=dict(type='bool', default=True),
    allowed_directories=common.ALLOWED_DIRECTORIES,
)


def _control_program():
    for directory in os.environ.get('PATH', '').split(os.pathsep) + ['/usr/sbin', '/sbin', '/usr/local/sbin']:
        if directory and os.access(os.path.join(directory, 'apache2ctl'), os.X_OK):
            return 'apache2ctl'
    return 'apachectl'


class ApacheTarget(FilesTarget):
    """Files + config test + key/certificate match + graceful reload + live serial check."""

    name = 'apache'
    certificate_options = VERIFY_CERTIFICATE_OPTIONS

    @classmethod
    def option_spec(cls):
        return dict((k, dict(v)) for k, v in APACHE_OPTIONS.items())

    def __init__(self, options=None, runner=None):
        super(ApacheTarget, self).__init__(options, runner)
        program = None
        if self.options.get('validate_command') is None or self.options.get('reload_command') is None:
            program = _control_program()
        self.validate_command = common.command_argv(self, 'validate_command', [program or 'apachectl', '-t'])
        self.reload_command = common.command_argv(self, 'reload_command', [program or 'apachectl', 'graceful'])
        enabled = self.options.get('reload')
        self.reload_enabled = True if enabled is None else bool(enabled)

    def files(self, request):
        prefix = (request.options or {}).get('option_prefix', '')
        if not request.key_path:
            raise ConfigError('the apache target needs key_path', option=prefix + 'key_path',
                              fix='set key_path to the file SSLCertificateKeyFile names: apache accepts a '
                                  'mismatched key at the config test and then dies on the reload, so the pair '
                                  'is checked before any reload')
        specs = super(ApacheTarget, self).files(request)
        common.check_allowed(self, [(s.path, prefix + s.option) for s in specs])
        verify_settings((request.options or {}).get('verify'), prefix + 'verify')
        return specs

    def validate(self, applied):
        common.run_checked(self, self.validate_command, 'validate_command', 'config test',
                           'fix the apache configuration (the output says where), then run again')
        for item in applied:
            self._check_pair(item)
        return None

    @staticmethod
    def _check_pair(item):
        """The certificate as written must belong to the key apache will load."""
        request = item.plan.request
        prefix = (request.options or {}).get('option_prefix', '')
        leaf = [s for s in item.plan.files if s.label in ('certificate', 'fullchain')]
        if not leaf:
            return
        with open(leaf[0].path, 'rb') as handle:
            data = handle.read()
        cert = cx509.load_certificate(data, option=prefix + (leaf[0].option or 'certificate_path'))
        try:
            check_key_matches(cert, request.key_path, prefix + 'key_path')
        except ConfigError as exc:
            raise DeployError('%s; not reloading (apache would exit on the graceful reload)' % exc.msg,
                              option=exc.option, fix=exc.fix)

    def reload(self, applied):
        if not self.reload_enabled:
            return False
        common.run_checked(self, self.reload_command, 'reload_command', 'reload',
                           'check that apache runs and that reload_command reaches it')
        return True

    def verify(self, applied):
        if not self.reload_enabled:
            return None
        return common.live_verify(self, applied)


class ApacheTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'apache': ApacheTarget}


plugin = ApacheTargetPlugin()
