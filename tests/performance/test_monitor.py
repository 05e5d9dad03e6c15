"""CoordinationPerformanceMonitor: recording, failure accounting, windows, caps, report."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import ConfigError
from coordination.performance import CoordinationPerformanceMonitor, track_performance

from .conftest import FakeClock, timed

MakeMonitor = Callable[..., CoordinationPerformanceMonitor]


def test_record_operation_times_the_block_in_milliseconds(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor()
    for seconds in (0.010, 0.020, 0.030, 0.040):
        timed(monitor, clock, "create_user", seconds)
    report = monitor.get_performance_report()
    times = report["operations"]["create_user"]["response_times"]
    assert times["count"] == 4
    assert times["mean"] == pytest.approx(25.0)
    assert times["min"] == pytest.approx(10.0)
    assert times["max"] == pytest.approx(40.0)
    assert times["p50"] == pytest.approx(20.0, rel=0.01)
    assert times["p99"] == pytest.approx(30.0, rel=0.01)  # rank int(0.99 * 3) = 2
    assert report["response_times"]["mean"] == pytest.approx(25.0)
    assert report["success_rate"] == 1.0


def test_an_exception_is_a_failure_of_its_type_and_is_reraised_unchanged(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor()
    error = KeyError("missing")
    with pytest.raises(KeyError) as caught, monitor.record_operation("lookup"):
        clock.advance(0.5)
        raise error
    assert caught.value is error
    timed(monitor, clock, "lookup", 0.1)
    stats = monitor.operation_stats()["lookup"]
    assert (stats.count, stats.successes, stats.failures) == (2, 1, 1)
    assert stats.errors_by_type == {"KeyError": 1}
    assert stats.timed_count == 2
    assert stats.max_seconds == pytest.approx(0.5)
    entry = monitor.get_performance_report()["operations"]["lookup"]
    assert entry["error_rate"] == 0.5
    assert entry["success_rate"] == 0.5


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt / CancelledError: not the operation's failure."""


def test_a_base_exception_passes_through_unrecorded(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor()
    with pytest.raises(Interrupt), monitor.record_operation("op"):
        raise Interrupt
    assert monitor.operation_stats()["op"].count == 0


def test_success_failure_and_duration_recorded_elsewhere(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor()
    monitor.record_success("charge")
    monitor.record_failure("charge", TimeoutError("slow"))
    monitor.record_failure("charge", ConnectionError)
    monitor.record_failure("charge", "gateway said: card 4242 declined")  # the spec's str(e)
    monitor.record_failure("charge", "timeout")  # a short category is kept as given
    monitor.record_failure("charge", "HTTP 503")
    monitor.record_duration("charge", 0.2)
    monitor.record_duration("charge", 0.4, success=False, error=ValueError("bad"))
    stats = monitor.operation_stats()["charge"]
    assert (stats.count, stats.successes, stats.failures) == (8, 2, 6)
    assert stats.errors_by_type == {
        "TimeoutError": 1,
        "ConnectionError": 1,
        "Error": 1,
        "timeout": 1,
        "HTTP 503": 1,
        "ValueError": 1,
    }
    assert stats.timed_count == 2  # the untimed outcomes do not enter the latency figures
    assert stats.total_seconds == pytest.approx(0.6)


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf, True, "0.1", None])
def test_record_duration_rejects_bad_seconds(make_monitor: MakeMonitor, seconds: object) -> None:
    with pytest.raises(ValueError, match=r"record_duration\('op'\): seconds must be a finite"):
        make_monitor().record_duration("op", seconds)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [None, "", 42, ["a"]])
def test_bad_operation_names_are_named(make_monitor: MakeMonitor, name: object) -> None:
    monitor = make_monitor()
    with pytest.raises(TypeError, match="operation name must be a non-empty string"):
        monitor.record_operation(name)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="operation name must be a non-empty string"):
        monitor.record_success(name)  # type: ignore[arg-type]


def test_exact_counts_from_eight_threads(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor(clock=None)  # the real clock: windows rotate under load too
    per_thread = 5_000

    @track_performance("decorated", monitor=monitor)
    def work(i: int) -> int:
        if i % 10 == 0:
            raise ValueError(i)
        return i

    def run() -> None:
        for i in range(per_thread):
            with monitor.record_operation("shared"):
                pass
            with contextlib.suppress(ValueError):
                work(i)
            monitor.record_duration("elsewhere", 0.001, success=i % 4 != 0)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = monitor.operation_stats()
    total = 8 * per_thread
    assert stats["shared"].count == stats["shared"].successes == total
    assert stats["shared"].timed_count == total
    assert (stats["decorated"].successes, stats["decorated"].failures) == (
        total * 9 // 10,
        total // 10,
    )
    assert stats["decorated"].errors_by_type == {"ValueError": total // 10}
    assert (stats["elsewhere"].successes, stats["elsewhere"].failures) == (
        total * 3 // 4,
        total // 4,
    )
    assert stats["elsewhere"].sketch.count == total
    assert monitor.get_performance_report()["total_operations"] == 3 * total


def test_recent_window_forgets_what_lifetime_keeps(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor(window_seconds=60)
    for _ in range(100):
        timed(monitor, clock, "op", 0.5)  # slow, a while ago
    clock.advance(120)
    for _ in range(30):
        timed(monitor, clock, "op", 0.01)
    clock.advance(1)
    stats = monitor.operation_stats()["op"]
    assert stats.count == 130
    assert stats.recent_count == 30
    assert stats.recent_quantile(0.99) == pytest.approx(0.01, rel=0.01)
    assert stats.quantile(0.5) == pytest.approx(0.5, rel=0.01)
    entry = monitor.get_performance_report()["operations"]["op"]
    assert entry["recent"]["response_times"]["p99"] == pytest.approx(10.0, rel=0.01)
    assert entry["response_times"]["p50"] == pytest.approx(500.0, rel=0.01)


def test_the_window_slides_slot_by_slot(make_monitor: MakeMonitor, clock: FakeClock) -> None:
    monitor = make_monitor(window_seconds=60)  # six slots of ten seconds
    for _ in range(6):
        monitor.record_success("op")
        clock.advance(10)
    assert monitor.operation_stats()["op"].recent_count == 5  # the first slot has left
    clock.advance(50)
    assert monitor.operation_stats()["op"].recent_count == 0
    assert monitor.operation_stats()["op"].count == 6


def test_throughput_over_the_recent_window(make_monitor: MakeMonitor, clock: FakeClock) -> None:
    monitor = make_monitor(window_seconds=60)
    for _ in range(300):
        monitor.record_success("op")
        clock.advance(0.1)  # 10 per second for 30 seconds
    report = monitor.get_performance_report()
    assert report["operations"]["op"]["throughput_per_second"] == pytest.approx(10, rel=0.01)
    assert report["throughput_per_second"] == pytest.approx(10, rel=0.01)


def test_names_beyond_the_cap_share_the_overflow_name_with_one_warning(
    make_monitor: MakeMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = make_monitor({"max_operation_names": 3})
    with caplog.at_level(logging.WARNING, logger="coordination.performance"):
        for i in range(50):
            with monitor.record_operation(f"request_{i}"):
                pass
            monitor.record_success(f"request_{i}")
    stats = monitor.operation_stats()
    assert sorted(stats) == ["__overflow__", "request_0", "request_1", "request_2"]
    assert stats["__overflow__"].count == 2 * 47
    assert len([r for r in caplog.records if "distinct operation names" in r.message]) == 1
    assert len(monitor._timers) <= 4  # overflowing names are not cached one by one


def test_memory_of_an_operation_is_the_same_after_ten_thousand_and_a_million(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor()
    durations = [50e-6 * 40_000 ** (i / 9_999) for i in range(10_000)]  # 50 µs .. 2 s
    # The first 10^4 spread over more than the one-minute window, as real traffic is, so
    # every window slot has seen the operation's range of latencies.
    for _ in range(10):
        for d in durations[::10]:
            monitor.record_duration("op", d)
        clock.advance(7)
    after_ten_thousand = monitor.operation_memory_bytes("op")
    for _ in range(99):
        for d in durations:
            monitor.record_duration("op", d)
        clock.advance(3.7)
    assert monitor.operation_stats()["op"].count == 1_000_000
    assert monitor.operation_memory_bytes("op") == after_ten_thousand
    assert after_ten_thousand < 7 * 16_000  # the ring and the lifetime sketch, at most


def test_report_is_json_serialisable_and_complete(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor()
    timed(monitor, clock, "a", 0.003)
    monitor.record_failure("b", RuntimeError("x"))
    report = json.loads(json.dumps(monitor.get_performance_report()))
    for key in (
        "status",
        "response_times",
        "operations",
        "success_rate",
        "throughput_per_second",
        "system",
        "uptime_seconds",
    ):
        assert key in report
    assert set(report["response_times"]) == {
        "count",
        "mean",
        "min",
        "max",
        "p50",
        "p90",
        "p95",
        "p99",
    }
    assert report["status"] == "HEALTHY"
    assert report["operations"]["b"]["errors_by_type"] == {"RuntimeError": 1}
    assert report["success_rate"] == 0.5


def test_a_fresh_monitor_reports_zeros_the_spec_exporter_can_divide(
    make_monitor: MakeMonitor,
) -> None:
    report = make_monitor().get_performance_report()
    assert report["response_times"]["mean"] / 1000.0 == 0.0  # the spec's exporter line
    assert report["total_operations"] == 0
    assert report["operations"] == {}


def test_disabled_monitoring_records_nothing(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor({"enable_performance_monitoring": False})
    for _ in range(3):
        with monitor.record_operation("op"):
            pass
    monitor.record_success("op")
    monitor.record_failure("op", "boom")
    monitor.record_duration("op", 0.1)
    monitor.start_monitoring()
    assert not monitor.sampler.running
    report = monitor.get_performance_report()
    assert report["enabled"] is False
    assert report["total_operations"] == 0
    assert report["status"] == "UNKNOWN"
    assert monitor.get_health_status()["status"] == "UNKNOWN"
    with pytest.raises(ValueError), monitor.record_operation("op"):
        raise ValueError("still raised")


def test_bad_configuration_is_named() -> None:
    with pytest.raises(ConfigError, match="max_operation_names"):
        CoordinationPerformanceMonitor({"max_operation_names": 0})
    with pytest.raises(ValueError, match="window_seconds must be a positive number"):
        CoordinationPerformanceMonitor({}, window_seconds=0)


def test_operation_stats_cumulative_counts_for_a_histogram(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor()
    for seconds in (0.001, 0.001, 0.05, 0.3):
        timed(monitor, clock, "op", seconds)
    monitor.record_success("op")  # untimed: counted, but not an observation
    stats = monitor.operation_stats()["op"]
    assert stats.cumulative_counts([0.005, 0.1, 1.0]) == [2, 3, 4]
    assert stats.timed_count == 4
    assert stats.count == 5
    assert stats.total_seconds == pytest.approx(0.352)
    assert stats.quantile(1.0) == pytest.approx(0.3)  # clamped to the exact maximum


def test_error_types_per_operation_are_capped(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor()
    for i in range(60):
        monitor.record_failure("op", f"category_{i}")
    errors = monitor.operation_stats()["op"].errors_by_type
    assert len(errors) == 51
    assert errors["__other__"] == 10
    assert sum(errors.values()) == 60


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 40), st.integers(0, 5), st.integers(0, 3)),
        min_size=1,
        max_size=40,
    )
)
def test_the_recent_window_holds_the_last_fifty_to_sixty_seconds(
    steps: list[tuple[float, int, int]],
) -> None:
    clock = FakeClock()
    monitor = CoordinationPerformanceMonitor({}, clock=clock, window_seconds=60)
    events: list[float] = []  # when each outcome was recorded
    for wait, successes, failures in steps:
        clock.advance(wait)
        for _ in range(successes):
            monitor.record_duration("op", 0.001)
            events.append(clock.now)
        for _ in range(failures):
            monitor.record_failure("op", "x")
            events.append(clock.now)
    stats = monitor.operation_stats().get("op")
    if stats is None:
        assert not events
        return
    now = clock.now
    assert stats.count == len(events)
    surely_in = sum(1 for t in events if now - t < 50)
    maybe_in = sum(1 for t in events if now - t < 60)
    assert surely_in <= stats.recent_count <= maybe_in
