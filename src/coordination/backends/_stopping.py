"""Stopping a consumer loop gracefully: SIGTERM and SIGINT handlers that ask it to finish
what is in flight, shared by the broker sources and the Redis Streams source."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["install_stop_signals"]


def install_stop_signals(first: Callable[[int], None]) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to ``first(signum)``, on the main thread only; returns
    what puts the handlers found back (call it when the loop ends).

    The first signal calls ``first`` (which asks the loop to stop); a second one does
    what the handler found before did, at once: the application's own handler, a
    ``KeyboardInterrupt``, or the default action. That is the hard stop a user pressing
    Ctrl-C twice expects.

    Python-level handlers, not ``loop.add_signal_handler``: removing a loop handler
    would also remove one the application had set on its loop for the same signal.
    """
    if threading.current_thread() is not threading.main_thread():
        return _nothing
    previous: dict[int, Any] = {}
    signalled: list[int] = []

    def restore() -> None:
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError, OSError):
                signal.signal(signum, handler)

    def on_signal(signum: int, frame: Any) -> None:
        if signalled:  # the second: what it did before, now
            restore()
            handler = previous.get(signum)
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)
            return
        signalled.append(signum)
        first(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        found = signal.getsignal(signum)
        if found is None:  # set outside Python: it could not be put back
            continue
        try:
            signal.signal(signum, on_signal)
        except (ValueError, OSError):  # not on this platform
            continue
        previous[signum] = found
    return restore


def _nothing() -> None:
    return None
