"""The monitor's frozen snapshots: what every report and exporter is built from."""

from __future__ import annotations

import dataclasses

import pytest

from coordination.performance import CoordinationPerformanceMonitor
from coordination.performance._operation import MonitorSnapshot, OperationSnapshot
from fakes import FakeClock


def test_the_snapshot_is_frozen_and_does_not_follow_later_recording() -> None:
    clock = FakeClock()
    monitor = CoordinationPerformanceMonitor({}, clock=clock)
    monitor.record_duration("checkout", 0.010)
    monitor.record_failure("checkout", ConnectionError("down"))
    snapshot = monitor.snapshot()
    assert isinstance(snapshot, MonitorSnapshot)
    op = snapshot.operations["checkout"]
    assert isinstance(op, OperationSnapshot)
    with pytest.raises(dataclasses.FrozenInstanceError):
        op.count = 0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.operations = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        op.errors_by_type["ConnectionError"] = 0  # type: ignore[index]
    with pytest.raises(TypeError):
        snapshot.operations["other"] = op  # type: ignore[index]
    assert not hasattr(op, "__dict__")  # slotted: no attribute can be added either

    for _ in range(600):  # more than one flush batch, and a new error type
        monitor.record_duration("checkout", 0.020)
    monitor.record_failure("checkout", TimeoutError())
    monitor.record_duration("refund", 0.5)
    assert (op.count, op.successes, op.failures, op.timed_count) == (2, 1, 1, 1)
    assert dict(op.errors_by_type) == {"ConnectionError": 1}
    assert op.quantile(0.5) == pytest.approx(0.010, rel=0.01)
    assert list(snapshot.operations) == ["checkout"]
    assert monitor.snapshot().operations["checkout"].count == 603


def test_the_report_is_built_from_the_snapshot() -> None:
    clock = FakeClock()
    monitor = CoordinationPerformanceMonitor({}, clock=clock)
    for ms in (1, 2, 3, 4, 100):
        monitor.record_duration("search", ms / 1000)
    monitor.record_failure("search", "timeout")
    monitor.record_success("search")
    snapshot = monitor.snapshot()
    report = monitor.get_performance_report()
    op = snapshot.operations["search"]
    entry = report["operations"]["search"]
    assert (entry["count"], entry["successes"], entry["failures"]) == (
        op.count,
        op.successes,
        op.failures,
    )
    assert entry["errors_by_type"] == dict(op.errors_by_type) == {"timeout": 1}
    assert entry["response_times"]["count"] == op.timed_count == 5
    assert entry["response_times"]["max"] == pytest.approx(op.max_seconds * 1000)
    assert entry["response_times"]["p50"] == pytest.approx(op.quantile(0.5) * 1000)
    assert report["response_times"]["mean"] == pytest.approx(snapshot.mean_seconds * 1000)  # type: ignore[operator]
    assert report["uptime_seconds"] == snapshot.uptime_seconds
    again = monitor.operation_stats()["search"]
    assert (again.count, again.total_seconds, again.max_seconds) == (
        op.count,
        op.total_seconds,
        op.max_seconds,
    )


def test_a_fresh_monitor_has_no_mean_and_no_resources() -> None:
    snapshot = CoordinationPerformanceMonitor({}).snapshot()
    assert snapshot.mean_seconds is None
    assert snapshot.resources is None
    assert dict(snapshot.operations) == {}
    assert snapshot.enabled is True
