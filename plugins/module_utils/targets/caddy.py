# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``caddy`` target: certificate (fullchain) files for Caddy plus a way to make the running
Caddy take them, which it never does by itself (it does not watch certificate files).

* ``mode: api`` (default): the running configuration is read from the admin API
  (``GET /config/``), the certificate and key are put inline into ``apps.tls.certificates.load_pem``
  (one entry per certificate, tagged ``certforge:<name>``, replaced in place), and the whole
  configuration is posted back to ``/load``: Caddy validates it and swaps it in-process, no
  restart, no file watch.  A refusal fails the deploy with Caddy's error; the files are restored
  and the old configuration keeps serving.  The files are written too, so a restart from the
  Caddyfile serves the same certificate.  Keep ``admin.config.persist`` off (or the autosaved
  configuration holds the key) where that matters.
* ``mode: file``: ``validate_command`` (default ``[caddy, validate, --config, <config>]``) and
  ``reload_command`` (default ``[caddy, reload, --config, <config>, --force]``: ``--force`` makes
  Caddy re-read certificate files whose paths did not change).

verify checks the served serial with a TLS handshake, polled with a deadline.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.sdk import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.targets import common
from ansible_collections.certforge.pki.plugins.module_utils.targets.files import VERIFY_CERTIFICATE_OPTIONS, FilesTarget
from ansible_collections.certforge.pki.plugins.module_utils.targets.nginx import verify_settings

DEFAULT_CONFIG = '/etc/caddy/Caddyfile'
DEFAULT_ADMIN = 'http://localhost:2019'

CADDY_OPTIONS = dict(
    mode=dict(type='str', choices=['api', 'file'], default='api'),
    admin_url=dict(type='str', default=DEFAULT_ADMIN),
    config=dict(type='path', default=DEFAULT_CONFIG),
    validate_command=dict(type='raw'),
    reload_command=dict(type='raw'),
    api_timeout=dict(type='float', default=15.0),
    allowed_directories=common.ALLOWED_DIRECTORIES,
)


class CaddyTarget(FilesTarget):
    """Files + admin API load (or ``caddy reload --force``) + live serial check."""

    name = 'caddy'
    certificate_options = VERIFY_CERTIFICATE_OPTIONS

    @classmethod
    def option_spec(cls):
        return dict((k, dict(v)) for k, v in CADDY_OPTIONS.items())

    def __init__(self, options=None, runner=None):
        super(CaddyTarget, self).__init__(options, runner)
        self.mode = self.options.get('mode') or 'api'
        config = self.options.get('config') or DEFAULT_CONFIG
        self.admin_url = (self.options.get('admin_url') or DEFAULT_ADMIN).rstrip('/')
        if not self.admin_url.startswith(('http://', 'https://')):
            raise ConfigError('%s is not an http(s) URL' % self.admin_url, option='admin_url',
                              fix='give the admin endpoint, e.g. http://localhost:2019')
        address = self.admin_url.split('://', 1)[1]
        self.validate_command = common.command_argv(self, 'validate_command', ['caddy', 'validate', '--config', config])
        self.reload_command = common.command_argv(self, 'reload_command',
                                                  ['caddy', 'reload', '--config', config, '--address', address, '--force'])

    def files(self, request):
        prefix = (request.options or {}).get('option_prefix', '')
        if self.mode == 'api' and not request.key_path:
            raise ConfigError('mode api needs key_path', option=prefix + 'key_path',
                              fix='set key_path: the key is loaded into Caddy with the certificate')
        specs = super(CaddyTarget, self).files(request)
        common.check_allowed(self, [(s.path, prefix + s.option) for s in specs])
        verify_settings((request.options or {}).get('verify'), prefix + 'verify')
        return specs

    def validate(self, applied):
        if self.mode == 'api':
            return None           # Caddy validates the whole configuration at /load
        common.run_checked(self, self.validate_command, 'validate_command', 'config test',
                           'fix the Caddy configuration (the output says where), then run again')
        return None

    def reload(self, applied):
        if self.mode == 'file':
            common.run_checked(self, self.reload_command, 'reload_command', 'reload',
                               'check that caddy runs and that reload_command reaches its admin endpoint')
            return True
        config = self._api('GET', '/config/')
        if not isinstance(config, dict):
            raise DeployError('the admin API at %s holds no configuration' % self.admin_url, option='admin_url',
                              fix='start Caddy with its configuration first')
        apps = config.setdefault('apps', {})
        tls = apps.setdefault('tls', {})
        certificates = tls.setdefault('certificates', {})
        entries = [e for e in certificates.get('load_pem') or [] if isinstance(e, dict)]
        for item in applied:
            tag = 'certforge:%s' % item.plan.request.name
            cert_pem, key_pem = self._pems(item)
            entry = {'certificate': cert_pem, 'key': key_pem, 'tags': [tag]}
            entries = [e for e in entries if tag not in (e.get('tags') or [])] + [entry]
        certificates['load_pem'] = entries
        self._api('POST', '/load', config)
        return True

    def _pems(self, item):
        request = item.plan.request
        leaf = [s for s in item.plan.files if s.label == 'fullchain'] or \
            [s for s in item.plan.files if s.label == 'certificate']
        path = leaf[0].path if leaf else None
        if path is None:
            opts = request.options or {}
            path = opts.get('fullchain_path') or opts.get('certificate_path')
        with open(path, 'r') as handle:
            cert_pem = handle.read()
        key_pem = self.read_private_key(request).decode('ascii', 'replace')
        return cert_pem, key_pem

    def _api(self, method, path, body=None):
        import urllib.error
        from ansible.module_utils.urls import open_url
        data = json.dumps(body).encode('utf-8') if body is not None else None
        headers = {'Content-Type': 'application/json', 'Cache-Control': 'must-revalidate'}
        timeout = float(self.options.get('api_timeout') or 15.0)
        try:
            # the admin endpoint is local to the host: no proxy from the environment
            answer = open_url(self.admin_url + path, data=data, method=method, headers=headers,
                              timeout=timeout, use_proxy=False, follow_redirects='none')
            try:
                raw = answer.read()
            finally:
                answer.close()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode('utf-8', 'replace')
            try:
                text = json.loads(text).get('error') or text
            except (ValueError, AttributeError):
                pass
            raise DeployError('the Caddy admin API refused %s %s (HTTP %s): %s'
                              % (method, path, exc.code, common.trimmed(text)), option='admin_url',
                              fix='fix what Caddy names; the previous configuration keeps serving')
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, 'reason', exc)
            raise DeployError('cannot reach the Caddy admin API at %s (%s)' % (self.admin_url, reason),
                              option='admin_url', fix='check that caddy runs and admin_url is its admin endpoint')
        if not raw.strip():
            return None
        try:
            return json.loads(raw.decode('utf-8'))
        except ValueError:
            return None

    def verify(self, applied):
        return common.live_verify(self, applied)


class CaddyTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'caddy': CaddyTarget}


plugin = CaddyTargetPlugin()
