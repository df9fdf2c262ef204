# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``envoy`` target: Envoy's file-based secret discovery (SDS), which watches its files.

``mode: sds`` (default): one file per certificate (``certificate_options.sds_path``, ``.yaml``,
``.yml`` or ``.json``; ``0600``: it holds the key) holding an SDS ``DiscoveryResponse`` with one
``envoy.extensions.transport_sockets.tls.v3.Secret`` (``secret_name``, default the certificate
name) whose ``tls_certificate`` carries the chain and the key inline.  Certificate and key are
one file, replaced by one rename (the core's atomic write), which is the update Envoy watches for
(``path_config_source``).  Nothing else runs.

``mode: files``: the pair as files through a directory link switched with one rename (see
``targets.linkswap``), and an SDS file written once (``sds_path``, default
``<directory>/<name>.sds.yaml``; no key in it) naming them through the link, with
``watched_directory`` set to the directory so Envoy re-reads the pair when the link moves.

Use the SDS file in the listener's transport socket::

    tls_certificate_sds_secret_configs:
      - name: www
        sds_config:
          path_config_source: {path: /etc/envoy/tls/www.sds.yaml}
          resource_api_version: V3

``verify`` checks the served serial with a TLS handshake, polled with a deadline.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import FileSpec
from ansible_collections.certforge.pki.plugins.module_utils.sdk import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.targets import common, linkswap
from ansible_collections.certforge.pki.plugins.module_utils.targets.nginx import verify_settings

SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret'
EXTENSIONS = ('.yaml', '.yml', '.json')


def sds_document(secret_name, chain_pem=None, key_pem=None, chain_file=None, key_file=None, watched=None,
                 as_json=False):
    """The text of an SDS ``DiscoveryResponse`` with one TLS certificate ``Secret``: inline PEM
    (``chain_pem``/``key_pem``) or file names (``chain_file``/``key_file``, ``watched``
    directory).  YAML with literal blocks (PEM stays readable), or JSON."""
    if chain_pem is not None:
        certificate = {'certificate_chain': {'inline_string': chain_pem}, 'private_key': {'inline_string': key_pem}}
        version = hashlib.sha256((chain_pem + key_pem).encode('ascii')).hexdigest()[:16]
    else:
        certificate = {'certificate_chain': {'filename': chain_file}, 'private_key': {'filename': key_file}}
        if watched:
            certificate['watched_directory'] = {'path': watched}
        version = hashlib.sha256(('%s\n%s' % (chain_file, key_file)).encode('utf-8')).hexdigest()[:16]
    if as_json:
        document = {'version_info': version,
                    'resources': [{'@type': SECRET_TYPE, 'name': secret_name, 'tls_certificate': certificate}]}
        return json.dumps(document, indent=2) + '\n'
    lines = ['version_info: %s' % linkswap.quoted(version), 'resources:',
             '  - "@type": %s' % linkswap.quoted(SECRET_TYPE), '    name: %s' % linkswap.quoted(secret_name),
             '    tls_certificate:']
    for field in ('certificate_chain', 'private_key'):
        source = certificate[field]
        lines.append('      %s:' % field)
        if 'inline_string' in source:
            lines.append('        inline_string: ' + linkswap.block(source['inline_string'], 10).rstrip('\n'))
        else:
            lines.append('        filename: %s' % linkswap.quoted(source['filename']))
    if 'watched_directory' in certificate:
        lines.append('      watched_directory:')
        lines.append('        path: %s' % linkswap.quoted(certificate['watched_directory']['path']))
    return '\n'.join(lines) + '\n'


class EnvoyTarget(linkswap.LinkSwapTarget):
    """One SDS file (inline pair, one rename) or a link-swapped pair + an SDS file naming it."""

    name = 'envoy'
    certificate_option_spec = {
        'sds_path': {'type': 'path'},
        'secret_name': {'type': 'str'},
        'directory': {'type': 'path'},
    }
    config_default = '{name}.sds.yaml'

    @classmethod
    def option_spec(cls):
        spec = linkswap.LinkSwapTarget.option_spec()
        spec['mode'] = {'type': 'str', 'choices': ['sds', 'files'], 'default': 'sds'}
        return spec

    def __init__(self, options=None, runner=None):
        super(EnvoyTarget, self).__init__(options, runner)
        self.mode = self.options.get('mode') or 'sds'

    @staticmethod
    def _sds_path(request, required):
        path, option = common.cert_path(request, 'sds_path', required=required)
        if path is not None and not path.endswith(EXTENSIONS):
            raise ConfigError('%s does not end with %s' % (path, ', '.join(EXTENSIONS)), option=option,
                              fix='name the file .yaml or .json: Envoy picks the parser by the extension')
        return path, option

    def paths(self, request):
        if self.mode == 'files':
            # the SDS file naming the pair is the configuration file of the link swap
            certificate_options = dict(request.certificate_options or {})
            if certificate_options.get('sds_path'):
                self._sds_path(request, True)
                certificate_options['config_path'] = certificate_options['sds_path']
            request = _with_certificate_options(request, certificate_options)
        return super(EnvoyTarget, self).paths(request)

    def render_config(self, request, directory, link):
        return sds_document(self._secret_name(request), chain_file=os.path.join(link, linkswap.CERT_FILE),
                            key_file=os.path.join(link, linkswap.KEY_FILE), watched=directory,
                            as_json=self._config_path(request, directory).endswith('.json'))

    def _config_path(self, request, directory):
        given = (request.certificate_options or {}).get('sds_path')
        return given or os.path.join(directory, self.config_default.format(name=request.name))

    @staticmethod
    def _secret_name(request):
        return (request.certificate_options or {}).get('secret_name') or request.name

    def files(self, request):
        if self.mode == 'files':
            return self.link_specs(request)
        prefix = (request.options or {}).get('option_prefix', '')
        if not request.key_path:
            raise ConfigError('the envoy target needs key_path', option=prefix + 'key_path',
                              fix='set key_path: the key goes into the SDS file with the certificate')
        path, option = self._sds_path(request, True)
        common.check_allowed(self, [(path, option)])
        verify_settings((request.options or {}).get('verify'), prefix + 'verify')
        chain, key = linkswap.split_bundle(linkswap.pem_bundle(self, request, prefix))
        text = sds_document(self._secret_name(request), chain_pem=chain, key_pem=key, as_json=path.endswith('.json'))
        opts = request.options or {}
        return [FileSpec(path=path, content=text.encode('ascii'), mode='0600', owner=opts.get('owner'),
                         group=opts.get('group'), label='combined', option='certificate_options.sds_path',
                         secret=True)]

    def validate(self, applied):
        if self.mode == 'files':
            return super(EnvoyTarget, self).validate(applied)
        for item in applied:
            for spec in item.plan.files:
                text = spec.content.decode('ascii', 'replace')
                if SECRET_TYPE not in text or 'BEGIN CERTIFICATE' not in text or 'PRIVATE KEY' not in text:
                    raise DeployError('%s is not a complete SDS secret' % spec.path, option=spec.option)
        return None

    def reload(self, applied):
        if self.mode == 'files':
            return super(EnvoyTarget, self).reload(applied)
        return False            # Envoy watches the SDS file: the rename is the switch

    def verify(self, applied):
        if self.mode == 'files':
            return super(EnvoyTarget, self).verify(applied)
        return common.live_verify(self, applied)


def _with_certificate_options(request, certificate_options):
    import dataclasses
    return dataclasses.replace(request, certificate_options=certificate_options)


class EnvoyTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'envoy': EnvoyTarget}


plugin = EnvoyTargetPlugin()
