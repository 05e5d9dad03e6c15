"""The error handler's frozen snapshots: what every reader of the handler is built on.

``CoordinationErrorHandler.snapshot()`` returns a ``HandlerSnapshot``; the spec's
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

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .._counting import count_value
from ._backends import BreakerSnapshot, CircuitState

if TYPE_CHECKING:
    from ._plan import OperationState
    from ._report import ErrorRecord

__all__ = ["HandlerSnapshot", "OperationErrorSnapshot", "operation_counts", "operation_snapshot"]

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
)


@dataclass(frozen=True, slots=True)
class OperationErrorSnapshot:
    """One protected operation's counts and its breaker, at one moment.

    ``calls = successes + failures`` (a fallback's answer counts as a failure and a
    fallback); ``rejections`` are the open breaker's, ``rate_limited`` and
    ``bulkhead_rejections`` the admission's; ``severity`` is the configured name.
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
    severity: str
    breaker: BreakerSnapshot

    @property
    def circuit_state(self) -> CircuitState:
        return self.breaker.state

    def counts(self) -> dict[str, Any]:
        """The counters and the severity: ``get_error_report()["operations"][name]``."""
        return {
            "calls": self.calls,
            "successes": self.successes,
            "failures": self.failures,
            "retries": self.retries,
            "rejections": self.rejections,
            "timeouts": self.timeouts,
            "bulkhead_rejections": self.bulkhead_rejections,
            "rate_limited": self.rate_limited,
            "fallbacks": self.fallbacks,
            "severity": self.severity,
        }


@dataclass(frozen=True, slots=True)
class HandlerSnapshot:
    """Every operation of a handler, and the errors it counted and kept, at one moment.

    ``errors_by_type`` and ``errors_by_severity`` count failed attempts (a retried error
    counts each time); ``recent_errors`` are the last failed calls, oldest first, with
    their messages already redacted.
    """

    operations: Mapping[str, OperationErrorSnapshot]
    errors_by_type: Mapping[str, int]
    errors_by_severity: Mapping[str, int]
    recent_errors: tuple[ErrorRecord, ...]

    @property
    def total_operations(self) -> int:
        return sum(op.calls for op in self.operations.values())

    def total(self, counter: str) -> int:
        """One counter (``"retries"``, ``"rejections"``…) summed over the operations."""
        if counter not in COUNTERS:
            raise ValueError(f"no counter named {counter!r}; the counters are {COUNTERS}")
        return sum(getattr(op, counter) for op in self.operations.values())


# One int per name of COUNTERS.
Counts = tuple[int, int, int, int, int, int, int, int, int]


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
    )


def operation_snapshot(op: OperationState, breaker: BreakerSnapshot) -> OperationErrorSnapshot:
    """``op`` frozen, with the breaker snapshot taken for it."""
    return OperationErrorSnapshot(op.name, *operation_counts(op), op.severity, breaker)


def handler_snapshot(
    operations: list[OperationErrorSnapshot],
    errors_by_type: dict[str, int],
    errors_by_severity: dict[str, int],
    recent_errors: list[ErrorRecord],
) -> HandlerSnapshot:
    return HandlerSnapshot(
        operations=MappingProxyType({op.name: op for op in operations}),
        errors_by_type=MappingProxyType(errors_by_type),
        errors_by_severity=MappingProxyType(errors_by_severity),
        recent_errors=tuple(recent_errors),
    )
