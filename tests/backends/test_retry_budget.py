"""The retry budget shared through Redis: handlers and processes on one Redis, one budget."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination.backends.redis import RedisBackend, RedisRetryBudget
from coordination.error_handling import BudgetSettings, CoordinationErrorHandler
from fakes import FakeClock

from .conftest import errors_counted

pytestmark = pytest.mark.redis

SRC = Path(__file__).resolve().parents[2] / "src"


def handler_on(backend: RedisBackend, clock: FakeClock) -> CoordinationErrorHandler:
    return CoordinationErrorHandler(
        {"base_delay": 0, "circuit_breaker_threshold": 1_000_000},
        clock=clock,
        sleep=clock.sleep,
        retry_budget_factory=backend.retry_budget,
    )


def down() -> None:
    raise ConnectionError("down")


def test_two_handlers_on_two_connections_share_one_budget(
    redis_url: str, namespace: str, closing: Any
) -> None:
    wall = FakeClock(1_700_000_000.0)
    clock = FakeClock()
    handlers = [
        handler_on(closing(RedisBackend(redis_url, namespace=namespace, redis_clock=wall)), clock)
        for _ in range(2)
    ]
    calls = [
        handler.decorate(down, max_retries=3, retry_budget=0.2, operation_name="dep")
        for handler in handlers
    ]
    for _ in range(250):
        for call in calls:
            with pytest.raises(ConnectionError):
                call()
    retries = [handler.operation_stats()["dep"]["retries"] for handler in handlers]
    # one budget for both: 20 % of the 500 calls plus the floor (10/s × 10 s), not twice
    assert sum(retries) <= 0.2 * 500 + 100
    assert sum(retries) >= 150
    assert min(retries) >= 50  # both pushed their calls and drew on the one budget
    budget = handlers[0]._operations["dep"].retry_budget
    assert isinstance(budget, RedisRetryBudget)
    granted, counted = budget.window()
    assert granted == sum(retries)
    assert counted <= 500


def test_coroutine_functions_share_it_too_and_ask_without_blocking_the_loop(
    redis_url: str, namespace: str, closing: Any
) -> None:
    wall = FakeClock(1_700_000_000.0)
    clock = FakeClock()
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=wall))
    handler = CoordinationErrorHandler(
        {"base_delay": 0, "circuit_breaker_threshold": 1_000_000},
        clock=clock,
        async_sleep=clock.async_sleep,
        retry_budget_factory=backend.retry_budget,
    )
    made = 0

    async def adown() -> None:
        nonlocal made
        made += 1
        raise ConnectionError("down")

    call = handler.decorate(
        adown, max_retries=3, retry_budget=0.2, retry_budget_min_per_second=0, operation_name="d"
    )

    async def main() -> None:
        for _ in range(200):
            with pytest.raises(ConnectionError):
                await call()
        await backend.aclose()

    asyncio.run(main())
    retries = handler.operation_stats()["d"]["retries"]
    assert 30 <= retries <= 40  # 20 % of 200 calls, counted from the first ask on
    assert made == 200 + retries


def test_processes_on_one_redis_share_one_budget(redis_url: str, namespace: str) -> None:
    """Two real processes, configured only with redis_url: one budget between them."""
    script = textwrap.dedent(
        f"""
        from coordination.error_handling import CoordinationErrorHandler
        handler = CoordinationErrorHandler({{
            "redis_url": {redis_url!r}, "redis_namespace": {namespace!r}, "base_delay": 0,
            "circuit_breaker_threshold": 1000000, "retry_budget": 0.1,
            "retry_budget_min_per_second": 1, "retry_budget_window": 60,
        }})
        def down():
            raise ConnectionError("down")
        call = handler.decorate(down, max_retries=3, operation_name="fleet")
        for _ in range(300):
            try:
                call()
            except ConnectionError:
                pass
        print(handler.operation_stats()["fleet"]["retries"])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env = {k: v for k, v in env.items() if not k.startswith("COORDINATION_")}
    workers = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=60)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    retries = [int(output.strip()) for output in outputs]
    # 10 % of 600 calls plus 1/s × 60 s between them (each alone would be allowed that)
    assert sum(retries) <= 0.1 * 600 + 60
    assert sum(retries) >= 60


@pytest.mark.parametrize(("policy", "retried"), [("allow", 3), ("raise", 0), ("local", 1)])
def test_an_unreachable_redis_follows_the_outage_policy(policy: str, retried: int) -> None:
    clock = FakeClock()
    before = errors_counted("retry_budget")
    backend = RedisBackend(
        "redis://127.0.0.1:1/0", outage_policy=policy, reconnect_interval=60, clock=clock
    )
    handler = handler_on(backend, clock)
    call = handler.decorate(
        down,
        max_retries=3,
        retry_budget=0.0,
        retry_budget_min_per_second=0.1,  # locally: one retry per 10 s
        operation_name="dep",
    )
    with pytest.raises(ConnectionError):
        call()
    assert handler.operation_stats()["dep"]["retries"] == retried
    assert errors_counted("retry_budget") == before + 1  # then the guard waits
    assert backend.status()["retry_budgets"]["available"] is False


def test_the_hash_stays_bounded_and_expires(redis_url: str, namespace: str, closing: Any) -> None:
    wall = FakeClock(1_700_000_000.0)
    clock = FakeClock()
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=wall))
    calls = 0
    budget = backend.retry_budget(
        "dep", BudgetSettings(0.5, 2.0, 1.0, 4), calls=lambda: calls, clock=clock
    )
    for _ in range(200):
        wall.now += 0.137
        clock.now += 0.137
        calls += 3
        budget.try_spend()
    client = closing(redis.Redis.from_url(redis_url))
    assert client.hlen(budget.key) <= 2 * (4 + 2)
    assert 0 < client.pttl(budget.key) <= 3600 * 1000


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    # every event asks (so pushes are at most a slice apart, none prorated)
    trace=st.lists(
        st.tuples(st.floats(0.0, 1.0), st.integers(0, 10), st.integers(1, 4)), max_size=40
    ),
    ratio=st.sampled_from([0.0, 0.2, 1.0]),
)
def test_no_shared_window_holds_more_than_its_share_of_pushed_calls_plus_the_floor(
    redis_url: str, namespace: str, trace: list[tuple[float, int, int]], ratio: float
) -> None:
    wall = FakeClock(1_700_000_000.0)
    backend = RedisBackend(redis_url, namespace=namespace, redis_clock=wall)
    window, width = 5.0, 1.0  # five slices
    try:
        calls = 0
        budget = backend.retry_budget(
            # a fresh key per example: id(trace) is reused once a list is freed, and a
            # reused key met the last example's budget in Redis (a flaky failure)
            f"h{uuid.uuid4().hex}",
            BudgetSettings(ratio, window, 0.4, 5),
            calls=lambda: calls,
            clock=wall,
        )
        ended: list[tuple[float, int]] = []
        granted: list[float] = []
        for gap, new_calls, asks in trace:
            wall.now += gap
            calls += new_calls
            ended.append((wall.now, calls))
            for _ in range(asks):
                if budget.try_spend():
                    granted.append(wall.now)
        slack = 0.002  # the script sees whole milliseconds
        for at in granted:
            start = at - window
            in_window = sum(1 for t in granted if start + slack < t <= at)
            # a push carries the calls since the previous one, at most a slice earlier
            before = max((c for t, c in ended if t < start - width - slack), default=0)
            assert in_window <= ratio * (dict(ended)[at] - before) + 0.4 * window + 1e-9
    finally:
        backend.close()


# --- one round trip with the breaker's own ----------------------------------------------


def counted(backend: RedisBackend) -> list[str]:
    """Every command ``backend`` sends from now on, by name (EVALSHA, ...)."""
    sent: list[str] = []
    execute_packed = backend.execute_packed

    def counting(packed: list[bytes]) -> Any:
        sent.append(b"".join(packed).split(b"\r\n")[2].decode())
        return execute_packed(packed)

    backend.execute_packed = counting  # type: ignore[method-assign]
    return sent


def shared_handler(backend: RedisBackend, clock: FakeClock, **config: Any) -> Any:
    return CoordinationErrorHandler(
        {"base_delay": 0, "circuit_breaker_threshold": 1000, **config},
        clock=clock,
        sleep=clock.sleep,
        async_sleep=clock.async_sleep,
        breaker_factory=backend.breaker,
        retry_budget_factory=backend.retry_budget,
    )


def test_a_retry_asks_the_breaker_and_the_budget_in_one_round_trip(
    redis_url: str, namespace: str, closing: Any
) -> None:
    wall, clock = FakeClock(1_700_000_000.0), FakeClock()
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=wall))
    handler = shared_handler(backend, clock)
    call = handler.decorate(down, max_retries=2, retry_budget=0.2, operation_name="dep")
    sent = counted(backend)
    with pytest.raises(ConnectionError):
        call()
    # acquire; failure + budget + acquire, twice; the last failure
    assert sent == ["EVALSHA"] * 4
    budget = handler._operations["dep"].retry_budget
    assert budget.window()[0] == 2
    assert handler.circuit_breaker("dep").snapshot().consecutive_failures == 3


def test_a_refused_retry_records_its_failure_and_admits_nothing(
    redis_url: str, namespace: str, closing: Any
) -> None:
    wall, clock = FakeClock(1_700_000_000.0), FakeClock()
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=wall))
    handler = shared_handler(backend, clock)
    call = handler.decorate(
        down, max_retries=3, retry_budget=0.0, retry_budget_min_per_second=0, operation_name="d"
    )
    sent = counted(backend)
    with pytest.raises(ConnectionError) as raised:
        call()
    assert sent == ["EVALSHA"] * 2  # acquire; failure + the budget's refusal
    assert "retry budget" in raised.value.__notes__[0]
    snapshot = handler.circuit_breaker("d").snapshot()
    assert snapshot.consecutive_failures == 1
    assert handler.operation_stats()["d"]["retry_budget_exhausted"] == 1


def test_a_retry_the_breaker_refuses_spends_no_budget(
    redis_url: str, namespace: str, closing: Any
) -> None:
    from coordination import CircuitOpenError

    wall, clock = FakeClock(1_700_000_000.0), FakeClock()
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=wall))
    handler = shared_handler(backend, clock, circuit_breaker_threshold=1)
    call = handler.decorate(down, max_retries=3, retry_budget=0.2, operation_name="d")
    with pytest.raises(CircuitOpenError):
        call()  # the first failure opens the breaker: its retry is refused
    assert handler._operations["d"].retry_budget.window()[0] == 0


def test_async_retries_share_the_round_trip_too(
    redis_url: str, namespace: str, closing: Any
) -> None:
    wall, clock = FakeClock(1_700_000_000.0), FakeClock()
    backend = closing(RedisBackend(redis_url, namespace=namespace, redis_clock=wall))
    handler = shared_handler(backend, clock)
    made = 0

    async def adown() -> None:
        nonlocal made
        made += 1
        raise ConnectionError("down")

    call = handler.decorate(
        adown,
        max_retries=3,
        retry_budget=0.0,
        retry_budget_min_per_second=0.2,  # two retries per 10 s
        operation_name="adown",
    )

    async def main() -> None:
        for _ in range(3):
            with pytest.raises(ConnectionError):
                await call()
        await backend.aclose()

    asyncio.run(main())
    assert made == 3 + 2
    stats = handler.operation_stats()["adown"]
    assert (stats["retries"], stats["retry_budget_exhausted"]) == (2, 3)
    assert handler.circuit_breaker("adown").snapshot().consecutive_failures == 5
