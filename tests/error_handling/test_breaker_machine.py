"""The in-memory breaker against a simple model, step by step (Hypothesis state machine):
states, the half-open wait, open-time growth on re-opens, forced open / reset, and the
metrics-only mode, on a fake clock. Every transition is reported exactly once."""

from __future__ import annotations

import math

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from coordination import CircuitOpenError
from coordination.error_handling import (
    BreakerSettings,
    BreakerTransition,
    CircuitBreaker,
    CircuitState,
)
from coordination.error_handling._breaker_modes import MetricsOnlyBreaker
from fakes import FakeClock

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
NEVER = math.inf


class Model:
    """What the breaker should do, written as plainly as possible."""

    def __init__(self, s: BreakerSettings) -> None:
        self.threshold = s.failure_threshold
        self.base = s.open_seconds
        self.trials_max = s.half_open_calls
        self.wait = s.open_seconds if s.half_open_max_wait is None else s.half_open_max_wait
        self.multiplier = s.open_backoff_multiplier
        self.cap = s.max_open_seconds
        self.state = CLOSED
        self.forced = False
        self.failures = 0
        self.reopens = 0
        self.open_for = self.open_time(0)
        self.open_until = 0.0
        self.running = 0
        self.succeeded = 0
        self.since = NEVER
        self.transitions = 0

    def open_time(self, reopens: int) -> float:
        seconds = self.base * self.multiplier**reopens if reopens else self.base
        return seconds if self.cap is None else min(seconds, self.cap)

    def move(self, state: CircuitState) -> None:
        self.state = state
        self.transitions += 1

    def open(self, at: float) -> None:
        self.reopens = self.reopens + 1 if self.state is HALF_OPEN else 0
        self.open_for = self.open_time(self.reopens)
        self.open_until = at + self.open_for
        self.running = self.succeeded = 0
        self.since = NEVER
        self.move(OPEN)

    def settle(self, now: float) -> None:
        while not self.forced:
            if self.state is OPEN and now >= self.open_until:
                self.move(HALF_OPEN)
                self.running = self.succeeded = 0
                self.since = NEVER
            elif self.state is HALF_OPEN and now >= self.since + self.wait:
                self.open(self.since + self.wait)
            else:
                return

    def acquire(self, now: float) -> float | None:
        """None when admitted, else the rejection's retry_after."""
        if self.state is CLOSED:
            return None
        if self.forced:
            return self.open_time(0)
        self.settle(now)
        if self.state is OPEN:
            return self.open_until - now
        if self.running + self.succeeded >= self.trials_max:
            return self.since + self.wait - now
        if self.since == NEVER:
            self.since = now
        self.running += 1
        return None

    def success(self, now: float) -> None:
        if self.state is CLOSED:
            self.failures = 0
            return
        self.settle(now)
        if self.state is HALF_OPEN and self.running:
            self.running -= 1
            self.succeeded += 1
            if self.succeeded >= self.trials_max:
                self.failures = self.running = self.succeeded = self.reopens = 0
                self.open_for = self.open_time(0)
                self.since = NEVER
                self.move(CLOSED)

    def failure(self, now: float) -> None:
        if self.state is CLOSED:
            self.failures += 1
            if self.failures >= self.threshold:
                self.open(now)
            return
        self.settle(now)
        if self.state is HALF_OPEN and self.running:
            self.open(now)

    def release(self) -> None:
        if self.state is HALF_OPEN and self.running:
            self.running -= 1

    def force_open(self, now: float) -> None:
        self.forced = True
        if self.state is not OPEN:
            self.move(OPEN)

    def reset(self) -> None:
        self.forced = False
        self.failures = self.running = self.succeeded = self.reopens = 0
        self.open_for = self.open_time(0)
        self.since = NEVER
        if self.state is not CLOSED:
            self.move(CLOSED)

    def shown_open_seconds(self) -> float:
        if self.state is OPEN:
            return self.open_for
        if self.state is HALF_OPEN:
            return self.open_time(self.reopens + 1)
        return self.open_time(0)


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(start=1000.0)
        self.seen: list[BreakerTransition] = []

    @initialize(
        threshold=st.integers(1, 3),
        open_seconds=st.sampled_from([0.5, 1.0, 2.0]),
        trials=st.integers(1, 2),
        wait=st.sampled_from([None, 0.5, 1.25, 4.0]),
        multiplier=st.sampled_from([1.0, 1.5, 2.0]),
        cap=st.sampled_from([None, 3.0, 5.0, 0.75]),
        metrics_only=st.booleans(),
    )
    def build(
        self,
        threshold: int,
        open_seconds: float,
        trials: int,
        wait: float | None,
        multiplier: float,
        cap: float | None,
        metrics_only: bool,
    ) -> None:
        config = BreakerSettings(
            failure_threshold=threshold,
            open_seconds=open_seconds,
            half_open_calls=trials,
            half_open_max_wait=wait,
            open_backoff_multiplier=multiplier,
            max_open_seconds=cap,
            mode="metrics_only" if metrics_only else "normal",
        )
        self.inner = CircuitBreaker("dep", config, clock=self.clock, on_transition=self.seen.append)
        self.breaker: CircuitBreaker | MetricsOnlyBreaker = (
            MetricsOnlyBreaker(self.inner) if metrics_only else self.inner
        )
        self.metrics_only = metrics_only
        self.model = Model(config)
        self.would_reject = 0

    @rule(seconds=st.sampled_from([0.0, 0.125, 0.25, 0.5, 1.0, 3.0, 10.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(outcome=st.sampled_from(["success", "failure", "release", "hang"]))
    def call(self, outcome: str) -> None:
        now = self.clock.now
        expected = self.model.acquire(now)
        refusal: CircuitOpenError | None = None
        try:
            self.breaker.acquire()
        except CircuitOpenError as exc:
            refusal = exc
        if refusal is not None:
            assert not self.metrics_only, "a metrics-only breaker rejected a call"
            assert expected is not None, "rejected, the model admits"
            assert refusal.retry_after > 0
            assert refusal.retry_after == pytest.approx(expected)
            return
        if expected is not None:
            assert self.metrics_only, f"admitted, the model rejects for {expected}s"
            self.would_reject += 1
        if outcome == "hang":
            return
        getattr(self.breaker, f"record_{outcome}" if outcome != "release" else "release")(
            *(() if outcome == "release" else (0.0,))
        )
        if expected is None:  # a refused call's outcome is not the breaker's business
            if outcome == "success":
                self.model.success(now)
            elif outcome == "failure":
                self.model.failure(now)
            else:
                self.model.release()

    @rule()
    def peek(self) -> None:
        self.model.settle(self.clock.now)
        assert self.breaker.state is self.model.state

    @rule()
    def force_open(self) -> None:
        self.model.force_open(self.clock.now)
        self.breaker.force_open()

    @precondition(lambda self: self.model.state is not CLOSED or self.model.failures)
    @rule()
    def reset(self) -> None:
        self.model.reset()
        self.breaker.reset()

    @invariant()
    def reports_agree(self) -> None:
        snapshot = self.breaker.snapshot()  # a read: it makes the transitions time brought
        model = self.model
        model.settle(self.clock.now)
        assert snapshot.state is model.state
        assert snapshot.forced_open is model.forced
        assert snapshot.consecutive_failures == model.failures
        assert snapshot.reopens == model.reopens
        assert snapshot.open_seconds == pytest.approx(model.shown_open_seconds())
        if model.state is OPEN and not model.forced:
            assert snapshot.retry_after == pytest.approx(model.open_until - self.clock.now)
            assert 0 < snapshot.retry_after <= (model.cap or math.inf)
        assert snapshot.mode == ("metrics_only" if self.metrics_only else "normal")
        assert snapshot.would_reject == self.would_reject
        # every transition reported exactly once, and counted once
        assert len(self.seen) == model.transitions == sum(snapshot.transitions.values())
        for before, after in zip(self.seen, self.seen[1:], strict=False):
            assert before.new is after.old


BreakerMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_breaker_against_its_model = BreakerMachine.TestCase
