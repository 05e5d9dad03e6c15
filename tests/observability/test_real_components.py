"""Health and metrics over the REAL validator, error handler, monitor and middleware."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.test import Client

from coordination import CircuitOpenError
from coordination.error_handling import CoordinationErrorHandler
from coordination.integration import CoordinationASGIMiddleware, CoordinationMiddleware
from coordination.observability import CoordinationHealthChecker, CoordinationMetricsExporter
from coordination.performance import CoordinationPerformanceMonitor
from coordination.validation import CoordinationValidator

from .exposition import samples, value

pytestmark = pytest.mark.usefixtures("clean_environment")

CONFIG = {"base_delay": 0, "max_retries": 0, "circuit_breaker_threshold": 2}


def refuse() -> None:
    raise ConnectionRefusedError("payments down")


def test_the_spec_examples_run_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    validator = CoordinationValidator(config={})
    error_handler = CoordinationErrorHandler(config=CONFIG)
    performance_monitor = CoordinationPerformanceMonitor(config={})
    validator.validate({"id": 1}, {"required_fields": ["id", "name"]})
    error_handler.execute_with_error_handling(lambda: "ok", operation_name="lookup")
    with performance_monitor.record_operation("lookup"):
        pass

    # --- the spec's health example, only the import changed ---
    health_checker = CoordinationHealthChecker(
        {
            "validator": validator,
            "error_handler": error_handler,
            "performance_monitor": performance_monitor,
        }
    )
    health_status = health_checker.check_health()
    print(f"System health: {health_status['overall_status']}")

    # --- the spec's metrics example ---
    metrics_exporter = CoordinationMetricsExporter(
        {
            "validator": validator,
            "error_handler": error_handler,
            "performance_monitor": performance_monitor,
        }
    )
    prometheus_metrics = metrics_exporter.export_metrics()
    print(prometheus_metrics)

    out = capsys.readouterr().out
    assert out.startswith("System health: HEALTHY\n")
    text = out.split("\n", 1)[1]
    assert value(text, "coordination_total_operations", component="error_handler") == 1
    mean = value(text, "coordination_response_time_seconds", component="performance_monitor")
    assert 0 <= mean < 0.1
    rule_set = next(iter(validator.get_validation_report()["by_rule_set"]))
    assert (
        value(
            text,
            "coordination_validation_failures_total",
            component="validator",
            rule_set=rule_set,
            code="required",
        )
        == 1
    )
    assert (
        value(
            text,
            "coordination_validations_total",
            component="validator",
            rule_set=rule_set,
            result="invalid",
        )
        == 1
    )
    for name in ("validator", "error_handler", "performance_monitor"):
        assert value(text, "coordination_export_error", component=name) == 0


def test_readiness_flips_to_503_while_a_real_breaker_is_open() -> None:
    handler = CoordinationErrorHandler(config=CONFIG)
    checker = CoordinationHealthChecker(
        {"error_handler": handler}, config={"health_cache_seconds": 0}
    )
    exporter = CoordinationMetricsExporter({"error_handler": handler})
    client = Client(checker.make_wsgi_app())
    assert client.get("/health/ready").status_code == 200

    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            handler.execute_with_error_handling(refuse, operation_name="charge")
    with pytest.raises(CircuitOpenError):
        handler.execute_with_error_handling(refuse, operation_name="charge")

    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert json.loads(ready.data) == {"status": "fail"}
    assert client.get("/health/live").status_code == 200
    text = exporter.export_metrics()
    breaker = {"component": "error_handler", "breaker": "charge"}
    assert value(text, "coordination_circuit_breaker_state", **breaker) == 2  # OPEN
    assert (
        value(
            text,
            "coordination_circuit_breaker_rejections_total",
            component="error_handler",
            operation="charge",
        )
        == 1
    )
    assert (
        value(
            text,
            "coordination_errors_total",
            component="error_handler",
            error_type="ConnectionRefusedError",
        )
        == 2
    )

    handler.reset_circuit_breaker("charge")
    assert client.get("/health/ready").status_code == 200
    text = exporter.export_metrics()
    assert value(text, "coordination_circuit_breaker_state", **breaker) == 0  # CLOSED
    assert (
        value(
            text,
            "coordination_circuit_breaker_transitions_total",
            **breaker,
            transition="CLOSED->OPEN",
        )
        == 1
    )


def test_a_real_monitor_gives_exact_histogram_buckets() -> None:
    monitor = CoordinationPerformanceMonitor(config={})
    for seconds in (0.003, 0.02, 0.2, 3.0):
        monitor.record_duration("query", seconds)
    monitor.record_duration("query", 0.04, success=False, error=TimeoutError("slow"))
    text = CoordinationMetricsExporter({"monitor": monitor}).export_metrics()
    labels = {"component": "monitor", "operation": "query"}
    bucket = "coordination_operation_duration_seconds_bucket"
    assert value(text, bucket, **labels, le="0.005") == 1
    assert value(text, bucket, **labels, le="0.025") == 2
    assert value(text, bucket, **labels, le="0.05") == 3
    assert value(text, bucket, **labels, le="5") == 5
    assert value(text, bucket, **labels, le="+Inf") == 5
    assert value(text, "coordination_operation_duration_seconds_sum", **labels) == pytest.approx(
        3.263
    )
    assert value(text, "coordination_operations_total", **labels, outcome="failure") == 1
    mean = value(text, "coordination_response_time_seconds", component="monitor")
    assert mean == pytest.approx(3.263 / 5)  # the spec's series, from the same snapshots
    summary = CoordinationMetricsExporter({"monitor": monitor}, durations="summary")
    median = value(
        summary.export_metrics(),
        "coordination_operation_duration_seconds",
        **labels,
        quantile="0.5",
    )
    assert median == pytest.approx(0.04, rel=0.01)


def test_process_resources_from_the_monitors_sampler() -> None:
    monitor = CoordinationPerformanceMonitor(config={})
    exporter = CoordinationMetricsExporter({"monitor": monitor})
    assert "coordination_process_threads" not in exporter.export_metrics()  # no sample yet
    with monitor:  # the sampler thread samples at once, then every collection_interval
        deadline = time.monotonic() + 10
        while monitor.sampler.summary()["latest"] is None and time.monotonic() < deadline:
            time.sleep(0.01)
        text = exporter.export_metrics()
    assert value(text, "coordination_process_resident_memory_bytes", component="monitor") > 1e6
    assert value(text, "coordination_process_threads", component="monitor") >= 1
    assert value(text, "coordination_process_cpu_usage_ratio", component="monitor") >= 0


def test_http_series_from_the_real_middleware_under_flask() -> None:
    app = Flask("observed")

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, Any]:
        return {"id": user_id}

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("bug")

    middleware = CoordinationMiddleware(app, config={})
    client = Client(middleware)

    def status_of(path: str) -> int:
        with client.get(path) as response:  # closing it ends the middleware's timing
            return response.status_code

    for user_id in range(5):
        assert status_of(f"/users/{user_id}") == 200
    assert status_of("/boom") == 500
    assert status_of("/nowhere") == 404

    text = CoordinationMetricsExporter({"http": middleware}).export_metrics()
    assert value(text, "coordination_http_responses_total", component="http", status="200") == 5
    assert value(text, "coordination_http_responses_total", component="http", status="500") == 1
    assert value(text, "coordination_http_requests_in_flight", component="http") == 0
    route = {"component": "http", "method": "GET"}
    routes = {
        dict(labels)["route"]
        for name, labels in samples(text)
        if name == "coordination_http_requests_total"
    }
    assert len(routes) == 3  # route templates and "unmatched", never one series per user id
    user_route = next(r for r in routes if r.startswith("/users/"))
    assert (
        value(text, "coordination_http_requests_total", **route, route=user_route, status="200")
        == 5
    )
    assert (
        value(text, "coordination_http_requests_total", **route, route="/boom", status="500") == 1
    )
    assert (
        value(text, "coordination_http_requests_total", **route, route="unmatched", status="404")
        == 1
    )
    assert (
        value(text, "coordination_http_request_duration_seconds_count", **route, route=user_route)
        == 5
    )


async def test_http_series_from_the_real_asgi_middleware_under_starlette() -> None:
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["id"]})

    middleware = CoordinationASGIMiddleware(
        Starlette(routes=[Route("/items/{id:int}", item)]), config={}
    )
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for item_id in range(3):
            assert (await client.get(f"/items/{item_id}")).status_code == 200

    text = CoordinationMetricsExporter({"http": middleware}).export_metrics()
    route = {"component": "http", "method": "GET", "route": "/items/{id:int}"}
    assert value(text, "coordination_http_requests_total", **route, status="200") == 3
    assert value(text, "coordination_http_request_duration_seconds_count", **route) == 3
    assert value(text, "coordination_http_responses_total", component="http", status="200") == 3


def test_a_metrics_only_breaker_exports_what_it_would_have_rejected() -> None:
    handler = CoordinationErrorHandler(
        config={**CONFIG, "breaker_mode": "metrics_only", "open_backoff_multiplier": 2.0}
    )
    for _ in range(5):
        with pytest.raises(ConnectionRefusedError):  # never rejected
            handler.execute_with_error_handling(refuse, operation_name="charge")
    text = CoordinationMetricsExporter({"error_handler": handler}).export_metrics()
    breaker = {"component": "error_handler", "breaker": "charge"}
    assert value(text, "coordination_circuit_breaker_state", **breaker) == 2  # OPEN
    assert value(text, "coordination_circuit_breaker_would_reject_total", **breaker) == 3
    assert value(text, "coordination_circuit_breaker_open_seconds", **breaker) == 30.0
    assert (
        value(
            text,
            "coordination_circuit_breaker_rejections_total",
            component="error_handler",
            operation="charge",
        )
        == 0
    )
