"""``Cancellation``: how a caller tells the pipeline to stop a call it no longer wants.

A sync thread cannot be interrupted, but the pipeline can stop *retrying*: inside a
``with Cancellation(...)`` block every protected call (decorated or through
``execute_with_error_handling``, sync or async) checks the scope before each retry and
during each backoff wait, and raises ``OperationCancelled`` once it is cancelled (by
``cancel()``, from any thread) or its deadline has passed. A sync attempt running on a
timeout worker stops being waited for at once; an async attempt is cancelled at the
deadline. Scopes nest: an inner scope is cancelled when its outer one is.

>>> with Cancellation(timeout=2.0) as scope:
...     scope.cancelled
False
"""

from __future__ import annotations

import threading
from contextvars import ContextVar, Token
from types import TracebackType

from .._errors import ConfigError
from .._time import Clock, Sleep, monotonic
from .._time import sleep as default_sleep

__all__ = ["Cancellation", "current_cancellation"]

_current: ContextVar[Cancellation | None] = ContextVar("coordination_cancellation", default=None)


def current_cancellation() -> Cancellation | None:
    """The innermost ``Cancellation`` scope this code runs in, if any."""
    return _current.get()


class Cancellation:
    """A cancellation signal with an optional deadline, for the calls inside its scope.

    ``timeout`` (seconds from now, on ``clock``) sets the deadline; ``cancel()`` cancels
    at once. ``with scope:`` makes it the current scope of this thread or task (contextvars:
    threads started inside do not inherit it unless they copy the context).
    """

    __slots__ = ("_clock", "_deadline", "_event", "_lock", "_parent", "_reason", "_token", "_wake")

    def __init__(self, timeout: float | None = None, *, clock: Clock = monotonic) -> None:
        if timeout is not None and (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or timeout != timeout
            or timeout < 0
        ):
            raise ConfigError(
                f"invalid timeout = {timeout!r}: expected a number of seconds of at least 0 "
                "(or None)",
                field="timeout",
                value=timeout,
                source="keyword argument",
            )
        self._clock = clock
        self._deadline: float | None = None
        if timeout is not None and timeout != float("inf"):  # infinite: no deadline at all
            self._deadline = clock() + float(timeout)
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._parent: Cancellation | None = None
        self._token: Token[Cancellation | None] | None = None
        self._wake: set[threading.Event] = set()

    # --- the signal -----------------------------------------------------------------------

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel the calls in this scope (thread-safe; the first reason is kept)."""
        with self._lock:
            if self._reason is None:
                self._reason = reason
            self._event.set()
            waiting = list(self._wake)
        for event in waiting:
            event.set()

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called or the deadline passed (here or outside)."""
        if self._event.is_set():
            return True
        if self._deadline is not None and self._clock() >= self._deadline:
            return True
        return self._parent is not None and self._parent.cancelled

    @property
    def reason(self) -> str | None:
        """Why the scope is cancelled (None while it is not)."""
        if self._event.is_set():
            return self._reason
        if self._deadline is not None and self._clock() >= self._deadline:
            return "its deadline passed"
        return self._parent.reason if self._parent is not None else None

    def remaining(self) -> float | None:
        """Seconds until the deadline (the nearest of the nested scopes'), None without one."""
        own = None if self._deadline is None else max(0.0, self._deadline - self._clock())
        outer = self._parent.remaining() if self._parent is not None else None
        if own is None:
            return outer
        return own if outer is None else min(own, outer)

    # --- what the pipeline uses -------------------------------------------------------------

    def sleep(self, seconds: float, sleep: Sleep = default_sleep) -> None:
        """Wait ``seconds``, or less when cancelled meanwhile. With the real ``time.sleep``
        the wait wakes on ``cancel()``; an injected sleep (a fake clock) is called as is."""
        if sleep is not default_sleep:
            sleep(seconds)
            return
        event = threading.Event()
        self.watch(event)
        try:
            if not self.cancelled:
                event.wait(seconds)
        finally:
            self.unwatch(event)

    def watch(self, event: threading.Event) -> None:
        """Set ``event`` when this scope (or an outer one) is cancelled."""
        with self._lock:
            self._wake.add(event)
            if self._event.is_set():
                event.set()
        if self._parent is not None:
            self._parent.watch(event)

    def unwatch(self, event: threading.Event) -> None:
        with self._lock:
            self._wake.discard(event)
        if self._parent is not None:
            self._parent.unwatch(event)

    # --- the scope --------------------------------------------------------------------------

    def __enter__(self) -> Cancellation:
        if self._token is not None:
            raise RuntimeError("this Cancellation scope is already entered")
        self._parent = _current.get()
        self._token = _current.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def __repr__(self) -> str:
        remaining = self.remaining()
        deadline = "" if remaining is None else f", remaining={remaining:.3f}s"
        return f"Cancellation(cancelled={self.cancelled}{deadline})"
