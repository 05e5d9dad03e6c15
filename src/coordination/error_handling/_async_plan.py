"""The async twin of ``Plan``: the same pipeline for coroutine functions.

Everything is decided exactly as in ``Plan`` (the decisions are shared); only the waiting
differs: ``asyncio`` sleeps, the bulkhead's ``aenter``, real cancellation on timeout, and,
for a breaker or limiter that does I/O (``blocking``), the awaited ``a*`` methods.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any, cast

from .._errors import BulkheadFull, CircuitOpenError, OperationTimeout, RateLimitExceeded
from ._backends import CircuitState, RateLimiterBackend
from ._cancellation import Cancellation, _current
from ._plan import NOT_COUNTED, Plan, RetryState

__all__ = ["AsyncPlan"]

CLOSED = CircuitState.CLOSED


class AsyncPlan(Plan):
    """A ``Plan`` that can also run coroutine functions (``arun``)."""

    async def arun(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        op = self.op
        memory = self.memory_breaker
        # inside a Cancellation scope the first attempt too is bounded by its deadline
        if memory is not None and memory._state is CLOSED and _current.get() is None:
            try:
                result = await func(*args, **kwargs)
            except Exception as exc:  # the first attempt failed: on to the retry loop
                return await self._aattempts(func, args, kwargs, None, 0.0, exc)
            memory.record_success(0.0)
            state = RetryState(0, None, self.options.backoff.base_delay, None)
            if self.wants_retry(result, state):
                return await self._aattempts(func, args, kwargs, state, state.previous)
            next(op.successes)
            return result
        try:
            acquired = await self._aadmit()
        except (RateLimitExceeded, BulkheadFull) as exc:
            return await self.agive_up(exc, 0)
        except CircuitOpenError as exc:  # from the combined check only
            refused = self.rejected(exc, None)
            return await refused if inspect.isawaitable(refused) else refused
        try:
            return await self._aattempts(func, args, kwargs, acquired=acquired)
        finally:
            if op.bulkhead is not None:
                op.bulkhead.leave()

    async def _aadmit(self) -> bool:
        op = self.op
        if self.limited is not None:
            wait = await self.limited.aacquire_with_limit(
                cast(RateLimiterBackend, op.limiter), op.name
            )
            if wait > 0:
                next(op.rate_limited)
                raise RateLimitExceeded(op.name, wait)
            return True
        if op.limiter is not None and op.limiter.blocking:
            wait = await op.limiter.atry_acquire(op.name)
            if wait > 0:
                next(op.rate_limited)
                raise RateLimitExceeded(op.name, wait)
        elif op.limiter is not None:
            wait = op.limiter.try_acquire(op.name)
            if wait > 0:
                next(op.rate_limited)
                raise RateLimitExceeded(op.name, wait)
        if op.bulkhead is not None:
            try:
                await op.bulkhead.aenter()
            except BulkheadFull:
                next(op.bulkhead_rejections)
                raise
        return False

    async def agive_up(self, exc: Exception, attempts: int) -> Any:
        result = self.give_up(exc, attempts)
        if inspect.isawaitable(result):
            return await result
        return result

    async def _aattempts(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        state: RetryState | None = None,
        wait: float = 0.0,
        pending: Exception | None = None,
        acquired: bool = False,
    ) -> Any:
        """``Plan._attempts``, awaiting: the call, the sleeps and a blocking breaker."""
        handler = self.handler
        breaker = self.breaker
        blocking = breaker.blocking
        clock = handler._clock
        cancellation = _current.get()
        if state is None:
            state = RetryState(0, None, self.options.backoff.base_delay, None)
        duration = 0.0
        while True:
            if pending is None:
                if cancellation is not None:
                    left = cancellation.remaining()
                    if cancellation.cancelled or (left is not None and left < wait):
                        if acquired:
                            await breaker.arelease() if blocking else breaker.release()
                        return self.stopped(cancellation, state.last)
                if acquired:  # by the combined rate-limit check
                    acquired = False
                else:
                    try:
                        await breaker.aacquire() if blocking else breaker.acquire()
                    except CircuitOpenError as exc:
                        refused = self.rejected(exc, state.last)
                        return await refused if inspect.isawaitable(refused) else refused
                if state.attempt > 0:
                    next(self.op.retries)
                if wait > 0:
                    try:
                        await handler._async_sleep(wait)
                    except BaseException:  # cancelled while waiting: give the permit back
                        await breaker.arelease() if blocking else breaker.release()
                        raise
                    if cancellation is not None and cancellation.cancelled:
                        await breaker.arelease() if blocking else breaker.release()
                        return self.stopped(cancellation, state.last)
                begin = clock() if self.timed else 0.0
                try:
                    if cancellation is not None:
                        result = await self._await_in_scope(func(*args, **kwargs), cancellation)
                    elif self.timeout is None:
                        result = await func(*args, **kwargs)
                    else:
                        result = await self._await_with_timeout(func(*args, **kwargs), self.timeout)
                except _ScopeEnded:  # the scope's deadline, not the dependency
                    await breaker.arelease() if blocking else breaker.release()
                    return self.stopped(cast(Cancellation, cancellation), state.last)
                except Exception as exc:
                    pending = exc
                    duration = clock() - begin if self.timed else 0.0
                except BaseException:
                    await breaker.arelease() if blocking else breaker.release()
                    raise
                else:
                    duration = clock() - begin if self.timed else 0.0
                    if blocking:
                        await breaker.arecord_success(duration)
                    else:
                        breaker.record_success(duration)
                    if self.wants_retry(result, state):
                        wait = state.previous
                        continue
                    next(self.op.successes)
                    return result
            error, pending = pending, None
            if blocking:  # the breaker does I/O: await it, never block the loop
                if isinstance(error, NOT_COUNTED):
                    await breaker.arelease()
                else:
                    await breaker.arecord_failure(duration)
            self.failed_attempt(error, duration, tell_breaker=not blocking)
            wait = self.retry_wait(state, error)
            if wait < 0:
                return await self.agive_up(error, state.attempt)

    async def _await_in_scope(self, awaitable: Any, cancellation: Cancellation) -> Any:
        """The attempt, cancelled at the nearer of its timeout and the scope's deadline."""
        left = cancellation.remaining()
        timeout = self.timeout
        if left is None or (timeout is not None and timeout <= left):
            if timeout is None:
                return await awaitable
            return await self._await_with_timeout(awaitable, timeout)
        scope = asyncio.timeout(left)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise _ScopeEnded from None
            raise

    async def _await_with_timeout(self, awaitable: Any, seconds: float) -> Any:
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise OperationTimeout(self.op.name, seconds) from None
            raise


class _ScopeEnded(Exception):
    """Internal: the ``Cancellation`` scope's deadline cancelled a running attempt."""
