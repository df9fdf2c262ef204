# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``postfix`` target: certificate files for ``smtpd_tls_chain_files`` (or
``smtpd_tls_cert_file``), ``postfix check``, a key/certificate match (postfix check accepts a
mismatched pair and smtpd then silently disables TLS), ``postfix reload`` (idle smtpd processes
keep the old TLS context until then) and a live check over SMTP STARTTLS.

``config_directory`` selects an instance (``postfix -c DIR``).  Postfix reports its own errors to
syslog unless stderr is a terminal; on hosts without syslog give commands that run it under
``script -qec`` so their output reaches the error message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.certforge.pki.plugins.module_utils.sdk import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.targets import common
from ansible_collections.certforge.pki.plugins.module_utils.targets.files import VERIFY_CERTIFICATE_OPTIONS, FilesTarget

_Base = common.command_server_class(FilesTarget, VERIFY_CERTIFICATE_OPTIONS)


class PostfixTarget(_Base):
    """Files + postfix check + key match + postfix reload + STARTTLS serial check."""

    name = 'postfix'
    server = 'postfix'
    starttls = 'smtp'

    @classmethod
    def option_spec(cls):
        spec = _Base.option_spec()
        spec['config_directory'] = {'type': 'path'}
        return spec

    def default_commands(self):
        base = ['postfix']
        if self.options.get('config_directory'):
            base += ['-c', self.options['config_directory']]
        return base + ['check'], base + ['reload']


class PostfixTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'postfix': PostfixTarget}


plugin = PostfixTargetPlugin()
