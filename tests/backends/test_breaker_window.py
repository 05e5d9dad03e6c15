"""The shared breaker's sliding windows, open-time backoff and round trips, in Redis.

The decisions themselves are checked against the in-memory breaker in
test_breaker_model.py; these tests pin what the model cannot see: several processes
sharing one window, what goes over the wire, what stays in Redis, the async twins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from coordination import CircuitOpenError, CoordinationErrorHandler
from coordination.backends.redis import RedisBackend
from coordination.error_handling import BreakerSettings, CircuitState, Rate
from fakes import FakeClock

pytestmark = pytest.mark.redis

WINDOW = BreakerSettings(
    failure_threshold=100,  # out of reach: only the window opens it
    failure_rate_threshold=0.5,
    window_size=10,
    minimum_calls=4,
    open_seconds=10.0,
)


def breaker_of(backend: RedisBackend, settings: BreakerSettings, name: str = "payments") -> Any:
    return backend.breaker(name, settings, clock=lambda: 0.0, on_transition=lambda t: None)


def call(breaker: Any, ok: bool, duration: float = 0.0) -> str:
    try:
        breaker.acquire()
    except CircuitOpenError:
        return "rejected"
    if ok:
        breaker.record_success(duration)
        return "ok"
    breaker.record_failure(duration)
    return "failed"


def counted(backend: RedisBackend) -> list[str]:
    """Every command ``backend`` sends from now on, by name (EVALSHA, ...)."""
    sent: list[str] = []
    execute_packed = backend.execute_packed

    def counting(packed: list[bytes]) -> Any:
        sent.append(b"".join(packed).split(b"\r\n")[2].decode())
        return execute_packed(packed)

    backend.execute_packed = counting  # type: ignore[method-assign]
    return sent


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def backends(
    redis_url: str, namespace: str, clock: FakeClock, closing: Any
) -> Callable[[], RedisBackend]:
    def make() -> RedisBackend:
        return closing(RedisBackend(redis_url, namespace=namespace, redis_clock=clock))

    return make


def test_two_processes_fill_one_window(backends: Callable[[], RedisBackend]) -> None:
    a, b = breaker_of(backends(), WINDOW), breaker_of(backends(), WINDOW)
    # a's successes reach Redis with a's next call; b's failures at once
    assert [call(a, True), call(a, True), call(b, False), call(a, True)] == ["ok"] * 2 + [
        "failed",
        "ok",
    ]
    assert b.snapshot().window_calls == 3  # a's last success is still a's to carry
    snapshot = a.snapshot()  # a report sends what this process carries first
    assert (snapshot.window_calls, snapshot.failure_rate) == (4, 0.25)
    assert [call(b, False), call(b, False)] == ["failed", "failed"]  # 3 of 6: 50%
    assert a.state is CircuitState.OPEN
    assert call(a, True) == "rejected"
    assert b.snapshot().retry_after == pytest.approx(10.0)


def test_a_closed_success_costs_no_round_trip_of_its_own(
    backends: Callable[[], RedisBackend],
) -> None:
    backend = backends()
    breaker = breaker_of(backend, WINDOW)
    sent = counted(backend)
    for _ in range(20):
        assert call(breaker, True) == "ok"
    assert sent.count("EVALSHA") == 20  # the acquires: each carries the success before it
    assert breaker.snapshot().window_calls == 10  # the window holds the last 10 of 20


def test_the_window_stays_bounded_in_redis(
    backends: Callable[[], RedisBackend], redis_url: str, namespace: str, clock: FakeClock
) -> None:
    counts = breaker_of(backends(), WINDOW, "counted")
    times = breaker_of(
        backends(),
        BreakerSettings(
            failure_threshold=10**6,
            failure_rate_threshold=0.9,
            window_type="time",
            window_size=5,
            minimum_calls=1000,
        ),
        "timed",
    )
    for i in range(300):
        clock.advance(0.25)
        call(counts, i % 3 != 0)
        call(times, False)  # failures land in their own second (successes: the next call's)
    client = redis.Redis.from_url(redis_url)
    try:
        # the ring (10 slots) or the buckets (5 seconds x 3 counts), and a dozen fields
        assert client.hlen(f"{namespace}:{{counted}}:breaker") <= 10 + 12
        assert client.hlen(f"{namespace}:{{timed}}:breaker") <= 15 + 12
    finally:
        client.close()
    snapshot = times.snapshot()
    # 4 calls a second in seconds 71..74 of the run, and the one at 75.0 s
    assert snapshot.window_calls == 17
    clock.advance(2.0)  # seconds 71 and 72 fall out: read so, before any call
    assert times.snapshot().window_calls == 9
    clock.advance(10.0)
    assert times.snapshot().window_calls == 0


def test_slow_calls_open_it_and_it_tracks_durations(
    backends: Callable[[], RedisBackend],
) -> None:
    settings = BreakerSettings(
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        window_size=4,
        minimum_calls=4,
        open_seconds=10.0,
    )
    breaker = breaker_of(backends(), settings)
    assert breaker.tracks_duration is True
    assert breaker_of(backends(), WINDOW, "other").tracks_duration is False
    assert [call(breaker, True, 0.1), call(breaker, True, 2.0), call(breaker, True, 3.0)] == [
        "ok"
    ] * 3
    assert call(breaker, True, 0.2) == "ok"  # 2 of 4 slow: opens when the next call carries it
    assert call(breaker, True) == "rejected"
    snapshot = breaker.snapshot()
    assert (snapshot.state, snapshot.slow_call_rate) == (CircuitState.OPEN, 0.5)


def test_a_retried_failure_is_one_round_trip(backends: Callable[[], RedisBackend]) -> None:
    backend = backends()
    handler = CoordinationErrorHandler(
        {"max_retries": 2, "base_delay": 0.0, "jitter": "none"},
        breaker_factory=backend.breaker,
        sleep=lambda s: None,
    )
    outcomes = iter([ConnectionError("down"), ConnectionError("down"), None])

    def flaky() -> str:
        error = next(outcomes)
        if error is not None:
            raise error
        return "ok"

    sent = counted(backend)
    call_ = handler.decorate(flaky, operation_name="flaky")
    assert call_() == "ok"
    # acquire; failure + acquire; failure + acquire; the success ending the streak
    assert sent.count("EVALSHA") == 4
    assert handler.snapshot().operations["flaky"].retries == 2


def test_a_retry_refused_by_the_breaker_its_failure_opened(
    backends: Callable[[], RedisBackend],
) -> None:
    backend = backends()
    handler = CoordinationErrorHandler(
        {"max_retries": 3, "base_delay": 0.0, "circuit_breaker_threshold": 2},
        breaker_factory=backend.breaker,
        sleep=lambda s: None,
    )

    def down() -> None:
        raise ConnectionError("down")

    sent = counted(backend)
    with pytest.raises(CircuitOpenError):
        handler.decorate(down, operation_name="down")()
    # acquire; failure + acquire; failure + acquire refused (five apart: 2 per failure)
    assert sent.count("EVALSHA") == 3
    assert handler.snapshot().operations["down"].breaker.state is CircuitState.OPEN


def test_open_time_grows_on_reopens_and_resets_when_closed(
    backends: Callable[[], RedisBackend], clock: FakeClock
) -> None:
    settings = BreakerSettings(
        failure_threshold=1,
        open_seconds=1.0,
        half_open_calls=1,
        open_backoff_multiplier=2.0,
        max_open_seconds=5.0,
    )
    a, b = breaker_of(backends(), settings), breaker_of(backends(), settings)
    assert call(a, False) == "failed"
    opened = []
    for _ in range(4):  # each failed trial re-opens it for longer: 2, 4, then capped at 5
        opened.append(b.snapshot().retry_after)
        clock.advance(opened[-1])
        assert call(b, False) == "failed"
    opened.append(a.snapshot().retry_after)
    assert opened == [pytest.approx(x) for x in (1.0, 2.0, 4.0, 5.0, 5.0)]
    with pytest.raises(CircuitOpenError) as refused:
        a.acquire()
    assert refused.value.retry_after == pytest.approx(5.0)
    clock.advance(5.0)
    assert call(a, True) == "ok"  # the trial succeeds: closed, the re-opens forgotten
    assert call(a, False) == "failed"
    assert b.snapshot().retry_after == pytest.approx(1.0)


def test_a_hung_trial_reopens_for_the_grown_time(
    backends: Callable[[], RedisBackend], clock: FakeClock
) -> None:
    settings = BreakerSettings(
        failure_threshold=1,
        open_seconds=1.0,
        half_open_calls=1,
        half_open_max_wait=0.5,
        open_backoff_multiplier=3.0,
    )
    a = breaker_of(backends(), settings)
    call(a, False)
    clock.advance(1.0)
    a.acquire()  # the trial; it never reports
    clock.advance(0.5)
    assert a.snapshot().retry_after == pytest.approx(3.0)
    with pytest.raises(CircuitOpenError) as refused:
        a.acquire()
    assert refused.value.retry_after == pytest.approx(3.0)


def test_a_rate_limit_refusal_keeps_the_carried_successes(
    backends: Callable[[], RedisBackend], clock: FakeClock
) -> None:
    backend = backends()
    breaker = breaker_of(backend, WINDOW)
    limiter = backend.rate_limiter(Rate.parse("1/s"), clock=clock)
    assert breaker.acquire_with_limit(limiter, "k") == 0.0
    breaker.record_success(0.0)
    assert breaker.acquire_with_limit(limiter, "k") > 0  # limited: the breaker not asked
    clock.advance(1.0)
    assert breaker.acquire_with_limit(limiter, "k") == 0.0
    breaker.record_success(0.0)
    assert breaker.snapshot().window_calls == 2


async def test_async_twins(backends: Callable[[], RedisBackend], clock: FakeClock) -> None:
    backend = backends()
    breaker = breaker_of(backend, WINDOW)
    for _ in range(2):
        await breaker.aacquire()
        await breaker.arecord_success(0.0)
    await breaker.aacquire()
    await breaker.arecord_failure_and_acquire(0.0)  # 1 of 3 failed, the 4th admitted
    await breaker.arecord_failure(0.0)  # 2 of 4: 50%
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await breaker.aacquire()
    await backend.aclose()


async def test_an_async_retried_failure_is_one_round_trip(
    redis_url: str, namespace: str, clock: FakeClock
) -> None:
    backend = RedisBackend(redis_url, namespace=namespace, redis_clock=clock)

    async def no_wait(seconds: float) -> None:
        return None

    handler = CoordinationErrorHandler(
        {"max_retries": 2, "base_delay": 0.0, "jitter": "none"},
        breaker_factory=backend.breaker,
        async_sleep=no_wait,
    )
    outcomes = iter([ConnectionError("down"), None])

    async def flaky() -> str:
        error = next(outcomes)
        if error is not None:
            raise error
        return "ok"

    client = backend.async_client()
    sent: list[str] = []
    evalsha = client.evalsha

    async def counting(*args: Any) -> Any:
        sent.append("EVALSHA")
        return await evalsha(*args)

    client.evalsha = counting  # type: ignore[method-assign]
    assert await handler.decorate(flaky, operation_name="aflaky")() == "ok"
    assert sent == ["EVALSHA"] * 3  # acquire; failure + acquire; the streak-ending success
    assert handler.snapshot().operations["aflaky"].retries == 1
    await backend.aclose()
    backend.close()
