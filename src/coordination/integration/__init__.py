"""The four doors into a service: wrapper, decorator, middleware, event processor.

* ``CoordinationServiceWrapper`` — wrap an existing service's methods.
* ``coordinate_operation`` — validation → error handling → timing, as one decorator.
* ``CoordinationMiddleware`` (WSGI) and ``CoordinationASGIMiddleware`` (ASGI) — request
  limits, per-route rule sets, timing per route template, built-in endpoints.
* ``CoordinationDjangoMiddleware`` — a Django ``MIDDLEWARE`` entry answering resilience
  errors of views as problem documents (503/429/504).
* ``CoordinationEventProcessor`` — events validated, retried, timed, and never lost (the
  ``DeadLetterStore``).

Every door shares one set of components per process (``default_coordination()``);
``Coordination`` builds an isolated set and the doors on it.

See docs/patterns/ for one guide per pattern.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes as _lazy_attributes

if TYPE_CHECKING:
    from .._concurrency_snapshot import ConcurrencySnapshot
    from .._http_snapshot import HttpSnapshot, RouteSnapshot
    from ._asgi import CoordinationASGIMiddleware
    from ._coordination import Coordination, default_coordination, reload_config
    from ._dead_letters import DeadLetter, DeadLetterStore, ReplayFailure, ReplayReport
    from ._decorators import coordinate_operation
    from ._django import CoordinationDjangoMiddleware
    from ._events import CoordinationEventProcessor, EventOutcome
    from ._wrapper import CoordinationServiceWrapper
    from ._wsgi import CoordinationMiddleware

__all__ = [
    "ConcurrencySnapshot",
    "Coordination",
    "CoordinationASGIMiddleware",
    "CoordinationDjangoMiddleware",
    "CoordinationEventProcessor",
    "CoordinationMiddleware",
    "CoordinationServiceWrapper",
    "DeadLetter",
    "DeadLetterStore",
    "EventOutcome",
    "HttpSnapshot",
    "ReplayFailure",
    "ReplayReport",
    "RouteSnapshot",
    "coordinate_operation",
    "default_coordination",
    "reload_config",
]

# Each door is imported when first used: a WSGI app never loads the ASGI middleware, the
# event processor's SQLite journal or the Django adapter.
__getattr__, __dir__ = _lazy_attributes(
    __name__,
    {
        "Coordination": "._coordination",
        "CoordinationASGIMiddleware": "._asgi",
        "CoordinationDjangoMiddleware": "._django",
        "CoordinationEventProcessor": "._events",
        "CoordinationMiddleware": "._wsgi",
        "CoordinationServiceWrapper": "._wrapper",
        "DeadLetter": "._dead_letters",
        "DeadLetterStore": "._dead_letters",
        "EventOutcome": "._events",
        "ConcurrencySnapshot": ".._concurrency_snapshot",
        "HttpSnapshot": ".._http_snapshot",
        "ReplayFailure": "._dead_letters",
        "ReplayReport": "._dead_letters",
        "RouteSnapshot": ".._http_snapshot",
        "coordinate_operation": "._decorators",
        "default_coordination": "._coordination",
        "reload_config": "._coordination",
    },
)
