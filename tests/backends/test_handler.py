"""CoordinationErrorHandler uses the Redis backend when config.redis_url is set."""

from __future__ import annotations

from typing import Any

import pytest

from coordination import CircuitOpenError, RateLimitExceeded
from coordination.backends.redis import RedisBackend, RedisCircuitBreaker
from coordination.error_handling import CoordinationErrorHandler

pytestmark = pytest.mark.redis


def test_two_handlers_share_the_breaker_through_redis(config: dict[str, Any]) -> None:
    calls: list[str] = []

    def flaky(who: str) -> None:
        calls.append(who)
        raise ConnectionError("dependency down")

    first = CoordinationErrorHandler(config).decorate(flaky, operation_name="inventory")
    second_handler = CoordinationErrorHandler(config)
    second = second_handler.decorate(flaky, operation_name="inventory")
    for _ in range(2):
        with pytest.raises(ConnectionError):
            first("first")
    with pytest.raises(CircuitOpenError):
        second("second")
    assert calls == ["first", "first"]  # the second handler never reached the dependency
    assert isinstance(second_handler.circuit_breaker("inventory"), RedisCircuitBreaker)
    report = second_handler.get_error_report()
    assert report["circuit_breakers"]["inventory"]["state"] == "OPEN"


def test_a_rate_limit_in_error_config_holds_across_handlers(config: dict[str, Any]) -> None:
    def ok() -> str:
        return "ok"

    first = CoordinationErrorHandler(config).decorate(ok, operation_name="api", rate_limit="3/m")
    second = CoordinationErrorHandler(config).decorate(ok, operation_name="api", rate_limit="3/m")
    assert [first(), second(), first()] == ["ok"] * 3
    with pytest.raises(RateLimitExceeded) as raised:
        second()
    assert 19 < raised.value.retry_after <= 20


async def test_async_functions_use_the_async_client(config: dict[str, Any]) -> None:
    async def fails() -> None:
        raise TimeoutError("slow dependency")

    handler = CoordinationErrorHandler(config)
    wrapped = handler.decorate(fails, operation_name="search")
    for _ in range(2):
        with pytest.raises(TimeoutError):
            await wrapped()
    with pytest.raises(CircuitOpenError):
        await wrapped()
    await RedisBackend.from_config(config).aclose()


def test_from_config_shares_one_backend_per_url_namespace_and_policy(
    config: dict[str, Any],
) -> None:
    assert RedisBackend.from_config(config) is RedisBackend.from_config(dict(config))
    other = RedisBackend.from_config({**config, "redis_outage_policy": "allow"})
    assert other is not RedisBackend.from_config(config)
    assert other.breaker_guard.policy.value == "allow"
