"""What the readers take from one component: typed, frozen snapshots, read one way.

The collector, the health checker and the status page read components only through the
functions here. The library's own components hand out their snapshots:
``CoordinationPerformanceMonitor.snapshot()`` (a ``MonitorSnapshot``),
``CoordinationErrorHandler.snapshot()`` (a ``HandlerSnapshot``), and the validator's report
read as a ``ValidationSnapshot``. Any other object is read by the report methods it has
(the ``Reports*`` protocols below) and adapted here, once, into the same types, so each
reader has one path per snapshot type and never asks an object what it can do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from .._events_snapshot import EventsSnapshot, ReportsEvents, ReportsSource
from .._http_snapshot import LatencyLike
from .._status import HealthStatus
from ..error_handling import CoordinationErrorHandler
from ..error_handling._snapshot import HandlerSnapshot
from ..performance import CoordinationPerformanceMonitor, OperationHistory, OperationSnapshot
from ..validation._snapshot import ValidationSnapshot
from ._checks import interpret_status

__all__ = [
    "OperationTimings",
    "PerformanceReading",
    "ReportsErrors",
    "ReportsHealth",
    "ReportsOperationStats",
    "ReportsPerformance",
    "ReportsValidation",
    "component_health",
    "component_status",
    "events_of",
    "handler_of",
    "performance_of",
    "validation_of",
]


# --- the report methods: what a component of any kind may offer ------------------------


@runtime_checkable
class ReportsHealth(Protocol):
    def get_health_status(self) -> Any: ...


@runtime_checkable
class ReportsErrors(Protocol):
    def get_error_report(self) -> Mapping[str, Any]: ...


@runtime_checkable
class ReportsPerformance(Protocol):
    def get_performance_report(self) -> Mapping[str, Any]: ...


@runtime_checkable
class ReportsOperationStats(Protocol):
    def operation_stats(self) -> Mapping[str, Any]: ...


@runtime_checkable
class ReportsValidation(Protocol):
    def get_validation_report(self) -> Mapping[str, Any]: ...


# --- the snapshot types the readers read --------------------------------------------------


class OperationTimings(LatencyLike, Protocol):
    """What a reader reads of one operation's timings; ``OperationSnapshot`` is one:
    a route's latency as the exporters read it, plus the outcome counts and the maximum.

    ``cumulative_counts`` is empty when the counts per bucket are not known.
    """

    @property
    def count(self) -> int: ...
    @property
    def successes(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def max_seconds(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PerformanceReading:
    """A monitor as the readers see it.

    ``operations``: each operation's timings (a ``MonitorSnapshot``'s, or another
    object's ``operation_stats()`` entries); ``mean_seconds``: the mean over every timed
    call, or the report's ``response_times.mean`` when nothing else tells (``None``: no
    mean at all); ``resources``: the latest process sample; ``reported_operations``: a
    report's per-operation entries (milliseconds), for objects that give no timings;
    ``history``: each operation's last 15 minutes, where the monitor keeps them (a
    ``MonitorSnapshot``'s operations, or ``OperationSnapshot`` entries of
    ``operation_stats()``).
    """

    operations: Mapping[str, OperationTimings]
    mean_seconds: float | None
    resources: Mapping[str, Any] | None
    reported_operations: Mapping[str, Mapping[str, Any]]
    history: Mapping[str, OperationHistory] = field(default_factory=lambda: _NO_HISTORY)


_NOTHING: Mapping[str, Any] = MappingProxyType({})
_NO_HISTORY: Mapping[str, OperationHistory] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class _ReportedTimings:
    """Another object's ``operation_stats()`` entry: its counts, ``total_seconds``,
    ``max_seconds`` and ``quantile(q)`` (``timed_count`` and ``cumulative_counts`` if any)."""

    count: int
    successes: int
    failures: int
    timed_count: int
    total_seconds: float
    max_seconds: float
    _quantile: Callable[[float], float]
    _cumulative: Callable[[tuple[float, ...]], list[int]] | None

    def quantile(self, q: float) -> float:
        return self._quantile(q)

    def cumulative_counts(self, bounds: tuple[float, ...]) -> list[int]:
        return [] if self._cumulative is None else list(self._cumulative(bounds))

    @classmethod
    def of(cls, stats: Any) -> _ReportedTimings | None:
        quantile = getattr(stats, "quantile", None)
        if not callable(quantile):
            return None  # plain counts (an error handler's): not timings
        count = int(stats.count)
        return cls(
            count=count,
            successes=int(stats.successes),
            failures=int(stats.failures),
            timed_count=int(getattr(stats, "timed_count", count)),
            total_seconds=float(stats.total_seconds),
            max_seconds=float(stats.max_seconds),
            _quantile=quantile,
            _cumulative=getattr(stats, "cumulative_counts", None),
        )


# --- reading a component -------------------------------------------------------------------


def performance_of(component: object) -> PerformanceReading | None:
    """The component's timings, or ``None`` when it times nothing."""
    if isinstance(component, CoordinationPerformanceMonitor):
        snapshot = component.snapshot()
        mean = snapshot.mean_seconds
        # 0.0 while nothing is timed, as the report's response_times.mean says
        return PerformanceReading(
            snapshot.operations,
            0.0 if mean is None else mean,
            snapshot.resources,
            _NOTHING,
            # references only: the rows are built when a reader asks a history for them
            MappingProxyType({n: op.history for n, op in snapshot.operations.items()}),
        )
    timings: dict[str, OperationTimings] = {}
    history: dict[str, OperationHistory] = {}
    if isinstance(component, ReportsOperationStats) and not isinstance(component, ReportsErrors):
        for name, stats in component.operation_stats().items():
            read = _ReportedTimings.of(stats)
            if read is not None:
                timings[str(name)] = read
            if isinstance(stats, OperationSnapshot):
                history[str(name)] = stats.history
    timed = sum(t.timed_count for t in timings.values())
    if timed:
        mean = sum(t.total_seconds for t in timings.values()) / timed
        return PerformanceReading(
            MappingProxyType(timings), mean, None, _NOTHING, MappingProxyType(history)
        )
    if isinstance(component, ReportsPerformance):
        # only when no snapshot gives a timed call: the report (milliseconds)
        report = component.get_performance_report()
        mean_ms = (report.get("response_times") or {}).get("mean")
        return PerformanceReading(
            MappingProxyType(timings),
            None if mean_ms is None else _seconds(mean_ms),
            None,
            _NOTHING if timings else MappingProxyType(dict(report.get("operations") or {})),
        )
    if timings:
        return PerformanceReading(MappingProxyType(timings), None, None, _NOTHING)
    return None


def handler_of(component: object) -> HandlerSnapshot | None:
    """The component's error-handling snapshot, or ``None`` when it handles no errors."""
    if isinstance(component, CoordinationErrorHandler):
        return component.snapshot()
    if isinstance(component, ReportsErrors):
        return HandlerSnapshot.from_report(component.get_error_report())
    return None


def validation_of(component: object) -> ValidationSnapshot | None:
    """The component's validation counts, or ``None`` when it validates nothing."""
    if isinstance(component, ReportsValidation):
        return ValidationSnapshot.from_report(component.get_validation_report())
    return None


def events_of(component: object) -> EventsSnapshot | None:
    """An event processor's store and broker sources (``events_snapshot()``), a broker
    source's counts on their own, or ``None`` for any other component."""
    if isinstance(component, ReportsEvents):
        return component.events_snapshot()
    if isinstance(component, ReportsSource):
        return EventsSnapshot(None, (component.source_snapshot(),))
    return None


def component_health(component: object) -> dict[str, Any]:
    """``get_health_status()``, else ``get_error_report()``'s status, else UNKNOWN; a dict
    with a ``HealthStatus`` under ``"status"``."""
    if isinstance(component, ReportsHealth):
        reported = component.get_health_status()
    elif isinstance(component, ReportsErrors):
        reported = component.get_error_report()
    else:
        return {"status": HealthStatus.UNKNOWN}
    if isinstance(reported, Mapping):
        return {**reported, "status": interpret_status(reported.get("status"))}
    return {"status": interpret_status(reported)}


def component_status(
    component: object, handler: HandlerSnapshot | None = None
) -> HealthStatus | None:
    """The component's health status (``None``: it reports none), as ``component_health``
    reads it.

    For the library's error handler, ``handler`` (its snapshot just taken) gives the status
    without reading every breaker a second time.
    """
    if handler is not None and isinstance(component, CoordinationErrorHandler):
        return handler.health().status
    if not isinstance(component, ReportsHealth | ReportsErrors):
        return None
    status: HealthStatus = component_health(component)["status"]
    return status


def _seconds(milliseconds: object) -> float:
    if isinstance(milliseconds, bool) or not isinstance(milliseconds, int | float):
        raise TypeError(f"expected a number in the report, got {milliseconds!r}")
    return float(milliseconds) / 1000.0
