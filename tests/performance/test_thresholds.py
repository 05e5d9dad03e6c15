"""Thresholds from code and YAML, statuses, and alert hooks fired once per transition."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from coordination import ConfigError, CoordinationConfig
from coordination.performance import (
    CoordinationPerformanceMonitor,
    PerformanceAlert,
    PerformanceThresholds,
)
from coordination.performance._thresholds import parse_operation_thresholds

from .conftest import FakeClock, timed

MakeMonitor = Callable[..., CoordinationPerformanceMonitor]


def slow_calls(monitor: CoordinationPerformanceMonitor, clock: FakeClock, n: int, s: float) -> None:
    for _ in range(n):
        timed(monitor, clock, "checkout", s)


def test_p95_over_its_threshold_degrades_and_p99_makes_unhealthy(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor({"latency_p95_threshold_ms": 100, "latency_p99_threshold_ms": 500})
    slow_calls(monitor, clock, 100, 0.010)
    assert monitor.get_health_status()["status"] == "HEALTHY"
    slow_calls(monitor, clock, 10, 0.200)  # p95 ≈ 200 ms, p99 ≈ 200 ms
    health = monitor.get_health_status()
    assert health["status"] == "DEGRADED"
    assert health["operations"] == 1
    (breach,) = health["breaching"]["checkout"]["breaches"]
    assert breach["metric"] == "p95_ms"
    assert breach["value"] == pytest.approx(200, rel=0.01)
    slow_calls(monitor, clock, 20, 1.0)
    assert monitor.get_health_status()["status"] == "UNHEALTHY"
    report = monitor.get_performance_report()
    assert report["status"] == "UNHEALTHY"
    assert report["operations"]["checkout"]["status"] == "UNHEALTHY"


def test_hooks_fire_once_per_transition_and_on_recovery(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    alerts: list[PerformanceAlert] = []
    monitor = make_monitor({"error_rate_threshold": 0.2}, alert_hooks=[alerts.append])
    for _ in range(20):
        monitor.record_failure("pay", "declined")
    for _ in range(5):  # every check in between sees the same state: no new alert
        monitor.get_health_status()
        monitor.get_performance_report()
    assert [(a.operation, a.previous_status, a.status) for a in alerts] == [
        ("pay", "HEALTHY", "UNHEALTHY")
    ]
    assert alerts[0].breaches[0].metric == "error_rate"
    assert alerts[0].breaches[0].value == 1.0
    clock.advance(61)  # the failures leave the recent window
    for _ in range(20):
        monitor.record_success("pay")
    monitor.check_thresholds()
    monitor.check_thresholds()
    assert [a.status for a in alerts] == ["UNHEALTHY", "HEALTHY"]
    assert monitor.get_performance_report()["alerts"][-1]["status"] == "HEALTHY"


def test_the_window_turning_over_judges_without_anyone_reading(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    alerts: list[PerformanceAlert] = []
    monitor = make_monitor(alert_hooks=[alerts.append])
    monitor.set_thresholds("checkout", p99_ms=50, min_samples=5)
    slow_calls(monitor, clock, 10, 0.2)
    clock.advance(10)  # the next recording closes a window slot, which checks thresholds
    slow_calls(monitor, clock, 1, 0.2)
    assert [a.status for a in alerts] == ["UNHEALTHY"]


def test_min_samples_keeps_a_quiet_operation_from_alerting(
    make_monitor: MakeMonitor, clock: FakeClock
) -> None:
    monitor = make_monitor({"error_rate_threshold": 0.1})
    for _ in range(9):
        monitor.record_failure("rare", "x")
    assert monitor.get_health_status()["status"] == "HEALTHY"
    monitor.record_failure("rare", "x")
    assert monitor.get_health_status()["status"] == "UNHEALTHY"


def test_per_operation_thresholds_from_yaml_override_the_default(
    tmp_path: Path, clock: FakeClock, clean_environment: None
) -> None:
    path = tmp_path / "coordination.yaml"
    path.write_text(
        "latency_p95_threshold_ms: 1000\n"
        'operation_thresholds: "search: p95_ms=50 min_samples=3; report: error_rate=0.5"\n',
        encoding="utf-8",
    )
    monitor = CoordinationPerformanceMonitor(CoordinationConfig.load(path), clock=clock)
    assert monitor.thresholds_for("search") == PerformanceThresholds(p95_ms=50, min_samples=3)
    assert monitor.thresholds_for("report").p95_ms == 1000  # the default fills the gaps
    assert monitor.thresholds_for("other") == PerformanceThresholds(p95_ms=1000)
    for _ in range(3):
        timed(monitor, clock, "search", 0.2)
        timed(monitor, clock, "other", 0.2)
    health = monitor.get_health_status()
    assert health["status"] == "DEGRADED"
    assert list(health["breaching"]) == ["search"]
    report = monitor.get_performance_report()
    assert report["thresholds"]["operations"]["search"]["p95_ms"] == 50


def test_a_failing_hook_is_logged_and_does_not_break_recording(
    make_monitor: MakeMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(alert: PerformanceAlert) -> None:
        raise RuntimeError("pager down")

    seen: list[PerformanceAlert] = []
    monitor = make_monitor({"error_rate_threshold": 0.0})
    monitor.add_alert_hook(broken)
    monitor.add_alert_hook(seen.append)
    with caplog.at_level(logging.ERROR, logger="coordination.performance"):
        for _ in range(10):
            monitor.record_failure("op", "x")
        assert monitor.get_health_status()["status"] == "UNHEALTHY"
    assert len(seen) == 1  # the next hook still ran
    assert any("alert hook" in r.message for r in caplog.records)


def test_thresholds_are_checked_where_they_enter() -> None:
    with pytest.raises(ConfigError, match="p95_ms = -1"):
        PerformanceThresholds(p95_ms=-1)
    with pytest.raises(ConfigError, match="error_rate = 2"):
        PerformanceThresholds(error_rate=2)
    with pytest.raises(ConfigError, match="min_samples"):
        PerformanceThresholds(min_samples=0)
    with pytest.raises(ConfigError, match="unknown threshold"):
        CoordinationPerformanceMonitor({}).set_thresholds("op", p95=3)
    with pytest.raises(ConfigError, match="operation_thresholds"):
        CoordinationConfig(operation_thresholds="search p95_ms=3")
    with pytest.raises(ConfigError, match=r"'search'.*error_rate = 3"):
        parse_operation_thresholds("search: error_rate=3")


def test_parse_operation_thresholds_reads_several_entries() -> None:
    parsed = parse_operation_thresholds(
        "checkout: p95_ms=250 p99_ms=800, error_rate=0.05; api v2/users: min_samples=20 p99_ms=1e3;"
    )
    assert parsed == {
        "checkout": PerformanceThresholds(p95_ms=250, p99_ms=800, error_rate=0.05),
        "api v2/users": PerformanceThresholds(p99_ms=1000, min_samples=20),
    }
