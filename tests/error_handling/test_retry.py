"""Retry: how many attempts, which errors, how long to wait, what the caller finally gets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from coordination import CircuitOpenError, ConfigError, ValidationError
from coordination.error_handling import CoordinationErrorHandler, retry_after_seconds

from .conftest import FakeClock


class Flaky:
    """Fails with ``error`` the first ``failures`` calls, then returns ``"ok"``."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("connection refused")
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def test_max_retries_counts_retries_after_the_first_attempt(
    handler: CoordinationErrorHandler,
) -> None:
    always = Flaky(100)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(always, max_retries=3)
    assert always.calls == 4


def test_zero_retries_means_one_call(handler: CoordinationErrorHandler) -> None:
    always = Flaky(100)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(always, max_retries=0)
    assert always.calls == 1


def test_recovers_and_reports_the_retries(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    flaky = Flaky(2)
    assert handler.execute_with_error_handling(flaky, max_retries=3) == "ok"
    assert flaky.calls == 3
    assert clock.sleeps == [1.0, 2.0]  # base_delay × multiplier^n, jitter none
    report = handler.get_error_report()
    assert report["total_retries"] == 2
    assert report["successful_operations"] == 1
    assert report["errors_by_type"] == {"ConnectionError": 2}


def test_waits_are_capped_by_max_delay(handler: CoordinationErrorHandler, clock: FakeClock) -> None:
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            Flaky(100),
            max_retries=5,
            base_delay=1.0,
            backoff_multiplier=10.0,
            max_delay=50.0,
            circuit_breaker_threshold=100,
        )
    assert clock.sleeps == [1.0, 10.0, 50.0, 50.0, 50.0]


def test_zero_wait_never_calls_sleep(handler: CoordinationErrorHandler, clock: FakeClock) -> None:
    flaky = Flaky(3)
    assert handler.execute_with_error_handling(flaky, max_retries=3, base_delay=0) == "ok"
    assert clock.sleeps == []


def test_the_caller_gets_the_original_last_exception_with_a_note(
    handler: CoordinationErrorHandler,
) -> None:
    errors = iter([ConnectionError("first"), ConnectionError("second")])

    def failing() -> None:
        raise next(errors)

    with pytest.raises(ConnectionError, match="second") as caught:
        handler.execute_with_error_handling(failing, max_retries=1, operation_name="db")
    assert type(caught.value) is ConnectionError
    assert caught.value.__notes__ == ["coordination: operation 'db' failed after 2 attempt(s)"]


def test_a_reused_exception_does_not_pile_up_notes(handler: CoordinationErrorHandler) -> None:
    shared = ConnectionError("shared")
    for _ in range(3):
        with pytest.raises(ConnectionError):
            handler.execute_with_error_handling(Flaky(100, shared), max_retries=0)
    assert len(shared.__notes__) == 1


@pytest.mark.parametrize(
    "error",
    [
        TypeError("bad argument"),
        AttributeError("no such attribute"),
        NameError("undefined"),
        NotImplementedError(),
        AssertionError("broken invariant"),
        ValidationError(["name is required"]),
        ConfigError("bad setting"),
        CircuitOpenError("inner", 3.0),
    ],
)
def test_errors_no_retry_can_fix_are_not_retried(
    handler: CoordinationErrorHandler, error: Exception
) -> None:
    failing = Flaky(100, error)
    with pytest.raises(type(error)):
        handler.execute_with_error_handling(failing, max_retries=3)
    assert failing.calls == 1


@pytest.mark.parametrize(
    "interrupt", [KeyboardInterrupt(), SystemExit(1), asyncio.CancelledError()]
)
def test_base_exceptions_pass_straight_through_uncounted(
    handler: CoordinationErrorHandler, interrupt: BaseException
) -> None:
    def interrupted() -> None:
        raise interrupt

    with pytest.raises(type(interrupt)):
        handler.execute_with_error_handling(interrupted, max_retries=3, operation_name="op")
    report = handler.get_error_report()
    assert report["failed_operations"] == 0
    assert report["errors_by_type"] == {}
    assert handler.circuit_breaker("op").snapshot().consecutive_failures == 0


def test_retry_on_types_limits_what_is_retried(handler: CoordinationErrorHandler) -> None:
    timeouts = Flaky(1, TimeoutError("slow"))
    assert handler.execute_with_error_handling(timeouts, retry_on=TimeoutError) == "ok"
    refused = Flaky(1, ConnectionError("refused"))
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(refused, retry_on=(TimeoutError, KeyError))
    assert refused.calls == 1


def test_retry_on_predicate_and_give_up_on(handler: CoordinationErrorHandler) -> None:
    retryable = Flaky(2, ValueError("status 503"))
    assert (
        handler.execute_with_error_handling(retryable, retry_on=lambda e: "503" in str(e)) == "ok"
    )
    fatal = Flaky(2, ConnectionError("certificate expired"))
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            fatal, give_up_on=lambda e: "certificate" in str(e), operation_name="tls"
        )
    assert fatal.calls == 1


def test_retry_if_result_retries_then_returns_the_last_result(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    results = iter([None, None, "ready"])
    assert (
        handler.execute_with_error_handling(
            lambda: next(results), retry_if_result=lambda r: r is None, operation_name="poll"
        )
        == "ready"
    )
    assert len(clock.sleeps) == 2
    never = iter([None] * 10)
    assert (
        handler.execute_with_error_handling(
            lambda: next(never), retry_if_result=lambda r: r is None, max_retries=2
        )
        is None
    )


def test_retry_if_result_on_a_decorated_function(handler: CoordinationErrorHandler) -> None:
    results = iter([0, 0, 5])

    def poll() -> int:
        return next(results)

    wrapped = handler.decorate(poll, retry_if_result=lambda r: r == 0)
    assert wrapped() == 5
    assert (
        handler.get_error_report()["operations"][
            "test_retry_if_result_on_a_decorated_function.<locals>.poll"
        ]["retries"]
        == 2
    )


class RetryAfterError(Exception):
    def __init__(self, retry_after: object) -> None:
        super().__init__("slow down")
        self.retry_after = retry_after


def test_retry_after_sets_the_next_wait(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    flaky = Flaky(1, RetryAfterError(7.5))
    assert handler.execute_with_error_handling(flaky) == "ok"
    assert clock.sleeps == [7.5]


def test_retry_after_longer_than_max_delay_gives_up(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    flaky = Flaky(1, RetryAfterError("120"))
    with pytest.raises(RetryAfterError):
        handler.execute_with_error_handling(flaky, max_delay=60.0)
    assert flaky.calls == 1
    assert clock.sleeps == []


def test_retry_after_values() -> None:
    assert retry_after_seconds(RetryAfterError(3)) == 3.0
    assert retry_after_seconds(RetryAfterError(" 4 ")) == 4.0
    assert retry_after_seconds(RetryAfterError(-2)) == 0.0
    assert retry_after_seconds(RetryAfterError("soon")) is None
    assert retry_after_seconds(ValueError()) is None
    when = datetime.now(UTC) + timedelta(seconds=30)
    seconds = retry_after_seconds(RetryAfterError(format_datetime(when, usegmt=True)))
    assert seconds is not None
    assert 25 < seconds <= 30

    class Response:
        def __init__(self) -> None:
            self.headers = {"Retry-After": "2"}

    error = ValueError("429")
    error.response = Response()  # type: ignore[attr-defined]
    assert retry_after_seconds(error) == 2.0


def test_time_budget_stops_retrying(handler: CoordinationErrorHandler, clock: FakeClock) -> None:
    always = Flaky(100)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(always, max_retries=10, retry_time_budget=5.0)
    # waits 1 and 2 fit in 5 s; a third wait of 4 would end at 7 s
    assert clock.sleeps == [1.0, 2.0]
    assert always.calls == 3


def test_full_jitter_is_the_default_and_stays_under_the_wait(clock: FakeClock) -> None:
    handler = CoordinationErrorHandler({}, clock=clock, sleep=clock.sleep)
    assert handler.config.jitter == "full"
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            Flaky(100), max_retries=20, base_delay=1.0, circuit_breaker_threshold=100
        )
    assert all(0 <= wait <= min(60.0, 2.0**n) for n, wait in enumerate(clock.sleeps))
    assert len(set(clock.sleeps)) > 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": "3"}, "max_retries"),
        ({"jitter": "random"}, "jitter"),
        ({"base_delay": -1}, "base_delay"),
        ({"retry_on": "ConnectionError"}, "retry_on"),
        ({"timeout": 0}, "timeout"),
        ({"error_severity": "SEVERE"}, "error_severity"),
        ({"rate_limit": "lots"}, "rate_limit"),
        ({"max_retires": 3}, "max_retires"),
    ],
)
def test_bad_options_raise_config_error_naming_the_field(
    handler: CoordinationErrorHandler, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        handler.execute_with_error_handling(lambda: None, **overrides)
    assert caught.value.field == field
    assert field in str(caught.value)


def test_a_typo_gets_a_did_you_mean(handler: CoordinationErrorHandler) -> None:
    with pytest.raises(ConfigError, match="did you mean 'max_retries'"):
        handler.execute_with_error_handling(lambda: None, max_retires=3)
