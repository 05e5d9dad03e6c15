"""``RedisRateLimiter``: a GCRA limit per key, the same for every process sharing the Redis.

One round trip per check, whatever the number of windows: the ``GCRA`` script reads the
key's theoretical arrival times (one per window, in one string), decides for all of them
and writes them back atomically, and the key expires as soon as the client's burst
allowance is whole again. ``acquire_quota`` runs ``GCRA_QUOTA``, the same decision also
answering what is left of each window. Same interface as ``InMemoryRateLimiter``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..._errors import ConfigError, StoreError
from ..._rate import Quota, Rate, RateLimit, WindowQuota
from ...error_handling._backends import RateLimiterBackend
from ._connection import OutagePolicy, owned_key
from ._scripts import GCRA, GCRA_QUOTA

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
        rate: Rate | RateLimit,
        *,
        local: Callable[[], RateLimiterBackend],
    ) -> None:
        self.rate = RateLimit.of(rate)
        self.backend = backend
        self.guard = backend.rate_limit_guard
        # The limit is part of the key, so two limits on one client name never share a
        # cell (a single window keeps the key, and the value, it always had).
        self._kind = f"rate:{self.rate}"
        self._windows = " ".join(
            f"{max(1, round(window.interval * 1_000_000))} "
            f"{max(1, round(window.period * 1_000_000))}"
            for window in self.rate.windows
        )
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

    def acquire_quota(self, key: str, cost: int = 1, max_wait: float = 0.0) -> Quota:
        """``try_acquire`` with what is left of each window (``cost=0``: only look), and
        permits reserved up to ``max_wait`` seconds ahead; see ``Quota``."""
        args = self.script_args(key, cost, max_wait, least=0)
        if self.guard.usable():
            try:
                reply = GCRA_QUOTA(self.backend.execute, *args)
            except self.backend.errors as exc:
                self.guard.failed(exc)
            else:
                return self.quota(reply)
        return self._quota_outage(key, cost, max_wait)

    async def aacquire_quota(self, key: str, cost: int = 1, max_wait: float = 0.0) -> Quota:
        args = self.script_args(key, cost, max_wait, least=0)
        if self.guard.usable():
            try:
                reply = await GCRA_QUOTA.run_async(self.backend.async_client(), *args)
            except self.backend.errors as exc:
                self.guard.failed(exc)
            else:
                return self.quota(reply)
        return self._quota_outage(key, cost, max_wait)

    def script_args(
        self, key: str, cost: int, max_wait: float = 0.0, *, least: int = 1
    ) -> tuple[str, int | str, str, int, int]:
        """The ``GCRA`` script's KEYS and ARGV for ``key``: the key, then the limit's four
        arguments (the breaker's combined check passes them on to ``LIMITED_ACQUIRE``)."""
        _check_cost(cost, least)
        return (
            owned_key(self.backend.prefix, key, self._kind),
            self.backend.now_us(),
            self._windows,
            cost,
            max(0, round(max_wait * 1_000_000)),
        )

    def answer(self, reply: list[int] | tuple[int, ...]) -> float:
        """Seconds to wait (0.0: allowed) from the script's ``{allowed, wait_us, ...}``."""
        self.guard.succeeded()
        self._local = None  # Redis is back: the next outage starts afresh
        return 0.0 if int(reply[0]) else int(reply[1]) / 1_000_000

    def quota(self, reply: list[int]) -> Quota:
        """The ``Quota`` from ``GCRA_QUOTA``'s ``{allowed, wait_us, delay_us, (remaining,
        reset_us) per window}``."""
        retry_after = self.answer(reply)
        windows = tuple(
            WindowQuota(
                window,
                max(0, min(int(reply[3 + 2 * index]), int(window.count))),
                int(reply[4 + 2 * index]) / 1_000_000,
            )
            for index, window in enumerate(self.rate.windows)
        )
        return Quota(retry_after, 0.0 if retry_after else int(reply[2]) / 1_000_000, windows)

    def _quota_outage(self, key: str, cost: int, max_wait: float) -> Quota:
        policy = self.guard.policy
        if policy is OutagePolicy.LOCAL:
            local = self.local
            acquire = getattr(local, "acquire_quota", None)
            if acquire is not None:
                return acquire(key, cost, max_wait)  # type: ignore[no-any-return]
        wait = self._outage(key, cost)  # raises under RAISE
        # ALLOW, or a local limiter without quotas: nothing is known of the windows.
        full = tuple(WindowQuota(window, int(window.count), 0.0) for window in self.rate.windows)
        return Quota(wait, 0.0, full)

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


def _check_cost(cost: int, least: int = 1) -> None:
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < least:
        raise ConfigError(f"cost: expected a whole number of at least {least}, got {cost!r}")
