"""A minimal Django site for the tests: its URLs and the configured WSGI application."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from coordination import CircuitOpenError, OperationTimeout, RateLimitExceeded


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

    def unavailable(request: HttpRequest) -> JsonResponse:
        raise CircuitOpenError("payments", 4.1)

    def limited(request: HttpRequest) -> JsonResponse:
        raise RateLimitExceeded("payments", 0.3)

    def slow(request: HttpRequest) -> JsonResponse:
        raise OperationTimeout("payments", 2.0)

    module = types.ModuleType("coordination_test_django_urls")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("items/<int:pk>/", item),
        path("orders/", orders),
        path("stream/", stream),
        path("boom/", boom),
        path("unavailable/", unavailable),
        path("limited/", limited),
        path("slow/", slow),
    ]
    return module


@pytest.fixture(scope="module")
def django_app() -> Any:
    pytest.importorskip("django")
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
