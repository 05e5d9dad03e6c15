"""The spec's four integration patterns, shipped by the library.

* ``CoordinationServiceWrapper`` — wrap an existing service's methods.
* ``coordinate_operation`` — validation → error handling → timing, as one decorator.
* ``CoordinationMiddleware`` (WSGI) and ``CoordinationASGIMiddleware`` (ASGI) — request
  limits, per-route rule sets, timing per route template, built-in endpoints.
* ``CoordinationEventProcessor`` — events validated, retried, timed, and never lost (the
  ``DeadLetterStore``).

See docs/patterns/ for one guide per pattern.
"""

from ._asgi import CoordinationASGIMiddleware
from ._dead_letters import DeadLetter, DeadLetterStore, ReplayReport
from ._decorators import coordinate_operation
from ._events import CoordinationEventProcessor, EventOutcome
from ._wrapper import CoordinationServiceWrapper
from ._wsgi import CoordinationMiddleware

__all__ = [
    "CoordinationASGIMiddleware",
    "CoordinationEventProcessor",
    "CoordinationMiddleware",
    "CoordinationServiceWrapper",
    "DeadLetter",
    "DeadLetterStore",
    "EventOutcome",
    "ReplayReport",
    "coordinate_operation",
]
