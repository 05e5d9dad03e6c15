"""``wait=``, ``on_retry`` hooks (per operation and process-wide), ``FallbackDetails`` and a
``retry_time_budget`` counted from the start of the call — sync and async."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import CircuitOpenError, ConfigError, RateLimitExceeded
from coordination.error_handling import (
    NO_RESULT,
    CircuitState,
    CoordinationErrorHandler,
    FallbackDetails,
    RetryDetails,
    get_on_retry_hooks,
    set_on_retry_hooks,
)
from coordination.testing import set_testing
from fakes import FakeClock


@pytest.fixture(autouse=True)
def _no_process_hooks() -> Iterator[None]:
    set_on_retry_hooks(None)
    yield
    set_on_retry_hooks(None)


def _handler(clock: FakeClock, **config: Any) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        {"jitter": "none", **config},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )


class Script:
    """Answers each call with the next item: an exception is raised, anything else
    returned; ``takes`` seconds of the fake clock pass during each call."""

    def __init__(self, clock: FakeClock, *answers: Any, takes: float = 0.0) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.takes = takes
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(args)
        self.clock.advance(self.takes)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def coroutine(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return self(*args, **kwargs)


# --- wait= -------------------------------------------------------------------------------


def test_wait_replaces_the_backoff_and_is_told_what_the_backoff_would_wait() -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=1.0)
    seen: list[RetryDetails] = []

    def wait(details: RetryDetails) -> float:
        seen.append(details)
        return 0.25 * details.attempt

    work = Script(clock, ConnectionError("a"), TimeoutError("b"), "ok")
    assert handler.execute_with_error_handling(work, max_retries=3, wait=wait) == "ok"
    assert clock.sleeps == [0.25, 0.5]
    assert [(d.attempt, d.delay, type(d.exception)) for d in seen] == [
        (1, 1.0, ConnectionError),
        (2, 2.0, TimeoutError),
    ]
    assert all(d.result is NO_RESULT and d.operation == "Script" for d in seen)
    assert handler.operation_stats()["Script"]["hook_errors"] == 0


def test_wait_none_is_the_backoff_and_a_retry_after_hint_comes_first() -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=1.0)
    asked: list[int] = []

    def wait(details: RetryDetails) -> float | None:
        asked.append(details.attempt)
        return None

    hinted = ConnectionError("slow down")
    hinted.retry_after = 7  # type: ignore[attr-defined]
    work = Script(clock, ConnectionError(), hinted, "ok")
    assert handler.execute_with_error_handling(work, max_retries=3, wait=wait) == "ok"
    assert clock.sleeps == [1.0, 7.0]
    assert asked == [1]  # not asked for the hinted error


def test_wait_sees_the_result_that_asked_for_a_retry() -> None:
    clock = FakeClock()
    handler = _handler(clock)
    seen: list[RetryDetails] = []

    def wait(details: RetryDetails) -> float:
        seen.append(details)
        return float(details.result["retry_in"])

    work = Script(clock, {"retry_in": 3}, {"retry_in": 0})
    handler.execute_with_error_handling(
        work, max_retries=1, wait=wait, retry_if_result=lambda r: r["retry_in"] > 0
    )
    assert clock.sleeps == [3.0]
    assert seen[0].exception is None
    assert seen[0].result == {"retry_in": 3}


def test_wait_is_capped_at_max_delay() -> None:
    clock = FakeClock()
    handler = _handler(clock, max_delay=5.0)
    work = Script(clock, ConnectionError(), "ok")
    assert handler.execute_with_error_handling(work, wait=lambda d: 3600) == "ok"
    assert clock.sleeps == [5.0]


BAD_ANSWERS = [-1.0, math.nan, math.inf, "2", True, [1], object()]


@pytest.mark.parametrize("answer", BAD_ANSWERS, ids=repr)
def test_a_bad_wait_answer_is_logged_counted_and_the_backoff_used(
    answer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=2.0)
    work = Script(clock, ConnectionError(), "ok")
    with caplog.at_level(logging.ERROR, logger="coordination"):
        assert handler.execute_with_error_handling(work, wait=lambda d: answer) == "ok"
    assert clock.sleeps == [2.0]
    assert handler.operation_stats()["Script"]["hook_errors"] == 1
    assert "not a finite number of seconds" in caplog.text


def test_a_wait_that_raises_is_logged_counted_and_the_backoff_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=2.0)

    def wait(details: RetryDetails) -> float:
        raise KeyError("bug in the wait")

    work = Script(clock, ConnectionError(), ConnectionError(), "ok")
    with caplog.at_level(logging.ERROR, logger="coordination"):
        assert handler.execute_with_error_handling(work, wait=wait) == "ok"
    assert clock.sleeps == [2.0, 4.0]
    assert handler.operation_stats()["Script"]["hook_errors"] == 2
    assert "bug in the wait" in caplog.text  # the traceback is logged


@given(
    answer=st.none()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-(10**6), 10**6)
    | st.booleans()
    | st.text(max_size=3),
    max_delay=st.floats(0.5, 100),
)
@settings(max_examples=200, deadline=None)
def test_wait_answers_property(answer: Any, max_delay: float) -> None:
    """Whatever it answers, the sleep is the answer capped at max_delay when it is a finite
    number of seconds >= 0, else the backoff's wait (and only then a hook error)."""
    clock = FakeClock()
    handler = _handler(clock, base_delay=0.5, max_delay=max_delay)
    work = Script(clock, ConnectionError(), "ok")
    assert handler.execute_with_error_handling(work, wait=lambda d: answer) == "ok"
    valid = (
        isinstance(answer, int | float) and not isinstance(answer, bool) and 0 <= answer < math.inf
    )
    expected = min(float(answer), max_delay) if valid else 0.5
    assert clock.sleeps == ([pytest.approx(expected)] if expected > 0 else [])  # 0: no sleep
    bad = answer is not None and not valid
    assert handler.operation_stats()["Script"]["hook_errors"] == int(bad)


def test_wait_is_not_asked_in_testing_mode() -> None:
    clock = FakeClock()
    handler = _handler(clock)
    asked: list[RetryDetails] = []
    with set_testing(True, attempts=3):
        work = Script(clock, ConnectionError(), ConnectionError(), "ok")
        assert handler.execute_with_error_handling(work, wait=asked.append) == "ok"
    assert asked == []
    assert clock.sleeps == []


@pytest.mark.parametrize("bad", ["1s", 3, object()], ids=repr)
def test_wait_must_be_a_callable(bad: object) -> None:
    with pytest.raises(ConfigError, match="invalid wait") as caught:
        CoordinationErrorHandler({}).decorate(lambda: 1, wait=bad)
    assert caught.value.field == "wait"


def test_an_async_wait_or_hook_is_refused_when_decorating() -> None:
    async def wait(details: RetryDetails) -> float:
        return 1.0

    handler = CoordinationErrorHandler({})
    with pytest.raises(ConfigError, match="invalid wait"):
        handler.decorate(lambda: 1, wait=wait)
    with pytest.raises(ConfigError, match="async hook would never be awaited"):
        handler.decorate(lambda: 1, on_retry=[print, wait])


async def test_wait_on_async_calls() -> None:
    clock = FakeClock()
    handler = _handler(clock)
    work = Script(clock, ConnectionError(), "ok")
    fetch = handler.decorate(work.coroutine, operation_name="fetch", wait=lambda d: 0.75)
    assert await fetch() == "ok"
    assert clock.sleeps == [0.75]


# --- on_retry -----------------------------------------------------------------------------


def test_on_retry_hooks_run_before_each_wait_own_then_process_wide() -> None:
    clock = FakeClock()
    events: list[str] = []
    handler = CoordinationErrorHandler(
        {"jitter": "none", "base_delay": 1.0},
        clock=clock,
        sleep=lambda s: events.append(f"sleep {s:g}"),
    )

    def own(d: RetryDetails) -> None:
        events.append(f"own #{d.attempt} {d.delay:g} {type(d.exception).__name__}")

    set_on_retry_hooks([lambda d: events.append(f"process #{d.attempt}")])
    work = Script(clock, ConnectionError(), OSError(), "ok")
    assert handler.execute_with_error_handling(work, max_retries=3, on_retry=own) == "ok"
    assert events == [
        "own #1 1 ConnectionError",
        "process #1",
        "sleep 1",
        "own #2 2 OSError",
        "process #2",
        "sleep 2",
    ]


def test_on_retry_takes_one_callable_or_a_sequence_and_a_failing_one_never_breaks_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=0)
    seen: list[int] = []

    def broken(d: RetryDetails) -> None:
        raise RuntimeError("hook bug")

    work = Script(clock, ConnectionError(), ConnectionError(), "ok")
    with caplog.at_level(logging.ERROR, logger="coordination"):
        result = handler.execute_with_error_handling(
            work, max_retries=2, on_retry=(broken, lambda d: seen.append(d.attempt))
        )
    assert result == "ok"
    assert seen == [1, 2]
    stats = handler.operation_stats()["Script"]
    assert (stats["retries"], stats["hook_errors"], stats["successes"]) == (2, 2, 1)
    assert "on_retry hook" in caplog.text
    assert "hook bug" in caplog.text


def test_the_hook_sees_elapsed_from_the_first_attempts_start_when_the_attempts_are_timed() -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=1.0)
    seen: list[float] = []
    work = Script(clock, ConnectionError(), ConnectionError(), "ok", takes=0.5)
    handler.execute_with_error_handling(
        work, max_retries=2, retry_time_budget=100, on_retry=lambda d: seen.append(d.elapsed)
    )
    # first attempt 0.5 s; then a wait of 1 s and an attempt of 0.5 s
    assert seen == [pytest.approx(0.5), pytest.approx(2.0)]


def test_a_hook_is_not_told_of_a_retry_the_open_breaker_refused() -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=0, circuit_breaker_threshold=1)
    seen: list[int] = []
    work = Script(clock, ConnectionError())
    with pytest.raises(CircuitOpenError):
        handler.execute_with_error_handling(
            work, max_retries=3, on_retry=lambda d: seen.append(d.attempt)
        )
    assert seen == []
    assert handler.operation_stats()["Script"]["retries"] == 0


def test_an_interrupted_hook_gives_the_half_open_trial_back() -> None:
    clock = FakeClock()
    options: dict[str, Any] = {
        "base_delay": 0,
        "circuit_breaker_threshold": 1,
        "circuit_breaker_timeout": 10.0,
        "half_open_calls": 2,
    }
    handler = _handler(clock)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            Script(clock, ConnectionError()), operation_name="op", max_retries=0, **options
        )
    breaker = handler.circuit_breaker("op")
    clock.advance(10.0)  # half-open: two trials

    def interrupt(d: RetryDetails) -> None:
        raise KeyboardInterrupt

    work = Script(clock, "again", "ok")
    with pytest.raises(KeyboardInterrupt):  # trial 1 succeeds, its retry's hook interrupts
        handler.execute_with_error_handling(
            work,
            operation_name="op",
            max_retries=1,
            retry_if_result=lambda r: r == "again",
            on_retry=interrupt,
            **options,
        )
    assert breaker.state is CircuitState.HALF_OPEN
    # the retry's permit (trial 2) was given back: the next call is that trial
    assert handler.execute_with_error_handling(work, operation_name="op", **options) == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_process_wide_hooks_are_checked_and_read_back() -> None:
    assert get_on_retry_hooks() == ()
    set_on_retry_hooks([print])
    assert get_on_retry_hooks() == (print,)
    set_on_retry_hooks(())
    assert get_on_retry_hooks() == ()
    for bad in ("print", [print, 3], 7):
        with pytest.raises(ConfigError, match=r"invalid on_retry .* set_on_retry_hooks\(\)"):
            set_on_retry_hooks(bad)  # type: ignore[arg-type]
    assert get_on_retry_hooks() == ()  # a refused list changes nothing


@given(
    outcomes=st.lists(st.sampled_from(["error", "retry-result", "ok"]), min_size=1, max_size=8),
    retries=st.integers(0, 6),
)
@settings(max_examples=100, deadline=None)
def test_hooks_are_told_of_every_retry_and_only_of_those(outcomes: list[str], retries: int) -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=0.1, circuit_breaker_threshold=100)
    answers: list[Any] = [
        ConnectionError() if o == "error" else ("again" if o == "retry-result" else "done")
        for o in outcomes
    ]
    work = Script(clock, *answers, "done")
    seen: list[RetryDetails] = []
    process: list[int] = []
    set_on_retry_hooks([lambda d: process.append(d.attempt)])
    try:
        handler.execute_with_error_handling(
            work,
            max_retries=retries,
            on_retry=seen.append,
            retry_if_result=lambda r: r == "again",
        )
    except ConnectionError:
        pass
    finally:
        set_on_retry_hooks(None)
    made = handler.operation_stats()["Script"]["retries"]
    assert [d.attempt for d in seen] == list(range(1, made + 1)) == process
    assert len(work.calls) == made + 1
    for details, answer in zip(seen, answers, strict=False):
        if isinstance(answer, Exception):
            assert details.exception is answer
            assert details.result is NO_RESULT
        else:
            assert details.exception is None
            assert details.result == answer
    assert [d.delay for d in seen] == clock.sleeps


async def test_on_retry_on_async_calls() -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=0.5)
    seen: list[tuple[int, float]] = []
    set_on_retry_hooks([lambda d: seen.append((d.attempt, d.delay))])
    work = Script(clock, ConnectionError(), ConnectionError(), "ok")
    result = await handler.aexecute_with_error_handling(
        work.coroutine, operation_name="fetch", max_retries=2
    )
    assert result == "ok"
    assert seen == [(1, 0.5), (2, 1.0)]


# --- retry_time_budget from the start of the call ----------------------------------------


def test_the_budget_counts_the_first_attempt_too() -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=1.0)
    work = Script(clock, ConnectionError(), takes=4.5)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(work, max_retries=10, retry_time_budget=5.0)
    # 4.5 s (the first attempt) + 1 s (the first wait) would end past 5 s: no retry
    # (counted from the first failure, as before, it would have fitted)
    assert clock.sleeps == []
    assert len(work.calls) == 1
    relaxed = Script(clock, ConnectionError(), takes=3.0)
    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(relaxed, max_retries=10, retry_time_budget=5.0)
    # 3 s + 1 s fits; at 7 s nothing fits any more
    assert clock.sleeps == [1.0]
    assert len(relaxed.calls) == 2


@pytest.mark.parametrize("window", [False, True], ids=["consecutive", "window"])
def test_a_plan_with_a_budget_keeps_the_breakers_fast_path(window: bool) -> None:
    """The guard reads the clock first (one read): the budget does not cost the loop."""
    clock = FakeClock()
    handler = _handler(clock, base_delay=1.0, circuit_breaker_threshold=2)
    options: dict[str, Any] = {"retry_time_budget": 5.0, "max_retries": 3}
    if window:
        options.update(failure_rate_threshold=0.9, minimum_calls=3, window_size=10)
    work = Script(clock, "ok", ConnectionError(), ConnectionError(), takes=2.0)
    call = handler.decorate(work, operation_name="op", **options)
    assert call.__code__.co_name == "from_start"  # type: ignore[attr-defined]
    assert call() == "ok"
    with pytest.raises(ConnectionError):
        call()  # 2 s + 1 s fits in 5 s; 5 s + 2 s does not
    assert clock.sleeps == [1.0]
    assert handler.circuit_breaker("op").state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):  # the open breaker refuses from the guard
        call()
    stats = handler.operation_stats()["op"]
    assert (stats["successes"], stats["failures"], stats["rejections"]) == (1, 2, 1)
    clock.advance(60.0)
    work.answers = ["ok"]
    assert call() == "ok"  # half-open: the full path, which times its attempts
    assert handler.circuit_breaker("op").state is CircuitState.CLOSED


async def test_an_async_plan_with_a_budget_keeps_the_breakers_fast_path() -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=1.0)
    work = Script(clock, "ok", ConnectionError(), ConnectionError(), takes=2.0)
    call = handler.decorate(work.coroutine, operation_name="aop", retry_time_budget=5.0)
    assert call.__code__.co_name == "from_start"  # type: ignore[attr-defined]
    assert await call() == "ok"
    with pytest.raises(ConnectionError):
        await call()  # 2 s + 1 s fits in 5 s; 5 s + 2 s does not
    assert clock.sleeps == [1.0]
    stats = handler.operation_stats()["aop"]
    assert (stats["successes"], stats["failures"], stats["retries"]) == (1, 1, 1)


async def test_the_budget_counts_the_first_attempt_on_async_calls() -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=1.0)
    work = Script(clock, ConnectionError(), takes=4.5)
    with pytest.raises(ConnectionError):
        await handler.aexecute_with_error_handling(
            work.coroutine, operation_name="w", max_retries=10, retry_time_budget=5.0
        )
    assert clock.sleeps == []
    assert len(work.calls) == 1


# --- FallbackDetails --------------------------------------------------------------------


def test_a_callable_fallback_is_given_the_call_details_after_the_retries() -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=0)
    seen: list[FallbackDetails] = []

    def fallback(details: FallbackDetails) -> str:
        seen.append(details)
        return f"cached {details.args[0]}"

    error = ConnectionError("down")
    price = handler.decorate(
        Script(clock, error), operation_name="price", max_retries=2, fallback=fallback
    )
    assert price("sku-1", currency="EUR") == "cached sku-1"
    (details,) = seen
    assert details == FallbackDetails(error, ("sku-1",), {"currency": "EUR"}, "price", 3)
    with pytest.raises(TypeError):
        details.kwargs["currency"] = "USD"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        details.attempts = 0  # type: ignore[misc]


def test_the_open_breaker_refusal_gives_the_details_too() -> None:
    clock = FakeClock()
    handler = _handler(clock, circuit_breaker_threshold=1)
    seen: list[FallbackDetails] = []

    def fallback(details: FallbackDetails) -> str:
        seen.append(details)
        return "stale"

    for door in ("decorate", "execute"):
        seen.clear()
        name = f"op-{door}"
        work = Script(clock, ConnectionError())
        if door == "decorate":
            call = handler.decorate(work, operation_name=name, max_retries=0, fallback=fallback)
            assert [call(1, k=2), call(1, k=2)] == ["stale", "stale"]
        else:
            for _ in range(2):
                assert (
                    handler.execute_with_error_handling(
                        work,
                        args=(1,),
                        kwargs={"k": 2},
                        operation_name=name,
                        max_retries=0,
                        fallback=fallback,
                    )
                    == "stale"
                )
        first, refused = seen
        assert (type(first.exception), first.attempts) == (ConnectionError, 1)
        assert (type(refused.exception), refused.attempts) == (CircuitOpenError, 0)
        assert (refused.args, dict(refused.kwargs), refused.operation) == ((1,), {"k": 2}, name)


def test_the_admissions_refusals_give_the_details() -> None:
    clock = FakeClock()
    handler = _handler(clock)
    seen: list[FallbackDetails] = []
    limited = handler.decorate(
        Script(clock, "ok"), operation_name="limited", rate_limit="1/m", fallback=seen.append
    )
    assert limited("a") == "ok"
    limited("b")
    (details,) = seen
    assert isinstance(details.exception, RateLimitExceeded)
    assert (details.args, details.attempts) == (("b",), 0)


async def test_an_async_fallback_is_awaited_with_the_details() -> None:
    clock = FakeClock()
    handler = _handler(clock, base_delay=0, max_concurrent=1)
    gate = asyncio.Event()

    async def slow(x: int) -> int:
        await gate.wait()
        return x

    async def fallback(details: FallbackDetails) -> str:
        await asyncio.sleep(0)
        return f"{type(details.exception).__name__} {details.args}"

    call = handler.decorate(slow, operation_name="slow", fallback=fallback)
    first = asyncio.ensure_future(call(1))
    await asyncio.sleep(0)
    assert await call(2) == "BulkheadFull (2,)"
    gate.set()
    assert await first == 1
