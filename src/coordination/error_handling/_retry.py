"""Backoff, jitter, which errors are retried, and ``retry_after`` hints.

Waits follow ``base_delay × backoff_multiplier**n`` for the n-th retry (n from 0), capped
at ``max_delay``, then jittered:

- ``none``: exactly that wait (monotone, for tests and tight control);
- ``full`` (the default): uniform in ``[0, wait]``, the AWS recommendation, which spreads a
  thundering herd best;
- ``equal``: ``wait/2`` plus uniform in ``[0, wait/2]`` (never less than half);
- ``decorrelated``: uniform in ``[base_delay, 3 × previous wait]``, capped.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import CircuitOpenError, ConfigError, OperationCancelled, ValidationError
from .._settings import SETTINGS, default_of

__all__ = [
    "NOT_RETRIED",
    "Backoff",
    "ErrorMatcher",
    "as_matcher",
    "retry_after_seconds",
]

# Errors no retry can fix: programming errors and the library's own verdicts.
NOT_RETRIED: tuple[type[BaseException], ...] = (
    TypeError,
    AttributeError,
    NameError,
    NotImplementedError,
    AssertionError,
    ValidationError,
    ConfigError,
    CircuitOpenError,
    OperationCancelled,
)

ErrorMatcher = Callable[[Exception], bool]
# Backoff's attributes and the settings they hold.
_BACKOFF_SETTINGS = (
    ("base_delay", "base_delay"),
    ("multiplier", "backoff_multiplier"),
    ("max_delay", "max_delay"),
    ("jitter", "jitter"),
)


def as_matcher(spec: Any, field: str) -> ErrorMatcher | None:
    """``retry_on`` / ``give_up_on`` as a predicate: a type, a tuple of types or a callable."""
    if spec is None:
        return None
    if isinstance(spec, type) and issubclass(spec, BaseException):
        types: tuple[type[BaseException], ...] = (spec,)
    elif isinstance(spec, tuple | list | frozenset | set) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in spec
    ):
        types = tuple(spec)
    elif callable(spec):
        predicate: ErrorMatcher = spec
        return predicate
    else:
        raise ConfigError(
            f"invalid {field} = {spec!r}: expected an exception type, a tuple of them, "
            "or a callable taking the exception and returning a bool",
            field=field,
            value=spec,
            source="keyword argument",
        )

    def matches(exc: Exception) -> bool:
        return isinstance(exc, types)

    matches.__qualname__ = f"{field}({', '.join(t.__name__ for t in types)})"
    return matches


@dataclass(frozen=True, slots=True)
class Backoff:
    """The wait before each retry; ``delay(n, previous)`` for the n-th retry (0-based)."""

    base_delay: float = default_of("base_delay")
    multiplier: float = default_of("backoff_multiplier")
    max_delay: float = default_of("max_delay")
    jitter: str = default_of("jitter")

    def __post_init__(self) -> None:
        # The schema's checks, in its words: a Backoff built by hand is refused exactly
        # as the same values in the configuration or in handle_errors(...) would be.
        for attribute, name in _BACKOFF_SETTINGS:
            SETTINGS[name].check(getattr(self, attribute), f"Backoff({attribute}=...)")

    @property
    def never_waits(self) -> bool:
        return self.max_delay == 0 or self.base_delay == 0

    def delay(self, retry: int, previous: float, rng: Callable[[], float] = random.random) -> float:
        cap = self.max_delay
        if self.jitter == "decorrelated":
            low = min(self.base_delay, cap)
            high = min(cap, max(low, previous * 3))
            return min(high, low + (high - low) * rng())  # rounding may pass high by an ulp
        try:
            wait = min(cap, self.base_delay * self.multiplier**retry)
        except OverflowError:  # a huge retry count: the cap is the answer
            wait = cap
        if self.jitter == "none":
            return wait
        if self.jitter == "full":
            return wait * rng()
        half = wait / 2
        return min(wait, half + half * rng())  # equal; min: subnormal halves round up


def retry_after_seconds(exc: BaseException, now: Callable[[], float] | None = None) -> float | None:
    """The wait an error asks for: its ``retry_after`` or an HTTP ``Retry-After`` header.

    Accepts seconds (a number or a numeric string) and HTTP dates; ``None`` when absent or
    unreadable, so a malformed hint never turns into a crash.
    """
    # read the instance dict, not getattr: a miss there costs no AttributeError, and
    # this runs on every failed attempt
    attributes = getattr(exc, "__dict__", None) or {}
    value = attributes.get("retry_after")
    if value is None and isinstance(exc, CircuitOpenError):  # kept in a slot
        value = exc.retry_after
    if value is None:
        response = attributes.get("response")
        headers = getattr(response, "headers", None)
        if headers is not None:
            try:
                value = headers.get("Retry-After")
            except Exception:  # an unusual headers object: no hint, not a crash
                value = None
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(0.0, float(value)) if value == value else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return max(0.0, float(text))
        except ValueError:
            pass
        from email.utils import parsedate_to_datetime  # an HTTP date: rare, and email is big

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        import time

        current = now() if now is not None else time.time()
        return max(0.0, when.timestamp() - current)
    return None
