"""One set of components per process: a decorated dependency's open breaker is what the
middleware's /health/ready and /metrics report, on Flask, FastAPI and Django, with the
one-line setup of each and no components passed anywhere."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from flask import Flask
from werkzeug.test import Client

from coordination import (
    CircuitOpenError,
    CoordinationASGIMiddleware,
    CoordinationHealthChecker,
    CoordinationMetricsExporter,
    CoordinationMiddleware,
    default_coordination,
    handle_errors,
)
from coordination.error_handling import default_error_handler
from coordination.observability import StatusPage
from loopback import free_port, uvicorn_in_thread
from observability.exposition import samples

pytestmark = pytest.mark.usefixtures("clean_environment")

DEPENDENCY = "payments.charge"
# Opens after two failed calls; one fast retry each, so retry series have something to say.
POLICY: dict[str, Any] = {
    "operation_name": DEPENDENCY,
    "max_retries": 1,
    "base_delay": 0,
    "circuit_breaker_threshold": 4,  # attempts: two calls of two attempts each
    "circuit_breaker_timeout": 60,
}
ENDPOINTS = {"expose_endpoints": True}


class Upstream:
    """The payment service: down until told otherwise."""

    def __init__(self) -> None:
        self.calls = 0

    def charge(self, amount: int) -> dict[str, Any]:
        self.calls += 1
        raise ConnectionError("payments upstream is down")


def assert_breaker_visible(ready_status: int, ready_body: Any, metrics_text: str) -> None:
    """What an orchestrator and a scraper must see once the dependency's breaker is OPEN."""
    assert ready_status == 503
    assert ready_body["status"] == "fail"
    found = samples(metrics_text)
    state = {
        labels: v
        for (name, labels), v in found.items()
        if name == "coordination_circuit_breaker_state"
    }
    assert state[frozenset({("breaker", DEPENDENCY), ("component", "error_handler")})] == 2.0
    retries = found[
        (
            "coordination_retries_total",
            frozenset({("operation", DEPENDENCY), ("component", "error_handler")}),
        )
    ]
    assert retries == 2.0  # one retry in each of the two calls that opened the breaker


def http_requests(metrics_text: str, status: str) -> float:
    labels = {"component": "http", "method": "POST", "route": "/pay", "status": status}
    return samples(metrics_text)[("coordination_http_requests_total", frozenset(labels.items()))]


# --- Flask, the spec's one line ---------------------------------------------------------


def flask_service(upstream: Upstream) -> Flask:
    @handle_errors(**POLICY)
    def charge(amount: int) -> dict[str, Any]:
        return upstream.charge(amount)

    app = Flask("one_set")

    @app.post("/pay")
    def pay() -> Any:
        try:
            return charge(10)
        except CircuitOpenError:
            return {"status": "unavailable"}, 503
        except ConnectionError:
            return {"status": "upstream failed"}, 502

    app.wsgi_app = CoordinationMiddleware(app.wsgi_app, config=ENDPOINTS)  # type: ignore[method-assign]
    return app


def test_flask_readiness_and_metrics_show_a_decorated_dependencys_open_breaker() -> None:
    upstream = Upstream()
    client = Client(flask_service(upstream))
    assert client.get("/health/ready", buffered=True).status_code == 200  # nothing has failed yet
    assert [client.post("/pay", buffered=True).status_code for _ in range(3)] == [502, 502, 503]
    assert upstream.calls == 4  # two calls, one retry each; the third was refused
    ready = client.get("/health/ready", buffered=True)
    metrics = client.get("/metrics", buffered=True).get_data(as_text=True)
    assert_breaker_visible(ready.status_code, ready.json, metrics)
    # The route the requests came through is in the same exposition.
    assert http_requests(metrics, "503") == 1


# --- FastAPI / Starlette: add_middleware, async dependency -------------------------------


def fastapi_service(upstream: Upstream) -> FastAPI:
    @handle_errors(**POLICY)
    async def charge(amount: int) -> dict[str, Any]:
        await asyncio.sleep(0)
        return upstream.charge(amount)

    app = FastAPI()

    @app.post("/pay")
    async def pay() -> Any:
        from fastapi.responses import JSONResponse

        try:
            return await charge(10)
        except CircuitOpenError:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        except ConnectionError:
            return JSONResponse({"status": "upstream failed"}, status_code=502)

    app.add_middleware(CoordinationASGIMiddleware, config=ENDPOINTS)
    return app


async def test_fastapi_readiness_and_metrics_show_a_decorated_dependencys_open_breaker() -> None:
    upstream = Upstream()
    transport = httpx.ASGITransport(app=fastapi_service(upstream))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        assert (await http.get("/health/ready")).status_code == 200
        codes = [(await http.post("/pay")).status_code for _ in range(3)]
        assert codes == [502, 502, 503]
        ready = await http.get("/health/ready")
        metrics = (await http.get("/metrics")).text
    assert_breaker_visible(ready.status_code, ready.json(), metrics)
    assert http_requests(metrics, "502") == 2


# --- Django: its WSGI application, wrapped -----------------------------------------------


def _django_urls(upstream: Upstream) -> types.ModuleType:
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    @handle_errors(**POLICY)
    def charge(amount: int) -> dict[str, Any]:
        return upstream.charge(amount)

    def pay(request: HttpRequest) -> JsonResponse:
        try:
            return JsonResponse(charge(10))
        except CircuitOpenError:
            return JsonResponse({"status": "unavailable"}, status=503)
        except ConnectionError:
            return JsonResponse({"status": "upstream failed"}, status=502)

    module = types.ModuleType("coordination_test_one_set_urls")
    module.urlpatterns = [path("pay/", pay)]  # type: ignore[attr-defined]
    return module


@pytest.fixture
def django_wsgi() -> Iterator[Callable[[Upstream], Any]]:
    pytest.importorskip("django")
    from django.conf import settings
    from django.test.utils import override_settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test-only",
            ROOT_URLCONF="coordination_test_one_set_urls",
            ALLOWED_HOSTS=["localhost", "testserver"],
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            LOGGING_CONFIG=None,
        )
    overrides: list[Any] = []

    def build(upstream: Upstream) -> Any:
        from django.core.wsgi import get_wsgi_application

        sys.modules["coordination_test_one_set_urls"] = _django_urls(upstream)
        override = override_settings(ROOT_URLCONF="coordination_test_one_set_urls")
        override.enable()
        overrides.append(override)
        return get_wsgi_application()

    yield build
    for override in overrides:
        override.disable()
    sys.modules.pop("coordination_test_one_set_urls", None)


def test_django_readiness_and_metrics_show_a_decorated_dependencys_open_breaker(
    django_wsgi: Callable[[Upstream], Any],
) -> None:
    upstream = Upstream()
    client = Client(CoordinationMiddleware(django_wsgi(upstream), config=ENDPOINTS))
    assert [client.post("/pay/", buffered=True).status_code for _ in range(3)] == [502, 502, 503]
    ready = client.get("/health/ready", buffered=True)
    metrics = client.get("/metrics", buffered=True).get_data(as_text=True)
    assert_breaker_visible(ready.status_code, ready.json, metrics)


# --- every door, one report ----------------------------------------------------------------


def test_readers_with_no_arguments_show_every_door_of_the_process() -> None:
    from coordination import (
        CoordinationEventProcessor,
        CoordinationServiceWrapper,
        coordinate_operation,
        track_performance,
        validate_input,
    )

    @track_performance("timed.job")
    def job() -> int:
        return 1

    @validate_input({"required_fields": ["sku"]})
    def order(data: dict[str, Any]) -> str:
        return str(data["sku"])

    @coordinate_operation({"required_fields": ["user_id"]}, {"max_retries": 0}, "update")
    def update(user_id: str) -> str:
        return user_id

    class Legacy:
        def lookup(self, key: str) -> str:
            return key

    lookup = CoordinationServiceWrapper(Legacy()).wrap_method("lookup")
    processor = CoordinationEventProcessor(dead_letter_path=":memory:")
    flask = Client(CoordinationMiddleware(Flask("doors").wsgi_app))

    job(), order({"sku": "a"}), update("7"), lookup("k")
    processor.process_event({"user_id": "1"}, "signup")
    flask.get("/nowhere", buffered=True)

    coordination = default_coordination()
    assert coordination.error_handler is default_error_handler()
    expected = {"update", "lookup", "event_signup"}
    handled = set(coordination.error_handler.operation_stats())
    assert expected <= handled, handled
    timed = set(coordination.monitor.operation_stats())
    assert {"timed.job", "update", "lookup", "unmatched"} <= timed, timed

    health = CoordinationHealthChecker().check_health()
    assert health["components"]["error_handler"]["operations"] == len(handled)
    assert health["components"]["performance_monitor"]["operations"] == len(timed)
    assert health["components"]["validator"]["validations"] >= 2
    exposition = CoordinationMetricsExporter().export_metrics()
    for name in [*expected, "timed.job"]:
        assert f'operation="{name}"' in exposition, name
    page_rows = {row["name"] for row in StatusPage().snapshot()["operations"]}
    assert {*expected, "timed.job", "unmatched"} <= page_rows
    from opentelemetry.sdk.metrics import MeterProvider

    from coordination.observability import OpenTelemetryBridge

    bridge = OpenTelemetryBridge(meter_provider=MeterProvider())
    # The process's set, and (as the exporter shows them) its event processor's store.
    read = dict(bridge.collector.components)
    assert read.pop("events") is processor
    assert read == coordination.components()


def test_the_process_set_is_made_once_even_when_threads_race_on_first_use() -> None:
    import threading

    from coordination.testing import reset_default_coordination

    for _ in range(5):
        reset_default_coordination()
        barrier = threading.Barrier(8)
        seen: list[Any] = []

        def first_use(barrier: threading.Barrier, seen: list[Any]) -> None:
            barrier.wait()
            seen.append((default_coordination(), default_error_handler()))

        threads = [threading.Thread(target=first_use, args=(barrier, seen)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sets = {id(s) for s, _ in seen}
        handlers = {id(h) for _, h in seen}
        assert len(sets) == 1
        assert len(handlers) == 1
        assert seen[0][0].error_handler is seen[0][1]


def test_reset_gives_new_components_and_reads_the_environment_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coordination.testing import reset_default_coordination

    before = default_coordination()
    monkeypatch.setenv("COORDINATION_MAX_RETRIES", "7")
    assert default_coordination() is before  # made once: the environment is read once
    reset_default_coordination()
    after = default_coordination()
    assert after is not before
    assert after.error_handler is default_error_handler() is not before.error_handler
    assert after.config.max_retries == after.error_handler.config.max_retries == 7


def test_reset_forgets_the_process_wide_retry_hooks() -> None:
    from coordination.error_handling import get_on_retry_hooks, set_on_retry_hooks
    from coordination.testing import reset_default_coordination

    seen: list[int] = []
    set_on_retry_hooks([lambda details: seen.append(details.attempt)])
    try:
        reset_default_coordination()
        assert get_on_retry_hooks() == ()

        @handle_errors(max_retries=1, base_delay=0)
        def flaky(calls: list[int] = []) -> str:  # noqa: B006 - counts calls across runs
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("first attempt")
            return "ok"

        assert flaky() == "ok"
        assert seen == []  # the earlier test's hook saw nothing of this one
    finally:
        set_on_retry_hooks(None)


# --- under real servers --------------------------------------------------------------------

GUNICORN_APP = """
from flask import Flask

from coordination import CircuitOpenError, CoordinationMiddleware, handle_errors

app = Flask(__name__)


@handle_errors(operation_name="payments.charge", max_retries=1, base_delay=0,
               circuit_breaker_threshold=4, circuit_breaker_timeout=60)
def charge(amount):
    raise ConnectionError("payments upstream is down")


@app.post("/pay")
def pay():
    try:
        return charge(10)
    except CircuitOpenError:
        return {"status": "unavailable"}, 503
    except ConnectionError:
        return {"status": "upstream failed"}, 502


app.wsgi_app = CoordinationMiddleware(app.wsgi_app, config={"expose_endpoints": True})
"""


def _status(client: httpx.Client, method: str, path: str) -> int:
    return client.request(method, path).status_code


@pytest.mark.slow
def test_under_gunicorn(tmp_path: Path) -> None:
    (tmp_path / "one_set_app.py").write_text(GUNICORN_APP, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            # One worker: breaker state is per process (several workers' scrapes merge
            # counters, docs/observability.md, but each worker keeps its own breaker).
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(tmp_path),
            "--log-level",
            "warning",
            "one_set_app:app",
        ],
        env=env,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert http.get("/health/ready").status_code == 200
                    break
                except httpx.TransportError:
                    assert server.poll() is None, "gunicorn exited"
                    assert time.monotonic() < deadline, "gunicorn did not start"
                    time.sleep(0.05)
            assert [_status(http, "POST", "/pay") for _ in range(3)] == [502, 502, 503]
            ready = http.get("/health/ready")
            metrics = http.get("/metrics").text
    finally:
        server.terminate()
        server.wait(15)
    assert_breaker_visible(ready.status_code, ready.json(), metrics)


@pytest.mark.slow
def test_under_uvicorn() -> None:
    app = fastapi_service(Upstream())
    with (
        uvicorn_in_thread(app, lifespan="on") as url,
        httpx.Client(base_url=url, timeout=5) as http,
    ):
        assert http.get("/health/ready").status_code == 200
        assert [_status(http, "POST", "/pay") for _ in range(3)] == [502, 502, 503]
        ready = http.get("/health/ready")
        metrics = http.get("/metrics").text
    assert_breaker_visible(ready.status_code, ready.json(), metrics)
