"""Latency and error-rate thresholds, and the alerts fired when an operation crosses one.

Thresholds are judged on the *recent* window, so an operation recovers once its recent
traffic is healthy again. A p95 above its threshold makes the operation DEGRADED; a p99 or
an error rate above theirs makes it UNHEALTHY. Alert hooks see each change of status once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError
from .._quote import quote
from .._status import HealthStatus, worst_status
from .._threshold_grammar import THRESHOLD_KEYS, read_operation_thresholds, threshold_problem
from ._operation import OperationSnapshot

__all__ = [
    "PerformanceAlert",
    "PerformanceAlertHook",
    "PerformanceThresholds",
    "ThresholdBreach",
    "parse_operation_thresholds",
]


@dataclass(frozen=True, slots=True)
class PerformanceThresholds:
    """Limits for one operation; ``None`` means no limit on that measure.

    >>> PerformanceThresholds(p95_ms=250, error_rate=0.05).error_rate
    0.05

    ``min_samples`` recent outcomes are needed before any limit is judged, so one slow or
    failed call in a quiet minute does not page anyone.
    """

    p95_ms: float | None = None
    p99_ms: float | None = None
    error_rate: float | None = None
    min_samples: int = 10

    def __post_init__(self) -> None:
        # The limits (and their words) are the core's, shared with the configuration.
        for name in THRESHOLD_KEYS:
            value = getattr(self, name)
            problem = threshold_problem(name, value)
            if problem is not None:
                raise _invalid(name, value, problem)

    def over(self, default: PerformanceThresholds) -> PerformanceThresholds:
        """These limits, with ``default``'s where this one sets none."""
        return PerformanceThresholds(
            p95_ms=self.p95_ms if self.p95_ms is not None else default.p95_ms,
            p99_ms=self.p99_ms if self.p99_ms is not None else default.p99_ms,
            error_rate=self.error_rate if self.error_rate is not None else default.error_rate,
            min_samples=self.min_samples,
        )

    @property
    def is_empty(self) -> bool:
        return self.p95_ms is None and self.p99_ms is None and self.error_rate is None

    def evaluate(
        self, stats: OperationSnapshot
    ) -> tuple[HealthStatus, tuple[ThresholdBreach, ...]]:
        """The operation's status under these limits, and the limits it breaks."""
        breaches: list[ThresholdBreach] = []
        if stats.recent_timed_count >= self.min_samples:
            for limit, q, status in (
                (self.p95_ms, 0.95, HealthStatus.DEGRADED),
                (self.p99_ms, 0.99, HealthStatus.UNHEALTHY),
            ):
                if limit is not None:
                    value = stats.recent_quantile(q) * 1000.0
                    if value > limit:
                        metric = f"p{round(q * 100)}_ms"
                        breaches.append(ThresholdBreach(metric, value, limit, status))
        if self.error_rate is not None and stats.recent_count >= self.min_samples:
            rate = stats.recent_error_rate
            if rate > self.error_rate:
                breaches.append(
                    ThresholdBreach("error_rate", rate, self.error_rate, HealthStatus.UNHEALTHY)
                )
        return worst_status(*(b.status for b in breaches)), tuple(breaches)


@dataclass(frozen=True, slots=True)
class ThresholdBreach:
    """One limit an operation breaks: the measure, its recent value and the limit."""

    metric: str  # "p95_ms", "p99_ms" or "error_rate"
    value: float
    threshold: float
    status: HealthStatus

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "status": self.status.value,
        }


@dataclass(frozen=True, slots=True)
class PerformanceAlert:
    """What an alert hook receives when an operation's status changes."""

    operation: str
    status: HealthStatus
    previous_status: HealthStatus
    breaches: tuple[ThresholdBreach, ...]
    timestamp: str  # UTC, ISO-8601

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "status": self.status.value,
            "previous_status": self.previous_status.value,
            "breaches": [b.to_dict() for b in self.breaches],
            "timestamp": self.timestamp,
        }


PerformanceAlertHook = Callable[[PerformanceAlert], object]


def parse_operation_thresholds(
    text: str, source: str = "keyword argument"
) -> dict[str, PerformanceThresholds]:
    """Per-operation thresholds from the configuration's compact form.

    >>> parse_operation_thresholds("checkout: p95_ms=250 p99_ms=800; search: error_rate=0.1")
    ... # doctest: +NORMALIZE_WHITESPACE
    {'checkout': PerformanceThresholds(p95_ms=250.0, p99_ms=800.0, error_rate=None, min_samples=10),
     'search': PerformanceThresholds(p95_ms=None, p99_ms=None, error_rate=0.1, min_samples=10)}
    """
    try:
        parsed = read_operation_thresholds(text)
    except ValueError as exc:
        raise ConfigError(
            f"invalid operation_thresholds = {quote(text)} from {source}: {exc}",
            field="operation_thresholds",
            value=text,
            source=source,
        ) from None
    # The grammar has checked every value already: these cannot fail.
    return {name: PerformanceThresholds(**values) for name, values in parsed.items()}


def thresholds_from_mapping(data: Mapping[str, Any], where: str) -> PerformanceThresholds:
    """``PerformanceThresholds`` from a mapping such as ``{"p95_ms": 250}``, naming unknown keys."""
    known = {f.name for f in dataclasses.fields(PerformanceThresholds)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _invalid(unknown[0], data[unknown[0]], f"unknown threshold in {where}")
    return PerformanceThresholds(**data)


def _invalid(name: str, value: object, problem: str) -> ConfigError:
    return ConfigError(
        f"invalid threshold {name} = {value!r}: {problem}",
        field=name,
        value=value,
        source="thresholds",
    )
