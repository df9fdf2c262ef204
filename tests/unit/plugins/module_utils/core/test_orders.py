from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import multiprocessing
import os
import stat
import threading

import pytest

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    ConfigError, PermanentError, TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.model import (
    CertificateRequest, Order,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.orders import (
    OrderRecord, OrderStore, is_postgres_url, open_store, order_key, request_fingerprint,
)

CTX = multiprocessing.get_context('fork')
JOIN_TIMEOUT = 120


def pem(payload, label='CERTIFICATE REQUEST', width=64, newline='\n'):
    body = base64.b64encode(payload).decode('ascii')
    lines = [body[i:i + width] for i in range(0, len(body), width)]
    return newline.join(['-----BEGIN %s-----' % label] + lines + ['-----END %s-----' % label]) + newline


CSR = pem(b'\x30\x82' + bytes(range(200)))


def make_request(**kwargs):
    values = dict(name='www', csr_pem=CSR, common_name='www.example.com',
                  subject_alt_names=['DNS:www.example.com', 'DNS:example.com'], profile='tls',
                  validity_days=90, issuer_options={'org_id': 7}, token='t1')
    values.update(kwargs)
    return CertificateRequest(**values)


class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(params=['file', 'pg'])
def location(request, tmp_path):
    """Where a store lives: a directory (file store) or a PostgreSQL URL (a fresh schema in the
    session's throw-away cluster, see conftest.py).  Protocol tests run against both."""
    if request.param == 'pg':
        return request.getfixturevalue('pg_url')
    return str(tmp_path / 'orders')


@pytest.fixture
def store(location):
    return open_store(location)


#: for tests of what only the file store has (files, modes, temp files)
file_only = pytest.mark.parametrize('location', ['file'], indirect=True)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# -- keys ----------------------------------------------------------------------------------

def test_order_key_is_readable_for_plain_names():
    assert order_key('sectigo', 'www.example.com') == 'sectigo+www.example.com'


def test_order_key_keeps_sanitized_names_distinct():
    a = order_key('ca', 'my cert')
    b = order_key('ca', 'my_cert')
    c = order_key('ca', 'my*cert')
    assert len({a, b, c}) == 3
    assert a.startswith('ca+my_cert-') and b == 'ca+my_cert'
    assert order_key('ca', 'my cert') == a  # stable


def test_order_key_issuer_and_name_cannot_be_confused():
    assert order_key('a+b', 'c') != order_key('a', 'b+c')


def test_order_key_long_names_stay_short_and_distinct():
    a = order_key('ca', 'x' * 300 + 'a')
    b = order_key('ca', 'x' * 300 + 'b')
    assert a != b and len(a) < 200


@pytest.mark.parametrize('name', ['..', '../etc/passwd', 'a/b', 'a\\b', 'x..y', '', '   ',
                                  'nul\x00byte', None])
def test_order_key_refuses_path_tricks_naming_option_name(name):
    with pytest.raises(ConfigError) as info:
        order_key('ca', name)
    assert info.value.option == 'name'
    assert info.value.fix


def test_order_key_refuses_bad_issuer():
    with pytest.raises(ConfigError) as info:
        order_key('../ca', 'www')
    assert info.value.option == 'issuer'


@pytest.mark.parametrize('key', ['../x', 'a/b', '..', '', 'a b'])
def test_store_refuses_raw_bad_keys(store, key):
    with pytest.raises(ConfigError) as info:
        store.load(key)
    assert info.value.option == 'name'


# -- fingerprint ---------------------------------------------------------------------------

def test_fingerprint_ignores_pem_wrapping_san_order_name_and_token():
    base = request_fingerprint(make_request())
    rewrapped = pem(b'\x30\x82' + bytes(range(200)), width=76, newline='\r\n')
    assert request_fingerprint(make_request(csr_pem='\n  ' + rewrapped)) == base
    assert request_fingerprint(make_request(
        subject_alt_names=['DNS:example.com', 'DNS:www.example.com'])) == base
    assert request_fingerprint(make_request(name='other', token='t2')) == base
    assert len(base) == 64 and int(base, 16) >= 0


@pytest.mark.parametrize('change', [
    dict(csr_pem=pem(b'\x30\x82' + bytes(range(1, 201)))),
    dict(common_name='api.example.com'),
    dict(subject_alt_names=['DNS:www.example.com']),
    dict(profile='tls-ev'),
    dict(validity_days=30),
    dict(issuer_options={'org_id': 8}),
    dict(replaces=pem(b'old-cert', label='CERTIFICATE')),
])
def test_fingerprint_changes_with_inputs(change):
    assert request_fingerprint(make_request(**change)) != request_fingerprint(make_request())


def test_fingerprint_can_ignore_options():
    a = make_request(issuer_options={'org_id': 7, 'comment': 'a'})
    b = make_request(issuer_options={'org_id': 7, 'comment': 'b'})
    assert request_fingerprint(a) != request_fingerprint(b)
    assert request_fingerprint(a, ignore_options=['comment']) == \
        request_fingerprint(b, ignore_options=['comment'])


# -- files and modes -----------------------------------------------------------------------

def test_directory_is_0700_and_records_0600_even_with_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        s = OrderStore(str(tmp_path / 'deep' / 'orders'))
        s.record_intent('ca+www', 'fp', token='tok', issuer='ca')
    finally:
        os.umask(old)
    assert mode(s.path) == 0o700
    assert mode(s.record_path('ca+www')) == 0o600
    assert mode(s.lock_path('ca+www')) == 0o600
    assert sorted(os.listdir(s.path)) == ['ca+www.json', 'ca+www.lock']  # no temp files


def test_unusable_directory_is_a_config_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(ConfigError) as info:
        OrderStore(str(blocker / 'orders'), path_option='order_dir')
    assert info.value.option == 'order_dir'


@file_only
def test_failed_write_keeps_old_record_and_leaves_no_temp_file(store, monkeypatch):
    store.record_intent('ca+www', 'fp-1', token='tok-1', issuer='ca')
    before = open(store.record_path('ca+www'), 'rb').read()

    def broken_replace(src, dst):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'replace', broken_replace)
    with pytest.raises(OSError):
        store.record_submitted('ca+www', Order(issuer='ca', id='42'))
    monkeypatch.undo()
    assert open(store.record_path('ca+www'), 'rb').read() == before
    assert not [n for n in os.listdir(store.path) if n.endswith('.tmp')]


def test_unserialisable_extra_leaves_no_temp_file(store):
    with pytest.raises(TypeError):
        store.record_intent('ca+www', 'fp', issuer='ca', extra={'bad': object()})
    assert store.load('ca+www') is None
    if not is_postgres_url(store.location):
        assert not [n for n in os.listdir(store.path) if n.endswith('.tmp')]


@file_only
def test_corrupt_record_is_a_config_error_naming_the_store_option(store):
    with open(store.record_path('ca+www'), 'w') as handle:
        handle.write('{"key": "ca+ww')
    with pytest.raises(ConfigError) as info:
        store.load('ca+www')
    assert info.value.option == 'order_store'
    assert 'corrupt' in str(info.value)


# -- record life cycle ---------------------------------------------------------------------

def test_full_life_cycle(store):
    key = order_key('ca', 'www')
    assert store.load(key) is None
    rec = store.record_intent(key, 'fp', token='tok', issuer='ca', extra={'hosts': ['web1']})
    assert rec.status == 'intent' and rec.order is None and rec.previous is None

    loaded = store.load(key)
    assert isinstance(loaded, OrderRecord)
    assert loaded.to_dict() == rec.to_dict()
    assert loaded.created and loaded.created.endswith('Z')

    store.record_submitted(key, Order(issuer='ca', id='1001', retry_after=30))
    loaded = store.load(key)
    assert loaded.status == 'pending' and loaded.order_id == '1001'
    assert loaded.get_order() == Order(issuer='ca', id='1001', retry_after=30)
    assert loaded.token == 'tok' and loaded.extra == {'hosts': ['web1']}

    store.update(key, Order(issuer='ca', id=None, details={'state': 'Applied'}), extra={'polls': 1})
    loaded = store.load(key)
    assert loaded.order_id == '1001'  # an update without id never loses the known id
    assert loaded.order['details'] == {'state': 'Applied'}
    assert loaded.extra == {'hosts': ['web1'], 'polls': 1}

    store.complete(key, Order(issuer='ca', id='1001', status='issued', certificate_pem='PEM'))
    loaded = store.load(key)
    assert loaded.status == 'issued' and loaded.get_order().issued
    assert loaded.updated >= loaded.created

    raw = json.load(open(store.record_path(key))) if hasattr(store, 'record_path') else loaded.to_dict()
    assert set(raw) >= {'key', 'issuer', 'request_fingerprint', 'token', 'status', 'order',
                        'created', 'updated'}
    assert store.keys() == [key]
    assert store.forget(key) is True
    assert store.forget(key) is False
    assert store.load(key) is None and store.keys() == []


def test_record_intent_generates_unique_tokens(store):
    a = store.record_intent('ca+a', 'fp', issuer='ca').token
    b = store.record_intent('ca+b', 'fp', issuer='ca').token
    assert a and b and a != b


def test_new_intent_keeps_a_summary_of_the_replaced_record(store):
    store.record_intent('ca+www', 'fp-old', token='old', issuer='ca')
    store.record_submitted('ca+www', Order(issuer='ca', id='77'))
    rec = store.record_intent('ca+www', 'fp-new', token='new', issuer='ca')
    assert rec.previous['order_id'] == '77'
    assert rec.previous['request_fingerprint'] == 'fp-old'
    assert rec.previous['token'] == 'old'
    assert 'previous' not in rec.previous  # no unbounded nesting


def test_submitted_status_follows_order(store):
    store.record_intent('ca+www', 'fp', issuer='ca')
    rec = store.record_submitted('ca+www', Order(issuer='ca', id='9', status='issued',
                                                 certificate_pem='PEM'))
    assert rec.status == 'issued'


def test_record_submitted_without_intent_is_refused(store):
    with pytest.raises(PermanentError) as info:
        store.record_submitted('ca+www', Order(issuer='ca', id='1'))
    assert 'record_intent' in info.value.fix


# -- resume_or_new -------------------------------------------------------------------------

def test_resume_or_new_actions(store):
    key = 'ca+www'
    assert store.resume_or_new(key, 'fp').action == 'new'

    store.record_intent(key, 'fp', token='tok', issuer='ca')
    found = store.resume_or_new(key, 'fp')
    assert found.action == 'recover' and found.record.token == 'tok'
    assert store.resume_or_new(key, 'other').action == 'changed'

    store.record_submitted(key, Order(issuer='ca', id='55'))
    found = store.resume_or_new(key, 'fp')
    assert found.action == 'resume' and found.record.get_order().id == '55'
    changed = store.resume_or_new(key, 'other')
    assert changed.action == 'changed' and changed.record.order_id == '55'

    store.complete(key)
    done = store.resume_or_new(key, 'fp')
    assert done.action == 'new' and done.record.status == 'issued'


def test_pending_without_id_is_recover(store):
    store.record_intent('ca+www', 'fp', issuer='ca')
    store.record_submitted('ca+www', Order(issuer='ca', id=None))
    assert store.resume_or_new('ca+www', 'fp').action == 'recover'


@pytest.mark.parametrize('status', ['failed', 'revoked'])
def test_terminal_orders_allow_new(store, status):
    store.record_intent('ca+www', 'fp', issuer='ca')
    store.record_submitted('ca+www', Order(issuer='ca', id='1', status=status))
    assert store.resume_or_new('ca+www', 'fp').action == 'new'


# -- locking -------------------------------------------------------------------------------

def test_lock_times_out_with_bounded_wait_and_no_real_sleep(location):
    holder = open_store(location)
    t = FakeTime()
    waiter = open_store(location, clock=t.clock, sleep=t.sleep)
    with holder.lock('ca+www'):
        with pytest.raises(TransientError) as info:
            with waiter.lock('ca+www', timeout=2):
                pass  # pragma: no cover
    assert sum(t.sleeps) == pytest.approx(2.0)
    assert max(t.sleeps) <= 0.1
    assert info.value.details['key'] == 'ca+www'
    # released: the waiter gets it now without waiting
    t.sleeps[:] = []
    with waiter.lock('ca+www', timeout=0):
        pass
    assert t.sleeps == []


def test_lock_is_reentrant_in_one_thread(store):
    with store.lock('ca+www', timeout=0):
        with store.lock('ca+www', timeout=0):
            store.record_intent('ca+www', 'fp', issuer='ca')  # takes the lock a third time
        store.record_submitted('ca+www', Order(issuer='ca', id='1'))
    assert store.load('ca+www').order_id == '1'


def test_lock_excludes_other_threads_using_the_same_store(store):
    outcome = {}
    with store.lock('ca+www'):
        def other():
            try:
                with store.lock('ca+www', timeout=0):
                    outcome['got'] = True
            except TransientError:
                outcome['got'] = False

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(JOIN_TIMEOUT)
    assert outcome == {'got': False}


def _try_lock_in_child(store, key, queue):
    store = open_store(store) if isinstance(store, str) else store
    try:
        with store.lock(key, timeout=0):
            queue.put('locked')
    except TransientError:
        queue.put('busy')


def test_forked_child_does_not_inherit_the_parents_lock(store, location):
    queue = CTX.Queue()
    with store.lock('ca+www'):
        # the child gets the very same object, with the parent's lock bookkeeping
        child = CTX.Process(target=_try_lock_in_child, args=(store, 'ca+www', queue))
        child.start()
        child.join(JOIN_TIMEOUT)
        assert queue.get(timeout=JOIN_TIMEOUT) == 'busy'
    child = CTX.Process(target=_try_lock_in_child, args=(location, 'ca+www', queue))
    child.start()
    child.join(JOIN_TIMEOUT)
    assert queue.get(timeout=JOIN_TIMEOUT) == 'locked'


# -- parallel processes --------------------------------------------------------------------

WORKERS = 6
ROUNDS = 15


def _writer(path, key, worker, barrier):
    store = open_store(path, lock_timeout=JOIN_TIMEOUT)
    barrier.wait(JOIN_TIMEOUT)
    for i in range(ROUNDS):
        with store.lock(key):
            record = store.load(key)
            count = record.extra.get('count', 0) if record else 0
            seen = list(record.extra.get('seen', [])) if record else []
            seen.append('%d-%d' % (worker, i))
            store.record_intent(key, 'fp', token='t-%d-%d' % (worker, i), issuer='ca',
                                extra={'count': count + 1, 'seen': seen})
            store.record_submitted(key, Order(issuer='ca', id='o-%d-%d' % (worker, i)))


def _reader(path, key, stop, queue):
    reads = invalid = inconsistent = 0
    target = os.path.join(path, key + '.json')
    shared = open_store(path) if is_postgres_url(path) else None
    while not stop.is_set() or reads == 0:
        if shared is not None:     # the database returns whole records or none
            try:
                record = shared.load(key)
            except ConfigError:
                invalid += 1
                continue
            if record is None:
                continue
            data = record.to_dict()
        else:
            try:
                with open(target, 'rb') as handle:
                    raw = handle.read()
            except FileNotFoundError:
                continue
            try:
                data = json.loads(raw.decode('utf-8'))
            except ValueError:
                invalid += 1
                continue
        reads += 1
        # a record is either a fresh intent or the submit of that same intent
        if data['order'] is not None and data['order']['id'] != 'o' + data['token'][1:]:
            inconsistent += 1
        if data['extra']['count'] != len(data['extra']['seen']):
            inconsistent += 1
    queue.put((reads, invalid, inconsistent))


def test_parallel_processes_lose_no_update_and_never_see_half_written_files(location):
    path = location
    open_store(path)
    key = order_key('ca', 'shared.example.com')
    barrier = CTX.Barrier(WORKERS + 1)
    stop = CTX.Event()
    queue = CTX.Queue()
    reader = CTX.Process(target=_reader, args=(path, key, stop, queue))
    writers = [CTX.Process(target=_writer, args=(path, key, w, barrier)) for w in range(WORKERS)]
    reader.start()
    for proc in writers:
        proc.start()
    barrier.wait(JOIN_TIMEOUT)
    for proc in writers:
        proc.join(JOIN_TIMEOUT)
    stop.set()
    reads, invalid, inconsistent = queue.get(timeout=JOIN_TIMEOUT)
    reader.join(JOIN_TIMEOUT)

    assert [p.exitcode for p in writers] == [0] * WORKERS
    assert reader.exitcode == 0
    record = open_store(path).load(key)
    assert record.extra['count'] == WORKERS * ROUNDS
    expected = sorted('%d-%d' % (w, i) for w in range(WORKERS) for i in range(ROUNDS))
    assert sorted(record.extra['seen']) == expected
    assert record.status == 'pending' and record.order_id == 'o' + record.token[1:]
    assert reads > 0 and invalid == 0 and inconsistent == 0
    if not is_postgres_url(path):
        assert sorted(os.listdir(path)) == [key + '.json', key + '.lock']


def _racer(path, key, queue, barrier):
    """What an issuer module does: decide under the lock, submit only when new."""
    store = open_store(path, lock_timeout=JOIN_TIMEOUT)
    barrier.wait(JOIN_TIMEOUT)
    with store.lock(key):
        found = store.resume_or_new(key, 'fp')
        if found.action == 'new':
            store.record_intent(key, 'fp', issuer='ca')
            store.record_submitted(key, Order(issuer='ca', id='order-%d' % os.getpid()))
            queue.put('submitted')
        else:
            queue.put(found.action)


def test_parallel_forks_for_one_certificate_submit_once(location):
    path = location
    open_store(path)
    key = order_key('ca', 'cluster.example.com')
    barrier = CTX.Barrier(WORKERS)
    queue = CTX.Queue()
    procs = [CTX.Process(target=_racer, args=(path, key, queue, barrier)) for dummy in range(WORKERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(JOIN_TIMEOUT)
    actions = sorted(queue.get(timeout=JOIN_TIMEOUT) for dummy in procs)
    assert actions == ['resume'] * (WORKERS - 1) + ['submitted']


def test_restore_puts_back_or_forgets(store):
    store.record_intent('k', 'f1', token='t1')
    before = store.load('k')
    store.record_intent('k', 'f2', token='t2')
    store.restore('k', before)
    assert store.load('k').token == 't1'
    store.restore('k', None)
    assert store.load('k') is None
