"""How an adaptive concurrency limit moves: the algorithms of ``concurrency_algorithm``.

Each follows Netflix's concurrency-limits: it is told every call's sample (when it
started, how long it took, how many calls were in flight, whether it was dropped: failed
as an overload, timed out or was refused) and answers the new limit. An algorithm is not
thread-safe on its own: the limiter that owns it feeds it one sample at a time.
"""

from __future__ import annotations

import math
from typing import Protocol

__all__ = ["AIMD", "LimitAlgorithm"]


class LimitAlgorithm(Protocol):
    """An adaptive limit: ``limit`` now, and ``on_sample`` to move it."""

    @property
    def limit(self) -> int: ...

    def on_sample(self, start: float, rtt: float, in_flight: int, dropped: bool) -> int:
        """One call's sample: its ``start`` (the clock), ``rtt`` (seconds), the calls
        ``in_flight`` when it started, and whether it was ``dropped``; the new limit."""
        ...


class AIMD:
    """Additive increase, multiplicative decrease: one more while the limit is in use (at
    least half of it in flight), ``backoff_ratio`` of it after a drop or a call slower
    than ``timeout``."""

    __slots__ = ("_limit", "backoff_ratio", "maximum", "minimum", "timeout")

    def __init__(
        self,
        minimum: int,
        maximum: int,
        initial: int | None = None,
        *,
        backoff_ratio: float = 0.9,
        timeout: float = math.inf,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"expected 1 <= minimum ({minimum}) <= maximum ({maximum})")
        if not 0.5 <= backoff_ratio < 1:
            raise ValueError(f"backoff_ratio must be in [0.5, 1), not {backoff_ratio}")
        self.minimum = minimum
        self.maximum = maximum
        self.backoff_ratio = backoff_ratio
        self.timeout = timeout
        start = min(maximum, max(minimum, 20)) if initial is None else initial
        self._limit = min(maximum, max(minimum, start))

    @property
    def limit(self) -> int:
        return self._limit

    def on_sample(self, start: float, rtt: float, in_flight: int, dropped: bool) -> int:
        limit = self._limit
        if dropped or rtt > self.timeout:
            limit = max(self.minimum, math.floor(limit * self.backoff_ratio))
        elif in_flight * 2 >= limit:
            limit = min(self.maximum, limit + 1)
        self._limit = limit
        return limit
