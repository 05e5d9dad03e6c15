"""``ThresholdWatch``: which limits apply to which operation, and who hears of a change.

It remembers only troubled operations (not HEALTHY) and fires each alert hook once per
change of an operation's status, outside its lock, so a slow hook delays no recording.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from .. import _time
from .._logging import log_extra
from .._status import HealthStatus
from ._operation import OperationSnapshot
from ._thresholds import (
    PerformanceAlert,
    PerformanceAlertHook,
    PerformanceThresholds,
    ThresholdBreach,
    thresholds_from_mapping,
)

__all__ = ["ThresholdWatch"]

_RECENT_ALERTS = 50


class ThresholdWatch:
    """Thresholds per operation over a default, statuses, alert hooks and recent alerts."""

    def __init__(
        self,
        default: PerformanceThresholds,
        *,
        logger: logging.Logger,
        hooks: Iterable[PerformanceAlertHook] = (),
    ) -> None:
        self._lock = threading.Lock()
        self._default = default
        self._limits: dict[str, PerformanceThresholds] = {}
        self._hooks: list[PerformanceAlertHook] = []
        for hook in hooks:
            self.add_hook(hook)
        self._logger = logger
        self._statuses: dict[str, HealthStatus] = {}
        self._breaches: dict[str, tuple[ThresholdBreach, ...]] = {}
        self._alerts: deque[PerformanceAlert] = deque(maxlen=_RECENT_ALERTS)

    def set(self, name: str | None, thresholds: PerformanceThresholds | Mapping[str, Any]) -> None:
        """Limits for ``name`` over the default (``None``: replace the default)."""
        if isinstance(thresholds, Mapping):
            thresholds = thresholds_from_mapping(thresholds, f"thresholds for {name!r}")
        elif not isinstance(thresholds, PerformanceThresholds):
            raise TypeError(
                f"thresholds must be PerformanceThresholds or a mapping, not {thresholds!r}"
            )
        with self._lock:
            if name is None:
                self._default = thresholds
                self._limits = {op: t.over(thresholds) for op, t in self._limits.items()}
            else:
                self._limits[name] = thresholds.over(self._default)

    def limits_for(self, name: str) -> PerformanceThresholds:
        return self._limits.get(name, self._default)

    def add_hook(self, hook: PerformanceAlertHook) -> None:
        if not callable(hook):
            raise TypeError(f"an alert hook must be callable, not {hook!r}")
        self._hooks.append(hook)

    def needs_judging(self, name: str) -> bool:
        """Without limits an operation is HEALTHY; it is judged only to note a recovery."""
        return not self.limits_for(name).is_empty or name in self._statuses

    def judge(self, stats: OperationSnapshot) -> HealthStatus:
        """The operation's status now; alerts the hooks if it changed."""
        status, breaches = self.limits_for(stats.name).evaluate(stats)
        with self._lock:
            previous = self._statuses.get(stats.name, HealthStatus.HEALTHY)
            if status is HealthStatus.HEALTHY:
                self._statuses.pop(stats.name, None)
                self._breaches.pop(stats.name, None)
            else:
                self._statuses[stats.name] = status
                self._breaches[stats.name] = breaches
            if previous == status:
                return status
            alert = PerformanceAlert(stats.name, status, previous, breaches, _time.utc_timestamp())
            self._alerts.append(alert)
            hooks = list(self._hooks)
        self._logger.warning(
            "operation %r is now %s (was %s)%s",
            stats.name,
            status.value,
            previous.value,
            "".join(f"; {b.metric} {b.value:.4g} > {b.threshold:g}" for b in breaches),
            extra=log_extra(
                stats.name,
                status=status,
                previous_status=previous,
                breaches=[b.metric for b in breaches] or None,
            ),
        )
        for hook in hooks:
            try:
                hook(alert)
            except Exception:  # a broken hook must not break recording
                self._logger.exception(
                    "alert hook %r failed", hook, extra=log_extra(stats.name, hook="alert")
                )
        return status

    def breaches(self, name: str) -> tuple[ThresholdBreach, ...]:
        return self._breaches.get(name, ())

    def recent_alerts(self) -> list[dict[str, Any]]:
        return [alert.to_dict() for alert in list(self._alerts)]

    def describe(self) -> dict[str, Any]:
        """The limits in force, for the report."""
        return {
            "default": _limits(self._default),
            "operations": {op: _limits(t) for op, t in self._limits.items()},
        }


def _limits(thresholds: PerformanceThresholds) -> dict[str, Any]:
    return {
        "p95_ms": thresholds.p95_ms,
        "p99_ms": thresholds.p99_ms,
        "error_rate": thresholds.error_rate,
        "min_samples": thresholds.min_samples,
    }
