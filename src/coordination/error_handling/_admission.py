"""The admission step: what a call passes once, before its first attempt.

The rate limit, then the bulkhead. It is built once per plan from what the operation has
(``admission_for``), so the pipeline calls one ``admit()`` (or ``aadmit()``) and knows
nothing of the parts. A breaker that can take the rate limit's check into its own acquire
(the Redis breaker, with a limiter on the same server: one round trip answers both)
offers ``limit_check(limiter, key)``; its check ``acquires_breaker``, and a call it admits
already holds its first breaker permit. The combined check is used only without a
bulkhead, which must not come between the breaker's permit and the call.

With ``rate_limit_wait`` the check is a ``WaitingLimit``: a call the limit would allow
within that many seconds reserves its permit at once and waits for it (the limiter's
``acquire_quota(key, max_wait=...)``: each reservation pushes the limit's arrival times on,
so waiting calls are served in the order they asked, with no queue and no timer), then
goes on; one it would not is refused with ``RateLimitExceeded`` without waiting at all.
The wait uses the handler's ``sleep`` / ``async_sleep`` (never a blocked event loop),
ends early when the caller's ``Cancellation`` is cancelled (the call then ends with
``OperationCancelled``; its reserved permit stays spent), and never outlasts the scope's
deadline. A waiting limit is never combined with a breaker's acquire: the call would hold
a breaker permit (a half-open trial slot) while it waits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from .._errors import BulkheadFull, OperationCancelled, RateLimitExceeded
from ._backends import CircuitBreakerBackend, LimitCheck, QuotaLimiter, RateLimiterBackend
from ._cancellation import Cancellation, current_cancellation

if TYPE_CHECKING:
    from ._adaptive import Entry, LimiterSlot
    from ._bulkhead import Bulkhead
    from ._plan import OperationState, RetryState
    from ._runtime import Runtime

__all__ = ["Admission", "KeyedLimit", "WaitingLimit", "admission_for"]


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


class WaitingLimit:
    """A ``LimitCheck`` that waits up to ``max_wait`` seconds for its permit (see above).

    ``check()`` answers ``0.0`` once the call holds its permit (after waiting for it), else
    the seconds until it would be allowed (nothing was spent). A limiter without
    ``acquire_quota`` is polled instead: ``try_acquire``, then a sleep of the wait it
    announces, while the wait fits in what is left (no order among waiters then).
    """

    __slots__ = ("key", "limiter", "limiter_blocks", "max_wait", "op", "reserves", "runtime")

    acquires_breaker = False
    blocking = True  # it may sleep: async pipelines always await acheck (asyncio's sleep)

    def __init__(
        self,
        limiter: RateLimiterBackend,
        key: str,
        max_wait: float,
        op: OperationState,
        runtime: Runtime,
    ) -> None:
        self.limiter = limiter
        self.key = key
        self.max_wait = max_wait
        self.op = op
        self.runtime = runtime
        self.limiter_blocks = limiter.blocking
        self.reserves = isinstance(limiter, QuotaLimiter)

    def _budget(self, cancellation: Cancellation | None) -> float:
        left = None if cancellation is None else cancellation.remaining()
        return self.max_wait if left is None else min(self.max_wait, left)

    def _stopped(self, cancellation: Cancellation) -> OperationCancelled:
        next(self.op.failures)  # as Plan.stopped: the caller's decision, not logged or kept
        return OperationCancelled(self.op.name, cancellation.reason or "cancelled")

    def check(self) -> float:
        cancellation = current_cancellation()
        budget = self._budget(cancellation)
        runtime = self.runtime
        if self.reserves:
            quota = self.limiter.acquire_quota(self.key, 1, budget)  # type: ignore[attr-defined]
            if not quota.allowed:
                return float(quota.retry_after)
            if quota.delay > 0:
                self._sleep(quota.delay, cancellation)
            return 0.0
        started = runtime.clock()
        while (wait := self.limiter.try_acquire(self.key)) > 0:
            if runtime.clock() - started + wait > budget:
                return wait
            self._sleep(wait, cancellation)
        return 0.0

    def _sleep(self, seconds: float, cancellation: Cancellation | None) -> None:
        if cancellation is None:
            self.runtime.sleep(seconds)
            return
        cancellation.sleep(seconds, self.runtime.sleep)
        if cancellation.cancelled:
            raise self._stopped(cancellation)

    async def acheck(self) -> float:
        cancellation = current_cancellation()
        budget = self._budget(cancellation)
        runtime = self.runtime
        limiter: Any = self.limiter
        blocking = self.limiter_blocks
        if self.reserves:
            if blocking:
                quota = await limiter.aacquire_quota(self.key, 1, budget)
            else:
                quota = limiter.acquire_quota(self.key, 1, budget)
            if not quota.allowed:
                return float(quota.retry_after)
            if quota.delay > 0:
                await self._asleep(quota.delay, cancellation)
            return 0.0
        started = runtime.clock()
        while True:
            wait = (
                await limiter.atry_acquire(self.key) if blocking else limiter.try_acquire(self.key)
            )
            if wait <= 0:
                return 0.0
            if runtime.clock() - started + wait > budget:
                return float(wait)
            await self._asleep(wait, cancellation)

    async def _asleep(self, seconds: float, cancellation: Cancellation | None) -> None:
        await self.runtime.async_sleep(seconds)  # asyncio's cancellation ends it at once
        if cancellation is not None and cancellation.cancelled:
            raise self._stopped(cancellation)


class Admission:
    """The rate limit (``limit``), then the bulkhead: ``admit()`` or one of
    ``RateLimitExceeded``, ``BulkheadFull``, ``CircuitOpenError`` (counted here).

    An adaptive limit (``LimiterSlot``) answers the call's ``Entry``: the runner gives it
    back to ``leave`` with how the call ended (the limit's sample); a bulkhead answers None.
    """

    __slots__ = ("acquires_breaker", "bulkhead", "limit", "op")

    def __init__(
        self,
        op: OperationState,
        limit: LimitCheck | None,
        bulkhead: Bulkhead | LimiterSlot | None,
    ) -> None:
        self.op = op
        self.limit = limit
        self.bulkhead = bulkhead
        self.acquires_breaker = limit is not None and limit.acquires_breaker

    def admit(self) -> Entry | None:
        if self.limit is not None:
            self._allowed(self.limit.check())
        if self.bulkhead is None:
            return None
        try:
            return self.bulkhead.enter()
        except BulkheadFull:
            next(self.op.bulkhead_rejections)
            raise

    async def aadmit(self) -> Entry | None:
        limit = self.limit
        if limit is not None:
            self._allowed(await limit.acheck() if limit.blocking else limit.check())
        bulkhead = self.bulkhead
        if bulkhead is None:
            return None
        try:
            return await bulkhead.aenter()
        except BulkheadFull:
            next(self.op.bulkhead_rejections)
            raise

    def leave(self, entry: Entry | None, state: RetryState, raised: BaseException | None) -> None:
        """The admitted call is over: its bulkhead slot back (when the call still holds
        it), and, for an adaptive limit, its sample: ``raised`` or the error it ended
        with (``state.error``, also under a fallback), None for a success."""
        bulkhead = self.bulkhead
        if entry is None:
            if state.holds_slot and bulkhead is not None:
                bulkhead.leave()
            return
        error = raised if raised is not None else state.error
        cast("LimiterSlot", bulkhead).finish(entry, error, release=state.holds_slot)

    def _allowed(self, wait: float) -> None:
        if wait > 0:
            next(self.op.rate_limited)
            raise RateLimitExceeded(self.op.name, wait)


def admission_for(
    op: OperationState, wait: float = 0.0, runtime: Runtime | None = None
) -> Admission | None:
    """The admission of ``op``'s calls, or None when there is nothing to pass; ``wait``:
    the plan's ``rate_limit_wait`` (a ``WaitingLimit``, sleeping with ``runtime``'s)."""
    limiter, bulkhead = op.limiter, op.bulkhead
    if limiter is None and bulkhead is None:
        return None
    limit: LimitCheck | None = None
    if limiter is not None:
        if wait > 0 and runtime is not None:
            limit = WaitingLimit(limiter, op.name, wait, op, runtime)
        else:
            limit = _combined(op.breaker, limiter, op.name) if bulkhead is None else None
            limit = limit or KeyedLimit(limiter, op.name)
    return Admission(op, limit, bulkhead)


def _combined(
    breaker: CircuitBreakerBackend, limiter: RateLimiterBackend, key: str
) -> LimitCheck | None:
    offer = getattr(breaker, "limit_check", None)  # optional: see _backends
    return None if offer is None else offer(limiter, key)
