"""Telling callables that must be awaited from those that return a value, with public means.

``inspect.iscoroutinefunction`` answers for functions, methods, ``functools.partial`` of a
coroutine function and functions marked with ``inspect.markcoroutinefunction`` (3.12+); it
does not look inside a partial of an *object* whose ``__call__`` is async, nor at such an
object itself. ``returns_awaitable`` adds both.

``SyncCallCheck`` is the same answer for a hot path that is handed a callable on every call
(``execute_with_error_handling``): the full check costs about a microsecond, so the plain
functions already found synchronous are remembered by their code object (functions defined
at one place share it), provided they carry no attributes of their own (a
``markcoroutinefunction`` mark is such an attribute). Everything else gets the full check.
"""

from __future__ import annotations

import functools
import inspect
from types import CodeType, FunctionType, MethodType
from typing import Any

__all__ = ["SyncCallCheck", "returns_awaitable"]


def returns_awaitable(obj: object) -> bool:
    """True when calling ``obj`` gives a coroutine or an async generator, not a value.

    >>> async def fetch() -> int: ...
    >>> returns_awaitable(functools.partial(fetch)), returns_awaitable(len)
    (True, False)
    """
    while isinstance(obj, functools.partial):
        obj = obj.func
    if inspect.iscoroutinefunction(obj) or inspect.isasyncgenfunction(obj):
        return True
    if inspect.isroutine(obj) or isinstance(obj, type):
        return False  # a function, method or builtin that is not async; a class
    call = type(obj).__call__  # an instance of a class with an async __call__
    return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)


class SyncCallCheck:
    """``returns_awaitable`` for a callable handed over on every call, remembered cheaply.

    Only the "synchronous" answer for plain functions (and methods of them) is kept, keyed
    by code object, at most ``limit`` of them (the set starts again when full).
    """

    __slots__ = ("_limit", "_sync_codes")

    def __init__(self, limit: int = 4096) -> None:
        self._sync_codes: set[CodeType] = set()
        self._limit = limit

    def returns_awaitable(self, operation: Any) -> bool:
        kind = type(operation)
        if (kind is FunctionType or kind is MethodType) and not operation.__dict__:
            # a method's __code__ and __dict__ are its function's
            if operation.__code__ in self._sync_codes:
                return False
        else:
            return returns_awaitable(operation)
        code = operation.__code__
        if returns_awaitable(operation):
            return True
        if len(self._sync_codes) >= self._limit:
            self._sync_codes.clear()
        self._sync_codes.add(code)
        return False
