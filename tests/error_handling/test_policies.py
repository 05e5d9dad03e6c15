"""Sync timeout, bulkhead, fallback and the GCRA rate limit."""

from __future__ import annotations

import threading
import time

import pytest

from coordination import BulkheadFull, OperationTimeout, RateLimitExceeded
from coordination.error_handling import (
    CoordinationErrorHandler,
    InMemoryRateLimiter,
    Rate,
    RateLimiterBackend,
)

from .conftest import FakeClock


def test_sync_timeout_returns_at_the_deadline_and_discards_the_late_result() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    finished = threading.Event()

    def slow() -> str:
        time.sleep(0.2)
        finished.set()
        return "late"

    started = time.perf_counter()
    with pytest.raises(OperationTimeout) as caught:
        handler.execute_with_error_handling(slow, max_retries=0, timeout=0.03, operation_name="s")
    assert time.perf_counter() - started < 0.15
    assert isinstance(caught.value, TimeoutError)
    assert not finished.is_set()  # still running in its worker thread, result discarded
    assert handler.operation_stats()["s"]["timeouts"] == 1
    assert finished.wait(1.0)
    handler.close()


def test_sync_timeout_keeps_results_and_context() -> None:
    import contextvars

    request_id = contextvars.ContextVar("request_id", default="none")
    handler = CoordinationErrorHandler({"base_delay": 0})
    request_id.set("r-42")
    assert handler.execute_with_error_handling(lambda: request_id.get(), timeout=1.0) == "r-42"

    def own_timeout() -> None:
        raise TimeoutError("upstream")

    with pytest.raises(TimeoutError, match="upstream") as caught:
        handler.execute_with_error_handling(own_timeout, timeout=1.0, max_retries=0)
    assert not isinstance(caught.value, OperationTimeout)
    handler.close()


def test_bulkhead_rejects_beyond_the_limit_across_threads() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    inside = threading.Barrier(3)
    leave = threading.Event()

    def work() -> None:
        inside.wait()
        leave.wait(2)

    limited = handler.decorate(work, max_concurrent=2, operation_name="pool")
    threads = [threading.Thread(target=limited) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait()  # both calls are inside the bulkhead
    with pytest.raises(BulkheadFull, match="2 concurrent calls"):
        limited()
    leave.set()
    for thread in threads:
        thread.join()
    limited_again = handler.decorate(lambda: "free", max_concurrent=2, operation_name="pool")
    assert limited_again() == "free"
    stats = handler.operation_stats()["pool"]
    assert stats["bulkhead_rejections"] == 1
    assert stats["failures"] == 1


def test_bulkhead_wait_hands_the_slot_over() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    peak = running = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal peak, running
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    limited = handler.decorate(work, max_concurrent=2, bulkhead_wait=2.0)
    threads = [threading.Thread(target=limited) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2
    assert handler.operation_stats()[work.__qualname__]["successes"] == 6


def test_fallback_value_and_callable(handler: CoordinationErrorHandler) -> None:
    def down() -> None:
        raise ConnectionError("down")

    assert handler.execute_with_error_handling(down, max_retries=0, fallback=[]) == []
    assert (
        handler.execute_with_error_handling(
            down, max_retries=0, fallback=lambda details: f"default ({details.exception})"
        )
        == "default (down)"
    )


def test_fallback_serves_an_open_breaker(handler: CoordinationErrorHandler) -> None:
    calls = 0

    def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    wrapped = handler.decorate(down, max_retries=0, circuit_breaker_threshold=1, fallback="stale")
    assert [wrapped() for _ in range(3)] == ["stale"] * 3
    assert calls == 1
    stats = handler.operation_stats()[down.__qualname__]
    assert (stats["rejections"], stats["fallbacks"]) == (2, 3)


def test_gcra_allows_a_burst_then_the_sustained_rate(clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(Rate.parse("5/s"), clock=clock)
    assert isinstance(limiter, RateLimiterBackend)
    assert [limiter.try_acquire("k") for _ in range(5)] == [0.0] * 5
    assert limiter.try_acquire("k") == pytest.approx(0.2)
    assert limiter.try_acquire("other") == 0.0  # keys are independent
    clock.advance(0.2)
    assert limiter.try_acquire("k") == 0.0
    assert limiter.try_acquire("k") == pytest.approx(0.2)
    clock.advance(10)
    assert [limiter.try_acquire("k") for _ in range(6)].count(0.0) == 5


def test_gcra_stays_bounded_in_keys(clock: FakeClock) -> None:
    limiter = InMemoryRateLimiter(Rate.parse("1/s"), clock=clock, max_keys=10)
    for n in range(100):
        limiter.try_acquire(f"client-{n}")
    assert len(limiter._tat) <= 10


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [("100/s", 100, 1.0), ("20/m", 20, 60.0), ("5/10s", 5, 10.0), ("2 / 500ms", 2, 0.5)],
)
def test_rate_parsing(text: str, count: float, period: float) -> None:
    rate = Rate.parse(text)
    assert (rate.count, rate.period) == (count, period)


def test_rate_limit_through_the_handler(clock: FakeClock) -> None:
    handler = CoordinationErrorHandler({"rate_limit": "2/s"}, clock=clock, sleep=clock.sleep)
    assert handler.execute_with_error_handling(lambda: 1, operation_name="api") == 1
    assert handler.execute_with_error_handling(lambda: 2, operation_name="api") == 2
    with pytest.raises(RateLimitExceeded) as caught:
        handler.execute_with_error_handling(lambda: 3, operation_name="api")
    assert caught.value.retry_after == pytest.approx(0.5)
    assert handler.operation_stats()["api"]["rate_limited"] == 1
    clock.advance(0.5)
    assert handler.execute_with_error_handling(lambda: 4, operation_name="api") == 4


def test_a_bulkhead_waiter_gives_up_after_bulkhead_wait() -> None:
    handler = CoordinationErrorHandler({"base_delay": 0})
    inside = threading.Event()
    leave = threading.Event()

    def hold() -> None:
        inside.set()
        leave.wait(2)

    limited = handler.decorate(hold, max_concurrent=1, bulkhead_wait=0.05, operation_name="one")
    holder = threading.Thread(target=limited)
    holder.start()
    inside.wait(1)
    started = time.perf_counter()
    with pytest.raises(BulkheadFull):
        limited()
    assert 0.04 <= time.perf_counter() - started < 1.0
    leave.set()
    holder.join()
    assert limited() is None  # the waiter left the queue: the slot is free


def test_later_uses_cannot_change_an_operations_breaker(
    handler: CoordinationErrorHandler, caplog: pytest.LogCaptureFixture
) -> None:
    handler.execute_with_error_handling(lambda: 1, operation_name="inv", error_severity="HIGH")
    assert handler.circuit_breaker("inv").settings.failure_threshold == 5
    assert handler.operation_stats()["inv"]["severity"] == "HIGH"  # the accessor kept it
    assert not caplog.records
    handler.execute_with_error_handling(lambda: 1, operation_name="inv", max_retries=1)
    assert not caplog.records  # retry options belong to each use, not to the operation
    handler.execute_with_error_handling(
        lambda: 1, operation_name="inv", circuit_breaker_threshold=50
    )
    assert handler.circuit_breaker("inv").settings.failure_threshold == 5
    assert "different settings given later are ignored" in caplog.text


def test_refusals_are_counted_but_logged_once_a_while_and_never_alerted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Shedding refuses thousands of calls a second: each is counted, none is kept in
    # recent_errors or given to the alert hooks, and one line a while says how many.
    clock = FakeClock()
    alerts: list[object] = []
    handler = CoordinationErrorHandler(
        {"base_delay": 0, "error_severity": "CRITICAL"}, clock=clock, on_alert=alerts.append
    )
    call = handler.decorate(lambda: "ok", operation_name="q", rate_limit="1/h")
    assert call() == "ok"
    with caplog.at_level("WARNING", logger="coordination.error_handling"):
        for _ in range(50):
            with pytest.raises(RateLimitExceeded):
                call()
        clock.advance(11)
        with pytest.raises(RateLimitExceeded):
            call()
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 2
    assert lines[0].startswith("operation 'q': 1 call(s) refused, the last with RateLimitExceeded")
    assert lines[1].startswith("operation 'q': 50 call(s) refused in the last 11 s")
    stats = handler.operation_stats()["q"]
    assert (stats["rate_limited"], stats["failures"]) == (51, 51)
    assert alerts == []
    assert handler.get_error_report()["recent_errors"] == []
