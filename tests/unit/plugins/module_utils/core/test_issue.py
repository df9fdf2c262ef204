"""The issue sequence with a scripted issuer: decide, intent, submit, recover, resume, pending."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.certforge.pki.plugins.module_utils.core import issue as core_issue
from ansible_collections.certforge.pki.plugins.module_utils.core.errors import PolicyError, TransientError
from ansible_collections.certforge.pki.plugins.module_utils.core.hookspecs import IssuerConnector
from ansible_collections.certforge.pki.plugins.module_utils.core.model import CertificateRequest, Order
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import OrderStore, order_key
from ansible_collections.certforge.pki.plugins.module_utils.core.polling import Schedule
from ansible_collections.certforge.pki.plugins.module_utils.core.registry import Registry

CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'Scripted CA')])


def _csr():
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'a.example')]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName('a.example')]), critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _sign(csr_pem):
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(CA_NAME)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
            .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False)
            .sign(CA_KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class Scripted(IssuerConnector):
    """submit/poll answers come from a script; every call is counted."""
    name = 'scripted'

    def __init__(self, script):
        super().__init__({})
        self.script = script
        self.calls = []
        self.orders = {}

    def submit(self, request):
        self.calls.append('submit')
        action = self.script.pop(0)
        self.orders[request.token] = Order(issuer=self.name, id='o-%d' % len(self.orders),
                                           details={'csr': request.csr_pem})
        if isinstance(action, Exception):
            raise action
        return self.orders[request.token]

    def poll(self, order):
        self.calls.append('poll')
        action = self.script.pop(0)
        if action == 'issued':
            return Order(issuer=self.name, id=order.id, status='issued',
                         certificate_pem=_sign(order.details['csr']), details=order.details)
        return Order(issuer=self.name, id=order.id, details=order.details, retry_after=1)

    def revoke(self, revocation):
        self.calls.append('revoke')

    def find_orders(self, request):
        self.calls.append('find')
        found = self.orders.get(request.token)
        return [found] if found else []


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def run(connector, csr, store, wait=10, clock=None):
    clock = clock or Clock()
    request = CertificateRequest(name='a', csr_pem=csr)
    return core_issue.issue(Registry(), connector, request, store_path=store, wait_timeout=wait,
                            schedule=Schedule.steps((1,), jitter=0), clock=clock, sleep=clock.sleep)


def test_issued_after_polls(tmp_path):
    csr = _csr()
    conn = Scripted(['ok', 'pending', 'issued'])
    result = run(conn, csr, str(tmp_path))
    assert result['status'] == 'issued' and result['changed'] and result['renewal_reasons'] == ['missing']
    assert conn.calls == ['submit', 'poll', 'poll']


def test_pending_at_deadline_then_resumed_without_second_order(tmp_path):
    csr = _csr()
    conn = Scripted(['ok', 'pending', 'pending', 'pending'])
    first = run(conn, csr, str(tmp_path), wait=2)
    assert first['status'] == 'pending' and first['changed'] and first['order_id'] == 'o-0'
    conn.script = ['issued']
    second = run(conn, csr, str(tmp_path))
    assert second['status'] == 'issued' and second['resumed'] and second['order_id'] == 'o-0'
    assert conn.calls.count('submit') == 1


def test_lost_submit_answer_is_recovered_not_reordered(tmp_path):
    csr = _csr()
    conn = Scripted([TransientError('connection reset')])
    first = run(conn, csr, str(tmp_path))
    # transient trouble is waited out, not failed: pending, and the intent stays recorded
    assert first['status'] == 'pending' and first['order_id'] is None and first['changed']
    record = OrderStore(str(tmp_path)).load(order_key('scripted', 'a'))
    assert record.status == 'intent' and record.order_id is None
    conn.script = ['issued']
    result = run(conn, csr, str(tmp_path))
    assert result['status'] == 'issued' and result['recovered']
    assert conn.calls == ['submit', 'find', 'poll']


def test_refused_submit_leaves_no_record(tmp_path):
    conn = Scripted([PolicyError('no', option='subject_alt_names')])
    with pytest.raises(PolicyError):
        run(conn, _csr(), str(tmp_path))
    assert OrderStore(str(tmp_path)).load(order_key('scripted', 'a')) is None


def test_nothing_due_calls_no_ca(tmp_path):
    csr = _csr()
    conn = Scripted([])
    request = CertificateRequest(name='a', csr_pem=csr)
    # a valid certificate for the same key and names: no call at all
    current = _sign(csr)
    result = core_issue.issue(Registry(), conn, request, current_pem=current, store_path=str(tmp_path))
    assert result['status'] == 'valid' and not result['changed'] and conn.calls == []


def test_check_mode_orders_nothing(tmp_path):
    conn = Scripted([])
    request = CertificateRequest(name='a', csr_pem=_csr())
    result = core_issue.issue(Registry(), conn, request, store_path=str(tmp_path), check_mode=True)
    assert result['status'] == 'would_issue' and result['changed'] and conn.calls == []


class Declining(Scripted):
    def poll(self, order):
        self.calls.append('poll')
        from ansible_collections.certforge.pki.plugins.module_utils.core.errors import PermanentError
        raise PermanentError('declined by the CA')


def test_declined_order_is_closed_and_the_next_run_orders_afresh(tmp_path):
    from ansible_collections.certforge.pki.plugins.module_utils.core.errors import PermanentError
    csr = _csr()
    conn = Declining(['ok', 'ok'])
    with pytest.raises(PermanentError):
        run(conn, csr, str(tmp_path))
    assert OrderStore(str(tmp_path)).load(order_key('scripted', 'a')).status == 'failed'
    with pytest.raises(PermanentError):
        run(conn, csr, str(tmp_path))
    assert conn.calls.count('submit') == 2      # not resumed: a new order


def test_ignored_options_do_not_change_the_fingerprint(tmp_path):
    csr = _csr()
    conn = Scripted(['ok', 'pending', 'pending'])
    conn.fingerprint_ignore = ('password',)
    clock = Clock()
    request = CertificateRequest(name='a', csr_pem=csr, issuer_options={'password': 'one'})
    first = core_issue.issue(Registry(), conn, request, store_path=str(tmp_path), wait_timeout=1,
                             schedule=Schedule.steps((1,), jitter=0), clock=clock, sleep=clock.sleep)
    assert first['status'] == 'pending'
    conn.script = ['issued']
    request = CertificateRequest(name='a', csr_pem=csr, issuer_options={'password': 'two'})
    second = core_issue.issue(Registry(), conn, request, store_path=str(tmp_path), wait_timeout=1,
                              schedule=Schedule.steps((1,), jitter=0), clock=clock, sleep=clock.sleep)
    assert second['status'] == 'issued' and second.get('resumed')
    assert conn.calls.count('submit') == 1
