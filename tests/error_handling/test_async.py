"""The async pipeline: retries without blocking the loop, real cancellation on timeout."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from coordination import BulkheadFull, CircuitOpenError, OperationTimeout
from coordination.error_handling import (
    CircuitState,
    CoordinationErrorHandler,
    FallbackDetails,
    handle_errors,
)

from .conftest import FakeClock


async def test_async_retries_then_succeeds(
    handler: CoordinationErrorHandler, clock: FakeClock
) -> None:
    attempts = 0

    @handle_errors(handler=handler, max_retries=3)
    async def fetch(item: str) -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("reset")
        return item.upper()

    assert inspect.iscoroutinefunction(fetch)
    assert await fetch("a") == "A"
    assert attempts == 3
    assert clock.sleeps == [1.0, 2.0]
    stats = handler.operation_stats()[fetch.__qualname__]
    assert (stats["successes"], stats["retries"]) == (1, 2)


async def test_aexecute_with_error_handling_and_fallback(handler: CoordinationErrorHandler) -> None:
    async def down() -> str:
        raise ConnectionError("down")

    async def cached(details: FallbackDetails) -> str:
        return f"cached after {type(details.exception).__name__} x{details.attempts}"

    result = await handler.aexecute_with_error_handling(
        down, max_retries=1, base_delay=0, fallback=cached, operation_name="prices"
    )
    assert result == "cached after ConnectionError x2"
    assert handler.operation_stats()["prices"]["fallbacks"] == 1


async def test_sync_execute_refuses_a_coroutine_function(handler: CoordinationErrorHandler) -> None:
    async def work() -> None:
        return None

    with pytest.raises(TypeError, match="aexecute_with_error_handling"):
        handler.execute_with_error_handling(work)


async def test_async_timeout_really_cancels_the_attempt() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    cancelled = 0

    async def hang() -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    with pytest.raises(OperationTimeout) as caught:
        await handler.aexecute_with_error_handling(
            hang, max_retries=1, timeout=0.02, operation_name="hang"
        )
    assert isinstance(caught.value, TimeoutError)
    assert cancelled == 2  # both attempts were cancelled, not left running
    assert handler.operation_stats()["hang"]["timeouts"] == 2


async def test_an_operations_own_timeout_error_is_not_ours() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})

    async def own() -> None:
        raise TimeoutError("upstream said so")

    with pytest.raises(TimeoutError, match="upstream") as caught:
        await handler.aexecute_with_error_handling(own, max_retries=0, timeout=5.0)
    assert not isinstance(caught.value, OperationTimeout)


async def test_cancelling_the_caller_passes_through_uncounted() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    started = asyncio.Event()

    @handler.decorate
    async def slow() -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(slow())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert handler.get_error_report()["failed_operations"] == 0


async def test_async_open_breaker_rejects(handler: CoordinationErrorHandler) -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    wrapped = handler.decorate(down, max_retries=0, circuit_breaker_threshold=2)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await wrapped()
    with pytest.raises(CircuitOpenError):
        await wrapped()
    assert calls == 2
    assert handler.circuit_breaker(down.__qualname__).state is CircuitState.OPEN


async def test_async_bulkhead_limits_concurrency() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    running = peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    limited = handler.decorate(work, max_concurrent=2, bulkhead_wait=1.0)
    await asyncio.gather(*(limited() for _ in range(6)))
    assert peak == 2

    strict = handler.decorate(work, operation_name="strict", max_concurrent=1)
    results = await asyncio.gather(strict(), strict(), return_exceptions=True)
    assert sum(isinstance(r, BulkheadFull) for r in results) == 1
    assert handler.operation_stats()["strict"]["bulkhead_rejections"] == 1


async def test_a_cancelled_bulkhead_waiter_leaves_no_slot_behind() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    release = asyncio.Event()

    async def work() -> None:
        await release.wait()

    limited = handler.decorate(work, max_concurrent=1, bulkhead_wait=5.0)
    holder = asyncio.create_task(limited())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(limited())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    await asyncio.wait_for(limited(), 1.0)  # the slot is free again


async def test_async_methods_keep_working(handler: CoordinationErrorHandler) -> None:
    class Client:
        def __init__(self) -> None:
            self.base = 10

        @handle_errors(handler=handler, max_retries=0)
        async def get(self, n: int) -> int:
            return self.base + n

    assert await Client().get(5) == 15


async def test_an_object_with_an_async_call_is_awaited(handler: CoordinationErrorHandler) -> None:
    class Fetcher:
        def __init__(self) -> None:
            self.calls = 0

        async def __call__(self) -> str:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("first try fails")
            return "fetched"

    fetch = handler.decorate(Fetcher(), operation_name="fetcher")
    assert await fetch() == "fetched"
    assert handler.operation_stats()["fetcher"]["retries"] == 1


async def test_async_retry_if_result(handler: CoordinationErrorHandler, clock: FakeClock) -> None:
    results = iter(["pending", "pending", "done"])

    @handle_errors(handler=handler, retry_if_result=lambda r: r == "pending")
    async def status() -> str:
        return next(results)

    assert await status() == "done"
    assert clock.sleeps == [1.0, 2.0]
    assert handler.operation_stats()[status.__qualname__]["retries"] == 2


async def test_counts_are_exact_with_many_concurrent_tasks() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0, "circuit_breaker_threshold": 10**6})

    @handler.decorate
    async def work(n: int) -> int:
        await asyncio.sleep(0)
        if n % 5 == 0:
            raise ConnectionError(f"call {n} failed")
        return n

    results = await asyncio.gather(*(work(n) for n in range(1000)), return_exceptions=True)
    failed = sum(isinstance(r, ConnectionError) for r in results)
    report = handler.get_error_report()
    assert failed == 200
    assert (report["successful_operations"], report["failed_operations"]) == (800, 200)
    assert report["total_retries"] == 200 * 3
    assert report["errors_by_type"] == {"ConnectionError": 800}
