"""CoordinationMiddleware around Django's own WSGI application, with minimal settings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from werkzeug.test import Client

from coordination.integration import CoordinationDjangoMiddleware, CoordinationMiddleware

from .conftest import op_count


def test_django_routes_limits_rules_and_errors(django_app: Any, components: dict[str, Any]) -> None:
    middleware = CoordinationMiddleware(
        django_app,
        route_rules={"POST /orders/": {"required_fields": ["sku"]}},
        **components,
    )
    client = Client(middleware)
    monitor = components["performance_monitor"]

    for pk in (1, 2):
        response = client.get(f"/items/{pk}/", buffered=True)
        assert response.json == {"pk": pk}
    assert op_count(monitor, "GET /items/<int:pk>/") == 2

    response = client.post("/orders/", json={"sku": "A-1"}, buffered=True)
    assert response.json == {"received": {"sku": "A-1"}}
    response = client.post("/orders/", json={"qty": 1}, buffered=True)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    response = client.post(
        "/orders/", data=b"{oops", content_type="application/json", buffered=True
    )
    assert response.status_code == 400

    response = client.get("/stream/")
    assert op_count(monitor, "GET /stream/") == 0
    assert b"".join(response.iter_encoded()) == b"part 0;part 1;part 2;"
    response.close()
    assert op_count(monitor, "GET /stream/") == 1

    assert client.get("/boom/", buffered=True).status_code == 500
    assert monitor.operation_stats()["GET /boom/"].failures == 1
    assert client.get("/nowhere/", buffered=True).status_code == 404
    assert op_count(monitor, "unmatched") == 1

    counters = middleware.get_middleware_status()["middleware"]
    assert counters["requests"] == 8
    assert counters["rejected"] == {400: 1, 422: 1}
    assert counters["in_flight"] == 0


ENTRY = "coordination.integration.CoordinationDjangoMiddleware"


def test_the_middleware_entry_answers_resilience_errors(
    django_app: Any, components: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    with override_settings(MIDDLEWARE=[ENTRY]):
        middleware = CoordinationMiddleware(WSGIHandler(), **components)
    client = Client(middleware)
    caplog.set_level("INFO", "coordination.integration")
    for path, status, retry_after in [
        ("/unavailable/", 503, "5"),
        ("/limited/", 429, "1"),
        ("/slow/", 504, None),
    ]:
        response = client.get(path, buffered=True)
        assert response.status_code == status
        assert response.mimetype == "application/problem+json"
        assert response.headers.get("Retry-After") == retry_after
        assert response.json["status"] == status
    assert client.get("/boom/", buffered=True).status_code == 500  # Django's own answer
    assert client.get("/items/3/", buffered=True).json == {"pk": 3}
    stats = middleware.http_stats()
    assert stats["status_codes"] == {200: 1, 429: 1, 500: 1, 503: 1, 504: 1}
    assert {(r["route"], r["status"]) for r in stats["by_route"]} >= {
        ("/unavailable/", "503"),
        ("/limited/", "429"),
    }
    assert sum(" answered " in r.getMessage() for r in caplog.records) == 3


async def test_the_middleware_entry_in_an_async_stack(django_app: Any) -> None:
    from django.core.handlers.asgi import ASGIHandler
    from django.test import override_settings

    with override_settings(MIDDLEWARE=[ENTRY]):
        app = ASGIHandler()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/unavailable/")
    assert (response.status_code, response.headers["retry-after"]) == (503, "5")


def test_the_entry_steps_aside_when_mapping_is_off(django_app: Any) -> None:
    from django.core.exceptions import MiddlewareNotUsed
    from django.test import override_settings

    with (
        override_settings(COORDINATION={"map_resilience_errors": False}),
        pytest.raises(MiddlewareNotUsed),
    ):
        CoordinationDjangoMiddleware(lambda request: None)
