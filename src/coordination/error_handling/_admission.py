"""The admission step: what a call passes once, before its first attempt.

The rate limit, then the bulkhead. It is built once per plan from what the operation has
(``admission_for``), so the pipeline calls one ``admit()`` (or ``aadmit()``) and knows
nothing of the parts. A breaker that can take the rate limit's check into its own acquire
(the Redis breaker, with a limiter on the same server: one round trip answers both)
offers ``limit_check(limiter, key)``; its check ``acquires_breaker``, and a call it admits
already holds its first breaker permit. The combined check is used only without a
bulkhead, which must not come between the breaker's permit and the call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import BulkheadFull, RateLimitExceeded
from ._backends import CircuitBreakerBackend, LimitCheck, RateLimiterBackend

if TYPE_CHECKING:
    from ._bulkhead import Bulkhead
    from ._plan import OperationState

__all__ = ["Admission", "KeyedLimit", "admission_for"]


class KeyedLimit:
    """A ``LimitCheck`` over any ``RateLimiterBackend``: its check for one key."""

    __slots__ = ("blocking", "key", "limiter")

    acquires_breaker = False

    def __init__(self, limiter: RateLimiterBackend, key: str) -> None:
        self.limiter = limiter
        self.key = key
        self.blocking = limiter.blocking

    def check(self) -> float:
        return self.limiter.try_acquire(self.key)

    async def acheck(self) -> float:
        return await self.limiter.atry_acquire(self.key)


class Admission:
    """The rate limit (``limit``), then the bulkhead: ``admit()`` or one of
    ``RateLimitExceeded``, ``BulkheadFull``, ``CircuitOpenError`` (counted here)."""

    __slots__ = ("acquires_breaker", "bulkhead", "limit", "op")

    def __init__(
        self, op: OperationState, limit: LimitCheck | None, bulkhead: Bulkhead | None
    ) -> None:
        self.op = op
        self.limit = limit
        self.bulkhead = bulkhead
        self.acquires_breaker = limit is not None and limit.acquires_breaker

    def admit(self) -> None:
        if self.limit is not None:
            self._allowed(self.limit.check())
        if self.bulkhead is not None:
            try:
                self.bulkhead.enter()
            except BulkheadFull:
                next(self.op.bulkhead_rejections)
                raise

    async def aadmit(self) -> None:
        limit = self.limit
        if limit is not None:
            self._allowed(await limit.acheck() if limit.blocking else limit.check())
        bulkhead = self.bulkhead
        if bulkhead is None:
            return
        try:
            await bulkhead.aenter()
        except BulkheadFull:
            next(self.op.bulkhead_rejections)
            raise

    def _allowed(self, wait: float) -> None:
        if wait > 0:
            next(self.op.rate_limited)
            raise RateLimitExceeded(self.op.name, wait)


def admission_for(op: OperationState) -> Admission | None:
    """The admission of ``op``'s calls, or None when there is nothing to pass."""
    limiter, bulkhead = op.limiter, op.bulkhead
    if limiter is None and bulkhead is None:
        return None
    limit: LimitCheck | None = None
    if limiter is not None:
        limit = _combined(op.breaker, limiter, op.name) if bulkhead is None else None
        limit = limit or KeyedLimit(limiter, op.name)
    return Admission(op, limit, bulkhead)


def _combined(
    breaker: CircuitBreakerBackend, limiter: RateLimiterBackend, key: str
) -> LimitCheck | None:
    offer = getattr(breaker, "limit_check", None)  # optional: see _backends
    return None if offer is None else offer(limiter, key)
