"""The readers are built on the components' frozen snapshots: same numbers as the dicts.

Writers keep recording on other threads while the readers read: every number a reader
derives from one snapshot equals the spec's dict built from that same snapshot, and once
the writers stop, the exporter, the status page and the reports agree exactly.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import pytest

from coordination.error_handling import CoordinationErrorHandler
from coordination.error_handling._report import build_report
from coordination.observability import CoordinationMetricsExporter, StatusPage
from coordination.observability._collector import (
    _BOUNDED_LABELS,
    _read_handler,
    _read_performance,
)
from coordination.observability._families import FamilyBuilder
from coordination.observability._readings import performance_of
from coordination.performance import CoordinationPerformanceMonitor
from coordination.performance._report import operation_entry, summary_entry

from .exposition import value

pytestmark = pytest.mark.usefixtures("clean_environment")

WRITERS = 4
CALLS = 2_000  # per writer
OPERATIONS = ("read", "write", "delete")


def _flaky(i: int) -> int:
    if i % 7 == 0:
        raise ConnectionError("replica lagging")
    return i


def _write(monitor: CoordinationPerformanceMonitor, handler: CoordinationErrorHandler) -> None:
    for i in range(CALLS):
        name = OPERATIONS[i % len(OPERATIONS)]
        if i % 7 == 0:
            monitor.record_failure(name, ConnectionError())
        else:
            monitor.record_duration(name, 0.001 * (1 + i % 50))
        with contextlib.suppress(ConnectionError):
            handler.execute_with_error_handling(_flaky, args=(i,), operation_name=name)


def _read(builder: FamilyBuilder) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for metric in FamilyBuilder.combine([builder])
        for s in metric.samples
    }


def _builder() -> FamilyBuilder:
    return FamilyBuilder(max_label_values=1000, bounded_labels=_BOUNDED_LABELS)


@pytest.fixture
def components() -> Iterator[tuple[CoordinationPerformanceMonitor, CoordinationErrorHandler]]:
    monitor = CoordinationPerformanceMonitor({})
    # no retries and a breaker that never opens: every call's outcome is known in advance
    handler = CoordinationErrorHandler(
        {"max_retries": 0, "base_delay": 0, "circuit_breaker_threshold": 10**9}
    )
    yield monitor, handler
    handler.close()


def test_readers_and_reports_agree_under_concurrent_writers(
    components: tuple[CoordinationPerformanceMonitor, CoordinationErrorHandler],
) -> None:
    monitor, handler = components
    comp = {"component": "c"}
    threads = [threading.Thread(target=_write, args=components) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    reads = concurrent = 0
    previous_calls = 0
    while any(t.is_alive() for t in threads) or reads < 3:
        reads += 1
        concurrent += any(t.is_alive() for t in threads)
        # the handler: the collector's series and the spec's report from one snapshot
        snapshot = handler.snapshot()
        report = build_report(snapshot)
        out = _builder()
        _read_handler(out, comp, snapshot)
        series = _read(out)
        assert (
            series[("coordination_total_operations", frozenset(comp.items()))]
            == (report["total_operations"])
        )
        assert report["total_operations"] >= previous_calls  # counts never go backwards
        previous_calls = report["total_operations"]
        for name, counts in report["operations"].items():
            labels = {**comp, "operation": name}
            for outcome, key in (("success", "successes"), ("failure", "failures")):
                key_labels = frozenset({**labels, "outcome": outcome}.items())
                assert series[("coordination_operations_total", key_labels)] == counts[key]
            assert counts["calls"] == counts["successes"] + counts["failures"]
            assert series[("coordination_retries_total", frozenset(labels.items()))] == 0
        errors = report["errors_by_type"].get("ConnectionError", 0)
        if errors:
            key = frozenset({**comp, "error_type": "ConnectionError"}.items())
            assert series[("coordination_errors_total", key)] == errors
        # the monitor: the same for its reading and the report's entries
        reading = performance_of(monitor)
        assert reading is not None
        out = _builder()
        _read_performance(out, comp, reading, "histogram")
        series = _read(out)
        for name, op in reading.operations.items():
            entry = operation_entry(op, monitor.check_thresholds()[name], ())
            labels = frozenset({**comp, "operation": name}.items())
            assert (
                series[("coordination_operation_duration_seconds_count", labels)]
                == (entry["response_times"]["count"])
            )
            success = frozenset({**comp, "operation": name, "outcome": "success"}.items())
            assert series[("coordination_operations_total", success)] == entry["successes"]
            assert op.count == op.successes + op.failures
        total = summary_entry(reading.operations.values())  # type: ignore[arg-type]
        assert total["total_operations"] == sum(op.count for op in reading.operations.values())
        # a snapshot taken earlier has not moved meanwhile
        assert build_report(snapshot)["operations"] == report["operations"]
    for thread in threads:
        thread.join()
    assert concurrent  # at least one read happened while the writers wrote

    # writers done: every reader and every report agree, and with what was written
    failures = sum(1 for i in range(CALLS) if i % 7 == 0) * WRITERS
    report = handler.get_error_report()
    performance = monitor.get_performance_report()
    assert report["total_operations"] == performance["total_operations"] == CALLS * WRITERS
    assert report["failed_operations"] == performance["failures"] == failures
    text = CoordinationMetricsExporter({"h": handler, "m": monitor}).export_metrics()
    assert value(text, "coordination_total_operations", component="h") == CALLS * WRITERS
    for name in OPERATIONS:
        counts = report["operations"][name]
        entry = performance["operations"][name]
        for component, expected in (("h", counts["failures"]), ("m", entry["failures"])):
            assert (
                value(
                    text,
                    "coordination_operations_total",
                    component=component,
                    operation=name,
                    outcome="failure",
                )
                == expected
            )
        assert (
            value(
                text, "coordination_operation_duration_seconds_count", component="m", operation=name
            )
            == (entry["response_times"]["count"])
        )
    page = StatusPage({"h": handler, "m": monitor}, config={}).snapshot()
    rows = {row["name"]: row for row in page["operations"]}
    for name in OPERATIONS:
        assert rows[name]["count"] == performance["operations"][name]["count"]
        assert rows[name]["failures"] == performance["operations"][name]["failures"]
        assert rows[name]["breaker"] == report["circuit_breakers"][name]["state"]
    assert page["totals"]["retries"] == report["total_retries"] == 0
