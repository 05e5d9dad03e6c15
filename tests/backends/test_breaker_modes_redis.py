"""breaker_mode on the Redis breaker: metrics_only shares the state and never rejects,
disabled writes no key at all; force_open / reset through the handler reach Redis."""

from __future__ import annotations

from typing import Any

import pytest

from coordination import CircuitOpenError
from coordination.backends.redis import RedisCircuitBreaker
from coordination.error_handling import CircuitState, CoordinationErrorHandler
from coordination.error_handling._breaker_modes import DisabledBreaker, MetricsOnlyBreaker

pytestmark = pytest.mark.redis


def failing() -> None:
    raise ConnectionError("down")


async def afailing() -> None:
    raise ConnectionError("down")


def keys(redis_url: str, namespace: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(match=f"{namespace}:*"))
    finally:
        client.close()


def test_metrics_only_on_redis_shares_the_state_and_never_rejects(
    config: dict[str, Any],
) -> None:
    shadow = CoordinationErrorHandler({**config, "breaker_mode": "metrics_only"})
    normal = CoordinationErrorHandler(config)
    call = shadow.decorate(failing, operation_name="inventory")
    for _ in range(5):
        with pytest.raises(ConnectionError):
            call()
    breaker = shadow.circuit_breaker("inventory")
    assert isinstance(breaker, MetricsOnlyBreaker)
    assert isinstance(breaker.inner, RedisCircuitBreaker)
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.would_reject, snapshot.mode) == (
        CircuitState.OPEN,
        3,
        "metrics_only",
    )
    # the same shared breaker, read by a handler in the normal mode, rejects
    with pytest.raises(CircuitOpenError):
        normal.decorate(failing, operation_name="inventory")()


async def test_metrics_only_on_redis_async(config: dict[str, Any]) -> None:
    handler = CoordinationErrorHandler({**config, "breaker_mode": "metrics_only"})
    call = handler.decorate(afailing, operation_name="ainventory")
    for _ in range(4):
        with pytest.raises(ConnectionError):
            await call()
    snapshot = handler.circuit_breaker("ainventory").snapshot()
    assert (snapshot.state, snapshot.would_reject) == (CircuitState.OPEN, 2)


def test_disabled_on_redis_writes_nothing(
    config: dict[str, Any], redis_url: str, namespace: str
) -> None:
    handler = CoordinationErrorHandler({**config, "breaker_mode": "disabled"})
    call = handler.decorate(failing, operation_name="inventory")
    for _ in range(5):
        with pytest.raises(ConnectionError):
            call()
    assert isinstance(handler.circuit_breaker("inventory"), DisabledBreaker)
    assert keys(redis_url, namespace) == []
    report = handler.get_error_report()["circuit_breakers"]["inventory"]
    assert (report["mode"], report["state"]) == ("disabled", "CLOSED")


def test_force_open_and_reset_through_the_handler_reach_redis(config: dict[str, Any]) -> None:
    first = CoordinationErrorHandler(config)
    second = CoordinationErrorHandler(config)
    one = first.decorate(lambda: "ok", operation_name="payments")
    two = second.decorate(lambda: "ok", operation_name="payments")
    first.force_open("payments")
    with pytest.raises(CircuitOpenError):
        two()
    second.reset("payments")
    assert (one(), two()) == ("ok", "ok")
