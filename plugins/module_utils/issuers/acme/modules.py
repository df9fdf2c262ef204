# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs and ``execute(ctx)`` of acme_certificate, acme_account and
acme_certificate_revoke (kept in step with ``plugins/doc_fragments/acme.py``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os

from ansible_collections.certforge.pki.plugins.module_utils.core import files
from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
from ansible_collections.certforge.pki.plugins.module_utils.core import polling
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import (
    CA_MODULE_CHECKS, RENEWAL_OPTIONS, ArgumentSpec, existing_file)
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import CertforgeError, ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import (
    CertificateRequest, reason_code,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import order_key
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme import connector
from ansible_collections.certforge.pki.plugins.module_utils.issuers.acme.client import ZEROSSL_EAB_URL

CONNECTION_OPTIONS = dict(
    acme_directory=dict(type='str', required=True),
    acme_ca_bundle=dict(type='path'),
    validate_certs=dict(type='bool', default=True),
    acme_timeout=dict(type='float', default=30),
    account_key_path=dict(type='path'),
    account_key_content=dict(type='str', no_log=True),
    account_key_passphrase=dict(type='str', no_log=True),
    account_uri=dict(type='str'),
    order_store=dict(type='path'),
)
ACCOUNT_OPTIONS = dict(
    contact=dict(type='list', elements='str', default=[]),
    terms_agreed=dict(type='bool', default=False),
    eab_kid=dict(type='str'),
    eab_hmac_key=dict(type='str', no_log=True),
    eab_lookup_email=dict(type='str'),
    eab_lookup_url=dict(type='str', default=ZEROSSL_EAB_URL),
)
KEY_EXCLUSIVE = [('account_key_path', 'account_key_content')]

CERTIFICATE_SPEC = ArgumentSpec(
    dict(
        name=dict(type='str', required=True),
        csr=dict(type='str'),
        csr_path=dict(type='path'),
        certificate_path=dict(type='path'),
        chain_path=dict(type='path'),
        fullchain_path=dict(type='path'),
        challenge=dict(type='str', default='http-01', choices=['http-01', 'dns-01', 'dns-persist-01']),
        http01_listen_port=dict(type='int'),
        http01_listen_address=dict(type='str', default='127.0.0.1'),
        http01_webroot=dict(type='path'),
        dns_hook_add=dict(type='list', elements='str'),
        dns_hook_remove=dict(type='list', elements='str'),
        dns_propagation_command=dict(type='list', elements='str'),
        dns_propagation_timeout=dict(type='int', default=120),
        profile=dict(type='str'),
        preferred_chain=dict(type='str'),
        renewal_info=dict(type='bool', default=False),
        wait_timeout=dict(type='int', default=120),
        recover_window=dict(type='float'),
        fail_on_pending=dict(type='bool', default=False),
    ),
    mutually_exclusive=[('csr', 'csr_path')] + KEY_EXCLUSIVE,
    required_one_of=[('csr', 'csr_path'), ('account_key_path', 'account_key_content')],
)
CERTIFICATE_SPEC.update(CONNECTION_OPTIONS)
CERTIFICATE_SPEC.update(ACCOUNT_OPTIONS)
CERTIFICATE_SPEC.update(RENEWAL_OPTIONS)

ACCOUNT_SPEC = ArgumentSpec(
    dict(
        state=dict(type='str', default='present', choices=['present', 'absent', 'changed_key']),
        account_key_create=dict(type='str', choices=['ECDSA-P256', 'ECDSA-P384', 'RSA-3072']),
        new_account_key_path=dict(type='path'),
        new_account_key_content=dict(type='str', no_log=True),
        new_account_key_passphrase=dict(type='str', no_log=True),
    ),
    mutually_exclusive=KEY_EXCLUSIVE + [('new_account_key_path', 'new_account_key_content')],
    required_one_of=[('account_key_path', 'account_key_content')],
    required_if=[('state', 'changed_key', ('new_account_key_path', 'new_account_key_content'), True)],
)
ACCOUNT_SPEC.update(CONNECTION_OPTIONS)
ACCOUNT_SPEC.update(ACCOUNT_OPTIONS)

REVOKE_SPEC = ArgumentSpec(
    dict(
        certificate_path=dict(type='path'),
        certificate_content=dict(type='str'),
        reason=dict(type='str', default='unspecified'),
        private_key_path=dict(type='path'),
        private_key_content=dict(type='str', no_log=True),
        private_key_passphrase=dict(type='str', no_log=True),
    ),
    mutually_exclusive=KEY_EXCLUSIVE + [('certificate_path', 'certificate_content'),
                                        ('private_key_path', 'private_key_content')],
    required_one_of=[('certificate_path', 'certificate_content')],
)
REVOKE_SPEC.update(CONNECTION_OPTIONS)

#: Fast polling for ACME: the first check comes at once, then short steps (Retry-After wins).
ACME_SCHEDULE = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0)
READ_FIX = 'check the path (it is read on the controller)'


def _options(params, names):
    return {k: params.get(k) for k in names if params.get(k) is not None}


def connector_options(params):
    names = list(CONNECTION_OPTIONS) + list(ACCOUNT_OPTIONS) + list(CERTIFICATE_SPEC.argument_spec)
    return _options(params, names)


def _read_optional(path, option):
    if path and os.path.exists(path):
        return files.read_text(path, option, fix=READ_FIX)
    return None


def _pending_challenges(store_path, name):
    record = core_issue.open_order_store(store_path).load(order_key('acme', name))
    details = ((record.order or {}).get('details') or {}) if record else {}
    out = []
    for info in (details.get('challenges') or {}).values():
        if info.get('status') != 'valid':
            out.append({k: v for k, v in info.items() if k != 'status'})
    return out


def _write_outputs(params, result):
    written = []
    for option, key in (('certificate_path', 'certificate'), ('chain_path', 'chain'),
                        ('fullchain_path', 'fullchain')):
        path = params.get(option)
        if not path or not result.get(key):
            continue
        data = result[key].encode('ascii')
        try:
            with open(path, 'rb') as handle:
                if handle.read() == data:
                    continue
        except (IOError, OSError):
            pass
        files.ensure_parent_dir(path, option)
        try:
            files.atomic_write(path, data, mode=0o644)
        except OSError as exc:
            raise ConfigError('cannot write %s: %s' % (path, exc.strerror or exc), option=option,
                              fix='give a path in a directory the controller user can write')
        written.append(path)
    return written


def execute_certificate(ctx):
    p = ctx.params
    csr_pem = p['csr'] if p.get('csr') else files.read_text(p['csr_path'], 'csr_path', fix=READ_FIX)
    current = _read_optional(p.get('certificate_path'), 'certificate_path')
    chain_now = _read_optional(p.get('chain_path'), 'chain_path')
    registry = Registry([connector.PLUGIN])
    issuer = connector.AcmeIssuer(connector_options(p))
    request = CertificateRequest(name=p['name'], csr_pem=csr_pem, profile=p.get('profile'), replaces=current)
    # refuse what can be refused before the order store or the CA is touched
    connector.load_account_key(connector_options(p))
    issuer.check(request)
    policy = dict(renew_before_days=p.get('renew_before_days'), renew_at_fraction=p.get('renew_at_fraction'),
                  force=p.get('force'))
    try:
        result = core_issue.issue(registry, issuer, request, current_pem=current, policy=policy,
                                  store_path=p.get('order_store'), check_mode=ctx.check_mode,
                                  wait_timeout=p['wait_timeout'],
                                  schedule=polling.Schedule.steps(ACME_SCHEDULE, jitter=0.1),
                                  current_chain=[chain_now] if chain_now else None, emit=registry.emit,
                                  recover_window=p.get('recover_window'))
    finally:
        issuer.close()
    for warning in result.pop('warnings', []) or issuer.warnings:
        ctx.warn(warning)
    if result.get('status') == 'pending':
        result['challenges'] = _pending_challenges(p.get('order_store'), p['name'])
        if p.get('fail_on_pending'):
            raise ConfigError('order %s is still pending after %ss' % (result.get('order_id'), p['wait_timeout']),
                              option='wait_timeout', fix='raise wait_timeout, or drop fail_on_pending to '
                                                         'continue the order on the next run',
                              details={'challenges': result['challenges']})
    if result.get('status') == 'issued' and not ctx.check_mode:
        result['files_written'] = _write_outputs(p, result)
    if ctx.diff:
        result['diff'] = dict(before={'serial': None} if not current else {'certificate': 'present'},
                              after={'serial': result.get('serial'), 'reasons': result['renewal_reasons']})
    return result


def _account_result(issuer, client, changed, status, data=None):
    data = data or {}
    return dict(changed=changed, account_uri=client.kid, status=status,
                contact=data.get('contact', []), warnings=list(issuer.warnings))


def _create_account_key(p, check_mode):
    """account_key_create: make the key at account_key_path when it is missing (0600 from the
    first byte, encrypted with account_key_passphrase when given).  Returns True when made."""
    path = p.get('account_key_path')
    if not p.get('account_key_create') or p['state'] != 'present' or not path or os.path.exists(path):
        return False
    files.ensure_parent_dir(path, 'account_key_path')
    if check_mode:
        return True
    kind, dummy, size = p['account_key_create'].partition('-')
    if kind == 'RSA':
        key = cx509.generate_private_key('RSA', size=int(size))
    else:
        key = cx509.generate_private_key('ECDSA', curve={'P256': 'secp256r1', 'P384': 'secp384r1'}[size])
    files.atomic_write(path, cx509.private_key_to_pem(key, p.get('account_key_passphrase')), mode=0o600)
    return True


def execute_account(ctx):
    p = ctx.params
    key_created = _create_account_key(p, ctx.check_mode)
    if key_created and ctx.check_mode:
        return dict(changed=True, status='would_create', account_key_created=True, contact=p.get('contact') or [])
    answered = []
    try:
        result = _execute_account(ctx, p, answered)
    except Exception:
        # the CA never saw the new key (unreachable, TLS trust failure, bad directory): a rerun
        # with the problem fixed makes it again, so none is left behind
        if key_created and not answered:
            with contextlib.suppress(OSError):
                os.unlink(p['account_key_path'])
        raise
    result['account_key_created'] = key_created
    result['changed'] = result['changed'] or key_created
    return result


def _execute_account(ctx, p, answered):
    """``answered`` gets an entry once the CA has answered the first account lookup."""
    options = connector_options(p)
    issuer = connector.AcmeIssuer(options)
    client = issuer.client(need_account=False)
    state = p['state']
    exists = True
    try:
        client.new_account(only_existing=True)
    except CertforgeError as exc:
        if getattr(exc, 'acme_type', None) != 'accountDoesNotExist':
            raise
        exists = False
    answered.append(True)
    directory = options['acme_directory']
    if state == 'absent':
        if not exists:
            return _account_result(issuer, client, False, 'absent')
        if not ctx.check_mode:
            client.update_account({'status': 'deactivated'})
            issuer.cache.forget_account(directory, client.key.thumbprint())
        return _account_result(issuer, client, True, 'deactivated')
    if not exists:
        if not p.get('terms_agreed'):
            raise ConfigError('no account exists for this key and the terms of service are not agreed',
                              option='terms_agreed', fix='set terms_agreed: true to create the account')
        if ctx.check_mode:
            return _account_result(issuer, client, True, 'would_create')
        issuer.ensure_account(client)
        return _account_result(issuer, client, True, 'created', client.account())
    data = client.account()
    changed = False
    if state == 'changed_key':
        new_key = connector.load_account_key(p, option_prefix='new_account_key')
        if not ctx.check_mode:
            old_thumb = client.key.thumbprint()
            client.key_change(new_key)
            issuer.cache.forget_account(directory, old_thumb)
            issuer.cache.save_account(directory, new_key.thumbprint(), client.kid)
        return _account_result(issuer, client, True, 'key_changed', data)
    if p.get('contact') and sorted(p['contact']) != sorted(data.get('contact') or []):
        changed = True
        if not ctx.check_mode:
            data = client.update_account({'contact': list(p['contact'])})
    issuer.cache.save_account(directory, client.key.thumbprint(), client.kid)
    return _account_result(issuer, client, changed, data.get('status', 'valid'), data)


def execute_revoke(ctx):
    p = ctx.params
    try:
        code = reason_code(p.get('reason') or 'unspecified')
    except ValueError:
        raise ConfigError('unknown revocation reason %r' % (p.get('reason'),), option='reason',
                          fix='use an RFC 5280 reason name: unspecified, key_compromise, ca_compromise, '
                              'affiliation_changed, superseded, cessation_of_operation, certificate_hold, '
                              'privilege_withdrawn, aa_compromise')
    pem = p.get('certificate_content') or files.read_text(p['certificate_path'], 'certificate_path',
                                                          fix=READ_FIX)
    facts = cx509.cert_facts(cx509.load_certificate(pem, option='certificate_path'))
    result = dict(changed=True, serial=facts['serial'], reason=p.get('reason') or 'unspecified')
    if ctx.check_mode:
        return result
    options = connector_options(p)
    if p.get('private_key_path') or p.get('private_key_content'):
        cert_key = connector.load_account_key(p, option_prefix='private_key')
        client = connector.make_client(options)
        done = client.revoke(_der(pem), code, key=cert_key)
    else:
        if not (p.get('account_key_path') or p.get('account_key_content')):
            raise ConfigError('an account key or the certificate key is needed', option='account_key_path',
                              fix='set account_key_path (the account that ordered it) or private_key_path')
        issuer = connector.AcmeIssuer(options)
        client = issuer.client(need_account=False)
        issuer.ensure_account(client, create=False)
        done = client.revoke(_der(pem), code)
    result['changed'] = bool(done)
    if not done:
        result['msg'] = 'the certificate was already revoked'
    return result


def _der(pem):
    lib = cx509.require_cryptography()
    return cx509.load_certificate(pem, option='certificate_path').public_bytes(lib.serialization.Encoding.DER)


# every option checked before the directory is fetched or the order store is touched
CERTIFICATE_SPEC.add_checks(dict(CA_MODULE_CHECKS, account_key_path=[existing_file]))
REVOKE_SPEC.add_checks(dict(certificate_path=[existing_file], private_key_path=[existing_file],
                            account_key_path=[existing_file]))
