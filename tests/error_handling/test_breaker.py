"""The circuit breaker: opening, rejecting, half-open trials, windows, control and hooks."""

from __future__ import annotations

import itertools

import pytest

from coordination import CircuitOpenError, ConfigError, ValidationError
from coordination.error_handling import (
    BreakerSettings,
    BreakerTransition,
    CircuitBreaker,
    CircuitBreakerBackend,
    CircuitState,
    CoordinationErrorHandler,
)
from coordination.error_handling._backends import RAISE

from .conftest import FakeClock


def failing() -> None:
    raise ConnectionError("down")


def make(clock: FakeClock, **settings: object) -> tuple[CircuitBreaker, list[BreakerTransition]]:
    seen: list[BreakerTransition] = []
    breaker = CircuitBreaker(
        "dep",
        BreakerSettings(**settings),
        clock=clock,
        on_transition=seen.append,  # type: ignore[arg-type]
    )
    return breaker, seen


def test_the_memory_breaker_implements_the_backend_protocol(clock: FakeClock) -> None:
    breaker, _ = make(clock)
    assert isinstance(breaker, CircuitBreakerBackend)


def test_opens_after_threshold_consecutive_failures(clock: FakeClock) -> None:
    breaker, seen = make(clock, failure_threshold=3)
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure(0.0)
    breaker.acquire()
    breaker.record_success(0.0)  # a success breaks the run
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure(0.0)
    assert breaker.state is CircuitState.CLOSED
    breaker.acquire()
    breaker.record_failure(0.0)
    assert breaker.state is CircuitState.OPEN
    assert [(t.old, t.new) for t in seen] == [(CircuitState.CLOSED, CircuitState.OPEN)]
    assert seen[0].reason == "3 consecutive failures"


def test_open_rejects_with_retry_after_then_half_opens(clock: FakeClock) -> None:
    breaker, seen = make(clock, failure_threshold=1, open_seconds=10.0)
    breaker.acquire()
    breaker.record_failure(0.0)
    clock.advance(4.0)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire()
    assert caught.value.retry_after == pytest.approx(6.0)
    clock.advance(6.0)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.acquire()  # the trial call
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # only one trial slot
    breaker.record_success(0.0)
    assert breaker.state is CircuitState.CLOSED
    assert [t.new for t in seen] == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_a_failed_trial_reopens_for_a_full_period(clock: FakeClock) -> None:
    breaker, _ = make(clock, failure_threshold=1, open_seconds=10.0, half_open_calls=2)
    breaker.acquire()
    breaker.record_failure(0.0)
    clock.advance(10.0)
    breaker.acquire()
    breaker.acquire()
    breaker.record_success(0.0)
    assert breaker.state is CircuitState.HALF_OPEN  # needs both trials
    breaker.record_failure(0.0)
    assert breaker.state is CircuitState.OPEN
    assert breaker.snapshot().retry_after == pytest.approx(10.0)


def test_release_gives_back_a_trial_slot(clock: FakeClock) -> None:
    breaker, _ = make(clock, failure_threshold=1, open_seconds=1.0)
    breaker.acquire()
    breaker.record_failure(0.0)
    clock.advance(1.0)
    breaker.acquire()
    breaker.release()  # e.g. the trial call was cancelled
    breaker.acquire()  # so another caller may try
    breaker.record_success(0.0)
    assert breaker.state is CircuitState.CLOSED


def test_force_open_and_reset(clock: FakeClock) -> None:
    breaker, seen = make(clock)
    breaker.force_open()
    clock.advance(1e6)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    assert breaker.snapshot().forced_open
    breaker.reset()
    breaker.acquire()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().transitions == {"CLOSED->OPEN": 1, "OPEN->CLOSED": 1}
    assert [t.reason for t in seen] == ["forced open", "reset"]


def test_failure_rate_waits_for_minimum_calls(clock: FakeClock) -> None:
    breaker, seen = make(
        clock, failure_threshold=100, failure_rate_threshold=0.5, window_size=10, minimum_calls=10
    )
    for i in range(9):  # alternate: 5 failures out of 9, below minimum_calls
        breaker.acquire()
        (breaker.record_failure if i % 2 == 0 else breaker.record_success)(0.0)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().failure_rate is None
    assert seen == []  # 5 of 9 failed, but fewer than minimum_calls outcomes
    breaker.acquire()
    breaker.record_success(0.0)  # 10 calls, 5 failures: 50% reaches the threshold
    assert breaker.state is CircuitState.OPEN
    assert "failure rate 50%" in seen[-1].reason


def test_failure_rate_opens_at_the_threshold(clock: FakeClock) -> None:
    breaker, seen = make(
        clock, failure_threshold=100, failure_rate_threshold=0.5, window_size=4, minimum_calls=4
    )
    for outcome in ("ok", "fail", "ok"):
        breaker.acquire()
        (breaker.record_success if outcome == "ok" else breaker.record_failure)(0.0)
    assert breaker.state is CircuitState.CLOSED
    breaker.acquire()
    breaker.record_failure(0.0)  # 2 of 4 failed: 50%
    assert breaker.state is CircuitState.OPEN
    assert "failure rate 50%" in seen[-1].reason


def test_count_window_forgets_old_calls(clock: FakeClock) -> None:
    breaker, _ = make(
        clock, failure_threshold=100, failure_rate_threshold=0.5, window_size=4, minimum_calls=4
    )
    breaker.acquire()
    breaker.record_failure(0.0)
    for _ in range(10):
        breaker.acquire()
        breaker.record_success(0.0)
    snapshot = breaker.snapshot()
    assert snapshot.window_calls == 4
    assert snapshot.failure_rate == 0.0


def test_time_window_forgets_old_seconds(clock: FakeClock) -> None:
    breaker, _ = make(
        clock,
        failure_threshold=100,
        failure_rate_threshold=0.9,
        window_type="time",
        window_size=5,
        minimum_calls=2,
    )
    for _ in range(3):
        breaker.acquire()
        breaker.record_failure(0.0)
        breaker.acquire()
        breaker.record_success(0.0)
    assert breaker.snapshot().window_calls == 6
    clock.advance(3.0)
    breaker.acquire()
    breaker.record_success(0.0)
    assert breaker.snapshot().window_calls == 7
    clock.advance(5.0)
    snapshot = breaker.snapshot()
    assert snapshot.window_calls == 0
    assert snapshot.failure_rate is None


def test_slow_calls_open_the_breaker(clock: FakeClock) -> None:
    breaker, seen = make(
        clock,
        failure_threshold=100,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        window_size=4,
        minimum_calls=4,
    )
    assert breaker.tracks_duration
    for duration in (0.1, 2.0, 0.1):
        breaker.acquire()
        breaker.record_success(duration)
    assert breaker.state is CircuitState.CLOSED
    breaker.acquire()
    breaker.record_success(1.5)
    assert breaker.state is CircuitState.OPEN
    assert "slow-call rate" in seen[-1].reason


def test_slow_calls_are_timed_through_the_handler(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    def slow() -> str:
        clock.advance(2.0)
        return "late"

    for _ in range(2):
        handler.execute_with_error_handling(
            slow,
            operation_name="slow",
            slow_call_duration=1.0,
            slow_call_rate_threshold=1.0,
            minimum_calls=2,
            window_size=2,
        )
    assert handler.circuit_breaker("slow").state is CircuitState.OPEN


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        # Named by the setting (configuration and per-call name) the attribute holds.
        ({"failure_threshold": 0}, "circuit_breaker_threshold"),
        ({"open_seconds": 0}, "circuit_breaker_timeout"),
        ({"half_open_max_wait": 0}, "half_open_max_wait"),
        ({"open_backoff_multiplier": 0.5}, "open_backoff_multiplier"),
        ({"max_open_seconds": 0}, "max_open_seconds"),
        ({"mode": "shadow"}, "breaker_mode"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"window_type": "sliding"}, "window_type"),
        ({"half_open_calls": 0}, "half_open_calls"),
    ],
)
def test_bad_settings_name_the_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        BreakerSettings(**settings)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- through the handler ------------------------------------------------------------------


def test_open_breaker_rejects_without_calling_and_stops_retries(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    calls = 0

    def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with pytest.raises(CircuitOpenError) as caught:
        handler.execute_with_error_handling(
            down, max_retries=10, circuit_breaker_threshold=3, operation_name="db"
        )
    assert calls == 3  # the 4th attempt met the open breaker: no more waiting
    assert clock.sleeps == [1.0, 2.0]
    assert isinstance(caught.value.__cause__, ConnectionError)
    with pytest.raises(CircuitOpenError):
        handler.execute_with_error_handling(down, operation_name="db")
    assert calls == 3
    report = handler.get_error_report()
    assert report["rejected_by_circuit_breaker"] == 2
    assert report["circuit_breakers"]["db"]["state"] == "OPEN"


def test_one_breaker_per_operation(handler: CoordinationErrorHandler) -> None:
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            failing, max_retries=0, circuit_breaker_threshold=1, operation_name="payments"
        )
    assert handler.circuit_breaker("payments").state is CircuitState.OPEN
    assert handler.execute_with_error_handling(lambda: "fine", operation_name="search") == "fine"
    assert handler.circuit_breaker("search").state is CircuitState.CLOSED


def test_input_errors_do_not_move_the_breaker(handler: CoordinationErrorHandler) -> None:
    def invalid() -> None:
        raise ValidationError(["email is required"])

    for _ in range(10):
        with pytest.raises(ValidationError):
            handler.execute_with_error_handling(
                invalid, circuit_breaker_threshold=2, operation_name="signup"
            )
    assert handler.circuit_breaker("signup").state is CircuitState.CLOSED


def test_reset_circuit_breaker_by_name_and_all(handler: CoordinationErrorHandler) -> None:
    for name in ("a", "b"):
        with pytest.raises(ConnectionError):
            handler.execute_with_error_handling(
                failing, max_retries=0, circuit_breaker_threshold=1, operation_name=name
            )
    handler.reset_circuit_breaker("a")
    assert handler.circuit_states() == {"a": CircuitState.CLOSED, "b": CircuitState.OPEN}
    handler.reset_circuit_breaker()
    assert set(handler.circuit_states().values()) == {CircuitState.CLOSED}


def test_half_open_success_closes_through_the_handler(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            failing, max_retries=0, circuit_breaker_threshold=1, operation_name="svc"
        )
    clock.advance(30.0)
    assert handler.execute_with_error_handling(lambda: "back", operation_name="svc") == "back"
    assert handler.circuit_breaker("svc").state is CircuitState.CLOSED


def test_transition_hooks_fire_and_a_broken_hook_is_harmless(clock: FakeClock) -> None:
    seen: list[str] = []

    def broken(_: BreakerTransition) -> None:
        raise RuntimeError("hook bug")

    handler = CoordinationErrorHandler(
        {}, clock=clock, sleep=clock.sleep, on_transition=lambda t: seen.append(t.new.value)
    )
    handler.add_transition_hook(broken)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            failing, max_retries=0, circuit_breaker_threshold=1, operation_name="x"
        )
    handler.circuit_breaker("x").force_open()
    handler.reset_circuit_breaker("x")
    assert seen == ["OPEN", "CLOSED"]


def test_the_guard_is_the_closed_breakers_own_path(clock: FakeClock) -> None:
    """``guard``: closed → the call and its success; a failure handed over; open → refused
    without calling; half-open → the full path (through ``acquire``)."""
    breaker = CircuitBreaker(
        "g", BreakerSettings(failure_threshold=1, open_seconds=5.0), clock=clock
    )
    successes = itertools.count()
    seen: list[str] = []

    def failed(func: object, args: tuple[object, ...], kwargs: object, exc: Exception) -> str:
        breaker.record_failure(0.0)  # the pipeline's retry loop tells the breaker
        return f"failed: {exc}"

    def otherwise(func: object, args: tuple[object, ...], kwargs: object) -> str:
        breaker.acquire()
        return "full path"

    def refused(exc: CircuitOpenError, args: tuple[object, ...], kwargs: object) -> object:
        seen.append(f"refused {args} for {exc.retry_after:g}s")
        return RAISE if len(seen) == 1 else "fallback"

    def work(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * 2

    guarded = breaker.guard(
        work, successes=successes, failed=failed, otherwise=otherwise, refused=refused
    )
    assert guarded(21) == 42
    assert next(successes) == 1  # one success counted before this read
    assert guarded(-1) == "failed: negative"
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        guarded(1)
    assert guarded(2) == "fallback"
    assert seen == ["refused (1,) for 5s", "refused (2,) for 5s"]
    clock.advance(5.0)
    assert guarded(1) == "full path"
    assert breaker.state is CircuitState.HALF_OPEN
