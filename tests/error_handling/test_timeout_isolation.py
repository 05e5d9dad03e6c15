"""Sync timeouts with hung dependencies: per-operation workers, bulkhead slots held until
an abandoned attempt really ends, and worker threads that never keep a process alive.

Every hung call here blocks on a ``threading.Event`` the test sets at the end, so the
tests are deterministic and wait only for the (short) timeouts they configure.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import pytest

from coordination import BulkheadFull, OperationTimeout
from coordination.error_handling import CircuitState, CoordinationErrorHandler
from coordination.error_handling._workers import AttemptPool, default_workers

TIMEOUT = 0.05


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """What every hung call waits for; set at the end so no worker outlives the test."""
    event = threading.Event()
    yield event
    event.set()


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


class Dependency:
    """A callable that blocks on ``gate`` and records how many calls overlap."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.gate.wait(30)
            return "late"
        finally:
            with self.lock:
                self.running -= 1


def test_hung_calls_of_one_operation_never_starve_another(gate: threading.Event) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    hung = Dependency(gate)
    # more hung calls than the old shared pool had workers (cpu + 4)
    outcomes = []
    for _ in range(default_workers() + 4):
        try:
            handler.execute_with_error_handling(
                hung,
                operation_name="hung",
                max_retries=0,
                timeout=TIMEOUT,
                circuit_breaker_threshold=1000,
            )
        except (OperationTimeout, BulkheadFull) as exc:
            outcomes.append(type(exc))
    assert outcomes.count(OperationTimeout) == default_workers()
    assert outcomes.count(BulkheadFull) == 4  # its own workers are all busy: refused at once
    # another operation with a timeout is untouched: its attempts run on its own workers
    for n in range(20):
        assert (
            handler.execute_with_error_handling(
                lambda n=n: n, operation_name="healthy", timeout=TIMEOUT, max_retries=0
            )
            == n
        )
    assert handler.circuit_breaker("healthy").state is CircuitState.CLOSED
    stats = handler.operation_stats()
    assert stats["healthy"]["timeouts"] == 0
    assert stats["hung"]["bulkhead_rejections"] == 4
    # once the dependency answers, the hung operation's workers come back
    gate.set()
    pool = handler._operations["hung"].attempt_pool
    assert pool is not None
    wait_until(lambda: pool.busy == 0)
    assert (
        handler.execute_with_error_handling(
            hung, operation_name="hung", timeout=TIMEOUT, max_retries=0
        )
        == "late"
    )
    handler.close()


def test_the_bulkhead_slot_is_held_until_the_abandoned_attempt_ends(
    gate: threading.Event,
) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    dependency = Dependency(gate)
    call = handler.decorate(
        dependency, operation_name="one-at-a-time", max_concurrent=1, timeout=TIMEOUT
    )
    with pytest.raises(BulkheadFull) as refused:
        call()  # attempt 1 times out; its retry finds the slot still taken by attempt 1
    assert isinstance(refused.value.__cause__, OperationTimeout)
    for _ in range(4):  # later calls are refused too while the abandoned attempt runs
        with pytest.raises(BulkheadFull):
            call()
    assert dependency.most == 1
    assert dependency.calls == 1
    gate.set()
    bulkhead = handler._operations["one-at-a-time"].bulkhead
    assert bulkhead is not None
    wait_until(lambda: bulkhead.in_flight == 0)  # released by the worker, at the real end
    assert call() == "late"
    assert dependency.most == 1
    handler.close()


def test_a_retry_may_wait_for_the_slot_its_abandoned_attempt_frees(
    gate: threading.Event,
) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    attempts = []

    def flaky() -> str:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            gate.wait(0.2)  # hangs past the timeout, then ends
            return "too late"
        return "ok"

    call = handler.decorate(
        flaky, operation_name="waits", max_concurrent=1, bulkhead_wait=5.0, timeout=TIMEOUT
    )
    assert call() == "ok"  # the retry waited for attempt 1 to really end, then ran
    assert handler.operation_stats()["waits"]["timeouts"] == 1
    handler.close()


def test_time_queued_for_a_worker_does_not_count_against_the_attempt(
    gate: threading.Event,
) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    started = threading.Event()

    def first() -> str:
        started.set()
        gate.wait(30)
        return "first"

    options: dict[str, Any] = {
        "operation_name": "queued",
        "timeout": 0.1,
        "timeout_workers": 1,
        "bulkhead_wait": 10.0,
        "max_retries": 0,
    }
    results: dict[str, Any] = {}

    def run(name: str, func: Callable[[], str]) -> None:
        try:
            results[name] = handler.execute_with_error_handling(func, **options)
        except Exception as exc:
            results[name] = exc

    one = threading.Thread(target=run, args=("one", first))
    one.start()
    started.wait(5)
    two = threading.Thread(target=run, args=("two", lambda: "second"))
    two.start()
    one.join(5)
    assert isinstance(results["one"], OperationTimeout)
    pool = handler._operations["queued"].attempt_pool
    assert pool is not None
    wait_until(lambda: len(pool._slots._waiters) == 1)  # two waits for the only worker
    time.sleep(0.15)  # queued longer than its timeout
    gate.set()  # the worker frees up and picks up two's attempt, which is instant
    two.join(5)
    assert results["two"] == "second"
    handler.close()


def test_worker_threads_are_daemons_and_never_keep_the_process_alive() -> None:
    script = textwrap.dedent(
        """
        import threading
        from coordination import OperationTimeout
        from coordination.error_handling import CoordinationErrorHandler

        handler = CoordinationErrorHandler({"base_delay": 0})
        never = threading.Event()
        try:
            handler.execute_with_error_handling(never.wait, max_retries=0, timeout=0.05)
        except OperationTimeout:
            print("timed out", flush=True)
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "timed out"
    assert time.monotonic() - started < 30  # a non-daemon worker would hang here forever


def test_idle_workers_end_and_close_ends_them_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from coordination.error_handling import _workers

    pool = AttemptPool("p", workers=2)
    assert pool.run(lambda: 1, (), {}, timeout=1.0) == 1
    assert pool.run(lambda: 2, (), {}, timeout=1.0) == 2
    assert pool.threads == 1  # the idle worker was reused
    pool.close()
    wait_until(lambda: pool.threads == 0)

    monkeypatch.setattr(_workers, "KEEP_ALIVE", 0.02)
    idle = AttemptPool("idle", workers=2)
    assert idle.run(lambda: 3, (), {}, timeout=1.0) == 3
    wait_until(lambda: idle.threads == 0)  # idle past the keep-alive: the worker ended
    assert idle.run(lambda: 4, (), {}, timeout=1.0) == 4  # and a new one starts on demand
    idle.close()
    wait_until(lambda: idle.threads == 0)


def test_an_operation_timeout_inside_still_passes_through(gate: threading.Event) -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})

    def own() -> None:
        raise TimeoutError("the client's own timeout")

    with pytest.raises(TimeoutError, match="client's own") as caught:
        handler.execute_with_error_handling(own, timeout=1.0, max_retries=0)
    assert not isinstance(caught.value, OperationTimeout)
    handler.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4"])
def test_bad_timeout_workers_name_the_field(bad: object) -> None:
    from coordination import ConfigError

    handler = CoordinationErrorHandler()
    with pytest.raises(ConfigError, match="timeout_workers") as raised:
        handler.config_options(timeout_workers=bad)
    assert raised.value.field == "timeout_workers"


def test_under_load_the_dependency_never_sees_more_than_max_concurrent() -> None:
    """8 threads, attempts that outlive their timeout at random: however slots and workers
    change hands, the dependency never has more than ``max_concurrent`` calls at once."""
    import random

    handler = CoordinationErrorHandler({"base_delay": 0, "jitter": "none"})
    lock = threading.Lock()
    running = most = 0
    rng = random.Random(7)
    pauses = [rng.choice([0.0, 0.002, 0.02]) for _ in range(400)]

    def dependency(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            time.sleep(pauses[n % len(pauses)])
            return n
        finally:
            with lock:
                running -= 1

    call = handler.decorate(
        dependency,
        operation_name="loaded",
        max_concurrent=2,
        bulkhead_wait=2.0,
        timeout=0.01,
        max_retries=1,
        circuit_breaker_threshold=10**6,
    )
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        start.wait()
        for i in range(25):
            with suppress(OperationTimeout, BulkheadFull):
                call(worker * 25 + i)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert most <= 2
    pool = handler._operations["loaded"].attempt_pool
    assert pool is not None
    wait_until(lambda: pool.busy == 0)
    assert pool.threads <= 2
    bulkhead = handler._operations["loaded"].bulkhead
    assert bulkhead is not None
    assert bulkhead.in_flight == 0  # every slot came back
    handler.close()


def test_a_bulkhead_full_raised_inside_a_timed_attempt_is_its_own_error() -> None:
    """Only a refusal by the operation's own workers is a refusal; the same exception type
    raised by the attempt (a nested protected call) is an ordinary failed attempt."""
    handler = CoordinationErrorHandler({"base_delay": 0})
    attempts = []

    def nested() -> None:
        attempts.append(1)
        raise BulkheadFull("inner", 1)

    with pytest.raises(BulkheadFull):
        handler.execute_with_error_handling(
            nested, operation_name="outer", timeout=1.0, max_retries=1
        )
    assert len(attempts) == 2  # retried like any error that is not ours
    assert handler.operation_stats()["outer"]["bulkhead_rejections"] == 0
    handler.close()
