"""The demo's service: a Flask application under ``CoordinationMiddleware``.

``POST /api/users`` is a plain route. ``POST /api/orders`` is what makes the first act:
its body is validated by the middleware (a rule set per route), and its handler reserves
stock from a downstream inventory service -- the fault injector -- through a function
decorated with ``handle_errors``, so retries within a retry budget and the circuit
breaker protect the call. The route does not catch ``CircuitOpenError``: while the
breaker is open the middleware turns it into a 503 ``application/problem+json`` answer
with ``Retry-After``.

``GET /api/prices`` (shoppers browsing, a LOW operation) and ``POST /api/checkout``
(buyers paying, CRITICAL) make the second: both query one pricing database through one
adaptive concurrency limit (``concurrency_group``), which follows the database's latency
and sheds the LOW calls first. A shed call raises ``BulkheadFull``, which the middleware
answers 503 with ``Retry-After`` as well.
Nothing is wired by hand: the decorator, the middleware and its endpoints use the
process's one set of components (``default_coordination()``), so the dependency's breaker
shows in the middleware's ``/health/ready`` and ``/metrics``.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, request

from .._errors import EventDeadLettered, OperationTimeout
from ..error_handling import CoordinationErrorHandler, handle_errors
from ..integration import (
    Coordination,
    CoordinationEventProcessor,
    CoordinationMiddleware,
    default_coordination,
)
from ..performance import CoordinationPerformanceMonitor
from ..testing import FaultInjector, InjectedError
from ..validation import CoordinationValidator
from ._surge import PricingDatabase

__all__ = [
    "BROWSE",
    "CHECKOUT",
    "DOWNSTREAM",
    "MAIL",
    "MAIL_RATE",
    "ORDER_PLACED",
    "PRICING_GROUP",
    "ROUTE_RULES",
    "SHIPPING",
    "SHIPPING_TIMEOUT",
    "Carrier",
    "DemoService",
    "LedgerRefused",
    "build_service",
    "downstream_policy",
    "pricing_policy",
]

DOWNSTREAM = "inventory.reserve"
PRICING_GROUP = "pricing-db"
BROWSE = "pricing.browse"  # LOW: a shopper can do without a price for a moment
CHECKOUT = "pricing.checkout"  # CRITICAL: a buyer paying must be served
SHIPPING = "shipping.quote"
SHIPPING_TIMEOUT = 0.05  # seconds an order waits for the carrier's quote
MAIL = "mail.welcome"
MAIL_RATE = "5/s"  # the mail provider's allowance; the demo's sign-ups come faster
ORDER_PLACED = "order.placed"  # the event a placed order sends to the ledger

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
    """The inventory call's retries, their budget and its breaker, scaled to the act.

    The breaker's timeout fits several times in the outage. The budget lets retries be at
    most 20 % of the calls of the last ``retry_budget_window`` seconds, so a degraded
    service is not also sent half as many calls again; its floor is low (1 retry a
    second) because the demo's traffic is small. Twelve failures in a row open the
    breaker: the outage's, not the degraded phase's.
    """
    return {
        "max_retries": 2,
        "base_delay": 0.01,
        "max_delay": 0.05,
        "jitter": "full",
        "retry_budget": 0.2,
        "retry_budget_window": max(1.0, round(duration * 0.1, 1)),
        "retry_budget_min_per_second": 1.0,
        "circuit_breaker_threshold": 12,
        "circuit_breaker_timeout": max(0.2, round(duration * 0.06, 2)),
        "error_severity": "HIGH",
    }


def pricing_policy(severity: str) -> dict[str, Any]:
    """A pricing call: one adaptive limit for the group, shed by severity; no retries
    (a shed call is answered at once, and retrying into an overloaded database is what
    the limit is there to stop)."""
    return {
        "adaptive_concurrency": True,
        "concurrency_group": PRICING_GROUP,
        "concurrency_algorithm": "vegas",
        "min_concurrency": 2,
        "max_concurrency": 40,
        "max_retries": 0,
        "error_severity": severity,
    }


class LedgerRefused(ValueError):
    """The ledger's rule the demo breaks on purpose, so dead letters accumulate."""


def record_in_ledger(event: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The ledger's handler of ``order.placed``: it has no account for bulk figs (about one
    valid order in ten), so those events are dead-lettered, to replay once it does."""
    if event["item"] == "fig" and event["quantity"] >= 4:
        raise LedgerRefused(f"no ledger account for {event['quantity']} figs")
    return {"recorded": event["item"]}


class Carrier:
    """The shipping carrier: quick, but one quote in ``slow_share`` takes ``slow`` seconds,
    past the order's timeout (seeded, so every run tells the same story)."""

    def __init__(self, *, fast: float = 0.002, slow: float = 0.15, slow_share: float = 0.08):
        self.fast, self.slow, self.slow_share = fast, slow, slow_share
        self._rng = random.Random(5)
        self._lock = threading.Lock()

    def quote(self, item: str) -> float:
        with self._lock:
            slow = self._rng.random() < self.slow_share
        time.sleep(self.slow if slow else self.fast)
        return 4.5 if item == "fig" else 3.0


@dataclass(slots=True)
class DemoService:
    """The WSGI app and the set of components everything in it reports through."""

    flask_app: Flask
    middleware: CoordinationMiddleware
    coordination: Coordination
    faults: FaultInjector
    pricing: PricingDatabase
    ledger: CoordinationEventProcessor

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
    faults: FaultInjector,
    *,
    duration: float,
    middleware_config: Any = None,
    pricing: PricingDatabase | None = None,
    dead_letter_path: str = ":memory:",
) -> DemoService:
    """A Flask app; its orders route reserves stock through a decorated call, and its
    price and checkout routes query the pricing database through two more.

    The decorators, the ledger's event processor and the middleware are written as in
    any app, with no components passed: all use ``default_coordination()``. The ledger
    keeps its dead letters at ``dead_letter_path`` (a SQLite file; close ``ledger``).
    """
    database = PricingDatabase() if pricing is None else pricing
    carrier = Carrier()
    # No retries: the ledger's refusal is a rule, not a blip; the event waits for a replay.
    ledger = CoordinationEventProcessor(
        dead_letter_path=dead_letter_path, error_config={"max_retries": 0}
    )
    ledger.on(ORDER_PLACED)(record_in_ledger)

    @handle_errors(operation_name=DOWNSTREAM, **downstream_policy(duration))
    @faults.wrap
    def reserve_stock(item: str, quantity: int) -> dict[str, Any]:
        return {"item": item, "quantity": quantity, "reserved": True}

    @handle_errors(operation_name=BROWSE, **pricing_policy("LOW"))
    def price_for_browsing(sku: str) -> float:
        return database.query(sku)

    @handle_errors(operation_name=CHECKOUT, **pricing_policy("CRITICAL"))
    def price_for_checkout(sku: str) -> float:
        return database.query(sku)

    # A timed-out quote keeps its worker thread until the carrier answers: enough
    # workers that the slow ones never refuse the quick ones.
    @handle_errors(
        operation_name=SHIPPING, timeout=SHIPPING_TIMEOUT, timeout_workers=16, max_retries=0
    )
    def quote_shipping(item: str) -> float:
        return carrier.quote(item)

    @handle_errors(operation_name=MAIL, rate_limit=MAIL_RATE, max_retries=0)
    def send_welcome_mail(email: str) -> None:
        """The provider's call; no except for RateLimitExceeded: the middleware answers 429."""

    app = Flask("coordination_demo")

    @app.route("/api/users", methods=["POST"])
    def create_user() -> Any:
        send_welcome_mail(str((request.get_json(silent=True) or {}).get("email", "")))
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
        try:
            shipping: float | None = quote_shipping(order["item"])
        except OperationTimeout:
            shipping = None  # placed without a quote: the carrier's answer comes by mail
        # A refused event is stored, nothing lost: replayed once the ledger takes it.
        with contextlib.suppress(EventDeadLettered):
            ledger.process_event(dict(order), ORDER_PLACED)
        return {"status": "reserved", "shipping": shipping, **reservation}, 201

    @app.route("/api/prices", methods=["GET"])
    def show_price() -> Any:
        # No except for BulkheadFull: a shed call is answered 503 by the middleware.
        sku = request.args.get("sku", "sku-1")
        return {"sku": sku, "price": price_for_browsing(sku)}

    @app.route("/api/checkout", methods=["POST"])
    def checkout() -> Any:
        sku = str((request.get_json(silent=True) or {}).get("sku", "sku-1"))
        return {"sku": sku, "charged": price_for_checkout(sku)}, 201

    app.wsgi_app = CoordinationMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        {"expose_endpoints": True} if middleware_config is None else middleware_config,
        route_rules=ROUTE_RULES,
    )
    middleware = app.wsgi_app
    return DemoService(app, middleware, default_coordination(), faults, database, ledger)
