"""The in-memory GCRA rate limiter (the default ``RateLimiterBackend``).

GCRA keeps one number per key, the theoretical arrival time (TAT) of the next call at the
sustained rate. A call is allowed while it would not push the TAT more than one period
ahead of now, which allows a burst of ``rate.count`` calls and then one every
``rate.interval`` seconds, with no timers and no per-call history.
"""

from __future__ import annotations

import itertools
import threading

from .._rate import Rate
from .._time import Clock, monotonic

__all__ = ["InMemoryRateLimiter", "memory_rate_limiter_factory"]

# Float sums of intervals drift by ~1e-13; a call that exact arithmetic allows is allowed.
_EPSILON = 1e-9


class InMemoryRateLimiter:
    """GCRA over ``rate``, per key, in process memory, for at most ``max_keys`` keys.

    >>> limiter = InMemoryRateLimiter(Rate.parse("2/s"), clock=lambda: 0.0)
    >>> [limiter.try_acquire("api") for _ in range(3)]
    [0.0, 0.0, 0.5]
    """

    __slots__ = ("_clock", "_lock", "_tat", "blocking", "max_keys", "rate")

    def __init__(self, rate: Rate, *, clock: Clock = monotonic, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.blocking = False
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}

    def try_acquire(self, key: str, cost: int = 1) -> float:
        interval = self.rate.interval
        period = self.rate.period
        with self._lock:
            now = self._clock()
            tat = self._tat.get(key, now)
            if tat < now:
                tat = now
            new_tat = tat + interval * cost
            allowed_at = new_tat - period
            if allowed_at - now > _EPSILON:
                return allowed_at - now
            if key not in self._tat and len(self._tat) >= self.max_keys:
                self._evict(now)
            self._tat[key] = new_tat
            return 0.0

    async def atry_acquire(self, key: str, cost: int = 1) -> float:
        return self.try_acquire(key, cost)

    def _evict(self, now: float) -> None:
        """Drop keys whose limit has fully recovered; else the oldest tenth, to stay bounded.

        Dropping a tenth, not one, keeps the scan amortised: with many clients all busy (a
        flood of new addresses) the next ``max_keys // 10`` new keys are admitted without
        scanning again. A dropped key only starts afresh with a whole burst.
        """
        tats = self._tat
        idle = [key for key, tat in tats.items() if tat <= now]
        for key in idle:
            del tats[key]
        if len(tats) >= self.max_keys:
            for key in list(itertools.islice(tats, max(1, self.max_keys // 10))):
                del tats[key]

    def __repr__(self) -> str:
        return f"InMemoryRateLimiter({self.rate}, keys={len(self._tat)})"


def memory_rate_limiter_factory(rate: Rate, *, clock: Clock) -> InMemoryRateLimiter:
    """The default ``RateLimiterFactory``."""
    return InMemoryRateLimiter(rate, clock=clock)
