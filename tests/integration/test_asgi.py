"""CoordinationASGIMiddleware on FastAPI/Starlette: httpx's ASGI transport, raw ASGI
messages for lifespan, websockets and disconnects, and once under uvicorn on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from coordination.integration import CoordinationASGIMiddleware
from loopback import uvicorn_in_thread

from .conftest import op_count

ORDER_RULES = {"required_fields": ["sku", "qty"]}


def make_app(components: dict[str, Any], **options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.post("/orders")
    async def order(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(3):
                await asyncio.sleep(0)
                yield b"chunk %d\n" % n

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("endpoint bug")

    options.setdefault("route_rules", {"POST /orders": ORDER_RULES})
    app.add_middleware(CoordinationASGIMiddleware, **options, **components)
    return app


def middleware_of(app: FastAPI) -> CoordinationASGIMiddleware:
    layer: Any = app.middleware_stack
    while not isinstance(layer, CoordinationASGIMiddleware):
        layer = layer.app
    return layer


def client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_routes_bodies_streams_and_problems(components: dict[str, Any]) -> None:
    app = make_app(components)
    monitor = components["performance_monitor"]
    async with client(app) as http:
        for n in (1, 2, 3):
            assert (await http.get(f"/items/{n}")).json() == {"item_id": n}
        assert (await http.get("/missing")).status_code == 404

        body = json.dumps({"sku": "A", "qty": 1, "note": ["y" * 100_000] * 30}).encode()
        response = await http.post(
            "/orders", content=body, headers={"content-type": "application/json"}
        )
        assert response.json() == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}

        response = await http.post(
            "/orders", content=b'{"sku": ', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 400

        response = await http.post("/orders", json={"sku": "A"})
        assert response.status_code == 422
        assert [e["code"] for e in response.json()["errors"]] == ["required"]

        response = await http.get("/stream")
        assert response.text == "chunk 0\nchunk 1\nchunk 2\n"

        assert (await http.get("/boom")).status_code == 500

    assert op_count(monitor, "GET /items/{item_id}") == 3
    assert op_count(monitor, "unmatched") == 1
    assert op_count(monitor, "POST /orders") == 3
    assert op_count(monitor, "GET /stream") == 1
    assert monitor.operation_stats()["GET /boom"].failures == 1
    status = middleware_of(app).get_middleware_status()["middleware"]
    assert status["rejected"] == {400: 1, 422: 1}
    assert status["exceptions"] == {"RuntimeError": 1}
    assert status["in_flight"] == 0


async def test_structural_limits(components: dict[str, Any]) -> None:
    config = components["config"].replace(max_header_bytes=1024, max_request_body_bytes=1000)
    app = make_app({**components, "config": config})
    async with client(app) as http:
        response = await http.get("/items/1", headers={"x-big": "a" * 2000})
        assert response.status_code == 431
        assert response.headers["content-type"] == "application/problem+json"
        response = await http.post("/upload", content=b"x" * 5000)
        assert response.status_code == 413

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
            for _ in range(10):
                yield b"z" * 500

        response = await http.post("/upload", content=chunked())
        assert response.status_code == 413
        assert (await http.post("/upload", content=b"x" * 10)).json() == {"bytes": 10}
        assert (await http.request("BREW", "/items/1")).status_code == 405
    status = middleware_of(app).get_middleware_status()["middleware"]
    assert status["rejected"] == {405: 1, 413: 2, 431: 1}


async def test_concurrent_requests_are_counted_exactly(components: dict[str, Any]) -> None:
    app = make_app(components)
    async with client(app) as http:
        responses = await asyncio.gather(*(http.get(f"/items/{n}") for n in range(200)))
    assert [r.status_code for r in responses] == [200] * 200
    assert op_count(components["performance_monitor"], "GET /items/{item_id}") == 200
    status = middleware_of(app).get_middleware_status()["middleware"]
    assert (status["requests"], status["status_codes"]) == (200, {200: 200})


async def test_lifespan_and_websocket_scopes_pass_through(components: dict[str, Any]) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})

    middleware = CoordinationASGIMiddleware(app, **components)
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        sent.append(message)

    await middleware({"type": "lifespan"}, receive, send)
    await middleware({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    assert seen == ["lifespan", "websocket"]
    assert sent == [{"type": "lifespan.startup.complete"}]
    assert middleware.get_middleware_status()["middleware"]["requests"] == 0


async def test_a_client_disconnect_is_counted_not_failed(components: dict[str, Any]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        message = await receive()
        if message["type"] == "http.disconnect":
            return  # the client is gone: stop streaming

    middleware = CoordinationASGIMiddleware(app, **components)
    messages = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        messages.append(message)

    scope = {"type": "http", "method": "GET", "path": "/feed", "headers": []}
    await middleware(scope, receive, send)
    status = middleware.get_middleware_status()["middleware"]
    assert status["client_disconnects"] == 1
    assert status["status_codes"] == {499: 1}
    stats = components["performance_monitor"].operation_stats()["unmatched"]
    assert (stats.count, stats.failures) == (1, 0)


def test_under_uvicorn_on_loopback(components: dict[str, Any]) -> None:
    app = make_app(components)
    with uvicorn_in_thread(app, lifespan="on") as url, httpx.Client(base_url=url) as http:
        assert http.get("/items/5").json() == {"item_id": 5}
        with http.stream("GET", "/stream") as response:
            assert b"".join(response.iter_bytes()) == b"chunk 0\nchunk 1\nchunk 2\n"
        invalid = b"{"
        headers = {"content-type": "application/json"}
        assert http.post("/orders", content=invalid, headers=headers).status_code == 400
    status = middleware_of(app).get_middleware_status()["middleware"]
    assert status["status_codes"] == {200: 2, 400: 1}
    assert status["in_flight"] == 0


@pytest.mark.parametrize("path", ["/metrics", "/health", "/health/ready", "/coordination"])
async def test_built_in_endpoints(components: dict[str, Any], path: str) -> None:
    config = components["config"].replace(expose_endpoints=True)
    app = make_app({**components, "config": config})
    async with client(app) as http:
        await http.get("/items/1")
        response = await http.get(path)
    assert response.status_code == 200
    if path == "/metrics":
        assert 'operation="GET /items/{item_id}"' in response.text
    assert middleware_of(app).get_middleware_status()["middleware"]["requests"] == 1
