# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fulfilling ACME challenges: a built-in http-01 listener, an http-01 webroot writer, and
dns-01 (or dns-persist-01) through user hook commands with a propagation check by polling.

A challenge nobody here can fulfil is "presented": its data (token, key authorization, DNS
record name and value) goes back to the user, and the order waits for the next run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import subprocess
import threading

from ansible_collections.certforge.pki.plugins.module_utils.core import files as cfiles
from ansible_collections.certforge.pki.plugins.module_utils.core import polling
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    ConfigError, NotReadyError, PermanentError,
)
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import jws

HTTP01 = 'http-01'
DNS01 = 'dns-01'
DNS_PERSIST01 = 'dns-persist-01'
CHALLENGE_TYPES = (HTTP01, DNS01, DNS_PERSIST01)
WELL_KNOWN = '/.well-known/acme-challenge/'
ENV_PREFIX = 'CERTFORGE_ACME_'
HOOK_TIMEOUT = 120


def dns_record_name(domain, challenge_type=DNS01):
    domain = domain[2:] if domain.startswith('*.') else domain
    prefix = '_validation-persist' if challenge_type == DNS_PERSIST01 else '_acme-challenge'
    return '%s.%s' % (prefix, domain.rstrip('.'))


class Http01Listener:
    """Serves key authorizations on ``address:port`` from a thread (started on first use)."""

    def __init__(self, port, address='127.0.0.1'):
        self.port = int(port)
        self.address = address
        self.tokens = {}
        self.server = None
        self.thread = None

    def start(self):
        if self.server is not None:
            return
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        tokens = self.tokens

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                path = self.path.split('?', 1)[0]
                body = tokens.get(path[len(WELL_KNOWN):]) if path.startswith(WELL_KNOWN) else None
                if body is None:
                    self.send_response(404)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                data = body.encode('ascii')
                self.send_response(200)
                self.send_header('Content-Type', 'application/octet-stream')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                return None

        try:
            self.server = ThreadingHTTPServer((self.address, self.port), Handler)
        except OSError as exc:
            raise ConfigError('cannot listen on %s:%s for http-01: %s' % (self.address, self.port, exc.strerror or exc),
                              option='http01_listen_port',
                              fix='free the port, pick another one the CA reaches (a port forward), or '
                                  'use http01_webroot')
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={'poll_interval': 0.05})
        self.thread.daemon = True
        self.thread.start()

    def add(self, token, key_auth):
        self.start()
        self.tokens[token] = key_auth

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class Http01Webroot:
    """Writes ``<webroot>/.well-known/acme-challenge/<token>`` atomically (mode 0644)."""

    def __init__(self, webroot):
        self.webroot = webroot
        self.written = []

    def add(self, token, key_auth):
        directory = os.path.join(self.webroot, '.well-known', 'acme-challenge')
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            path = cfiles.ensure_within(directory, token, option='http01_webroot')
            cfiles.atomic_write(path, key_auth.encode('ascii'), mode=0o644)
        except OSError as exc:
            raise ConfigError('cannot write the http-01 file under %s: %s' % (self.webroot, exc.strerror or exc),
                              option='http01_webroot',
                              fix='give a directory the controller user can write and the web server serves')
        self.written.append(path)

    def cleanup(self):
        for path in self.written:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.written = []


class DnsHooks:
    """dns-01 through commands (argv lists).  Each record value is added on its own, so a
    wildcard and its apex (same TXT name, two values) need a hook that adds, not replaces;
    ``CERTFORGE_ACME_VALUES`` holds every value of that name (newline separated) for hooks that
    set the whole record set."""

    def __init__(self, add, remove=None, check=None, check_timeout=120, runner=None):
        for option, argv in (('dns_hook_add', add), ('dns_hook_remove', remove),
                             ('dns_propagation_command', check)):
            if argv is not None and (isinstance(argv, str) or not all(isinstance(a, str) for a in argv)):
                raise ConfigError('must be a list of arguments (argv), not a shell string', option=option,
                                  fix='for example ["/usr/local/bin/dns-hook", "add"]')
        self.add_argv = list(add or [])
        self.remove_argv = list(remove or [])
        self.check_argv = list(check or [])
        self.check_timeout = check_timeout
        self.runner = runner or self._run
        self.records = []       # (domain, name, value, token)
        self.pending_check = []

    @staticmethod
    def _run(argv, env):
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False,
                                  timeout=HOOK_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return 127, '', str(exc)
        return done.returncode, done.stdout, done.stderr

    def _env(self, domain, name, value, token):
        env = dict(os.environ)
        values = [r[2] for r in self.records if r[1] == name]
        if value not in values:
            values.append(value)
        env.update({ENV_PREFIX + 'DOMAIN': domain, ENV_PREFIX + 'RECORD_NAME': name,
                    ENV_PREFIX + 'VALUE': value, ENV_PREFIX + 'TOKEN': token or '',
                    ENV_PREFIX + 'VALUES': '\n'.join(values)})
        return env

    def add(self, domain, name, value, token):
        rc, out, err = self.runner(self.add_argv, self._env(domain, name, value, token))
        if rc != 0:
            raise ConfigError('the dns-01 add hook failed for %s (rc=%s): %s' % (name, rc, (err or out).strip()[:300]),
                              option='dns_hook_add', fix='make the hook add the TXT record and exit 0')
        self.records.append((domain, name, value, token))
        self.pending_check.append((domain, name, value, token))

    def wait_propagation(self, clock=None, sleep=None):
        """Poll the propagation command for every new record until it exits 0 (deadline
        ``dns_propagation_timeout``)."""
        if not self.check_argv or not self.pending_check:
            self.pending_check = []
            return
        todo = list(self.pending_check)

        def probe():
            for record in list(todo):
                rc, dummy, dummy2 = self.runner(self.check_argv, self._env(*record))
                if rc != 0:
                    raise NotReadyError('TXT %s not visible yet' % record[1])
                todo.remove(record)
            return True, None

        kwargs = {}
        if clock is not None:
            kwargs['clock'] = clock
        if sleep is not None:
            kwargs['sleep'] = sleep
        result = polling.poll_until(probe, self.check_timeout,
                                    polling.Schedule.steps((0.5, 1, 2, 5), jitter=0.1), **kwargs)
        if not result.done:
            raise ConfigError('DNS records %s did not propagate within %ss'
                              % (', '.join(r[1] for r in todo), self.check_timeout),
                              option='dns_propagation_timeout',
                              fix='raise dns_propagation_timeout or check the dns_hook_add command')
        self.pending_check = []

    def cleanup(self):
        errors = []
        if self.remove_argv:
            for record in self.records:
                rc, out, err = self.runner(self.remove_argv, self._env(*record))
                if rc != 0:
                    errors.append('%s: rc=%s %s' % (record[1], rc, (err or out).strip()[:200]))
        self.records = []
        return errors


class Solver:
    """Chooses and fulfils one challenge per authorization."""

    def __init__(self, challenge=HTTP01, listen_port=None, listen_address='127.0.0.1', webroot=None,
                 dns_hooks=None):
        if challenge not in CHALLENGE_TYPES:
            raise ConfigError('unknown challenge %r' % (challenge,), option='challenge',
                              fix='use one of %s' % ', '.join(CHALLENGE_TYPES))
        self.challenge = challenge
        self.listener = Http01Listener(listen_port, listen_address) if listen_port else None
        self.webroot = Http01Webroot(webroot) if webroot else None
        self.dns = dns_hooks
        self.warnings = []

    def can_fulfil(self, challenge_type):
        if challenge_type == HTTP01:
            return bool(self.listener or self.webroot)
        return bool(self.dns and self.dns.add_argv)

    def pick(self, authz):
        """The challenge dict to use for ``authz`` (dns-persist-01 when asked for and offered,
        else dns-01)."""
        offered = {c.get('type'): c for c in authz.get('challenges') or []}
        wanted = [self.challenge]
        if self.challenge == DNS_PERSIST01:
            wanted.append(DNS01)
        for kind in wanted:
            if kind in offered:
                return offered[kind]
        ident = (authz.get('identifier') or {}).get('value')
        raise PermanentError('the CA offers no %s challenge for %s (offered: %s)'
                             % (self.challenge, ident, ', '.join(sorted(k for k in offered if k))),
                             option='challenge', fix='use a challenge type the CA offers')

    def describe(self, authz, chall, account_key, account_uri=None):
        """Challenge data for the user (and the hooks)."""
        ident = (authz.get('identifier') or {}).get('value')
        domain = ('*.' + ident) if authz.get('wildcard') else ident
        token = chall.get('token')
        data = {'identifier': domain, 'type': chall.get('type'), 'url': chall.get('url'),
                'token': token, 'status': chall.get('status')}
        if chall.get('type') == DNS_PERSIST01:
            issuers = chall.get('issuer-domain-names') or []
            value = '%s; accounturi=%s' % (issuers[0] if issuers else '', account_uri or '')
            if authz.get('wildcard'):
                value += '; policy=wildcard'
            data.update(record_name=dns_record_name(ident, DNS_PERSIST01), record_value=value)
            return data
        key_auth = jws.key_authorization(token, account_key)
        data['key_authorization'] = key_auth
        if chall.get('type') == DNS01:
            data.update(record_name=dns_record_name(ident), record_value=jws.dns01_value(key_auth))
        else:
            data['resource'] = WELL_KNOWN + token
        return data

    def fulfil(self, data):
        if data['type'] == HTTP01:
            if self.listener:
                self.listener.add(data['token'], data['key_authorization'])
            if self.webroot:
                self.webroot.add(data['token'], data['key_authorization'])
        else:
            self.dns.add(data['identifier'], data['record_name'], data['record_value'], data.get('token'))

    def ready(self, clock=None, sleep=None):
        if self.dns:
            self.dns.wait_propagation(clock=clock, sleep=sleep)

    def adopt(self, challenges):
        """Take over the answers an earlier run placed for this order (its ``challenges``
        details), so that ``cleanup`` removes them too."""
        for info in challenges or []:
            if info.get('type') == HTTP01 and self.webroot and info.get('token'):
                directory = os.path.join(self.webroot.webroot, '.well-known', 'acme-challenge')
                path = os.path.join(directory, os.path.basename(info['token']))
                if path not in self.webroot.written:
                    self.webroot.written.append(path)
            elif self.dns and info.get('record_name') and info.get('record_value'):
                record = (info.get('identifier'), info['record_name'], info['record_value'], info.get('token'))
                if record not in self.dns.records:
                    self.dns.records.append(record)

    def release(self):
        """End of this process's part: stop the built-in listener, but keep webroot files and
        DNS records in place while the order is still pending (the CA may validate later)."""
        if self.listener:
            self.listener.stop()

    def cleanup(self):
        if self.listener:
            self.listener.stop()
        if self.webroot:
            self.webroot.cleanup()
        if self.dns:
            for error in self.dns.cleanup():
                self.warnings.append('dns-01 remove hook failed for %s' % error)
