"""A Redis rate limit and a Redis breaker on one operation: one script, one round trip.

The reference is the two separate checks on the in-memory objects, in the pipeline's
order (rate limit, then breaker), with the one documented difference of the combined
check: a call refused by the breaker gives back the rate-limit budget it was counted for.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import CircuitOpenError, RateLimitExceeded, StoreError
from coordination.backends.redis import RedisBackend
from coordination.backends.redis._scripts import LIMITED_ACQUIRE
from coordination.error_handling import (
    BreakerSettings,
    CircuitBreaker,
    CoordinationErrorHandler,
    InMemoryRateLimiter,
    Rate,
)

from .conftest import PrivateRedis, sent_until_marker
from .test_breaker_model import Clock

pytestmark = pytest.mark.redis

# Times are a minute long, not a second: the limiter key's expiry runs on Redis's own
# clock while the test's stands still, so a loaded machine taking a real second between
# two steps must not drop it (it did, with "2/500ms").
_SCALE = 60
# (what the admitted call does, milliseconds that pass before it)
steps = st.lists(
    st.tuples(
        st.sampled_from(["success", "failure", "release"]),
        st.sampled_from([ms * _SCALE for ms in (0, 0, 0, 1, 150, 400, 1000, 2500)]),
    ),
    max_size=40,
)


def combined(breaker: Any, limiter: Any, key: str) -> tuple[str, float]:
    try:
        wait = breaker.acquire_with_limit(limiter, key)
    except CircuitOpenError as exc:
        return "open", exc.retry_after
    return ("limited", wait) if wait > 0 else ("admitted", 0.0)


def separate(breaker: CircuitBreaker, limiter: InMemoryRateLimiter, key: str) -> tuple[str, float]:
    spent_before = dict(limiter._tat)
    wait = limiter.try_acquire(key)
    if wait > 0:
        return "limited", wait
    try:
        breaker.acquire()
    except CircuitOpenError as exc:
        limiter._tat.clear()  # the combined check spends no budget on a refused call
        limiter._tat.update(spent_before)
        return "open", exc.retry_after
    return "admitted", 0.0


def finish(breaker: Any, what: str) -> None:
    if what == "success":
        breaker.record_success(0.0)
    elif what == "failure":
        breaker.record_failure(0.0)
    else:
        breaker.release()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps, st.integers(1, 3), st.integers(1, 2), st.sampled_from(["3/60s", "2/30s"]))
def test_same_answers_as_the_two_separate_checks(
    redis_url: str,
    namespace: str,
    script: list[tuple[str, int]],
    threshold: int,
    trials: int,
    rate_text: str,
) -> None:
    clock = Clock()
    config = BreakerSettings(
        failure_threshold=threshold, open_seconds=1.0 * _SCALE, half_open_calls=trials
    )
    rate = Rate.parse(rate_text)
    backend = RedisBackend(redis_url, namespace=namespace, redis_clock=clock)
    name = uuid.uuid4().hex
    shared = backend.breaker(name, config, clock=clock, on_transition=lambda t: None)
    shared_limiter = backend.rate_limiter(rate, clock=clock)
    assert shared.combines_with(shared_limiter)
    local = CircuitBreaker(name, config, clock=clock)
    local_limiter = InMemoryRateLimiter(rate, clock=clock)
    try:
        for what, elapsed in script:
            clock.ms += elapsed
            answer, wait = combined(shared, shared_limiter, name)  # a fresh key per example
            expected, expected_wait = separate(local, local_limiter, name)
            assert answer == expected, (what, local.state)
            assert wait == pytest.approx(expected_wait, abs=2e-3)
            if answer == "admitted":
                finish(shared, what)
                finish(local, what)
            assert shared.state is local.state
    finally:
        backend.close()


def test_a_rate_limit_refusal_takes_no_half_open_trial_slot(
    redis_url: str, namespace: str, closing: Any
) -> None:
    clock = Clock()
    config = BreakerSettings(failure_threshold=1, open_seconds=1.0, half_open_calls=1)
    first = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=clock))
    other = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=clock))
    breaker = first.breaker("pay", config, clock=clock, on_transition=lambda t: None)
    limiter = first.rate_limiter(Rate.parse("1/s"), clock=clock)
    assert breaker.acquire_with_limit(limiter, "pay") == 0.0
    breaker.record_failure(0.0)  # OPEN for a second

    clock.ms += 1000  # the open timeout elapsed: one trial slot is free
    assert other.rate_limiter(Rate.parse("1/s"), clock=clock).try_acquire("pay") == 0.0
    assert breaker.acquire_with_limit(limiter, "pay") == pytest.approx(1.0)  # limited
    # the trial slot is still there: another process takes it, and only it
    trial_taker = other.breaker("pay", config, clock=clock, on_transition=lambda t: None)
    trial_taker.acquire()
    with pytest.raises(CircuitOpenError):
        trial_taker.acquire()


def test_a_breaker_refusal_spends_no_rate_limit_budget(
    redis_url: str, namespace: str, closing: Any
) -> None:
    clock = Clock()
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=clock))
    config = BreakerSettings(failure_threshold=1, open_seconds=30.0)
    breaker = backend.breaker("pay", config, clock=clock, on_transition=lambda t: None)
    limiter = backend.rate_limiter(Rate.parse("2/s"), clock=clock)
    breaker.force_open()
    for _ in range(5):
        with pytest.raises(CircuitOpenError):
            breaker.acquire_with_limit(limiter, "pay")
    assert [limiter.try_acquire("pay") for _ in range(3)] == [0.0, 0.0, 0.5]


async def test_async_answers_as_sync(redis_url: str, namespace: str, closing: Any) -> None:
    clock = Clock()
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=clock))
    config = BreakerSettings(failure_threshold=1, open_seconds=1.0)
    breaker = backend.breaker("pay", config, clock=clock, on_transition=lambda t: None)
    limiter = backend.rate_limiter(Rate.parse("2/s"), clock=clock)
    assert await breaker.aacquire_with_limit(limiter, "pay") == 0.0
    await breaker.arecord_success(0.0)
    assert await breaker.aacquire_with_limit(limiter, "pay") == 0.0
    await breaker.arecord_failure(0.0)
    assert await breaker.aacquire_with_limit(limiter, "pay") == pytest.approx(0.5)
    clock.ms += 500
    with pytest.raises(CircuitOpenError):
        await breaker.aacquire_with_limit(limiter, "pay")
    await backend.aclose()


# --- one round trip per healthy call, counted by the server ------------------------------


@contextmanager
def client_commands(url: str) -> Iterator[list[str]]:
    """The commands clients send to the server inside the block, as MONITOR sees them.

    Commands run by a script inside Redis (``client_type`` lua) are left out: they cost
    no round trip. The list is filled when the block ends.
    """
    seen: list[str] = []

    def echo(marker: str) -> None:
        with redis.Redis.from_url(url) as other:
            other.echo(marker)

    with redis.Redis.from_url(url) as client, client.monitor() as monitor:
        yield seen
        seen.extend(sent_until_marker(monitor, echo))


def handler_on(backend: RedisBackend) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        {"max_retries": 0},
        breaker_factory=backend.breaker,
        rate_limiter_factory=backend.rate_limiter,
    )


def test_one_round_trip_per_healthy_call(private_redis: PrivateRedis, closing: Any) -> None:
    backend = closing(RedisBackend(private_redis.url))
    handler = handler_on(backend)
    call = handler.decorate(lambda x: x * 2, operation_name="op", rate_limit="1000000/s")
    assert call(1) == 2  # loads the script and opens this thread's connection
    with client_commands(private_redis.url) as sent:
        assert [call(i) for i in range(50)] == [i * 2 for i in range(50)]
    assert sent == ["EVALSHA"] * 50
    assert handler.operation_stats()["op"]["successes"] == 51


async def test_one_round_trip_per_healthy_async_call(
    private_redis: PrivateRedis, closing: Any
) -> None:
    backend = closing(RedisBackend(private_redis.url))
    handler = handler_on(backend)

    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    call = handler.decorate(double, operation_name="op", rate_limit="1000000/s")
    assert await call(1) == 2
    with client_commands(private_redis.url) as sent:
        assert [await call(i) for i in range(20)] == [i * 2 for i in range(20)]
    assert sent == ["EVALSHA"] * 20
    await backend.aclose()


def test_an_open_breaker_under_a_handler_spends_no_budget(
    private_redis: PrivateRedis, closing: Any
) -> None:
    backend = closing(RedisBackend(private_redis.url))
    handler = handler_on(backend)
    calls: list[int] = []

    def work(x: int) -> int:
        calls.append(x)
        if x == 1:
            raise ConnectionError("down")
        return x

    call = handler.decorate(
        work, operation_name="op", rate_limit="2/m", circuit_breaker_threshold=1
    )
    with pytest.raises(ConnectionError):
        call(1)  # one of the two calls a minute spent; the breaker opens
    for x in (2, 3):
        with pytest.raises(CircuitOpenError):
            call(x)
    stats = handler.operation_stats()["op"]
    assert (stats["rejections"], stats["rate_limited"], calls) == (2, 0, [1])
    backend.breaker(
        "op", BreakerSettings(), clock=lambda: 0.0, on_transition=lambda t: None
    ).reset()
    assert call(4) == 4  # the refused calls left the second call of the minute
    with pytest.raises(RateLimitExceeded):
        call(5)


def test_a_bulkhead_between_them_keeps_the_two_checks_apart(
    private_redis: PrivateRedis, closing: Any
) -> None:
    backend = closing(RedisBackend(private_redis.url))
    call = handler_on(backend).decorate(
        lambda: "ok", operation_name="op", rate_limit="1000000/s", max_concurrent=4
    )
    assert call() == "ok"
    with client_commands(private_redis.url) as sent:
        assert [call() for _ in range(5)] == ["ok"] * 5
    assert sent == ["EVALSHA"] * 10  # limit, bulkhead (in process), breaker: in order


# --- Redis unavailable: the outage policy, never a broken call ---------------------------


@pytest.mark.parametrize("policy", ["local", "allow", "raise"])
def test_redis_down_falls_back_per_policy(
    private_redis: PrivateRedis, closing: Any, policy: str
) -> None:
    clock = Clock()
    backend = closing(RedisBackend(private_redis.url, outage_policy=policy, clock=clock))
    config = BreakerSettings(failure_threshold=5, open_seconds=30.0)
    breaker = backend.breaker("op", config, clock=clock, on_transition=lambda t: None)
    limiter = backend.rate_limiter(Rate.parse("2/s"), clock=clock)
    assert breaker.acquire_with_limit(limiter, "op") == 0.0
    breaker.record_success(0.0)
    private_redis.stop()
    if policy == "raise":
        with pytest.raises(StoreError, match="Redis is unavailable"):
            breaker.acquire_with_limit(limiter, "op")
        return
    answers = []
    for _ in range(3):
        wait = breaker.acquire_with_limit(limiter, "op")
        answers.append(wait)
        if wait == 0.0:
            breaker.record_success(0.0)
    assert backend.status()["breakers"]["available"] is False
    if policy == "allow":
        assert answers == [0.0, 0.0, 0.0]
    else:  # each process applies the limit on its own, from a whole burst
        assert answers[:2] == [0.0, 0.0]
        assert answers[2] > 0


def test_redis_down_under_a_handler_keeps_calls_working(
    private_redis: PrivateRedis, closing: Any
) -> None:
    backend = closing(RedisBackend(private_redis.url))
    handler = handler_on(backend)
    call = handler.decorate(lambda x: x + 1, operation_name="op", rate_limit="1000/s")
    assert call(1) == 2
    private_redis.stop()
    assert [call(i) for i in range(5)] == [1, 2, 3, 4, 5]
    with pytest.raises(RateLimitExceeded):
        limited = handler.decorate(lambda: None, operation_name="tight", rate_limit="1/m")
        limited()
        limited()


async def test_a_flushed_script_cache_is_refilled(
    private_redis: PrivateRedis, closing: Any
) -> None:
    backend = closing(RedisBackend(private_redis.url))
    call = handler_on(backend).decorate(lambda: "ok", operation_name="op", rate_limit="100/s")

    async def acall() -> str:
        return "ok"

    async_call = handler_on(backend).decorate(acall, operation_name="aop", rate_limit="100/s")
    with redis.Redis.from_url(private_redis.url) as admin:
        for _ in range(2):
            admin.script_flush()
            assert call() == "ok"
            admin.script_flush()
            assert await async_call() == "ok"
        assert admin.script_exists(LIMITED_ACQUIRE.sha) == [True]
    assert backend.status()["breakers"]["errors"] == 0
    await backend.aclose()
