"""The catalogue of every series the collector can export: one entry per series.

Each ``Series`` gives the name (counters get ``_total`` when exposed), the type, the help
text, the labels besides ``component`` and the snapshot field it reads. The collector's
readers emit through these entries, ``describe()`` and the OpenTelemetry bridge list them,
multi-process merging reads ``ADDITIVE_GAUGES`` from them, and
``tests/observability/test_docs.py`` checks that docs/observability.md documents each one
with its type and labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ADDITIVE_GAUGES",
    "ALWAYS_SHOWN",
    "BREAKER_OPEN_SECONDS",
    "BREAKER_STATE",
    "BREAKER_TRANSITIONS",
    "BREAKER_WOULD_REJECT",
    "BROKER_MESSAGES",
    "BROKER_RECONNECTS",
    "BROKER_REQUEUED",
    "BROKER_SOURCE_AVAILABLE",
    "BUCKETS",
    "COMPONENT_STATUS",
    "CONCURRENCY_IN_FLIGHT",
    "CONCURRENCY_LIMIT",
    "CONCURRENCY_SHED",
    "DEAD_LETTERS",
    "DEAD_LETTERS_PENDING",
    "DEAD_LETTER_STORE_AVAILABLE",
    "DEAD_LETTER_STORE_ERRORS",
    "ERRORS",
    "ERRORS_BY_SEVERITY",
    "EVENT_SERIES",
    "EXPORT_ERROR",
    "FAMILIES",
    "HANDLER_COUNTERS",
    "HTTP_SERIES",
    "OPERATIONS",
    "OPERATION_DURATION",
    "QUANTILES",
    "RESOURCES",
    "RESPONSE_TIME",
    "SERIES",
    "TOTAL_OPERATIONS",
    "VALIDATIONS",
    "VALIDATION_FAILURES",
    "Series",
    "SeriesType",
]

QUANTILES = (0.5, 0.9, 0.95, 0.99)
# The semantic conventions' advice for http.server.request.duration, in seconds.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
SeriesType = Literal["counter", "gauge", "duration"]


@dataclass(frozen=True, slots=True)
class Series:
    """One exported series: its name (counters get ``_total``), type, help, the labels
    besides ``component``, and the snapshot field it reads. ``duration`` is a histogram,
    or a summary with ``durations="summary"``."""

    name: str
    type: SeriesType
    help: str
    labels: tuple[str, ...]
    source: str


def _s(name: str, typ: SeriesType, labels: tuple[str, ...], source: str, doc: str) -> Series:
    return Series("coordination_" + name, typ, doc, labels, source)


EXPORT_ERROR = _s(
    "export_error",
    "gauge",
    (),
    "the read itself",
    "1 when reading the component for this scrape failed, else 0.",
)
RESPONSE_TIME = _s(
    "response_time_seconds",
    "gauge",
    (),
    "PerformanceReading.mean_seconds",
    "Mean response time of every operation the component recorded (the spec's).",
)
TOTAL_OPERATIONS = _s(
    "total_operations",
    "gauge",
    (),
    "HandlerSnapshot.total_operations",
    "Operations the component handled since it started (the spec's; a gauge).",
)
OPERATIONS = _s(
    "operations",
    "counter",
    ("operation", "outcome"),
    "OperationSnapshot / OperationErrorSnapshot .successes, .failures",
    "Operations finished, by outcome.",
)
ERRORS = _s(
    "errors",
    "counter",
    ("error_type",),
    "HandlerSnapshot.errors_by_type",
    "Errors raised by protected operations, by exception type.",
)
ERRORS_BY_SEVERITY = _s(
    "errors_by_severity",
    "counter",
    ("severity",),
    "HandlerSnapshot.errors_by_severity",
    "Errors raised by protected operations, by configured severity.",
)
BREAKER_STATE = _s(
    "circuit_breaker_state",
    "gauge",
    ("breaker",),
    "BreakerSnapshot.state",
    "The breaker's state: 0 CLOSED, 1 HALF_OPEN, 2 OPEN.",
)
BREAKER_TRANSITIONS = _s(
    "circuit_breaker_transitions",
    "counter",
    ("breaker", "transition"),
    "BreakerSnapshot.transitions",
    "Breaker state changes, such as CLOSED->OPEN.",
)
BREAKER_WOULD_REJECT = _s(
    "circuit_breaker_would_reject",
    "counter",
    ("breaker",),
    "BreakerSnapshot.would_reject",
    "Calls a breaker in breaker_mode metrics_only would have rejected (they ran).",
)
BREAKER_OPEN_SECONDS = _s(
    "circuit_breaker_open_seconds",
    "gauge",
    ("breaker",),
    "BreakerSnapshot.open_seconds",
    "Length of the breaker's current open period (the next one while not open); "
    "it grows on re-opens with open_backoff_multiplier.",
)
VALIDATIONS = _s(
    "validations",
    "counter",
    ("rule_set", "result"),
    "ValidationSnapshot.by_rule_set",
    "Messages validated, by rule set and result.",
)
VALIDATION_FAILURES = _s(
    "validation_failures",
    "counter",
    ("rule_set", "code"),
    "ValidationSnapshot.failures",
    "Validation errors found, by rule set and error code.",
)
OPERATION_DURATION = _s(
    "operation_duration_seconds",
    "duration",
    ("operation",),
    "OperationSnapshot.timed_count, .total_seconds, .cumulative_counts(), .quantile()",
    "Time taken, read from the monitor's latency sketch.",
)
CONCURRENCY_LIMIT = _s(
    "concurrency_limit",
    "gauge",
    ("group",),
    "ConcurrencySnapshot.limit",
    "The adaptive concurrency limit now, by group (concurrency_group, the operation's "
    "name for its own limit, or app for the middleware's).",
)
CONCURRENCY_IN_FLIGHT = _s(
    "concurrency_in_flight",
    "gauge",
    ("group",),
    "ConcurrencySnapshot.in_flight",
    "Calls holding a slot of the adaptive concurrency limit, by group.",
)
CONCURRENCY_SHED = _s(
    "concurrency_shed",
    "counter",
    ("group", "severity"),
    "ConcurrencySnapshot.shed",
    "Calls the adaptive concurrency limit refused, by group and severity.",
)
COMPONENT_STATUS = _s(
    "component_status",
    "gauge",
    ("status",),
    "the component's health status",
    "1 for the component's current health status, 0 for the others.",
)
HTTP_SERIES = (
    _s(
        "http_responses",
        "counter",
        ("status",),
        "HTTP stats: status_codes",
        "HTTP responses sent through the middleware, by status code.",
    ),
    _s(
        "http_rejected_requests",
        "counter",
        ("status",),
        "HTTP stats: rejected",
        "Requests the middleware refused before the app (problem+json), by status code.",
    ),
    _s(
        "http_requests_in_flight",
        "gauge",
        (),
        "HTTP stats: in_flight",
        "Requests being served right now.",
    ),
    _s(
        "http_request_duration_seconds",
        "duration",
        ("method", "route"),
        "the middleware monitor's OperationSnapshot per route",
        "Time taken, read from the monitor's latency sketch.",
    ),
    _s(
        "http_requests",
        "counter",
        ("method", "route", "status"),
        "HTTP stats: by_route",
        "HTTP requests served, by method, route template and status code (codes "
        "outside the standard ones grouped by class, such as 7xx).",
    ),
    _s(
        "http_rate_limited",
        "counter",
        (),
        "HTTP stats: rate_limited",
        "Requests refused with 429 because a client or route rate limit was spent.",
    ),
)
# The error handler's per-operation counters: (OperationErrorSnapshot field, series).
# Retries and breaker rejections concern every protected operation; timeouts, bulkheads,
# fallbacks and rate limits only those configured with them, so those counters appear
# from their first count on (1 000 operations would otherwise carry 4 000 zero series).
HANDLER_COUNTERS = tuple(
    (field, _s(name, "counter", ("operation",), f"OperationErrorSnapshot.{field}", doc))
    for field, name, doc in (
        ("retries", "retries", "Retries made after failed attempts."),
        (
            "rejections",
            "circuit_breaker_rejections",
            "Calls rejected because the operation's circuit breaker was open.",
        ),
        ("timeouts", "timeouts", "Attempts stopped by the operation's timeout."),
        (
            "bulkhead_rejections",
            "bulkhead_rejections",
            "Calls rejected because the operation's bulkhead was full.",
        ),
        ("fallbacks", "fallbacks", "Calls answered by the operation's fallback."),
        ("rate_limited", "rate_limited", "Calls refused by the operation's rate limit."),
        (
            "hook_errors",
            "hook_errors",
            "The operation's on_retry hooks and wait callables that raised or answered a "
            "bad value (logged; the call went on).",
        ),
        (
            "retry_budget_exhausted",
            "retry_budget_exhausted",
            "Failures raised at once instead of retried because the operation's retry "
            "budget was spent.",
        ),
        (
            "hedged_attempts",
            "hedged_attempts",
            "Attempts started by hedge_after beside a call's first attempt.",
        ),
        (
            "hedge_wins",
            "hedge_wins",
            "Calls answered by a hedged attempt rather than by the first attempt.",
        ),
    )
)
# A set's live reloads (docs/live-reload.md), read from the handler's snapshot.
CONFIG_RELOADS = _s(
    "config_reloads",
    "counter",
    (),
    "HandlerSnapshot.reloads.reloads",
    "Reloads of the configuration and rule files applied (reload_config, SIGHUP, a file change).",
)
CONFIG_RELOAD_ERRORS = _s(
    "config_reload_errors",
    "counter",
    (),
    "HandlerSnapshot.reloads.errors",
    "Reloads refused because a file failed to load or check; the old settings stayed in force.",
)
# An event processor's dead-letter store and the broker sources feeding it, read from
# its EventsSnapshot. ``store`` is the store's kind (sqlite, postgresql), never its path
# or URL (which may hold a password); counts of a store that cannot answer are left out.
_STORE = ("store", "namespace")
DEAD_LETTERS = _s(
    "dead_letters",
    "gauge",
    _STORE,
    "StoreSnapshot.dead_letters",
    "Dead letters in the event processor's store (every event type), by store kind and namespace.",
)
DEAD_LETTERS_PENDING = _s(
    "dead_letters_pending",
    "gauge",
    _STORE,
    "StoreSnapshot.pending",
    "Journal entries of events being processed (not yet processed or dead-lettered).",
)
DEAD_LETTER_STORE_AVAILABLE = _s(
    "dead_letter_store_available",
    "gauge",
    _STORE,
    "StoreSnapshot.available",
    "1 when the dead-letter store answered its last count, 0 while it cannot (down, or "
    "slower than the read's timeout).",
)
DEAD_LETTER_STORE_ERRORS = _s(
    "dead_letter_store_errors",
    "counter",
    _STORE,
    "StoreSnapshot.read_errors",
    "Counts of the dead-letter store that failed or timed out, for the metrics and the "
    "status page.",
)
_SOURCE = ("broker", "source")
BROKER_MESSAGES = _s(
    "broker_messages",
    "counter",
    (*_SOURCE, "outcome"),
    "SourceSnapshot.processed, .dead_lettered, .poison, .redelivered",
    "Messages a broker source settled and acknowledged, by outcome: processed, "
    "dead_lettered (the handler failed, the event was invalid), poison (undecodable), "
    "redelivered (delivered more than max_deliveries times).",
)
BROKER_REQUEUED = _s(
    "broker_requeued",
    "counter",
    _SOURCE,
    "SourceSnapshot.requeued",
    "Messages a broker source gave back to the broker (not settled, or not started at a stop).",
)
BROKER_RECONNECTS = _s(
    "broker_reconnects",
    "counter",
    _SOURCE,
    "SourceSnapshot.reconnects",
    "Times a broker source reconnected after its broker failed.",
)
BROKER_SOURCE_AVAILABLE = _s(
    "broker_source_available",
    "gauge",
    _SOURCE,
    "SourceSnapshot.available",
    "1 while the broker source reaches its broker, 0 during an outage.",
)
EVENT_SERIES = (
    DEAD_LETTERS,
    DEAD_LETTERS_PENDING,
    DEAD_LETTER_STORE_AVAILABLE,
    DEAD_LETTER_STORE_ERRORS,
    BROKER_MESSAGES,
    BROKER_REQUEUED,
    BROKER_RECONNECTS,
    BROKER_SOURCE_AVAILABLE,
)
ALWAYS_SHOWN = frozenset({"retries", "rejections"})
# The monitor's resource sample: (sample key, scale, series); additive across workers.
RESOURCES = tuple(
    (key, scale, _s(name, "gauge", (), f"MonitorSnapshot.resources[{key!r}]", doc))
    for key, name, scale, doc in (
        (
            "cpu_percent",
            "process_cpu_usage_ratio",
            0.01,
            "CPU used by the process at the last sample (1.0 is one core busy).",
        ),
        (
            "memory_rss_bytes",
            "process_resident_memory_bytes",
            1.0,
            "Resident memory of the process at the last sample.",
        ),
        ("threads", "process_threads", 1.0, "Threads of the process at the last sample."),
        (
            "open_files",
            "process_open_fds",
            1.0,
            "Open file descriptors of the process at the last sample.",
        ),
    )
)

SERIES: tuple[Series, ...] = (
    EXPORT_ERROR,
    RESPONSE_TIME,
    TOTAL_OPERATIONS,
    OPERATIONS,
    ERRORS,
    ERRORS_BY_SEVERITY,
    BREAKER_STATE,
    BREAKER_TRANSITIONS,
    BREAKER_WOULD_REJECT,
    BREAKER_OPEN_SECONDS,
    VALIDATIONS,
    VALIDATION_FAILURES,
    OPERATION_DURATION,
    COMPONENT_STATUS,
    CONCURRENCY_LIMIT,
    CONCURRENCY_IN_FLIGHT,
    CONCURRENCY_SHED,
    *HTTP_SERIES,
    *(series for _, series in HANDLER_COUNTERS),
    CONFIG_RELOADS,
    CONFIG_RELOAD_ERRORS,
    *(series for _, _, series in RESOURCES),
    *EVENT_SERIES,
)
FAMILIES = tuple((series.name, series.type) for series in SERIES)
# Gauges whose values from several processes add up (the others merge by maximum).
ADDITIVE_GAUGES = frozenset(
    {
        TOTAL_OPERATIONS.name,
        "coordination_http_requests_in_flight",
        CONCURRENCY_IN_FLIGHT.name,
        CONCURRENCY_LIMIT.name,
    }
    | {series.name for _, _, series in RESOURCES}
)
# One series per breaker whose value is the state, so "> 0" alerts on any trouble.
