"""Fixtures for the performance tests: a clock the test moves, and monitors built on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from coordination.performance import CoordinationPerformanceMonitor
from fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_monitor(
    clock: FakeClock, clean_environment: None
) -> Iterator[Callable[..., CoordinationPerformanceMonitor]]:
    """Monitors on the fake clock, with their sampler stopped at the end of the test."""
    made: list[CoordinationPerformanceMonitor] = []

    def make(config: dict[str, Any] | None = None, **kwargs: Any) -> CoordinationPerformanceMonitor:
        kwargs.setdefault("clock", clock)
        monitor = CoordinationPerformanceMonitor(config or {}, **kwargs)
        made.append(monitor)
        return monitor

    yield make
    for monitor in made:
        monitor.stop_monitoring()


def timed(
    monitor: CoordinationPerformanceMonitor, clock: FakeClock, name: str, seconds: float
) -> None:
    """One successful ``record_operation`` block that takes ``seconds`` on the fake clock."""
    with monitor.record_operation(name):
        clock.advance(seconds)
