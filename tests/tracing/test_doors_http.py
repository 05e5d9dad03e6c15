"""The middleware's SERVER span per request: real Flask, Django and Starlette in process,
spans recorded by the real OpenTelemetry SDK (in-memory exporter)."""

from __future__ import annotations

from typing import Any

import httpx
from flask import Flask, Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.test import Client

from coordination import CircuitOpenError, RateLimitExceeded
from coordination.integration import CoordinationASGIMiddleware, CoordinationMiddleware
from integration.django_site import django_app  # noqa: F401  (a fixture)

from .doors import (
    PARENT_ID,
    TRACE_ID,
    TRACEPARENT,
    Recorded,
    everything_shown,
    hex_span,
    hex_trace,
    parent_id,
)


def flask_app(recorded: Recorded) -> Flask:
    app = Flask("doors")
    inside = recorded.provider.get_tracer("the-app")

    @app.get("/items/<int:pk>")
    def item(pk: int) -> dict[str, int]:
        with inside.start_as_current_span("load item"):  # the app's own instrumentation
            return {"pk": pk}

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("password=hunter2 leaked into an error")

    @app.get("/open")
    def open_breaker() -> str:
        raise CircuitOpenError("payments", 4.0)

    @app.get("/limited")
    def limited() -> str:
        raise RateLimitExceeded("payments", 0.5)

    @app.get("/stream")
    def stream() -> Response:
        return Response((b"part %d;" % n for n in range(3)), mimetype="text/plain")

    app.wsgi_app = CoordinationMiddleware(app.wsgi_app, config={})  # type: ignore[method-assign]
    return app


# --- WSGI: Flask ---------------------------------------------------------------------------


def test_a_flask_request_continues_the_callers_trace_named_by_its_route(
    recorded: Recorded,
) -> None:
    client = Client(flask_app(recorded))
    response = client.get("/items/7?token=abc", headers={"traceparent": TRACEPARENT}, buffered=True)
    assert response.status_code == 200

    server = recorded.one(SpanKind.SERVER)
    assert server.name == "GET /items/<int:pk>"
    assert (hex_trace(server), parent_id(server)) == (TRACE_ID, PARENT_ID)
    assert server.parent is not None
    assert server.parent.is_remote
    attributes = dict(server.attributes or {})
    assert attributes == {
        "http.request.method": "GET",
        "url.path": "/items/7",
        "url.scheme": "http",
        "http.route": "/items/<int:pk>",
        "http.response.status_code": 200,
    }
    assert server.status.status_code is StatusCode.UNSET
    (child,) = recorded.of_kind(SpanKind.INTERNAL)
    assert child.name == "load item"
    assert parent_id(child) == hex_span(server)  # the app's span is the request's child


def test_without_a_traceparent_the_request_span_starts_a_trace(recorded: Recorded) -> None:
    Client(flask_app(recorded)).get("/items/1", buffered=True)
    server = recorded.one(SpanKind.SERVER)
    assert server.parent is None
    assert hex_trace(server) != TRACE_ID


def test_a_5xx_is_an_error_and_its_message_is_redacted(recorded: Recorded) -> None:
    client = Client(flask_app(recorded))
    assert client.get("/boom", buffered=True).status_code == 500  # Flask's own 500 page
    server = recorded.one(SpanKind.SERVER)
    assert server.name == "GET /boom"
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None
    assert server.attributes["error.type"] == "500"
    assert server.attributes["http.response.status_code"] == 500
    assert "hunter2" not in everything_shown(recorded.spans)


def test_an_answered_resilience_error_names_itself_on_the_span(recorded: Recorded) -> None:
    client = Client(flask_app(recorded))
    assert client.get("/open", buffered=True).status_code == 503
    assert client.get("/limited", buffered=True).status_code == 429
    opened, limited = sorted(recorded.of_kind(SpanKind.SERVER), key=lambda s: s.name != "GET /open")
    assert opened.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in opened.events if e.attributes] == [
        "coordination.CircuitOpenError"
    ]
    # a 429 is the client's to handle: recorded, no error status on a server span
    assert limited.status.status_code is StatusCode.UNSET
    assert limited.attributes is not None
    assert limited.attributes["http.response.status_code"] == 429
    assert [e.name for e in limited.events] == ["exception"]


def test_a_streamed_body_is_in_the_span_until_it_is_closed(recorded: Recorded) -> None:
    middleware = flask_app(recorded).wsgi_app
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/stream",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
    }
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(body) == b"part 0;part 1;part 2;"
    assert recorded.spans == ()  # sent, not closed: the request is not over
    body.close()  # type: ignore[attr-defined]
    assert recorded.one(SpanKind.SERVER).name == "GET /stream"


def test_refused_requests_have_spans_a_bad_method_named_http(recorded: Recorded) -> None:
    client = Client(flask_app(recorded))
    assert client.open("/items/1", method="BREW", buffered=True).status_code == 405
    assert client.get("/nowhere", buffered=True).status_code == 404
    by_status = {
        span.attributes["http.response.status_code"]: span
        for span in recorded.of_kind(SpanKind.SERVER)
        if span.attributes
    }
    refused, unmatched = by_status[405], by_status[404]
    assert refused.name == "HTTP"
    assert refused.attributes is not None
    assert refused.attributes["http.request.method"] == "_OTHER"
    assert refused.attributes["http.request.method_original"] == "BREW"
    assert refused.attributes["http.response.status_code"] == 405
    assert refused.status.status_code is StatusCode.UNSET  # 4xx: not the server's error
    assert unmatched.name == "GET"  # no route template: the method alone
    assert unmatched.attributes is not None
    assert "http.route" not in unmatched.attributes


def test_no_tracer_provider_no_span(recorded: Recorded) -> None:
    from coordination._tracing import use_tracer_provider

    app = flask_app(recorded)
    with use_tracer_provider(None):  # back to the global provider: none is set
        response = Client(app).get("/items/1", headers={"traceparent": TRACEPARENT}, buffered=True)
    assert response.status_code == 200
    assert [span.name for span in recorded.spans] == ["load item"]  # the app's own, alone


def test_a_secret_in_the_path_is_not_exported(recorded: Recorded) -> None:
    app = Flask("secrets")

    @app.get("/reset/<path:rest>")
    def reset(rest: str) -> str:
        return "ok"

    app.wsgi_app = CoordinationMiddleware(app.wsgi_app, config={})  # type: ignore[method-assign]
    Client(app).get("/reset/password=hunter2", buffered=True)
    shown = everything_shown(recorded.spans)
    assert "hunter2" not in shown
    assert "/reset/password=[redacted]" in shown


# A request line a client may send: a traceparent of anything, any method token, a path.
_trace_headers = st.one_of(
    st.just(TRACEPARENT),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    st.builds(lambda n: "00-" + "f" * n, st.integers(0, 10_000)),
    st.from_regex(r"\A[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z"),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    traceparent=_trace_headers,
    tracestate=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
    path=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
)
def test_hostile_trace_headers_never_fail_a_request(
    recorded: Recorded, traceparent: str, tracestate: str, path: str
) -> None:
    recorded.clear()
    app = flask_app(recorded)
    response = Client(app).get(
        "/items/" + path.replace("?", "").replace("#", ""),
        headers={"traceparent": traceparent, "tracestate": tracestate},
        buffered=True,
    )
    assert response.status_code in (200, 404, 400)
    servers = recorded.of_kind(SpanKind.SERVER)
    if traceparent == TRACEPARENT:
        assert [parent_id(server) for server in servers] == [PARENT_ID]
    elif not servers:  # a valid header saying "not sampled": the SDK's sampler agreed
        assert traceparent.endswith(("0", "2", "4", "6", "8", "a", "c", "e"))
    else:
        (server,) = servers
        if server.parent is not None:  # a valid header of its own: continued as sent
            assert format(server.parent.trace_id, "032x") in traceparent


# --- Django, behind the WSGI middleware, with its MIDDLEWARE entry -------------------------


def test_a_django_request_is_named_by_its_url_pattern(
    django_app: Any,  # noqa: F811  (the fixture)
    recorded: Recorded,
) -> None:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    with override_settings(MIDDLEWARE=["coordination.integration.CoordinationDjangoMiddleware"]):
        client = Client(CoordinationMiddleware(WSGIHandler(), config={}))
    assert (
        client.get("/items/3/", headers={"traceparent": TRACEPARENT}, buffered=True).status_code
        == 200
    )
    assert client.get("/unavailable/", buffered=True).status_code == 503
    ok, unavailable = sorted(recorded.of_kind(SpanKind.SERVER), key=lambda s: s.name)
    assert ok.name == "GET /items/<int:pk>/"
    assert parent_id(ok) == PARENT_ID
    assert unavailable.name == "GET /unavailable/"
    assert unavailable.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in unavailable.events if e.attributes] == [
        "coordination.CircuitOpenError"  # Django's middleware entry answered it
    ]


# --- ASGI: Starlette ----------------------------------------------------------------------


def starlette_app(recorded: Recorded) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    inside = recorded.provider.get_tracer("the-app")

    async def item(request: Request) -> JSONResponse:
        with inside.start_as_current_span("load item"):
            return JSONResponse({"pk": request.path_params["pk"]})

    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError("secret=hunter2 in a bug")

    app = Starlette(routes=[Route("/items/{pk:int}", item), Route("/boom", boom)])
    app.add_middleware(CoordinationASGIMiddleware, config={})
    return app


async def test_a_starlette_request_continues_the_trace_named_by_its_route(
    recorded: Recorded,
) -> None:
    transport = httpx.ASGITransport(app=starlette_app(recorded), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/items/5", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200
        assert (await http.get("/boom")).status_code == 500
        assert (await http.request("BREW", "/items/5")).status_code == 405

    by_name = {span.name: span for span in recorded.of_kind(SpanKind.SERVER)}
    assert set(by_name) == {"GET /items/{pk:int}", "GET /boom", "HTTP"}
    ok = by_name["GET /items/{pk:int}"]
    assert (hex_trace(ok), parent_id(ok)) == (TRACE_ID, PARENT_ID)
    assert ok.attributes is not None
    assert ok.attributes["http.route"] == "/items/{pk:int}"
    assert ok.attributes["url.path"] == "/items/5"
    (child,) = recorded.of_kind(SpanKind.INTERNAL)
    assert parent_id(child) == hex_span(ok)

    failed = by_name["GET /boom"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["http.response.status_code"] == 500
    assert failed.attributes["error.type"] == "RuntimeError"  # it reached the middleware
    assert "hunter2" not in everything_shown(recorded.spans)
    assert by_name["HTTP"].attributes is not None
    assert by_name["HTTP"].attributes["http.response.status_code"] == 405


async def test_asgi_non_http_scopes_make_no_span(recorded: Recorded) -> None:
    app = starlette_app(recorded)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert recorded.spans == ()
