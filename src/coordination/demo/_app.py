"""The demo's service: a Flask application under ``CoordinationMiddleware``.

``POST /api/users`` is a plain route. ``POST /api/orders`` is what makes
the story: its body is validated by the middleware (a rule set per route), and its handler
reserves stock from a downstream inventory service -- the fault injector -- through a
function decorated with ``handle_errors``, so retries and the circuit breaker protect the
call. The route does not catch ``CircuitOpenError``: while the breaker is open the
middleware turns it into a 503 ``application/problem+json`` answer with ``Retry-After``.
Nothing is wired by hand: the decorator, the middleware and its endpoints use the
process's one set of components (``default_coordination()``), so the dependency's breaker
shows in the middleware's ``/health/ready`` and ``/metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, request

from ..error_handling import CoordinationErrorHandler, handle_errors
from ..integration import Coordination, CoordinationMiddleware, default_coordination
from ..performance import CoordinationPerformanceMonitor
from ..testing import FaultInjector, InjectedError
from ..validation import CoordinationValidator

__all__ = ["DOWNSTREAM", "ROUTE_RULES", "DemoService", "build_service", "downstream_policy"]

DOWNSTREAM = "inventory.reserve"

# The middleware checks JSON bodies against these before the app runs (422 when invalid).
ROUTE_RULES: dict[str, Any] = {
    "POST /api/orders": {
        "name": "order",
        "fields": {
            "item": {"type": "string", "required": True, "min_length": 1, "max_length": 40},
            "quantity": {"type": "integer", "required": True, "min": 1, "max": 100},
        },
        "additional_fields": "forbid",
    },
    "POST /api/users": {"name": "user", "required_fields": ["name", "email"]},
}


def downstream_policy(duration: float) -> dict[str, Any]:
    """The inventory call's retries and breaker, scaled to the run: the breaker's timeout
    fits several times in the outage."""
    return {
        "max_retries": 2,
        "base_delay": 0.01,
        "max_delay": 0.05,
        "jitter": "full",
        "circuit_breaker_threshold": 5,
        "circuit_breaker_timeout": max(0.2, round(duration * 0.06, 2)),
        "error_severity": "HIGH",
    }


@dataclass(slots=True)
class DemoService:
    """The WSGI app and the set of components everything in it reports through."""

    flask_app: Flask
    middleware: CoordinationMiddleware
    coordination: Coordination
    faults: FaultInjector

    @property
    def validator(self) -> CoordinationValidator:
        return self.coordination.validator

    @property
    def error_handler(self) -> CoordinationErrorHandler:
        return self.coordination.error_handler

    @property
    def monitor(self) -> CoordinationPerformanceMonitor:
        return self.coordination.monitor


def build_service(
    faults: FaultInjector, *, duration: float, middleware_config: Any = None
) -> DemoService:
    """A Flask app; its orders route reserves stock through a decorated call.

    The decorator and the middleware are written as in any app, with no components
    passed: both use ``default_coordination()``.
    """

    @handle_errors(operation_name=DOWNSTREAM, **downstream_policy(duration))
    @faults.wrap
    def reserve_stock(item: str, quantity: int) -> dict[str, Any]:
        return {"item": item, "quantity": quantity, "reserved": True}

    app = Flask("coordination_demo")

    @app.route("/api/users", methods=["POST"])
    def create_user() -> Any:
        # Business logic here (a plain route)
        return {"status": "success"}

    @app.route("/api/orders", methods=["POST"])
    def create_order() -> Any:
        order = request.get_json()
        # No except for CircuitOpenError: while the breaker is open the middleware answers
        # 503 application/problem+json with Retry-After (the app maps only its own error).
        try:
            reservation = reserve_stock(order["item"], order["quantity"])
        except InjectedError as exc:
            return {"status": "failed", "reason": str(exc)}, 502
        return {"status": "reserved", **reservation}, 201

    app.wsgi_app = CoordinationMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        {"expose_endpoints": True} if middleware_config is None else middleware_config,
        route_rules=ROUTE_RULES,
    )
    middleware = app.wsgi_app
    return DemoService(app, middleware, default_coordination(), faults)
