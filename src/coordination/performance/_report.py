"""The performance report, built from a ``MonitorSnapshot`` (latency in ms)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .. import _time
from .._sketch import LatencySketch
from .._status import HealthStatus, worst_status
from ._operation import MonitorSnapshot, OperationSnapshot
from ._thresholds import ThresholdBreach

if TYPE_CHECKING:
    from ._watch import ThresholdWatch

__all__ = ["operation_entry", "performance_report", "response_times", "summary_entry"]

_REPORTED = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))


def response_times(stats: Sequence[OperationSnapshot], *, recent: bool) -> dict[str, float]:
    """``count``, ``mean``, ``min``, ``max``, ``p50``…``p99`` in ms over ``stats`` together.

    Every value is 0.0 while nothing was timed, so arithmetic on them (``mean / 1000``)
    works on a fresh monitor.
    """
    merged = LatencySketch()
    total = 0.0
    low, high = float("inf"), 0.0
    for s in stats:
        merged.merge(s.recent_sketch if recent else s.sketch)
        total += s.recent_total_seconds if recent else s.total_seconds
        if s.timed_count:
            low, high = min(low, s.min_seconds), max(high, s.max_seconds)
    count = merged.count
    if not count:
        return {"count": 0, "mean": 0.0, "min": 0.0, "max": 0.0} | {k: 0.0 for k, _ in _REPORTED}
    estimates = merged.quantiles([q for _, q in _REPORTED])
    times: dict[str, float] = {"count": count, "mean": total / count * 1000.0}
    if recent:  # the window's own extremes, as far as its buckets tell
        lowest, highest = (min(max(v, low), high) for v in merged.quantiles((0.0, 1.0)))
        times["min"], times["max"] = lowest * 1000.0, highest * 1000.0
    else:
        times["min"], times["max"] = low * 1000.0, high * 1000.0
    for (key, _), value in zip(_REPORTED, estimates, strict=True):
        times[key] = min(max(value, low), high) * 1000.0
    return times


def _rates(count: int, failures: int) -> dict[str, float]:
    return {
        "success_rate": (count - failures) / count if count else 1.0,
        "error_rate": failures / count if count else 0.0,
    }


def summary_entry(all_stats: Iterable[OperationSnapshot]) -> dict[str, Any]:
    """The report's top level: totals, rates, throughput and latency over all operations."""
    stats = list(all_stats)
    count = sum(s.count for s in stats)
    failures = sum(s.failures for s in stats)
    recent_count = sum(s.recent_count for s in stats)
    recent_failures = sum(s.recent_failures for s in stats)
    throughput = sum(s.recent_throughput for s in stats)
    return {
        "total_operations": count,
        "successes": count - failures,
        "failures": failures,
        **_rates(count, failures),
        "throughput_per_second": throughput,
        "response_times": response_times(stats, recent=False),
        "recent": {
            "window_seconds": stats[0].window_seconds if stats else 0.0,
            "count": recent_count,
            "failures": recent_failures,
            **_rates(recent_count, recent_failures),
            "throughput_per_second": throughput,
            "response_times": response_times(stats, recent=True),
        },
    }


def operation_entry(
    stats: OperationSnapshot, status: HealthStatus, breaches: Sequence[ThresholdBreach]
) -> dict[str, Any]:
    """One operation in the report."""
    return {
        "status": status.value,
        "count": stats.count,
        "successes": stats.successes,
        "failures": stats.failures,
        **_rates(stats.count, stats.failures),
        "throughput_per_second": stats.recent_throughput,
        "errors_by_type": dict(stats.errors_by_type),
        "response_times": response_times((stats,), recent=False),
        "recent": {
            "window_seconds": stats.window_seconds,
            "count": stats.recent_count,
            "failures": stats.recent_failures,
            **_rates(stats.recent_count, stats.recent_failures),
            "response_times": response_times((stats,), recent=True),
        },
        "breaches": [b.to_dict() for b in breaches],
    }


def performance_report(
    snapshot: MonitorSnapshot, watch: ThresholdWatch, system: dict[str, Any]
) -> dict[str, Any]:
    """``get_performance_report()``: the snapshot judged against the thresholds."""
    stats = snapshot.operations
    statuses = {name: watch.judge(s) for name, s in stats.items()}
    status = worst_status(*statuses.values()) if snapshot.enabled else HealthStatus.UNKNOWN
    return {
        "status": status.value,
        "enabled": snapshot.enabled,
        "uptime_seconds": snapshot.uptime_seconds,
        **summary_entry(stats.values()),
        "operations": {
            name: operation_entry(s, statuses[name], watch.breaches(name))
            for name, s in stats.items()
        },
        "thresholds": watch.describe(),
        "alerts": watch.recent_alerts(),
        "system": system,
        "timestamp": _time.utc_timestamp(),
    }
