"""The Redis GCRA limiter: same answers as the in-memory one, shared across clients."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from coordination import ConfigError, StoreError
from coordination.backends.redis import RedisBackend
from coordination.error_handling import Rate
from fakes import FakeClock

from .conftest import errors_counted

pytestmark = pytest.mark.redis


@pytest.fixture
def make(closing: Any) -> Any:
    def backend(url: str, namespace: str, clock: FakeClock, **options: Any) -> RedisBackend:
        return closing(RedisBackend(url, namespace=namespace, redis_clock=clock, **options))

    return backend


def test_allows_a_burst_of_count_then_says_how_long_to_wait(
    redis_url: str, namespace: str, make: Any
) -> None:
    clock = FakeClock(1_700_000_000.0)
    limiter = make(redis_url, namespace, clock).rate_limiter(Rate.parse("4/s"), clock=clock)
    assert [limiter.try_acquire("api") for _ in range(4)] == [0.0] * 4
    assert limiter.try_acquire("api") == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.try_acquire("api") == 0.0
    assert limiter.try_acquire("other-key") == 0.0  # limits are per key


def test_matches_the_in_memory_limiter_step_by_step(
    redis_url: str, namespace: str, make: Any
) -> None:
    from coordination.error_handling import InMemoryRateLimiter

    clock = FakeClock(1_700_000_000.0)
    rate = Rate.parse("5/2s")
    shared = make(redis_url, namespace, clock).rate_limiter(rate, clock=clock)
    local = InMemoryRateLimiter(rate, clock=clock)
    steps = [0.0, 0.0, 0.1, 0.0, 0.05, 0.3, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 2.5, 0.0, 0.4]
    for i, step in enumerate(steps):
        clock.now += step
        cost = 2 if i % 5 == 4 else 1
        expected = local.try_acquire("k", cost)
        assert shared.try_acquire("k", cost) == pytest.approx(expected, abs=1e-5)


def test_two_processes_share_one_limit(redis_url: str, namespace: str, make: Any) -> None:
    clock = FakeClock(1_700_000_000.0)
    rate = Rate.parse("10/m")
    first = make(redis_url, namespace, clock).rate_limiter(rate, clock=clock)
    second = make(redis_url, namespace, clock).rate_limiter(rate, clock=clock)
    allowed = [(first if i % 2 else second).try_acquire("client-a") == 0.0 for i in range(14)]
    assert allowed.count(True) == 10
    assert allowed[10:] == [False] * 4


def test_the_key_expires_once_the_burst_allowance_is_whole(
    redis_url: str, namespace: str, closing: Any
) -> None:
    limiter = closing(RedisBackend(redis_url, namespace=namespace)).rate_limiter(
        Rate.parse("2/s"), clock=FakeClock(1_700_000_000.0)
    )
    assert limiter.try_acquire("idle") == 0.0
    client = closing(redis.Redis.from_url(redis_url))
    keys = list(client.scan_iter(match=f"{namespace}:*:rate:*"))
    assert len(keys) == 1
    assert 0 < client.pttl(keys[0]) <= 500


async def test_async_twin_shares_state_with_the_sync_path(
    redis_url: str, namespace: str, make: Any
) -> None:
    clock = FakeClock(1_700_000_000.0)
    backend = make(redis_url, namespace, clock)
    limiter = backend.rate_limiter(Rate.parse("2/s"), clock=clock)
    assert limiter.try_acquire("x") == 0.0
    assert await limiter.atry_acquire("x") == 0.0
    assert await limiter.atry_acquire("x") == pytest.approx(0.5)
    await backend.aclose()


def test_bad_cost_is_a_clear_error(redis_url: str, namespace: str, closing: Any) -> None:
    limiter = closing(RedisBackend(redis_url, namespace=namespace)).rate_limiter(
        Rate.parse("2/s"), clock=FakeClock(1_700_000_000.0)
    )
    with pytest.raises(ConfigError, match="cost"):
        limiter.try_acquire("x", 0)


@pytest.mark.parametrize(
    ("policy", "expected"), [("allow", [0.0, 0.0, 0.0]), ("local", [0.0, 0.0, 0.5])]
)
def test_an_unreachable_redis_falls_back(policy: str, expected: list[float]) -> None:
    clock = FakeClock(1_700_000_000.0)
    before = errors_counted("rate_limit")
    backend = RedisBackend(
        "redis://127.0.0.1:1/0", outage_policy=policy, reconnect_interval=60, clock=clock
    )
    limiter = backend.rate_limiter(Rate.parse("2/s"), clock=clock)
    assert [limiter.try_acquire("x") for _ in range(3)] == expected
    # one failed attempt, then the guard waits out the reconnect interval
    assert errors_counted("rate_limit") == before + 1
    assert backend.status()["rate_limits"]["available"] is False


def test_raise_policy_raises_store_error() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", outage_policy="raise")
    limiter = backend.rate_limiter(Rate.parse("2/s"), clock=FakeClock(1_700_000_000.0))
    with pytest.raises(StoreError, match="Redis is unavailable"):
        limiter.try_acquire("x")
