"""``CoordinationCollector``: a prometheus_client Collector that reads the components.

Nothing is counted twice: the components already count on their hot paths, so a scrape
only reads their reports and ``operation_stats()`` snapshots and turns them into metric
families. Each component is read on its own: one that raises gets
``coordination_export_error{component=…} 1`` and contributes nothing else, and the
others are exported as usual (the spec's rule, kept).

The spec's three series keep their names and meaning (gauges, as in the spec):
``coordination_response_time_seconds``, ``coordination_total_operations`` and
``coordination_export_error``. Every other series follows Prometheus naming (base units,
``_total`` for counters); docs/observability.md lists them all.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

from prometheus_client.metrics_core import Metric

from .._logging import component_logger
from .._shared_state import error_collectors
from ._families import FamilyBuilder

__all__ = [
    "ADDITIVE_GAUGES",
    "BUCKETS",
    "FAMILIES",
    "QUANTILES",
    "CoordinationCollector",
    "DurationType",
    "RedisErrorsCollector",
]

QUANTILES = (0.5, 0.9, 0.95, 0.99)
# The semantic conventions' advice for http.server.request.duration, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
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
    }
)
_HANDLER_COUNTERS = (
    # report key, series, help
    ("retries", "coordination_retries", "Retries made after failed attempts."),
    (
        "rejections",
        "coordination_circuit_breaker_rejections",
        "Calls rejected because the operation's circuit breaker was open.",
    ),
    ("timeouts", "coordination_timeouts", "Attempts stopped by the operation's timeout."),
    (
        "bulkhead_rejections",
        "coordination_bulkhead_rejections",
        "Calls rejected because the operation's bulkhead was full.",
    ),
    ("fallbacks", "coordination_fallbacks", "Calls answered by the operation's fallback."),
    ("rate_limited", "coordination_rate_limited", "Calls refused by the operation's rate limit."),
)
# Retries and breaker rejections concern every protected operation; timeouts, bulkheads,
# fallbacks and rate limits only those configured with them, so those counters appear
# from their first count on (1 000 operations would otherwise carry 4 000 zero series).
_ALWAYS_SHOWN = frozenset({"retries", "rejections"})
# One series per breaker whose value is the state, so "> 0" alerts on any trouble.
_BREAKER_STATES = {"CLOSED": 0.0, "HALF_OPEN": 1.0, "OPEN": 2.0}
_STATUSES = ("HEALTHY", "DEGRADED", "UNHEALTHY", "UNKNOWN", "ERROR")
# The middleware names its operations "<METHOD> <route template>".
_HTTP_OPERATION = re.compile(r"^(?P<method>[A-Z]+) (?P<route>/\S*)$")


def _number(value: Any) -> float:
    """A report value as a float; anything else is a component bug worth reporting."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number in the report, got {value!r}")
    return float(value)


def _name(value: Any) -> str:
    """An enum member's name, else the value as text (CircuitState.OPEN -> "OPEN")."""
    return str(getattr(value, "name", value))


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
            Metric(name, "", self.durations if typ == "duration" else typ) for name, typ in FAMILIES
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
                    level, "cannot export metrics of component %r", name, exc_info=True
                )
                failed = True
            else:
                read.append(one)
                failed = False
            errors.gauge(
                "coordination_export_error",
                "1 when reading the component for this scrape failed, else 0.",
                {"component": name},
                float(failed),
            )
        # Each component's series carry its own component label, so they never collide.
        yield from FamilyBuilder.combine([*read, errors])

    def _builder(self) -> FamilyBuilder:
        return FamilyBuilder(max_label_values=self.max_label_values, bounded_labels=_BOUNDED_LABELS)


class RedisErrorsCollector:
    """``coordination_redis_errors_total``: Redis commands that failed, by component kind.

    The counter itself lives in prometheus_client's default ``REGISTRY`` (every
    Redis-backed component of the process counts into it, whichever exporter exists);
    this collector serves the same counter from another registry, so an exporter's
    private registry shows it too, from the first Redis-backed component on.
    """

    def describe(self) -> Iterable[Metric]:
        return ()  # nothing before Redis is used: registering never clashes

    def collect(self) -> Iterator[Metric]:
        # Each backend in use says which counters it has (_shared_state: no backend import).
        for source in error_collectors():
            yield from source.collect()


def _read_component(
    out: FamilyBuilder, name: str, component: object, durations: DurationType
) -> None:
    comp = {"component": name}
    mean = None
    # The error handler's snapshots hold the counts its report already gives: skip them.
    if hasattr(component, "operation_stats") and not hasattr(component, "get_error_report"):
        mean = _read_operation_stats(out, comp, component.operation_stats(), durations)
    if mean is None and hasattr(component, "get_performance_report"):
        # only when the snapshots cannot give the mean: the full report costs far more
        mean_ms = component.get_performance_report().get("response_times", {}).get("mean")
        mean = None if mean_ms is None else _number(mean_ms) / 1000.0
    if mean is not None:
        out.gauge(
            "coordination_response_time_seconds",
            "Mean response time of every operation the component recorded (the spec's).",
            comp,
            mean,
        )
    if hasattr(component, "get_error_report"):
        _read_error_report(out, comp, component.get_error_report())
    if hasattr(component, "get_validation_report"):
        _read_validation_report(out, comp, component.get_validation_report())
    if hasattr(component, "get_middleware_status"):
        _read_middleware(out, comp, component, durations)
    sampler = getattr(component, "sampler", None)
    if sampler is not None and hasattr(sampler, "summary"):
        _read_resources(out, comp, sampler.summary().get("latest"))
    if hasattr(component, "get_health_status"):
        health = component.get_health_status()
        status = _name(health.get("status") if isinstance(health, Mapping) else health)
        for candidate in _STATUSES:
            out.gauge(
                "coordination_component_status",
                "1 for the component's current health status, 0 for the others.",
                {**comp, "status": candidate},
                float(candidate == status.upper()),
            )


# sample key -> series, scale, help (the monitor's psutil sampler; additive across workers)
_RESOURCES = (
    (
        "cpu_percent",
        "coordination_process_cpu_usage_ratio",
        0.01,
        "CPU used by the process at the last sample (1.0 is one core busy).",
    ),
    (
        "memory_rss_bytes",
        "coordination_process_resident_memory_bytes",
        1.0,
        "Resident memory of the process at the last sample.",
    ),
    ("threads", "coordination_process_threads", 1.0, "Threads of the process at the last sample."),
    (
        "open_files",
        "coordination_process_open_fds",
        1.0,
        "Open file descriptors of the process at the last sample.",
    ),
)


# Gauges whose values from several processes add up (the others merge by maximum).
ADDITIVE_GAUGES = frozenset(
    {"coordination_total_operations", "coordination_http_requests_in_flight"}
    | {series for _, series, _, _ in _RESOURCES}
)


def _read_resources(out: FamilyBuilder, comp: dict[str, str], latest: Any) -> None:
    """The monitor's latest resource sample (only while its sampler has run)."""
    if not isinstance(latest, Mapping):
        return
    for key, series, scale, doc in _RESOURCES:
        if key in latest:
            out.gauge(series, doc, comp, _number(latest[key]) * scale)


def _read_error_report(out: FamilyBuilder, comp: dict[str, str], report: Any) -> None:
    if "total_operations" in report:
        out.gauge(
            "coordination_total_operations",
            "Operations the component handled since it started (the spec's; a gauge).",
            comp,
            _number(report["total_operations"]),
        )
    for operation, counts in report.get("operations", {}).items():
        labels = {**comp, "operation": str(operation)}
        for outcome, key in (("success", "successes"), ("failure", "failures")):
            if key in counts:
                out.counter(
                    "coordination_operations",
                    "Operations finished, by outcome.",
                    {**labels, "outcome": outcome},
                    _number(counts[key]),
                )
        for key, series, doc in _HANDLER_COUNTERS:
            if key in counts and (key in _ALWAYS_SHOWN or counts[key]):
                out.counter(series, doc, labels, _number(counts[key]))
    for error_type, count in report.get("errors_by_type", {}).items():
        out.counter(
            "coordination_errors",
            "Errors raised by protected operations, by exception type.",
            {**comp, "error_type": str(error_type)},
            _number(count),
        )
    for severity, count in report.get("errors_by_severity", {}).items():
        out.counter(
            "coordination_errors_by_severity",
            "Errors raised by protected operations, by configured severity.",
            {**comp, "severity": _name(severity)},
            _number(count),
        )
    for breaker, info in report.get("circuit_breakers", {}).items():
        state = _name(info.get("state")).upper()
        out.gauge(
            "coordination_circuit_breaker_state",
            "The breaker's state: 0 CLOSED, 1 HALF_OPEN, 2 OPEN.",
            {**comp, "breaker": str(breaker)},
            _BREAKER_STATES[state],
        )
        for transition, count in info.get("transitions", {}).items():
            out.counter(
                "coordination_circuit_breaker_transitions",
                "Breaker state changes, such as CLOSED->OPEN.",
                {**comp, "breaker": str(breaker), "transition": str(transition)},
                _number(count),
            )


def _read_validation_report(out: FamilyBuilder, comp: dict[str, str], report: Any) -> None:
    for rule_set, counts in report.get("by_rule_set", {}).items():
        for result in ("valid", "invalid"):
            if result in counts:
                out.counter(
                    "coordination_validations",
                    "Messages validated, by rule set and result.",
                    {**comp, "rule_set": str(rule_set), "result": result},
                    _number(counts[result]),
                )
    for failure in report.get("failures_by_rule_set_and_code", ()):
        out.counter(
            "coordination_validation_failures",
            "Validation errors found, by rule set and error code.",
            {**comp, "rule_set": str(failure["rule_set"]), "code": str(failure["code"])},
            _number(failure["count"]),
        )


def _read_middleware(
    out: FamilyBuilder, comp: dict[str, str], middleware: Any, durations: DurationType
) -> None:
    """HTTP series: counters from the middleware, per-route timings from its monitor."""
    if hasattr(middleware, "http_stats"):  # the counters alone, without three reports
        counters = middleware.http_stats()
    else:
        counters = middleware.get_middleware_status().get("middleware", {})
    for status, count in counters.get("status_codes", {}).items():
        out.counter(
            "coordination_http_responses",
            "HTTP responses sent through the middleware, by status code.",
            {**comp, "status": str(status)},
            _number(count),
        )
    for status, count in counters.get("rejected", {}).items():
        out.counter(
            "coordination_http_rejected_requests",
            "Requests the middleware refused before the app (problem+json), by status code.",
            {**comp, "status": str(status)},
            _number(count),
        )
    if "rate_limited" in counters:
        out.counter(
            "coordination_http_rate_limited",
            "Requests refused with 429 because their client's rate limit was spent.",
            comp,
            _number(counters["rate_limited"]),
        )
    if "in_flight" in counters:
        out.gauge(
            "coordination_http_requests_in_flight",
            "Requests being served right now.",
            comp,
            _number(counters["in_flight"]),
        )
    for entry in counters.get("by_route", ()):
        out.counter(
            "coordination_http_requests",
            "HTTP requests served, by method, route template and status code (codes "
            "outside the standard ones grouped by class, such as 7xx).",
            {
                **comp,
                "method": str(entry["method"]),
                "route": str(entry["route"]),
                "status": str(entry["status"]),
            },
            _number(entry["count"]),
        )
    monitor = getattr(middleware, "performance_monitor", None)
    if monitor is None or not hasattr(monitor, "operation_stats"):
        return
    for operation, snapshot in monitor.operation_stats().items():
        match = _HTTP_OPERATION.match(str(operation))
        if match is None or not hasattr(snapshot, "quantile"):
            continue
        labels = {**comp, "method": match["method"], "route": match["route"]}
        _duration(out, "coordination_http_request_duration_seconds", labels, snapshot, durations)


def _duration(
    out: FamilyBuilder, series: str, labels: dict[str, str], snapshot: Any, durations: str
) -> None:
    doc = "Time taken, read from the monitor's latency sketch."
    # total_seconds covers the timed calls only (record_success() alone has no duration)
    count = _number(getattr(snapshot, "timed_count", snapshot.count))
    total = _number(snapshot.total_seconds)
    if durations == "summary":
        quantiles = {q: _number(snapshot.quantile(q)) for q in QUANTILES} if count else {}
        out.summary(series, doc, labels, count=count, total=total, quantiles=quantiles)
        return
    buckets: list[tuple[float, float]] = []
    cumulative = getattr(snapshot, "cumulative_counts", None)
    if cumulative is not None:
        counts = (_number(c) for c in cumulative(BUCKETS))
        buckets = list(zip(BUCKETS, counts, strict=True))
    out.histogram(series, doc, labels, buckets=buckets, count=count, total=total)


def _read_operation_stats(
    out: FamilyBuilder, comp: dict[str, str], stats: Any, durations: DurationType
) -> float | None:
    """The duration series; returns the mean over every timed call (None: no timings)."""
    timed = 0.0
    total = 0.0
    for operation, snapshot in stats.items():
        if not hasattr(snapshot, "quantile"):
            continue  # plain counts (the error handler's): its report is read already
        labels = {**comp, "operation": str(operation)}
        _duration(out, "coordination_operation_duration_seconds", labels, snapshot, durations)
        timed += _number(getattr(snapshot, "timed_count", snapshot.count))
        total += _number(snapshot.total_seconds)
        for outcome, value in (("success", snapshot.successes), ("failure", snapshot.failures)):
            out.counter(
                "coordination_operations",
                "Operations finished, by outcome.",
                {**labels, "outcome": outcome},
                _number(value),
            )
    return total / timed if timed else None


FAMILIES = (
    ("coordination_export_error", "gauge"),
    ("coordination_response_time_seconds", "gauge"),
    ("coordination_total_operations", "gauge"),
    ("coordination_operations", "counter"),
    ("coordination_errors", "counter"),
    ("coordination_errors_by_severity", "counter"),
    ("coordination_circuit_breaker_state", "gauge"),
    ("coordination_circuit_breaker_transitions", "counter"),
    ("coordination_validations", "counter"),
    ("coordination_validation_failures", "counter"),
    ("coordination_operation_duration_seconds", "duration"),
    ("coordination_component_status", "gauge"),
    ("coordination_http_responses", "counter"),
    ("coordination_http_rejected_requests", "counter"),
    ("coordination_http_requests_in_flight", "gauge"),
    ("coordination_http_request_duration_seconds", "duration"),
    ("coordination_http_requests", "counter"),
    ("coordination_http_rate_limited", "counter"),
    *((series, "counter") for _, series, _ in _HANDLER_COUNTERS),
    *((series, "gauge") for _, series, _, _ in _RESOURCES),
)
