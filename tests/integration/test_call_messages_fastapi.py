"""A FastAPI endpoint taking a pydantic model, decorated with ``coordinate_operation``.

Before one rule built the message for every door, ``coordinate_operation`` validated every
argument: the model (and the ``Request``, a ``datetime`` dependency) failed "must be a JSON
value", so such an endpoint answered 500 to every request. Real FastAPI, real httpx (ASGI
transport), and once under uvicorn on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any

import httpx
import pydantic
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from coordination.error_handling import CoordinationErrorHandler
from coordination.integration import CoordinationServiceWrapper, coordinate_operation
from coordination.performance import CoordinationPerformanceMonitor
from coordination.validation import CoordinationValidator, ValidationError
from loopback import uvicorn_in_thread

USER_RULES = {
    "fields": {
        "name": {"type": "string", "min_length": 1},
        "email": {"type": "email", "required": True},
        "signed_up": {"type": "datetime"},
    }
}


class User(pydantic.BaseModel):
    name: str
    email: str
    signed_up: datetime.datetime
    tags: set[str] = set()


class Item(pydantic.BaseModel):
    sku: str
    qty: int


@dataclasses.dataclass
class Shipment:
    order_id: str
    weight_kg: float
    sent: datetime.date


def now() -> datetime.datetime:
    return datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


RECEIVED = Depends(now)  # a datetime dependency: an argument no rule names


def make_app() -> tuple[FastAPI, CoordinationValidator]:
    validator = CoordinationValidator(config={})
    layers: dict[str, Any] = {
        "validator": validator,
        "error_handler": CoordinationErrorHandler({"base_delay": 0.0}),
        "performance_monitor": CoordinationPerformanceMonitor({}),
    }
    app = FastAPI()

    @app.exception_handler(ValueError)
    async def invalid(request: Request, exc: ValueError) -> JSONResponse:
        # the spec's contract: a validation failure is a ValueError
        errors = [e.to_dict() for e in exc.errors] if isinstance(exc, ValidationError) else []
        return JSONResponse({"detail": str(exc), "errors": errors}, status_code=422)

    @app.post("/users")
    @coordinate_operation(
        validation_rules=USER_RULES,
        error_config={"max_retries": 1},
        operation_name="create_user",
        **layers,
    )
    async def create_user(
        user: User, request: Request, received: datetime.datetime = RECEIVED
    ) -> dict[str, Any]:
        return {"name": user.name, "path": request.url.path, "received": received.isoformat()}

    @app.post("/items")
    @coordinate_operation(
        validation_rules={"schema": {"type": "array", "maxItems": 2}},
        operation_name="ingest",
        **layers,
    )
    def ingest(items: list[Item]) -> dict[str, int]:
        return {"count": len(items)}

    @app.post("/shipments")
    @coordinate_operation(
        validation_rules={"fields": {"weight_kg": {"type": "number", "max": 30}}},
        operation_name="ship",
        **layers,
    )
    async def ship(shipment: Shipment) -> dict[str, str]:
        return {"order_id": shipment.order_id}

    return app, validator


async def _exchange(app: FastAPI, requests: list[tuple[str, Any]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [await client.post(path, json=body) for path, body in requests]


def test_a_pydantic_model_argument_is_validated_by_its_fields() -> None:
    app, validator = make_app()
    good = {"name": "Ann", "email": "ann@example.com", "signed_up": "2026-01-01T10:00:00Z"}
    ok, bad_email, empty_name = asyncio.run(
        _exchange(
            app,
            [
                ("/users", good),
                ("/users", {**good, "email": "not an address"}),
                ("/users", {**good, "name": ""}),
            ],
        )
    )
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"name": "Ann", "path": "/users", "received": "2026-01-01T12:00:00+00:00"}
    assert bad_email.status_code == 422
    assert [e["code"] for e in bad_email.json()["errors"]] == ["format"]
    assert [e["pointer"] for e in empty_name.json()["errors"]] == ["/name"]
    # the model's JSON-mode dump was checked: a datetime became a date-time string
    report = validator.get_validation_report()
    assert report["valid"] == 1
    assert report["invalid"] == 2


def test_a_list_of_models_meets_an_array_schema_and_a_dataclass_its_rules() -> None:
    app, _ = make_app()
    item = {"sku": "a", "qty": 1}
    shipment = {"order_id": "o1", "weight_kg": 2.5, "sent": "2026-01-02"}
    two, three, light, heavy = asyncio.run(
        _exchange(
            app,
            [
                ("/items", [item, item]),
                ("/items", [item, item, item]),
                ("/shipments", shipment),
                ("/shipments", {**shipment, "weight_kg": 31}),
            ],
        )
    )
    assert (two.status_code, two.json()) == (200, {"count": 2})
    assert three.status_code == 422
    assert [e["code"] for e in three.json()["errors"]] == ["max_items"]
    assert (light.status_code, light.json()) == (200, {"order_id": "o1"})
    assert heavy.status_code == 422
    assert [e["code"] for e in heavy.json()["errors"]] == ["max"]


def test_under_uvicorn_on_loopback() -> None:
    app, _ = make_app()
    good = {"name": "Bo", "email": "bo@example.com", "signed_up": "2026-01-01T10:00:00Z"}
    with uvicorn_in_thread(app) as url, httpx.Client(base_url=url) as http:
        assert http.post("/users", json=good).status_code == 200
        assert http.post("/users", json={**good, "email": "x"}).status_code == 422


def test_wrap_method_takes_the_same_rule() -> None:
    class Users:
        def create(self, user: User, when: datetime.datetime, conn: object) -> str:
            return user.name

    wrapper = CoordinationServiceWrapper(Users(), config={})
    create = wrapper.wrap_method("create", validation_rules=USER_RULES)
    user = User(name="Cy", email="cy@example.com", signed_up=now())
    assert create(user, now(), object()) == "Cy"
    bad = User(name="Cy", email="nope", signed_up=now())
    with pytest.raises(ValueError, match="email") as caught:  # the spec catches ValueError
        create(bad, now(), object())
    assert isinstance(caught.value, ValidationError)
    assert [e.code for e in caught.value.errors] == ["format"]
