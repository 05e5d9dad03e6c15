"""The shared breaker: atomic transitions in Redis, seen by every process at once."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from coordination import CircuitOpenError, StoreError
from coordination.backends.redis import RedisBackend, RedisCircuitBreaker
from coordination.error_handling import (
    BreakerSettings,
    BreakerTransition,
    CircuitBreakerBackend,
    CircuitState,
)
from fakes import FakeClock

pytestmark = pytest.mark.redis

SETTINGS = BreakerSettings(failure_threshold=3, open_seconds=10.0, half_open_calls=2)


class Process:
    """One simulated process: its own backend (connection) and breaker object."""

    def __init__(self, url: str, namespace: str, clock: FakeClock, **options: Any) -> None:
        self.backend = RedisBackend(url, namespace=namespace, redis_clock=clock, **options)
        self.transitions: list[BreakerTransition] = []
        self.breaker = self.backend.breaker(
            "payments", SETTINGS, clock=lambda: 0.0, on_transition=self.transitions.append
        )

    def call(self, ok: bool) -> str:
        try:
            self.breaker.acquire()
        except CircuitOpenError:
            return "rejected"
        if ok:
            self.breaker.record_success(0.0)
            return "ok"
        self.breaker.record_failure(0.0)
        return "failed"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def two(redis_url: str, namespace: str, clock: FakeClock, closing: Any) -> tuple[Process, Process]:
    a, b = Process(redis_url, namespace, clock), Process(redis_url, namespace, clock)
    closing(a.backend)
    closing(b.backend)
    return a, b


def test_is_a_circuit_breaker_backend(two: tuple[Process, Process]) -> None:
    assert isinstance(two[0].breaker, CircuitBreakerBackend)
    assert isinstance(two[0].breaker, RedisCircuitBreaker)
    assert two[0].breaker.blocking is True


def test_one_process_opens_it_and_the_other_rejects_its_next_call(
    two: tuple[Process, Process], clock: FakeClock
) -> None:
    a, b = two
    assert [a.call(False), b.call(False), a.call(False)] == ["failed"] * 3
    with pytest.raises(CircuitOpenError) as raised:
        b.breaker.acquire()
    assert raised.value.retry_after == pytest.approx(10.0)
    assert b.breaker.state is CircuitState.OPEN
    assert [t.new for t in a.transitions] == [CircuitState.OPEN]
    assert [(t.old, t.new) for t in b.transitions] == [(CircuitState.CLOSED, CircuitState.OPEN)]
    clock.now += 4
    assert b.breaker.snapshot().retry_after == pytest.approx(6.0)


def test_a_success_resets_the_consecutive_failure_count(two: tuple[Process, Process]) -> None:
    a, b = two
    assert [a.call(False), b.call(False), a.call(True), b.call(False), a.call(False)] == [
        "failed",
        "failed",
        "ok",
        "failed",
        "failed",
    ]
    assert a.breaker.state is CircuitState.CLOSED
    assert a.breaker.snapshot().consecutive_failures == 2


def test_half_open_admits_the_trial_calls_once_across_processes(
    two: tuple[Process, Process], clock: FakeClock
) -> None:
    a, b = two
    for _ in range(3):
        a.call(False)
    clock.now += 10
    a.breaker.acquire()  # trial 1 of 2
    b.breaker.acquire()  # trial 2 of 2
    with pytest.raises(CircuitOpenError):
        a.breaker.acquire()
    assert a.breaker.state is CircuitState.HALF_OPEN
    a.breaker.record_success(0.0)
    assert a.breaker.state is CircuitState.HALF_OPEN  # both trials must succeed
    b.breaker.record_success(0.0)
    assert a.breaker.state is CircuitState.CLOSED
    assert a.call(True) == "ok"


def test_a_failed_trial_reopens_and_a_released_trial_gives_its_slot_back(
    two: tuple[Process, Process], clock: FakeClock
) -> None:
    a, b = two
    for _ in range(3):
        a.call(False)
    clock.now += 10
    a.breaker.acquire()
    a.breaker.release()  # e.g. cancelled: not an outcome
    b.breaker.acquire()
    a.breaker.acquire()  # the released slot is usable again
    b.breaker.record_failure(0.0)
    assert b.breaker.state is CircuitState.OPEN
    a.breaker.record_success(0.0)  # admitted under the old half-open: ignored
    assert a.breaker.state is CircuitState.OPEN


def test_trial_slots_of_a_dead_process_reopen_the_breaker_at_their_deadline(
    two: tuple[Process, Process], clock: FakeClock
) -> None:
    a, b = two
    for _ in range(3):
        a.call(False)
    clock.now += 10
    a.breaker.acquire()
    a.breaker.acquire()  # both slots taken; then this process "dies"
    clock.now += 4
    with pytest.raises(CircuitOpenError) as waiting:
        b.breaker.acquire()
    assert waiting.value.retry_after == pytest.approx(6.0)  # until the trials' deadline
    clock.now += 6  # the trials' deadline (trial_timeout defaults to open_seconds)
    with pytest.raises(CircuitOpenError) as reopened:
        b.breaker.acquire()
    assert reopened.value.retry_after == pytest.approx(10.0)  # re-opened as of the deadline
    assert b.breaker.state is CircuitState.OPEN
    clock.now += 10
    assert b.call(True) == "ok"


def test_force_open_and_reset(two: tuple[Process, Process], clock: FakeClock) -> None:
    a, b = two
    a.breaker.force_open()
    clock.now += 1000
    assert b.call(True) == "rejected"
    assert b.breaker.snapshot().forced_open is True
    b.breaker.reset()
    assert a.call(True) == "ok"
    assert a.breaker.snapshot().state is CircuitState.CLOSED


@pytest.mark.parametrize("server_clock", [True, False])
def test_a_healthy_call_costs_one_round_trip_and_creates_no_key(
    redis_url: str, namespace: str, closing: Any, server_clock: bool
) -> None:
    # With the server's clock the acquire command is packed once; with an injected clock
    # it carries the time. Either way: one command on the wire per healthy call.
    redis_clock = None if server_clock else FakeClock(1_700_000_000.0)
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=redis_clock))
    breaker = backend.breaker("payments", SETTINGS, clock=lambda: 0.0, on_transition=lambda t: None)
    sent: list[bytes] = []
    original = backend.execute_packed

    def counting(packed: list[bytes]) -> Any:
        sent.append(b"".join(packed))
        return original(packed)

    backend.execute_packed = counting  # type: ignore[method-assign]
    for _ in range(5):
        breaker.acquire()
        breaker.record_success(0.0)
    evalsha = [command for command in sent if b"EVALSHA" in command]
    assert len(evalsha) == 5
    assert len(sent) <= 6  # at most one SCRIPT LOAD on a fresh server
    client = closing(redis.Redis.from_url(redis_url))
    assert client.exists(f"{namespace}:{{payments}}:breaker") == 0


def test_state_keys_expire_when_unused(
    redis_url: str, namespace: str, clock: FakeClock, closing: Any
) -> None:
    a = Process(redis_url, namespace, clock, key_ttl=30)
    closing(a.backend)
    a.call(False)
    ttl = closing(redis.Redis.from_url(redis_url)).pttl(f"{namespace}:{{payments}}:breaker")
    assert 0 < ttl <= 30_000


async def test_async_twins_share_the_same_state(
    two: tuple[Process, Process], clock: FakeClock
) -> None:
    a, b = two
    for _ in range(3):
        await a.breaker.aacquire()
        await a.breaker.arecord_failure(0.0)
    with pytest.raises(CircuitOpenError):
        b.breaker.acquire()
    clock.now += 10
    await b.breaker.aacquire()
    await b.breaker.arelease()
    await b.breaker.aacquire()
    await b.breaker.arecord_success(0.0)
    await a.breaker.aacquire()
    await a.breaker.arecord_success(0.0)
    assert a.breaker.state is CircuitState.CLOSED
    await a.backend.aclose()
    await b.backend.aclose()


def test_unreachable_redis_allow_and_raise_policies() -> None:
    allow = RedisBackend("redis://127.0.0.1:1/0", outage_policy="allow")
    breaker = allow.breaker("x", SETTINGS, clock=lambda: 0.0, on_transition=lambda t: None)
    for _ in range(5):
        breaker.acquire()
        breaker.record_failure(0.0)
    breaker.acquire()  # fail open: never rejects during the outage
    refuse = RedisBackend("redis://127.0.0.1:1/0", outage_policy="raise")
    breaker = refuse.breaker("x", SETTINGS, clock=lambda: 0.0, on_transition=lambda t: None)
    with pytest.raises(StoreError, match="Redis is unavailable"):
        breaker.acquire()


def test_unreachable_redis_falls_back_to_a_local_breaker(caplog: pytest.LogCaptureFixture) -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", reconnect_interval=60)
    breaker = backend.breaker("x", SETTINGS, clock=lambda: 0.0, on_transition=lambda t: None)
    for _ in range(3):
        breaker.acquire()
        breaker.record_failure(0.0)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # the local breaker still protects
    warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert "local fallback" in breaker.snapshot().backend


def test_nested_protected_calls_report_each_outcome(
    two: tuple[Process, Process], clock: FakeClock
) -> None:
    a, _ = two
    inner = a.backend.breaker("inner", SETTINGS, clock=lambda: 0.0, on_transition=lambda t: None)
    for _ in range(3):
        a.breaker.acquire()
        inner.acquire()  # replaces the outer call's ticket in this context
        inner.record_success(0.0)
        a.breaker.record_failure(0.0)  # still reported, against the latest generation
    assert a.breaker.state is CircuitState.OPEN
    assert inner.state is CircuitState.CLOSED
