"""Exactly once: decide under the lock, the issued certificate stays the answer until deployed,
derived tokens found with an empty store, late-committing CAs, failed polls, CSR facts."""

import multiprocessing
import os
import time

import pytest

from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import PermanentError
from ansible_collections.certforge.pki.plugins.module_utils.core.model import CertificateRequest, Order
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import OrderStore, order_key
from ansible_collections.certforge.pki.plugins.module_utils.core.polling import Schedule
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry

from .test_issue import Clock, Scripted, _csr, _sign


class CA(Scripted):
    """A CA that keeps its orders by token (it can be searched), issues at once unless told
    otherwise, and may commit a submit only after a number of lookups."""

    searchable = True

    def __init__(self, commit_after_lookups=0, fail_poll=False, chain=None):
        super().__init__([])
        self.by_token = {}
        self.submits = 0
        self.lookups = 0
        self.commit_after = commit_after_lookups
        self.fail_poll = fail_poll
        self.chain = chain
        self.requests = []

    def submit(self, request):
        self.calls.append('submit')
        self.submits += 1
        self.requests.append(request)
        order = Order(issuer=self.name, id='o-%d' % self.submits, details={'csr': request.csr_pem})
        if not self.fail_poll:
            order.status = 'issued'
            order.certificate_pem = _sign(request.csr_pem)
        self.by_token.setdefault(request.token, []).append(order)
        return order

    def poll(self, order):
        self.calls.append('poll')
        if self.fail_poll:
            return Order(issuer=self.name, id=order.id, status='failed', error='declined by the CA: DCV failed')
        return order

    def find_orders(self, request):
        self.calls.append('find')
        self.lookups += 1
        if self.lookups <= self.commit_after:
            return []
        return list(self.by_token.get(request.token, []))

    def ca_chain(self):
        return self.chain


def issue(conn, csr, store, current=None, force=False, **kwargs):
    clock = Clock()
    request = CertificateRequest(name='a', csr_pem=csr)
    kwargs.setdefault('wait_timeout', 10)
    return core_issue.issue(Registry(), conn, request, current_pem=current, store_path=store,
                            policy={'force': force}, schedule=Schedule.steps((1,), jitter=0),
                            clock=clock, sleep=clock.sleep, wallclock=kwargs.pop('wallclock', None) or time.time,
                            **kwargs)


def test_issued_certificate_is_the_answer_until_deployed(tmp_path):
    """20 failed deploys in a row (the certificate never reaches the host), then a good run:
    exactly one certificate at the CA."""
    csr = _csr()
    conn = CA()
    first = issue(conn, csr, str(tmp_path))
    assert first['status'] == 'issued' and first['changed']
    for dummy in range(20):
        again = issue(conn, csr, str(tmp_path))        # current still missing on the host
        assert again['status'] == 'issued' and again['reused'] and again['changed']
        assert again['certificate'] == first['certificate']
    deployed = issue(conn, csr, str(tmp_path), current=first['certificate'])
    assert deployed['status'] == 'valid' and not deployed['changed']
    assert conn.submits == 1


def test_forced_renewal_is_not_repeated_by_a_rerun(tmp_path):
    csr = _csr()
    conn = CA()
    old = _sign(csr)
    first = issue(conn, csr, str(tmp_path), current=old, force=True)
    assert first['status'] == 'issued' and first['renewal_reasons'] == ['forced']
    rerun = issue(conn, csr, str(tmp_path), current=old, force=True)     # deploy never happened
    assert rerun['reused'] and rerun['certificate'] == first['certificate']
    assert conn.submits == 1
    # once deployed, a new force is a new renewal
    issue(conn, csr, str(tmp_path), current=first['certificate'], force=True)
    assert conn.submits == 2


def test_empty_store_finds_the_order_by_its_derived_token(tmp_path):
    csr = _csr()
    conn = CA()
    first = issue(conn, csr, str(tmp_path / 'job1'))
    # the next job starts with a fresh store (an AWX job in a new container)
    second = issue(conn, csr, str(tmp_path / 'job2'))
    assert second['status'] == 'issued' and second['recovered']
    assert second['certificate'] == first['certificate'] and conn.submits == 1


def test_token_depends_on_request_and_replaced_certificate():
    csr = _csr()
    old = _sign(csr)
    token = core_issue.derive_token('x', 'a', 'f' * 64)
    assert token == core_issue.derive_token('x', 'a', 'f' * 64)
    assert len(token) == 32 and int(token, 16) >= 0
    assert token != core_issue.derive_token('x', 'a', 'f' * 64, old)
    assert token != core_issue.derive_token('x', 'b', 'f' * 64)
    assert token != core_issue.derive_token('x', 'a', 'e' * 64)


def test_interrupted_submit_looks_again_before_resubmitting(tmp_path):
    """The CA commits the lost submit late: the rerun asks again within the window."""
    csr = _csr()
    conn = CA()
    request = CertificateRequest(name='a', csr_pem=csr)
    core_issue.enrich_request(request)
    content, full = core_issue._fingerprints(conn, request)
    token = core_issue.derive_token('scripted', 'a', content)
    store = OrderStore(str(tmp_path))
    store.record_intent(order_key('scripted', 'a'), full, token, 'scripted', content_fingerprint=content)
    request.token = token
    conn.submit(request)                   # reached the CA; the answer was lost with the run
    conn.submits = 0
    conn.commit_after = conn.lookups + 3   # the CA shows it only from the 4th lookup on
    clock = Clock()
    result = issue(conn, csr, str(tmp_path), recover_window=30, wallclock=lambda: time.time() + clock.now)
    assert result['status'] == 'issued' and result['recovered']
    assert conn.submits == 0 and conn.calls.count('find') == 4


def test_interrupted_submit_that_never_reached_the_ca_is_submitted_after_the_window(tmp_path):
    csr = _csr()
    conn = CA()
    request = CertificateRequest(name='a', csr_pem=csr)
    core_issue.enrich_request(request)
    content, full = core_issue._fingerprints(conn, request)
    OrderStore(str(tmp_path)).record_intent(order_key('scripted', 'a'), full,
                                            core_issue.derive_token('scripted', 'a', content),
                                            'scripted', content_fingerprint=content)
    now = [time.time()]

    def wallclock():
        return now[0]

    def sleep(seconds):
        now[0] += seconds
    result = core_issue.issue(Registry(), conn, CertificateRequest(name='a', csr_pem=csr),
                              store_path=str(tmp_path), recover_window=5, wallclock=wallclock,
                              sleep=sleep, schedule=Schedule.steps((1,), jitter=0))
    assert result['status'] == 'issued' and conn.submits == 1
    assert conn.calls.count('find') >= 2


def test_failed_poll_ends_at_once_with_the_cas_reason(tmp_path):
    conn = CA(fail_poll=True)
    clock = Clock()
    with pytest.raises(PermanentError) as err:
        core_issue.issue(Registry(), conn, CertificateRequest(name='a', csr_pem=_csr()),
                         store_path=str(tmp_path), wait_timeout=600,
                         schedule=Schedule.steps((1,), jitter=0), clock=clock, sleep=clock.sleep)
    assert 'DCV failed' in str(err.value)
    assert conn.calls.count('poll') == 1 and clock.now == 0


def test_ca_chain_fills_an_order_without_chain(tmp_path):
    chain = _sign(_csr())
    result = issue(CA(chain=chain), _csr(), str(tmp_path))
    assert result['chain'] == chain and result['fullchain'].endswith(chain)


def test_submit_sees_csr_facts_and_the_certificate_it_replaces(tmp_path):
    csr = _csr()
    old = _sign(csr)
    conn = CA()
    issue(conn, csr, str(tmp_path), current=old, force=True)
    request = conn.requests[0]
    assert request.common_name == 'a.example' and request.subject_alt_names == ['DNS:a.example']
    assert request.key_type == 'EC-P256'
    assert request.replaces == old and request.replaces_serial
    assert len(request.token) == 32


class SlowCA(CA):
    """Issues after a delay, recording every submit in a file shared between processes."""

    def __init__(self, ledger, delay):
        super().__init__()
        self.ledger = ledger
        self.delay = delay

    def submit(self, request):
        with open(self.ledger, 'a') as handle:
            handle.write('%d\n' % os.getpid())
        time.sleep(self.delay)     # the CA is slow: the other process waits on the lock meanwhile
        return super().submit(request)


def _race(args):
    ledger, store, csr, start = args
    while time.time() < start:
        time.sleep(0.001)
    conn = SlowCA(ledger, 0.3)
    result = core_issue.issue(Registry(), conn, CertificateRequest(name='a', csr_pem=csr),
                              store_path=store, schedule=Schedule.steps((1,), jitter=0))
    return result['status'], bool(result.get('reused')), result['serial']


def test_parallel_processes_decide_again_under_the_lock(tmp_path):
    csr = _csr()
    ledger = str(tmp_path / 'submits')
    start = time.time() + 0.5
    ctx = multiprocessing.get_context('fork')
    with ctx.Pool(4) as pool:
        results = pool.map(_race, [(ledger, str(tmp_path / 'store'), csr, start)] * 4)
    with open(ledger) as handle:
        assert len(handle.read().split()) == 1
    assert len(set(serial for _s, _r, serial in results)) == 1
    assert sorted(reused for _s, reused, _x in results) == [False, True, True, True]
