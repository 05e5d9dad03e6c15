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
from .._time import Clock, monotonic
from ._backends import BreakerSettings, BreakerSnapshot, CircuitBreakerBackend, CircuitState

__all__ = ["DisabledBreaker", "MetricsOnlyBreaker", "with_mode"]

Handover = Callable[..., Any]
# The metrics-only breaker that refused this thread's / task's latest call, if any.
_refused: ContextVar[object] = ContextVar("coordination_metrics_only_refused", default=None)
_CLOSED = CircuitState.CLOSED


class MetricsOnlyBreaker:
    """``breaker`` counting, changing state and reporting, but never rejecting a call."""

    __slots__ = (
        "_clock",
        "_would_reject",
        "blocking",
        "inner",
        "name",
        "settings",
        "tracks_duration",
    )

    def __init__(self, inner: CircuitBreakerBackend, clock: Clock = monotonic) -> None:
        self.inner = inner
        self._clock = clock
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

    def guard(self, func: Callable[..., Any], **handovers: Any) -> Callable[..., Any]:
        """The closed path without the pipeline (as ``CircuitBreaker.guard``'s): while the
        wrapped breaker reads CLOSED, the call and its success told to it; anything else
        goes to the pipeline (``otherwise``), whose acquire here never rejects. Used only
        when the pipeline may (no admission, timeout, durations or I/O)."""
        inner = self.inner
        return _closed_path(
            func, lambda: inner.state is not _CLOSED, inner.record_success, None, **handovers
        )

    def guard_from_start(
        self, func: Callable[..., Any], *, failed_since: Handover, **handovers: Any
    ) -> Callable[..., Any]:
        """``guard`` reading the clock before the call (a time budget counts from there)."""
        inner = self.inner
        return _closed_path(
            func,
            lambda: inner.state is not _CLOSED,
            inner.record_success,
            self._clock,
            failed=failed_since,
            **handovers,
        )

    def aguard(
        self, func: Callable[..., Awaitable[Any]], **handovers: Any
    ) -> Callable[..., Awaitable[Any]]:
        """``guard`` for a coroutine function (inside a ``Cancellation`` scope the call
        goes to the pipeline)."""
        inner = self.inner
        return _aclosed_path(
            func, lambda: inner.state is not _CLOSED, inner.record_success, None, **handovers
        )

    def aguard_from_start(
        self,
        func: Callable[..., Awaitable[Any]],
        *,
        failed_since: Callable[..., Awaitable[Any]],
        **handovers: Any,
    ) -> Callable[..., Awaitable[Any]]:
        inner = self.inner
        return _aclosed_path(
            func,
            lambda: inner.state is not _CLOSED,
            inner.record_success,
            self._clock,
            failed=failed_since,
            **handovers,
        )

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

    __slots__ = ("_clock", "name", "settings")

    tracks_duration = False
    blocking = False
    state = CircuitState.CLOSED

    def __init__(self, name: str, settings: BreakerSettings, clock: Clock = monotonic) -> None:
        self.name = name
        self.settings = settings
        self._clock = clock

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

    def guard(self, func: Callable[..., Any], **handovers: Any) -> Callable[..., Any]:
        """``func`` with its failures handed to the pipeline (retries), nothing else."""
        return _closed_path(func, None, None, None, **handovers)

    def guard_from_start(
        self, func: Callable[..., Any], *, failed_since: Handover, **handovers: Any
    ) -> Callable[..., Any]:
        """``guard`` reading the clock before the call (a time budget counts from there)."""
        return _closed_path(func, None, None, self._clock, failed=failed_since, **handovers)

    def aguard(
        self, func: Callable[..., Awaitable[Any]], **handovers: Any
    ) -> Callable[..., Awaitable[Any]]:
        """``guard`` for a coroutine function (inside a ``Cancellation`` scope the call
        goes to the pipeline, which bounds the first attempt too)."""
        return _aclosed_path(func, None, None, None, **handovers)

    def aguard_from_start(
        self,
        func: Callable[..., Awaitable[Any]],
        *,
        failed_since: Callable[..., Awaitable[Any]],
        **handovers: Any,
    ) -> Callable[..., Awaitable[Any]]:
        return _aclosed_path(func, None, None, self._clock, failed=failed_since, **handovers)

    def __repr__(self) -> str:
        return f"DisabledBreaker({self.name!r})"


def _always() -> bool:
    return True


def _closed_path(
    func: Callable[..., Any],
    not_closed: Callable[[], bool] | None,
    record_success: Callable[[float], None] | None,
    clock: Clock | None,
    *,
    successes: Iterator[int],
    failed: Handover,
    otherwise: Handover,
    refused: Callable[[CircuitOpenError], Any] | None = None,
    on_result: Handover | None = None,
    refusals_returned: bool = False,
    on_divert: Callable[[Callable[[bool], None]], None] | None = None,
) -> Callable[..., Any]:
    """A mode's own closed path: while ``not_closed()`` is false (None: always), the call,
    ``record_success``, ``next(successes)``; else the pipeline. With ``clock``, a failed
    first attempt goes to ``failed(func, args, kwargs, exc, started)`` (a time budget).
    ``on_divert``: as ``CircuitBreaker.guard``'s."""
    # diverted (a reload): ``not_closed`` answers True, so the check costs nothing more
    reads_state = not_closed

    def divert(on: bool) -> None:
        nonlocal not_closed
        not_closed = _always if on else reads_state

    if on_divert is not None:
        on_divert(divert)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not_closed is not None and not_closed():
            return otherwise(func, args, kwargs)
        started = None if clock is None else clock()
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            if started is None:
                return failed(func, args, kwargs, exc)
            return failed(func, args, kwargs, exc, started)
        if on_result is not None:  # it tells the breaker the outcome itself
            return on_result(func, args, kwargs, result)
        if record_success is not None:
            record_success(0.0)
        next(successes)
        return result

    return guarded


def _aclosed_path(
    func: Callable[..., Awaitable[Any]],
    not_closed: Callable[[], bool] | None,
    record_success: Callable[[float], None] | None,
    clock: Clock | None,
    *,
    successes: Iterator[int],
    failed: Callable[..., Awaitable[Any]],
    otherwise: Callable[..., Awaitable[Any]],
    bypass: Callable[[], object],
    on_result: Callable[..., Awaitable[Any]] | None = None,
    on_divert: Callable[[Callable[[bool], None]], None] | None = None,
) -> Callable[..., Awaitable[Any]]:
    """``_closed_path`` for a coroutine function; inside a ``Cancellation`` scope
    (``bypass()``) the call goes to the pipeline, which bounds the first attempt too."""
    reads_state = not_closed

    def divert(on: bool) -> None:
        nonlocal not_closed
        not_closed = _always if on else reads_state

    if on_divert is not None:
        on_divert(divert)

    async def guarded(*args: Any, **kwargs: Any) -> Any:
        if (not_closed is not None and not_closed()) or bypass() is not None:
            return await otherwise(func, args, kwargs)
        started = None if clock is None else clock()
        try:
            value = await func(*args, **kwargs)
        except Exception as exc:
            if started is None:
                return await failed(func, args, kwargs, exc)
            return await failed(func, args, kwargs, exc, started)
        if on_result is not None:  # it tells the breaker the outcome itself
            return await on_result(func, args, kwargs, value)
        if record_success is not None:
            record_success(0.0)
        next(successes)
        return value

    return guarded


def with_mode(
    settings: BreakerSettings,
    name: str,
    make: Callable[[], CircuitBreakerBackend],
    clock: Clock,
) -> CircuitBreakerBackend:
    """The breaker of one operation in ``settings.mode``; ``make()`` is the factory's
    breaker (not called when the mode is ``disabled``); ``clock`` the handler's."""
    if settings.mode == "disabled":
        return DisabledBreaker(name, settings, clock)
    if settings.mode == "metrics_only":
        return MetricsOnlyBreaker(make(), clock)
    return make()
