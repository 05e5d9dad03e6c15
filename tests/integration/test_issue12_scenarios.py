"""Issue #12's opening paragraph, written the way a new user writes it: the one-line setup
of each framework, decorators with no components passed, readers built with no arguments.
Nothing is wired by hand; every part must find the process's one set of components."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from flask import Flask

from coordination import (
    CoordinationASGIMiddleware,
    CoordinationEventProcessor,
    CoordinationHealthChecker,
    CoordinationMetricsExporter,
    CoordinationMiddleware,
    EventDeadLettered,
    handle_errors,
)
from coordination.error_handling import CoordinationErrorHandler

PROBLEM = "application/problem+json"
THRESHOLD = 3  # consecutive failures that open the dependency's breaker


class UpstreamDown(ConnectionError):
    """What the user's HTTP client raises while the upstream is down."""


def series(text: str, name: str, **labels: str) -> list[float]:
    """The values of the exposition's ``name`` samples carrying all of ``labels``."""
    values = []
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(key) == value for key, value in labels.items()):
            values.append(float(match.group(2)))
    return values


def assert_the_service_tells_the_truth(
    *,
    answer: Any,
    ready: Any,
    metrics: str,
    operation: str,
    route: str,
    answered_503: int,
) -> None:
    """What the issue says one service must show while the dependency's breaker is open."""
    # An open breaker inside a route: 503 problem+json with Retry-After, never a bare 500.
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.json()["status"] == 503
    # The middleware's readiness probe sees the decorator's breaker.
    assert ready.status_code == 503
    assert ready.json()["status"] == "fail"
    # /metrics has the breaker's state and the retries of that operation ...
    assert series(metrics, "coordination_circuit_breaker_state", breaker=operation) == [2.0]
    retries = series(metrics, "coordination_retries_total", operation=operation)
    assert len(retries) == 1
    assert retries[0] >= 1  # the failed first attempts were retried (max_retries=1)
    # ... and counts the 503 answers by status.
    counted = series(metrics, "coordination_http_requests_total", route=route, status="503")
    assert counted == [float(answered_503)]


async def drive_down(request: Callable[[], Awaitable[Any]]) -> Any:
    """Request until the dependency's breaker opens; its first answer that is not the
    app's own 500 (a bounded number of tries: the breaker must open)."""
    for _ in range(THRESHOLD):
        answer = await request()
        if answer.status_code != 500:
            return answer
    raise AssertionError(f"the breaker did not open after {THRESHOLD} failing requests")


def drive_down_sync(request: Callable[[], Any]) -> Any:
    for _ in range(THRESHOLD):
        answer = request()
        if answer.status_code != 500:
            return answer
    raise AssertionError(f"the breaker did not open after {THRESHOLD} failing requests")


# --- (a) FastAPI: @handle_errors on the dependency call, app.add_middleware(...) ----------


async def test_fastapi_dependency_down_open_breaker_answers_503_and_shows_everywhere() -> None:
    upstream = {"up": True}

    @handle_errors(
        operation_name="rates.fetch",
        max_retries=1,
        base_delay=0,
        circuit_breaker_threshold=THRESHOLD,
        circuit_breaker_timeout=60,
    )
    async def fetch_rates() -> dict[str, float]:
        if not upstream["up"]:
            raise UpstreamDown("rates service refused the connection")
        return {"EUR": 1.0}

    app = FastAPI()

    @app.get("/rates")
    async def get_rates(rates: dict[str, float] = Depends(fetch_rates)) -> dict[str, float]:  # noqa: B008
        return rates

    app.add_middleware(CoordinationASGIMiddleware, config={"expose_endpoints": True})

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        assert (await http.get("/rates")).json() == {"EUR": 1.0}
        assert (await http.get("/health/ready")).status_code == 200
        upstream["up"] = False
        # The upstream's own failures are the app's 500s until the breaker opens (it
        # counts attempts: the second request's first attempt is the third failure).
        first = await drive_down(lambda: http.get("/rates"))
        answers = [first, await http.get("/rates")]
        ready = await http.get("/health/ready")
        metrics = (await http.get("/metrics")).text
    for answer in answers:
        assert_the_service_tells_the_truth(
            answer=answer,
            ready=ready,
            metrics=metrics,
            operation="rates.fetch",
            route="/rates",
            answered_503=2,
        )


# --- (b) Flask: the spec's app.wsgi_app = CoordinationMiddleware(app.wsgi_app) -----------


def test_flask_dependency_down_open_breaker_answers_503_and_shows_everywhere() -> None:
    upstream = {"up": True}

    @handle_errors(
        operation_name="payments.charge",
        max_retries=1,
        base_delay=0,
        circuit_breaker_threshold=THRESHOLD,
        circuit_breaker_timeout=60,
    )
    def charge(order_id: str) -> dict[str, str]:
        if not upstream["up"]:
            raise UpstreamDown("payments service refused the connection")
        return {"order_id": order_id, "charged": "yes"}

    app = Flask(__name__)

    @app.post("/orders/<order_id>")
    def create_order(order_id: str) -> Any:
        return charge(order_id)

    app.wsgi_app = CoordinationMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    # The spec's line as written: no config, so the built-in endpoints stay off.
    client = app.test_client()
    assert client.post("/orders/1", buffered=True).get_json() == {"order_id": "1", "charged": "yes"}
    upstream["up"] = False
    answers = [
        drive_down_sync(lambda: client.post("/orders/1", buffered=True)),
        client.post("/orders/1", buffered=True),
    ]
    health = client.get("/health/ready", buffered=True)
    metrics = client.get("/metrics", buffered=True)
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.get_json()["status"] == 503
    # The endpoints are off by default (expose_endpoints=False): the app's own 404s.
    assert health.status_code == 404
    assert metrics.status_code == 404
    # The same service read through the process's readers, built with no arguments.
    report = CoordinationHealthChecker().check_health()
    assert report["components"]["error_handler"]["open_breakers"] == ["payments.charge"]
    text = CoordinationMetricsExporter().export_metrics()
    assert series(text, "coordination_circuit_breaker_state", breaker="payments.charge") == [2.0]
    (retries,) = series(text, "coordination_retries_total", operation="payments.charge")
    assert retries >= 1
    assert series(
        text, "coordination_http_requests_total", route="/orders/<order_id>", status="503"
    ) == [2.0]


def test_flask_with_endpoints_exposed_shows_the_open_breaker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The spec's line, with the endpoints turned on by the environment (no code change)."""
    monkeypatch.setenv("COORDINATION_EXPOSE_ENDPOINTS", "true")
    upstream = {"up": True}

    @handle_errors(
        operation_name="payments.charge",
        max_retries=1,
        base_delay=0,
        circuit_breaker_threshold=THRESHOLD,
        circuit_breaker_timeout=60,
    )
    def charge(order_id: str) -> dict[str, str]:
        if not upstream["up"]:
            raise UpstreamDown("payments service refused the connection")
        return {"order_id": order_id, "charged": "yes"}

    app = Flask(__name__)

    @app.post("/orders/<order_id>")
    def create_order(order_id: str) -> Any:
        return charge(order_id)

    app.wsgi_app = CoordinationMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    client = app.test_client()
    assert client.get("/health/ready", buffered=True).status_code == 200
    upstream["up"] = False
    answers = [
        drive_down_sync(lambda: client.post("/orders/1", buffered=True)),
        client.post("/orders/1", buffered=True),
    ]
    ready = client.get("/health/ready", buffered=True)
    metrics = client.get("/metrics", buffered=True).get_data(as_text=True)
    for answer in answers:
        assert_the_service_tells_the_truth(
            answer=_FlaskAnswer(answer),
            ready=_FlaskAnswer(ready),
            metrics=metrics,
            operation="payments.charge",
            route="/orders/<order_id>",
            answered_503=2,
        )


class _FlaskAnswer:
    """Flask's test response seen through httpx's names (``json()``, ``text``)."""

    def __init__(self, response: Any) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.text = response.get_data(as_text=True)
        self._json: Callable[[], Any] = response.get_json

    def json(self) -> Any:
        return self._json()


# --- (c) an asyncio event worker, read by no-argument readers ------------------------------


async def test_asyncio_event_worker_shows_in_the_process_readers(tmp_path: Path) -> None:
    handled: list[dict[str, Any]] = []

    async def on_order(event: dict[str, Any], event_type: str) -> dict[str, str]:
        await asyncio.sleep(0)
        handled.append(event)
        return {"status": "stored", "order": str(event["order_id"])}

    processor = CoordinationEventProcessor(
        on_order,
        rules={"order.created": {"required_fields": ["order_id", "amount"]}},
        dead_letter_path=str(tmp_path / "dead.sqlite3"),
    )
    try:
        result = await processor.aprocess_event({"order_id": 1, "amount": 5}, "order.created")
        assert result == {"status": "stored", "order": "1"}
        # The spec catches ValueError around process_event: an invalid event is one, and
        # still dead-lettered (nothing is lost).
        with pytest.raises(ValueError, match="amount") as refused:
            await processor.aprocess_event({"order_id": 2}, "order.created")
        assert isinstance(refused.value, EventDeadLettered)
        assert type(refused.value) is not ValueError  # a library error, typed
        letters = processor.dead_letters.list()
        assert [letter.event for letter in letters] == [{"order_id": 2}]
        report = await processor.dead_letters.areplay()
        assert report.replayed == 1
        assert len(report.failed) == 1  # still invalid: it stays, and the report says why
        failure = report.failure(letters[0].id)
        assert failure is not None
        assert "amount" in str(failure)
        assert handled == [{"order_id": 1, "amount": 5}]

        operation = "event_order.created"
        health = CoordinationHealthChecker().check_health()
        assert health["components"]["error_handler"]["operations"] >= 1
        assert health["components"]["performance_monitor"]["operations"] >= 1
        assert health["components"]["validator"]["validations"] >= 2
        text = CoordinationMetricsExporter().export_metrics()
        assert series(
            text, "coordination_operations_total", operation=operation, component="error_handler"
        )
        assert series(
            text,
            "coordination_operations_total",
            operation=operation,
            component="performance_monitor",
        )
        assert series(text, "coordination_retries_total", operation=operation) == [0.0]
        assert sum(series(text, "coordination_validations_total", result="invalid")) >= 1
    finally:
        processor.close()


# --- (d) configuration layers: config= overrides only the keys it names --------------------


def test_environment_turns_validation_off_under_a_config_mapping(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORDINATION_ENABLE_VALIDATION", "false")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"created"})

    middleware = CoordinationASGIMiddleware(
        app,
        config={"expose_endpoints": True},
        route_rules={"POST /orders": {"required_fields": ["item"]}},
    )
    assert middleware.config.enable_validation is False
    assert middleware.config.expose_endpoints is True

    async def post_without_item() -> int:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            return (await http.post("/orders", json={"quantity": 1})).status_code

    # Validation off, no code change: the body no rule would pass reaches the app.
    assert asyncio.run(post_without_item()) == 201


def test_environment_retries_under_a_config_mapping(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORDINATION_MAX_RETRIES", "7")
    slept: list[float] = []
    handler = CoordinationErrorHandler({"base_delay": 0.1}, sleep=slept.append)
    assert handler.config.max_retries == 7
    assert handler.config.base_delay == 0.1
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) <= 7:
            raise UpstreamDown("not yet")
        return "done"

    # (the default breaker opens after 5 failed attempts; this test is about retries)
    done = handler.execute_with_error_handling(
        flaky, operation_name="flaky", circuit_breaker_threshold=20
    )
    assert done == "done"
    assert len(calls) == 8  # the first try and the environment's 7 retries
    assert len(slept) == 7


# --- readers with no arguments show the middlewares' requests ---------------------------


def test_a_no_argument_exporter_counts_the_requests_of_every_middleware_of_its_set() -> None:
    import gc

    from coordination import Coordination

    def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hi"]

    def get(app: Any, path: str) -> None:
        from werkzeug.test import Client

        assert Client(app).get(path, buffered=True).status_code == 200

    exporter = CoordinationMetricsExporter()  # built before the apps: looked up per scrape
    first, second = CoordinationMiddleware(hello), CoordinationMiddleware(hello)
    isolated = Coordination()
    elsewhere = isolated.wsgi(hello)
    get(first, "/a")
    get(second, "/b")
    get(second, "/b")
    get(elsewhere, "/c")
    # (a plain WSGI app has no route templates: its requests are counted as "unmatched")
    text = exporter.export_metrics()
    assert series(text, "coordination_http_requests_total", component="http") == [1.0]
    assert series(text, "coordination_http_requests_total", component="http_2") == [2.0]
    assert "http_3" not in text  # the isolated set's middleware is not the process's
    own = isolated.metrics_exporter().export_metrics()
    assert series(own, "coordination_http_requests_total", component="http") == [1.0]
    assert "http_2" not in own
    # A middleware that is gone is forgotten (no scrape of a dead app).
    del first
    gc.collect()
    text = exporter.export_metrics()
    assert series(text, "coordination_http_requests_total", component="http") == [2.0]
    assert "http_2" not in text
    isolated.close()
