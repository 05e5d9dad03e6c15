"""``wait=``, ``on_retry``, ``FallbackDetails`` and the time budget with the Redis breaker
(it does I/O: the async pipeline awaits its commands, so the steps yield them)."""

from __future__ import annotations

from typing import Any

import pytest

from coordination import CircuitOpenError
from coordination.error_handling import CoordinationErrorHandler, FallbackDetails, RetryDetails
from fakes import FakeClock

pytestmark = pytest.mark.redis


@pytest.fixture
def handler(redis_url: str, namespace: str) -> CoordinationErrorHandler:
    clock = FakeClock()
    return CoordinationErrorHandler(
        {
            "redis_url": redis_url,
            "redis_namespace": namespace,
            "circuit_breaker_threshold": 3,
            "jitter": "none",
        },
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
    )


def _outcomes(*answers: Any) -> Any:
    pending = list(answers)

    def call(*args: Any, **kwargs: Any) -> Any:
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return call


def test_hooks_waits_and_fallback_details_sync(handler: CoordinationErrorHandler) -> None:
    seen: list[tuple[int, float]] = []
    fallbacks: list[FallbackDetails] = []

    def fallback(details: FallbackDetails) -> str:
        fallbacks.append(details)
        return "stale"

    call = handler.decorate(
        _outcomes(ConnectionError(), ConnectionError(), ConnectionError(), "never"),
        operation_name="stock",
        max_retries=5,
        wait=lambda d: 0.5 * d.attempt,
        on_retry=lambda d: seen.append((d.attempt, d.delay)),
        retry_time_budget=60.0,
        fallback=fallback,
    )
    # three failures open the shared breaker: the next retry is refused, the fallback answers
    assert call("sku", warehouse=2) == "stale"
    assert seen == [(1, 0.5), (2, 1.0)]
    (details,) = fallbacks
    assert isinstance(details.exception, CircuitOpenError)
    assert (details.args, dict(details.kwargs), details.attempts) == (("sku",), {"warehouse": 2}, 3)


async def test_hooks_waits_and_fallback_details_async(handler: CoordinationErrorHandler) -> None:
    seen: list[RetryDetails] = []
    answers = _outcomes(ConnectionError(), "ok")

    async def fetch(sku: str) -> Any:
        return answers(sku)

    call = handler.decorate(
        fetch,
        operation_name="astock",
        max_retries=2,
        wait=lambda d: 0.25,
        on_retry=seen.append,
        fallback=lambda d: d.args,
    )
    assert await call("sku") == "ok"
    assert [(d.attempt, d.delay, type(d.exception)) for d in seen] == [(1, 0.25, ConnectionError)]
    broken = handler.decorate(
        _async(_outcomes(ConnectionError(), ConnectionError())),
        operation_name="abroken",
        max_retries=1,
        base_delay=0,
        fallback=lambda d: (d.args, d.attempts),
    )
    assert await broken(7) == ((7,), 2)


def _async(func: Any) -> Any:
    async def call(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return call
