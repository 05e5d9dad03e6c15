"""What retry hooks, waits and fallbacks are told, and the process-wide ``on_retry`` hooks.

``RetryDetails`` is given to a ``wait=`` callable (to choose the wait) and to every
``on_retry`` hook (just before the retry: after its wait is chosen and the breaker let it
through, before the sleep); ``FallbackDetails`` to a callable ``fallback``. Both are frozen,
slotted, and made only on the paths that need them (a failure with a hook, a wait or a
fallback configured): a call that succeeds makes neither.

>>> from coordination.error_handling import RetryDetails, set_on_retry_hooks
>>> seen: list[RetryDetails] = []
>>> set_on_retry_hooks([seen.append])
>>> set_on_retry_hooks(None)  # back to none

The process-wide hooks run after the operation's own ``on_retry`` hooks, for every handler of
the process. They are one tuple, replaced whole by ``set_on_retry_hooks`` (one atomic store,
read on the retry path only), so no lock is needed to read or change them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._callables import returns_awaitable
from .._errors import ConfigError
from .._quote import quote

__all__ = [
    "NO_RESULT",
    "FallbackDetails",
    "RetryDetails",
    "RetryHook",
    "RetryWait",
    "as_hooks",
    "as_wait",
    "get_on_retry_hooks",
    "set_on_retry_hooks",
]

# ``RetryDetails.result`` when the attempt raised (``None`` may be a real result).
NO_RESULT: Any = type("_NoResult", (), {"__repr__": lambda self: "<the attempt raised>"})()


@dataclass(frozen=True, slots=True)
class RetryDetails:
    """One retry about to happen (for ``on_retry``) or to be timed (for ``wait``).

    ``attempt`` is the number of the attempt that failed (1 for the first). ``delay`` is
    the wait before the next attempt: for ``wait=`` the backoff's own choice (what it would
    wait), for ``on_retry`` the wait chosen. ``exception`` is what the attempt raised, or
    ``None`` when ``retry_if_result`` asked for the retry; then ``result`` is the value it
    returned (else ``NO_RESULT``). ``elapsed`` is the seconds since the call's first
    attempt began when the pipeline times its attempts (a ``timeout``, a
    ``retry_time_budget``, a slow-call breaker), else since its first failure (the
    breaker's fast path reads no clock before a call that may succeed).
    """

    operation: str
    attempt: int
    delay: float
    exception: BaseException | None
    result: Any
    elapsed: float


@dataclass(frozen=True, slots=True)
class FallbackDetails:
    """A call ending in its fallback: the ``exception`` it ended with (a ``CircuitOpenError``
    when the breaker refused it), the call's ``args`` and ``kwargs`` (read-only), the
    ``operation`` name and the ``attempts`` made (0 when nothing was attempted: refused by
    the breaker, the rate limit or the bulkhead)."""

    exception: BaseException
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    operation: str
    attempts: int


RetryHook = Callable[[RetryDetails], object]
RetryWait = Callable[[RetryDetails], "float | None"]

_hooks: tuple[RetryHook, ...] = ()


def set_on_retry_hooks(hooks: Iterable[RetryHook] | None) -> None:
    """Replace the process-wide ``on_retry`` hooks (``None`` or ``()``: none).

    Each hook is a plain (not async) callable given a ``RetryDetails``; it runs on the
    thread (or event loop) of the call that retries, so it must be quick. A hook that
    raises is logged by the handler and counted in the operation's ``hook_errors``; it never
    breaks the call.
    """
    global _hooks
    _hooks = () if hooks is None else as_hooks(hooks, "set_on_retry_hooks()")


def get_on_retry_hooks() -> tuple[RetryHook, ...]:
    """The process-wide ``on_retry`` hooks, in the order they run."""
    return _hooks


def as_hooks(spec: object, source: str) -> tuple[RetryHook, ...]:
    """``on_retry`` as a tuple of hooks: one callable or an iterable of them, each plain."""
    if spec is None:
        return ()
    if callable(spec):
        items: list[object] = [spec]
    elif isinstance(spec, str | bytes | Mapping) or not isinstance(spec, Iterable):
        raise _bad("on_retry", spec, source, "a callable or a sequence of callables")
    else:
        items = list(spec)
    for hook in items:
        if not callable(hook):
            raise _bad("on_retry", hook, source, "a callable taking a RetryDetails")
        if returns_awaitable(hook):
            raise _bad(
                "on_retry",
                hook,
                source,
                "a plain callable (an async hook would never be awaited: it runs just "
                "before the retry's wait, on sync and async calls alike)",
            )
    return tuple(items)  # type: ignore[arg-type]  # each checked callable above


def as_wait(spec: object, source: str) -> RetryWait | None:
    """``wait`` checked: ``None``, or a plain callable taking a ``RetryDetails``."""
    if spec is None:
        return None
    if not callable(spec) or returns_awaitable(spec):
        raise _bad(
            "wait",
            spec,
            source,
            "a plain (not async) callable taking a RetryDetails and returning seconds "
            "(or None for the backoff's wait)",
        )
    wait: RetryWait = spec
    return wait


def _bad(field: str, value: object, source: str, expected: str) -> ConfigError:
    return ConfigError(
        f"invalid {field} = {quote(value)} from {source}: expected {expected}",
        field=field,
        value=value,
        source=source,
    )
