"""What counts against the breaker, on the Redis breaker: the same rules through the same
protocol (record_failure / record_success / release), sync and async, shared by handlers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coordination import CircuitOpenError
from coordination.error_handling import CircuitState, CoordinationErrorHandler

pytestmark = pytest.mark.redis


class Unavailable(Exception):
    pass


class NotFound(Exception):
    pass


class Declined(Exception):
    pass


@pytest.fixture
def config(config: dict[str, Any]) -> dict[str, Any]:
    return {
        **config,
        "trip_on": f"{__name__}.Unavailable",
        "breaker_ignores": [f"{__name__}.NotFound"],
    }


def raising(exc: Exception) -> None:
    raise exc


async def araising(exc: Exception) -> None:
    raise exc


def test_only_what_trip_on_names_opens_a_shared_breaker(config: dict[str, Any]) -> None:
    first = CoordinationErrorHandler(config)
    second = CoordinationErrorHandler(config)
    call = first.decorate(raising, operation_name="payments")
    other = second.decorate(raising, operation_name="payments")
    assert first.circuit_breaker("payments").snapshot().backend.startswith("redis")
    # ignored, then an answer of the dependency (a success): neither moves it toward OPEN
    for exc in (NotFound(), NotFound(), Declined(), Unavailable(), Declined()):
        with pytest.raises(type(exc)):
            call(exc)
    assert second.circuit_breaker("payments").state is CircuitState.CLOSED
    # two consecutive failures, one from each handler: open for both
    with pytest.raises(Unavailable):
        call(Unavailable())
    with pytest.raises(Unavailable):
        other(Unavailable())
    assert first.circuit_breaker("payments").state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        call(NotFound())


def test_a_result_that_trips_opens_the_redis_breaker_async(config: dict[str, Any]) -> None:
    handler = CoordinationErrorHandler(config)

    async def fetch() -> int:
        return 503

    async def main() -> list[Any]:
        ended: list[Any] = []
        for _ in range(3):
            try:
                ended.append(
                    await handler.aexecute_with_error_handling(
                        fetch, operation_name="inventory", trip_if_result=lambda r: r == 503
                    )
                )
            except CircuitOpenError as exc:
                ended.append(type(exc))
        return ended

    assert asyncio.run(main()) == [503, 503, CircuitOpenError]
    assert handler.circuit_breaker("inventory").state is CircuitState.OPEN


def test_ignored_errors_leave_the_redis_breaker_closed_async(config: dict[str, Any]) -> None:
    handler = CoordinationErrorHandler(config)
    call = handler.decorate(araising, operation_name="search")

    async def main() -> None:
        for _ in range(4):
            with pytest.raises(NotFound):
                await call(NotFound())
        for _ in range(2):
            with pytest.raises(Unavailable):
                await call(Unavailable())

    asyncio.run(main())
    assert handler.circuit_breaker("search").state is CircuitState.OPEN
    stats = handler.operation_stats()["search"]
    assert stats["failures"] == 6
