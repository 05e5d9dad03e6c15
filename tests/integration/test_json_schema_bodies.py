"""A ``schema:`` route rule checks any JSON body as JSON Schema says: a top-level array
(batch endpoints post them), a string, a number, null — through the WSGI middleware on
Flask and the ASGI middleware on FastAPI, in process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from flask import Flask, request

from coordination.integration import CoordinationASGIMiddleware, CoordinationMiddleware

BATCH_RULES = {
    "schema": {
        "type": "array",
        "maxItems": 3,
        "items": {
            "type": "object",
            "required": ["sku", "qty"],
            "properties": {"qty": {"type": "integer", "minimum": 1}},
        },
    }
}
ROUTE_RULES = {
    "POST /batch": BATCH_RULES,
    "POST /label": {"schema": {"type": "string", "maxLength": 5}},
    "POST /count": {"schema": {"type": ["integer", "null"], "maximum": 10}},
    "POST /vocabulary": {"required_fields": ["sku"]},  # the rule vocabulary: mappings only
}
PATHS = [key.split()[1] for key in ROUTE_RULES]
CASES: list[tuple[str, Any, int, list[str]]] = [
    ("/batch", [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}], 200, []),
    ("/batch", [], 200, []),
    ("/batch", [{"sku": "a", "qty": 0}, {"qty": 1}], 422, ["/0/qty", "/1/sku"]),
    ("/batch", [{"sku": "a", "qty": 1}] * 4, 422, [""]),
    ("/batch", {"sku": "a", "qty": 1}, 422, [""]),
    ("/label", "short", 200, []),
    ("/label", "far too long", 422, [""]),
    ("/label", "\ud800", 422, [""]),  # a lone surrogate: an issue (invalid_unicode), not a 500
    ("/count", 3, 200, []),
    ("/count", None, 200, []),
    ("/count", 11, 422, [""]),
    ("/vocabulary", ["sku"], 422, [""]),
    ("/vocabulary", {"sku": "a"}, 200, []),
]


def _check(status: int, body: bytes, expected_status: int, pointers: list[str]) -> None:
    assert status == expected_status, body
    if expected_status == 422:
        document = json.loads(body)
        assert sorted(e["pointer"] for e in document["errors"]) == pointers


def flask_app(components: dict[str, Any]) -> Flask:
    app = Flask(__name__)

    def accept() -> dict[str, Any]:
        return {"received": request.get_json()}

    for path in PATHS:  # route rules are keyed by route template: one route per path
        app.add_url_rule(path, path, accept, methods=["POST"])

    app.wsgi_app = CoordinationMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, route_rules=ROUTE_RULES, **components
    )
    return app


@pytest.mark.parametrize(("path", "body", "status", "pointers"), CASES)
def test_wsgi_on_flask(
    components: dict[str, Any], path: str, body: Any, status: int, pointers: list[str]
) -> None:
    client = flask_app(components).test_client()
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    _check(response.status_code, response.data, status, pointers)
    if status == 200:
        assert response.get_json() == {"received": body}


def fastapi_app(components: dict[str, Any]) -> FastAPI:
    app = FastAPI()

    async def accept(request: Request) -> dict[str, Any]:
        return {"received": await request.json()}

    for path in PATHS:
        app.add_api_route(path, accept, methods=["POST"])

    app.add_middleware(CoordinationASGIMiddleware, route_rules=ROUTE_RULES, **components)
    return app


def test_asgi_on_fastapi(components: dict[str, Any]) -> None:
    app = fastapi_app(components)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [
                await client.post(
                    path, content=json.dumps(body), headers={"content-type": "application/json"}
                )
                for path, body, _, _ in CASES
            ]

    for response, (_, body, status, pointers) in zip(asyncio.run(run()), CASES, strict=True):
        _check(response.status_code, response.content, status, pointers)
        if status == 200:
            assert response.json() == {"received": body}
