"""The process-wide timer that reports an open period's end (OPEN -> HALF_OPEN) on time.

A breaker on the real clock (``time.monotonic``) that opens asks it to look at the breaker
again when the open period ends; the breaker then makes the transition and calls its
``on_transition`` hook, so a dashboard or an alert sees HALF_OPEN when it happens, not
only at the next call. One daemon thread for the whole process, started with the first
open breaker; a heap of deadlines; weak references, so a forgotten breaker is not kept
alive by its pending deadline. Each breaker keeps at most one pending look (the earliest),
so the heap holds about one entry per open breaker. Breakers on an injected clock (tests,
simulations) never use it: reading their state or the next call makes the transition,
reported the same way, exactly once.

A transition hook runs on this thread when the timer makes the transition: a slow hook
delays the other breakers' reports (never a call).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import weakref
from typing import Protocol

__all__ = ["OpenTimer", "open_timer"]


class _Timed(Protocol):
    def _open_period_over(self, due: float) -> None: ...


class OpenTimer:
    """Deadlines (monotonic seconds) of open breakers, looked at by one daemon thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, weakref.ReferenceType[_Timed]]] = []
        self._order = itertools.count()  # ties broken by arrival, never by comparing refs
        self._wake = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def schedule(self, due: float, breaker: _Timed) -> None:
        """Call ``breaker._open_period_over(due)`` on the timer's thread at ``due``."""
        with self._wake:
            entry = (due, next(self._order), weakref.ref(breaker))
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(
                    target=self._run, name="coordination-breaker-timer", daemon=True
                )
                self._thread.start()
            if self._heap[0] is entry:  # sooner than what the thread waits for
                self._wake.notify()

    def pending(self, breaker: object | None = None) -> int:
        """Deadlines not yet looked at, of ``breaker`` or of all (tests, diagnostics)."""
        with self._wake:
            if breaker is None:
                return len(self._heap)
            return sum(1 for _, _, ref in self._heap if ref() is breaker)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap:
                    self._wake.wait()
                due = self._heap[0][0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                _, _, ref = heapq.heappop(self._heap)
            breaker = ref()
            if breaker is None:
                continue
            try:
                breaker._open_period_over(due)
            except Exception:  # never let one breaker's hook end the others' timer
                from .._logging import component_logger, log_extra

                component_logger("error_handling").exception(
                    "breaker timer: reporting the end of an open period failed",
                    extra=log_extra(getattr(breaker, "name", None)),
                )
            del breaker


_timer: OpenTimer | None = None
_made = threading.Lock()


def open_timer() -> OpenTimer:
    """The process's timer (made on first use)."""
    global _timer
    timer = _timer
    if timer is None:
        with _made:
            timer = _timer
            if timer is None:
                timer = _timer = OpenTimer()
    return timer
