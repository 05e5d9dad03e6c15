"""The demo's second act in pieces: the pricing database's model, the phases, what is told."""

from __future__ import annotations

import threading
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordination._concurrency_snapshot import ConcurrencySnapshot
from coordination.demo._console import sparkline, surge_line
from coordination.demo._surge import PricingDatabase, SurgeDriver, surge_phases
from coordination.demo._watch import SurgeTrace


def reading(limit: int, in_flight: int = 0, low: int = 0, critical: int = 0) -> ConcurrencySnapshot:
    shed = {"LOW": low, "MEDIUM": 0, "HIGH": 0, "CRITICAL": critical}
    return ConcurrencySnapshot(
        "pricing-db", "vegas", limit, 2, 40, in_flight, 0, MappingProxyType(shed)
    )


def test_the_database_slows_quadratically_past_its_capacity() -> None:
    database = PricingDatabase(capacity=4, base_latency=0.02, sleep=lambda _: None)
    assert [database.latency_at(n) for n in (1, 4)] == [0.02, 0.02]
    assert database.latency_at(8) == pytest.approx(0.08)  # twice the capacity: 4 x
    assert database.latency_at(16) == pytest.approx(0.32)
    assert database.latency_at(10_000) == 2.0  # bounded: a pile-up still ends
    database.capacity = 2  # the backup: the same concurrency costs four times as much
    assert database.latency_at(8) == pytest.approx(0.32)


def test_a_query_counts_itself_in_flight_while_it_runs() -> None:
    seen: list[float] = []
    inside = threading.Event()
    release = threading.Event()

    def sleep(seconds: float) -> None:
        seen.append(seconds)
        inside.set()
        release.wait(5)

    database = PricingDatabase(capacity=1, base_latency=0.01, sleep=sleep)
    first = threading.Thread(target=database.query, args=("sku-1",))
    first.start()
    assert inside.wait(5)
    assert database.in_flight == 1
    inside.clear()
    second = threading.Thread(target=database.query, args=("sku-2",))
    second.start()
    assert inside.wait(5)
    release.set()
    first.join(5)
    second.join(5)
    assert database.in_flight == 0
    assert database.peak_in_flight == 2
    assert database.queries == 2
    assert seen == [0.01, pytest.approx(0.04)]  # the second started with two running


@given(st.floats(min_value=1.0, max_value=3600.0))
def test_the_phases_fill_the_act_in_order(total: float) -> None:
    phases = surge_phases(total)
    assert [p.name for p in phases] == ["steady", "surge", "backup", "calm"]
    assert sum(p.seconds for p in phases) == pytest.approx(total)
    steady, surge, backup, calm = phases
    assert surge.low_clients > 4 * steady.low_clients
    assert backup.capacity < surge.capacity == calm.capacity
    driver = SurgeDriver(1, phases)
    assert driver.phase_at(0.0) is steady
    assert driver.phase_at(steady.seconds + surge.seconds + 1e-9 * total) is backup
    assert driver.phase_at(total * 2) is calm
    assert driver.phase_starts()["surge"] == pytest.approx(steady.seconds)


def test_the_trace_tells_the_start_the_big_moves_and_each_first_shed_once() -> None:
    trace = SurgeTrace()
    trace.add(0.0, "steady", None, 20.0)  # before the first call: nothing to tell
    assert trace.news() == []
    trace.add(0.1, "steady", reading(2), 20.0)
    assert trace.news() == ["limit of pricing-db: starts at 2 (vegas, between 2 and 40)"]
    trace.add(0.2, "steady", reading(3, in_flight=1, low=1), 20.0)  # +1: too small to tell
    assert trace.news() == ["first LOW call shed at limit 3 (1 in flight): 503 with Retry-After"]
    trace.add(0.3, "surge", reading(10, in_flight=9, low=5), 45.0)
    assert trace.news() == [
        "limit of pricing-db: 2 → 10 (9 in flight, the database answering in 45 ms)"
    ]
    trace.add(0.4, "backup", reading(7, in_flight=7, low=9), 180.0)  # -3 of 10: told
    assert trace.news() == [
        "limit of pricing-db: 10 → 7 (7 in flight, the database answering in 180 ms)"
    ]
    assert trace.limits() == [2, 3, 10, 7]
    assert trace.limits("backup") == [7]
    assert trace.shed["LOW"] == 9
    assert trace.first_shed == {"LOW": 0.2}


def test_sparkline_spans_lowest_to_highest_and_resamples() -> None:
    assert sparkline([]) == ""
    assert sparkline([5, 5]) == "▄▄"
    assert sparkline([0, 7, 14]) == "▁▅█"
    long = sparkline(list(range(1000)), width=10)
    assert len(long) == 10
    assert long[0] == "▁"
    assert long[-1] == "█"


def test_surge_line_names_every_figure() -> None:
    line = surge_line(
        "surge", {"LOW": 32, "CRITICAL": 4}, 9, 8, 123.4, {"LOW": 50}, {"CRITICAL": 7}
    )
    assert " ".join(line.split()) == (
        "surge clients LOW 32 CRITICAL 4 limit 9 in flight 8 db 123 ms "
        "shed LOW 50 CRITICAL 0 served LOW 0 CRITICAL 7"
    )
    assert "limit   –" in surge_line("steady", {}, None, 0, 20.0, {}, {})
