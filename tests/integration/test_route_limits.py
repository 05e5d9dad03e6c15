"""The middleware's per-route limits and its rate-limit headers: Flask, Starlette and
Django in process, Redis shared across two middleware, and a real uvicorn."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client

from coordination import ConfigError
from coordination.integration import CoordinationASGIMiddleware, CoordinationMiddleware
from loopback import uvicorn_in_thread

pytestmark = pytest.mark.usefixtures("clean_environment")


def flask_app() -> Flask:
    app = Flask("routes")

    @app.route("/orders", methods=["GET", "POST"])
    def orders() -> str:
        return "orders"

    @app.get("/items/<int:item>")
    def item(item: int) -> str:
        return f"item {item}"

    return app


def starlette_app() -> Starlette:
    async def orders(request: Request) -> PlainTextResponse:
        return PlainTextResponse("orders")

    async def item(request: Request) -> PlainTextResponse:
        return PlainTextResponse("item")

    return Starlette(
        routes=[
            Route("/orders", orders, methods=["GET", "POST"]),
            Route("/items/{item_id}", item),
        ]
    )


def call(client: Client, method: str, path: str, address: str = "10.0.0.1") -> Any:
    response = client.open(path, method=method, environ_base={"REMOTE_ADDR": address})
    response.close()
    return response


def test_a_route_limit_holds_each_client_on_that_route_and_method_only() -> None:
    middleware = CoordinationMiddleware(flask_app(), route_limits={"POST /orders": "2/m"})
    client = Client(middleware)
    assert [call(client, "POST", "/orders").status_code for _ in range(3)] == [200, 200, 429]
    assert call(client, "GET", "/orders").status_code == 200  # another method: not limited
    assert call(client, "POST", "/orders", "10.0.0.2").status_code == 200  # another client
    refused = call(client, "POST", "/orders")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    assert refused.headers["RateLimit-Policy"] == '"route";q=2;w=60'
    assert refused.headers["RateLimit"] == '"route";r=0;t=60'
    assert "the route rate limit of 2/60s on POST /orders" in refused.get_data(as_text=True)
    stats = middleware.http_stats()
    assert stats["rate_limited"] == 2
    assert stats["client_rate_limit"]["routes"] == {"POST /orders": "2/60s"}
    by_route = {(r["method"], r["route"], r["status"]): r["count"] for r in stats["by_route"]}
    assert by_route[("POST", "/orders", "429")] == 2  # counted under the route's template


def test_the_template_is_limited_not_the_path_and_the_client_limit_comes_first() -> None:
    middleware = CoordinationMiddleware(
        flask_app(),
        client_rate_limit="3/m",
        route_limits={"/items/<int:item>": "1/m"},  # no method: every method
    )
    client = Client(middleware)
    assert call(client, "GET", "/items/1").status_code == 200
    refused = call(client, "GET", "/items/2")  # the same template
    assert refused.status_code == 429
    assert "on /items/<int:item>" in refused.get_data(as_text=True)
    assert call(client, "GET", "/orders").status_code == 200  # the client's third
    spent = call(client, "GET", "/orders")
    assert spent.status_code == 429
    assert "the client rate limit of 3/60s" in spent.get_data(as_text=True)
    assert spent.headers["RateLimit-Policy"] == '"client";q=3;w=60'


def test_every_answer_carries_the_headers_when_asked_in_both_styles() -> None:
    middleware = CoordinationMiddleware(
        flask_app(),
        client_rate_limit="2/s;3/m",
        route_limits={"POST /orders": "5/s"},
        rate_limit_headers="always",
        rate_limit_header_style="both",
    )
    client = Client(middleware)
    first = call(client, "POST", "/orders")
    assert first.status_code == 200
    assert first.headers["RateLimit-Policy"] == (
        '"client-1s";q=2;w=1, "client-60s";q=3;w=60, "route";q=5;w=1'
    )
    assert (
        first.headers["RateLimit"] == '"client-1s";r=1;t=1, "client-60s";r=2;t=20, "route";r=4;t=1'
    )
    # the window with the least left
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == (
        "2",
        "1",
    )
    second = call(client, "GET", "/orders")  # no route limit for GET: only the client's
    assert second.headers["RateLimit"] == '"client-1s";r=0;t=1, "client-60s";r=1;t=40'
    assert second.headers["X-RateLimit-Remaining"] == "0"


def test_headers_can_be_switched_off_or_be_the_x_trio_only() -> None:
    quiet = Client(
        CoordinationMiddleware(flask_app(), client_rate_limit="1/m", rate_limit_headers="never")
    )
    call(quiet, "GET", "/orders")
    refused = call(quiet, "GET", "/orders")
    assert refused.status_code == 429
    assert "RateLimit" not in refused.headers
    assert "Retry-After" in refused.headers
    trio = Client(
        CoordinationMiddleware(
            flask_app(), client_rate_limit="1/m", rate_limit_header_style="x-ratelimit"
        )
    )
    assert "X-RateLimit-Limit" not in call(trio, "GET", "/orders").headers  # "rejected"
    refused = call(trio, "GET", "/orders")
    assert "RateLimit-Policy" not in refused.headers
    assert (
        refused.headers["X-RateLimit-Limit"],
        refused.headers["X-RateLimit-Remaining"],
        refused.headers["X-RateLimit-Reset"],
    ) == ("1", "0", "60")


def test_the_configuration_s_text_form_and_its_errors() -> None:
    middleware = CoordinationMiddleware(
        flask_app(), config={"route_limits": "POST /orders=1/m, /items/<int:item>=5/s;10/m"}
    )
    client = Client(middleware)
    assert [call(client, "POST", "/orders").status_code for _ in range(2)] == [200, 429]
    with pytest.raises(ConfigError, match=r"route_limits = .* route 'POST /orders': expected"):
        CoordinationMiddleware(flask_app(), route_limits={"POST /orders": "often"})
    with pytest.raises(ConfigError, match="route key 'orders'"):
        CoordinationMiddleware(flask_app(), config={"route_limits": "orders=1/s"})
    with pytest.raises(ConfigError, match="rate_limit_headers"):
        CoordinationMiddleware(flask_app(), rate_limit_headers="sometimes")


def test_a_key_naming_no_route_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        middleware = CoordinationMiddleware(flask_app(), route_limits={"POST /order": "1/s"})
        call(Client(middleware), "GET", "/orders")
    assert (
        "route_limits key 'POST /order' matches no route of the app; did you mean "
        "'POST /orders'?: its limits are never applied" in caplog.text
    )


def test_route_limits_need_route_templates() -> None:
    def plain(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b""]

    with pytest.raises(ConfigError, match="route_limits need route templates"):
        CoordinationMiddleware(plain, route_limits={"/x": "1/s"})


async def test_asgi_route_limits_and_headers_on_every_answer() -> None:
    middleware = CoordinationASGIMiddleware(
        starlette_app(),
        route_limits={"/items/{item_id}": "2/m"},
        rate_limit_headers="always",
    )
    transport = httpx.ASGITransport(app=middleware, client=("10.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.get("/items/1")
        assert first.status_code == 200
        assert first.headers["ratelimit"] == '"route";r=1;t=30'
        assert (await client.get("/items/2")).status_code == 200
        refused = await client.get("/items/3")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "30"
        assert refused.headers["ratelimit-policy"] == '"route";q=2;w=60'
        assert "ratelimit" not in (await client.get("/orders")).headers  # not limited


def test_django_routes_are_limited_by_their_resolver_template(django_app: Any) -> None:
    middleware = CoordinationMiddleware(django_app, route_limits={"GET /items/<int:pk>/": "1/m"})
    client = Client(middleware)
    assert client.get("/items/1/", buffered=True).status_code == 200
    refused = client.get("/items/2/", buffered=True)
    assert refused.status_code == 429
    assert refused.headers["RateLimit"] == '"route";r=0;t=60'
    assert client.post("/orders/", json={"sku": "A"}, buffered=True).status_code == 200


@pytest.mark.redis
def test_two_middleware_share_a_route_limit_through_redis(redis_url: str, namespace: str) -> None:
    config = {
        "redis_url": redis_url,
        "redis_namespace": namespace,
        "route_limits": "POST /orders=3/m;100/h",
    }
    first = Client(CoordinationMiddleware(flask_app(), config=config))
    second = Client(CoordinationMiddleware(flask_app(), config=config))
    answers = [
        call(client, "POST", "/orders").status_code for client in (first, second, first, second)
    ]
    assert answers == [200, 200, 200, 429]
    refused = call(first, "POST", "/orders")
    assert refused.headers["RateLimit-Policy"] == '"route-60s";q=3;w=60, "route-3600s";q=100;w=3600'
    assert refused.headers["RateLimit"].startswith('"route-60s";r=0;t=')


def test_under_uvicorn() -> None:
    app = CoordinationASGIMiddleware(
        starlette_app(), route_limits={"POST /orders": "2/m"}, rate_limit_headers="always"
    )
    with uvicorn_in_thread(app) as base:
        with httpx.Client(base_url=base) as client:
            answers = [client.post("/orders") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[0].headers["ratelimit"] == '"route";r=1;t=30'
    assert answers[2].headers["retry-after"] == "30"
    assert answers[2].headers["content-type"] == "application/problem+json"


def test_a_route_with_a_limit_and_a_rule_set_is_resolved_once() -> None:
    resolved: list[str] = []

    def resolver(environ: Any) -> str | None:
        resolved.append(environ["PATH_INFO"])
        return "/orders" if environ["PATH_INFO"] == "/orders" else None

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = CoordinationMiddleware(
        app,
        route_resolver=resolver,
        route_rules={"POST /orders": {"required_fields": ["sku"]}},
        route_limits={"POST /orders": "1/m"},
    )
    client = Client(middleware)
    first = client.post("/orders", json={"sku": "A"}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert first.status_code == 200
    assert resolved == ["/orders"]  # the limit named the route; the rule set reused it
    second = client.post("/orders", json={"sku": "A"}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert second.status_code == 429  # refused before its body is read or checked


def test_route_limits_from_yaml_and_the_environment_name_their_source(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coordination import CoordinationConfig

    good = tmp_path / "good.yaml"
    good.write_text('route_limits: "POST /orders=1/m"\nrate_limit_headers: always\n')
    client = Client(CoordinationMiddleware(flask_app(), config=CoordinationConfig.from_file(good)))
    first = call(client, "POST", "/orders")
    assert first.headers["RateLimit"] == '"route";r=0;t=60'
    assert call(client, "POST", "/orders").status_code == 429

    bad = tmp_path / "bad.yaml"
    bad.write_text('max_retries: 2\nroute_limits: "POST /orders=1/m, /x=soon"\n')
    with pytest.raises(ConfigError, match=r"bad.yaml, line 2: route '/x': expected a rate"):
        CoordinationConfig.from_file(bad)

    monkeypatch.setenv("COORDINATION_ROUTE_LIMITS", "GET /items/<int:item>=1/m")
    client = Client(CoordinationMiddleware(flask_app(), config=CoordinationConfig.load()))
    assert [call(client, "GET", "/items/1").status_code for _ in range(2)] == [200, 429]
    monkeypatch.setenv("COORDINATION_ROUTE_LIMITS", "items=1/m")
    with pytest.raises(ConfigError, match="environment variable COORDINATION_ROUTE_LIMITS"):
        CoordinationConfig.load()
