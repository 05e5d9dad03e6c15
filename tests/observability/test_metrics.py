"""CoordinationMetricsExporter: prometheus_client exposition read back with its parser."""

from __future__ import annotations

import gzip
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)

from coordination.observability import CoordinationMetricsExporter

from .exposition import samples, value

pytestmark = pytest.mark.usefixtures("clean_environment")


class Monitor:
    def get_performance_report(self) -> dict[str, Any]:
        return {"response_times": {"mean": 250.0, "p95": 400.0}}


class Handler:
    def __init__(self, operations: int = 1, name: str = "charge") -> None:
        self.operations = {
            f"{name}{i}" if operations > 1 else name: {
                "calls": 5,
                "successes": 4,
                "failures": 1,
                "retries": 2,
                "rejections": 3,
                "timeouts": 0,
                "bulkhead_rejections": 0,
                "fallbacks": 1,
            }
            for i in range(operations)
        }

    def get_error_report(self) -> dict[str, Any]:
        return {
            "status": "HEALTHY",
            "total_operations": 5 * len(self.operations),
            "errors_by_type": {"ConnectionError": 1},
            "errors_by_severity": {"HIGH": 1},
            "circuit_breakers": {"charge": {"state": "OPEN"}},
            "operations": self.operations,
        }


class Broken:
    def get_error_report(self) -> dict[str, Any]:
        raise RuntimeError("report failed")


@dataclass
class Stats:
    name: str
    count: int = 4
    successes: int = 3
    failures: int = 1
    total_seconds: float = 1.0
    min_seconds: float = 0.1
    max_seconds: float = 0.5
    errors_by_type: dict[str, int] = field(default_factory=dict)

    def quantile(self, q: float) -> float:
        return 0.1 + q * 0.4


class StatsMonitor:
    def operation_stats(self) -> dict[str, Stats]:
        return {"lookup": Stats("lookup")}


def test_the_spec_series_and_the_prometheus_named_set() -> None:
    exporter = CoordinationMetricsExporter(
        {"performance_monitor": Monitor(), "error_handler": Handler(), "broken": Broken()}
    )
    text = exporter.export_metrics()
    assert (
        value(text, "coordination_response_time_seconds", component="performance_monitor") == 0.25
    )
    assert value(text, "coordination_total_operations", component="error_handler") == 5
    assert value(text, "coordination_export_error", component="broken") == 1
    assert value(text, "coordination_export_error", component="error_handler") == 0
    op = {"component": "error_handler", "operation": "charge"}
    assert value(text, "coordination_operations_total", **op, outcome="failure") == 1
    assert value(text, "coordination_retries_total", **op) == 2
    assert value(text, "coordination_circuit_breaker_rejections_total", **op) == 3
    assert value(text, "coordination_fallbacks_total", **op) == 1
    breaker = {"component": "error_handler", "breaker": "charge"}
    assert value(text, "coordination_circuit_breaker_state", **breaker) == 2  # OPEN
    # counters of features not in use appear from their first count on
    assert ("coordination_timeouts_total", frozenset(op.items())) not in samples(text)
    assert (
        value(
            text,
            "coordination_errors_total",
            component="error_handler",
            error_type="ConnectionError",
        )
        == 1
    )
    assert "process_resident_memory_bytes" in text  # the private registry's process series
    # a broken component contributes nothing but its error flag
    assert not [
        k for k in samples(text) if ("component", "broken") in k[1] and "export_error" not in k[0]
    ]


def test_duration_summary_from_a_monitor_without_buckets() -> None:
    exporter = CoordinationMetricsExporter({"monitor": StatsMonitor()}, durations="summary")
    text = exporter.export_metrics()
    labels = {"component": "monitor", "operation": "lookup"}
    assert value(text, "coordination_operation_duration_seconds_count", **labels) == 4
    assert value(text, "coordination_operation_duration_seconds_sum", **labels) == 1.0
    assert value(
        text, "coordination_operation_duration_seconds", **labels, quantile="0.99"
    ) == pytest.approx(0.496)
    assert value(text, "coordination_operations_total", **labels, outcome="success") == 3
    # as a histogram, a snapshot without bucket counts still has +Inf, count and sum
    text = CoordinationMetricsExporter({"monitor": StatsMonitor()}).export_metrics()
    assert value(text, "coordination_operation_duration_seconds_bucket", **labels, le="+Inf") == 4
    with pytest.raises(ValueError, match='durations must be "histogram" or "summary"'):
        CoordinationMetricsExporter({}, durations="quantiles")  # type: ignore[arg-type]


def test_label_values_are_escaped() -> None:
    name = 'say "hi"\\\nnow'
    text = CoordinationMetricsExporter({"h": Handler(name=name)}).export_metrics()
    assert value(text, "coordination_retries_total", component="h", operation=name) == 2


def test_label_values_are_bounded_with_an_overflow_series() -> None:
    exporter = CoordinationMetricsExporter(
        {"h": Handler(operations=10)}, config={"max_operation_names": 3}
    )
    text = exporter.export_metrics()
    operations = {
        dict(labels)["operation"]
        for name, labels in samples(text)
        if name == "coordination_retries_total"
    }
    assert len(operations) == 4
    assert "__overflow__" in operations
    assert (
        value(text, "coordination_retries_total", component="h", operation="__overflow__") == 2 * 7
    )


def test_registers_into_the_users_registry_once() -> None:
    registry = CollectorRegistry()
    exporter = CoordinationMetricsExporter({"h": Handler()}, registry=registry)
    assert exporter.registry is registry
    assert registry.get_sample_value("coordination_total_operations", {"component": "h"}) == 5
    assert "process_resident_memory_bytes" not in exporter.export_metrics()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        CoordinationMetricsExporter({"h": Handler()}, registry=registry)
    exporter.close()
    assert registry.get_sample_value("coordination_total_operations", {"component": "h"}) is None
    with pytest.raises(TypeError, match="CollectorRegistry"):
        CoordinationMetricsExporter({}, registry="default")  # type: ignore[arg-type]


def test_openmetrics_text() -> None:
    text = CoordinationMetricsExporter({"h": Handler()}).export_metrics(openmetrics=True)
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["coordination_retries"].type == "counter"


def test_scraped_over_a_real_http_server_with_content_negotiation() -> None:
    exporter = CoordinationMetricsExporter({"h": Handler(), "m": StatsMonitor()})
    server, thread = start_http_server(0, addr="127.0.0.1", registry=exporter.registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = response.read().decode()
        assert value(text, "coordination_retries_total", component="h", operation="charge") == 2
        request = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
            assert response.read().decode().endswith("# EOF\n")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_asgi_metrics_app() -> None:
    exporter = CoordinationMetricsExporter({"h": Handler()})
    transport = httpx.ASGITransport(app=exporter.make_asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert value(response.text, "coordination_total_operations", component="h") == 5


async def asgi_get(app: Any, headers: list[tuple[bytes, bytes]], query: bytes = b"") -> Any:
    """One raw ASGI GET (httpx would refuse to send bytes that are not valid UTF-8)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/metrics",
        "raw_path": b"/metrics",
        "query_string": query,
        "headers": headers,
    }
    await app(scope, receive, send)
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


async def test_asgi_metrics_app_serves_requests_whose_bytes_are_not_utf8() -> None:
    """prometheus_client decodes every header name and the query string as UTF-8; a
    client's stray byte must not turn the scrape into a 500."""
    app = CoordinationMetricsExporter({"h": Handler()}).make_asgi_app()
    status, headers, body = await asgi_get(
        app, [(b"\x80\xff", b"x"), (b"x-note", b"\xfe")], query=b"name[]=\xff"
    )
    assert status == 200
    assert value(body.decode(), "coordination_total_operations", component="h") == 5
    # A bad Accept value is no preference: the default text format.
    status, headers, body = await asgi_get(app, [(b"accept", b"\xff")])
    assert status == 200
    assert headers[b"Content-Type"].startswith(b"text/plain")
    # The headers that negotiate still do, whatever their case.
    status, headers, body = await asgi_get(
        app, [(b"Accept", b"application/openmetrics-text"), (b"\x80", b"")]
    )
    assert headers[b"Content-Type"].startswith(b"application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    status, headers, body = await asgi_get(
        app, [(b"accept-encoding", b"gzip")], query=b"name[]=coordination_total_operations"
    )
    assert headers[b"Content-Encoding"] == b"gzip"
    text = gzip.decompress(body).decode()
    assert value(text, "coordination_total_operations", component="h") == 5
    assert "coordination_errors" not in text  # the name[] filter was honoured


def test_wsgi_metrics_app() -> None:
    exporter = CoordinationMetricsExporter({"h": Handler()})
    seen: list[Any] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""}
    body = b"".join(exporter.make_wsgi_app()(environ, lambda s, h: seen.append(s)))
    assert seen == ["200 OK"]
    assert value(body.decode(), "coordination_total_operations", component="h") == 5
