"""``RedisRateLimiter``: a GCRA limit per key, the same for every process sharing the Redis.

One round trip per check: the ``GCRA`` script reads the key's theoretical arrival time,
decides and writes it back atomically, and the key expires as soon as the client's burst
allowance is whole again. Same interface as ``InMemoryRateLimiter``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..._errors import ConfigError, StoreError
from ..._rate import Rate
from ...error_handling._backends import RateLimiterBackend
from ._connection import OutagePolicy, owned_key
from ._scripts import GCRA

if TYPE_CHECKING:
    from ._backend import RedisBackend

__all__ = ["RedisRateLimiter"]


class RedisRateLimiter:
    """A ``RateLimiterBackend`` keeping each key's GCRA state in Redis.

    Made by ``RedisBackend.rate_limiter`` (a ``RateLimiterFactory``). ``try_acquire(key)``
    returns ``0.0`` when the call is allowed (and counted), else the seconds to wait.
    """

    blocking = True

    def __init__(
        self,
        backend: RedisBackend,
        rate: Rate,
        *,
        local: Callable[[], RateLimiterBackend],
    ) -> None:
        self.rate = rate
        self.backend = backend
        self.guard = backend.rate_limit_guard
        # The rate is part of the key, so two limits on one client name never share a cell.
        self._kind = f"rate:{rate}"
        self._interval_us = max(1, round(rate.interval * 1_000_000))
        self._period_us = max(1, round(rate.period * 1_000_000))
        self._make_local = local
        self._local: RateLimiterBackend | None = None

    def try_acquire(self, key: str, cost: int = 1) -> float:
        args = self.script_args(key, cost)
        if self.guard.usable():
            try:
                reply = GCRA(self.backend.execute, *args)
            except self.backend.errors as exc:
                self.guard.failed(exc)
            else:
                return self.answer(reply)
        return self._outage(key, cost)

    async def atry_acquire(self, key: str, cost: int = 1) -> float:
        args = self.script_args(key, cost)
        if self.guard.usable():
            try:
                reply = await GCRA.run_async(self.backend.async_client(), *args)
            except self.backend.errors as exc:
                self.guard.failed(exc)
            else:
                return self.answer(reply)
        return self._outage(key, cost)

    def script_args(self, key: str, cost: int) -> tuple[str, int | str, int, int, int]:
        """The ``GCRA`` script's KEYS and ARGV for ``key`` (the breaker's combined check
        passes them on to ``LIMITED_ACQUIRE``)."""
        _check_cost(cost)
        now = self.backend.now_us()
        return (
            owned_key(self.backend.prefix, key, self._kind),
            now,
            self._interval_us,
            self._period_us,
            cost,
        )

    def answer(self, reply: list[int] | tuple[int, int]) -> float:
        """Seconds to wait (0.0: allowed) from the script's ``{allowed, wait_us}``."""
        self.guard.succeeded()
        self._local = None  # Redis is back: the next outage starts afresh
        allowed, wait_us = reply
        return 0.0 if allowed else int(wait_us) / 1_000_000

    def _outage(self, key: str, cost: int) -> float:
        policy = self.guard.policy
        if policy is OutagePolicy.RAISE:
            raise StoreError(
                f"rate limit {self.rate} for {key!r}: Redis is unavailable "
                f"({self.guard.last_error})"
            )
        if policy is OutagePolicy.ALLOW:
            return 0.0
        return self.local.try_acquire(key, cost)

    @property
    def local(self) -> RateLimiterBackend:
        """The in-process limiter used while Redis is unavailable (made on first need)."""
        if self._local is None:
            self._local = self._make_local()
        return self._local


def _check_cost(cost: int) -> None:
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
        raise ConfigError(f"cost: expected a whole number of at least 1, got {cost!r}")
