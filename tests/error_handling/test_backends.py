"""The backend seams: a custom breaker or limiter plugs in through the handler's factories."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from coordination import CircuitOpenError, RateLimitExceeded
from coordination.error_handling import (
    BreakerSettings,
    BreakerSnapshot,
    CircuitBreaker,
    CircuitBreakerBackend,
    CircuitState,
    CoordinationErrorHandler,
    Rate,
    RateLimit,
    RateLimiterBackend,
    TransitionHook,
)

from .conftest import FakeClock


class RemoteBreaker:
    """A breaker that "does I/O": it records which protocol methods the pipeline used."""

    blocking = True

    def __init__(self, inner: CircuitBreaker) -> None:
        self.inner = inner
        self.name = inner.name
        self.settings = inner.settings
        self.tracks_duration = inner.tracks_duration
        self.used: list[str] = []

    @property
    def state(self) -> CircuitState:
        return self.inner.state

    def acquire(self) -> None:
        self.used.append("acquire")
        self.inner.acquire()

    def record_success(self, duration: float) -> None:
        self.used.append("record_success")
        self.inner.record_success(duration)

    def record_failure(self, duration: float) -> None:
        self.used.append("record_failure")
        self.inner.record_failure(duration)

    def release(self) -> None:
        self.used.append("release")
        self.inner.release()

    async def aacquire(self) -> None:
        self.used.append("aacquire")
        self.inner.acquire()

    async def arecord_success(self, duration: float) -> None:
        self.used.append("arecord_success")
        self.inner.record_success(duration)

    async def arecord_failure(self, duration: float) -> None:
        self.used.append("arecord_failure")
        self.inner.record_failure(duration)

    async def arelease(self) -> None:
        self.used.append("arelease")
        self.inner.release()

    def reset(self) -> None:
        self.inner.reset()

    def force_open(self) -> None:
        self.inner.force_open()

    def snapshot(self) -> BreakerSnapshot:
        return self.inner.snapshot()


def remote_factory(made: list[RemoteBreaker]) -> Callable[..., CircuitBreakerBackend]:
    def factory(
        name: str,
        settings: BreakerSettings,
        *,
        clock: Callable[[], float],
        on_transition: TransitionHook,
    ) -> CircuitBreakerBackend:
        breaker = RemoteBreaker(
            CircuitBreaker(name, settings, clock=clock, on_transition=on_transition)
        )
        made.append(breaker)
        return breaker

    return factory


def test_a_custom_breaker_is_used_and_satisfies_the_protocol(clock: FakeClock) -> None:
    made: list[RemoteBreaker] = []
    handler = CoordinationErrorHandler(
        {"base_delay": 0}, clock=clock, breaker_factory=remote_factory(made)
    )

    def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        handler.execute_with_error_handling(
            down, max_retries=1, circuit_breaker_threshold=2, operation_name="remote"
        )
    [breaker] = made
    assert isinstance(breaker, CircuitBreakerBackend)
    assert breaker.used == ["acquire", "record_failure", "acquire", "record_failure"]
    with pytest.raises(CircuitOpenError):
        handler.execute_with_error_handling(down, operation_name="remote")
    assert handler.get_error_report()["circuit_breakers"]["remote"]["state"] == "OPEN"


async def test_async_code_awaits_a_blocking_breaker(clock: FakeClock) -> None:
    made: list[RemoteBreaker] = []
    handler = CoordinationErrorHandler(
        {"base_delay": 0}, clock=clock, breaker_factory=remote_factory(made)
    )
    outcomes = iter([ConnectionError("down"), ValueError("bad input"), None])

    async def flaky() -> str:
        error = next(outcomes)
        if error is not None:
            raise error
        return "ok"

    assert await handler.aexecute_with_error_handling(flaky, operation_name="svc") == "ok"
    [breaker] = made
    assert breaker.used == [
        "aacquire",
        "arecord_failure",
        "aacquire",
        "arecord_failure",
        "aacquire",
        "arecord_success",
    ]


class CountingLimiter:
    blocking = False

    def __init__(self, rate: RateLimit) -> None:
        self.rate = rate
        self.keys: list[str] = []

    def try_acquire(self, key: str, cost: int = 1) -> float:
        self.keys.append(key)
        return 0.0 if len(self.keys) <= 2 else 9.0

    async def atry_acquire(self, key: str, cost: int = 1) -> float:
        return self.try_acquire(key, cost)


def test_a_custom_rate_limiter_is_used(clock: FakeClock) -> None:
    made: list[CountingLimiter] = []

    def factory(rate: RateLimit, *, clock: Callable[[], float]) -> RateLimiterBackend:
        limiter = CountingLimiter(rate)
        made.append(limiter)
        return limiter

    handler = CoordinationErrorHandler({}, clock=clock, rate_limiter_factory=factory)
    for _ in range(2):
        handler.execute_with_error_handling(lambda: 1, operation_name="api", rate_limit="10/s")
    with pytest.raises(RateLimitExceeded) as caught:
        handler.execute_with_error_handling(lambda: 1, operation_name="api", rate_limit="10/s")
    assert caught.value.retry_after == 9.0
    [limiter] = made
    assert isinstance(limiter, RateLimiterBackend)
    assert limiter.rate == RateLimit((Rate(10, 1.0),))  # factories are given a RateLimit
    assert limiter.keys == ["api", "api", "api"]
