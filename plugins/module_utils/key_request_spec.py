# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of ``certforge.pki.certificate_request``: plain data, so that the module can
build its AnsibleModule (and answer a no-op from ``request_cache``) before it imports the code
that plans keys and CSRs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

REQUEST_OPTIONS = dict(
    privatekey_path=dict(type='path'),
    privatekey_type=dict(type='str', choices=['RSA', 'ECDSA', 'Ed25519']),
    privatekey_size=dict(type='int', choices=[2048, 3072, 4096]),
    privatekey_curve=dict(type='str', choices=['secp256r1', 'secp384r1']),
    privatekey_passphrase=dict(type='str', no_log=True),
    rotate_key=dict(type='bool'),
    backup=dict(type='bool'),
    csr_path=dict(type='path'),
    common_name=dict(type='str'),
    subject=dict(type='dict'),
    subject_alt_names=dict(type='list', elements='str'),
    key_usage=dict(type='list', elements='str'),
    extended_key_usage=dict(type='list', elements='str'),
    owner=dict(type='str'),
    group=dict(type='str'),
    mode=dict(type='raw'),
    certificate_path=dict(type='path'),
    meta=dict(type='dict'),
)

DEFAULTS = dict(privatekey_type='ECDSA', privatekey_size=2048, privatekey_curve='secp256r1',
                rotate_key=False, backup=False)


def merge_request(top, entry):
    """One request: each per-certificate option from ``entry`` where it is set, else from the
    top-level options ``top``."""
    merged = {}
    for name in REQUEST_OPTIONS:
        value = entry.get(name) if entry else None
        merged[name] = value if value is not None else top.get(name)
    return merged


REQUIRED_ONE_OF = [['privatekey_path', 'requests', 'refuse', 'role_vars']]


def argument_spec():
    """The AnsibleModule argument_spec (a new dict on every call)."""
    spec = {}
    for name, opts in REQUEST_OPTIONS.items():
        opts = dict(opts)
        if name in DEFAULTS:
            opts['default'] = DEFAULTS[name]
        spec[name] = opts
    spec['requests'] = dict(type='list', elements='dict', options=dict(
        (name, dict(opts)) for name, opts in REQUEST_OPTIONS.items()))
    spec['directory'] = dict(type='path')
    spec['refuse'] = dict(type='list', elements='str')
    spec['role_vars'] = dict(type='dict')
    spec['directory_mode'] = dict(type='raw', default='0755')
    return spec
