"""route_rules keys that match no route of the app are reported, naming the closest route."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.test import Client

from coordination import ConfigError
from coordination.integration import CoordinationASGIMiddleware, CoordinationMiddleware
from coordination.integration._routes import KnownRoute, _django_routes, unmatched_route_rules

RULES = {"required_fields": ["name"]}
WARNING = "coordination"


def flask_app() -> Flask:
    app = Flask("route-rules-check")

    @app.post("/api/users")
    def users() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/api/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_flask_a_misspelt_key_is_reported_at_the_first_request_with_the_closest_route(
    caplog: pytest.LogCaptureFixture, components: dict[str, Any]
) -> None:
    app = flask_app()
    rules = {"POST /api/user": RULES, "PUT /api/users": RULES, "/api/items/<int:item_id>": RULES}
    app.wsgi_app = CoordinationMiddleware(app.wsgi_app, route_rules=rules, **components)  # type: ignore[method-assign]
    client = Client(app)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # reported once, not per request
            assert client.post("/api/users", json={}).status_code == 200
    assert warnings_of(caplog) == [
        "route_rules key 'POST /api/user' matches no route of the app; did you mean "
        "'POST /api/users'?: its rules are never applied",
        "route_rules key 'PUT /api/users': the route '/api/users' takes OPTIONS, POST, "
        "not PUT: its rules are never applied",
    ]


def test_flask_keys_that_all_match_say_nothing(
    caplog: pytest.LogCaptureFixture, components: dict[str, Any]
) -> None:
    app = flask_app()
    rules = {"POST /api/users": RULES}
    app.wsgi_app = CoordinationMiddleware(app.wsgi_app, route_rules=rules, **components)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        assert Client(app).post("/api/users", json={}).status_code == 422  # the rule applies
    assert warnings_of(caplog) == []


def test_flask_a_route_added_after_the_middleware_counts(
    caplog: pytest.LogCaptureFixture, components: dict[str, Any]
) -> None:
    app = Flask("late-routes")
    app.wsgi_app = CoordinationMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, route_rules={"POST /late": RULES}, **components
    )

    @app.post("/late")
    def late() -> dict[str, str]:
        return {}

    with caplog.at_level(logging.WARNING):
        assert Client(app).post("/late", json={}).status_code == 422
    assert warnings_of(caplog) == []


async def test_starlette_add_middleware_routes_are_read_from_the_request(
    caplog: pytest.LogCaptureFixture, components: dict[str, Any]
) -> None:
    async def orders(request: Any) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/orders", orders, methods=["POST"])])
    app.add_middleware(CoordinationASGIMiddleware, route_rules={"POST /order": RULES}, **components)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with caplog.at_level(logging.WARNING):
            assert (await client.post("/orders", json={})).status_code == 200
            assert (await client.post("/orders", json={})).status_code == 200
    assert warnings_of(caplog) == [
        "route_rules key 'POST /order' matches no route of the app; did you mean "
        "'POST /orders'?: its rules are never applied"
    ]


def test_django_keys_are_checked_against_the_url_patterns(
    caplog: pytest.LogCaptureFixture, django_app: Any, components: dict[str, Any]
) -> None:
    middleware = CoordinationMiddleware(
        django_app, route_rules={"POST /orders": RULES, "POST /orders/": RULES}, **components
    )
    with caplog.at_level(logging.WARNING):
        Client(middleware).post("/orders/", json={"sku": "x"})
    assert warnings_of(caplog) == [
        "route_rules key 'POST /orders' matches no route of the app; did you mean "
        "'POST /orders/'?: its rules are never applied"
    ]


def test_django_routes_are_joined_through_includes() -> None:
    from django.urls import include, path, re_path

    def view(request: Any) -> None:
        return None

    patterns = [
        path("api/", include([path("users/<int:pk>/", view), re_path(r"^legacy/$", view)])),
        re_path(r"^old/", include([re_path(r"^x/$", view)])),
    ]
    assert list(_django_routes(patterns)) == [
        "api/users/<int:pk>/",
        "api/legacy/$",
        "^old/x/$",
    ]


def test_rules_on_an_app_whose_routes_cannot_be_named_are_a_config_error(
    components: dict[str, Any],
) -> None:
    def raw(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b""]

    with pytest.raises(ConfigError, match="route_resolver="):
        CoordinationMiddleware(raw, route_rules={"POST /x": RULES}, **components)
    # with a resolver of its own, the app's routes are its business: nothing to check
    middleware = CoordinationMiddleware(
        raw, route_rules={"POST /x": RULES}, route_resolver=lambda e: "/x", **components
    )
    assert Client(middleware).post("/x", json={}).status_code == 422


templates = st.lists(
    st.text(st.characters(codec="utf-8"), max_size=20).map(lambda t: "/" + t),
    max_size=8,
    unique=True,
)


@given(templates, st.lists(st.text(max_size=30), max_size=8))
def test_any_key_gets_an_answer_and_known_templates_are_never_reported(
    known: list[str], keys: list[str]
) -> None:
    routes = [KnownRoute(t, frozenset({"GET", "POST"})) for t in known]
    problems = unmatched_route_rules(keys + known + [f"POST {t}" for t in known], routes)
    assert len(problems) <= len(keys)
    for problem in problems:
        assert problem.startswith("route_rules key ")
