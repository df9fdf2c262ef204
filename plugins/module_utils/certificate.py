# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The generic issuer module: ``issuer`` plus ``issuer_options``, dispatched through the
registry.  Built-in issuers are imported statically here (so AnsiballZ ships them); third-party
issuers come from the ``certforge.pki`` entry-point group when this runs on the controller."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
from ansible_collections.certforge.pki.plugins.module_utils.core import files, polling
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import (
    RENEWAL_OPTIONS, ArgumentSpec, destination, existing_file, max_length, not_empty)
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import REVOCATION_REASONS, Event, Revocation
from ansible_collections.certforge.pki.plugins.module_utils.core.options import check_options
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
from ansible_collections.certforge.pki.plugins.module_utils.issuers import local_ca, sectigo
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import connector as acme_connector

BUILTIN_PLUGINS = (local_ca.PLUGIN, sectigo.PLUGIN, acme_connector.PLUGIN)

READ_FIX = 'check the path (it is read on the controller)'
SECRET_OPTION = re.compile(r'(pass|secret|token|hmac|password|private_?key)', re.I)

SPEC = ArgumentSpec(
    dict(
        name=dict(type='str', required=True),
        issuer=dict(type='str', required=True),
        issuer_options=dict(type='dict', default={}),
        csr=dict(type='str'),
        csr_path=dict(type='path'),
        current_certificate=dict(type='str'),
        certificate_path=dict(type='path'),
        profile=dict(type='str'),
        validity_days=dict(type='int'),
        wait_timeout=dict(type='int', default=60),
        fail_on_pending=dict(type='bool', default=False),
        order_store=dict(type='path'),
        recover_window=dict(type='float'),
        state=dict(type='str', default='present', choices=['present', 'revoked']),
        revocation_reason=dict(type='str', default='unspecified',
                               choices=[r for r in REVOCATION_REASONS if r]),
        notifiers=dict(type='list', elements='dict', default=[]),
        notify_routes=dict(type='list', elements='dict', default=[]),
    ),
    mutually_exclusive=[('csr', 'csr_path')],
    required_if=[('state', 'present', ('csr', 'csr_path'), True),
                 ('state', 'revoked', ('current_certificate', 'certificate_path'), True)],
    checks=dict(issuer=[not_empty], csr=[not_empty], csr_path=[existing_file],
                certificate_path=[destination], profile=[not_empty, max_length(128)]),
)
SPEC.update(RENEWAL_OPTIONS)
SPEC.update(polling.ARGSPEC)


def secret_values(issuer_options):
    """Values of issuer_options whose names look secret.  Used only when the issuer (and so its
    option spec) is unknown; otherwise the spec's ``no_log`` decides."""
    out = set()
    for key, value in (issuer_options or {}).items():
        if SECRET_OPTION.search(str(key)) and isinstance(value, str) and value:
            out.add(value)
    return out


def _hide(ctx, values):
    """Hide ``values`` in the result: the action plugin reads ``ctx.no_log_values``; a module
    run adds them to its AnsibleModule."""
    values = set(v for v in values if v)
    hidden = getattr(ctx, 'no_log_values', None)
    if hidden is None:
        hidden = set()
        try:
            ctx.no_log_values = hidden
        except AttributeError:  # pragma: no cover
            pass
    hidden.update(values)
    module = getattr(ctx, 'module', None)
    if module is not None:
        module.no_log_values.update(values)


def issuer_connector(ctx, registry, name, options):
    """Build issuer ``name`` with ``options`` checked against its option spec (unknown keys
    refused naming the closest valid one; the values of its ``no_log`` options hidden)."""
    secrets = set()
    try:
        cls = registry.issuer_class(name)
        checked = check_options(cls, options, option='issuer_options', kind='issuer', no_log_values=secrets)
    except ConfigError:
        _hide(ctx, secrets or secret_values(options))
        raise
    _hide(ctx, secrets)
    return cls(checked)


def execute(ctx):
    p = ctx.params
    registry = Registry(BUILTIN_PLUGINS, load_entry_points=getattr(ctx, 'load_entry_points', False))
    for err in registry.entry_point_errors:
        ctx.warn('a third-party connector could not be loaded: %s' % err)
    connector = issuer_connector(ctx, registry, p['issuer'], dict(p.get('issuer_options') or {}))
    if not p.get('notifiers'):       # no notifier code is imported on a call without notifiers
        return _execute(ctx, registry, connector)
    from ansible_collections.certforge.pki.plugins.module_utils.notifiers import dispatch
    feed = dispatch.feed(ctx, registry, p['notifiers'], p.get('notify_routes'))
    result = _execute(ctx, registry, connector)
    result['notifications'] = feed.flush(ctx)
    return result


def _execute(ctx, registry, connector):
    p = ctx.params
    if p.get('state') == 'revoked':
        return revoke(ctx, registry, connector)
    csr_pem = p['csr'] if p.get('csr') else files.read_text(p['csr_path'], 'csr_path', fix=READ_FIX)
    current = p.get('current_certificate') or None
    cert_path = p.get('certificate_path')
    if not current and cert_path and os.path.exists(cert_path):
        current = files.read_text(cert_path, 'certificate_path', fix=READ_FIX)
    if cert_path:
        files.ensure_parent_dir(cert_path, 'certificate_path')
    request = core_issue.build_request(p, csr_pem)
    policy = dict(renew_before_days=p.get('renew_before_days'), renew_at_fraction=p.get('renew_at_fraction'),
                  force=p.get('force'))
    schedule = polling.Schedule.from_options(p)
    result = core_issue.issue(registry, connector, request, current_pem=current, policy=policy,
                              store_path=p.get('order_store'), check_mode=ctx.check_mode,
                              wait_timeout=p['wait_timeout'], schedule=schedule,
                              emit=registry.emit, recover_window=p.get('recover_window'))
    for warning in result.pop('warnings', []):
        ctx.warn(warning)
    if result.get('status') == 'pending' and p.get('fail_on_pending'):
        raise ConfigError('order %s is still pending at the CA after %ss'
                          % (result.get('order_id'), p['wait_timeout']), option='wait_timeout',
                          fix='raise wait_timeout, or drop fail_on_pending to resume on the next run')
    if cert_path and result['changed'] and not ctx.check_mode and result.get('certificate'):
        files.atomic_write(cert_path, result['certificate'].encode('ascii'), mode=0o644)
    if ctx.diff:
        result['diff'] = dict(
            before={'serial': None} if not current else {'certificate': 'present'},
            after={'serial': result.get('serial'), 'reasons': result['renewal_reasons']})
    return result


def _revoked_marker(p, issuer, serial):
    return os.path.join(core_issue.order_store_path(p.get('order_store')), 'revoked',
                        '%s.%s' % (files.validate_name(issuer, 'issuer'), serial))


def revoke(ctx, registry, connector):
    """``state: revoked``: revoke the certificate in use through any issuer, once.  A marker in
    the order store makes a rerun report changed=false without calling the CA again."""
    from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
    p = ctx.params
    cert_pem = p.get('current_certificate') or None
    option = 'current_certificate'
    if not cert_pem:
        option = 'certificate_path'
        if not os.path.exists(p['certificate_path']):
            raise ConfigError('%s does not exist' % p['certificate_path'], option=option,
                              fix='point certificate_path at the certificate to revoke')
        cert_pem = files.read_text(p['certificate_path'], option, fix=READ_FIX)
    facts = cx509.cert_facts(cx509.load_certificate(cert_pem, option=option))
    serial = facts['serial'].replace(':', '').upper()
    reason = p.get('revocation_reason') or 'unspecified'
    result = dict(changed=False, issuer=connector.name, name=p['name'], status='revoked', serial=serial,
                  revocation_reason=reason)
    marker = _revoked_marker(p, connector.name, serial)
    if os.path.exists(marker):
        return result
    result['changed'] = True
    if ctx.check_mode:
        return result
    connector.revoke(Revocation(certificate_pem=cert_pem, serial=serial, reason=reason))
    directory = os.path.dirname(marker)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    files.atomic_write(marker, ('%s\n' % reason).encode('ascii'), mode=0o600)
    for warning in registry.emit(Event('revoked', p['name'], issuer=connector.name,
                                       details={'serial': serial, 'reason': reason})):
        ctx.warn(warning)
    for warning in getattr(connector, 'warnings', None) or []:
        ctx.warn(warning)
    return result
