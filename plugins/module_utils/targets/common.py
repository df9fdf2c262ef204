# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers shared by the server targets (apache, haproxy, caddy, postfix, dovecot, traefik,
envoy, java_keystore, pkcs12): per-certificate paths from the target's own options, the
``allowed_directories`` fence, the live TLS check (plain, implicit TLS, SMTP STARTTLS), one
command on a UNIX socket, and command output trimmed for errors.

Runs on the host that runs the deploy (Python 3.9+, standard library only).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import stat

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.deployment import as_list
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError
from ansible_collections.certforge.pki.plugins.module_utils.targets.nginx import (
    argv_option,
    default_server_name,
    der_serial,
    verify_settings,
    wait_for_serial,
)

#: options every server target shares (``target_options``)
ALLOWED_DIRECTORIES = dict(type='list', elements='path')

#: the standard per-certificate options of targets whose files are their own options
KEY_ONLY_CERTIFICATE_OPTIONS = ('name', 'certificate', 'chain', 'key_path', 'owner', 'group', 'verify')

_OUTPUT_LIMIT = 4000


def cert_path(request, key, required=True):
    """The path of the target's per-certificate option ``key`` (``certificate_options.<key>``,
    else the standard option of the same name), checked: absolute, directory exists."""
    prefix = (request.options or {}).get('option_prefix', '')
    value = (request.certificate_options or {}).get(key)
    option = prefix + 'certificate_options.' + key
    if value is None and key in (request.options or {}):
        value = request.options.get(key)
        option = prefix + key
    if value is None:
        if required:
            raise ConfigError('no %s given' % key, option=option,
                              fix='set certificate_options.%s to the file the server reads' % key)
        return None, option
    value = os.path.expanduser(str(value))
    if not os.path.isabs(value):
        raise ConfigError('%s is not an absolute path' % value, option=option, fix='give an absolute path')
    if value.endswith('/'):
        raise ConfigError('%s ends with "/"; a file path is needed' % value, option=option,
                          fix='give the full file name')
    parent = os.path.dirname(value)
    if not os.path.isdir(parent):
        raise ConfigError('the directory %s of %s does not exist' % (parent, value), option=option,
                          fix='create the directory first, then run again')
    return os.path.normpath(value), option


def check_allowed(target, paths):
    """Refuse any of ``paths`` ((path, option) pairs) outside ``allowed_directories``."""
    allowed = target.options.get('allowed_directories')
    if not allowed:
        return
    roots = [os.path.realpath(os.path.expanduser(d)) for d in allowed]
    for path, option in paths:
        if path is None:
            continue
        real = os.path.realpath(os.path.dirname(path))
        if not any(real == root or real.startswith(root.rstrip('/') + '/') for root in roots):
            raise ConfigError('%s is outside the allowed directories (%s)' % (path, ', '.join(allowed)),
                              option=option,
                              fix='write below one of target_options.allowed_directories, or extend that list')


def text(value):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return '' if value is None else str(value)


def trimmed(output):
    output = text(output).strip()
    if len(output) > _OUTPUT_LIMIT:
        output = output[:_OUTPUT_LIMIT] + '\n[... output truncated]'
    return output


def check_socket(path, option):
    """ConfigError naming ``option`` unless ``path`` is an existing UNIX socket."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ConfigError('%s does not exist (%s)' % (path, exc.strerror or exc), option=option,
                          fix='give the path of the UNIX socket the server listens on')
    if not stat.S_ISSOCK(mode):
        raise ConfigError('%s is not a socket' % path, option=option,
                          fix='give the path of the UNIX socket the server listens on (not a file or directory)')


def socket_command(path, command, timeout, option, payload=None):
    """Send one command (with an optional ``<<`` payload, HAProxy style) on a UNIX socket,
    half-close, and return the whole answer (text).  DeployError naming ``option`` when the
    socket cannot be reached."""
    data = command
    if payload is not None:
        data += ' <<\n' + payload.strip('\n') + '\n\n'
    else:
        data += '\n'
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(data.encode('utf-8'))
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            sock.close()
    except (OSError, socket.timeout) as exc:
        raise DeployError('cannot talk to %s (%s)' % (path, exc), option=option,
                          fix='check that the server runs and that this user may use its socket')
    return b''.join(chunks).decode('utf-8', 'replace')


# ---------------------------------------------------------------------------------------------
# the live check
# ---------------------------------------------------------------------------------------------

def _read_line(sock, timeout):
    data = b''
    while not data.endswith(b'\n'):
        chunk = sock.recv(1)
        if not chunk:
            raise OSError('connection closed by the server')
        data += chunk
        if len(data) > 8192:
            raise OSError('answer line too long')
    return data.decode('ascii', 'replace')


def _smtp_reply(sock, timeout):
    """Read one SMTP reply (multi-line aware); returns (code, text)."""
    lines = []
    while True:
        line = _read_line(sock, timeout)
        lines.append(line.rstrip('\r\n'))
        if len(line) < 4 or line[3] != '-':
            break
    first = lines[0]
    try:
        code = int(first[:3])
    except ValueError:
        raise OSError('not an SMTP answer: %r' % first[:60])
    return code, '\n'.join(lines)


def smtp_starttls(sock, timeout):
    """Bring an SMTP connection to the point where the TLS handshake starts (what
    ``openssl s_client -starttls smtp`` does): greeting, EHLO, STARTTLS, 220."""
    code, answer = _smtp_reply(sock, timeout)
    if code != 220:
        raise OSError('SMTP greeting was %r' % answer[:80])
    sock.sendall(b'EHLO certforge.invalid\r\n')
    code, answer = _smtp_reply(sock, timeout)
    if code != 250:
        raise OSError('EHLO answered %r' % answer[:80])
    if 'STARTTLS' not in answer.upper():
        raise OSError('the server does not offer STARTTLS')
    sock.sendall(b'STARTTLS\r\n')
    code, answer = _smtp_reply(sock, timeout)
    if code != 220:
        raise OSError('STARTTLS answered %r' % answer[:80])


def fetch_served_certificate(host, port, server_name, timeout, starttls=None):
    """DER of the leaf ``host:port`` presents (SNI ``server_name``); ``starttls='smtp'`` speaks
    SMTP up to STARTTLS first.  No chain or host name check: this reads the serial served."""
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if starttls == 'smtp':
            smtp_starttls(sock, timeout)
        with context.wrap_socket(sock, server_hostname=server_name or None) as tls:
            return tls.getpeercert(binary_form=True)


def live_verify(target, applied, starttls=None, fetch=None):
    """The ``verify`` of a server target: poll the endpoint named by the certificate's
    ``verify`` option until it serves the new serial (hex returned); None without ``verify``."""
    items = as_list(applied)
    item = items[0]
    request = item.plan.request
    prefix = (request.options or {}).get('option_prefix', '')
    settings = verify_settings((request.options or {}).get('verify'), prefix + 'verify')
    if settings is None:
        return None
    expected = int(item.plan.diff['after']['serial'], 16)
    server_name = settings['server_name'] or default_server_name(item.plan.diff['after'])
    fetch = fetch or fetch_served_certificate

    def one(timeout):
        return fetch(settings['host'], settings['port'], server_name, timeout, starttls=starttls)

    served, dummy = wait_for_serial(one, expected, settings['timeout'], serial_of=der_serial,
                                    option=prefix + 'verify')
    return cx509.serial_hex(served)


def command_argv(target, key, default):
    """The argv list of command option ``key`` (strings refused: no shell)."""
    return argv_option(target.options.get(key), key, default)


def run_checked(target, argv, option, what, fix):
    """Run argv through the target's runner; DeployError naming ``option`` with the output."""
    if target.runner is None:
        raise DeployError('no command runner was given to the %s target' % target.name, option=option)
    rc, stdout, stderr = target.runner.run_command(list(argv))
    output = '\n'.join(p for p in (trimmed(stderr), trimmed(stdout)) if p)
    if rc != 0:
        raise DeployError('%s `%s` failed (rc=%s): %s' % (what, ' '.join(argv), rc, output or '(no output)'),
                          option=option, fix=fix, details={'command': list(argv), 'rc': rc})
    return output


# ---------------------------------------------------------------------------------------------
# a files target with a config test, a key match before the reload, a reload and a live check
# ---------------------------------------------------------------------------------------------

def command_server_class(files_target_class, verify_options):
    """Build the base class of command-driven servers (postfix, dovecot) on the files target,
    which this module cannot import at load time without a cycle in some loaders."""

    class CommandServerTarget(files_target_class):
        """Files + ``validate_command`` + key/certificate match + ``reload_command`` + live check.

        Subclasses set ``name``, ``server`` (for messages), ``starttls`` and
        ``default_commands(options) -> (validate argv, reload argv)``."""

        server = 'the server'
        starttls = None
        certificate_options = verify_options

        @classmethod
        def option_spec(cls):
            return {
                'validate_command': {'type': 'raw'},
                'reload_command': {'type': 'raw'},
                'reload': {'type': 'bool', 'default': True},
                'allowed_directories': dict(ALLOWED_DIRECTORIES),
            }

        def default_commands(self):
            raise NotImplementedError

        def __init__(self, options=None, runner=None):
            super(CommandServerTarget, self).__init__(options, runner)
            validate, reload_argv = self.default_commands()
            self.validate_command = command_argv(self, 'validate_command', validate)
            self.reload_command = command_argv(self, 'reload_command', reload_argv)
            enabled = self.options.get('reload')
            self.reload_enabled = True if enabled is None else bool(enabled)

        def files(self, request):
            prefix = (request.options or {}).get('option_prefix', '')
            if not request.key_path:
                raise ConfigError('the %s target needs key_path' % self.name, option=prefix + 'key_path',
                                  fix='set key_path to the key file %s loads: its config test does not check that '
                                      'key and certificate belong together, so the pair is checked before any reload'
                                      % self.server)
            specs = super(CommandServerTarget, self).files(request)
            check_allowed(self, [(s.path, prefix + s.option) for s in specs])
            verify_settings((request.options or {}).get('verify'), prefix + 'verify')
            return specs

        def validate(self, applied):
            run_checked(self, self.validate_command, 'validate_command', 'config test',
                        'fix the %s configuration (the output says where), then run again' % self.server)
            for item in applied:
                check_written_pair(item)
            return None

        def reload(self, applied):
            if not self.reload_enabled:
                return False
            run_checked(self, self.reload_command, 'reload_command', 'reload',
                        'check that %s runs and that reload_command reaches it' % self.server)
            return True

        def verify(self, applied):
            if not self.reload_enabled:
                return None
            return live_verify(self, applied, starttls=self.starttls)

    return CommandServerTarget


def check_written_pair(item):
    """The certificate as written must belong to the request's key (DeployError otherwise)."""
    from ansible_collections.certforge.pki.plugins.module_utils.core.deployment import check_key_matches
    request = item.plan.request
    prefix = (request.options or {}).get('option_prefix', '')
    leaf = [s for s in item.plan.files if s.label in ('certificate', 'fullchain')]
    if not leaf or not request.key_path:
        return
    with open(leaf[0].path, 'rb') as handle:
        data = handle.read()
    cert = cx509.load_certificate(data, option=prefix + (leaf[0].option or 'certificate_path'))
    try:
        check_key_matches(cert, request.key_path, prefix + 'key_path')
    except ConfigError as exc:
        raise DeployError('%s; not reloading' % exc.msg, option=exc.option, fix=exc.fix)
