# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``dovecot`` target: certificate files for ``ssl_cert = <file``, ``doveconf -n``, a
key/certificate match (doveconf does not check the pair, and after a reload every handshake
would fail), ``doveadm reload`` and a live check over implicit TLS (IMAPS, POP3S).

``config`` selects an instance (``-c FILE`` on every command).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.certforge.pki.plugins.module_utils.sdk import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.targets import common
from ansible_collections.certforge.pki.plugins.module_utils.targets.files import VERIFY_CERTIFICATE_OPTIONS, FilesTarget

_Base = common.command_server_class(FilesTarget, VERIFY_CERTIFICATE_OPTIONS)


class DovecotTarget(_Base):
    """Files + doveconf -n + key match + doveadm reload + implicit TLS serial check."""

    name = 'dovecot'
    server = 'dovecot'

    @classmethod
    def option_spec(cls):
        spec = _Base.option_spec()
        spec['config'] = {'type': 'path'}
        return spec

    def default_commands(self):
        extra = ['-c', self.options['config']] if self.options.get('config') else []
        return ['doveconf', '-n'] + extra, ['doveadm'] + extra + ['reload']


class DovecotTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'dovecot': DovecotTarget}


plugin = DovecotTargetPlugin()
