"""The async twin of ``Plan``: the same pipeline for coroutine functions.

Everything is decided exactly as in ``Plan`` (the decisions are shared); only the waiting
differs: ``asyncio`` sleeps, the bulkhead's ``aenter``, real cancellation on timeout, and,
for a breaker or limiter that does I/O (``blocking``), the awaited ``a*`` methods.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from .._errors import BulkheadFull, CircuitOpenError, OperationTimeout, RateLimitExceeded
from ._backends import CircuitState
from ._plan import NOT_COUNTED, Plan

__all__ = ["AsyncPlan"]

CLOSED = CircuitState.CLOSED


class AsyncPlan(Plan):
    """A ``Plan`` that can also run coroutine functions (``arun``)."""

    async def arun(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        op = self.op
        memory = self.memory_breaker
        if memory is not None and memory._state is CLOSED:
            try:
                result = await func(*args, **kwargs)
            except Exception as exc:
                started, wait = self._first_retry(exc)
                if wait < 0:
                    return await self.agive_up(exc, 1)
                return await self._aattempts(func, args, kwargs, 1, started, wait, exc)
            memory.record_success(0.0)
            check = self.options.retry_if_result
            if check is None or not check(result):
                next(op.successes)
                return result
            started, wait = self._first_retry(None)
            if wait < 0:
                next(op.successes)
                return result
            return await self._aattempts(func, args, kwargs, 1, started, wait, None)
        try:
            await self._aadmit()
        except (RateLimitExceeded, BulkheadFull) as exc:
            return await self.agive_up(exc, 0)
        try:
            return await self._aattempts(func, args, kwargs, 0, None, 0.0, None)
        finally:
            if op.bulkhead is not None:
                op.bulkhead.leave()

    async def _aadmit(self) -> None:
        op = self.op
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
        attempt: int,
        started: float | None,
        wait: float,
        last: Exception | None,
    ) -> Any:
        handler = self.handler
        breaker = self.breaker
        blocking = breaker.blocking
        clock = handler._clock
        previous = wait or self.options.backoff.base_delay
        while True:
            try:
                await breaker.aacquire() if blocking else breaker.acquire()
            except CircuitOpenError as exc:
                result = self.rejected(exc, last)
                return await result if inspect.isawaitable(result) else result
            if attempt > 0:
                next(self.op.retries)
            if wait > 0:
                try:
                    await handler._async_sleep(wait)
                except BaseException:  # cancelled while waiting: give the permit back
                    await breaker.arelease() if blocking else breaker.release()
                    raise
            begin = clock() if self.timed else 0.0
            try:
                if self.timeout is None:
                    result = await func(*args, **kwargs)
                else:
                    result = await self._await_with_timeout(func(*args, **kwargs), self.timeout)
            except Exception as exc:
                duration = clock() - begin if self.timed else 0.0
                if not blocking:
                    self.failed_attempt(exc, duration)
                else:  # the breaker does I/O: await it, never block the loop
                    if isinstance(exc, NOT_COUNTED):
                        await breaker.arelease()
                    else:
                        await breaker.arecord_failure(duration)
                    self.failed_attempt(exc, duration, tell_breaker=False)
                last = exc
                if started is None:
                    started = clock()
                wait = self.next_wait(exc, attempt, previous, started)
                attempt += 1
                if wait < 0:
                    return await self.agive_up(exc, attempt)
                previous = wait
                continue
            except BaseException:
                await breaker.arelease() if blocking else breaker.release()
                raise
            duration = clock() - begin if self.timed else 0.0
            await breaker.arecord_success(duration) if blocking else breaker.record_success(
                duration
            )
            check = self.options.retry_if_result
            if check is not None and check(result):
                if started is None:
                    started = clock()
                wait = self.next_wait(None, attempt, previous, started)
                attempt += 1
                if wait >= 0:
                    previous = wait
                    continue
            next(self.op.successes)
            return result

    async def _await_with_timeout(self, awaitable: Any, seconds: float) -> Any:
        scope = asyncio.timeout(seconds)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise OperationTimeout(self.op.name, seconds) from None
            raise
