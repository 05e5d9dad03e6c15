"""A hung Redis (SIGSTOPped: connections accepted, commands never answered): one call at
a time probes it; every other call takes the outage policy at once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from coordination.backends.redis import RedisBackend, RedisGuard
from coordination.error_handling import BreakerSettings
from fakes import FakeClock

from .conftest import PrivateRedis

pytestmark = pytest.mark.redis

THREADS = 8
SOCKET_TIMEOUT = 0.25


def timed_calls(call: Any, threads: int = THREADS) -> list[float]:
    """Run ``call`` once in each of ``threads`` threads released together; their seconds."""
    start = threading.Barrier(threads)
    took: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        start.wait()
        began = time.perf_counter()
        call()
        with lock:
            took.append(time.perf_counter() - began)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return took


def test_only_one_call_probes_a_hung_redis(private_redis: PrivateRedis, closing: Any) -> None:
    clock = FakeClock(0.0)
    backend = closing(
        RedisBackend(
            private_redis.url,
            reconnect_interval=5.0,
            socket_timeout=SOCKET_TIMEOUT,
            clock=clock,
        )
    )
    breaker = backend.breaker(
        "hung", BreakerSettings(failure_threshold=1000), clock=clock, on_transition=lambda t: None
    )

    def protected_call() -> None:
        breaker.acquire()
        breaker.record_success(0.0)

    # warm up one connection per thread, so none is opened during the outage
    assert len(timed_calls(protected_call)) == THREADS
    private_redis.pause()
    try:
        protected_call()  # finds Redis hung: one socket timeout, then the outage policy
        assert backend.status()["breakers"]["available"] is False
        assert max(timed_calls(protected_call)) < SOCKET_TIMEOUT  # all on local state
        clock.now += 5.0  # the reconnect interval has passed: time for one probe
        took = timed_calls(protected_call)
        slow = [t for t in took if t >= SOCKET_TIMEOUT * 0.8]
        assert len(slow) == 1, took  # the probe; the others did not wait on Redis
        assert len(took) == THREADS
    finally:
        private_redis.resume()
    clock.now += 5.0
    protected_call()  # the next probe finds Redis back
    assert backend.status()["breakers"]["available"] is True


def test_the_probe_is_single_flight_and_expires() -> None:
    clock = FakeClock(0.0)
    guard = RedisGuard("breaker", reconnect_interval=0.0, clock=clock)
    guard.failed(ConnectionError("refused"))
    start = threading.Barrier(THREADS)
    answers: list[bool] = []

    def ask() -> None:
        start.wait()
        answers.append(guard.usable())

    workers = [threading.Thread(target=ask) for _ in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert answers.count(True) == 1  # even with no reconnect interval at all
    assert guard.usable() is False  # the probe is still out
    guard.failed(ConnectionError("still refused"))  # it answered: the next may probe
    assert guard.usable() is True
    clock.now += 60.0  # a probe that never reported back does not block Redis forever
    assert guard.usable() is True
    guard.succeeded()
    assert all(guard.usable() for _ in range(3))
