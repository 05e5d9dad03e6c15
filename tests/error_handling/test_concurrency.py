"""Threads: exact counts with 8 threads on one breaker, and no lock held across the call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from coordination.error_handling import CircuitState, CoordinationErrorHandler

THREADS = 8


def hammer(target: Callable[[int], Any], per_thread: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(worker: int) -> None:
        start.wait()
        for i in range(per_thread):
            try:
                target(worker * per_thread + i)
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_counts_are_exact_with_8_threads() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0, "circuit_breaker_threshold": 10**6})

    @handler.decorate
    def work(n: int) -> int:
        if n % 10 == 0:
            raise ConnectionError(f"call {n} failed")
        return n

    per_thread = 5000
    errors = hammer(lambda n: work(n), per_thread)
    total = THREADS * per_thread
    failing = total // 10
    report = handler.get_error_report()
    # every multiple of 10 fails on each of its 4 attempts (max_retries 3)
    assert len(errors) == failing
    assert report["total_operations"] == total
    assert report["successful_operations"] == total - failing
    assert report["failed_operations"] == failing
    assert report["total_retries"] == failing * 3
    assert report["errors_by_type"] == {"ConnectionError": failing * 4}


def test_an_opening_breaker_counts_every_rejection_exactly() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    calls = 0
    lock = threading.Lock()

    def down(_: int) -> None:
        nonlocal calls
        with lock:
            calls += 1
        raise ConnectionError("down")

    wrapped = handler.decorate(down, max_retries=0, circuit_breaker_threshold=5)
    errors = hammer(wrapped, 500)
    report = handler.get_error_report()
    assert len(errors) == THREADS * 500
    assert report["failed_operations"] == THREADS * 500
    assert report["rejected_by_circuit_breaker"] == THREADS * 500 - calls
    assert 5 <= calls <= 5 + THREADS  # at most one in-flight call per thread got through
    assert handler.circuit_breaker(down.__qualname__).state is CircuitState.OPEN


@pytest.mark.parametrize("calls_per_thread", [3])
def test_no_lock_is_held_across_the_protected_call(calls_per_thread: int) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})

    @handler.decorate
    def slow(_: int) -> None:
        time.sleep(0.02)

    started = time.perf_counter()
    errors = hammer(slow, calls_per_thread)
    elapsed = time.perf_counter() - started
    assert errors == []
    # serialised calls would take 8 × 3 × 20 ms = 480 ms; concurrent ones about 60 ms
    assert elapsed < 0.3, f"took {elapsed:.3f}s: calls were serialised"
    assert handler.get_error_report()["successful_operations"] == THREADS * calls_per_thread
