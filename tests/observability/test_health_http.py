"""The health endpoints: application/health+json, pass/warn/fail, 200/503, WSGI and ASGI."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from coordination.observability import CoordinationHealthChecker
from coordination.observability._health_http import HEALTH_MEDIA_TYPE

pytestmark = pytest.mark.usefixtures("clean_environment")


class Settable:
    def __init__(self, status: str = "HEALTHY") -> None:
        self.status = status

    def get_health_status(self) -> dict[str, Any]:
        return {"status": self.status, "api_token": "s3cr3t"}


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served() -> Iterator[tuple[str, Settable]]:
    """The checker's WSGI app under a real server on loopback."""
    component = Settable()
    checker = CoordinationHealthChecker(
        {"handler": component}, config={"health_details": True, "health_cache_seconds": 0}
    )
    server: WSGIServer = make_server(
        "127.0.0.1", 0, checker.make_wsgi_app(), handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", component
    server.shutdown()
    server.server_close()
    thread.join(5)


def get(url: str) -> tuple[int, str, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], json.load(error)


def test_status_codes_follow_health_over_a_real_server(served: tuple[str, Settable]) -> None:
    base, component = served
    code, media_type, document = get(f"{base}/health")
    assert (code, media_type, document["status"]) == (200, HEALTH_MEDIA_TYPE, "pass")
    entry = document["checks"]["handler:status"][0]
    assert entry["status"] == "pass"
    assert entry["details"]["api_token"] == "[redacted]"

    component.status = "DEGRADED"
    assert get(f"{base}/health/ready")[::2] == (200, {"status": "warn"})
    component.status = "UNHEALTHY"
    code, _, document = get(f"{base}/health")
    assert (code, document["status"]) == (503, "fail")
    assert document["checks"]["handler:status"][0]["observedValue"] == "UNHEALTHY"
    # liveness is about the process only: a broken dependency must not get it restarted
    code, _, document = get(f"{base}/health/live")
    assert (code, document["status"]) == (200, "pass")


def test_details_are_hidden_unless_enabled() -> None:
    checker = CoordinationHealthChecker({"handler": Settable("UNHEALTHY")})
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/health"}
    seen: list[Any] = []
    body = b"".join(checker.make_wsgi_app()(environ, lambda s, h: seen.append((s, h))))
    assert seen[0][0] == "503 Service Unavailable"
    assert ("Cache-Control", "no-store") in seen[0][1]
    assert json.loads(body) == {"status": "fail"}


def test_wsgi_refuses_other_methods() -> None:
    app = CoordinationHealthChecker().make_wsgi_app()
    seen: list[Any] = []
    body = b"".join(
        app({"REQUEST_METHOD": "POST", "PATH_INFO": "/health"}, lambda s, h: seen.append((s, h)))
    )
    assert seen[0][0] == "405 Method Not Allowed"
    assert ("Allow", "GET, HEAD") in seen[0][1]
    assert body


async def test_asgi_app_serves_the_same_documents() -> None:
    component = Settable("UNHEALTHY")

    async def ping() -> bool:
        return True

    checker = CoordinationHealthChecker(
        {"handler": component}, config={"health_details": True, "health_cache_seconds": 0}
    )
    checker.add_check("database", ping)
    transport = httpx.ASGITransport(app=checker.make_asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/health")
        assert response.status_code == 503
        assert response.headers["content-type"] == HEALTH_MEDIA_TYPE
        checks = response.json()["checks"]
        assert checks["database:status"][0]["componentType"] == "check"
        assert checks["handler:status"][0]["status"] == "fail"
        component.status = "HEALTHY"
        ready = await client.get("/health/ready")
        assert (ready.status_code, ready.json()) == (200, {"status": "pass"})
        assert (await client.head("/health")).content == b""
        assert (await client.delete("/health")).status_code == 405


async def test_asgi_app_answers_lifespan() -> None:
    app = CoordinationHealthChecker().make_asgi_app()
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
