"""Property tests: the breaker against a model (a state machine), and the backoff."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from coordination import CircuitOpenError
from coordination.error_handling import Backoff, BreakerSettings, CircuitBreaker, CircuitState

from .conftest import FakeClock

THRESHOLD = 3
OPEN_SECONDS = 10.0
TRIALS = 2
TRIAL_TIMEOUT = 4.0


class BreakerModel(RuleBasedStateMachine):
    """Drive the real breaker and a small model with the same calls; they must agree,
    on decisions, on states and on the wait every rejection announces. Calls may never
    end (a hung trial): the model re-opens as of the trials' deadline, counted from the
    first trial of the half-open period whether every slot is taken or not."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.breaker = CircuitBreaker(
            "model",
            BreakerSettings(
                failure_threshold=THRESHOLD,
                open_seconds=OPEN_SECONDS,
                half_open_calls=TRIALS,
                half_open_max_wait=TRIAL_TIMEOUT,
            ),
            clock=self.clock,
        )
        self.state = "CLOSED"
        self.failures = 0
        self.opened_at = 0.0
        self.in_flight = 0  # calls admitted and not yet recorded
        self.trials = 0  # half-open: admitted trials (running or succeeded)
        self.trial_successes = 0
        self.half_open_since = 0.0

    def _model_state(self) -> str:
        now = self.clock.now
        if self.state == "OPEN" and now >= self.opened_at + OPEN_SECONDS:
            return "HALF_OPEN"
        if self.state == "HALF_OPEN" and self.trials > 0:  # the wait starts with a trial
            overdue = self.half_open_since + TRIAL_TIMEOUT
            if now >= overdue:
                return "OPEN" if now < overdue + OPEN_SECONDS else "HALF_OPEN"
        return self.state

    def _settle(self) -> None:
        """Trials not all concluded by their deadline (full or not): re-opened as of it."""
        if self.state == "HALF_OPEN" and self.trials > 0:
            overdue = self.half_open_since + TRIAL_TIMEOUT
            if self.clock.now >= overdue:
                self.state, self.opened_at = "OPEN", overdue
                self.trials = self.trial_successes = 0

    @rule()
    def call_starts(self) -> None:
        now = self.clock.now
        wait = 0.0  # > 0: the model expects a rejection announcing this wait
        self._settle()
        if self.state == "HALF_OPEN" and self.trials >= TRIALS:
            wait = self.half_open_since + TRIAL_TIMEOUT - now
        if not wait and self.state == "OPEN":
            if now < self.opened_at + OPEN_SECONDS:
                wait = self.opened_at + OPEN_SECONDS - now
            else:
                self.state, self.trials, self.trial_successes = "HALF_OPEN", 0, 0
                self.half_open_since = now
        announced = 0.0
        try:
            self.breaker.acquire()
        except CircuitOpenError as exc:
            announced = exc.retry_after
        assert announced == pytest.approx(wait)  # 0.0 only when admitted
        if wait:
            assert announced > 0
            return
        if self.state == "HALF_OPEN":
            self.trials += 1
        self.in_flight += 1

    @precondition(lambda self: self.in_flight > 0)
    @rule(success=st.booleans())
    def call_ends(self, success: bool) -> None:
        self.in_flight -= 1
        self._settle()  # an outcome after the trials' deadline is late
        if success:
            self.breaker.record_success(0.0)
            if self.state == "CLOSED":
                self.failures = 0
            elif self.state == "HALF_OPEN" and self.trials > self.trial_successes:
                self.trial_successes += 1
                if self.trial_successes >= TRIALS:
                    self.state, self.failures = "CLOSED", 0
        else:
            self.breaker.record_failure(0.0)
            if self.state == "CLOSED":
                self.failures += 1
                if self.failures >= THRESHOLD:
                    self.state, self.opened_at = "OPEN", self.clock.now
            elif self.state == "HALF_OPEN" and self.trials > self.trial_successes:
                self.state, self.opened_at = "OPEN", self.clock.now

    @rule(seconds=st.sampled_from([0.5, 3.0, 4.0, 9.99, 10.0, 25.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.state, self.failures, self.trials, self.trial_successes = "CLOSED", 0, 0, 0
        self.in_flight = 0  # calls still running are late: their outcomes are ignored

    @invariant()
    def same_state(self) -> None:
        assert self.breaker.state is CircuitState(self._model_state())

    @invariant()
    def same_failure_count(self) -> None:
        if self.state == "CLOSED":
            assert self.breaker.snapshot().consecutive_failures == self.failures


BreakerModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestBreakerAgainstModel = BreakerModel.TestCase


delays = st.floats(min_value=0, max_value=30, allow_nan=False)
multipliers = st.floats(min_value=1, max_value=5, allow_nan=False)
caps = st.floats(min_value=0, max_value=120, allow_nan=False)
jitters = st.sampled_from(["none", "full", "equal", "decorrelated"])


@settings(max_examples=150, deadline=None)
@given(delays, multipliers, caps, jitters, st.integers(0, 2000), st.floats(0, 1))
def test_backoff_is_never_negative_nor_above_the_cap(
    base: float, multiplier: float, cap: float, jitter: str, retry: int, draw: float
) -> None:
    backoff = Backoff(base_delay=base, multiplier=multiplier, max_delay=cap, jitter=jitter)
    previous = base
    wait = backoff.delay(retry, previous, rng=lambda: draw)
    assert 0 <= wait <= cap


@settings(max_examples=100, deadline=None)
@given(delays, multipliers, caps)
def test_backoff_without_jitter_is_monotone(base: float, multiplier: float, cap: float) -> None:
    backoff = Backoff(base_delay=base, multiplier=multiplier, max_delay=cap, jitter="none")
    waits = [backoff.delay(n, 0.0) for n in range(60)]
    assert waits == sorted(waits)
    assert waits[0] == min(base, cap)


@settings(max_examples=100, deadline=None)
@given(delays.filter(lambda d: d > 0), multipliers, st.integers(0, 20), st.floats(0, 1))
def test_equal_jitter_keeps_at_least_half(
    base: float, multiplier: float, retry: int, draw: float
) -> None:
    backoff = Backoff(base_delay=base, multiplier=multiplier, max_delay=60.0, jitter="equal")
    plain = Backoff(base_delay=base, multiplier=multiplier, max_delay=60.0, jitter="none")
    full = plain.delay(retry, 0.0)
    assert full / 2 <= backoff.delay(retry, 0.0, rng=lambda: draw) <= full


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 20),
    st.sampled_from([0.5, 1.0, 10.0]),
    st.lists(st.floats(0, 0.5, allow_nan=False), min_size=1, max_size=200),
)
def test_gcra_never_admits_more_than_burst_plus_the_sustained_rate(
    count: int, period: float, gaps: list[float]
) -> None:
    from coordination.error_handling import InMemoryRateLimiter, Rate

    clock = FakeClock(start=0.0)
    limiter = InMemoryRateLimiter(Rate(count, period), clock=clock)
    admitted: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        wait = limiter.try_acquire("key")
        assert wait >= 0
        if wait == 0:
            admitted.append(clock.now)
        else:  # a refused call is not counted: asking again at once gets the same answer
            assert limiter.try_acquire("key") == pytest.approx(wait)
    interval = period / count
    for i, start in enumerate(admitted):
        within = [t for t in admitted[i:] if t - start <= period]
        assert len(within) <= count + period / interval + 1e-9
    elapsed = clock.now
    assert len(admitted) <= count + elapsed / interval + 1e-9
