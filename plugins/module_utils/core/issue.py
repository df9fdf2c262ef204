# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The issue sequence every issuer goes through.

    decide (renewal.py, no CA call when nothing is due)
      -> policy hooks -> intent recorded -> submit (or resume / recover) -> id recorded
      -> poll with bounded backoff until issued or the deadline -> issued | pending

A lost submit answer never leads to a second order: an ``intent`` record without an order id
makes the next run ask the issuer's ``find_orders`` before it submits again.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import uuid

from ansible_collections.certforge.pki.plugins.module_utils.core import polling, renewal
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import AuthError, ConfigError, PermanentError, PolicyError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import (
    ORDER_FAILED, ORDER_ISSUED, ORDER_PENDING, CertificateRequest, Event, Order)
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import (
    ACTION_RECOVER, ACTION_RESUME, is_postgres_url, open_store, order_key, request_fingerprint)

DEFAULT_ORDER_STORE = '~/.local/state/certforge/orders'
ORDER_STORE_ENV = 'CERTFORGE_ORDER_STORE'


def order_store_path(option_value=None):
    """Where the order store lives: the ``order_store`` option, else ``$CERTFORGE_ORDER_STORE``,
    else the default directory.  A directory path or a ``postgresql://`` URL."""
    location = option_value or os.environ.get(ORDER_STORE_ENV) or DEFAULT_ORDER_STORE
    if is_postgres_url(location):
        return location
    return os.path.expanduser(location)


def open_order_store(option_value=None, **kwargs):
    """The order store named by the option / environment (see :func:`order_store_path`)."""
    return open_store(order_store_path(option_value), **kwargs)


def _result_from_cert(cert_pem, chain, facts=None):
    facts = facts or cx509.cert_facts(cx509.load_certificate(cert_pem, option='certificate'))
    chain_text = ''.join(chain or [])
    return dict(certificate=cert_pem, chain=chain_text, fullchain=cert_pem + chain_text,
                serial=facts['serial'], not_before=facts['not_before'], not_after=facts['not_after'],
                subject=facts['subject_string'], issuer_subject=facts['issuer_string'],
                subject_alt_names=facts['subject_alt_names'])


def pending_challenges(order):
    """What the user (or the role) must still do for a pending order: the connector keeps it in
    ``order.details['challenges']`` (a dict or a list of dicts with a ``status``)."""
    found = (order.details or {}).get('challenges') or []
    if isinstance(found, dict):
        found = list(found.values())
    return [{k: v for k, v in c.items() if k != 'status'} for c in found
            if isinstance(c, dict) and c.get('status') != 'valid']


def expected_from_csr(csr_pem):
    csr = cx509.load_csr(csr_pem, option='csr')
    cx509.verify_csr_signature(csr, option='csr')
    return csr, {'subject_alt_names': cx509.san_list(csr),
                 'public_key_fingerprint': cx509.public_key_fingerprint(csr.public_key())}


def decide(connector, request, current_pem, policy, chain_pem=None):
    """(needs, reasons, current_facts) for ``request`` given the certificate in use."""
    _csr, expected = expected_from_csr(request.csr_pem)
    facts = None
    if current_pem:
        facts = cx509.cert_facts(cx509.load_certificate(current_pem, option='current_certificate'))
        issuer_subject = getattr(connector, 'issuer_subject', None)
        if issuer_subject is not None:
            expected['issuer'] = issuer_subject()
        profile_of = getattr(connector, 'profile_of', None)
        if request.profile and profile_of is not None:
            facts['profile'] = profile_of(facts['serial'])
            expected['profile'] = request.profile
    window = connector.renewal_window(current_pem) if current_pem else None
    needs, reasons = renewal.decide(facts, policy=policy, expected=expected, window=window)
    return needs, reasons, facts


def issue(registry, connector, request, current_pem=None, policy=None, store_path=None,
          check_mode=False, wait_timeout=60, schedule=None, current_chain=None, emit=None,
          clock=None, sleep=None):
    """Run the issue sequence for one request.  Returns a module result dict."""
    emit = emit or (lambda event: None)
    needs, reasons, facts = decide(connector, request, current_pem, policy)
    result = dict(changed=False, issuer=connector.name, name=request.name, renewal_reasons=reasons)
    if not needs:
        result['status'] = 'valid'
        result.update(_result_from_cert(current_pem, current_chain or [], facts))
        return result
    result['changed'] = True
    if check_mode:
        result['status'] = 'would_issue'
        return result

    registry.check_request(request, connector)
    precheck = getattr(connector, 'check', None)
    if precheck is not None:
        precheck(request)     # the connector refuses what it can before anything is recorded
    store = open_order_store(store_path)
    key = order_key(connector.name, request.name)
    # options that do not change what is ordered (credentials, timeouts) stay out of the
    # fingerprint: a password rotated while an order is pending must not order again
    fingerprint = request_fingerprint(request, ignore_options=getattr(connector, 'fingerprint_ignore', ()))
    with store.lock(key):
        plan = store.resume_or_new(key, fingerprint)
        order = None
        if plan.action == ACTION_RESUME:
            request.token = plan.record.token
            order = plan.record.get_order()
            result['resumed'] = True
        elif plan.action == ACTION_RECOVER:
            # a submit may have reached the CA and lost its answer: adopt that order
            request.token = plan.record.token
            found = [o for o in connector.find_orders(request) if o.id]
            if found:
                order = found[-1]
                result['recovered'] = True
        if order is None:
            request.token = request.token or uuid.uuid4().hex
            previous = store.load(key)
            store.record_intent(key, fingerprint, request.token, connector.name,
                                {'name': request.name, 'reasons': reasons})
            try:
                order = connector.submit(request)
            except (AuthError, ConfigError, PolicyError):
                # refused outright: nothing was ordered, so leave no intent behind.  Anything
                # else (a lost answer, a timeout) keeps the intent for find_orders next time.
                store.restore(key, previous)
                raise
        store.record_submitted(key, order)

        def check():
            current = order if order.issued else connector.poll(order)
            return current.issued, current, current.retry_after

        kwargs = {}
        if clock is not None:
            kwargs['clock'] = clock
        if sleep is not None:
            kwargs['sleep'] = sleep
        if order.issued:
            final, done = order, True
        else:
            try:
                polled = polling.poll_until(check, wait_timeout, schedule or polling.Schedule.steps(), **kwargs)
            except PermanentError as exc:
                # declined, rejected, invalid: close the record, so the next run orders afresh
                # instead of resuming a dead order forever
                store.update(key, Order(issuer=connector.name, id=order.id, status=ORDER_FAILED,
                                        error=exc.msg, details=order.details))
                raise
            final, done = polled.value or order, polled.done
            result['polling'] = polled.to_dict()
        store.update(key, final)
        if done:
            store.complete(key)
    result['order_id'] = final.id
    warnings = getattr(connector, 'warnings', None)
    if warnings:
        result['warnings'] = list(warnings)
    if not done:
        result['status'] = ORDER_PENDING
        challenges = pending_challenges(final)
        if challenges:
            result['challenges'] = challenges
        emit(Event('pending', request.name, issuer=connector.name, details={'order_id': final.id}))
        return result
    result['status'] = ORDER_ISSUED
    result.update(_result_from_cert(final.certificate_pem, final.chain_pem))
    emit(Event('renewed' if current_pem else 'issued', request.name, issuer=connector.name,
               details={'serial': result['serial'], 'reasons': reasons}))
    return result


def build_request(params, csr_pem):
    name = params.get('name')
    if not name or '/' in name or name in ('.', '..') or '..' in name:
        raise ConfigError('%r cannot name a certificate' % (name,), option='name',
                          fix='use letters, digits, dots, dashes and underscores, no "/" or ".."')
    return CertificateRequest(name=name, csr_pem=csr_pem, profile=params.get('profile'),
                              validity_days=params.get('validity_days'),
                              issuer_options=params.get('issuer_options') or {})
