# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs and ``execute(ctx)`` of local_ca, local_ca_certificate and local_ca_crl.
They run in-process on the controller through action plugins, or as plain modules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.certforge.pki.plugins.module_utils.core import files
from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import (
    RENEWAL_OPTIONS, ArgumentSpec, destination, existing_dir, existing_file, max_length, not_empty)
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import REVOCATION_REASONS
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
from ansible_collections.certforge.pki.plugins.module_utils.issuers import local_ca

REASON_CHOICES = [r for r in REVOCATION_REASONS if r]

LOCAL_CA_SPEC = ArgumentSpec(
    dict(
        path=dict(type='path', required=True),
        type=dict(type='str', default='root', choices=['root', 'intermediate', 'import']),
        common_name=dict(type='str'),
        subject=dict(type='dict'),
        key_type=dict(type='str', default='ECDSA', choices=['ECDSA', 'RSA', 'Ed25519']),
        key_size=dict(type='int', choices=[2048, 3072, 4096]),
        key_curve=dict(type='str', choices=['secp256r1', 'secp384r1']),
        passphrase=dict(type='str', no_log=True),
        validity_days=dict(type='int'),
        path_length=dict(type='int'),
        name_constraints_permitted=dict(type='list', elements='str'),
        name_constraints_excluded=dict(type='list', elements='str'),
        parent_path=dict(type='path'),
        parent_passphrase=dict(type='str', no_log=True),
        certificate_path=dict(type='path'),
        privatekey_path=dict(type='path'),
        privatekey_passphrase=dict(type='str', no_log=True),
        chain_path=dict(type='path'),
        force=dict(type='bool', default=False),
    ),
    required_if=[('type', 'intermediate', ('parent_path',)),
                 ('type', 'import', ('certificate_path', 'privatekey_path'))],
    checks=dict(parent_path=[existing_dir], certificate_path=[existing_file],
                privatekey_path=[existing_file], chain_path=[existing_file]),
)


def execute_local_ca(ctx):
    p = dict(ctx.params)
    if p['type'] != 'import' and not (p.get('common_name') or p.get('subject')):
        if not local_ca.LocalCA(os.path.expanduser(p['path'])).exists():
            raise ConfigError('a new CA needs a subject', option='common_name',
                              fix='set common_name (and optionally subject)')
    result = local_ca.ensure_ca(p, check_mode=ctx.check_mode, warn=ctx.warn)
    if ctx.diff:
        result['diff'] = dict(before={} if result['changed'] else {'subject': result.get('subject')},
                              after={'subject': result.get('subject'), 'serial': result.get('serial'),
                                     'not_after': result.get('not_after')})
    return result


CERT_SPEC = ArgumentSpec(
    dict(
        ca_path=dict(type='path', required=True),
        ca_passphrase=dict(type='str', no_log=True),
        name=dict(type='str'),
        csr=dict(type='str'),
        csr_path=dict(type='path'),
        path=dict(type='path'),
        chain_path=dict(type='path'),
        fullchain_path=dict(type='path'),
        profile=dict(type='str', default='tls_server', choices=sorted(local_ca.PROFILES)),
        validity_days=dict(type='int', default=90),
        max_ttl_days=dict(type='int', default=397),
        allowed_domains=dict(type='list', elements='str'),
        allow_wildcards=dict(type='bool'),
        state=dict(type='str', default='present', choices=['present', 'revoked']),
        serial=dict(type='str'),
        revocation_reason=dict(type='str', default='unspecified', choices=REASON_CHOICES),
        order_store=dict(type='path'),
    ),
    mutually_exclusive=[('csr', 'csr_path')],
    checks=dict(ca_path=[existing_dir], csr_path=[existing_file], path=[destination],
                chain_path=[destination], fullchain_path=[destination],
                serial=[not_empty, max_length(64)], csr=[not_empty]),
)
CERT_SPEC.update(RENEWAL_OPTIONS)


def _check_dest_dirs(p):
    for option in ('path', 'chain_path', 'fullchain_path'):
        if p.get(option):
            files.ensure_parent_dir(p[option], option)


def execute_local_ca_certificate(ctx):
    p = ctx.params
    options = dict(ca_path=p['ca_path'], ca_passphrase=p.get('ca_passphrase'), profile=p['profile'],
                   validity_days=p['validity_days'], max_ttl_days=p['max_ttl_days'],
                   allowed_domains=p.get('allowed_domains'), allow_wildcards=p.get('allow_wildcards'))
    connector = local_ca.LocalCAIssuer(options)
    # this module calls them ca_path / ca_passphrase, not issuer_options.*
    connector.ca.option, connector.ca.passphrase_option = 'ca_path', 'ca_passphrase'
    _check_dest_dirs(p)
    _check_distinct(p, ('path', 'chain_path', 'fullchain_path', 'csr_path'))
    if p['state'] == 'revoked':
        return _revoke(ctx, connector)
    if not (p.get('csr') or p.get('csr_path')):
        raise ConfigError('state=present needs a CSR', option='csr', fix='set csr or csr_path')
    if not p.get('name'):
        raise ConfigError('state=present needs a name for the certificate', option='name',
                          fix='set name, e.g. the host or service name')
    csr_pem = p['csr'] if p.get('csr') else files.read_text(p['csr_path'], 'csr_path')
    current = None
    if p.get('path') and os.path.exists(p['path']):
        current = files.read_text(p['path'], 'path')
    for option in ('path', 'chain_path', 'fullchain_path'):
        if p.get(option):
            check_pem_destination(p[option], option, ('certificate',))
    registry = Registry([local_ca.PLUGIN])
    request = core_issue.build_request(dict(p, issuer_options={}), csr_pem)
    # every refusal (bad CSR, policy, CA that cannot sign) before the order store is touched,
    # in check mode too
    connector.check(request)
    policy = dict(renew_before_days=p.get('renew_before_days'), renew_at_fraction=p.get('renew_at_fraction'),
                  force=p.get('force'))
    result = core_issue.issue(registry, connector, request, current_pem=current, policy=policy,
                              store_path=p.get('order_store'), check_mode=ctx.check_mode,
                              wait_timeout=0, current_chain=connector._loaded(need_key=False).chain_pems() if current else None)
    for warning in connector.warnings:
        ctx.warn(warning)
    result.pop('warnings', None)
    if result['changed'] and not ctx.check_mode and result.get('certificate'):
        for option, key in (('path', 'certificate'), ('chain_path', 'chain'), ('fullchain_path', 'fullchain')):
            if p.get(option):
                files.atomic_write(p[option], result[key].encode('ascii'), mode=0o644)
    if ctx.diff:
        before = {}
        if current:
            facts = cx509.cert_facts(cx509.load_certificate(current, option='path'))
            before = {k: facts[k] for k in ('serial', 'subject_string', 'subject_alt_names', 'not_after')}
        after = {k: result.get(k) for k in ('serial', 'subject_alt_names', 'not_after')}
        result['diff'] = dict(before=before, after=after)
    return result


def _check_distinct(p, options):
    seen = {}
    for option in options:
        if p.get(option):
            path = os.path.realpath(os.path.expanduser(p[option]))
            if path in seen:
                raise ConfigError('is the same file as %s' % seen[path], option=option,
                                  fix='give every file its own path')
            seen[path] = option


def check_pem_destination(path, option, kinds):
    """A file about to be replaced must hold what we would write there (``kinds`` of PEM, or
    nothing): a private key, or anything else, is refused, never overwritten."""
    if not os.path.isfile(path):
        return
    with open(path, 'rb') as handle:
        data = handle.read()
    if not data.strip():
        return
    kind = cx509.pem_kind(data)
    if kind not in kinds:
        raise ConfigError('%s holds %s, not %s; refusing to overwrite it'
                          % (path, cx509.describe_pem(data) if kind else 'data that is not PEM',
                             ' or '.join('a ' + k.replace('_', ' ') for k in kinds)),
                          option=option, fix='give a path of its own, or move that file away first')


def _revoke(ctx, connector):
    p = ctx.params
    serial = p.get('serial')
    if not serial:
        pem = None
        if p.get('path') and os.path.exists(p['path']):
            pem = files.read_text(p['path'], 'path')
        if pem is None:
            raise ConfigError('state=revoked needs the certificate to revoke', option='serial',
                              fix='set serial, or path to the issued certificate')
        serial = cx509.serial_hex(cx509.load_certificate(pem, option='path'))
    ca = connector.ca.load(need_key=False)
    serial = local_ca.normalize_serial(serial)
    record = ca.record(serial)
    if record is None:
        raise ConfigError('serial %s was not issued by the CA in %s' % (serial, ca.path), option='serial',
                          fix='give the serial of a certificate this CA issued')
    if record.get('status') == 'revoked':
        return dict(changed=False, serial=serial, revoked_at=record.get('revoked_at'),
                    revocation_reason=record.get('reason'))
    if ctx.check_mode:
        return dict(changed=True, serial=serial, revocation_reason=p['revocation_reason'])
    changed, record = ca.revoke(serial, p['revocation_reason'])
    return dict(changed=changed, serial=serial, revoked_at=record.get('revoked_at'),
                revocation_reason=record.get('reason'))


CRL_SPEC = ArgumentSpec(
    dict(
        ca_path=dict(type='path', required=True),
        ca_passphrase=dict(type='str', no_log=True),
        path=dict(type='path', required=True),
        der_path=dict(type='path'),
        validity_days=dict(type='int', default=7),
        renew_before_hours=dict(type='int', default=24),
        force=dict(type='bool', default=False),
    ),
    checks=dict(ca_path=[existing_dir], path=[destination], der_path=[destination]),
)


def _check_crl_file(path, option, der):
    """An existing file at a CRL path must be a CRL (any issuer): anything else is refused."""
    if not os.path.isfile(path):
        return
    with open(path, 'rb') as handle:
        data = handle.read()
    if not data.strip():
        return
    x509 = cx509.require_cryptography().x509
    try:
        if der:
            x509.load_der_x509_crl(data)
        else:
            labels = cx509.pem_labels(data)
            if labels != ['X509 CRL']:
                raise ValueError('not one PEM CRL')
            x509.load_pem_x509_crl(data)
    except ValueError:
        what = cx509.describe_pem(data) if cx509.pem_labels(data) else 'data that is not a CRL'
        raise ConfigError('%s holds %s, not a %s CRL; refusing to overwrite it'
                          % (path, what, 'DER' if der else 'PEM'), option=option,
                          fix='give the CRL a path of its own, or move that file away first')


def execute_local_ca_crl(ctx):
    p = ctx.params
    if p['validity_days'] < 1:
        raise ConfigError('must be at least 1', option='validity_days', fix='e.g. validity_days: 7')
    if p['renew_before_hours'] >= p['validity_days'] * 24:
        raise ConfigError('must be shorter than validity_days', option='renew_before_hours',
                          fix='e.g. 24 hours for a 7-day CRL')
    for option in ('path', 'der_path'):
        if p.get(option):
            files.ensure_parent_dir(p[option], option)
    _check_distinct(p, ('path', 'der_path'))
    _check_crl_file(p['path'], 'path', der=False)
    if p.get('der_path'):
        _check_crl_file(p['der_path'], 'der_path', der=True)
    ca = local_ca.LocalCA(os.path.expanduser(p['ca_path']), p.get('ca_passphrase'), option='ca_path')
    ca.load(need_key=False)
    if os.path.realpath(os.path.dirname(os.path.abspath(p['path']))) == os.path.realpath(ca.path) and \
            os.path.basename(p['path']) in local_ca.CA_FILES:
        raise ConfigError('%s is a file of the CA itself' % p['path'], option='path',
                          fix='give the CRL its own file name, e.g. crl.pem')
    needs, reasons = local_ca.crl_status(ca, p['path'], p['renew_before_hours'])
    if p.get('der_path') and not os.path.exists(p['der_path']):
        needs, reasons = True, reasons + ['der_missing']
    if p['force']:
        needs, reasons = True, reasons + ['forced']
    revoked = sorted(ca.revoked())
    result = dict(changed=needs, changed_reasons=reasons, revoked_serials=revoked, path=p['path'])
    if not needs or ctx.check_mode:
        return result
    ca.load(need_key=True)
    from cryptography.hazmat.primitives import serialization
    crl, number = local_ca.build_crl(ca, p['validity_days'])
    files.atomic_write(p['path'], crl.public_bytes(serialization.Encoding.PEM), mode=0o644)
    if p.get('der_path'):
        files.atomic_write(p['der_path'], crl.public_bytes(serialization.Encoding.DER), mode=0o644)
    result.update(crl_number=number, next_update=local_ca.crl_next_update(crl).strftime('%Y-%m-%dT%H:%M:%SZ'),
                  crl=crl.public_bytes(serialization.Encoding.PEM).decode('ascii'))
    return result
