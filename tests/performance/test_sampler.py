"""The resource sampler: one thread, stopped and joined, bounded, never raising."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from coordination.performance import CoordinationPerformanceMonitor, ResourceSampler

MakeMonitor = Callable[..., CoordinationPerformanceMonitor]
FAST = {"collection_interval": 0.01, "max_data_points": 5}


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "coordination-resource-sampler"]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    before = len(sampler_threads())
    yield
    assert len(sampler_threads()) == before


def test_start_twice_runs_one_thread_and_stop_joins_it(make_monitor: MakeMonitor) -> None:
    monitor = make_monitor(FAST, clock=None)
    monitor.start_monitoring()
    monitor.start_monitoring()
    assert len(sampler_threads()) == 1
    assert sampler_threads()[0].daemon
    wait_for(lambda: len(monitor.sampler.samples()) >= 3)
    monitor.stop_monitoring()
    assert sampler_threads() == []
    assert not monitor.sampler.running
    monitor.stop_monitoring()  # stopping again is harmless
    monitor.start_monitoring()  # and it can start again
    assert monitor.sampler.running
    monitor.stop_monitoring()


def test_samples_describe_the_process(make_monitor: MakeMonitor) -> None:
    with make_monitor(FAST, clock=None) as monitor:
        wait_for(lambda: len(monitor.sampler.samples()) >= 2)
        report = monitor.get_performance_report()
    system = report["system"]
    assert system["available"] is True
    latest = system["latest"]
    assert latest["memory_rss_bytes"] > 1_000_000
    assert latest["threads"] >= 2  # this one and the sampler
    assert latest["open_files"] >= 0
    assert latest["cpu_percent"] >= 0.0
    assert len(latest["gc_counts"]) == 3
    assert system["averages"]["memory_rss_bytes"] > 1_000_000
    assert sampler_threads() == []


def test_at_most_max_points_are_kept() -> None:
    sampler = ResourceSampler(interval=60, max_points=3)
    sampler._process = sampler._open_process()
    for _ in range(10):
        assert sampler.sample_now() is not None
    assert len(sampler.samples()) == 3


def test_without_psutil_it_logs_once_and_reports_unavailable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now raises ImportError
    sampler = ResourceSampler(interval=0.01, max_points=5)
    with caplog.at_level(logging.WARNING, logger="coordination.performance"), sampler:
        wait_for(lambda: len(sampler.samples()) >= 2)
    summary = sampler.summary()
    assert summary["available"] is False
    assert "psutil is not installed" in summary["reason"]
    assert "gc_counts" in summary["latest"]
    assert "memory_rss_bytes" not in summary["latest"]
    assert len([r for r in caplog.records if "resource sampling is off" in r.message]) == 1


class BrokenProcess:
    def oneshot(self) -> Any:
        raise PermissionError("denied by the sandbox")


def test_a_failing_sample_never_reaches_the_application(
    caplog: pytest.LogCaptureFixture,
) -> None:
    checks: list[int] = []

    def failing_check() -> None:
        checks.append(1)
        raise RuntimeError("check broke")

    sampler = ResourceSampler(interval=0.01, max_points=5, on_sample=failing_check)
    sampler._process = BrokenProcess()
    with caplog.at_level(logging.WARNING, logger="coordination.performance"), sampler:
        wait_for(lambda: len(checks) >= 5)  # still sampling after every failure
        assert sampler.running
    assert sampler.samples() == []
    messages = [r.message for r in caplog.records]
    assert sum("resource sample failed" in m for m in messages) == 1  # once, not per tick
    assert sum("periodic check failed" in m for m in messages) == 1


def test_bad_sampler_settings_are_named() -> None:
    with pytest.raises(ValueError, match="interval must be a positive number"):
        ResourceSampler(interval=0, max_points=1)
    with pytest.raises(ValueError, match="max_points must be at least 1"):
        ResourceSampler(interval=1, max_points=0)
