"""``Cancellation``: an abandoned call stops retrying, sync and async, by ``cancel()`` from
another thread or by the scope's deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import suppress
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from coordination import ConfigError, OperationCancelled
from coordination.error_handling import Cancellation, CircuitState, CoordinationErrorHandler
from fakes import FakeClock


def test_cancel_from_another_thread_stops_a_backoff_wait_at_once() -> None:
    handler = CoordinationErrorHandler({"base_delay": 30.0, "jitter": "none"})  # real sleep
    failed_once = threading.Event()
    calls = []

    def down() -> None:
        calls.append(1)
        failed_once.set()
        raise ConnectionError("down")

    outcome: dict[str, Any] = {}

    def caller() -> None:
        with Cancellation() as scope:
            outcome["scope"] = scope
            try:
                handler.execute_with_error_handling(down, max_retries=5)
            except Exception as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=caller)
    thread.start()
    assert failed_once.wait(5)
    started = time.monotonic()
    outcome["scope"].cancel("the request was abandoned")
    thread.join(10)
    assert time.monotonic() - started < 5  # not the 30 s backoff
    error = outcome["error"]
    assert isinstance(error, OperationCancelled)
    assert "the request was abandoned" in str(error)
    assert isinstance(error.__cause__, ConnectionError)
    assert len(calls) == 1  # no retry after the cancellation
    assert handler.get_error_report()["failed_operations"] == 1


def test_a_deadline_stops_retries_that_would_start_too_late(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    calls = []

    def down() -> None:
        calls.append(clock.now)
        raise ConnectionError("down")

    with Cancellation(timeout=2.5, clock=clock), pytest.raises(OperationCancelled) as stopped:
        # waits of 1 s, 2 s, 4 s (jitter off): the second would end past the deadline
        handler.execute_with_error_handling(down, max_retries=5, base_delay=1.0)
    assert len(calls) == 2
    assert clock.sleeps == [1.0]
    assert isinstance(stopped.value.__cause__, ConnectionError)


def test_an_elapsed_deadline_stops_before_the_next_attempt(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    calls = []

    def slow_failure() -> None:
        calls.append(1)
        clock.advance(5.0)  # the attempt itself outlives the deadline
        raise ConnectionError("down")

    with Cancellation(timeout=1.0, clock=clock), pytest.raises(OperationCancelled):
        handler.execute_with_error_handling(slow_failure, max_retries=3, base_delay=0)
    assert len(calls) == 1


def test_cancelling_stops_waiting_for_a_timed_attempt_without_blaming_the_dependency() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    gate = threading.Event()
    inside = threading.Event()

    def hung() -> str:
        inside.set()
        gate.wait(30)
        return "late"

    outcome: dict[str, Any] = {}
    scope = Cancellation()

    def caller() -> None:
        with scope:
            try:
                handler.execute_with_error_handling(
                    hung, operation_name="timed", timeout=30.0, circuit_breaker_threshold=1
                )
            except Exception as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=caller)
    thread.start()
    try:
        assert inside.wait(5)
        scope.cancel()
        thread.join(5)
        assert not thread.is_alive()
        assert isinstance(outcome["error"], OperationCancelled)
        assert handler.circuit_breaker("timed").state is CircuitState.CLOSED  # not a failure
        assert handler.operation_stats()["timed"]["timeouts"] == 0
    finally:
        gate.set()
        handler.close()


def test_nested_scopes_honour_the_outer_deadline(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    def down() -> None:
        raise ConnectionError("down")

    with Cancellation(timeout=1.5, clock=clock) as outer:
        with Cancellation(clock=clock) as inner:
            assert inner.remaining() == pytest.approx(1.5)
            with pytest.raises(OperationCancelled):
                handler.execute_with_error_handling(down, max_retries=5, base_delay=1.0)
        outer.cancel()
        assert inner.cancelled  # an inner scope is cancelled with its outer one


def test_outside_any_scope_nothing_changes(handler: CoordinationErrorHandler) -> None:
    def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(down, max_retries=2, base_delay=0)
    assert handler.get_error_report()["total_retries"] == 2


def test_a_cancelled_scope_ignores_the_fallback(handler: CoordinationErrorHandler) -> None:
    def down() -> None:
        raise ConnectionError("down")

    with Cancellation() as scope:
        scope.cancel()
        with pytest.raises(OperationCancelled):  # the caller asked to stop, not for a value
            handler.execute_with_error_handling(down, max_retries=2, base_delay=0, fallback=1)


async def test_the_async_path_cancels_an_attempt_at_the_scope_deadline() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    never = asyncio.Event()

    @handler.decorate
    async def hung() -> None:
        await never.wait()

    started = time.monotonic()
    with Cancellation(timeout=0.05), pytest.raises(OperationCancelled) as stopped:
        await hung()
    assert time.monotonic() - started < 5
    assert "deadline" in str(stopped.value)
    assert handler.circuit_breaker(hung.__qualname__).state is CircuitState.CLOSED


async def test_the_async_path_stops_retrying_when_cancelled(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    calls = []

    async def down() -> None:
        calls.append(1)
        raise ConnectionError("down")

    with Cancellation(timeout=2.5, clock=clock), pytest.raises(OperationCancelled) as stopped:
        await handler.aexecute_with_error_handling(down, max_retries=5, base_delay=1.0)
    assert len(calls) == 2
    assert isinstance(stopped.value.__cause__, ConnectionError)


async def test_an_infinite_timeout_is_no_deadline() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})

    async def ok() -> str:
        return "ok"

    with Cancellation(timeout=float("inf")) as scope:
        assert scope.remaining() is None
        assert await handler.aexecute_with_error_handling(ok) == "ok"
        assert handler.execute_with_error_handling(lambda: "ok", timeout=1.0) == "ok"
    handler.close()


def test_a_scope_cannot_be_entered_twice() -> None:
    scope = Cancellation()
    with scope, pytest.raises(RuntimeError, match="already entered"), scope:
        pass


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.integers(max_value=-1), st.just(float("nan")), st.booleans(), st.text()))
def test_a_bad_timeout_is_a_clear_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        Cancellation(timeout=bad)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    st.floats(0.1, 20.0),
    st.lists(st.sampled_from(["fail", "ok"]), min_size=1, max_size=8),
    st.floats(0.0, 3.0),
)
def test_no_attempt_starts_after_the_deadline(
    deadline: float, script: list[str], base_delay: float
) -> None:
    clock = FakeClock()
    handler = CoordinationErrorHandler(
        {"jitter": "none", "circuit_breaker_threshold": 100},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )
    started: list[float] = []
    outcomes = iter(script)

    def dependency() -> str:
        started.append(clock.now)
        clock.advance(0.25)
        if next(outcomes, "ok") == "fail":
            raise ConnectionError("down")
        return "ok"

    begin = clock.now
    with Cancellation(timeout=deadline, clock=clock), suppress(OperationCancelled, ConnectionError):
        handler.execute_with_error_handling(
            dependency, max_retries=len(script), base_delay=base_delay
        )
    assert started[0] == begin
    assert all(t < begin + deadline for t in started[1:])  # every retry began in time
