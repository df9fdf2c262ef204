# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs and ``execute(ctx)`` of sectigo_certificate and sectigo_account_info.
They run in-process on the controller through action plugins, or as plain modules."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.certforge.pki.plugins.module_utils.core import files, polling
from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.argspec import CA_MODULE_CHECKS, RENEWAL_OPTIONS, ArgumentSpec
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import ConfigError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import Revocation
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry
from ansible_collections.certforge.pki.plugins.module_utils.issuers import sectigo

READ_FIX = 'check the path (it is read on the controller)'
REASON_CHOICES = ['unspecified', 'key_compromise', 'affiliation_changed', 'superseded',
                  'cessation_of_operation']

CERT_SPEC = ArgumentSpec(
    dict(
        name=dict(type='str'),
        state=dict(type='str', default='present', choices=['present', 'revoked']),
        csr=dict(type='str'),
        csr_path=dict(type='path'),
        certificate_path=dict(type='path'),
        chain_path=dict(type='path'),
        fullchain_path=dict(type='path'),
        ssl_id=dict(type='int'),
        serial=dict(type='str'),
        revocation_reason=dict(type='str', default='unspecified', choices=REASON_CHOICES),
        wait_timeout=dict(type='int', default=600),
        fail_on_pending=dict(type='bool', default=False),
        order_store=dict(type='path'),
        recover_window=dict(type='float'),
    ),
    mutually_exclusive=[('csr', 'csr_path')],
    required_if=[('state', 'present', ('name',))],
)
CERT_SPEC.update(sectigo.CONNECTION_ARGSPEC)
CERT_SPEC.update(sectigo.REQUEST_ARGSPEC)
CERT_SPEC.update(RENEWAL_OPTIONS)
CERT_SPEC.update(polling.ARGSPEC)

SUBSETS = ['profiles', 'organizations', 'domains', 'custom_fields']
INFO_SPEC = ArgumentSpec(
    dict(
        gather_subset=dict(type='list', elements='str', default=['all'], choices=['all'] + SUBSETS),
        domain_details=dict(type='bool', default=True),
    ),
)
INFO_SPEC.update(sectigo.CONNECTION_ARGSPEC)


def _options(p, keys):
    return dict((k, p.get(k)) for k in keys if p.get(k) is not None)


def connector_for(p, client=None):
    options = _options(p, list(sectigo.CONNECTION_ARGSPEC) + list(sectigo.REQUEST_ARGSPEC) + ['ssl_id'])
    return sectigo.SectigoIssuer(options, option_prefix='', client=client)


def _write_outputs(p, result):
    for option, key in (('certificate_path', 'certificate'), ('chain_path', 'chain'),
                        ('fullchain_path', 'fullchain')):
        if p.get(option) and result.get(key) is not None:
            data = result[key].encode('ascii')
            try:
                with open(p[option], 'rb') as handle:
                    same = handle.read() == data
            except (IOError, OSError):
                same = False
            if not same:
                files.atomic_write(p[option], data, mode=0o644)


def execute_certificate(ctx, client=None):
    p = ctx.params
    for option in ('certificate_path', 'chain_path', 'fullchain_path'):
        if p.get(option):
            files.ensure_parent_dir(p[option], option)
    connector = connector_for(p, client)
    try:
        for warning in connector.warnings:
            ctx.warn(warning)
        if p['state'] == 'revoked':
            return _revoke(ctx, connector)
        return _present(ctx, connector)
    finally:
        if client is None:
            connector.close()


def _present(ctx, connector):
    p = ctx.params
    if not (p.get('csr') or p.get('csr_path')):
        raise ConfigError('state=present needs a CSR', option='csr', fix='set csr or csr_path')
    csr_pem = p['csr'] if p.get('csr') else files.read_text(p['csr_path'], 'csr_path', fix=READ_FIX)
    current = None
    if p.get('certificate_path') and os.path.exists(p['certificate_path']):
        current = files.read_text(p['certificate_path'], 'certificate_path', fix=READ_FIX)
        if not current.strip():
            current = None
    request_options = _options(p, [k for k in sectigo.REQUEST_ARGSPEC if k not in ('renew_method', 'collect_format')])
    request = core_issue.build_request(dict(name=p['name'], profile=p.get('profile'),
                                            validity_days=p.get('term'), issuer_options=request_options),
                                       csr_pem)
    request.replaces = current
    registry = Registry([sectigo.PLUGIN])
    policy = dict(renew_before_days=p.get('renew_before_days'), renew_at_fraction=p.get('renew_at_fraction'),
                  force=p.get('force'))
    schedule = polling.Schedule.from_options(p)
    chain = None
    if current and p.get('chain_path') and os.path.exists(p['chain_path']):
        chain = [files.read_text(p['chain_path'], 'chain_path', fix=READ_FIX)]
    result = core_issue.issue(registry, connector, request, current_pem=current, policy=policy,
                              store_path=p.get('order_store'), check_mode=ctx.check_mode,
                              wait_timeout=p['wait_timeout'], schedule=schedule, current_chain=chain,
                              emit=registry.emit, recover_window=p.get('recover_window'))
    for warning in result.pop('warnings', []):
        if warning not in connector.client.warnings:
            ctx.warn(warning)
    if result.get('order_id') is not None:
        result['ssl_id'] = int(result['order_id'])
    if result.get('status') == 'pending' and p.get('fail_on_pending'):
        raise ConfigError('Sectigo order %s is still pending after %ss' % (result.get('order_id'), p['wait_timeout']),
                          option='wait_timeout',
                          fix='raise wait_timeout, or drop fail_on_pending to resume the order on the next run')
    if result.get('certificate') and not ctx.check_mode:
        _write_outputs(p, result)
    if ctx.diff:
        before = {}
        if current:
            facts = cx509.cert_facts(cx509.load_certificate(current, option='certificate_path'))
            before = dict((k, facts[k]) for k in ('serial', 'subject_string', 'subject_alt_names', 'not_after'))
        result['diff'] = dict(before=before, after=dict(
            (k, result.get(k)) for k in ('status', 'ssl_id', 'serial', 'subject_alt_names', 'not_after')))
    return result


def _find_by_serial(connector, serial):
    items, dummy = connector.client.list_ssl({'serialNumber': sectigo.colon_serial(serial)}, size=10)
    for item in items:
        if sectigo.plain_serial(item.get('serialNumber')) == sectigo.plain_serial(serial):
            return item.get('sslId') or item.get('id')
    return None


def _revoke(ctx, connector):
    p = ctx.params
    ssl_id = p.get('ssl_id')
    serial = p.get('serial')
    option = 'ssl_id'
    if not ssl_id and not serial:
        if p.get('certificate_path') and os.path.exists(p['certificate_path']):
            pem = files.read_text(p['certificate_path'], 'certificate_path', fix=READ_FIX)
            serial = cx509.serial_hex(cx509.load_certificate(pem, option='certificate_path'))
        else:
            raise ConfigError('state=revoked needs the certificate to revoke', option='ssl_id',
                              fix='set ssl_id, serial, or certificate_path to the issued certificate')
    code, dummy = sectigo.scm_reason(p['revocation_reason'])
    record = None
    if ssl_id:
        record = connector.get(ssl_id, option='ssl_id')
    else:
        option = 'serial'
        if not sectigo.plain_serial(serial):
            raise ConfigError('%r is not a hexadecimal serial number' % (serial,), option='serial',
                              fix='give the serial as hex, with or without colons')
        found = _find_by_serial(connector, serial)
        if found is not None:
            record = connector.get(found, option='serial')
            ssl_id = int(found)
    result = dict(changed=False, ssl_id=ssl_id, serial=sectigo.colon_serial(serial or (record or {}).get('serialNumber')),
                  revocation_reason=p['revocation_reason'], reason_code=code)
    status = str((record or {}).get('status') or '')
    if status.lower() == 'revoked':
        result['status'] = 'revoked'
        return result
    if record is not None and status.lower() != 'issued':
        raise ConfigError('certificate %s is %s; only issued certificates can be revoked' % (ssl_id, status),
                          option=option, fix='wait for issuance, or decline the pending order in SCM instead')
    if record is None and serial is not None:
        raise ConfigError('Sectigo knows no certificate with serial %s' % sectigo.colon_serial(serial),
                          option='serial', fix='give the serial of a certificate issued through this account')
    result['changed'] = True
    result['status'] = 'revoked'
    if ctx.check_mode:
        return result
    if p.get('ssl_id'):
        revoked = connector.revoke(Revocation(order_id=str(ssl_id), reason=p['revocation_reason']))
    else:
        revoked = connector.revoke(Revocation(serial=serial, reason=p['revocation_reason']))
    result['changed'] = bool(revoked)
    return result


def execute_account_info(ctx, client=None):
    p = ctx.params
    subsets = set(p.get('gather_subset') or ['all'])
    if 'all' in subsets:
        subsets = set(SUBSETS)
    if client is None:
        options = _options(p, list(sectigo.CONNECTION_ARGSPEC))
        client = sectigo.SectigoClient.from_options(options)
        own = True
    else:
        own = False
    try:
        for warning in client.warnings:
            ctx.warn(warning)
        result = dict(changed=False)
        if 'profiles' in subsets:
            result['profiles'] = [dict(id=t.get('id'), name=t.get('name'), description=t.get('description'),
                                       terms=t.get('terms') or [], key_types=t.get('keyTypes') or {},
                                       use_secondary_org_name=t.get('useSecondaryOrgName'))
                                  for t in client.types()]
        if 'organizations' in subsets:
            result['organizations'] = [_org_info(client, o) for o in client.organizations()]
        if 'domains' in subsets:
            result['domains'] = _domains(client, p.get('domain_details', True))
        if 'custom_fields' in subsets:
            result['custom_fields'] = [dict(id=f.get('id'), name=f.get('name'), mandatory=bool(f.get('mandatory')))
                                       for f in client.custom_fields()]
        result['api_calls'] = len(client.calls)
        return result
    finally:
        if own:
            client.close()


def _org_info(client, org):
    details = client.organization(org['id'])
    info = dict(id=org.get('id'), name=org.get('name'),
                validation_status=details.get('validationStatus'),
                ssl_api_enabled=bool(details.get('sslCertsApiEnabled')),
                cert_types=details.get('certTypes') or [], departments=[])
    for dept in org.get('departments') or details.get('departments') or []:
        dd = client.organization(dept['id'])
        info['departments'].append(dict(id=dept.get('id'), name=dept.get('name'),
                                        ssl_api_enabled=bool(dd.get('sslCertsApiEnabled')),
                                        cert_types=dd.get('certTypes') or []))
    return info


def _domains(client, details):
    out = []
    position = 0
    while True:
        items, total = client.domains(size=sectigo.MAX_PAGE, position=position)
        for item in items:
            entry = dict(id=item.get('id'), name=item.get('name'))
            if details:
                d = client.domain(item['id'])
                entry.update(state=d.get('state'), validation_status=d.get('validationStatus'),
                             validation_method=d.get('validationMethod'),
                             dcv_expiration=d.get('dcvExpiration'),
                             delegations=d.get('delegations') or [])
            out.append(entry)
        position += len(items)
        if len(items) < sectigo.MAX_PAGE or (total is not None and position >= total):
            return out


# every option checked before the first request to SCM or the order store is touched
CERT_SPEC.add_checks(CA_MODULE_CHECKS)
