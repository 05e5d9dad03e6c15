"""The adaptive limits as every reader sees them: series, status page, health."""

from __future__ import annotations

import threading

import pytest

from coordination import BulkheadFull
from coordination.error_handling import CoordinationErrorHandler
from coordination.observability import CoordinationMetricsExporter, StatusPage


def test_a_groups_limit_in_flight_and_shedding_are_read_everywhere() -> None:
    handler = CoordinationErrorHandler({"jitter": "none"})
    entered, release = threading.Event(), threading.Event()

    def busy() -> None:
        entered.set()
        release.wait(5)

    options = {
        "adaptive_concurrency": True,
        "concurrency_group": "orders-db",
        "max_concurrency": 1,
        "max_retries": 0,
    }
    hold = handler.decorate(busy, operation_name="orders.hold", error_severity="CRITICAL", **options)
    browse = handler.decorate(
        lambda: None, operation_name="orders.browse", error_severity="LOW", **options
    )
    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert entered.wait(5)
        with pytest.raises(BulkheadFull):
            browse()
        text = CoordinationMetricsExporter({"errors": handler}).export_metrics()
        page = StatusPage({"errors": handler}).snapshot()
        health = handler.get_health_status()
    finally:
        release.set()
        thread.join(5)
    assert 'coordination_concurrency_limit{component="errors",group="orders-db"} 1.0' in text
    assert 'coordination_concurrency_in_flight{component="errors",group="orders-db"} 1.0' in text
    shed = 'coordination_concurrency_shed_total{component="errors",group="orders-db",severity='
    assert shed + '"LOW"} 1.0' in text
    assert shed + '"CRITICAL"' not in text  # a severity appears from its first refusal on
    group = page["concurrency"]["orders-db"]
    assert (group["limit"], group["in_flight"], group["shed"]["LOW"]) == (1, 1, 1)
    assert group["algorithm"] == "gradient2"
    assert health["concurrency_limits"]["orders-db"]["in_flight"] == 1
    assert health["status"] == "HEALTHY"  # shedding is the limit at work, not a fault


def test_without_adaptive_limits_nothing_is_added() -> None:
    handler = CoordinationErrorHandler({})
    handler.execute_with_error_handling(len, args=("x",), operation_name="plain")
    assert "coordination_concurrency" not in CoordinationMetricsExporter(
        {"errors": handler}
    ).export_metrics()
    assert StatusPage({"errors": handler}).snapshot()["concurrency"] == {}
    assert "concurrency_limits" not in handler.get_health_status()
