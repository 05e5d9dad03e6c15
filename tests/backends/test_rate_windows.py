"""Several windows per key on Redis: one script, the in-memory limiter's answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination.backends.redis import RedisBackend
from coordination.error_handling import InMemoryRateLimiter, RateLimit
from fakes import FakeClock

pytestmark = pytest.mark.redis

limits = st.sampled_from(["3/s", "2/s;5/m", "4/500ms;6/2s;10/h", "1/s;2/10s"])
calls = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.001, 0.1, 0.25, 0.5, 1.0, 3.0, 61.0]),
        st.sampled_from([1, 1, 2]),
        st.sampled_from([0.0, 0.0, 0.0, 0.5, 2.0]),
    ),
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limits, calls)
def test_same_answers_and_quotas_as_the_in_memory_limiter(
    redis_url: str, namespace: str, text: str, script: list[tuple[float, int, float]]
) -> None:
    clock = FakeClock(1_700_000_000.0)
    limit = RateLimit.parse(text)
    backend = RedisBackend(redis_url, namespace=namespace, redis_clock=clock)
    try:
        shared = backend.rate_limiter(limit, clock=clock)
        # The same time, small enough for a float to hold it to the microsecond.
        local = InMemoryRateLimiter(limit, clock=lambda: clock.now - 1_700_000_000.0)
        key = f"k{clock.now}-{id(script)}"
        for elapsed, cost, max_wait in script:
            clock.now += elapsed
            if max_wait == 0.0 and cost == 1:
                assert shared.try_acquire(key) == pytest.approx(local.try_acquire(key), abs=1e-5)
                continue
            ours, theirs = (
                shared.acquire_quota(key, cost, max_wait),
                local.acquire_quota(key, cost, max_wait),
            )
            assert ours.retry_after == pytest.approx(theirs.retry_after, abs=1e-5)
            assert ours.delay == pytest.approx(theirs.delay, abs=1e-5)
            assert [w.remaining for w in ours.windows] == [w.remaining for w in theirs.windows]
            assert [w.reset for w in ours.windows] == pytest.approx(
                [w.reset for w in theirs.windows], abs=1e-5
            )
    finally:
        client = redis.Redis.from_url(redis_url)
        for stale in client.scan_iter(f"{namespace}:*"):
            client.delete(stale)
        client.close()
        backend.close()


def test_one_key_and_one_round_trip_hold_every_window(
    redis_url: str, namespace: str, closing: Any
) -> None:
    clock = FakeClock(1_700_000_000.0)
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=clock))
    limiter = backend.rate_limiter(RateLimit.parse("2/s;3/m"), clock=clock)
    sent: list[tuple[Any, ...]] = []
    execute = backend.execute

    def counting(*command: Any) -> Any:
        sent.append(command)
        return execute(*command)

    backend.execute = counting
    assert [limiter.try_acquire("api") for _ in range(2)] == [0.0, 0.0]
    assert len(sent) == 2  # one EVALSHA per check, whatever the number of windows
    clock.now += 1.0
    assert limiter.try_acquire("api") == 0.0
    clock.now += 1.0
    assert limiter.try_acquire("api") == pytest.approx(18.0)  # the minute's three are spent
    client = closing(redis.Redis.from_url(redis_url))
    [key] = list(client.scan_iter(f"{namespace}:*"))
    assert key.decode() == f"{namespace}:{{api}}:rate:2/1s;3/60s"
    assert len(client.get(key).split()) == 2  # one TAT per window
    assert 0 < client.pttl(key) <= 60_000


def test_a_single_window_keeps_the_key_and_value_it_always_had(
    redis_url: str, namespace: str, closing: Any
) -> None:
    clock = FakeClock(1_700_000_000.0)
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=clock))
    limiter = backend.rate_limiter(RateLimit.parse("4/s"), clock=clock)
    assert limiter.try_acquire("api") == 0.0
    client = closing(redis.Redis.from_url(redis_url))
    value = client.get(f"{namespace}:{{api}}:rate:4/1s")
    assert value is not None
    assert int(value) == 1_700_000_000_250_000


def test_async_quota_and_reservations(redis_url: str, namespace: str, closing: Any) -> None:
    clock = FakeClock(1_700_000_000.0)
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=clock))
    limiter = backend.rate_limiter(RateLimit.parse("2/s;5/m"), clock=clock)

    async def main() -> list[float]:
        delays = []
        for _ in range(4):
            quota = await limiter.aacquire_quota("api", max_wait=1.0)
            assert quota.allowed
            delays.append(quota.delay)
        refused = await limiter.aacquire_quota("api", max_wait=1.0)
        assert not refused.allowed
        assert refused.retry_after == pytest.approx(1.5)
        assert [w.remaining for w in refused.windows] == [0, 1]
        await backend.aclose()
        return delays

    assert asyncio.run(main()) == pytest.approx([0.0, 0.0, 0.5, 1.0])


def test_the_breaker_s_combined_check_counts_every_window(
    redis_url: str, namespace: str, closing: Any
) -> None:
    from coordination import CircuitOpenError
    from coordination.error_handling import BreakerSettings

    clock = FakeClock(1_700_000_000.0)
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=clock))
    breaker = backend.breaker(
        "pay", BreakerSettings(failure_threshold=1), clock=clock, on_transition=lambda t: None
    )
    limiter = backend.rate_limiter(RateLimit.parse("2/s;3/m"), clock=clock)
    for _ in range(2):
        assert breaker.acquire_with_limit(limiter, "pay") == 0.0
        breaker.record_success(0.0)
    assert breaker.acquire_with_limit(limiter, "pay") == pytest.approx(0.5)
    clock.now += 1.0
    assert breaker.acquire_with_limit(limiter, "pay") == 0.0
    breaker.record_failure(0.0)  # opens the breaker
    clock.now += 1.0
    # the minute's three are spent (one every 20 s at the sustained rate): refused by it
    assert breaker.acquire_with_limit(limiter, "pay") == pytest.approx(18.0)
    clock.now += 18.0
    breaker.force_open()
    with pytest.raises(CircuitOpenError):
        breaker.acquire_with_limit(limiter, "pay")
    # refused by the breaker: the permit it would have taken is still there
    assert limiter.acquire_quota("pay").allowed


def test_rate_limit_wait_reserves_permits_in_redis_across_handlers(
    redis_url: str, namespace: str, closing: Any
) -> None:
    from coordination import RateLimitExceeded
    from coordination.error_handling import CoordinationErrorHandler

    clock = FakeClock(1_700_000_000.0)
    slept: list[float] = []

    def handler() -> CoordinationErrorHandler:
        backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=clock))
        return CoordinationErrorHandler(
            {"jitter": "none"},
            clock=clock,
            sleep=slept.append,  # time does not pass: every reservation is still ahead
            breaker_factory=backend.breaker,
            rate_limiter_factory=backend.rate_limiter,
        )

    first, second = handler(), handler()
    options: dict[str, Any] = {
        "operation_name": "shared",
        "rate_limit": "2/s;100/h",
        "rate_limit_wait": 1.0,
    }
    for each in (first, second, first, second):
        each.execute_with_error_handling(lambda: 1, **options)
    # two at once, then the 3rd and 4th reserve the slots 0.5 s and 1 s ahead, in order
    assert slept == pytest.approx([0.5, 1.0])
    with pytest.raises(RateLimitExceeded) as caught:
        first.execute_with_error_handling(lambda: 1, **options)
    assert caught.value.retry_after == pytest.approx(1.5)  # the next free slot


async def test_async_rate_limit_wait_on_redis(redis_url: str, namespace: str) -> None:
    from coordination.error_handling import CoordinationErrorHandler

    clock = FakeClock(1_700_000_000.0)
    slept: list[float] = []

    async def no_time_passes(seconds: float) -> None:
        slept.append(seconds)

    backend = RedisBackend(redis_url, namespace=namespace, redis_clock=clock)
    handler = CoordinationErrorHandler(
        {"jitter": "none"},
        clock=clock,
        async_sleep=no_time_passes,
        breaker_factory=backend.breaker,
        rate_limiter_factory=backend.rate_limiter,
    )

    async def call() -> int:
        return 1

    try:
        for _ in range(3):
            await handler.aexecute_with_error_handling(
                call, operation_name="a", rate_limit="2/s", rate_limit_wait=1.0
            )
    finally:
        await backend.aclose()
        backend.close()
    assert slept == pytest.approx([0.5])


@pytest.mark.parametrize("policy", ["local", "allow", "raise"])
def test_quotas_while_redis_is_unreachable_follow_the_outage_policy(
    policy: str, closing: Any
) -> None:
    from coordination import StoreError
    from loopback import free_port

    backend = closing(
        RedisBackend(f"redis://127.0.0.1:{free_port()}/0", outage_policy=policy, socket_timeout=0.2)
    )
    limiter = backend.rate_limiter(RateLimit.parse("2/s;3/m"), clock=time_now)
    if policy == "raise":
        with pytest.raises(StoreError):
            limiter.acquire_quota("k")
        return
    quotas = [limiter.acquire_quota("k") for _ in range(3)]
    if policy == "allow":
        assert all(quota.allowed for quota in quotas)
        return
    # local: this process's own limiter answers, with its own quotas
    assert [quota.allowed for quota in quotas] == [True, True, False]
    assert [w.remaining for w in quotas[1].windows] == [0, 1]


def time_now() -> float:
    import time

    return time.monotonic()
