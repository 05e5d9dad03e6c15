"""What the demo reads of the adaptive limit and the retry budget, and what it tells of them.

Everything is read from the error handler's snapshot, as the status page and the metrics
read it: the group's ``ConcurrencySnapshot`` (its limit, in-flight calls and calls shed
by severity) and an operation's ``retry_budget_exhausted`` count. ``SurgeTrace`` keeps
the limit's path through the second act (bounded) and turns its moves into events.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .._concurrency_snapshot import ConcurrencySnapshot
from ..error_handling import CoordinationErrorHandler
from ._surge import ClientTally

__all__ = ["LimitPoint", "SurgeTrace", "budget_held", "group_reading"]

_MAX_POINTS = 10_000  # five a second for over half an hour


def group_reading(handler: CoordinationErrorHandler, group: str) -> ConcurrencySnapshot | None:
    """The adaptive limit of ``group`` now (None before its first call)."""
    return handler.snapshot().concurrency.get(group)


def budget_held(handler: CoordinationErrorHandler, operation: str) -> int:
    """The failures of ``operation`` raised without a retry because its budget was spent."""
    op = handler.snapshot().operations.get(operation)
    return 0 if op is None else op.retry_budget_exhausted


@dataclass(frozen=True, slots=True)
class LimitPoint:
    """The limit at one tick of the second act."""

    elapsed: float
    phase: str
    limit: int
    in_flight: int
    database_ms: float


@dataclass(slots=True)
class SurgeTrace:
    """The limit's path, the first shed call of each severity, and the clients' tallies."""

    points: deque[LimitPoint] = field(default_factory=lambda: deque(maxlen=_MAX_POINTS))
    shed: dict[str, int] = field(default_factory=dict)
    first_shed: dict[str, float] = field(default_factory=dict)
    clients: dict[str, ClientTally] = field(default_factory=dict)
    _announced: int | None = None
    _news: list[str] = field(default_factory=list)

    def add(
        self,
        elapsed: float,
        phase: str,
        reading: ConcurrencySnapshot | None,
        database_ms: float,
    ) -> None:
        if reading is None:
            return
        point = LimitPoint(elapsed, phase, reading.limit, reading.in_flight, database_ms)
        self.points.append(point)
        self.shed = dict(reading.shed)
        if self._announced is None:
            self._announced = reading.limit
            self._news.append(
                f"limit of {reading.group}: starts at {reading.limit} "
                f"({reading.algorithm}, between {reading.min_concurrency} and "
                f"{reading.max_concurrency})"
            )
        elif abs(reading.limit - self._announced) >= max(2, 0.3 * self._announced):
            self._news.append(
                f"limit of {reading.group}: {self._announced} → {reading.limit} "
                f"({reading.in_flight} in flight, the database answering in "
                f"{database_ms:.0f} ms)"
            )
            self._announced = reading.limit
        for severity, count in reading.shed.items():
            if count and severity not in self.first_shed:
                self.first_shed[severity] = elapsed
                self._news.append(
                    f"first {severity} call shed at limit {reading.limit} "
                    f"({reading.in_flight} in flight): 503 with Retry-After"
                )

    def news(self) -> list[str]:
        """The events since the last call: the limit's moves and first sheds."""
        news, self._news = self._news, []
        return news

    def limits(self, phase: str | None = None) -> list[int]:
        return [p.limit for p in self.points if phase is None or p.phase == phase]
