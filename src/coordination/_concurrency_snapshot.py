"""``ConcurrencySnapshot``: one adaptive concurrency limit as its readers see it.

The writers are ``error_handling._adaptive`` (an operation's or a ``concurrency_group``'s
limit) and the middleware (``app_adaptive_concurrency``: the limit in front of the whole
app); the readers are in ``observability`` (the ``coordination_concurrency_*`` series, the
status page, health). It lives in the core so that every layer can name it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ConcurrencySnapshot"]


@dataclass(frozen=True, slots=True)
class ConcurrencySnapshot:
    """One adaptive limit at one moment: its ``group`` (the ``concurrency_group``, the
    operation's name when it has its own limit, or ``"app"`` for the middleware's),
    ``algorithm``, ``limit`` and its bounds, ``in_flight`` calls, the calls ``waiting``,
    and ``shed``: calls refused, by severity (``LOW`` .. ``CRITICAL``)."""

    group: str
    algorithm: str
    limit: int
    min_concurrency: int
    max_concurrency: int
    in_flight: int
    waiting: int
    shed: Mapping[str, int]

    @property
    def shed_total(self) -> int:
        return sum(self.shed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "algorithm": self.algorithm,
            "limit": self.limit,
            "min_concurrency": self.min_concurrency,
            "max_concurrency": self.max_concurrency,
            "in_flight": self.in_flight,
            "waiting": self.waiting,
            "shed": dict(self.shed),
        }
