# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``nginx`` target: the files target plus config test, reload and a live check.

* validate: ``validate_command`` (argv list, default ``[nginx, -t]``) after the files are in
  place (nginx -t reads the certificate files, so it must run after the write);
* reload: ``reload_command`` (default ``[nginx, -s, reload]``), once per deploy; with
  ``pid_file`` set and no live process behind it (missing file, stale PID), ``start_command``
  instead: the first deploy to a host whose nginx could not start without its certificates;
* verify: a TLS handshake to ``host:port`` with SNI ``server_name``, polled with a deadline until
  the served leaf's serial equals the new one (nginx applies a reload asynchronously).  The
  handshake does not verify the chain: it only reads the serial the server presents.

Commands run through a runner object with ``run_command(argv) -> (rc, stdout, stderr)``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import time

from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError, DeployError, PermanentError
from ansible_collections.certforge.pki.plugins.module_utils.core.deployment import as_list
from ansible_collections.certforge.pki.plugins.module_utils.sdk import hookimpl
from ansible_collections.certforge.pki.plugins.module_utils.targets.files import (
    DEFAULT_VERIFY_HOST,
    DEFAULT_VERIFY_TIMEOUT,
    VERIFY_CERTIFICATE_OPTIONS,
    FilesTarget,
    files_argument_spec,
    requests_from_params as _files_requests_from_params,
    target_options_from_params as _files_target_options,
)

DEFAULT_VALIDATE_COMMAND = ['nginx', '-t']
DEFAULT_RELOAD_COMMAND = ['nginx', '-s', 'reload']
NGINX_CERTIFICATE_OPTIONS = VERIFY_CERTIFICATE_OPTIONS

#: The nginx target's own options: top-level options of deploy_nginx, ``target_options`` of
#: deploy (documented in both modules).
NGINX_OPTIONS = dict(
    validate_command=dict(type='raw', default=list(DEFAULT_VALIDATE_COMMAND)),
    reload_command=dict(type='raw', default=list(DEFAULT_RELOAD_COMMAND)),
    reload=dict(type='bool', default=True),
    start_command=dict(type='raw'),
    pid_file=dict(type='path'),
)
_OUTPUT_LIMIT = 4000


def argv_option(value, option, default):
    """A command option as an argv list.  Strings are refused: no shell, no word splitting."""
    if value is None:
        return list(default)
    if isinstance(value, (str, bytes)):
        raise ConfigError('is a string (%r); commands are run without a shell' % (value,), option=option,
                          fix='give an argv list, e.g. [%s]' % ', '.join(default))
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError('must be a non-empty list of strings', option=option,
                          fix='give an argv list, e.g. [%s]' % ', '.join(default))
    argv = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ConfigError('item %r is not a string' % (item,), option=option,
                              fix='give an argv list of strings, e.g. [%s]' % ', '.join(default))
        argv.append(str(item))
    return argv


def _text(value):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return '' if value is None else str(value)


def command_output(stdout, stderr):
    """stderr then stdout, trimmed to a readable size (nginx -t writes to stderr)."""
    parts = [p.strip() for p in (_text(stderr), _text(stdout)) if p and p.strip()]
    text = '\n'.join(parts)
    if len(text) > _OUTPUT_LIMIT:
        text = text[:_OUTPUT_LIMIT] + '\n[... output truncated]'
    return text


def fetch_served_certificate(host, port, server_name, timeout):
    """DER of the leaf certificate ``host:port`` presents for SNI ``server_name``.

    No chain or hostname verification on purpose: this reads the serial the server serves, it
    does not decide whether to trust it."""
    import socket
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=server_name or None) as tls:
            return tls.getpeercert(binary_form=True)


def der_serial(der):
    """Serial number (int) of a DER certificate; ValueError when it does not parse."""
    try:
        return cx509.load_certificate(der, option='verify').serial_number
    except ConfigError as exc:
        raise ValueError('the endpoint served something that is not a certificate (%s)' % exc.msg)


def pid_file_state(pid_file):
    """``(alive, why)``: whether the process named in ``pid_file`` runs, and the words why.

    Missing file, no number in it, no such process and a zombie all count as not running.  A
    process of another user (``EPERM``) runs.  A file that exists but cannot be read raises
    ``DeployError``: nobody can tell, so nothing is started."""
    try:
        with open(pid_file, 'rb') as handle:
            text = handle.read(64).decode('ascii', 'replace').strip()
    except FileNotFoundError:
        return False, 'pid_file %s does not exist' % pid_file
    except OSError as exc:
        raise DeployError('cannot read pid_file %s (%s)' % (pid_file, exc.strerror or exc), option='pid_file',
                          fix='run with become, or point pid_file at the file nginx writes (its pid directive)')
    if not text.isdigit() or int(text) <= 0:
        return False, 'pid_file %s holds no process id' % pid_file
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, 'pid_file %s names process %d, which does not exist (a stale pid file)' % (pid_file, pid)
    except PermissionError:
        pass
    except OSError as exc:  # EINVAL and the like: the number is no process
        return False, 'pid_file %s names process %d, which cannot be signalled (%s)' % (pid_file, pid, exc)
    try:
        with open('/proc/%d/stat' % pid, 'rb') as handle:
            stat = handle.read().decode('ascii', 'replace')
        if stat[stat.rindex(')') + 2:].split()[0] == 'Z':
            return False, 'pid_file %s names process %d, which has exited (a zombie)' % (pid_file, pid)
    except (OSError, ValueError, IndexError):  # no /proc here: trust the signal check
        pass
    return True, 'process %d from pid_file %s runs' % (pid, pid_file)


def wait_for_serial(fetch, expected_serial, timeout, clock=time.monotonic, sleep=time.sleep,
                    serial_of=der_serial, option='verify'):
    """Poll ``fetch(timeout)`` until the served serial equals ``expected_serial`` (int) or the deadline
    passes.  Waits between attempts grow from 50 ms to 1 s, never past the deadline.  Returns
    ``(served_serial, attempts)``; raises ``DeployError`` with the last thing seen."""
    deadline = clock() + timeout
    delay = 0.05
    attempts = 0
    last = 'nothing'
    while True:
        attempts += 1
        remaining = deadline - clock()
        try:
            served = serial_of(fetch(max(min(remaining, timeout), 0.1)))
            if served == expected_serial:
                return served, attempts
            last = 'serial %s' % cx509.serial_hex(served)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            last = 'error %s' % (exc,)
        remaining = deadline - clock()
        if remaining <= 0:
            raise DeployError(
                'the endpoint did not serve serial %s within %ss (%d attempts; last seen: %s)'
                % (cx509.serial_hex(expected_serial), timeout, attempts, last), option=option,
                fix='check that verify host/port/server_name point at the server block using this '
                    'certificate, or raise verify.timeout',
                details={'expected_serial': cx509.serial_hex(expected_serial), 'last_seen': last,
                         'attempts': attempts})
        sleep(min(delay, remaining))
        delay = min(delay * 2, 1.0)


def verify_settings(settings, option):
    """Normalise a ``verify`` dict; None when no live check is wanted."""
    if not settings:
        return None
    if not isinstance(settings, dict):
        raise ConfigError('must be a dictionary', option=option,
                          fix='give verify: {port: 443, server_name: www.example.com}')
    port = settings.get('port')
    if port is None:
        raise ConfigError('verify needs a port', option=option + '.port',
                          fix='give the TLS port nginx listens on, e.g. 443')
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise ConfigError('%r is not a TCP port' % (settings.get('port'),), option=option + '.port',
                          fix='give a number between 1 and 65535')
    timeout = settings.get('timeout')
    timeout = DEFAULT_VERIFY_TIMEOUT if timeout is None else timeout
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        timeout = -1
    if timeout <= 0:
        raise ConfigError('%r is not a timeout' % (settings.get('timeout'),), option=option + '.timeout',
                          fix='give a number of seconds greater than 0')
    return {'host': settings.get('host') or DEFAULT_VERIFY_HOST, 'port': port,
            'server_name': settings.get('server_name'), 'timeout': timeout}


def default_server_name(facts):
    """First non-wildcard DNS name of the certificate (wildcards need an explicit server_name)."""
    for san in facts.get('subject_alt_names') or []:
        if san.startswith('DNS:') and '*' not in san:
            return san[4:]
    return None


class NginxTarget(FilesTarget):
    """Files + ``nginx -t`` + ``nginx -s reload`` (or the start command when nginx does not run)
    + live serial check."""

    name = 'nginx'
    certificate_options = NGINX_CERTIFICATE_OPTIONS

    @classmethod
    def option_spec(cls):
        return copy.deepcopy(NGINX_OPTIONS)

    def __init__(self, options=None, runner=None):
        super(NginxTarget, self).__init__(options, runner)
        self.validate_command = argv_option(self.options.get('validate_command'), 'validate_command',
                                            DEFAULT_VALIDATE_COMMAND)
        self.reload_command = argv_option(self.options.get('reload_command'), 'reload_command',
                                          DEFAULT_RELOAD_COMMAND)
        reload_enabled = self.options.get('reload')
        self.reload_enabled = True if reload_enabled is None else bool(reload_enabled)
        self.pid_file = self.options.get('pid_file') or None
        start = self.options.get('start_command')
        self.start_command = None
        if start is not None:
            self.start_command = argv_option(start, 'start_command', ['systemctl', 'start', 'nginx'])
        if self.pid_file is not None and not os.path.isabs(self.pid_file):
            raise ConfigError('%s is not an absolute path' % self.pid_file, option='pid_file',
                              fix='give the absolute path of the file named by the pid directive of nginx')
        if self.start_command is not None and self.pid_file is None:
            raise ConfigError('start_command needs pid_file, which tells whether nginx runs', option='start_command',
                              fix='set pid_file to the file named by the pid directive of nginx, e.g. /run/nginx.pid')
        #: True once start_command ran in this deploy
        self.started = False
        self.clock = time.monotonic
        self.sleep = time.sleep
        self.fetch_certificate = fetch_served_certificate
        self.serial_of = der_serial

    def files(self, request):
        specs = super(NginxTarget, self).files(request)
        prefix = (request.options or {}).get('option_prefix', '')
        # refuse a bad verify block now, before anything is written
        verify_settings((request.options or {}).get('verify'), prefix + 'verify')
        return specs

    def _run(self, argv, option):
        if self.runner is None:
            raise PermanentError('no command runner was given to the nginx target', option=option)
        rc, stdout, stderr = self.runner.run_command(list(argv))
        return rc, command_output(stdout, stderr), {'command': list(argv), 'rc': rc,
                                                    'stdout': _text(stdout), 'stderr': _text(stderr)}

    def validate(self, applied):
        rc, output, details = self._run(self.validate_command, 'validate_command')
        if rc != 0:
            raise DeployError('config test `%s` failed (rc=%s): %s'
                              % (' '.join(self.validate_command), rc, output or '(no output)'),
                              option='validate_command',
                              fix='fix the nginx configuration (the output above says where), then run again',
                              details=details)
        return None

    def reload(self, applied):
        """Reload nginx once; start it instead when ``pid_file`` says it does not run.  Returns
        True when a command ran (a reload or a start)."""
        if not self.reload_enabled:
            return False
        if self.pid_file is not None:
            alive, why = pid_file_state(self.pid_file)
            if not alive:
                return self._start(why)
        rc, output, details = self._run(self.reload_command, 'reload_command')
        if rc != 0:
            raise DeployError('reload `%s` failed (rc=%s): %s'
                              % (' '.join(self.reload_command), rc, output or '(no output)'),
                              option='reload_command',
                              fix='check that nginx runs and that reload_command reaches it',
                              details=details)
        return True

    def _start(self, why):
        if self.start_command is None:
            raise DeployError('nginx is not running (%s), so it cannot be reloaded' % why, option='pid_file',
                              fix='start nginx and run again, or give start_command (e.g. [systemctl, start, '
                                  'nginx]) so the deploy starts it when it does not run',
                              details={'pid_file': self.pid_file})
        rc, output, details = self._run(self.start_command, 'start_command')
        if rc != 0:
            raise DeployError('nginx is not running (%s) and start `%s` failed (rc=%s): %s'
                              % (why, ' '.join(self.start_command), rc, output or '(no output)'),
                              option='start_command',
                              fix='fix the cause the output above names, or check start_command', details=details)
        self.started = True
        return True

    def verify(self, applied):
        """Live check of one Applied (or the first of a list); returns the served serial (hex)
        or None when no ``verify`` was asked for."""
        items = as_list(applied)
        if len(items) != 1:
            return dict((i.plan.request.name, self.verify(i)) for i in items)
        item = items[0]
        request = item.plan.request
        prefix = (request.options or {}).get('option_prefix', '')
        settings = verify_settings((request.options or {}).get('verify'), prefix + 'verify')
        if settings is None:
            return None
        if not self.reload_enabled:
            self.warnings.append('%s: verify skipped because reload is false (nginx serves the new '
                                 'certificate only after a reload)' % request.name)
            return None
        expected = int(item.plan.diff['after']['serial'], 16)
        server_name = settings['server_name'] or default_server_name(item.plan.diff['after'])

        def fetch(timeout):
            return self.fetch_certificate(settings['host'], settings['port'], server_name, timeout)

        served, dummy = wait_for_serial(fetch, expected, settings['timeout'], clock=self.clock,
                                        sleep=self.sleep, serial_of=self.serial_of,
                                        option=prefix + 'verify')
        return cx509.serial_hex(served)


# ---------------------------------------------------------------------------------------------
# module glue
# ---------------------------------------------------------------------------------------------

def nginx_argument_spec():
    """Argument spec of deploy_nginx: the shared deploy options, verify, and the nginx options."""
    spec = files_argument_spec(verify=True)
    spec.update(NginxTarget.option_spec())
    return spec


def target_options_from_params(params):
    options = _files_target_options(params)
    options.update((key, params.get(key)) for key in NGINX_OPTIONS)
    return options


def requests_from_params(params):
    return _files_requests_from_params(params, NGINX_CERTIFICATE_OPTIONS)


class NginxTargetPlugin:
    """pluggy plugin object: register it in ``core.registry.Registry``."""

    @hookimpl
    def certforge_targets(self):
        return {'nginx': NginxTarget}


plugin = NginxTargetPlugin()
