"""Decorating a function with its pipeline: the plan is built once, at decoration.

``wrap_function`` needs only something that makes plans (a ``Planner``: the handler), so
the handler's ``decorate`` and ``handle_errors`` both use it and neither module needs the
other at import time.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ._plan import Plan
from ._sync_runner import SyncRunner

__all__ = ["Planner", "name_of", "wrap_function"]


class Planner(Protocol):
    """What decorating needs of a handler: a plan for an operation name and options."""

    def plan(self, name: str, overrides: Mapping[str, Any]) -> Plan: ...


def name_of(operation: Callable[..., Any]) -> str:
    """An operation's default name: its ``__qualname__`` (a callable object's class's)."""
    name = getattr(operation, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(operation).__qualname__


def wrap_function(planner: Planner, func: Any, error_config: Mapping[str, Any]) -> Any:
    """``func`` behind ``planner``'s pipeline for it; the plan is built here, once."""
    if isinstance(func, staticmethod | classmethod):
        return type(func)(wrap_function(planner, func.__func__, error_config))
    if not callable(func):
        raise TypeError(f"handle_errors decorates functions and methods, not {func!r}")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(
            f"handle_errors cannot protect the generator function {name_of(func)}: its "
            "body runs only while it is iterated, after the call has returned; decorate "
            "the function that fetches the data instead"
        )
    options = dict(error_config)
    name = options.pop("operation_name", None) or name_of(func)
    if not isinstance(name, str):
        raise TypeError(f"operation_name must be a string, not {type(name).__name__}")
    plan = planner.plan(name, options)
    track = getattr(planner, "_track", None)  # a planner that reloads keeps the runner
    if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        type(func).__call__  # an object with an async __call__
    ):
        from ._async_runner import AsyncRunner  # asyncio loaded with the first async function

        arunner = AsyncRunner(plan)
        awrapped = arunner.wrap(func)
        if track is not None:
            track(arunner, name, options)
        return functools.update_wrapper(awrapped, func)
    runner = SyncRunner(plan)
    wrapped = runner.wrap(func)
    if track is not None:
        track(runner, name, options)
    try:
        return functools.update_wrapper(wrapped, func)
    except AttributeError:  # a callable object without a __dict__: keep what we can
        return wrapped
