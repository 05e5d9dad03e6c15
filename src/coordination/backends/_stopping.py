"""Stopping a source's consume loop: ``stop()`` from any thread, SIGTERM and SIGINT.

Every source (the broker sources of ``_source.py``, ``RedisStreamSource``) stops the same
way, so the pieces are written once here:

* ``RunStop``: one run at a time per source, and the stop asked of it. A stop asked
  before a run starts makes that run return at once; it is used up when a run *ends*,
  never when one starts, where it could be lost to a run still starting.
* ``install_stop_signals``: the first SIGTERM or SIGINT (main thread only) asks for a
  graceful stop; a second does what the handler found before did (``KeyboardInterrupt``
  for SIGINT's default): a hung handler cannot hold the process.
* ``unless_woken``: an await (a fetch, a reconnect pause) cut short by the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .._logging import log_extra

__all__ = [
    "RunStop",
    "install_loop_signal_handlers",
    "install_stop_signals",
    "log_signal",
    "refuse_inside_a_loop",
    "unless_woken",
]

T = TypeVar("T")


class RunStop:
    """The stop of one source, asked from any thread or a signal handler, seen by its run.

    A run calls ``begin`` (refused while another runs) and ``end``; an asyncio run gets
    ``wake``, set by ``stop()`` through its loop; a synchronous run gives ``on_stop``,
    called by ``stop()`` on the caller's thread (so it must be quick and signal-safe)."""

    __slots__ = ("_lock", "_loop", "_on_stop", "_running", "asked", "wake")

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.wake: asyncio.Event | None = None  # set while an asyncio run is going
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_stop: Callable[[], None] | None = None
        self._running = False
        self._lock = threading.Lock()

    def is_set(self) -> bool:
        return self.asked.is_set()

    @property
    def running(self) -> bool:
        """A run has begun and not ended."""
        return self._running

    def begin(
        self,
        owner: object,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        """Start a run (on ``loop`` when it is an asyncio one); RuntimeError if one runs."""
        with self._lock:  # held for a few lines, never across a wait
            if self._running:
                raise RuntimeError(
                    f"this {type(owner).__name__} is already running: one run() or arun() at "
                    "a time (make a source per consumer)"
                )
            self._running = True
            self._loop, self._on_stop = loop, on_stop
            self.wake = asyncio.Event() if loop is not None else None

    def end(self) -> None:
        with self._lock:
            self._running = False
            self._loop = self.wake = self._on_stop = None
            # A stop asked for before this run started (or while it ran) is used up here,
            # not at the start, where it could be lost to a run still starting.
            self.asked.clear()

    def stop(self) -> None:
        """Ask the running run (or the next one) to finish what is in flight and return."""
        self.asked.set()
        loop, wake, on_stop = self._loop, self.wake, self._on_stop
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(wake.set)
        if on_stop is not None:
            on_stop()


async def unless_woken(start: Callable[[], Awaitable[T]], wake: asyncio.Event) -> T | None:
    """``start()``'s result, or None when ``wake`` is set first: it is then cancelled and
    waited for, so nothing it began outlives the call (and it is not started at all when
    ``wake`` is already set). A result and a wake at the same moment: the result wins,
    so nothing fetched is dropped."""
    if wake.is_set():
        return None
    work = asyncio.ensure_future(start())
    woken = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait((work, woken), return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
        if not work.done():  # woken, or this task cancelled: the work does not outlive it
            work.cancel()
            await asyncio.wait((work,))  # a cancel of this task still propagates
    if work.cancelled():
        return None
    return work.result()


def install_stop_signals(first: Callable[[int], None]) -> Callable[[], None]:
    """On the main thread, make SIGTERM and SIGINT call ``first(signum)`` (from the signal
    handler: it must only hand the stop on — schedule a callback, put on a queue);
    a second signal does what the handler found before did. Returns what puts those
    back; elsewhere than on the main thread, it installs nothing.

    Python-level handlers, not ``loop.add_signal_handler``: removing a loop handler would
    also remove one the application had set on its loop for the same signal.
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


def install_loop_signal_handlers(
    loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None]
) -> Callable[[], None]:
    """``install_stop_signals`` for a run on ``loop``: the first signal is handed to
    the loop, where ``on_signal(signum)`` runs (it may log, and stop)."""

    def first(signum: int) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(on_signal, signum)

    return install_stop_signals(first)


def log_signal(logger: logging.Logger, broker: str, signum: int) -> None:
    """The warning a graceful stop on a signal logs (never from the handler itself)."""
    name = signal.Signals(signum).name
    logger.warning(
        "%s source: %s received; finishing the messages in flight, then stopping",
        broker,
        name,
        extra=log_extra(broker=broker, signal=name),
    )


def refuse_inside_a_loop(name: str, instead: str) -> None:
    """A ``RuntimeError`` when called on a running event loop: a blocking ``run()``
    there would stall every other task on it until the source stops."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"{name}() was called inside a running event loop: await {instead}() there")


def _nothing() -> None:
    return None
