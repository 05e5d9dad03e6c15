"""track_performance: sync, async and methods, signatures kept, outcomes recorded."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

import pytest

import coordination.performance._decorator as decorator_module
from coordination._defaults import ProcessDefault
from coordination.performance import (
    CoordinationPerformanceMonitor,
    default_monitor,
    track_performance,
)

from .conftest import FakeClock

MakeMonitor = Callable[..., CoordinationPerformanceMonitor]


def test_sync_function_keeps_its_signature_and_records(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor()

    @track_performance("update_user_profile", monitor=monitor)
    def update_user_profile(user_id: str, data: dict[str, int], *, flag: bool = False) -> str:
        """Update it."""
        clock.advance(0.2)
        return user_id

    assert update_user_profile("u1", {"a": 1}) == "u1"
    assert update_user_profile.__name__ == "update_user_profile"
    assert update_user_profile.__doc__ == "Update it."
    assert str(inspect.signature(update_user_profile)) == (
        "(user_id: 'str', data: 'dict[str, int]', *, flag: 'bool' = False) -> 'str'"
    )
    stats = monitor.operation_stats()["update_user_profile"]
    assert (stats.count, stats.successes) == (1, 1)
    assert stats.total_seconds == pytest.approx(0.2)


def test_failures_are_counted_by_type_and_reraised(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor()
    error = LookupError("nope")

    @track_performance("find", monitor=monitor)
    def find() -> None:
        raise error

    with pytest.raises(LookupError) as caught:
        find()
    assert caught.value is error
    stats = monitor.operation_stats()["find"]
    assert (stats.failures, stats.errors_by_type) == (1, {"LookupError": 1})


async def test_coroutine_functions_are_timed_until_they_finish(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor()

    @track_performance(monitor=monitor)
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        clock.advance(0.05)
        if x < 0:
            raise ValueError(x)
        return x * 2

    assert inspect.iscoroutinefunction(fetch)
    assert await fetch(2) == 4
    with pytest.raises(ValueError):
        await fetch(-1)
    name = fetch.__qualname__
    assert name.endswith("<locals>.fetch")
    stats = monitor.operation_stats()[name]
    assert (stats.successes, stats.failures, stats.timed_count) == (1, 1, 2)
    assert stats.total_seconds == pytest.approx(0.1)


async def test_a_cancelled_coroutine_is_not_recorded(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor()
    started = asyncio.Event()

    @track_performance("waits", monitor=monitor)
    async def waits() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(waits())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert monitor.operation_stats()["waits"].count == 0


def test_methods_are_named_by_qualified_name(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor()

    class Service:
        def __init__(self) -> None:
            self.calls = 0

        @track_performance(monitor=monitor)
        def create_user(self, name: str) -> str:
            self.calls += 1
            return name

    service = Service()
    assert service.create_user("ann") == "ann"
    assert service.calls == 1
    (name,) = monitor.operation_stats()
    assert name.endswith("Service.create_user")


def test_bare_decorator_uses_the_shared_default_monitor(
    monkeypatch: pytest.MonkeyPatch, clean_environment: None
) -> None:
    monkeypatch.setattr(
        decorator_module, "_DEFAULT", ProcessDefault(CoordinationPerformanceMonitor)
    )

    @track_performance
    def ping() -> str:
        return "pong"

    assert ping() == "pong"
    assert default_monitor() is default_monitor()
    assert default_monitor().operation_stats()[ping.__qualname__].count == 1


def test_disabled_monitoring_returns_the_function_itself(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor({"enable_performance_monitoring": False})

    def plain() -> int:
        return 1

    assert track_performance("plain", monitor=monitor)(plain) is plain


def test_bad_arguments_are_named(make_monitor: MakeMonitor) -> None:
    with pytest.raises(TypeError, match="name must be a non-empty string"):
        track_performance("")
    with pytest.raises(TypeError, match="decorates callables"):
        track_performance("x", monitor=make_monitor())(42)  # type: ignore[arg-type]


def test_generator_functions_are_refused_with_a_clear_error() -> None:
    from collections.abc import AsyncIterator, Iterator

    def rows() -> Iterator[int]:
        yield 1

    async def arows() -> AsyncIterator[int]:
        yield 1

    for func in (rows, arows):
        with pytest.raises(TypeError, match=r"generator function .*record_operation"):
            track_performance("rows", monitor=CoordinationPerformanceMonitor())(func)
