"""``HttpSnapshot``: the middleware's request counters as a frozen, typed view.

The writer is ``coordination.integration`` (the WSGI and ASGI middleware), the readers
are in ``coordination.observability`` (the Prometheus collector) and the users' code
(``http_stats()`` is ``HttpSnapshot.as_dict()``). It lives in the core so that both
layers can name it without importing each other. Method and route are fields of each
``RouteSnapshot``, never an operation name to be parsed back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ._concurrency_snapshot import ConcurrencySnapshot

__all__ = ["HttpSnapshot", "LatencyLike", "RouteSnapshot"]


class LatencyLike(Protocol):
    """What the exporters read of a route's timings (the monitor's operation snapshot)."""

    @property
    def timed_count(self) -> int: ...
    @property
    def total_seconds(self) -> float: ...
    def quantile(self, q: float) -> float: ...
    def cumulative_counts(self, bounds: tuple[float, ...]) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class RouteSnapshot:
    """One (method, route template) label set: responses by status label, and timings.

    ``route`` is the template, ``"unmatched"`` (no template) or ``"__overflow__"`` (past
    the label bound); ``method`` is an allowed method or ``"_OTHER"``. ``statuses`` maps
    a status label (``"200"``, or ``"7xx"`` outside the HTTP range) to its count, sorted.
    ``latency`` is the monitor's snapshot of the route's timed requests, when it has one.
    """

    method: str
    route: str
    statuses: Mapping[str, int]
    latency: LatencyLike | None = None


@dataclass(frozen=True, slots=True)
class HttpSnapshot:
    """A consistent read of one middleware's counters (counts since it was built).

    ``requests`` begun and ``in_flight``; ``status_codes`` and ``rejected`` map a status
    code to its count (rejected: answered by the middleware's own checks with a problem
    document); ``rate_limited``: refused by the client rate limit; ``exceptions``: errors
    that propagated (counted as 500s, not those answered as problems), by type name;
    ``routes``: one ``RouteSnapshot`` per label set;
    ``client_rate_limit``: the limit's settings (``None`` without one); ``endpoints``: the
    built-in paths the middleware serves; ``concurrency``: the adaptive limit in front of
    the app (``app_adaptive_concurrency``; ``None`` without one).
    """

    requests: int
    in_flight: int
    status_codes: Mapping[int, int]
    rejected: Mapping[int, int]
    rate_limited: int
    exceptions: Mapping[str, int]
    routes: tuple[RouteSnapshot, ...]
    client_rate_limit: Mapping[str, Any] | None = None
    endpoints: tuple[str, ...] = ()
    concurrency: ConcurrencySnapshot | None = None

    @property
    def client_disconnects(self) -> int:
        """Requests whose client went away before the response was sent (499)."""
        return self.status_codes.get(499, 0)

    def as_dict(self) -> dict[str, Any]:
        """The ``get_middleware_status()["middleware"]`` dictionary."""
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "status_codes": dict(self.status_codes),
            "rejected": dict(self.rejected),
            "rate_limited": self.rate_limited,
            "exceptions": dict(self.exceptions),
            "client_disconnects": self.client_disconnects,
            "by_route": [
                {"method": r.method, "route": r.route, "status": status, "count": count}
                for r in self.routes
                for status, count in r.statuses.items()
            ],
            "client_rate_limit": (
                None if self.client_rate_limit is None else dict(self.client_rate_limit)
            ),
            "endpoints": list(self.endpoints),
            "concurrency": None if self.concurrency is None else self.concurrency.as_dict(),
        }
