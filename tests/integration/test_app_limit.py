"""app_adaptive_concurrency: one adaptive limit in front of the whole app (WSGI, ASGI,
Django), beyond it a 503 problem document with Retry-After; once under uvicorn."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client

from coordination import ConfigError, CoordinationASGIMiddleware, CoordinationMiddleware
from coordination.error_handling._adaptive import AdaptiveLimiter
from coordination.integration import CoordinationDjangoMiddleware
from coordination.integration._app_limit import leave_app
from coordination.observability import CoordinationMetricsExporter
from loopback import free_port

from .test_http_servers import Answer, exchange, request, wait_for_port

ONE_AT_A_TIME = {"app_adaptive_concurrency": True, "min_concurrency": 1, "max_concurrency": 1}


class Recording:
    """A fixed limit that keeps every sample it is told."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, bool]] = []

    @property
    def limit(self) -> int:
        return 4

    def on_sample(self, start: float, rtt: float, in_flight: int, dropped: bool) -> int:
        self.samples.append((rtt, dropped))
        return 4


def test_a_request_beyond_the_limit_gets_a_503_before_the_app_runs(
    components: dict[str, Any],
) -> None:
    entered, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        ran.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/slow":
            entered.set()
            release.wait(5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    config = components["config"].replace(**ONE_AT_A_TIME)
    middleware = CoordinationMiddleware(app, **{**components, "config": config})
    client = Client(middleware)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(client.get, "/slow", buffered=True)
        assert entered.wait(5)
        refused = client.get("/fast", buffered=True)
        release.set()
        assert slow.result(5).status_code == 200
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.mimetype == "application/problem+json"
    assert refused.json["status"] == 503
    assert ran == ["/slow"]  # the refused request never reached the app
    assert client.get("/fast", buffered=True).status_code == 200

    snapshot = middleware.http_snapshot()
    assert snapshot.concurrency is not None
    assert (snapshot.concurrency.group, snapshot.concurrency.in_flight) == ("app", 0)
    assert snapshot.concurrency.shed["CRITICAL"] == 1
    stats = middleware.http_stats()
    assert stats["rejected"] == {503: 1}
    assert stats["concurrency"]["limit"] == 1
    text = CoordinationMetricsExporter({"http": middleware}).export_metrics()
    assert 'coordination_concurrency_limit{component="http",group="app"} 1.0' in text
    assert 'coordination_concurrency_in_flight{component="http",group="app"} 0.0' in text
    assert (
        'coordination_concurrency_shed_total{component="http",group="app",severity="CRITICAL"} 1.0'
        in text
    )


def test_off_by_default(components: dict[str, Any]) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("204 No Content", [])
        return []

    middleware = CoordinationMiddleware(app, **components)
    assert Client(middleware).get("/").status_code == 204
    assert middleware.http_snapshot().concurrency is None
    assert middleware.http_stats()["concurrency"] is None


def test_min_above_max_is_a_config_error(components: dict[str, Any]) -> None:
    # refused by the configuration itself, before any middleware is made of it
    with pytest.raises(ConfigError, match="min_concurrency"):
        components["config"].replace(
            app_adaptive_concurrency=True, min_concurrency=9, max_concurrency=3
        )
    with pytest.raises(ConfigError, match="min_concurrency = 9 from configuration mapping"):
        CoordinationMiddleware(
            lambda e, s: [],
            config={"app_adaptive_concurrency": True, "min_concurrency": 9, "max_concurrency": 3},
        )


@pytest.mark.parametrize(
    ("status", "error", "sample"),
    [
        (200, None, False),
        (404, None, False),
        (503, None, True),
        (504, None, True),
        (429, None, True),
        (500, None, None),
        (499, None, None),
        (500, TimeoutError(), True),
        (500, ValueError(), None),
    ],
)
def test_what_a_response_tells_the_limit(
    status: int, error: BaseException | None, sample: bool | None
) -> None:
    algorithm = Recording()
    limiter = AdaptiveLimiter("app", algorithm)
    leave_app(limiter, limiter.enter(), status, error)
    assert [dropped for _, dropped in algorithm.samples] == ([] if sample is None else [sample])
    assert limiter.in_flight == 0


def test_the_django_entry_sheds_beyond_its_limit(django_app: Any) -> None:
    from django.test import RequestFactory, override_settings

    entered, release = threading.Event(), threading.Event()

    def get_response(request: Any) -> Any:
        from django.http import HttpResponse  # type: ignore[import-untyped]

        entered.set()
        release.wait(5)
        return HttpResponse(b"ok")

    with override_settings(COORDINATION={**ONE_AT_A_TIME, "map_resilience_errors": False}):
        middleware = CoordinationDjangoMiddleware(get_response)
    factory = RequestFactory()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(middleware, factory.get("/slow/"))
        assert entered.wait(5)
        refused = middleware(factory.get("/other/"))
        release.set()
        assert slow.result(5).status_code == 200
    assert (refused.status_code, refused["Retry-After"]) == (503, "1")
    assert refused["Content-Type"] == "application/problem+json"
    snapshot = middleware.concurrency_snapshot()
    assert snapshot is not None
    assert (snapshot.in_flight, snapshot.shed["CRITICAL"]) == (0, 1)


async def test_asgi_waits_up_to_bulkhead_wait(components: dict[str, Any]) -> None:
    gate = asyncio.Event()

    async def slow(request: Request) -> PlainTextResponse:
        await gate.wait()
        return PlainTextResponse("slow")

    inner = Starlette(routes=[Route("/slow", slow), Route("/fast", _fast)])
    config = components["config"].replace(**ONE_AT_A_TIME, bulkhead_wait=5.0)
    app = CoordinationASGIMiddleware(inner, **{**components, "config": config})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        first = asyncio.ensure_future(http.get("/slow"))
        await _eventually(lambda: app.http_snapshot().concurrency.in_flight == 1)  # type: ignore[union-attr]
        waiting = asyncio.ensure_future(http.get("/fast"))
        await _eventually(lambda: app.http_snapshot().concurrency.waiting == 1)  # type: ignore[union-attr]
        gate.set()
        assert (await first).status_code == 200
        assert (await waiting).text == "fast"  # it waited for the slot, not refused
    assert app.http_snapshot().concurrency.in_flight == 0  # type: ignore[union-attr]


async def _eventually(check: Callable[[], bool]) -> None:
    for _ in range(5000):
        if check():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("not within 5 s")


async def _fast(request: Request) -> PlainTextResponse:
    return PlainTextResponse("fast")


async def _slow(request: Request) -> JSONResponse:
    await asyncio.sleep(0.3)
    return JSONResponse({"slow": True})


def test_under_uvicorn_load_is_shed_with_retry_after(components: dict[str, Any]) -> None:
    inner = Starlette(routes=[Route("/slow", _slow)])
    config = components["config"].replace(
        app_adaptive_concurrency=True, min_concurrency=2, max_concurrency=2
    )
    app = CoordinationASGIMiddleware(inner, **{**components, "config": config})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        started = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            answers = list(
                pool.map(lambda _: Answer(exchange(port, request("GET", "/slow", {}))), range(6))
            )
        elapsed = time.monotonic() - started
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    statuses = sorted(answer.status for answer in answers)
    shed = [answer for answer in answers if answer.status == 503]
    assert statuses.count(200) >= 2, statuses  # the limit's two slots served
    assert shed, statuses  # six at once against a limit of two: some were shed
    assert all(a.headers["retry-after"] == "1" for a in shed)
    assert all(a.problem()["status"] == 503 for a in shed)
    assert elapsed < 5  # shed at once, not queued behind the slow ones
    snapshot = app.http_snapshot().concurrency
    assert snapshot is not None
    assert snapshot.in_flight == 0
    assert snapshot.shed["CRITICAL"] == len(shed)
