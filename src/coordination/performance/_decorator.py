"""``track_performance``: time every call of a function, sync or async, into a monitor."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast, overload

from .._defaults import (
    ComponentSet,
    MonitorLike,
    ProcessDefault,
    checked_component,
    component_of,
    process_config,
)
from ._monitor import CoordinationPerformanceMonitor
from ._operation import FLUSH_SIZE

__all__ = ["default_monitor", "track_performance"]

P = ParamSpec("P")
R = TypeVar("R")

_DEFAULT: ProcessDefault[CoordinationPerformanceMonitor] = ProcessDefault(
    lambda: CoordinationPerformanceMonitor(process_config())
)


def default_monitor() -> CoordinationPerformanceMonitor:
    """The process-wide monitor every door records into unless given another.

    Part of ``default_coordination()``; made on first use from the file and the environment.
    """
    return _DEFAULT.get()


@overload
def track_performance(
    name: Callable[P, R], *, monitor: None = None, coordination: None = None
) -> Callable[P, R]: ...


@overload
def track_performance(
    name: str | None = None,
    *,
    monitor: MonitorLike | None = None,
    coordination: ComponentSet | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def track_performance(
    name: str | Callable[P, R] | None = None,
    *,
    monitor: MonitorLike | None = None,
    coordination: ComponentSet | None = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Record each call's duration and outcome as operation ``name`` (default: the
    function's qualified name). Works on functions, methods and coroutine functions.

    >>> @track_performance("update_user_profile")
    ... def update_user_profile(user_id, data):
    ...     return {"status": "updated", "user_id": user_id}

    The monitor is ``monitor``, else ``coordination.monitor``, else the process-wide
    ``default_monitor()``. With monitoring disabled in the configuration, the function is
    returned unchanged.
    """
    if callable(name):  # used bare: @track_performance
        return track_performance()(name)
    monitor = component_of(coordination, "monitor", monitor, "monitor")
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"track_performance name must be a non-empty string, got {name!r}")

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if not callable(func):
            raise TypeError(f"track_performance decorates callables, not {func!r}")
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            # Timing the call would time only the generator's creation: a misleading ~0 ms.
            raise TypeError(
                f"track_performance cannot time the generator function "
                f"{getattr(func, '__qualname__', func)!r}: its body runs while it is "
                "iterated, after the call returns; time the code that consumes it "
                "with monitor.record_operation(name) instead"
            )
        target = monitor if monitor is not None else default_monitor()
        operation = name if isinstance(name, str) else getattr(func, "__qualname__", repr(func))
        if not isinstance(target, CoordinationPerformanceMonitor):
            # another MonitorLike: timed through its record_operation() context manager
            return _timed_by(checked_component(target, MonitorLike, "monitor"), operation, func)
        hot = target.hot_path(operation)
        if hot is None:
            return func
        recorder, clock = hot
        pending = recorder.pending
        add_outcome = recorder.add_outcome

        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[P, Awaitable[Any]], func)

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = clock()
                try:
                    result = await async_func(*args, **kwargs)
                except Exception as exc:
                    end = clock()
                    add_outcome(end, end - start, False, type(exc).__qualname__)
                    raise
                end = clock()
                if end >= recorder.rotate_at:
                    recorder.flush(end)
                pending.append(end - start)
                if len(pending) >= FLUSH_SIZE:
                    recorder.flush(end)
                return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            start = clock()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                end = clock()
                add_outcome(end, end - start, False, type(exc).__qualname__)
                raise
            end = clock()
            if end >= recorder.rotate_at:
                recorder.flush(end)
            pending.append(end - start)
            if len(pending) >= FLUSH_SIZE:
                recorder.flush(end)
            return result

        return wrapper

    return decorate


def _timed_by(monitor: MonitorLike, operation: str, func: Callable[P, R]) -> Callable[P, R]:
    """``func`` timed by ``monitor.record_operation(operation)`` around each call."""
    record = monitor.record_operation
    if inspect.iscoroutinefunction(func):
        async_func = cast(Callable[P, Awaitable[Any]], func)

        @functools.wraps(func)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            with record(operation):
                return await async_func(*args, **kwargs)

        return cast(Callable[P, R], async_wrapper)

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with record(operation):
            return func(*args, **kwargs)

    return wrapper
