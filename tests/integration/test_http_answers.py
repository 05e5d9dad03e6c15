"""Resilience errors raised inside an app become 503/429/504 problem documents, with the
one-line setup of each framework: Flask's ``app.wsgi_app = ...``, a plain WSGI app,
Starlette/FastAPI through ``add_middleware`` and wrapped around the whole app."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from flask import Flask, jsonify
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client

from coordination import (
    BulkheadFull,
    CircuitOpenError,
    CoordinationASGIMiddleware,
    CoordinationMiddleware,
    OperationTimeout,
    RateLimitExceeded,
)
from coordination.error_handling import CoordinationErrorHandler

PROBLEM = "application/problem+json"

# path -> (the error the route raises, the status and Retry-After it must earn)
CASES: dict[str, tuple[Exception, int, str | None]] = {
    "/open": (CircuitOpenError("payments", 2.2), 503, "3"),
    "/open-now": (CircuitOpenError("payments", 0.0), 503, "1"),
    "/full": (BulkheadFull("payments", 4), 503, "1"),
    "/limited": (RateLimitExceeded("payments", 0.2), 429, "1"),
    "/slow": (OperationTimeout("payments", 1.5), 504, None),
}


def assert_problem(response: Any, status: int, retry_after: str | None) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    assert response.headers.get("retry-after") == retry_after
    document = response.json() if callable(response.json) else response.json
    assert document["status"] == status
    assert "payments" not in document["detail"]  # operation names stay internal


def answered_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if " answered " in r.getMessage()]


class BufferedClient(Client):
    """Werkzeug's test client, reading and closing every body (so requests finish)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["buffered"] = True
        return super().open(*args, **kwargs)


# --- Flask -------------------------------------------------------------------------------


def flask_app(handler: CoordinationErrorHandler) -> Flask:
    app = Flask(__name__)

    for path, (error, _, _) in CASES.items():

        def view(error: Exception = error) -> Any:
            raise error

        app.add_url_rule(path, path, view)

    def charge() -> str:
        return "charged"

    charge = handler.decorate(charge, operation_name="charge")

    @app.get("/charge")
    def charge_view() -> Any:
        return jsonify(charge())

    @app.get("/bug")
    def bug() -> Any:
        raise RuntimeError("view bug")

    @app.get("/own")
    def own() -> Any:
        raise KeyError("mapped by the app")

    @app.errorhandler(KeyError)
    def own_handler(error: KeyError) -> Any:
        return jsonify(app="own handler"), 409

    @app.after_request
    def late(response: Any) -> Any:
        from flask import request

        if request.args.get("late"):
            raise OperationTimeout("audit-log", 0.5)
        return response

    @app.before_request
    def gate() -> Any:
        from flask import request

        if request.args.get("gate"):
            raise RateLimitExceeded("gatekeeper", 7.5)
        return None

    return app


def test_flask_answers_resilience_errors_from_views_and_hooks(
    components: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = flask_app(components["error_handler"])
    app.wsgi_app = CoordinationMiddleware(app.wsgi_app, **components)  # type: ignore[method-assign]
    http = BufferedClient(app)
    caplog.set_level(logging.INFO, "coordination.integration")
    for path, (_, status, retry_after) in CASES.items():
        assert_problem(http.get(path), status, retry_after)
    assert_problem(http.get("/charge?gate=1"), 429, "8")
    assert_problem(http.get("/charge?late=1"), 504, None)  # outside the view's dispatch

    assert http.get("/charge").json == "charged"
    components["error_handler"].circuit_breaker("charge").force_open()  # a real open breaker
    response = http.get("/charge")
    assert_problem(response, 503, response.headers.get("retry-after"))
    assert int(response.headers["retry-after"]) >= 1

    assert http.get("/bug").status_code == 500  # other errors: Flask's own answer
    response = http.get("/own")
    assert (response.status_code, response.json) == (409, {"app": "own handler"})
    head = http.head("/open")
    assert (head.status_code, head.data) == (503, b"")

    stats = app.wsgi_app.http_stats()  # type: ignore[attr-defined]
    assert stats["status_codes"] == {200: 1, 409: 1, 429: 2, 500: 1, 503: 5, 504: 2}
    assert stats["rejected"] == {}
    assert {(r["route"], r["status"]) for r in stats["by_route"]} >= {
        ("/open", "503"),
        ("/limited", "429"),
        ("/slow", "504"),
        ("/charge", "503"),
    }
    lines = answered_lines(caplog)
    assert len(lines) == 9  # once per answered error, with its operation
    assert any("'gatekeeper'" in line and "answered 429" in line for line in lines)


def test_flask_apps_own_handler_for_our_error_wins(components: dict[str, Any]) -> None:
    app = flask_app(components["error_handler"])

    @app.errorhandler(CircuitOpenError)
    def unavailable(error: CircuitOpenError) -> Any:
        return jsonify(mine=True), 418

    app.wsgi_app = CoordinationMiddleware(app.wsgi_app, **components)  # type: ignore[method-assign]
    response = BufferedClient(app).get("/open")
    assert (response.status_code, response.json) == (418, {"mine": True})
    assert BufferedClient(app).get("/slow").status_code == 504  # the others are still ours


def test_flask_apps_own_500_handler_is_kept(components: dict[str, Any]) -> None:
    app = flask_app(components["error_handler"])

    @app.errorhandler(500)
    def server_error(error: Any) -> Any:
        return jsonify(page="ours"), 500

    app.wsgi_app = CoordinationMiddleware(app.wsgi_app, **components)  # type: ignore[method-assign]
    http = BufferedClient(app)
    assert http.get("/bug").json == {"page": "ours"}
    assert http.get("/open").status_code == 503  # views' errors are still answered


def test_flask_mapping_can_be_turned_off(components: dict[str, Any]) -> None:
    app = flask_app(components["error_handler"])
    app.wsgi_app = CoordinationMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, map_resilience_errors=False, **components
    )
    assert BufferedClient(app).get("/open").status_code == 500
    config = components["config"].replace(map_resilience_errors=False)
    app = flask_app(components["error_handler"])
    app.wsgi_app = CoordinationMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, **{**components, "config": config}
    )
    assert BufferedClient(app).get("/limited").status_code == 500


# --- a plain WSGI app ----------------------------------------------------------------------


def plain_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    path = environ["PATH_INFO"]
    if path in CASES:
        raise CASES[path][0]
    if path == "/late":  # the error comes before any byte: the answer can still change
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _late()
    if path == "/streamed":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _streamed()
    start_response("200 OK", [])
    return iter([b"ok"])


def _late() -> Iterator[bytes]:
    yield b""
    raise CircuitOpenError("inventory", 0.5)


def _streamed() -> Iterator[bytes]:
    yield b"first part"
    raise OperationTimeout("inventory", 1.0)


def call(app: Any, path: str, method: str = "GET") -> tuple[list[str], bytes, Any]:
    """One request through a WSGI app as a strict server runs it (PEP 3333 exc_info)."""
    calls: list[str] = []
    state = {"sent": False}

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        if exc_info is not None and state["sent"]:
            raise exc_info[1].with_traceback(exc_info[2])
        calls.append(status)

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "wsgi.input": io.BytesIO(b""),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    result = app(environ, start_response)
    body = b""
    try:
        for chunk in result:
            if chunk:
                state["sent"] = True
            body += chunk
    finally:
        result.close()
    return calls, body, result


def test_plain_wsgi_app_errors_are_answered_until_bytes_are_sent(
    components: dict[str, Any],
) -> None:
    middleware = CoordinationMiddleware(plain_app, **components)
    for path, (_, status, _) in CASES.items():
        calls, body, _ = call(middleware, path)
        assert calls[-1].startswith(str(status))
        assert b'"status":%d' % status in body
    calls, body, _ = call(middleware, "/late")
    assert calls == ["200 OK", "503 Service Unavailable"]  # replaced with exc_info
    assert b'"status":503' in body
    with pytest.raises(OperationTimeout):  # headers are out: the server must abort
        call(middleware, "/streamed")
    stats = middleware.http_stats()
    assert stats["status_codes"] == {429: 1, 500: 1, 503: 4, 504: 1}
    assert stats["exceptions"] == {"OperationTimeout": 1}
    assert stats["in_flight"] == 0


# --- Starlette and FastAPI -------------------------------------------------------------------


def starlette_app() -> Starlette:
    async def raising(request: Request) -> PlainTextResponse:
        raise CASES[request.url.path][0]

    async def streamed(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first part"
            await asyncio.sleep(0)
            raise OperationTimeout("inventory", 1.0)

        return StreamingResponse(chunks())

    async def upload(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    routes = [Route(path, raising) for path in CASES]
    routes += [Route("/streamed", streamed), Route("/upload", upload, methods=["POST"])]
    return Starlette(routes=routes)


def fastapi_app() -> FastAPI:
    app = FastAPI()

    def raising(error: Exception) -> Any:
        async def endpoint() -> None:
            raise error

        return endpoint

    for path, (error, _, _) in CASES.items():
        app.add_api_route(path, raising(error))

    @app.exception_handler(KeyError)
    async def own(request: Any, error: KeyError) -> JSONResponse:
        return JSONResponse({"app": "own handler"}, status_code=409)

    @app.get("/own")
    async def own_route() -> None:
        raise KeyError("mapped by the app")

    return app


def asgi_client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def placements(components: dict[str, Any], make: Any, **options: Any) -> list[Any]:
    """The same app twice: with add_middleware, and wrapped around from outside."""
    inner = make()
    inner.add_middleware(CoordinationASGIMiddleware, **components, **options)
    outer = CoordinationASGIMiddleware(make(), **components, **options)
    return [inner, outer]


def middleware_in(app: Any) -> CoordinationASGIMiddleware:
    if isinstance(app, CoordinationASGIMiddleware):
        return app
    layer: Any = app.middleware_stack
    while not isinstance(layer, CoordinationASGIMiddleware):
        layer = layer.app
    return layer


@pytest.mark.parametrize("make", [starlette_app, fastapi_app])
@pytest.mark.parametrize("placement", ["add_middleware", "outer"])
async def test_asgi_answers_in_both_placements(
    components: dict[str, Any], make: Any, placement: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "coordination.integration")
    app = placements(components, make)[placement == "outer"]
    async with asgi_client(app) as http:
        for path, (_, status, retry_after) in CASES.items():
            assert_problem(await http.get(path), status, retry_after)
        if make is fastapi_app:
            response = await http.get("/own")
            assert (response.status_code, response.json()) == (409, {"app": "own handler"})
    stats = middleware_in(app).http_stats()
    assert stats["status_codes"] == {
        429: 1,
        503: 3,
        504: 1,
        **({409: 1} if make is fastapi_app else {}),
    }
    assert stats["exceptions"] == {}
    assert len(answered_lines(caplog)) == len(CASES)


async def test_asgi_error_after_the_response_started_is_not_rewritten(
    components: dict[str, Any],
) -> None:
    inner, outer = placements(components, starlette_app)
    for app in (inner, outer):
        async with asgi_client(app) as http:
            response = await http.get("/streamed")
        # The status was sent: the error is logged and re-raised, the server cuts the
        # stream short (see the uvicorn test), nothing pretends to be a 503.
        assert (response.status_code, response.content) == (200, b"first part")
        stats = middleware_in(app).http_stats()
        assert stats["status_codes"] == {500: 1}
        # Around the whole app, Starlette's exception handling (where our handlers are
        # registered) reports a handled error after the start as its own RuntimeError.
        late = "OperationTimeout" if app is inner else "RuntimeError"
        assert stats["exceptions"] == {late: 1}


async def test_asgi_mapping_can_be_turned_off(components: dict[str, Any]) -> None:
    for app in placements(components, starlette_app, map_resilience_errors=False):
        async with asgi_client(app) as http:
            assert (await http.get("/open")).status_code == 500


@pytest.mark.parametrize("placement", ["add_middleware", "outer"])
async def test_fastapi_dependency_behind_a_real_open_breaker(
    components: dict[str, Any], placement: str
) -> None:
    """The issue's scenario: a decorated dependency call whose breaker is open."""
    from fastapi import Depends

    handler: CoordinationErrorHandler = components["error_handler"]

    async def fetch_rates() -> dict[str, float]:
        return {"EUR": 1.0}

    rates = handler.decorate(fetch_rates, operation_name="rates")

    def sync_quote() -> str:  # FastAPI runs sync endpoints in a thread pool
        return str(handler.execute_with_error_handling(lambda: "q", operation_name="rates"))

    app = FastAPI()

    @app.get("/rates")
    async def get_rates(current: dict[str, float] = Depends(rates)) -> dict[str, float]:  # noqa: B008
        return current

    @app.get("/quote")
    def quote() -> str:
        return sync_quote()

    wrapped: Any = app
    if placement == "outer":
        wrapped = CoordinationASGIMiddleware(app, **components)
    else:
        app.add_middleware(CoordinationASGIMiddleware, **components)
    async with asgi_client(wrapped) as http:
        assert (await http.get("/rates")).json() == {"EUR": 1.0}
        handler.circuit_breaker("rates").force_open()
        for path in ("/rates", "/quote"):
            response = await http.get(path)
            assert_problem(response, 503, response.headers.get("retry-after"))
            assert 1 <= int(response.headers["retry-after"]) <= 60
    assert middleware_in(wrapped).http_stats()["status_codes"] == {200: 1, 503: 2}


def test_answers_are_in_the_prometheus_series(components: dict[str, Any]) -> None:
    from observability.exposition import value

    app = flask_app(components["error_handler"])
    config = components["config"].replace(expose_endpoints=True)
    app.wsgi_app = CoordinationMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, **{**components, "config": config}
    )
    http = BufferedClient(app)
    for _ in range(2):
        assert http.get("/open").status_code == 503
    assert http.get("/limited").status_code == 429
    text = http.get("/metrics").get_data(as_text=True)
    labels = {"component": "http", "method": "GET"}
    assert (
        value(text, "coordination_http_requests_total", route="/open", status="503", **labels) == 2
    )
    assert (
        value(text, "coordination_http_requests_total", route="/limited", status="429", **labels)
        == 1
    )
