"""A private redis-server stopped mid-run and restarted: calls keep working throughout."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis

from coordination import CircuitOpenError
from coordination.backends.redis import RedisBackend
from coordination.error_handling import BreakerSettings, CircuitState, Rate
from fakes import FakeClock

from .conftest import PrivateRedis, errors_counted

pytestmark = pytest.mark.redis

SETTINGS = BreakerSettings(failure_threshold=2, open_seconds=30.0)


def test_redis_stopped_and_restarted_mid_run(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture, closing: Any
) -> None:
    caplog.set_level(logging.INFO, logger="coordination.redis")
    clock = FakeClock(0.0)
    backend = closing(RedisBackend(private_redis.url, reconnect_interval=5.0, clock=clock))
    breaker = backend.breaker("db", SETTINGS, clock=clock, on_transition=lambda t: None)
    limiter = backend.rate_limiter(Rate.parse("1000/s"), clock=clock)
    other = closing(RedisBackend(private_redis.url)).breaker(
        "db", SETTINGS, clock=clock, on_transition=lambda t: None
    )

    breaker.acquire()
    breaker.record_failure(0.0)
    assert other.snapshot().consecutive_failures == 1  # shared while Redis is up
    assert limiter.try_acquire("client") == 0.0

    private_redis.stop()
    before = errors_counted("breaker")
    for _ in range(20):  # the protected calls go on, on local state
        breaker.acquire()
        breaker.record_success(0.0)
        assert limiter.try_acquire("client") == 0.0
    # one failed command, then no more attempts until the reconnect interval has passed
    assert errors_counted("breaker") == before + 1
    assert backend.status()["breakers"]["available"] is False
    outage_logs = [r for r in caplog.records if "Redis unavailable for breaker" in r.message]
    assert len(outage_logs) == 1
    # the local breaker still protects during the outage
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure(0.0)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    assert "local fallback" in breaker.snapshot().backend

    private_redis.start()
    clock.now += 5.0  # the reconnect interval elapses; redis-py reconnects by itself
    breaker.acquire()  # the restarted (empty) server says CLOSED
    breaker.record_failure(0.0)
    assert backend.status()["breakers"]["available"] is True
    assert any("available again for breaker" in r.message for r in caplog.records)
    breaker.acquire()
    breaker.record_failure(0.0)
    assert other.state is CircuitState.OPEN  # shared again: the other process sees it
    with pytest.raises(CircuitOpenError):
        other.acquire()
    assert closing(redis.Redis.from_url(private_redis.url)).dbsize() >= 1


async def test_async_calls_fall_back_too(private_redis: PrivateRedis, closing: Any) -> None:
    clock = FakeClock(0.0)
    backend = closing(RedisBackend(private_redis.url, reconnect_interval=5.0, clock=clock))
    breaker = backend.breaker("db", SETTINGS, clock=clock, on_transition=lambda t: None)
    limiter = backend.rate_limiter(Rate.parse("2/s"), clock=clock)
    await breaker.aacquire()
    await breaker.arecord_success(0.0)
    private_redis.stop()
    await breaker.aacquire()
    await breaker.arecord_failure(0.0)
    assert await limiter.atry_acquire("k") == 0.0
    assert backend.status()["breakers"]["available"] is False
    private_redis.start()
    clock.now += 5.0
    await breaker.aacquire()
    await breaker.arecord_success(0.0)
    assert backend.status()["breakers"]["available"] is True
    await backend.aclose()
