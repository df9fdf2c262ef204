# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The certificate role's variables, checked and turned into ``certificate_request`` requests.

The role hands its variables to ``certificate_request`` as O(role_vars) instead of templating
them into requests per host (Jinja over every entry of ``certificate_list``, on every run):
here, in Python, and only when the module cannot answer from ``request_cache``.  Every message
names the role variable and the fix, as the role's documentation promises."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

#: keys an entry of certificate_list may have
ENTRY_KEYS = ('name', 'common_name', 'subject_alt_names', 'key_type', 'key_size', 'key_curve', 'rotate_key',
              'profile', 'validity_days', 'dir', 'privatekey_path', 'csr_path', 'certificate_path', 'chain_path',
              'fullchain_path', 'verify')

#: role variables (without the ``certificate_`` prefix) and their defaults (defaults/main.yml)
ROLE_DEFAULTS = dict(list=[], dir='/etc/certforge', key_type='ECDSA', key_size=2048, key_curve='secp256r1',
                     rotate_key=False, cert_mode='0644', issuer='local_ca', profile='', validity_days=0,
                     renew_before_days=30, force=False, wait_timeout=60, http01_webroot='', target='files')

_NAME = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$')
_MODE = re.compile(r'^0?[0-7][0-7][014589]$')
_DOTDOT = re.compile(r'(^|/)\.\.(/|$)')
_IP_AS_DNS = re.compile(r'(?i)^DNS:[0-9.]+$|^DNS:.*:')


def _int(value, default=0):
    """Jinja's ``int`` filter: numbers and numeric text, anything else ``default``."""
    if isinstance(value, bool):
        return int(value)
    try:
        if isinstance(value, str):
            return int(value, 10)
        return int(value)
    except (TypeError, ValueError, OverflowError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return default


def _text(value):
    """Jinja's ``string`` filter for the values a message shows."""
    if value is None:
        return 'None'
    return str(value)


def _length(value):
    try:
        return len(value)
    except TypeError:
        return 0


def _is_list(value):
    return isinstance(value, (list, tuple))


def _dir_ok(value):
    if not isinstance(value, str) or not value.startswith('/') or '/../' in value + '/' or '\x00' in value:
        return False
    return max(len(part) for part in value.split('/')) <= 255


def _entry_ok(entry, counts):
    if not isinstance(entry, dict):
        return False
    name = entry.get('name')
    if not isinstance(name, str) or not _NAME.match(name) or '..' in name:
        return False
    if set(entry) - set(ENTRY_KEYS):
        return False
    if entry.get('key_type', 'ECDSA') not in ('ECDSA', 'RSA', 'Ed25519'):
        return False
    if _text(entry.get('key_size', 2048)) not in ('2048', '3072', '4096'):
        return False
    if entry.get('key_curve', 'secp256r1') not in ('secp256r1', 'secp384r1'):
        return False
    if not 0 <= _int(entry.get('validity_days', 0)) <= 36500:
        return False
    paths = [entry.get(k) for k in ('dir', 'privatekey_path', 'csr_path', 'certificate_path', 'chain_path',
                                    'fullchain_path')]
    paths = [p for p in paths if isinstance(p, str)]
    for path in paths:
        if not path.startswith('/') or _DOTDOT.search(path) or '\x00' in path:
            return False
        if max(len(part) for part in path.split('/')) > 255:
            return False
    verify = entry.get('verify', {})
    if not isinstance(verify, dict):
        return False
    if not 1 <= _int(verify.get('port', 443)) <= 65535:
        return False
    if _length(verify.get('server_name', 'x')) > 253:
        return False
    sans = entry.get('subject_alt_names', [])
    if _is_list(sans) and any(isinstance(s, str) and _IP_AS_DNS.search(s) for s in sans):
        return False
    return counts.get(_text(name), 0) == 1


def _shown(entry):
    text = json.dumps(entry, default=str)
    return text if len(text) <= 300 else text[:297] + '...'


def problems(role):
    """One message per problem of the role variables ``role`` (names without ``certificate_``)."""
    p = []
    items = role.get('list')
    if not _is_list(items):
        p.append('certificate_list: must be a list of dicts, e.g. certificate_list: '
                 '[{name: www, common_name: www.example.com}]')
    if not _dir_ok(role.get('dir')):
        p.append("certificate_dir: must be an absolute path without '..' (and no NUL, no name over 255 bytes), "
                 "e.g. /etc/certforge")
    mode = role.get('cert_mode')
    if not (isinstance(mode, str) and _MODE.match(mode)):
        p.append('certificate_cert_mode: ' + _text(mode)
                 + " is not allowed: give a quoted octal string without setuid, setgid, sticky or world-write bits,"
                 + " e.g. certificate_cert_mode: '0644' (unquoted 644 is the decimal number 644)")
    if _length(role.get('issuer')) == 0:
        p.append('certificate_issuer: is empty: name an issuer connector, e.g. local_ca, acme or sectigo')
    if _length(role.get('target')) == 0:
        p.append('certificate_target: is empty: name a target connector, e.g. files or nginx')
    if not 0 <= _int(role.get('validity_days')) <= 36500:
        p.append('certificate_validity_days: must be 0 (the issuer decides) or 1 to 36500 days')
    if not 0 <= _int(role.get('renew_before_days')) <= 36500:
        p.append('certificate_renew_before_days: must be 0 to 36500 days, e.g. 30')
    if not 0 <= _int(role.get('wait_timeout')) <= 86400:
        p.append('certificate_wait_timeout: must be 0 to 86400 seconds, e.g. 60')
    webroot = role.get('http01_webroot')
    if not (_length(webroot) == 0 or (isinstance(webroot, str) and webroot.startswith('/'))):
        p.append('certificate_http01_webroot: must be empty or an absolute path, e.g. /var/www/html')
    if _is_list(items):
        counts = {}
        for entry in items:
            name = _text(entry.get('name', '') if isinstance(entry, dict) else '')
            counts[name] = counts.get(name, 0) + 1
        for index, entry in enumerate(items):
            if not _entry_ok(entry, counts):
                p.append('certificate_list[%d]' % index
                         + ": each entry needs a unique name made of letters, digits, '.', '-' and '_' (no '/', no"
                         + " '..', at most 200 characters; it becomes the file names {name}.key, {name}.csr,"
                         + " {name}.crt, {name}.chain.pem and {name}.fullchain.pem in certificate_dir); known keys"
                         + " only (" + ', '.join(ENTRY_KEYS)
                         + "); key_type ECDSA, RSA or Ed25519; key_size 2048, 3072 or 4096; validity_days 0 to"
                         + " 36500; absolute paths without '..'; verify.port 1 to 65535; IP addresses as IP:, not"
                         + " DNS:. Got: " + _shown(entry))
    return p


def requests(role):
    """The ``certificate_request`` requests of the role variables (checked by ``problems``
    first), each with the ``meta`` the controller-side issuing step reads."""
    out = []
    for c in role.get('list') or []:
        base = '%s/%s' % (c.get('dir', role.get('dir')), c['name'])
        common_name = c.get('common_name', c['name'])
        out.append({
            'privatekey_path': c.get('privatekey_path', base + '.key'),
            'privatekey_type': c.get('key_type', role.get('key_type')),
            'privatekey_size': c.get('key_size', role.get('key_size')),
            'privatekey_curve': c.get('key_curve', role.get('key_curve')),
            'rotate_key': c.get('rotate_key', role.get('rotate_key')),
            'csr_path': c.get('csr_path', base + '.csr'),
            'common_name': common_name,
            'subject_alt_names': list(c.get('subject_alt_names', ['DNS:%s' % common_name])),
            'certificate_path': c.get('certificate_path', base + '.crt'),
            'meta': {'name': c['name'], 'profile': c.get('profile', role.get('profile')),
                     'validity_days': c.get('validity_days', role.get('validity_days')),
                     'issuer': role.get('issuer'), 'renew_before_days': role.get('renew_before_days'),
                     'force': role.get('force'), 'wait_timeout': role.get('wait_timeout'),
                     # where the deploy writes (certificate_batch hands the deploy its list)
                     'deploy': {'certificate_path': c.get('certificate_path', base + '.crt'),
                                'chain_path': c.get('chain_path', base + '.chain.pem'),
                                'fullchain_path': c.get('fullchain_path', base + '.fullchain.pem'),
                                'key_path': c.get('privatekey_path', base + '.key'),
                                'verify': c.get('verify')}},
        })
    return out


def with_defaults(role_vars):
    role = dict(ROLE_DEFAULTS)
    role.update(dict((k, v) for k, v in (role_vars or {}).items()))
    return role
