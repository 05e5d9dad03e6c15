"""The ``breaker_mode`` around any breaker: ``metrics_only`` and ``disabled``.

The handler picks the breaker of an operation once, when the operation is made: in the
``normal`` mode the factory's breaker as it is (its fast path untouched); in
``metrics_only`` that breaker wrapped in ``MetricsOnlyBreaker``; in ``disabled`` a
``DisabledBreaker`` and no factory call at all (no Redis key, no round trip). Both
implement ``CircuitBreakerBackend``, so the pipeline, the reports and the exporters see
no difference but the snapshot's ``mode``.

``metrics_only`` is a shadow breaker, for a first rollout: the wrapped breaker sees
exactly the calls it would admit in the normal mode and changes state as it would
(transitions, hooks, reports), but a call it refuses runs anyway, is counted in
``would_reject``, and its outcome is not told to it (in its world that call never
happened). Which call was refused is remembered per thread / asyncio task until its
outcome, so concurrent calls each report against their own admission. A protected call
of the same operation nested inside a refused one is reported as if admitted. While the
wrapped breaker is CLOSED a call takes a closed path like the normal mode's (``guard``):
the state read, the call, the success told.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

from .._counting import ReadableCount, count_value
from .._errors import CircuitOpenError
from ._backends import BreakerSettings, BreakerSnapshot, CircuitBreakerBackend, CircuitState

__all__ = ["DisabledBreaker", "MetricsOnlyBreaker", "with_mode"]

Handover = Callable[..., Any]
# The metrics-only breaker that refused this thread's / task's latest call, if any.
_refused: ContextVar[object] = ContextVar("coordination_metrics_only_refused", default=None)
_CLOSED = CircuitState.CLOSED


class MetricsOnlyBreaker:
    """``breaker`` counting, changing state and reporting, but never rejecting a call."""

    __slots__ = ("_would_reject", "blocking", "inner", "name", "settings", "tracks_duration")

    def __init__(self, inner: CircuitBreakerBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.settings = inner.settings
        self.tracks_duration = inner.tracks_duration
        self.blocking = inner.blocking
        self._would_reject = ReadableCount()

    @property
    def state(self) -> CircuitState:
        """The wrapped breaker's state (what it would do in the normal mode)."""
        return self.inner.state

    @property
    def would_reject(self) -> int:
        """Calls the breaker refused, which ran anyway."""
        return count_value(self._would_reject)

    def acquire(self) -> None:
        try:
            self.inner.acquire()
        except CircuitOpenError:
            self._refuse()
        else:
            self._admitted()

    async def aacquire(self) -> None:
        try:
            await self.inner.aacquire()
        except CircuitOpenError:
            self._refuse()
        else:
            self._admitted()

    def _refuse(self) -> None:
        next(self._would_reject)
        _refused.set(self)

    def _admitted(self) -> None:
        if _refused.get() is self:
            _refused.set(None)

    def _was_refused(self) -> bool:
        if _refused.get() is self:
            _refused.set(None)
            return True
        return False

    def record_success(self, duration: float) -> None:
        if not self._was_refused():
            self.inner.record_success(duration)

    def record_failure(self, duration: float) -> None:
        if not self._was_refused():
            self.inner.record_failure(duration)

    def release(self) -> None:
        if not self._was_refused():
            self.inner.release()

    async def arecord_success(self, duration: float) -> None:
        if not self._was_refused():
            await self.inner.arecord_success(duration)

    async def arecord_failure(self, duration: float) -> None:
        if not self._was_refused():
            await self.inner.arecord_failure(duration)

    async def arelease(self) -> None:
        if not self._was_refused():
            await self.inner.arelease()

    def guard(
        self,
        func: Callable[..., Any],
        *,
        successes: Iterator[int],
        failed: Handover,
        otherwise: Handover,
        refused: Callable[[CircuitOpenError], Any],
        on_result: Handover | None = None,
        refusals_returned: bool = False,
    ) -> Callable[..., Any]:
        """The closed path without the pipeline (as ``CircuitBreaker.guard``'s): while the
        wrapped breaker reads CLOSED, the call and its success told to it; anything else
        goes to the pipeline (``otherwise``), whose acquire here never rejects. Used only
        when the pipeline may (no admission, timeout, durations or I/O)."""
        inner = self.inner
        record_success = inner.record_success

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if inner.state is not _CLOSED:
                return otherwise(func, args, kwargs)
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                return failed(func, args, kwargs, exc)
            record_success(0.0)
            if on_result is not None:
                return on_result(func, args, kwargs, result)
            next(successes)
            return result

        return guarded

    def aguard(
        self,
        func: Callable[..., Awaitable[Any]],
        *,
        successes: Iterator[int],
        failed: Callable[..., Awaitable[Any]],
        otherwise: Callable[..., Awaitable[Any]],
        bypass: Callable[[], object],
        on_result: Callable[..., Awaitable[Any]] | None = None,
    ) -> Callable[..., Awaitable[Any]]:
        """``guard`` for a coroutine function (inside a ``Cancellation`` scope the call
        goes to the pipeline)."""
        inner = self.inner
        record_success = inner.record_success

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if inner.state is not _CLOSED or bypass() is not None:
                return await otherwise(func, args, kwargs)
            try:
                value = await func(*args, **kwargs)
            except Exception as exc:
                return await failed(func, args, kwargs, exc)
            record_success(0.0)
            if on_result is None:
                next(successes)
                return value
            return await on_result(func, args, kwargs, value)

        return guarded

    def reset(self) -> None:
        self.inner.reset()

    def force_open(self) -> None:
        """The wrapped breaker is forced open: every call then counts in ``would_reject``."""
        self.inner.force_open()

    def snapshot(self) -> BreakerSnapshot:
        return replace(self.inner.snapshot(), mode="metrics_only", would_reject=self.would_reject)

    def __repr__(self) -> str:
        return f"MetricsOnlyBreaker({self.inner!r})"


class DisabledBreaker:
    """No breaker: every call is admitted and nothing is counted or kept."""

    __slots__ = ("name", "settings")

    tracks_duration = False
    blocking = False
    state = CircuitState.CLOSED

    def __init__(self, name: str, settings: BreakerSettings) -> None:
        self.name = name
        self.settings = settings

    def acquire(self) -> None:
        return None

    def record_success(self, duration: float) -> None:
        return None

    def record_failure(self, duration: float) -> None:
        return None

    def release(self) -> None:
        return None

    async def aacquire(self) -> None:
        return None

    async def arecord_success(self, duration: float) -> None:
        return None

    async def arecord_failure(self, duration: float) -> None:
        return None

    async def arelease(self) -> None:
        return None

    def reset(self) -> None:
        return None

    def force_open(self) -> None:
        """Nothing: a disabled breaker never rejects (the handler logs a warning)."""

    def snapshot(self) -> BreakerSnapshot:
        return BreakerSnapshot(
            name=self.name,
            state=CircuitState.CLOSED,
            consecutive_failures=0,
            failure_rate=None,
            slow_call_rate=None,
            window_calls=0,
            retry_after=0.0,
            forced_open=False,
            transitions={},
            backend="none",
            mode="disabled",
        )

    def guard(
        self,
        func: Callable[..., Any],
        *,
        successes: Iterator[int],
        failed: Handover,
        otherwise: Handover,
        refused: Callable[[CircuitOpenError], Any],
        on_result: Handover | None = None,
        refusals_returned: bool = False,
    ) -> Callable[..., Any]:
        """``func`` with its failures handed to the pipeline (retries), nothing else."""

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                return failed(func, args, kwargs, exc)
            if on_result is not None:
                return on_result(func, args, kwargs, result)
            next(successes)
            return result

        return guarded

    def aguard(
        self,
        func: Callable[..., Awaitable[Any]],
        *,
        successes: Iterator[int],
        failed: Callable[..., Awaitable[Any]],
        otherwise: Callable[..., Awaitable[Any]],
        bypass: Callable[[], object],
        on_result: Callable[..., Awaitable[Any]] | None = None,
    ) -> Callable[..., Awaitable[Any]]:
        """``guard`` for a coroutine function (inside a ``Cancellation`` scope the call
        goes to the pipeline, which bounds the first attempt too)."""

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if bypass() is not None:
                return await otherwise(func, args, kwargs)
            try:
                value = await func(*args, **kwargs)
            except Exception as exc:
                return await failed(func, args, kwargs, exc)
            if on_result is None:
                next(successes)
                return value
            return await on_result(func, args, kwargs, value)

        return guarded

    def __repr__(self) -> str:
        return f"DisabledBreaker({self.name!r})"


def with_mode(
    settings: BreakerSettings, name: str, make: Callable[[], CircuitBreakerBackend]
) -> CircuitBreakerBackend:
    """The breaker of one operation in ``settings.mode``; ``make()`` is the factory's
    breaker (not called when the mode is ``disabled``)."""
    if settings.mode == "disabled":
        return DisabledBreaker(name, settings)
    if settings.mode == "metrics_only":
        return MetricsOnlyBreaker(make())
    return make()
