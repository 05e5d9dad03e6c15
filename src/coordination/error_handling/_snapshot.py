"""The error handler's frozen snapshots: what every reader of the handler is built on.

``CoordinationErrorHandler.snapshot()`` returns a ``HandlerSnapshot``; the
``get_error_report()``, ``get_health_status()`` and ``operation_stats()`` dicts are built
from it (``_report``), and so are the Prometheus series and the status page. A snapshot is
taken without a lock on the hot path: each count is one read of an ``itertools.count``,
so it is exact for that moment, and nothing in it changes afterwards.

>>> from coordination.error_handling import CoordinationErrorHandler
>>> handler = CoordinationErrorHandler({})
>>> handler.execute_with_error_handling(lambda: 1, operation_name="ping")
1
>>> handler.snapshot().operations["ping"].successes
1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._counting import count_value
from .._status import HealthStatus
from ._backends import BreakerSnapshot, BreakerTransition, CircuitState
from ._reload_log import ReloadSnapshot
from ._severity import ErrorSeverity

if TYPE_CHECKING:
    from .._concurrency_snapshot import ConcurrencySnapshot
    from ._plan import OperationState
    from ._report import ErrorRecord

__all__ = [
    "COUNTERS",
    "MAX_TRANSITIONS",
    "BreakerHealth",
    "HandlerSnapshot",
    "OperationErrorSnapshot",
    "breaker_from_dict",
    "handler_snapshot",
    "operation_counts",
    "operation_snapshot",
]

# Breaker state changes a handler keeps for readers (all its breakers together): enough
# for 15 minutes of a few flapping breakers, bounded whatever they do.
MAX_TRANSITIONS = 200

# The per-operation counters, in the order the report lists them.
COUNTERS = (
    "calls",
    "successes",
    "failures",
    "retries",
    "rejections",
    "timeouts",
    "bulkhead_rejections",
    "rate_limited",
    "fallbacks",
    "hook_errors",
    "retry_budget_exhausted",
    "hedged_attempts",
    "hedge_wins",
)


@dataclass(frozen=True, slots=True)
class OperationErrorSnapshot:
    """One protected operation's counts and its breaker, at one moment.

    ``calls = successes + failures`` (a fallback's answer counts as a failure and a
    fallback); ``rejections`` are the open breaker's, ``rate_limited`` and
    ``bulkhead_rejections`` the admission's; ``hook_errors`` the ``on_retry`` hooks and
    ``wait`` callables that raised or answered a bad value; ``retry_budget_exhausted``
    the failures raised without their retry because the ``retry_budget`` was spent;
    ``hedged_attempts`` the attempts ``hedge_after`` started beside a first one,
    ``hedge_wins`` the calls one of them answered; ``severity`` is the configured name.
    ``breaker`` is ``None`` only when read from another object's report that named none.
    """

    name: str
    calls: int
    successes: int
    failures: int
    retries: int
    rejections: int
    timeouts: int
    bulkhead_rejections: int
    rate_limited: int
    fallbacks: int
    hook_errors: int
    retry_budget_exhausted: int
    hedged_attempts: int
    hedge_wins: int
    severity: str
    breaker: BreakerSnapshot | None

    def counts(self) -> dict[str, Any]:
        """The counters and the severity (``stats()`` without the breaker's state)."""
        counts: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        counts["severity"] = self.severity
        return counts

    def stats(self) -> dict[str, Any]:
        """``counts()`` and ``circuit_state``: ``operation_stats()[name]``, also
        ``get_error_report()["operations"][name]``."""
        state = CircuitState.CLOSED if self.breaker is None else self.breaker.state
        return {**self.counts(), "circuit_state": state.value}


@dataclass(frozen=True, slots=True)
class BreakerHealth:
    """The handler's health rule applied to its breakers (see ``breaker_health``)."""

    status: HealthStatus
    reason: str
    open_breakers: tuple[str, ...]
    half_open_breakers: tuple[str, ...]


def _no_limits() -> Mapping[str, ConcurrencySnapshot]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class HandlerSnapshot:
    """Every operation of a handler, and the errors it counted and kept, at one moment.

    ``breakers`` holds each operation's breaker by operation name. ``errors_by_type`` and
    ``errors_by_severity`` count failed attempts (a retried error counts each time);
    ``recent_errors`` are the last failed calls, oldest first, messages redacted.
    ``total_operations`` is the calls of every operation. ``concurrency`` holds each
    adaptive concurrency limit by its group (``concurrency_group``, or the operation's
    name when it has its own limit). ``reloads``: the live reloads of its set (applied,
    refused, the last of each; ``None`` from a report). ``transitions``: the last breaker
    state changes (at most ``MAX_TRANSITIONS``, oldest first; each ``at`` on the
    handler's clock), and ``taken_at`` that clock when the snapshot was taken, so a reader
    on another clock can tell how long ago each happened (``None`` from a report).
    """

    operations: Mapping[str, OperationErrorSnapshot]
    breakers: Mapping[str, BreakerSnapshot]
    errors_by_type: Mapping[str, int]
    errors_by_severity: Mapping[str, int]
    recent_errors: tuple[ErrorRecord, ...]
    total_operations: int
    concurrency: Mapping[str, ConcurrencySnapshot] = field(default_factory=_no_limits)
    reloads: ReloadSnapshot | None = None  # the set's live reloads (None: not ours)
    transitions: tuple[BreakerTransition, ...] = ()
    taken_at: float | None = None

    def total(self, counter: str) -> int:
        """One counter (``"retries"``, ``"rejections"``…) summed over the operations."""
        if counter not in COUNTERS:
            raise ValueError(f"no counter named {counter!r}; the counters are {COUNTERS}")
        return sum(getattr(op, counter) for op in self.operations.values())

    def health(self) -> BreakerHealth:
        """UNHEALTHY when a CRITICAL operation's breaker is open or every breaker is open;
        DEGRADED when any is open or half-open; else HEALTHY."""
        return breaker_health(self.operations.values())

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> HandlerSnapshot:
        """The snapshot an error report stands for (for a component that offers only
        ``get_error_report()``).

        The inverse of ``get_error_report()`` as far as a report tells: a counter it does
        not give is 0, a breaker field it does not give is its default, and the recent
        errors are left out (no reader of a snapshot needs them).
        """
        breakers = {
            str(name): breaker_from_dict(str(name), info)
            for name, info in (report.get("circuit_breakers") or {}).items()
        }
        operations = {}
        for name, counts in (report.get("operations") or {}).items():
            name = str(name)
            values = {key: _count(counts.get(key, 0)) for key in COUNTERS[1:]}
            calls = _count(counts.get("calls", values["successes"] + values["failures"]))
            severity = str(counts.get("severity", ErrorSeverity.MEDIUM.value))
            operations[name] = OperationErrorSnapshot(
                name, calls, **values, severity=severity, breaker=breakers.get(name)
            )
        total = report.get("total_operations")
        return cls(
            operations=MappingProxyType(operations),
            breakers=MappingProxyType(breakers),
            errors_by_type=_counts(report.get("errors_by_type")),
            errors_by_severity=_counts(report.get("errors_by_severity")),
            recent_errors=(),
            total_operations=(
                sum(op.calls for op in operations.values()) if total is None else _count(total)
            ),
        )


def _count(value: object) -> int:
    """A report's count; anything else is a component bug worth reporting."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number in the report, got {value!r}")
    return int(value)


def _counts(mapping: Mapping[Any, Any] | None) -> Mapping[str, int]:
    return MappingProxyType(
        {str(getattr(k, "value", k)): _count(v) for k, v in (mapping or {}).items()}
    )


def breaker_from_dict(name: str, info: object) -> BreakerSnapshot:
    """A breaker snapshot from ``BreakerSnapshot.as_dict()``, or from a bare state."""
    data: Mapping[str, Any] = info if isinstance(info, Mapping) else {"state": info}
    state = data.get("state")
    state_name = str(getattr(state, "name", state)).upper()
    if state_name not in CircuitState.__members__:
        raise ValueError(f"breaker {name!r}: unknown circuit state {state!r}")
    return BreakerSnapshot(
        name=name,
        state=CircuitState[state_name],
        consecutive_failures=int(data.get("consecutive_failures", 0)),
        failure_rate=data.get("failure_rate"),
        slow_call_rate=data.get("slow_call_rate"),
        window_calls=int(data.get("window_calls", 0)),
        retry_after=float(data.get("retry_after", 0.0)),
        forced_open=bool(data.get("forced_open", False)),
        transitions={str(k): _count(v) for k, v in (data.get("transitions") or {}).items()},
        backend=str(data.get("backend", "reported")),
        mode=str(data.get("mode", "normal")),
        would_reject=_count(data.get("would_reject", 0)),
        open_seconds=_seconds_or_none(data.get("open_seconds")),
        reopens=_count(data.get("reopens", 0)),
    )


def _seconds_or_none(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number of seconds in the report, got {value!r}")
    return float(value)


def breaker_health(operations: Iterable[OperationErrorSnapshot]) -> BreakerHealth:
    ops = list(operations)
    # a breaker that rejects nothing (metrics_only, disabled) says nothing of health
    with_breaker = [
        (op, op.breaker) for op in ops if op.breaker is not None and op.breaker.mode == "normal"
    ]
    open_names = tuple(op.name for op, b in with_breaker if b.state is CircuitState.OPEN)
    half_open = tuple(op.name for op, b in with_breaker if b.state is CircuitState.HALF_OPEN)
    critical_open = [
        op.name
        for op, b in with_breaker
        if b.state is CircuitState.OPEN and op.severity == ErrorSeverity.CRITICAL.value
    ]
    if critical_open:
        return BreakerHealth(
            HealthStatus.UNHEALTHY,
            f"critical operation breaker open: {', '.join(critical_open)}",
            open_names,
            half_open,
        )
    if open_names and len(open_names) == len(ops):
        return BreakerHealth(
            HealthStatus.UNHEALTHY, "every operation's breaker is open", open_names, half_open
        )
    if open_names or half_open:
        return BreakerHealth(
            HealthStatus.DEGRADED,
            "some circuit breakers are open or half-open",
            open_names,
            half_open,
        )
    return BreakerHealth(HealthStatus.HEALTHY, "all circuit breakers closed", open_names, half_open)


# One int per name of COUNTERS.
Counts = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int]


def operation_counts(op: OperationState) -> Counts:
    """``op``'s counters as ints, in ``COUNTERS`` order (each one atomic read)."""
    successes = count_value(op.successes)
    failures = count_value(op.failures)
    return (
        successes + failures,
        successes,
        failures,
        count_value(op.retries),
        count_value(op.rejections),
        count_value(op.timeouts),
        count_value(op.bulkhead_rejections),
        count_value(op.rate_limited),
        count_value(op.fallbacks),
        count_value(op.hook_errors),
        count_value(op.retry_budget_exhausted),
        count_value(op.hedged_attempts),
        count_value(op.hedge_wins),
    )


def operation_snapshot(op: OperationState, breaker: BreakerSnapshot) -> OperationErrorSnapshot:
    """``op`` frozen, with the breaker snapshot taken for it."""
    return OperationErrorSnapshot(op.name, *operation_counts(op), op.severity, breaker)


def handler_snapshot(
    operations: list[OperationErrorSnapshot],
    errors_by_type: dict[str, int],
    errors_by_severity: dict[str, int],
    recent_errors: list[ErrorRecord],
    concurrency: Mapping[str, ConcurrencySnapshot] | None = None,
) -> HandlerSnapshot:
    """The handler's snapshot from its operations', its error log's and its adaptive
    limits'."""
    return HandlerSnapshot(
        operations=MappingProxyType({op.name: op for op in operations}),
        breakers=MappingProxyType(
            {op.name: op.breaker for op in operations if op.breaker is not None}
        ),
        errors_by_type=MappingProxyType(errors_by_type),
        errors_by_severity=MappingProxyType(errors_by_severity),
        recent_errors=tuple(recent_errors),
        total_operations=sum(op.calls for op in operations),
        concurrency=MappingProxyType({}) if concurrency is None else concurrency,
    )
