# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The issue sequence every issuer goes through.

    decide (renewal.py, no CA call when nothing is due)
      -> policy hooks -> intent recorded -> submit (or resume / recover) -> id recorded
      -> poll with bounded backoff until issued or the deadline -> issued | pending

A lost submit answer never leads to a second order: an ``intent`` record without an order id
makes the next run ask the issuer's ``find_orders`` before it submits again, and the token that
marks the order at the CA is derived from the request, so even a controller with an empty
store finds it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import os
import time

from ansible_collections.certforge.pki.plugins.module_utils.core import polling, renewal
from ansible_collections.certforge.pki.plugins.module_utils.core import x509 as cx509
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    AuthError, CertforgeError, ConfigError, PermanentError, PolicyError, TransientError)
from ansible_collections.certforge.pki.plugins.module_utils.core.model import (
    ORDER_FAILED, ORDER_ISSUED, ORDER_PENDING, ORDER_REVOKED, CertificateRequest, Event, Order)
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import (
    STATUS_ISSUED, _pem_der, is_postgres_url, open_store, order_key, request_fingerprint)

DEFAULT_ORDER_STORE = '~/.local/state/certforge/orders'
#: Seconds after an interrupted submit during which the CA is asked again before resubmitting
#: (a CA may commit a request whose answer was lost a little later).  Connectors may set
#: ``commit_window``.
DEFAULT_COMMIT_WINDOW = 30.0
#: Least time a run waits for another run that holds the same certificate.
DEFAULT_LOCK_WAIT = 60.0
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
    window_of = getattr(connector, 'renewal_window', None)
    window = window_of(current_pem) if (current_pem and window_of is not None) else None
    needs, reasons = renewal.decide(facts, policy=policy, expected=expected, window=window)
    return needs, reasons, facts


# -- the request ------------------------------------------------------------------------------

def _key_type(public_key):
    desc = cx509.key_description(public_key)
    if desc.get('type') == 'RSA':
        return 'RSA-%s' % desc.get('size')
    if desc.get('type') == 'ECDSA':
        curve = {'secp256r1': 'P256', 'secp384r1': 'P384', 'secp521r1': 'P521'}
        return 'EC-%s' % curve.get(desc.get('curve'), desc.get('curve'))
    return desc.get('type')


def enrich_request(request, current_pem=None):
    """Fill what a connector needs to know from the CSR and the certificate in use: common
    name, SANs and key type (parsed from ``csr_pem``), and ``replaces`` / ``replaces_serial``
    (the certificate being renewed), unless the caller set them."""
    csr = cx509.load_csr(request.csr_pem, option='csr')
    if not request.common_name:
        cns = [a.value for a in csr.subject if a.oid.dotted_string == '2.5.4.3']
        request.common_name = cns[0] if cns else None
    if not request.subject_alt_names:
        request.subject_alt_names = cx509.san_list(csr)
    if not request.key_type:
        request.key_type = _key_type(csr.public_key())
    if current_pem and not request.replaces:
        request.replaces = current_pem
    if request.replaces and not request.replaces_serial:
        request.replaces_serial = cx509.serial_hex(
            cx509.load_certificate(request.replaces, option='current_certificate'))
    return request


def _fingerprints(connector, request):
    """(content, full) fingerprints: ``content`` is what the certificate will say (CSR,
    profile, validity, issuer options); ``full`` adds the certificate it replaces.  Computed
    on the request as the caller gave it (parsed CSR facts are derived, not inputs)."""
    ignore = getattr(connector, 'fingerprint_ignore', ())
    bare = CertificateRequest(name=request.name, csr_pem=request.csr_pem, profile=request.profile,
                              validity_days=request.validity_days,
                              issuer_options=request.issuer_options)
    content = request_fingerprint(bare, ignore_options=ignore)
    bare.replaces = request.replaces
    return content, request_fingerprint(bare, ignore_options=ignore)


def derive_token(issuer, name, content_fingerprint, replaces=None):
    """The idempotency token that marks an order at the CA: derived from the request identity
    and the certificate it replaces, so a controller with an empty store derives the same one
    and finds an earlier order.  32 lower-case hex digits."""
    replaced = hashlib.sha256(_pem_der(replaces)).hexdigest() if replaces else '-'
    blob = '|'.join(('certforge-token-v1', issuer, name, content_fingerprint, replaced))
    return hashlib.sha256(blob.encode('utf-8')).hexdigest()[:32]


def _same_cert(a, b):
    return bool(a and b) and _pem_der(a) == _pem_der(b)


def _chain_list(chain):
    if not chain:
        return []
    if isinstance(chain, str):
        return cx509.split_pem(chain)
    return list(chain)


# -- decide again under the lock ----------------------------------------------------------------

def _good_for(connector, request, cert_pem, policy):
    """True when ``cert_pem`` serves ``request`` under ``policy`` without ``force``."""
    try:
        needs, _reasons, _facts = decide(connector, request, cert_pem, dict(policy or {}, force=False))
    except CertforgeError:
        return False
    return not needs


def _recorded_answer(connector, request, record, content_fp, full_fp, current_pem, policy):
    """The certificate already issued for this request, when the record holds one that is not
    the certificate in use and still serves the request: it stays the answer until deployed."""
    if record is None or record.status != STATUS_ISSUED:
        return None
    order = record.get_order()
    if order is None or not order.certificate_pem or _same_cert(order.certificate_pem, current_pem):
        return None
    if record.request_fingerprint == full_fp:
        pass                                  # ordered for exactly this request (and replacement)
    elif record.content_fingerprint != content_fp or (policy or {}).get('force'):
        return None
    if not _good_for(connector, request, order.certificate_pem, policy):
        return None
    return order


def _usable(connector, request, orders, policy):
    """Orders found at the CA that can still produce the certificate: not failed or revoked,
    and an issued one only while it serves the request.  Newest last."""
    out = []
    for order in orders or []:
        if not order.id or order.status in (ORDER_FAILED, ORDER_REVOKED):
            continue
        if order.certificate_pem and not _good_for(connector, request, order.certificate_pem, policy):
            continue
        out.append(order)
    return out


def _lookup(connector, request, policy):
    found = _usable(connector, request, connector.find_orders(request), policy)
    return found[-1] if found else None


def _recover(connector, request, record, policy, window, wallclock, sleep):
    """A submit started (intent recorded) without a recorded answer: look the order up at the
    CA, again and again until ``window`` seconds after the intent (a CA may commit a request
    late), before anything is resubmitted."""
    started = _parse_stamp(record.updated) or wallclock()
    pause = 0.5
    while True:
        order = _lookup(connector, request, policy)
        if order is not None:
            return order
        remaining = started + window - wallclock()
        if remaining <= 0:
            return None
        sleep(min(pause, remaining))
        pause = min(pause * 2, 5.0)


def _parse_stamp(stamp):
    if not stamp:
        return None
    try:
        when = datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%S.%fZ')
    except ValueError:
        return None
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def _pending(result, connector, request, order, emit, why=None):
    result['status'] = ORDER_PENDING
    result['order_id'] = order.id if order is not None else None
    if why:
        result['pending_reason'] = why
    if order is not None:
        challenges = pending_challenges(order)
        if challenges:
            result['challenges'] = challenges
    emit(Event('pending', request.name, issuer=connector.name,
               details={'order_id': result['order_id']}))
    return result


# -- the sequence ----------------------------------------------------------------------------------

def issue(registry, connector, request, current_pem=None, policy=None, store_path=None,
          check_mode=False, wait_timeout=60, schedule=None, current_chain=None, emit=None,
          clock=None, sleep=None, recover_window=None, wallclock=None, lock_timeout=None):
    """Run the issue sequence for one request.  Returns a module result dict.

    Exactly once: the renewal decision, the store lookup and the submit happen under one lock
    per (issuer, name); a run that waited for the lock decides again.  A certificate already
    issued for this request is returned from the record (``reused``), not ordered again.
    With no record, a CA that can search (``connector.searchable``) is asked for an order
    marked with the derived token before the first submit; after an interrupted submit the
    lookup repeats for ``recover_window`` seconds before anything is resubmitted.  Transient
    CA trouble ends as ``pending`` (resumed next run), never as a failure.
    """
    emit = emit or (lambda event: None)
    sleep = sleep or time.sleep
    wallclock = wallclock or time.time
    enrich_request(request, current_pem)
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
    if recover_window is None:
        recover_window = getattr(connector, 'commit_window', None)
        recover_window = DEFAULT_COMMIT_WINDOW if recover_window is None else float(recover_window)
    if lock_timeout is None:
        # a run of another fork or controller may hold this certificate while it polls
        lock_timeout = max(DEFAULT_LOCK_WAIT, float(wait_timeout or 0) + recover_window + 30)
    store = open_order_store(store_path)
    key = order_key(connector.name, request.name)
    content_fp, full_fp = _fingerprints(connector, request)
    token = derive_token(connector.name, request.name, content_fp, request.replaces)
    try:
        with store.lock(key, timeout=lock_timeout):
            return _issue_locked(connector, request, store, key, content_fp, full_fp, token,
                                 result, reasons, current_pem, policy, wait_timeout, schedule,
                                 emit, clock, sleep, recover_window, wallclock)
    except TransientError as exc:
        # CA or lock trouble that may pass once something is under way: the order (or the
        # intent of an interrupted submit) stays recorded and the next run resumes it; nothing
        # is lost and nothing is ordered twice.  Trouble before anything was sent (the CA
        # cannot be reached at all) is reported as the error it is.
        record = store.load(key)
        if exc.details.get('key') == key and 'lock_timeout' in exc.details:
            why = 'another run holds this certificate: %s' % exc.msg
        elif record is not None and record.is_open and record.content_fingerprint == content_fp:
            why = str(exc)
        else:
            raise
        order = record.get_order() if record is not None and record.is_open else None
        return _pending(result, connector, request, order, emit, why=why)
    finally:
        store.close()


def _issue_locked(connector, request, store, key, content_fp, full_fp, token, result, reasons,
                  current_pem, policy, wait_timeout, schedule, emit, clock, sleep,
                  recover_window, wallclock):
    record = store.load(key)
    # 1. decide again: a run before us (another fork, controller or a killed run's worker)
    #    may have issued for this very request
    answer = _recorded_answer(connector, request, record, content_fp, full_fp, current_pem, policy)
    if answer is not None:
        result.update(status=ORDER_ISSUED, reused=True, order_id=answer.id)
        result.update(_result_from_cert(answer.certificate_pem, _chain_list(answer.chain_pem)
                                        or _chain_list(_ca_chain(connector))))
        return result

    order = None
    same_content = record is not None and (
        record.content_fingerprint == content_fp
        or (record.content_fingerprint is None and record.request_fingerprint == content_fp))
    if record is not None and record.is_open and same_content:
        request.token = record.token or token
        if record.order_id:
            order = record.get_order()           # 2. an open order: resume it
            result['resumed'] = True
        else:                                    # 3. a submit without a recorded answer
            order = _recover(connector, request, record, policy, recover_window, wallclock, sleep)
            if order is not None:
                result['recovered'] = True
                store.record_submitted(key, order)
    elif record is None and getattr(connector, 'searchable', False):
        request.token = token                    # 4. no record (a fresh store): ask the CA
        order = _lookup(connector, request, policy)
        if order is not None:
            result['recovered'] = True
            store.record_intent(key, full_fp, token, connector.name,
                                {'name': request.name, 'reasons': reasons},
                                content_fingerprint=content_fp)
            store.record_submitted(key, order)

    if order is None:
        request.token = token
        previous = store.load(key)
        store.record_intent(key, full_fp, token, connector.name,
                            {'name': request.name, 'reasons': reasons},
                            content_fingerprint=content_fp)
        try:
            order = connector.submit(request)
        except (AuthError, ConfigError, PolicyError):
            # refused outright: nothing was ordered, so leave no intent behind.  Anything
            # else (a lost answer, a timeout) keeps the intent for the lookup next time.
            store.restore(key, previous)
            raise
        store.record_submitted(key, order)

    def check():
        current = order if order.issued else connector.poll(order)
        if current.status in (ORDER_FAILED, ORDER_REVOKED):
            raise PermanentError('the CA reports order %s as %s: %s'
                                 % (current.id, current.status, current.error or 'no reason given'),
                                 fix='change the request (for example a new CSR) to order again',
                                 details={'order_id': current.id, 'status': current.status})
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
    if done and not final.chain_pem:
        final.chain_pem = _chain_list(_ca_chain(connector))
    store.update(key, final)
    if done:
        store.complete(key)
    result['order_id'] = final.id
    warnings = getattr(connector, 'warnings', None)
    if warnings:
        result['warnings'] = list(warnings)
    if not done:
        return _pending(result, connector, request, final, emit)
    result['status'] = ORDER_ISSUED
    result.update(_result_from_cert(final.certificate_pem, final.chain_pem))
    emit(Event('renewed' if current_pem else 'issued', request.name, issuer=connector.name,
               details={'serial': result['serial'], 'reasons': reasons}))
    return result


def _ca_chain(connector):
    chain_of = getattr(connector, 'ca_chain', None)
    if chain_of is None:
        return None
    try:
        return chain_of()
    except CertforgeError:
        return None


def build_request(params, csr_pem):
    name = params.get('name')
    if not name or '/' in name or name in ('.', '..') or '..' in name:
        raise ConfigError('%r cannot name a certificate' % (name,), option='name',
                          fix='use letters, digits, dots, dashes and underscores, no "/" or ".."')
    return CertificateRequest(name=name, csr_pem=csr_pem, profile=params.get('profile'),
                              validity_days=params.get('validity_days'),
                              issuer_options=params.get('issuer_options') or {})
