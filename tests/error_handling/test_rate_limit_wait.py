"""rate_limit_wait: a call waits for its permit, in the order calls asked, before
RateLimitExceeded; sync and async, cancellation-aware, never blocking an event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from coordination import OperationCancelled, RateLimitExceeded
from coordination.error_handling import (
    Cancellation,
    CoordinationErrorHandler,
    Rate,
    RateLimit,
    handle_errors,
)
from fakes import FakeClock


def test_a_call_waits_for_its_permit_then_runs(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    calls: list[float] = []

    @handle_errors(handler=handler, operation_name="api", rate_limit="2/s", rate_limit_wait=1.0)
    def api() -> str:
        calls.append(clock.now)
        return "ok"

    assert [api() for _ in range(4)] == ["ok"] * 4
    # the burst of two at once, then one every half second, each waiting for its slot
    assert clock.sleeps == pytest.approx([0.5, 0.5])
    assert calls == pytest.approx([1000.0, 1000.0, 1000.5, 1001.0])
    assert handler.snapshot().operations["api"].rate_limited == 0


def test_a_call_that_would_wait_too_long_is_refused_at_once(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    def api() -> str:
        return "ok"

    options: dict[str, Any] = {"operation_name": "api", "rate_limit": "1/s;2/m"}
    for _ in range(2):
        handler.execute_with_error_handling(api, rate_limit_wait=2.0, **options)
    assert clock.sleeps == [1.0]
    with pytest.raises(RateLimitExceeded) as caught:  # the minute's two are spent
        handler.execute_with_error_handling(api, rate_limit_wait=2.0, **options)
    assert caught.value.retry_after == pytest.approx(29.0)  # the minute's: one per 30 s
    assert clock.sleeps == [1.0]  # no wait was spent on a call that could not get in
    assert handler.snapshot().operations["api"].rate_limited == 1


def test_waiters_are_served_in_the_order_they_asked() -> None:
    handler = CoordinationErrorHandler({"jitter": "none"})
    order: list[int] = []

    @handle_errors(handler=handler, operation_name="fifo", rate_limit="20/s", rate_limit_wait=5.0)
    def call(n: int) -> None:
        order.append(n)

    for _ in range(20):
        call(-1)  # spend the burst: every later call waits 50 ms after the one before
    del order[:]
    threads = []
    started = time.monotonic()
    for n in range(6):
        thread = threading.Thread(target=call, args=(n,))
        thread.start()
        threads.append(thread)
        time.sleep(0.005)  # each asks after the one before
    for thread in threads:
        thread.join(timeout=5)
    assert order == list(range(6))
    assert 0.25 <= time.monotonic() - started < 1.0  # six slots, 50 ms apart


def test_a_cancelled_scope_ends_the_wait_early() -> None:
    handler = CoordinationErrorHandler({"jitter": "none"})

    @handle_errors(handler=handler, operation_name="slow", rate_limit="1/5s", rate_limit_wait=30.0)
    def call() -> str:
        return "ran"

    assert call() == "ran"
    scope = Cancellation()
    threading.Timer(0.05, scope.cancel, args=("shutting down",)).start()
    started = time.monotonic()
    with scope, pytest.raises(OperationCancelled, match="shutting down"):
        call()
    assert time.monotonic() - started < 2.5  # not the 5 s until its permit
    assert handler.snapshot().operations["slow"].failures == 1


def test_a_scope_deadline_caps_the_wait(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    def api() -> str:
        return "ok"

    handler.execute_with_error_handling(api, operation_name="d", rate_limit="1/10s")
    with Cancellation(2.0, clock=clock), pytest.raises(RateLimitExceeded):
        handler.execute_with_error_handling(
            api, operation_name="d", rate_limit="1/10s", rate_limit_wait=30.0
        )
    assert clock.sleeps == []


async def test_async_waits_with_asyncio_and_the_loop_keeps_running() -> None:
    handler = CoordinationErrorHandler({"jitter": "none"})
    ticks = 0

    @handle_errors(handler=handler, operation_name="aio", rate_limit="10/s", rate_limit_wait=2.0)
    async def call(n: int) -> int:
        return n

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    results = await asyncio.gather(*(call(n) for n in range(15)))
    elapsed = time.monotonic() - started
    task.cancel()
    assert results == list(range(15))
    assert 0.4 <= elapsed < 1.5  # ten at once, then five 100 ms apart
    assert ticks >= 20  # the loop ran while the calls waited


async def test_async_reservations_in_order_and_a_refusal(clock: FakeClock) -> None:
    slept: list[float] = []

    async def no_time_passes(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    handler = CoordinationErrorHandler(
        {"jitter": "none"}, clock=clock, sleep=clock.sleep, async_sleep=no_time_passes
    )

    @handle_errors(
        handler=handler, operation_name="a", rate_limit=Rate(2, 1.0), rate_limit_wait=1.0
    )
    async def call() -> str:
        return "ok"

    answers = await asyncio.gather(*(call() for _ in range(5)), return_exceptions=True)
    assert answers[:4] == ["ok"] * 4
    assert isinstance(answers[4], RateLimitExceeded)  # its slot would be 1.5 s away
    assert slept == pytest.approx([0.5, 1.0])  # reserved in the order they asked


class PollingLimiter:
    """A limiter without acquire_quota: the wait polls try_acquire."""

    blocking = False

    def __init__(self, rate: RateLimit, clock: FakeClock) -> None:
        from coordination.error_handling import InMemoryRateLimiter

        self.rate = rate
        self._inner = InMemoryRateLimiter(rate, clock=clock)

    def try_acquire(self, key: str, cost: int = 1) -> float:
        return self._inner.try_acquire(key, cost)

    async def atry_acquire(self, key: str, cost: int = 1) -> float:
        return self.try_acquire(key, cost)


def test_a_limiter_without_quotas_is_polled(clock: FakeClock) -> None:
    handler = CoordinationErrorHandler(
        {"jitter": "none"},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
        rate_limiter_factory=lambda rate, clock: PollingLimiter(rate, clock),
    )
    for _ in range(3):
        handler.execute_with_error_handling(
            lambda: 1, operation_name="p", rate_limit="1/s", rate_limit_wait=1.0
        )
    assert clock.sleeps == pytest.approx([1.0, 1.0])
    with pytest.raises(RateLimitExceeded):
        handler.execute_with_error_handling(
            lambda: 1, operation_name="p", rate_limit="1/s", rate_limit_wait=0.5
        )


def test_the_setting_is_checked_like_every_other() -> None:
    from coordination import ConfigError, CoordinationConfig

    assert CoordinationConfig(rate_limit_wait=1.5).rate_limit_wait == 1.5
    with pytest.raises(ConfigError, match="invalid rate_limit_wait = -1"):
        CoordinationConfig(rate_limit_wait=-1)
    with pytest.raises(ConfigError, match="rate_limit_wait"):
        CoordinationErrorHandler().execute_with_error_handling(lambda: 1, rate_limit_wait="x")
