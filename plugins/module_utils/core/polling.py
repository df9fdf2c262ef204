# -*- coding: utf-8 -*-
# Copyright (c) certforge.pki contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded backoff with jitter and a deadline: the one way the collection waits.

Connectors never sleep; callers wrap one round of work (``connector.poll(order)``) in a
function and hand it to :func:`poll_until`.  Clock, sleep and the random source are
injectable, so tests run without real waiting.

    schedule = Schedule.from_options(module.params)
    result = poll_until(lambda: check(order), deadline_seconds=600, schedule=schedule)
    if not result.done:
        ...  # return status=pending with the order id; the next run resumes
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Optional

from ansible_collections.certforge.pki.plugins.module_utils.core.errors import (
    ConfigError, NotReadyError, TransientError,
)

#: Default step schedule (seconds); the last value repeats.
DEFAULT_STEPS = (5, 15, 45, 120, 300)
DEFAULT_JITTER = 0.2

REASON_DONE = 'done'
REASON_DEADLINE = 'deadline'
REASON_MAX_ATTEMPTS = 'max_attempts'

#: Module options understood by :meth:`Schedule.from_options` (kept in step with doc fragments).
ARGSPEC = dict(
    poll_schedule=dict(type='list', elements='float'),
    poll_base=dict(type='float'),
    poll_max_delay=dict(type='float'),
    poll_max_attempts=dict(type='int'),
    poll_jitter=dict(type='float'),
)


def _number(value, option, minimum=None, above=None, below=None, integer=False):
    """Validate one numeric option value; raise ConfigError naming ``option``."""
    what = 'attempts' if integer else 'seconds'
    number = None
    if not isinstance(value, bool):  # bools are ints in Python; never a valid number here
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            number = None
    if number is None or not math.isfinite(number):
        raise ConfigError('must be a finite number, got %r' % (value,), option=option,
                          fix='give a number of %s' % what)
    if integer:
        if number != int(number):
            raise ConfigError('must be a whole number, got %r' % (value,), option=option,
                              fix='give a whole number of attempts')
        number = int(number)
    if minimum is not None and number < minimum:
        raise ConfigError('must be at least %s, got %s' % (minimum, number), option=option,
                          fix='use a value >= %s' % minimum)
    if above is not None and number <= above:
        raise ConfigError('must be greater than %s, got %s' % (above, number), option=option,
                          fix='use a value > %s' % above)
    if below is not None and number >= below:
        raise ConfigError('must be less than %s, got %s' % (below, number), option=option,
                          fix='use a value < %s' % below)
    return number


class Schedule:
    """Delays between attempts.  Build with :meth:`steps`, :meth:`exponential` or
    :meth:`from_options`.

    ``delay(i)`` is the wait after the ``i``-th call (0-based), jittered by
    ``+-jitter`` (a fraction, default 0.2) using ``rng`` (any object with ``uniform``).
    ``max_attempts`` bounds the number of calls :func:`poll_until` makes (None: deadline only).
    """

    def __init__(self, kind, steps=None, base=2.0, max_delay=None, max_attempts=None,
                 jitter=DEFAULT_JITTER, rng=None):
        if kind not in ('steps', 'exponential'):
            raise ValueError('unknown schedule kind %r' % (kind,))
        self.kind = kind
        if kind == 'steps':
            if steps is None or isinstance(steps, (str, bytes)) or not len(steps):
                raise ConfigError('must be a non-empty list of seconds', option='poll_schedule',
                                  fix='for example [5, 15, 45, 120, 300]')
            self.steps_ = tuple(_number(s, 'poll_schedule', minimum=0) for s in steps)
        else:
            self.steps_ = ()
        self.base = _number(base, 'poll_base', minimum=1)
        self.max_delay = None if max_delay is None else _number(max_delay, 'poll_max_delay', above=0)
        if kind == 'exponential' and self.max_delay is None:
            self.max_delay = 300.0
        self.max_attempts = (None if max_attempts is None
                             else _number(max_attempts, 'poll_max_attempts', minimum=1, integer=True))
        self.jitter = _number(jitter, 'poll_jitter', minimum=0, below=1)
        self.rng = rng if rng is not None else random.Random()

    @classmethod
    def steps(cls, delays=DEFAULT_STEPS, jitter=DEFAULT_JITTER, max_attempts=None,
              max_delay=None, rng=None):
        """Fixed steps, last value repeated: 5, 15, 45, 120, 300, 300, ... (each +-jitter)."""
        return cls('steps', steps=delays, jitter=jitter, max_attempts=max_attempts,
                   max_delay=max_delay, rng=rng)

    @classmethod
    def exponential(cls, base=2, max_delay=300, max_attempts=None, jitter=DEFAULT_JITTER,
                    rng=None):
        """``min(base ** i, max_delay)`` for the i-th wait (1, 2, 4, ... with base 2)."""
        return cls('exponential', base=base, max_delay=max_delay, max_attempts=max_attempts,
                   jitter=jitter, rng=rng)

    @classmethod
    def from_options(cls, options, default=None, rng=None):
        """Map module options to a Schedule.

        ``poll_schedule`` (list of seconds) selects a step schedule, ``poll_base`` an
        exponential one (they exclude each other); ``poll_max_delay`` caps either,
        ``poll_max_attempts`` bounds calls, ``poll_jitter`` is the +- fraction.  Unset
        (None) options fall back to ``default`` (a Schedule; the default step schedule
        when None).  Raises ConfigError naming the offending option.
        """
        options = options or {}
        steps = options.get('poll_schedule')
        base = options.get('poll_base')
        if steps is not None and base is not None:
            raise ConfigError('poll_schedule and poll_base exclude each other', option='poll_base',
                              fix='give either a step list (poll_schedule) or an exponential '
                                  'base (poll_base), not both')
        if default is None:
            default = cls.steps()
        jitter = options.get('poll_jitter')
        jitter = default.jitter if jitter is None else jitter
        max_attempts = options.get('poll_max_attempts')
        max_attempts = default.max_attempts if max_attempts is None else max_attempts
        max_delay = options.get('poll_max_delay')
        rng = rng if rng is not None else default.rng
        if steps is not None:
            if isinstance(steps, (str, bytes)):
                steps = [s for s in str(steps).replace(' ', '').split(',') if s]
            return cls.steps(steps, jitter=jitter, max_attempts=max_attempts,
                             max_delay=max_delay, rng=rng)
        if base is not None or default.kind == 'exponential':
            return cls.exponential(base=default.base if base is None else base,
                                   max_delay=default.max_delay if max_delay is None else max_delay,
                                   max_attempts=max_attempts, jitter=jitter, rng=rng)
        return cls.steps(default.steps_, jitter=jitter, max_attempts=max_attempts,
                         max_delay=default.max_delay if max_delay is None else max_delay, rng=rng)

    def nominal(self, index):
        """The un-jittered wait after call ``index`` (0-based)."""
        if self.kind == 'steps':
            delay = self.steps_[min(index, len(self.steps_) - 1)]
        else:
            try:
                delay = float(self.base) ** index
            except OverflowError:
                delay = float('inf')
        if self.max_delay is not None:
            delay = min(delay, self.max_delay)
        return float(delay)

    def delay(self, index):
        """The jittered wait after call ``index`` (never negative)."""
        delay = self.nominal(index)
        if self.jitter and delay:
            delay *= 1.0 + self.rng.uniform(-self.jitter, self.jitter)
        return max(0.0, delay)

    def to_dict(self):
        return {'kind': self.kind, 'steps': list(self.steps_), 'base': self.base,
                'max_delay': self.max_delay, 'max_attempts': self.max_attempts,
                'jitter': self.jitter}

    def __repr__(self):
        return 'Schedule(%s)' % ', '.join('%s=%r' % kv for kv in sorted(self.to_dict().items()))


class Deadline:
    """Seconds left until a deadline measured on ``clock`` (monotonic by default)."""

    def __init__(self, seconds, clock=time.monotonic):
        self.clock = clock
        self.seconds = float(seconds)
        self.start = clock()

    def elapsed(self):
        return self.clock() - self.start

    def remaining(self):
        return self.seconds - self.elapsed()

    def allows(self, wait):
        """True when waiting ``wait`` seconds still ends at or before the deadline."""
        remaining = self.remaining()
        return remaining > 0 and wait <= remaining


@dataclass
class PollResult:
    """What :func:`poll_until` ended with.

    ``reason`` is 'done', 'deadline' or 'max_attempts'; ``waited`` is the sum of sleeps,
    ``elapsed`` the clock time spent; ``retry_after`` the last server hint (seconds) and
    ``last_error`` the last NotReadyError/TransientError, both None when absent.
    """

    done: bool
    value: Any = None
    attempts: int = 0
    waited: float = 0.0
    elapsed: float = 0.0
    reason: str = REASON_DONE
    retry_after: Optional[float] = None
    last_error: Optional[Exception] = None

    def to_dict(self):
        """Summary for module results (no value, no exception object)."""
        return {'done': self.done, 'attempts': self.attempts, 'waited': round(self.waited, 3),
                'elapsed': round(self.elapsed, 3), 'reason': self.reason,
                'retry_after': self.retry_after,
                'last_error': None if self.last_error is None else str(self.last_error)}


def _hint(value):
    """A usable retry-after hint in seconds, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def poll_until(fn, deadline_seconds, schedule=None, clock=time.monotonic, sleep=time.sleep):
    """Call ``fn()`` until it reports done, the deadline would pass, or attempts run out.

    ``fn`` returns ``(done, value)`` or ``(done, value, retry_after)``, or raises
    NotReadyError / TransientError (their ``retry_after`` is honoured).  Any other exception,
    PermanentError included, propagates.

    The next wait is ``retry_after`` when the server gave one, else ``schedule.delay(i)``.
    A wait that would end past the deadline is not taken: the result is
    ``done=False, reason='deadline'`` with the last value.  ``deadline_seconds=0`` means one
    call and no wait.  Returns a :class:`PollResult`.
    """
    if schedule is None:
        schedule = Schedule.steps()
    deadline_seconds = _number(deadline_seconds, 'wait_timeout', minimum=0)
    deadline = Deadline(deadline_seconds, clock=clock)
    attempts = 0
    waited = 0.0
    value = None
    last_error = None
    while True:
        attempts += 1
        retry_after = None
        try:
            answer = fn()
        except (NotReadyError, TransientError) as exc:
            last_error = exc
            retry_after = _hint(exc.retry_after)
        else:
            if not isinstance(answer, tuple) or len(answer) not in (2, 3):
                raise TypeError('poll function must return (done, value) or '
                                '(done, value, retry_after), got %r' % (answer,))
            done, value = bool(answer[0]), answer[1]
            retry_after = _hint(answer[2]) if len(answer) == 3 else None
            if done:
                return PollResult(True, value, attempts, waited, deadline.elapsed(),
                                  REASON_DONE, retry_after, None)
        if schedule.max_attempts is not None and attempts >= schedule.max_attempts:
            return PollResult(False, value, attempts, waited, deadline.elapsed(),
                              REASON_MAX_ATTEMPTS, retry_after, last_error)
        wait = retry_after if retry_after is not None else schedule.delay(attempts - 1)
        if not deadline.allows(wait):
            return PollResult(False, value, attempts, waited, deadline.elapsed(),
                              REASON_DEADLINE, retry_after, last_error)
        sleep(wait)
        waited += wait
