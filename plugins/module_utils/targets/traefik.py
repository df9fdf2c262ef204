# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``traefik`` target: Traefik's file provider, which watches its dynamic configuration.

Per certificate ``<name>`` in ``certificate_options.directory`` (see ``targets.linkswap``): the
pair in ``<name>.<digest>/tls.crt`` + ``tls.key``, the link ``<name>`` switched to it with one
rename, and a dynamic configuration file written once (``config_path``, default
``<directory>/<name>.yml``)::

    tls:
      certificates:
        - certFile: "<directory>/<name>/tls.crt"
          keyFile: "<directory>/<name>/tls.key"

Point the file provider at that directory (``--providers.file.directory=<directory>``, watch on):
the link switch is an event in the watched directory, so Traefik reloads and reads the new pair.
No command is run.  ``verify`` checks the served serial with a TLS handshake, polled with a
deadline (Traefik reloads within a second or two).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.certforge.pki.plugins.module_utils.sdk import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.targets import linkswap


class TraefikTarget(linkswap.LinkSwapTarget):
    """Versioned pair directory + atomic link swap + a dynamic configuration written once."""

    name = 'traefik'
    certificate_option_spec = {
        'directory': {'type': 'path'},
        'config_path': {'type': 'path'},
    }
    config_default = '{name}.yml'

    def render_config(self, request, directory, link):
        return ('# certforge.pki traefik target, certificate %s: written once; the certificate and the key are\n'
                '# switched together by replacing the link %s (one rename)\n'
                'tls:\n'
                '  certificates:\n'
                '    - certFile: %s\n'
                '      keyFile: %s\n'
                % (request.name, link, linkswap.quoted(os.path.join(link, linkswap.CERT_FILE)),
                   linkswap.quoted(os.path.join(link, linkswap.KEY_FILE))))


class TraefikTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'traefik': TraefikTarget}


plugin = TraefikTargetPlugin()
