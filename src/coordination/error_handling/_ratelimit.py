"""The in-memory GCRA rate limiter (the default ``RateLimiterBackend``).

GCRA keeps one number per key and window, the theoretical arrival time (TAT) of the next
call at the window's sustained rate. A call is allowed while it would not push any
window's TAT more than one period ahead of now, which allows a burst of ``rate.count``
calls and then one every ``rate.interval`` seconds, with no timers and no per-call
history. With several windows (``"100/s;5000/h"``) a call is allowed only when every
window allows it, and then counts in all of them.

A permit may also be *reserved* ahead (``acquire_quota(key, max_wait=...)``): when the
call would be allowed within ``max_wait`` seconds it is counted now, at the time it will
run, and the caller is told how long to wait. Each reservation pushes the TATs on, so
waiters are served in the order they asked (FIFO) without a queue or a timer.
"""

from __future__ import annotations

import itertools
import math
import threading
from typing import Any

from .._rate import Quota, Rate, RateLimit, WindowQuota
from .._time import Clock, monotonic

__all__ = ["InMemoryRateLimiter", "memory_rate_limiter_factory"]

# Float sums of intervals drift by ~1e-13; a call that exact arithmetic allows is allowed.
_EPSILON = 1e-9
# The same for a count of calls left (a quotient of such sums).
_CALL_EPSILON = 1e-6


class InMemoryRateLimiter:
    """GCRA over every window of ``rate``, per key, in process memory, for at most
    ``max_keys`` keys.

    >>> limiter = InMemoryRateLimiter(Rate.parse("2/s"), clock=lambda: 0.0)
    >>> [limiter.try_acquire("api") for _ in range(3)]
    [0.0, 0.0, 0.5]
    >>> limiter = InMemoryRateLimiter(RateLimit.parse("2/s;3/m"), clock=lambda: 10.0)
    >>> limiter.acquire_quota("api").windows[1].remaining
    2
    """

    __slots__ = (
        "_clock",
        "_interval",
        "_lock",
        "_period",
        "_single",
        "_tat",
        "_windows",
        "blocking",
        "max_keys",
        "rate",
    )

    def __init__(
        self, rate: Rate | RateLimit, *, clock: Clock = monotonic, max_keys: int = 10_000
    ) -> None:
        self.rate = RateLimit.of(rate)
        self.blocking = False
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._windows = tuple((window.interval, window.period) for window in self.rate.windows)
        # One window (the common case) keeps a bare float per key and a path of its own;
        # several keep a tuple of TATs per key, in the limit's order.
        self._single = len(self._windows) == 1
        self._interval, self._period = self._windows[0]
        self._tat: dict[str, Any] = {}

    def try_acquire(self, key: str, cost: int = 1) -> float:
        if self._single:
            interval = self._interval
            with self._lock:
                now = self._clock()
                tat = self._tat.get(key, now)
                if tat < now:
                    tat = now
                new_tat = tat + interval * cost
                ahead = new_tat - self._period - now
                if ahead > _EPSILON:
                    return float(ahead)
                if key not in self._tat and len(self._tat) >= self.max_keys:
                    self._evict(now)
                self._tat[key] = new_tat
                return 0.0
        with self._lock:
            now = self._clock()
            tats = self._tat.get(key)
            wait = 0.0
            for index, (interval, period) in enumerate(self._windows):
                tat = now if tats is None or tats[index] < now else tats[index]
                ahead = tat + interval * cost - period - now
                if ahead > wait:
                    wait = ahead
            if wait > _EPSILON:
                return wait
            self._spend(key, tats, now, now, cost)
            return 0.0

    async def atry_acquire(self, key: str, cost: int = 1) -> float:
        return self.try_acquire(key, cost)

    def acquire_quota(self, key: str, cost: int = 1, max_wait: float = 0.0) -> Quota:
        """``try_acquire`` with what is left of each window; a call allowed within
        ``max_wait`` seconds is counted now and told its ``delay`` (see ``Quota``).
        ``cost=0`` only looks: nothing is counted."""
        with self._lock:
            now = self._clock()
            tats = self._tats(key)
            wait = 0.0
            for index, (interval, period) in enumerate(self._windows):
                tat = now if tats is None or tats[index] < now else tats[index]
                ahead = tat + interval * cost - period - now
                if ahead > wait:
                    wait = ahead
            if wait <= _EPSILON:
                wait = 0.0
            elif wait > max_wait + _EPSILON or not math.isfinite(wait):
                return Quota(wait, 0.0, self._left(tats, now))
            if cost:
                tats = self._spend(key, tats, now, now + wait, cost)
            return Quota(0.0, wait, self._left(tats, now))

    async def aacquire_quota(self, key: str, cost: int = 1, max_wait: float = 0.0) -> Quota:
        return self.acquire_quota(key, cost, max_wait)

    def _tats(self, key: str) -> tuple[float, ...] | None:
        stored = self._tat.get(key)
        if stored is None or not self._single:
            return stored
        return (stored,)

    def _spend(
        self, key: str, tats: tuple[float, ...] | None, now: float, at: float, cost: int
    ) -> tuple[float, ...]:
        """Count a call running at ``at`` in every window (under the lock)."""
        if tats is None:
            if len(self._tat) >= self.max_keys:
                self._evict(now)
            tats = tuple(at + interval * cost for interval, _ in self._windows)
        else:
            tats = tuple(
                (at if tat < at else tat) + interval * cost
                for tat, (interval, _) in zip(tats, self._windows, strict=True)
            )
        self._tat[key] = tats[0] if self._single else tats
        return tats

    def _left(self, tats: tuple[float, ...] | None, now: float) -> tuple[WindowQuota, ...]:
        left = []
        for index, window in enumerate(self.rate.windows):
            ahead = 0.0 if tats is None else max(0.0, tats[index] - now)
            remaining = math.floor((window.period - ahead) / window.interval + _CALL_EPSILON)
            left.append(WindowQuota(window, max(0, min(remaining, int(window.count))), ahead))
        return tuple(left)

    def _evict(self, now: float) -> None:
        """Drop keys whose limit has fully recovered; else the oldest tenth, to stay bounded.

        Dropping a tenth, not one, keeps the scan amortised: with many clients all busy (a
        flood of new addresses) the next ``max_keys // 10`` new keys are admitted without
        scanning again. A dropped key only starts afresh with a whole burst.
        """
        tats = self._tat
        single = self._single
        idle = [key for key, tat in tats.items() if (tat if single else max(tat)) <= now]
        for key in idle:
            del tats[key]
        if len(tats) >= self.max_keys:
            for key in list(itertools.islice(tats, max(1, self.max_keys // 10))):
                del tats[key]

    def __repr__(self) -> str:
        return f"InMemoryRateLimiter({self.rate}, keys={len(self._tat)})"


def memory_rate_limiter_factory(rate: Rate | RateLimit, *, clock: Clock) -> InMemoryRateLimiter:
    """The default ``RateLimiterFactory``."""
    return InMemoryRateLimiter(rate, clock=clock)
