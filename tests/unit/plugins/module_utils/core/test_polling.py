from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random

import pytest

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    AuthError, ConfigError, NotReadyError, PermanentError, TransientError,
)
from ansible_collections.certforge.pki.plugins.module_utils.core.polling import (
    DEFAULT_STEPS, Deadline, PollResult, Schedule, poll_until,
)


class FakeTime:
    """A clock that only moves when sleep() is called (or advance() by the test)."""

    def __init__(self, start=1000.0):
        self.now = start
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds):
        self.now += seconds


def script(*answers):
    """A poll function returning/raising the given answers in order; counts calls."""
    answers = list(answers)
    calls = []

    def fn():
        calls.append(1)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    fn.calls = calls
    return fn


# -- Schedule ------------------------------------------------------------------------------

def test_step_schedule_repeats_last_value_without_jitter():
    sched = Schedule.steps([5, 15, 45, 120, 300], jitter=0)
    assert [sched.delay(i) for i in range(8)] == [5, 15, 45, 120, 300, 300, 300, 300]


def test_default_steps_are_the_documented_ones():
    sched = Schedule.steps(jitter=0)
    assert tuple(sched.nominal(i) for i in range(5)) == tuple(float(s) for s in DEFAULT_STEPS)


def test_step_schedule_jitter_stays_within_bounds_and_varies():
    sched = Schedule.steps([100], jitter=0.2, rng=random.Random(7))
    delays = [sched.delay(i) for i in range(500)]
    assert all(80.0 <= d <= 120.0 for d in delays)
    assert max(delays) - min(delays) > 20          # really jittered, not constant
    assert min(delays) < 90 and max(delays) > 110  # uses both sides


def test_jitter_is_reproducible_with_a_seeded_rng():
    a = Schedule.steps(rng=random.Random(42))
    b = Schedule.steps(rng=random.Random(42))
    c = Schedule.steps(rng=random.Random(43))
    seq_a = [a.delay(i) for i in range(10)]
    assert seq_a == [b.delay(i) for i in range(10)]
    assert seq_a != [c.delay(i) for i in range(10)]


def test_exponential_schedule_grows_and_caps():
    sched = Schedule.exponential(base=2, max_delay=300, jitter=0)
    assert [sched.delay(i) for i in range(11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert sched.delay(5000) == 300  # no overflow for huge attempt numbers


def test_exponential_jitter_bounds():
    sched = Schedule.exponential(base=3, max_delay=50, jitter=0.1, rng=random.Random(1))
    for i in range(20):
        nominal = min(3 ** i, 50)
        assert nominal * 0.9 <= sched.delay(i) <= nominal * 1.1


def test_step_schedule_max_delay_caps_steps():
    sched = Schedule.steps([5, 500], max_delay=60, jitter=0)
    assert [sched.delay(i) for i in range(3)] == [5, 60, 60]


@pytest.mark.parametrize('kwargs, option', [
    (dict(delays=[]), 'poll_schedule'),
    (dict(delays=[5, -1]), 'poll_schedule'),
    (dict(delays=[5, 'soon']), 'poll_schedule'),
    (dict(delays=[float('nan')]), 'poll_schedule'),
    (dict(delays=[True]), 'poll_schedule'),
    (dict(jitter=1.0), 'poll_jitter'),
    (dict(jitter=-0.1), 'poll_jitter'),
    (dict(max_attempts=0), 'poll_max_attempts'),
    (dict(max_attempts=2.5), 'poll_max_attempts'),
    (dict(max_delay=0), 'poll_max_delay'),
])
def test_step_schedule_rejects_bad_values_naming_the_option(kwargs, option):
    with pytest.raises(ConfigError) as info:
        Schedule.steps(**kwargs)
    assert info.value.option == option
    assert option in str(info.value)
    assert info.value.fix


def test_exponential_rejects_base_below_one():
    with pytest.raises(ConfigError) as info:
        Schedule.exponential(base=0.5)
    assert info.value.option == 'poll_base'


# -- from_options --------------------------------------------------------------------------

def test_from_options_empty_gives_default_steps():
    sched = Schedule.from_options({}, rng=random.Random(0))
    assert sched.kind == 'steps'
    assert [sched.nominal(i) for i in range(6)] == [5, 15, 45, 120, 300, 300]
    assert sched.jitter == 0.2
    assert sched.max_attempts is None


def test_from_options_step_list_with_strings_and_jitter():
    sched = Schedule.from_options({'poll_schedule': ['1', 2.5, 10], 'poll_jitter': 0,
                                   'poll_max_attempts': 4, 'poll_base': None})
    assert [sched.delay(i) for i in range(4)] == [1, 2.5, 10, 10]
    assert sched.max_attempts == 4


def test_from_options_comma_string():
    sched = Schedule.from_options({'poll_schedule': '3, 9,27', 'poll_jitter': 0})
    assert [sched.delay(i) for i in range(4)] == [3, 9, 27, 27]


def test_from_options_exponential():
    sched = Schedule.from_options({'poll_base': 3, 'poll_max_delay': 20, 'poll_jitter': 0})
    assert sched.kind == 'exponential'
    assert [sched.delay(i) for i in range(5)] == [1, 3, 9, 20, 20]


def test_from_options_uses_caller_default():
    default = Schedule.exponential(base=2, max_delay=8, jitter=0)
    sched = Schedule.from_options({'poll_max_attempts': 3}, default=default)
    assert sched.kind == 'exponential'
    assert [sched.delay(i) for i in range(5)] == [1, 2, 4, 8, 8]
    assert sched.max_attempts == 3


@pytest.mark.parametrize('options, option', [
    ({'poll_schedule': [5], 'poll_base': 2}, 'poll_base'),
    ({'poll_schedule': []}, 'poll_schedule'),
    ({'poll_schedule': ['x']}, 'poll_schedule'),
    ({'poll_base': 'fast'}, 'poll_base'),
    ({'poll_base': 0.9}, 'poll_base'),
    ({'poll_max_delay': -5}, 'poll_max_delay'),
    ({'poll_max_attempts': 0}, 'poll_max_attempts'),
    ({'poll_max_attempts': 'many'}, 'poll_max_attempts'),
    ({'poll_jitter': 2}, 'poll_jitter'),
])
def test_from_options_errors_name_the_option(options, option):
    with pytest.raises(ConfigError) as info:
        Schedule.from_options(options)
    assert info.value.option == option
    assert info.value.to_result()['error_option'] == option


# -- poll_until ----------------------------------------------------------------------------

def test_done_on_first_call_does_not_sleep():
    t = FakeTime()
    fn = script((True, 'cert'))
    result = poll_until(fn, 600, Schedule.steps(jitter=0), clock=t.clock, sleep=t.sleep)
    assert result == PollResult(done=True, value='cert', attempts=1, waited=0.0, elapsed=0.0,
                                reason='done', retry_after=None, last_error=None)
    assert t.sleeps == []


def test_waits_follow_the_schedule_until_done():
    t = FakeTime()
    fn = script((False, 'p1'), (False, 'p2'), (False, 'p3'), (True, 'cert'))
    result = poll_until(fn, 600, Schedule.steps(jitter=0), clock=t.clock, sleep=t.sleep)
    assert result.done and result.value == 'cert'
    assert result.attempts == 4
    assert t.sleeps == [5, 15, 45]
    assert result.waited == 65
    assert result.elapsed == 65


def test_never_sleeps_past_the_deadline():
    t = FakeTime()
    fn = script((False, 'pending'))
    result = poll_until(fn, 100, Schedule.steps(jitter=0), clock=t.clock, sleep=t.sleep)
    # 5 + 15 + 45 = 65 fits; the next wait (120) would end at 185 > 100: stop without sleeping.
    assert t.sleeps == [5, 15, 45]
    assert result.done is False
    assert result.reason == 'deadline'
    assert result.value == 'pending'
    assert result.attempts == 4
    assert result.waited == 65
    assert sum(t.sleeps) <= 100


def test_time_spent_in_fn_counts_against_the_deadline():
    t = FakeTime()

    def slow():
        t.advance(40)  # each call takes 40 s
        return False, None

    result = poll_until(slow, 100, Schedule.steps([10], jitter=0), clock=t.clock, sleep=t.sleep)
    # call ends at 40, wait to 50, call ends at 90, wait 10 ends exactly at the deadline (100),
    # call ends at 140: no time left, so no further wait.
    assert t.sleeps == [10, 10]
    assert result.attempts == 3
    assert result.reason == 'deadline'
    assert result.elapsed == 140


def test_deadline_zero_means_one_call_no_wait():
    t = FakeTime()
    fn = script((False, 'pending'))
    result = poll_until(fn, 0, Schedule.steps([0], jitter=0), clock=t.clock, sleep=t.sleep)
    assert len(fn.calls) == 1
    assert t.sleeps == []
    assert result.reason == 'deadline' and result.attempts == 1 and not result.done


def test_jittered_waits_are_what_was_slept():
    t = FakeTime()
    fn = script((False, None), (False, None), (True, 1))
    result = poll_until(fn, 1000, Schedule.steps(rng=random.Random(3)), clock=t.clock,
                        sleep=t.sleep)
    assert result.done
    assert len(t.sleeps) == 2
    assert 4 <= t.sleeps[0] <= 6 and 12 <= t.sleeps[1] <= 18
    assert result.waited == pytest.approx(sum(t.sleeps))


def test_not_ready_retry_after_replaces_the_scheduled_delay():
    t = FakeTime()
    fn = script(NotReadyError('validating', retry_after=7), (True, 'cert'))
    result = poll_until(fn, 600, Schedule.steps(jitter=0), clock=t.clock, sleep=t.sleep)
    assert t.sleeps == [7]
    assert result.done and result.value == 'cert' and result.attempts == 2


def test_transient_error_without_hint_uses_schedule_and_keeps_last_value():
    t = FakeTime()
    fn = script((False, 'v1'), TransientError('503'), (True, 'cert'))
    result = poll_until(fn, 600, Schedule.steps([2, 3], jitter=0), clock=t.clock, sleep=t.sleep)
    assert t.sleeps == [2, 3]
    assert result.done


def test_retry_after_past_deadline_stops_and_reports_hint():
    t = FakeTime()
    error = NotReadyError('queued', retry_after=3600)
    fn = script((False, 'order-1'), error)
    result = poll_until(fn, 600, Schedule.steps(jitter=0), clock=t.clock, sleep=t.sleep)
    assert t.sleeps == [5]
    assert result.done is False and result.reason == 'deadline'
    assert result.retry_after == 3600
    assert result.last_error is error
    assert result.value == 'order-1'  # value of the last successful call
    assert result.to_dict()['last_error'] == 'queued'


def test_three_tuple_hint_is_honoured():
    t = FakeTime()
    fn = script((False, 'o', 12), (True, 'cert'))
    result = poll_until(fn, 600, Schedule.steps(jitter=0), clock=t.clock, sleep=t.sleep)
    assert t.sleeps == [12]
    assert result.done


def test_zero_or_bad_hint_falls_back_to_schedule():
    t = FakeTime()
    fn = script(NotReadyError('x', retry_after=0), (False, 'o', 'soon'), (True, 'cert'))
    poll_until(fn, 600, Schedule.steps([4], jitter=0), clock=t.clock, sleep=t.sleep)
    assert t.sleeps == [4, 4]


@pytest.mark.parametrize('error', [PermanentError('rejected'), AuthError('bad key'),
                                   ValueError('bug'), KeyError('id')])
def test_permanent_and_other_errors_propagate_immediately(error):
    t = FakeTime()
    fn = script((False, None), error, (True, 'never'))
    with pytest.raises(type(error)):
        poll_until(fn, 600, Schedule.steps(jitter=0), clock=t.clock, sleep=t.sleep)
    assert len(fn.calls) == 2
    assert t.sleeps == [5]


def test_max_attempts_bounds_calls():
    t = FakeTime()
    fn = script((False, 'p'))
    result = poll_until(fn, 10 ** 6, Schedule.exponential(max_attempts=3, jitter=0),
                        clock=t.clock, sleep=t.sleep)
    assert len(fn.calls) == 3
    assert t.sleeps == [1, 2]  # no useless sleep after the last allowed call
    assert result.reason == 'max_attempts' and not result.done


def test_bad_return_value_is_a_type_error():
    t = FakeTime()
    with pytest.raises(TypeError):
        poll_until(lambda: True, 10, clock=t.clock, sleep=t.sleep)


def test_negative_deadline_is_a_config_error_naming_wait_timeout():
    with pytest.raises(ConfigError) as info:
        poll_until(lambda: (True, 1), -1)
    assert info.value.option == 'wait_timeout'


def test_deadline_helper():
    t = FakeTime()
    d = Deadline(10, clock=t.clock)
    assert d.allows(10) and not d.allows(10.5)
    t.advance(4)
    assert d.remaining() == 6 and d.elapsed() == 4
    t.advance(6)
    assert not d.allows(0)
