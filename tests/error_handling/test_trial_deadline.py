"""A hung half-open trial: the breaker re-opens at the trial's deadline, and every
rejection carries a real wait (never ``retry_after=0.0``)."""

from __future__ import annotations

import threading

import pytest

from coordination import CircuitOpenError, ConfigError
from coordination.error_handling import (
    BreakerSettings,
    BreakerTransition,
    CircuitBreaker,
    CircuitState,
    CoordinationErrorHandler,
)
from fakes import FakeClock


def rejection(breaker: CircuitBreaker) -> float:
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire()
    assert caught.value.retry_after > 0
    return caught.value.retry_after


def test_a_hung_trial_reopens_the_breaker_at_its_deadline(clock: FakeClock) -> None:
    seen: list[BreakerTransition] = []
    breaker = CircuitBreaker(
        "dep",
        BreakerSettings(failure_threshold=1, open_seconds=10.0),
        clock=clock,
        on_transition=seen.append,
    )
    breaker.acquire()
    breaker.record_failure(0.0)
    clock.advance(10.0)
    breaker.acquire()  # the trial: it never reports back
    assert rejection(breaker) == pytest.approx(10.0)  # until the trial's deadline
    clock.advance(4.0)
    assert rejection(breaker) == pytest.approx(6.0)
    clock.advance(6.0)  # the deadline (half_open_max_wait defaults to open_seconds)
    assert breaker.state is CircuitState.OPEN
    assert rejection(breaker) == pytest.approx(10.0)  # re-opened as of the deadline
    assert seen[-1].new is CircuitState.OPEN
    assert "trial calls not concluded within 10s" in seen[-1].reason
    clock.advance(10.0)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.acquire()  # a new trial is admitted
    breaker.record_success(0.0)
    assert breaker.state is CircuitState.CLOSED


def test_a_long_overdue_trial_goes_straight_to_a_new_trial(clock: FakeClock) -> None:
    settings = BreakerSettings(failure_threshold=1, open_seconds=5.0, half_open_max_wait=1.0)
    breaker = CircuitBreaker("dep", settings, clock=clock)
    breaker.acquire()
    breaker.record_failure(0.0)
    clock.advance(5.0)
    breaker.acquire()  # hangs
    assert rejection(breaker) == pytest.approx(1.0)
    clock.advance(100.0)  # far past deadline + open period
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.acquire()  # re-opened at the deadline, half-open again since: admitted
    assert rejection(breaker) == pytest.approx(1.0)


def test_every_rejection_has_a_real_wait(clock: FakeClock) -> None:
    settings = BreakerSettings(failure_threshold=1, open_seconds=3.0, half_open_calls=2)
    breaker = CircuitBreaker("dep", settings, clock=clock)
    breaker.acquire()
    breaker.record_failure(0.0)
    waits = []
    for _ in range(30):  # trials admitted along the way never end
        try:
            breaker.acquire()
        except CircuitOpenError as exc:
            waits.append(exc.retry_after)
        clock.advance(0.5)
    assert len(waits) > 20
    assert min(waits) > 0
    breaker.force_open()
    assert rejection(breaker) == pytest.approx(3.0)


def test_a_hung_trial_through_the_handler_is_given_up_on(clock: FakeClock) -> None:
    """A real thread blocks in the trial call; the other callers get real waits, and at
    the deadline a new trial is admitted after the open period."""
    handler = CoordinationErrorHandler({"base_delay": 0}, clock=clock, sleep=clock.sleep)
    gate = threading.Event()
    inside = threading.Event()
    healthy = threading.Event()

    def dependency() -> str:
        if not healthy.is_set():
            inside.set()
            gate.wait(30)  # the hung trial
        return "ok"

    call = handler.decorate(
        dependency,
        operation_name="trial",
        max_retries=0,
        circuit_breaker_threshold=1,
        circuit_breaker_timeout=10.0,
        half_open_max_wait=2.0,
    )
    breaker = handler.circuit_breaker("trial")
    breaker.acquire()
    breaker.record_failure(0.0)  # open
    clock.advance(10.0)
    trial = threading.Thread(target=lambda: call())
    trial.start()
    try:
        assert inside.wait(5)
        with pytest.raises(CircuitOpenError) as waiting:
            call()
        assert waiting.value.retry_after == pytest.approx(2.0)
        clock.advance(2.0)
        with pytest.raises(CircuitOpenError) as reopened:
            call()
        assert reopened.value.retry_after == pytest.approx(10.0)
        clock.advance(10.0)
        healthy.set()
        assert call() == "ok"  # the new trial
        assert breaker.state is CircuitState.CLOSED
    finally:
        gate.set()
        trial.join(5)
    assert breaker.state is CircuitState.CLOSED  # the late success changed nothing


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "2", True])
def test_a_bad_half_open_max_wait_names_the_option(bad: object) -> None:
    handler = CoordinationErrorHandler()
    with pytest.raises(ConfigError, match="half_open_max_wait") as raised:
        handler.config_options(half_open_max_wait=bad)
    assert raised.value.field == "half_open_max_wait"


def test_the_old_spelling_still_works_with_a_warning() -> None:
    handler = CoordinationErrorHandler()
    with pytest.warns(DeprecationWarning, match="'half_open_max_wait'"):
        options = handler.config_options(half_open_trial_timeout=2.5)
    assert options.breaker.half_open_max_wait == 2.5
