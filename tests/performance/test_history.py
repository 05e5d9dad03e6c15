"""Each operation's last 15 minutes, kept from the window slots the recorder retires."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination.performance import CoordinationPerformanceMonitor
from coordination.performance._history import HISTORY_POINTS, ActivityRing
from fakes import FakeClock


def _monitor(window: float = 60.0) -> tuple[FakeClock, CoordinationPerformanceMonitor]:
    clock = FakeClock(100.0)
    return clock, CoordinationPerformanceMonitor({}, clock=clock, window_seconds=window)


def test_the_history_holds_each_slot_oldest_first_with_its_counts_and_latency() -> None:
    clock, monitor = _monitor()
    for second in range(120):  # two minutes: 3 calls a second, one failure each 10 s
        for _ in range(3):
            monitor.record_duration("op", 0.002 if second < 60 else 0.008)
        if second % 10 == 0:
            monitor.record_failure("op", "timeout")
        clock.advance(1.0)
    history = monitor.snapshot().operations["op"].history
    assert history.taken_at == clock.now
    points = history.points()
    assert [p.start for p in points] == [100.0 + 10 * i for i in range(12)]
    assert all(p.end - p.start == 10.0 for p in points)
    assert all((p.count, p.failures, p.timed_count) == (31, 1, 30) for p in points)
    assert points[0].total_seconds / points[0].timed_count == pytest.approx(0.002)
    assert points[-1].total_seconds / points[-1].timed_count == pytest.approx(0.008)
    assert sum(p.count for p in points) == monitor.snapshot().operations["op"].count
    assert [p.start for p in history.points(since=200.0)] == [200.0, 210.0]  # ending after


def test_it_keeps_the_newest_rows_when_full_and_folds_short_slots() -> None:
    clock, monitor = _monitor(window=6.0)  # 1 s slots: ten of them to a row
    for _ in range(20 * 60):  # twenty minutes, a call a second
        monitor.record_duration("op", 0.001)
        clock.advance(1.0)
    points = monitor.snapshot().operations["op"].history.points()
    retired = [p for p in points if p.end - p.start > 1]  # the window's 1 s slots come last
    assert len(retired) == HISTORY_POINTS
    assert all(p.count == 10 for p in retired[:-1])  # the newest row is still filling
    assert all(b.start > a.start for a, b in itertools.pairwise(points))
    # The last 15 minutes, and a little more, never all twenty.
    assert clock.now - points[0].start <= 15 * 60 + 10


def test_a_long_idle_spell_keeps_the_slots_in_order_and_leaves_a_gap() -> None:
    clock, monitor = _monitor()
    for second in range(30):
        monitor.record_duration("op", 0.001)
        clock.advance(1.0 if second < 29 else 300.0)  # then five quiet minutes
    monitor.record_duration("op", 0.001)
    points = monitor.snapshot().operations["op"].history.points()
    assert [(p.start, p.count) for p in points] == [
        (100.0, 10),
        (110.0, 10),
        (120.0, 10),
        (clock.now, 1),
    ]


def test_a_snapshot_is_a_copy() -> None:
    clock, monitor = _monitor()
    for _ in range(100):
        monitor.record_duration("op", 0.001)
        clock.advance(1.0)
    history = monitor.snapshot().operations["op"].history
    before = history.points()
    for _ in range(100):
        monitor.record_duration("op", 0.001)
        clock.advance(1.0)
    assert history.points() == before


@settings(max_examples=200, deadline=None)
@given(
    slots=st.lists(
        st.tuples(st.floats(0.0, 100.0), st.integers(0, 1000), st.integers(0, 10)),
        max_size=300,
    ),
    slot_seconds=st.sampled_from([0.5, 10.0, 100.0]),
)
def test_the_ring_is_ordered_bounded_and_conserves_what_it_keeps(
    slots: list[tuple[float, int, int]], slot_seconds: float
) -> None:
    ring = ActivityRing(slot_seconds)
    start, kept = 0.0, []
    for gap, count, failures in slots:
        start += slot_seconds + gap
        ring.add(start, start + slot_seconds, count=count, failures=failures, timed=count, busy=1.0)
        kept.append((start, count))
    points = ring.history(now=start + slot_seconds).points()
    assert len(points) <= HISTORY_POINTS
    assert all(b.start >= a.end for a, b in itertools.pairwise(points))
    assert all(p.count > 0 for p in points)
    if points:  # every call since the oldest row's start is in some row
        assert sum(p.count for p in points) == sum(c for s, c in kept if s >= points[0].start)
