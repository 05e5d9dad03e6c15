"""Worker threads for sync attempts with a timeout: a bounded pool per operation.

A thread cannot be cancelled, so a sync attempt with a ``timeout`` runs on a worker and the
caller stops waiting at the deadline; the attempt runs on to its end. One shared pool
would let one operation's hung attempts take every worker and make every other
operation time out without running (and open their breakers). So each operation gets
its own pool, the model being resilience4j's ``ThreadPoolBulkhead``:

- at most ``workers`` threads, started on demand and ended after ``KEEP_ALIVE`` idle
  seconds, so an idle operation costs no thread and the number of pools is bounded by
  the handler's operation names (``max_operation_names``);
- an attempt needs a free worker; when every one is busy (typically with hung attempts)
  it waits up to ``wait`` seconds for one (the bounded queue: each waiter is a caller
  blocked in ``run``), then is refused with ``BulkheadFull``;
- the attempt's deadline starts when a worker starts running it, not when it asked;
- a worker's slot, and the operation bulkhead's slot an abandoned attempt still holds,
  are released by the worker when the attempt really ends (``on_end``);
- daemon threads: a hung attempt never keeps the interpreter alive at exit.
"""

from __future__ import annotations

import contextvars
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .._errors import BulkheadFull
from ._bulkhead import Bulkhead
from ._cancellation import Cancellation

__all__ = ["KEEP_ALIVE", "Abandoned", "Attempt", "AttemptPool", "default_workers"]

KEEP_ALIVE = 10.0  # seconds an idle worker waits for the next attempt before it ends


def default_workers() -> int:
    """Workers per operation when neither ``timeout_workers`` nor ``max_concurrent`` is
    set: what ``ThreadPoolExecutor`` gives a whole process, now for each operation."""
    return min(32, (os.cpu_count() or 1) + 4)


class Abandoned(Exception):
    """The caller stopped waiting for an attempt that is still running."""


class Attempt:
    """One attempt handed to a worker: the call, then its outcome or its abandonment."""

    __slots__ = (
        "args",
        "began",
        "context",
        "ended",
        "error",
        "func",
        "kwargs",
        "lock",
        "on_end",
        "result",
        "wake",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        wake: threading.Event | None = None,
    ) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.context = contextvars.copy_context()  # the caller's contextvars, inside
        # set when it ends (or when the caller is cancelled); hedged attempts share one
        self.wake = threading.Event() if wake is None else wake
        self.lock = threading.Lock()
        self.ended = False
        self.began: float | None = None  # time.monotonic() when a worker started it
        self.result: Any = None
        self.error: BaseException | None = None
        self.on_end: Callable[[], None] | None = None  # set when abandoned

    def run(self) -> Callable[[], None] | None:
        """Run it, wake the caller; the ``on_end`` to call if the caller abandoned it."""
        self.began = time.monotonic()
        try:
            self.result = self.context.run(self.func, *self.args, **self.kwargs)
        except BaseException as exc:  # handed to the caller, who decides
            self.error = exc
        with self.lock:
            self.ended = True
            callback, self.on_end = self.on_end, None
        self.wake.set()
        return callback

    def abandon(self, on_end: Callable[[], None] | None) -> bool:
        """The caller stops waiting: ``on_end`` runs when the attempt really ends. False
        when it has already ended (then nothing is registered: take its outcome)."""
        with self.lock:
            if self.ended:
                return False
            self.on_end = on_end
            return True

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class AttemptPool:
    """The worker threads of one operation (see the module docstring).

    >>> pool = AttemptPool("geo", workers=2)
    >>> pool.run(len, ("abc",), {}, timeout=1.0)
    3
    """

    __slots__ = ("_closed", "_idle", "_jobs", "_lock", "_slots", "_threads", "name", "workers")

    def __init__(self, name: str, workers: int, wait: float = 0.0) -> None:
        self.name = name
        self.workers = workers
        self._slots = Bulkhead(name, workers, wait)  # one slot per busy worker
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        self._idle = 0  # workers waiting for a job that no submitter has claimed yet
        self._threads = 0
        self._closed = False

    @property
    def busy(self) -> int:
        """Workers running an attempt (finished or abandoned by its caller)."""
        return self._slots.in_flight

    @property
    def threads(self) -> int:
        return self._threads

    def start(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        wake: threading.Event | None = None,
    ) -> Attempt:
        """Hand the attempt to a worker, or raise ``BulkheadFull`` when none frees up
        within ``wait`` seconds. ``wake``: the event its end sets (the attempts of one
        hedged call share one, so their caller waits for whichever ends first)."""
        try:
            self._slots.enter()
        except BulkheadFull as exc:
            exc.add_note(
                f"coordination: all {self.workers} timeout workers of {self.name!r} are "
                "busy (attempts that timed out keep running until they return)"
            )
            raise
        attempt = Attempt(func, args, kwargs, wake)
        try:
            self._dispatch(attempt)
        except BaseException:
            self._slots.leave()
            raise
        return attempt

    def run(
        self,
        func: Callable[..., Any],
        args: Any,
        kwargs: Any,
        timeout: float,
        on_end: Callable[[], None] | None = None,
        cancellation: Cancellation | None = None,
    ) -> Any:
        """``func(*args, **kwargs)`` on a worker, waited for at most ``timeout`` seconds
        from the moment it starts running. Raises ``Abandoned`` when the caller stopped
        waiting (the deadline, or ``cancellation``): ``on_end`` then runs
        when the attempt really ends. When it ended in time, ``on_end`` is not used."""
        return self.finish(self.start(func, args, kwargs), timeout, on_end, cancellation)

    def finish(
        self,
        attempt: Attempt,
        timeout: float,
        on_end: Callable[[], None] | None = None,
        cancellation: Cancellation | None = None,
    ) -> Any:
        """The second half of ``run``: wait for a started attempt, take its outcome."""
        if wait_for(attempt, timeout, cancellation) or not attempt.abandon(on_end):
            return attempt.outcome()
        raise Abandoned

    def close(self) -> None:
        """End the idle workers now and the busy ones when their attempt ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._jobs.put(None)

    # --- workers ----------------------------------------------------------------------

    def _dispatch(self, attempt: Attempt) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                self._jobs.put(attempt)  # under the lock: a claimed worker always gets one
                return
            self._threads += 1
        try:
            thread = threading.Thread(
                target=self._work,
                args=(attempt,),
                name=f"coordination-timeout-{self.name}"[:60],
                daemon=True,
            )
            thread.start()
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise

    def _work(self, attempt: Attempt | None) -> None:
        # ``_threads`` is lowered under the same lock as the decision to end, so a
        # submitter never counts a worker that is on its way out
        while attempt is not None:
            on_end = attempt.run()
            with self._lock:  # idle before the slot is free, so no new thread is needed
                closing = self._closed
                if closing:
                    self._threads -= 1
                else:
                    self._idle += 1
            self._slots.leave()  # the attempt has really ended: its worker is free
            if on_end is not None:
                on_end()  # after the worker's slot: a caller it admits finds a worker
            attempt = None if closing else self._next()

    def _next(self) -> Attempt | None:
        """The next attempt for this idle worker (already counted in ``_idle``), or None
        (and the worker is no longer counted) when it has been idle for ``KEEP_ALIVE``
        seconds or the pool closed."""
        try:
            attempt = self._jobs.get(timeout=KEEP_ALIVE)
        except queue.Empty:
            with self._lock:
                if self._idle > 0:  # nobody claimed an idle worker: this one may go
                    self._idle -= 1
                    self._threads -= 1
                    return None
            attempt = self._jobs.get()  # claimed at the moment we timed out: it is coming
        if attempt is None:  # close(): it already took this worker off the idle count
            with self._lock:
                self._threads -= 1
        return attempt


def wait_for(attempt: Attempt, timeout: float, cancellation: Cancellation | None = None) -> bool:
    """Wait until ``attempt`` ends, at most ``timeout`` seconds after it began running
    (time before a worker picked it up does not count), and no longer than
    ``cancellation`` allows. True when it ended."""
    if cancellation is not None:
        cancellation.watch(attempt.wake)
    try:
        seconds = timeout
        while True:
            if cancellation is not None:
                left = cancellation.remaining()
                if cancellation.cancelled:
                    return attempt.ended
                if left is not None:
                    seconds = min(seconds, left)
            if attempt.wake.wait(seconds) and attempt.ended:
                return True
            began = attempt.began
            if began is None:
                seconds = timeout  # not started yet: its deadline has not begun
                continue
            seconds = began + timeout - time.monotonic()
            if seconds <= 0:
                return attempt.ended
    finally:
        if cancellation is not None:
            cancellation.unwatch(attempt.wake)
