"""The demo's service: the spec's Flask application under ``CoordinationMiddleware``.

``POST /api/users`` is the spec's route as written. ``POST /api/orders`` is what makes
the story: its body is validated by the middleware (a rule set per route), and its handler
reserves stock from a downstream inventory service -- the fault injector -- through the
error handler, so retries and the circuit breaker protect the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, request

from .._config import CoordinationConfig
from .._errors import CircuitOpenError
from ..error_handling import CoordinationErrorHandler
from ..integration import CoordinationMiddleware
from ..performance import CoordinationPerformanceMonitor
from ..testing import FaultInjector, InjectedError
from ..validation import CoordinationValidator

__all__ = ["DOWNSTREAM", "ROUTE_RULES", "DemoService", "build_service"]

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


@dataclass(slots=True)
class DemoService:
    """The WSGI app and the components it reports through."""

    flask_app: Flask
    middleware: CoordinationMiddleware
    validator: CoordinationValidator
    error_handler: CoordinationErrorHandler
    monitor: CoordinationPerformanceMonitor
    faults: FaultInjector

    @property
    def components(self) -> dict[str, object]:
        return {
            "validator": self.validator,
            "error_handler": self.error_handler,
            "performance_monitor": self.monitor,
        }


def build_service(
    config: CoordinationConfig,
    faults: FaultInjector,
    *,
    error_handler: CoordinationErrorHandler | None = None,
) -> DemoService:
    """The spec's Flask app, its orders route calling ``faults`` through the handler."""
    validator = CoordinationValidator(config=config)
    handler = error_handler or CoordinationErrorHandler(config)
    monitor = CoordinationPerformanceMonitor(config)

    @faults.wrap
    def reserve_stock(item: str, quantity: int) -> dict[str, Any]:
        return {"item": item, "quantity": quantity, "reserved": True}

    app = Flask("coordination_demo")

    @app.route("/api/users", methods=["POST"])
    def create_user() -> Any:
        # Business logic here (the spec's route, unchanged)
        return {"status": "success"}

    @app.route("/api/orders", methods=["POST"])
    def create_order() -> Any:
        order = request.get_json()
        try:
            reservation = handler.execute_with_error_handling(
                reserve_stock,
                args=(order["item"], order["quantity"]),
                operation_name=DOWNSTREAM,
                error_severity="HIGH",
            )
        except CircuitOpenError as exc:
            retry_after = str(max(1, round(exc.retry_after)))
            return {"status": "unavailable", "reason": str(exc)}, 503, {"Retry-After": retry_after}
        except InjectedError as exc:
            return {"status": "failed", "reason": str(exc)}, 502
        return {"status": "reserved", **reservation}, 201

    app.wsgi_app = CoordinationMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        config,
        route_rules=ROUTE_RULES,
        validator=validator,
        error_handler=handler,
        performance_monitor=monitor,
    )
    middleware = app.wsgi_app
    return DemoService(app, middleware, validator, handler, monitor, faults)
