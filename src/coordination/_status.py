"""The health vocabulary shared by every component's report."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["HealthStatus", "worst_status"]


class HealthStatus(StrEnum):
    """A component's health. A ``StrEnum``, so reports stay JSON-serialisable as strings."""

    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    UNHEALTHY = "UNHEALTHY"
    UNKNOWN = "UNKNOWN"
    ERROR = "ERROR"


_RANK = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.UNKNOWN: 0,
    HealthStatus.DEGRADED: 1,
    HealthStatus.UNHEALTHY: 2,
    HealthStatus.ERROR: 2,
}


def worst_status(*statuses: HealthStatus) -> HealthStatus:
    """The most severe of ``statuses`` (HEALTHY when none are given)."""
    worst = HealthStatus.HEALTHY
    for status in statuses:
        if _RANK[status] > _RANK[worst]:
            worst = status
    return worst
