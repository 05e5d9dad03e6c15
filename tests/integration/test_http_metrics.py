"""``coordination_http_requests_total{method,route,status}`` after real requests, read back
with prometheus_client's parser from the middleware's own /metrics endpoint."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.test import Client

from coordination.integration import CoordinationASGIMiddleware, CoordinationMiddleware
from coordination.integration._http import HttpCounters
from loopback import free_port
from observability.exposition import samples, value

pytestmark = pytest.mark.usefixtures("clean_environment")

USER_RULES = {"POST /users": {"required_fields": ["name"]}}
CONFIG = {"expose_endpoints": True, "client_rate_limit": "5/m"}


def http_requests(text: str, method: str, route: str, status: str) -> float:
    labels = {"component": "http", "method": method, "route": route, "status": status}
    return value(text, "coordination_http_requests_total", **labels)


def flask_app() -> Flask:
    app = Flask("metered")

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, Any]:
        return {"id": user_id}

    @app.post("/users")
    def create() -> tuple[dict[str, Any], int]:
        return {"name": (request.get_json() or {})["name"]}, 201

    return app


def test_wsgi_metrics_endpoint_counts_by_method_route_and_status() -> None:
    middleware = CoordinationMiddleware(flask_app(), config=CONFIG, route_rules=USER_RULES)
    client = Client(middleware)

    def call(method: str, path: str, **kwargs: Any) -> int:
        with client.open(path, method=method, **kwargs) as response:
            return response.status_code

    assert call("GET", "/users/1") == 200
    assert call("GET", "/users/2") == 200
    assert call("POST", "/users", json={"name": "ada"}) == 201
    assert call("POST", "/users", json={"nickname": "ada"}) == 422
    assert call("GET", "/nowhere") == 404
    assert call("GET", "/users/3") == 429  # the sixth request of this client in a minute
    assert call("BREW", "/users/1") == 405  # an unknown method never becomes a label

    with client.get("/metrics") as scrape:
        assert scrape.status_code == 200
        text = scrape.get_data(as_text=True)

    route = "/users/<int:user_id>"
    assert http_requests(text, "GET", route, "200") == 2
    assert http_requests(text, "GET", route, "429") == 1
    assert http_requests(text, "POST", "/users", "201") == 1
    assert http_requests(text, "POST", "/users", "422") == 1
    assert http_requests(text, "GET", "unmatched", "404") == 1
    assert http_requests(text, "_OTHER", "unmatched", "405") == 1
    assert value(text, "coordination_http_rate_limited_total", component="http") == 1
    assert value(text, "coordination_http_rejected_requests_total", component="http", status="429")
    assert value(text, "coordination_http_responses_total", component="http", status="200") == 2
    # the scrape itself is not an app request; the components are exported beside "http"
    assert all(
        dict(labels)["route"] != "/metrics"
        for name, labels in samples(text)
        if name == "coordination_http_requests_total"
    )
    assert value(text, "coordination_export_error", component="http") == 0
    assert value(text, "coordination_export_error", component="validator") == 0


async def test_asgi_metrics_endpoint_counts_by_method_route_and_status() -> None:
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["id"]})

    async def create(request: Request) -> JSONResponse:
        return JSONResponse(await request.json(), status_code=201)

    app = Starlette(
        routes=[Route("/items/{id:int}", item), Route("/items", create, methods=["POST"])]
    )
    middleware = CoordinationASGIMiddleware(
        app, config=CONFIG, route_rules={"POST /items": {"required_fields": ["sku"]}}
    )
    transport = httpx.ASGITransport(app=middleware)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/items/1")).status_code == 200
        assert (await client.post("/items", json={"sku": "a"})).status_code == 201
        assert (await client.post("/items", json={"qty": 1})).status_code == 422
        assert (await client.get("/missing")).status_code == 404
        assert (await client.get("/items/2")).status_code == 200
        assert (await client.get("/items/3")).status_code == 429
        text = (await client.get("/metrics")).text

    assert http_requests(text, "GET", "/items/{id:int}", "200") == 2
    assert http_requests(text, "GET", "/items/{id:int}", "429") == 1
    assert http_requests(text, "POST", "/items", "201") == 1
    assert http_requests(text, "POST", "/items", "422") == 1
    assert http_requests(text, "GET", "unmatched", "404") == 1
    assert value(text, "coordination_http_rate_limited_total", component="http") == 1
    labels = {"component": "http", "method": "GET", "route": "/items/{id:int}"}
    assert value(text, "coordination_http_request_duration_seconds_count", **labels) == 3


def test_the_metrics_endpoint_shows_redis_errors_when_redis_is_used() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: every command fails
    config = {**CONFIG, "redis_url": dead, "redis_namespace": "metrics-test"}
    client = Client(CoordinationMiddleware(flask_app(), config=config))
    with client.get("/users/1", environ_base={"REMOTE_ADDR": "10.0.0.7"}) as response:
        assert response.status_code == 200  # the local policy: limited in process, served
    with client.get("/metrics") as scrape:
        text = scrape.get_data(as_text=True)
    assert value(text, "coordination_redis_errors_total", component="rate_limit") >= 1


def test_route_label_sets_are_bounded() -> None:
    counters = HttpCounters(max_routes=3)
    for n in range(10):
        counters.count("GET", f"/generated/{n}", 200)
    counters.count("GET", "/generated/0", 799)  # outside the HTTP range: grouped by class
    rows = {(r["route"], r["status"]): r["count"] for r in counters.by_route()}
    assert rows == {
        ("/generated/0", "200"): 1,
        ("/generated/1", "200"): 1,
        ("/generated/2", "200"): 1,
        ("__overflow__", "200"): 7,
        ("__overflow__", "7xx"): 1,
    }
    assert sum(counters.snapshot().status_codes.values()) == 11
