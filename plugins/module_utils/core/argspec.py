# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Option groups shared by module families (kept in step with ``plugins/doc_fragments``) and
the one way a module runs: build the module, call an ``execute(ctx)`` function that raises
``core.errors`` exceptions, and turn them into ``fail_json`` with the option and the fix.

``execute(ctx)`` sees only ``ctx.params``, ``ctx.check_mode``, ``ctx.diff`` and
``ctx.warn()``, so the same function runs inside a module on a host or in-process inside an
action plugin on the controller (``plugins/plugin_utils/inprocess.py``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import ipaddress
import os
import stat
import traceback

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError, ConfigError

#: renewal policy options (doc fragment ``certforge.pki.renewal``)
RENEWAL_OPTIONS = dict(
    renew_before_days=dict(type='int', default=30),
    renew_at_fraction=dict(type='float'),
    force=dict(type='bool', default=False),
)


class ArgumentSpec:
    """An argument spec and its constraints, composable across option groups."""

    def __init__(self, argument_spec=None, mutually_exclusive=None, required_together=None,
                 required_one_of=None, required_if=None, required_by=None, checks=None):
        self.argument_spec = copy.deepcopy(argument_spec or {})
        self.checks = dict(checks or {})
        self.mutually_exclusive = list(mutually_exclusive or [])
        self.required_together = list(required_together or [])
        self.required_one_of = list(required_one_of or [])
        self.required_if = list(required_if or [])
        self.required_by = dict(required_by or {})

    def update(self, options):
        self.argument_spec.update(copy.deepcopy(options))
        return self

    def add_checks(self, checks):
        """Further checks ``{option: [check, ...]}`` (see ``check_params``)."""
        for name, funcs in checks.items():
            self.checks.setdefault(name, [])
            self.checks[name] = list(self.checks[name]) + list(funcs)
        return self

    def check(self, params, check_mode=False):
        """Every option checked before the first effect (see ``check_params``)."""
        check_params(params, self.argument_spec, self.checks, check_mode=check_mode)

    def kwargs(self):
        out = dict(argument_spec=self.argument_spec)
        for name in ('mutually_exclusive', 'required_together', 'required_one_of', 'required_if',
                     'required_by'):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


class ModuleContext:
    """What ``execute(ctx)`` may use of an AnsibleModule."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.diff = module._diff
        self.warnings = []

    def warn(self, msg):
        self.module.warn(msg)

    def run_command(self, argv):
        return self.module.run_command(argv)


def run_module(spec, execute, supports_check_mode=True, requires=(), module=None):
    """main() of every certforge module (``module``: an AnsibleModule the caller already built
    from ``spec.kwargs()``)."""
    if module is None:
        from ansible.module_utils.basic import AnsibleModule
        module = AnsibleModule(supports_check_mode=supports_check_mode, **spec.kwargs())
    for lib, has, error in requires:
        if not has:
            from ansible.module_utils.basic import missing_required_lib
            module.fail_json(msg=missing_required_lib(lib), exception=error)
    ctx = ModuleContext(module)
    try:
        spec.check(module.params, check_mode=module.check_mode)
        result = execute(ctx)
    except CertforgeError as exc:
        # a refused input is no crash: no traceback, even with ANSIBLE_DISPLAY_TRACEBACK=error
        module.fail_json(exception='', **exc.to_result())
    except ImportError as exc:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib(getattr(exc, 'name', None) or str(exc)),
                         exception=traceback.format_exc())
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(**unexpected_error(exc))
    module.exit_json(**result)


def unexpected_error(exc):
    """A failed result for an exception no check foresaw: a message, no traceback on screen
    (it stays in ``exception_detail`` for a bug report)."""
    return dict(msg='unexpected failure, nothing more was done: %s. Fix: please report this as a '
                    'bug with the task that caused it' % (str(exc) or type(exc).__name__),
                error_kind='internal', exception=traceback.format_exc())


# ---------------------------------------------------------------------------------------------
# checks of option values, before anything is done
# ---------------------------------------------------------------------------------------------

NAME_MAX = 255          # bytes of one path component (ext4, xfs, btrfs ...)
PATH_MAX = 4095         # bytes of a whole path (Linux PATH_MAX less the NUL)


def _fail(option, msg, fix):
    raise ConfigError(msg, option=option, fix=fix)


def _check_string(value, option):
    if '\x00' in value:
        _fail(option, 'contains a NUL byte', 'remove the NUL (\\0) character; no path, name or '
                                             'text option can hold one')


def check_path_text(value, option):
    """A path's text: no NUL, every component at most 255 bytes, the whole at most 4095."""
    _check_string(value, option)
    if value == '':
        _fail(option, 'is an empty path', 'give a path, or leave the option out')
    raw = value.encode('utf-8', 'surrogateescape')
    if len(raw) > PATH_MAX:
        _fail(option, 'is %d bytes long; a path may have at most %d' % (len(raw), PATH_MAX),
              'use a shorter path')
    for part in raw.split(b'/'):
        if len(part) > NAME_MAX:
            _fail(option, 'has a file or directory name of %d bytes (%s...); the limit is %d'
                  % (len(part), part[:20].decode('utf-8', 'replace'), NAME_MAX),
                  'use a shorter name')


def _walk(value, spec, option, checks, prefix):
    """Check ``value`` of ``option`` (declared by ``spec``; may be None) and what it holds."""
    if value is None:
        return
    if isinstance(value, str):
        if spec and spec.get('type') == 'path':
            check_path_text(value, option)
        else:
            _check_string(value, option)
    elif isinstance(value, dict):
        sub = (spec or {}).get('options') if spec else None
        for key, item in value.items():
            _check_string(str(key), option)
            _walk(item, (sub or {}).get(key), '%s.%s' % (option, key), checks,
                  '%s.%s' % (prefix, key) if sub else None)
        if sub:
            return _run_checks(value, sub, checks, option, prefix)
    elif isinstance(value, (list, tuple)):
        elem = dict(spec or {})
        elem['type'] = elem.get('elements')
        for index, item in enumerate(value):
            name = '%s[%d]' % (option, index)
            if isinstance(item, dict) and elem.get('options'):
                _walk(item, elem, name, checks, prefix)
            else:
                _walk(item, {'type': elem.get('elements')} if spec else None, name, checks, None)


def _run_checks(params, spec, checks, parent_option, prefix):
    for name in spec:
        value = params.get(name)
        option = name if not parent_option else '%s.%s' % (parent_option, name)
        key = name if not prefix else '%s.%s' % (prefix, name)
        if value is None:
            continue
        for func in list(LEAF_CHECKS.get(name, ())) + list(checks.get(key, ())):
            func(value, option, params)


#: set while ``check_params`` runs: in check mode a directory that an earlier task would have
#: made (and so does not exist yet) is no error
_CHECK_MODE = [False]


def check_params(params, argument_spec, checks=None, check_mode=False):
    """Refuse bad option values before anything is written or any CA is called.

    Everywhere: no NUL byte in any text, path options within the file system's length
    limits, and the checks in ``LEAF_CHECKS`` by option name (ports, timeouts, modes, names,
    host names ...).  ``checks`` adds ``{option: [check, ...]}``; a suboption is named
    ``parent.child`` (list elements included).  A check is ``check(value, option, params)``
    and raises ``ConfigError`` naming ``option``."""
    checks = checks or {}
    _CHECK_MODE[0] = bool(check_mode)
    try:
        for name, spec in argument_spec.items():
            value = params.get(name)
            if value is None:
                continue
            _walk(value, spec, name, checks, name)
        _run_checks(params, argument_spec, checks, None, None)
    finally:
        _CHECK_MODE[0] = False


# -- checks -----------------------------------------------------------------------------------

def number(lo=None, hi=None, above=None, below=None, example=None, unit=''):
    """A number in a range: ``lo`` <= value <= ``hi``, ``above`` < value < ``below``."""
    def check(value, option, params):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        wrong = ((lo is not None and value < lo) or (hi is not None and value > hi)
                 or (above is not None and value <= above) or (below is not None and value >= below))
        if wrong:
            parts = []
            if lo is not None:
                parts.append('at least %s' % lo)
            if above is not None:
                parts.append('more than %s' % above)
            if hi is not None:
                parts.append('at most %s' % hi)
            if below is not None:
                parts.append('less than %s' % below)
            _fail(option, '%s is out of range: it must be %s%s' % (value, ' and '.join(parts), unit),
                  'e.g. %s: %s' % (option.rsplit('.', 1)[-1], example if example is not None else (lo if lo is not None else hi)))
    return check


def max_length(limit, what='characters'):
    def check(value, option, params):
        if isinstance(value, str) and len(value) > limit:
            _fail(option, 'is %d %s long; at most %d are allowed' % (len(value), what, limit),
                  'shorten it')
    return check


def not_empty(value, option, params):
    if isinstance(value, str) and not value.strip():
        _fail(option, 'is empty', 'give a value, or leave the option out')


def plain_name(value, option, params):
    """A name that becomes part of a file name: no '/', no '..', no control characters."""
    text = str(value)
    if (not text or text in ('.', '..') or '..' in text or '/' in text or '\\' in text
            or text.startswith('-') or any(ord(c) < 32 or ord(c) == 127 for c in text)):
        _fail(option, '%r cannot be used as a name: it must stay one plain file name' % (text,),
              "use letters, digits, '.', '-' and '_' (no '/', no '..', no leading '-')")
    if len(text.encode('utf-8')) > 200:
        _fail(option, 'is %d bytes long; a name may have at most 200' % len(text.encode('utf-8')),
              'use a shorter name')


def hostname(value, option, params):
    """A DNS host name (IDNA) or an IP address."""
    text = str(value).strip()
    if not text:
        _fail(option, 'is empty', 'give a host name such as www.example.com')
    try:
        ipaddress.ip_address(text.strip('[]'))
        return
    except ValueError:
        pass
    name = text.rstrip('.')
    try:
        encoded = name.encode('idna').decode('ascii')
    except (UnicodeError, ValueError):
        _fail(option, '%r is not a valid host name (it cannot be encoded as IDNA)' % (text[:80],),
              'give a host name such as www.example.com, internationalized names as xn-- A-labels')
    if len(encoded) > 253 or not all(0 < len(label) <= 63 for label in encoded.split('.')):
        _fail(option, 'is not a valid host name: at most 253 characters, labels of 1 to 63',
              'give a host name such as www.example.com')


def existing_file(value, option, params):
    """A file that is read: it must exist and be a regular file."""
    path = os.path.expanduser(value)
    if os.path.islink(path) and not os.path.exists(path):
        _fail(option, '%s is a dangling symbolic link' % value, 'point it to an existing file')
    if not os.path.exists(path):
        _fail(option, '%s does not exist' % value, 'check the path (files are read where the task runs)')
    if not os.path.isfile(path):
        _fail(option, '%s is not a regular file' % value, 'give the path of a file, not of a directory')


def optional_file(value, option, params):
    """A file that is read when it exists: if it does, it must be a regular file."""
    path = os.path.expanduser(value)
    if os.path.lexists(path) and not os.path.isfile(path):
        _fail(option, '%s is not a regular file (a directory, a dangling link or a device)' % value,
              'give the path of a file')


def existing_path(value, option, params):
    """A file or a directory that must exist (a CA bundle: a PEM file or a hashed directory)."""
    if not os.path.exists(os.path.expanduser(value)):
        _fail(option, '%s does not exist' % value, 'give an existing PEM file or directory')


def ca_bundle(value, option, params):
    """A CA bundle for TLS verification: a PEM file with at least one certificate and nothing
    that is not PEM, or a directory of hashed certificates."""
    path = os.path.expanduser(value)
    existing_path(value, option, params)
    if os.path.isdir(path):
        return
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        _fail(option, 'cannot read %s (%s)' % (value, exc.strerror or exc), 'check the path and its permissions')
    if b'-----BEGIN CERTIFICATE-----' not in data:
        _fail(option, '%s holds no PEM certificate, so it cannot be a CA bundle' % value,
              'give a PEM file with the CA certificates that sign the server, e.g. its root')
    if b'PRIVATE KEY-----' in data:
        _fail(option, '%s holds a private key; a CA bundle holds only certificates' % value,
              'give a PEM file of CA certificates only')
    try:
        data.decode('ascii')
    except UnicodeDecodeError:
        _fail(option, '%s holds binary data besides its PEM certificates' % value,
              'give a clean PEM file of CA certificates')


def non_empty_list(value, option, params):
    if isinstance(value, (list, tuple)) and not value:
        _fail(option, 'is an empty list', 'give at least one element, or leave the option out')


def existing_dir(value, option, params):
    path = os.path.expanduser(value)
    if os.path.islink(path) and not os.path.exists(path):
        _fail(option, '%s is a dangling symbolic link' % value, 'point it to an existing directory')
    if not os.path.exists(path):
        _fail(option, 'the directory %s does not exist' % value,
              'create it first (for example with ansible.builtin.file state=directory)')
    if not os.path.isdir(path):
        _fail(option, '%s is not a directory' % value, 'give the path of a directory')


def destination(value, option, params):
    """A file that is written: its directory must exist, and it must not be a directory, a
    dangling link or a special file."""
    path = os.path.expanduser(value)
    if path.endswith('/'):
        _fail(option, '%s ends with "/"; a file path is needed' % value, 'give the full file name')
    if os.path.islink(path) and not os.path.exists(path):
        _fail(option, '%s is a dangling symbolic link' % value,
              'remove the link or point it to a file, then run again')
    if os.path.exists(path):
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            _fail(option, '%s is a directory, not a regular file' % value, 'give a file name inside it, e.g. %s/<name>.pem'
                  % value.rstrip('/'))
        if not stat.S_ISREG(mode):
            _fail(option, '%s is not a regular file' % value, 'give the path of a regular file')
    parent = os.path.dirname(os.path.abspath(path)) or '/'
    if not os.path.isdir(parent) and not (_CHECK_MODE[0] and not os.path.lexists(parent)):
        _fail(option, 'the directory %s of %s does not exist' % (parent, value),
              'create the directory first (for example with ansible.builtin.file state=directory), '
              'then run again')


def store_dir(value, option, params):
    """A state directory that is made when missing: it must not be a file."""
    path = os.path.expanduser(value)
    if os.path.lexists(path) and not os.path.isdir(path):
        _fail(option, '%s exists and is not a directory' % value, 'give a directory path')


def url(value, option, params):
    text = str(value).strip()
    if not (text.startswith('https://') or text.startswith('http://')) or len(text) < 10 or ' ' in text:
        _fail(option, '%r is not an http(s) URL' % (text[:80],), 'give a URL such as https://ca.example.com/directory')


def file_mode(value, option, params):
    """A file mode as a quoted octal string, never setuid/setgid/sticky or world-writable."""
    from ansible_collections.certforge.pki.plugins.module_utils.core.files import check_file_mode
    check_file_mode(value, option)


def command_list(value, option, params):
    if isinstance(value, (list, tuple)) and not value:
        _fail(option, 'is an empty command', 'give an argv list, e.g. [nginx, -t]')


#: Checks every module gets for an option of that name, wherever it sits.
LEAF_CHECKS = {
    'port': [number(1, 65535, example=443)],
    'http01_listen_port': [number(1, 65535, example=8080)],
    'timeout': [number(above=0, hi=3600, example=10, unit=' seconds')],
    'acme_timeout': [number(above=0, hi=3600, example=30, unit=' seconds')],
    'wait_timeout': [number(0, 86400, example=60, unit=' seconds')],
    'dns_propagation_timeout': [number(0, 86400, example=120, unit=' seconds')],
    'server_name': [hostname],
    'validity_days': [number(1, 36500, example=90, unit=' days')],
    'max_ttl_days': [number(1, 36500, example=397, unit=' days')],
    'path_length': [number(0, 32, example=0)],
    'renew_before_days': [number(0, 36500, example=30, unit=' days')],
    'renew_at_fraction': [number(above=0, below=1, example=0.33)],
    'renew_before_hours': [number(0, 876000, example=24, unit=' hours')],
    'term': [number(1, 36500, example=365, unit=' days')],
    'ssl_id': [number(1, example=12345)],
    'page_size': [number(1, 5000, example=200)],
    'max_workers': [number(1, 64, example=8)],
    'expiring_within_days': [number(0, 36500, example=30, unit=' days')],
    'http_retries': [number(0, 20, example=5)],
    'poll_base': [number(above=0, hi=86400, example=2, unit=' seconds')],
    'poll_max_delay': [number(above=0, hi=86400, example=60, unit=' seconds')],
    'poll_max_attempts': [number(1, 100000, example=10)],
    'poll_jitter': [number(0, 1, example=0.1)],
    'recover_window': [number(0, 3600, example=30, unit=' seconds')],
    'backup_retention': [number(1, 1000, example=5)],
    'mode': [file_mode],
    'common_name': [not_empty, max_length(64)],
    'name': [plain_name],
    'order_store': [store_dir],
    'organization_id': [number(1, example=1234)],
    'base_url': [url],
    'acme_directory': [url],
    'eab_lookup_url': [url],
    'acme_ca_bundle': [ca_bundle],
    'ca_bundle': [ca_bundle],
    'client_cert': [existing_file],
    'client_key': [existing_file],
    'pkcs12_path': [existing_file],
    'account_key_path': [optional_file],
    'state_file': [destination],
    'download_dir': [existing_dir],
    'http01_webroot': [existing_dir],
    'dns_hook_add': [non_empty_list],
    'dns_hook_remove': [non_empty_list],
    'validate_command': [command_list],
    'reload_command': [command_list],
    'start_command': [command_list],
}


def no_private_key(value, option, params):
    """A certificate destination that holds a private key is refused, never overwritten."""
    path = os.path.expanduser(value)
    try:
        with open(path, 'rb') as handle:
            head = handle.read(65536)
    except (IOError, OSError):
        return
    if b'PRIVATE KEY-----' in head:
        _fail(option, '%s holds a private key; refusing to overwrite it with a certificate' % value,
              'give the certificate its own path (the key stays in key_path)')


def distinct_deploy_paths(value, option, params):
    """Every certificate, chain and full-chain file of one deploy is a different file."""
    seen = {}
    entries = [(None, params)] + [(i, e) for i, e in enumerate(value or []) if isinstance(e, dict)]
    for index, entry in entries:
        for key in ('certificate_path', 'chain_path', 'fullchain_path'):
            path = entry.get(key)
            if not path:
                continue
            name = key if index is None else '%s[%d].%s' % (option, index, key)
            real = os.path.realpath(os.path.expanduser(path))
            if real in seen:
                _fail(name, '%s is also written by %s' % (path, seen[real]), 'give every file its own path')
            seen[real] = name


#: Checks of the deploy modules (files they write; the target checks its own options).
DEPLOY_CHECKS = dict(
    (key, [destination, no_private_key]) for key in (
        'certificate_path', 'chain_path', 'fullchain_path',
        'certificates.certificate_path', 'certificates.chain_path', 'certificates.fullchain_path'))
DEPLOY_CHECKS.update({'backup_dir': [store_dir], 'certificates': [distinct_deploy_paths]})


#: Files the CA modules write and read (acme_certificate, sectigo_certificate).
CA_MODULE_CHECKS = dict(csr=[not_empty], csr_path=[existing_file], certificate_path=[destination, no_private_key],
                        chain_path=[destination, no_private_key], fullchain_path=[destination, no_private_key])
