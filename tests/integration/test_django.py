"""CoordinationMiddleware around Django's own WSGI application, with minimal settings."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest
from werkzeug.test import Client

from coordination.integration import CoordinationMiddleware

from .conftest import op_count

django = pytest.importorskip("django")


def _urls() -> types.ModuleType:
    from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
    from django.urls import path

    def item(request: HttpRequest, pk: int) -> JsonResponse:
        return JsonResponse({"pk": pk})

    def orders(request: HttpRequest) -> JsonResponse:
        return JsonResponse({"received": json.loads(request.body)})

    def stream(request: HttpRequest) -> StreamingHttpResponse:
        return StreamingHttpResponse(b"part %d;" % n for n in range(3))

    def boom(request: HttpRequest) -> JsonResponse:
        raise RuntimeError("view bug")

    module = types.ModuleType("coordination_test_django_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("items/<int:pk>/", item),
        path("orders/", orders),
        path("stream/", stream),
        path("boom/", boom),
    ]
    return module


@pytest.fixture(scope="module")
def django_app() -> Any:
    from django.conf import settings

    if not settings.configured:
        sys.modules["coordination_test_django_urls"] = _urls()
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test-only",
            ROOT_URLCONF="coordination_test_django_urls",
            ALLOWED_HOSTS=["localhost", "testserver"],
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            LOGGING_CONFIG=None,
        )
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


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
