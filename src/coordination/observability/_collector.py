"""``CoordinationCollector``: a prometheus_client Collector that reads the components.

Nothing is counted twice: the components already count on their hot paths, so a scrape
only takes their frozen snapshots (``_readings``) and turns them into metric families. Each
component is read on its own: one that raises gets ``coordination_export_error{component=…}
1`` and contributes nothing else, and the others are exported as usual.

``_series.SERIES`` is the one catalogue of what can be exported (name, type, help, labels
and the snapshot field each series reads); docs/observability.md lists the same.
There is one reader per snapshot type: ``_read_performance`` (``PerformanceReading``),
``_read_handler`` (``HandlerSnapshot``), ``_read_validation`` (``ValidationSnapshot``),
``_read_events`` (``EventsSnapshot``: an event processor's dead-letter store and broker
sources), and the HTTP reader (the middleware's counters and per-route timings).

Three summary gauges per component, ``coordination_response_time_seconds``,
``coordination_total_operations`` and ``coordination_export_error``, sit beside the rest;
every other series follows Prometheus naming (base units, ``_total`` for counters).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from prometheus_client.metrics_core import Metric

from .._concurrency_snapshot import ConcurrencySnapshot
from .._events_snapshot import EventsSnapshot
from .._http_snapshot import HttpSnapshot, LatencyLike
from .._logging import component_logger, log_extra
from .._shared_state import error_collectors
from .._status import HealthStatus
from ..error_handling._snapshot import HandlerSnapshot
from ..validation._snapshot import ValidationSnapshot
from ._families import FamilyBuilder
from ._readings import (
    PerformanceReading,
    ReportsHealth,
    component_status,
    events_of,
    handler_of,
    performance_of,
    validation_of,
)
from ._series import (
    ADDITIVE_GAUGES,
    ALWAYS_SHOWN,
    BREAKER_OPEN_SECONDS,
    BREAKER_STATE,
    BREAKER_TRANSITIONS,
    BREAKER_WOULD_REJECT,
    BROKER_MESSAGES,
    BROKER_RECONNECTS,
    BROKER_REQUEUED,
    BROKER_SOURCE_AVAILABLE,
    BUCKETS,
    COMPONENT_STATUS,
    CONCURRENCY_IN_FLIGHT,
    CONCURRENCY_LIMIT,
    CONCURRENCY_SHED,
    CONFIG_RELOAD_ERRORS,
    CONFIG_RELOADS,
    DEAD_LETTER_STORE_AVAILABLE,
    DEAD_LETTER_STORE_ERRORS,
    DEAD_LETTERS,
    DEAD_LETTERS_PENDING,
    ERRORS,
    ERRORS_BY_SEVERITY,
    EXPORT_ERROR,
    FAMILIES,
    HANDLER_COUNTERS,
    HTTP_SERIES,
    OPERATION_DURATION,
    OPERATIONS,
    QUANTILES,
    RESOURCES,
    RESPONSE_TIME,
    SERIES,
    TOTAL_OPERATIONS,
    VALIDATION_FAILURES,
    VALIDATIONS,
    Series,
)

__all__ = [
    "ADDITIVE_GAUGES",
    "BUCKETS",
    "FAMILIES",
    "QUANTILES",
    "SERIES",
    "BackendErrorsCollector",
    "CoordinationCollector",
    "DurationType",
    "Series",
]

DurationType = Literal["histogram", "summary"]
_BOUNDED_LABELS = frozenset(
    {
        "operation",
        "breaker",
        "error_type",
        "severity",
        "rule_set",
        "code",
        "route",
        "method",
        "status",
        "namespace",
        "broker",
        "source",
    }
)


_BREAKER_STATES = {"CLOSED": 0.0, "HALF_OPEN": 1.0, "OPEN": 2.0}
_STATUSES = tuple(
    HealthStatus[name] for name in ("HEALTHY", "DEGRADED", "UNHEALTHY", "UNKNOWN", "ERROR")
)


def _number(value: Any) -> float:
    """A report value as a float; anything else is a component bug worth reporting."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number in the report, got {value!r}")
    return float(value)


def _put(out: FamilyBuilder, series: Series, labels: dict[str, str], value: float) -> None:
    if series.type == "counter":
        out.counter(series.name, series.help, labels, value)
    else:
        out.gauge(series.name, series.help, labels, value)


class CoordinationCollector:
    """Reads ``components`` (a name -> component mapping) at every scrape.

    Register it into any ``CollectorRegistry``; ``CoordinationMetricsExporter`` does.
    Durations are histograms (``BUCKETS``; they add up across instances and processes)
    or, with ``durations="summary"``, the sketch's quantiles (``QUANTILES``, within 1 %).
    """

    def __init__(
        self,
        components: Mapping[str, object],
        *,
        max_label_values: int = 1000,
        durations: DurationType = "histogram",
        logger: logging.Logger | None = None,
    ) -> None:
        if durations not in ("histogram", "summary"):
            raise ValueError(f'durations must be "histogram" or "summary", got {durations!r}')
        self.components = components
        self.max_label_values = max_label_values
        self.durations = durations
        self._logger = logger or component_logger("observability")
        self._warned: set[str] = set()  # one warning per broken component, not per scrape

    def describe(self) -> Iterable[Metric]:
        """The fixed names, so a registry can refuse a clash without reading components."""
        return [
            Metric(s.name, "", self.durations if s.type == "duration" else s.type) for s in SERIES
        ]

    def collect(self) -> Iterator[Metric]:
        read: list[FamilyBuilder] = []
        errors = self._builder()
        for name, component in list(self.components.items()):
            one = self._builder()
            try:
                _read_component(one, name, component, self.durations)
            except Exception:
                level = logging.DEBUG if name in self._warned else logging.WARNING
                self._warned.add(name)
                self._logger.log(
                    level,
                    "cannot export metrics of component %r",
                    name,
                    exc_info=True,
                    extra=log_extra(component=name),
                )
                failed = True
            else:
                read.append(one)
                failed = False
            _put(errors, EXPORT_ERROR, {"component": name}, float(failed))
        # Each component's series carry its own component label, so they never collide.
        yield from FamilyBuilder.combine([*read, errors])

    def _builder(self) -> FamilyBuilder:
        return FamilyBuilder(max_label_values=self.max_label_values, bounded_labels=_BOUNDED_LABELS)


class BackendErrorsCollector:
    """``coordination_redis_errors_total`` (Redis commands that failed, by component kind)
    and ``coordination_broker_errors_total`` (broker operations that failed, by broker
    and component: source, store, publisher).

    The counters themselves live in prometheus_client's default ``REGISTRY`` (every
    Redis-backed component and broker source of the process counts into them, whichever
    exporter exists); this collector serves the same counters from another registry, so
    an exporter's private registry shows them too, from the first failure on.
    """

    def describe(self) -> Iterable[Metric]:
        return ()  # nothing before a backend is used: registering never clashes

    def collect(self) -> Iterator[Metric]:
        # Each backend in use says which counters it has (_shared_state: no backend import).
        for source in error_collectors():
            yield from source.collect()
        # The broker sources' counter, once a source exists (a scrape imports nothing).
        if "coordination.backends._source" in sys.modules:
            from ..backends._source import existing_broker_errors

            counter = existing_broker_errors()
            if counter is not None:
                yield from counter.collect()


def _read_component(
    out: FamilyBuilder, name: str, component: object, durations: DurationType
) -> None:
    comp = {"component": name}
    performance = performance_of(component)
    if performance is not None:
        _read_performance(out, comp, performance, durations)
    handler = handler_of(component)
    if handler is not None:
        _read_handler(out, comp, handler)
    validation = validation_of(component)
    if validation is not None:
        _read_validation(out, comp, validation)
    events = events_of(component)
    if events is not None:
        _read_events(out, comp, events)
    if hasattr(component, "http_snapshot"):
        read_http_snapshot(out, comp, component.http_snapshot(), durations)
    if isinstance(component, ReportsHealth):
        status = component_status(component, handler)
        for candidate in _STATUSES:
            _put(out, COMPONENT_STATUS, {**comp, "status": candidate.value}, candidate is status)


def _read_performance(
    out: FamilyBuilder, comp: dict[str, str], reading: PerformanceReading, durations: DurationType
) -> None:
    """Durations and outcomes per operation, the mean response time, the process resources."""
    for operation, timings in reading.operations.items():
        labels = {**comp, "operation": operation}
        _duration(out, OPERATION_DURATION.name, labels, timings, durations)
        _put(out, OPERATIONS, {**labels, "outcome": "success"}, timings.successes)
        _put(out, OPERATIONS, {**labels, "outcome": "failure"}, timings.failures)
    if reading.mean_seconds is not None:
        _put(out, RESPONSE_TIME, comp, reading.mean_seconds)
    if reading.resources is not None:
        for key, scale, series in RESOURCES:
            if key in reading.resources:
                _put(out, series, comp, _number(reading.resources[key]) * scale)


def _read_handler(out: FamilyBuilder, comp: dict[str, str], snapshot: HandlerSnapshot) -> None:
    _put(out, TOTAL_OPERATIONS, comp, snapshot.total_operations)
    for operation, op in snapshot.operations.items():
        labels = {**comp, "operation": operation}
        _put(out, OPERATIONS, {**labels, "outcome": "success"}, op.successes)
        _put(out, OPERATIONS, {**labels, "outcome": "failure"}, op.failures)
        for field, series in HANDLER_COUNTERS:
            count = getattr(op, field)
            if count or field in ALWAYS_SHOWN:
                _put(out, series, labels, count)
    for error_type, count in snapshot.errors_by_type.items():
        _put(out, ERRORS, {**comp, "error_type": error_type}, count)
    for severity, count in snapshot.errors_by_severity.items():
        _put(out, ERRORS_BY_SEVERITY, {**comp, "severity": severity}, count)
    for breaker, info in snapshot.breakers.items():
        labels = {**comp, "breaker": breaker}
        _put(out, BREAKER_STATE, labels, _BREAKER_STATES[info.state.name])
        for transition, count in info.transitions.items():
            _put(out, BREAKER_TRANSITIONS, {**labels, "transition": transition}, count)
        if info.mode == "metrics_only":
            _put(out, BREAKER_WOULD_REJECT, labels, info.would_reject)
        if info.open_seconds is not None and info.mode != "disabled":
            _put(out, BREAKER_OPEN_SECONDS, labels, info.open_seconds)
    if snapshot.reloads is not None:
        _put(out, CONFIG_RELOADS, comp, snapshot.reloads.reloads)
        _put(out, CONFIG_RELOAD_ERRORS, comp, snapshot.reloads.errors)
    for limit in snapshot.concurrency.values():
        _read_concurrency(out, comp, limit)


def _read_events(out: FamilyBuilder, comp: dict[str, str], snapshot: EventsSnapshot) -> None:
    """An event processor's store (its counts only when it answered) and the broker
    sources feeding it."""
    store = snapshot.store
    if store is not None:
        labels = {**comp, "store": store.kind, "namespace": store.namespace}
        if store.dead_letters is not None:
            _put(out, DEAD_LETTERS, labels, float(store.dead_letters))
        if store.pending is not None:
            _put(out, DEAD_LETTERS_PENDING, labels, float(store.pending))
        _put(out, DEAD_LETTER_STORE_AVAILABLE, labels, float(store.available))
        _put(out, DEAD_LETTER_STORE_ERRORS, labels, float(store.read_errors))
    for source in snapshot.sources:
        labels = {**comp, "broker": source.broker, "source": source.source}
        for outcome, count in (
            ("processed", source.processed),
            ("dead_lettered", source.dead_lettered),
            ("poison", source.poison),
            ("redelivered", source.redelivered),
        ):
            _put(out, BROKER_MESSAGES, {**labels, "outcome": outcome}, float(count))
        _put(out, BROKER_REQUEUED, labels, float(source.requeued))
        _put(out, BROKER_RECONNECTS, labels, float(source.reconnects))
        _put(out, BROKER_SOURCE_AVAILABLE, labels, float(source.available))


def _read_concurrency(out: FamilyBuilder, comp: dict[str, str], limit: ConcurrencySnapshot) -> None:
    """One adaptive limit: its limit and in-flight gauges, its refusals by severity (each
    severity from its first refusal on: a group serves one or two of them, mostly)."""
    labels = {**comp, "group": limit.group}
    _put(out, CONCURRENCY_LIMIT, labels, float(limit.limit))
    _put(out, CONCURRENCY_IN_FLIGHT, labels, float(limit.in_flight))
    for severity, count in limit.shed.items():
        if count:
            _put(out, CONCURRENCY_SHED, {**labels, "severity": severity}, float(count))


def _read_validation(
    out: FamilyBuilder, comp: dict[str, str], snapshot: ValidationSnapshot
) -> None:
    for rule_set, counts in snapshot.by_rule_set.items():
        for result, count in counts.items():
            _put(out, VALIDATIONS, {**comp, "rule_set": rule_set, "result": result}, count)
    for rule_set, code, count in snapshot.failures:
        _put(out, VALIDATION_FAILURES, {**comp, "rule_set": rule_set, "code": code}, count)


# The middleware's series, in the catalogue's order.
(
    _HTTP_RESPONSES,
    _HTTP_REJECTED,
    _HTTP_IN_FLIGHT,
    _HTTP_DURATION,
    _HTTP_REQUESTS,
    _HTTP_RATE_LIMITED,
) = HTTP_SERIES


def read_http_snapshot(
    out: FamilyBuilder, comp: dict[str, str], http: HttpSnapshot, durations: DurationType
) -> None:
    """The HTTP series of one middleware: its counters, and each route's timings.

    Method and route are fields of each ``RouteSnapshot``; the timings are the monitor's
    snapshot of that route, so nothing is parsed back out of an operation name.
    """
    for series, counts in ((_HTTP_RESPONSES, http.status_codes), (_HTTP_REJECTED, http.rejected)):
        for status, count in counts.items():
            _put(out, series, {**comp, "status": str(status)}, float(count))
    _put(out, _HTTP_RATE_LIMITED, comp, float(http.rate_limited))
    _put(out, _HTTP_IN_FLIGHT, comp, float(http.in_flight))
    if http.concurrency is not None:
        _read_concurrency(out, comp, http.concurrency)
    for route in http.routes:
        labels = {**comp, "method": route.method, "route": route.route}
        for label, count in route.statuses.items():
            _put(out, _HTTP_REQUESTS, {**labels, "status": label}, float(count))
    for route in http.routes:  # after every count, in the order the families had before
        if route.latency is not None:
            labels = {**comp, "method": route.method, "route": route.route}
            _duration(out, _HTTP_DURATION.name, labels, route.latency, durations)


def _duration(
    out: FamilyBuilder,
    series: str,
    labels: dict[str, str],
    snapshot: LatencyLike,  # what both the operation and the HTTP readers pass
    durations: str,
) -> None:
    doc = OPERATION_DURATION.help
    # total_seconds covers the timed calls only (record_success() alone has no duration)
    count = snapshot.timed_count
    total = snapshot.total_seconds
    if durations == "summary":
        quantiles = {q: _number(snapshot.quantile(q)) for q in QUANTILES} if count else {}
        out.summary(series, doc, labels, count=count, total=total, quantiles=quantiles)
        return
    cumulative = snapshot.cumulative_counts(BUCKETS)
    buckets: list[tuple[float, float]] = (
        list(zip(BUCKETS, map(float, cumulative), strict=True)) if cumulative else []
    )
    out.histogram(series, doc, labels, buckets=buckets, count=count, total=total)
