"""The OpenTelemetry bridge, read with the SDK's InMemoryMetricReader."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from coordination._http_snapshot import HttpSnapshot, RouteSnapshot
from coordination.error_handling import CoordinationErrorHandler
from coordination.observability import OpenTelemetryBridge
from coordination.performance import CoordinationPerformanceMonitor

pytestmark = pytest.mark.usefixtures("clean_environment")


def points(
    reader: InMemoryMetricReader,
) -> dict[str, tuple[str, list[tuple[dict[str, Any], float]]]]:
    """Metric name -> (unit, [(attributes, value)]) from one collection."""
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, tuple[str, list[tuple[dict[str, Any], float]]]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = (
                    metric.unit or "",
                    [(dict(p.attributes or {}), p.value) for p in metric.data.data_points],  # type: ignore[union-attr]
                )
    return found


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


def test_http_request_duration_in_seconds_from_the_middleware_monitor(
    reader: InMemoryMetricReader,
) -> None:
    class Middleware:  # the shape the real middleware exposes (tested in test_real_components)
        def __init__(self) -> None:
            self.performance_monitor = CoordinationPerformanceMonitor(config={})

        def http_snapshot(self) -> HttpSnapshot:
            timings = self.performance_monitor.operation_stats()["GET /items/{id}"]
            route = RouteSnapshot("GET", "/items/{id}", {"200": 3}, timings)
            return HttpSnapshot(
                requests=6,
                in_flight=2,
                status_codes={200: 3, 503: 1},
                rejected={},
                rate_limited=0,
                exceptions={},
                routes=(route,),
            )

    http = Middleware()
    for seconds in (0.1, 0.2, 0.3):
        http.performance_monitor.record_duration("GET /items/{id}", seconds)
    provider = MeterProvider(metric_readers=[reader])
    OpenTelemetryBridge({"http": http}, meter_provider=provider)

    found = points(reader)
    unit, durations = found["http.server.request.duration"]
    assert unit == "s"
    median = next(v for a, v in durations if a["quantile"] == "0.5")
    assert median == pytest.approx(0.2, rel=0.01)
    attributes = durations[0][0]
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.route"] == "/items/{id}"
    responses = {
        a["http.response.status_code"]: v for a, v in found["coordination.http_responses"][1]
    }
    assert responses == {200: 3, 503: 1}
    assert found["http.server.active_requests"][1][0][1] == 2
    provider.shutdown()


def test_counters_follow_the_real_handler_between_collections(
    reader: InMemoryMetricReader,
) -> None:
    handler = CoordinationErrorHandler(config={"base_delay": 0, "max_retries": 2})
    provider = MeterProvider(metric_readers=[reader])
    OpenTelemetryBridge({"error_handler": handler}, meter_provider=provider)
    attempts = iter([ConnectionError("flaky"), None])

    def flaky() -> str:
        error = next(attempts)
        if error is not None:
            raise error
        return "ok"

    handler.execute_with_error_handling(flaky, operation_name="fetch")
    first = points(reader)
    labels = {"coordination.component": "error_handler", "coordination.operation": "fetch"}
    assert first["coordination.retries"][1] == [(labels, 1)]
    handler.execute_with_error_handling(lambda: "ok", operation_name="fetch")
    second = points(reader)
    operations = second["coordination.operations"][1]
    assert ({**labels, "coordination.outcome": "success"}, 2) in operations
    provider.shutdown()


def test_a_grouped_or_overflow_status_does_not_break_the_bridge() -> None:
    from coordination.observability._otel import _attributes

    family = "coordination_http_requests_total"
    assert _attributes(family, {"status": "503"})["http.response.status_code"] == 503
    assert _attributes(family, {"status": "7xx"}) == {"coordination.http.status": "7xx"}
    overflow = _attributes(family, {"status": "__overflow__"})
    assert overflow == {"coordination.http.status": "__overflow__"}
