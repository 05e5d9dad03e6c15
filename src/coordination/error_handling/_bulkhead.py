"""The bulkhead: at most ``max_concurrent`` calls of one operation in flight.

One counter serves threads and event loops alike (an operation can be called from both).
A caller that may wait queues up; a leaving call hands its slot straight to the first
waiter (a thread's event, or a future on the waiter's own loop, woken thread-safely), so
no slot is lost or granted twice even when a waiter times out at the same moment.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from .._errors import BulkheadFull

if TYPE_CHECKING:
    import asyncio

__all__ = ["Bulkhead", "Waiter"]


class Waiter:
    """A caller queued for a slot: a thread's event, or a future on the caller's own loop.

    The adaptive limiter (``_adaptive``) queues the same waiters, so both wake them alike."""

    __slots__ = ("event", "future", "granted", "loop")

    def __init__(
        self,
        event: threading.Event | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.event = event
        self.loop = loop
        self.future = future
        self.granted = False

    def wake(self) -> bool:
        """Tell the waiter its slot is granted (thread-safely, from any thread); False when
        its event loop has closed: the waiter is gone, and the caller passes the slot on."""
        if self.event is not None:
            self.event.set()
        elif self.loop is not None and self.future is not None:
            try:
                self.loop.call_soon_threadsafe(_wake, self.future)
            except RuntimeError:
                return False
        return True


def _thread_waiter() -> Waiter:
    return Waiter(event=threading.Event())


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Bulkhead:
    """A concurrency limit; ``enter``/``aenter`` then ``leave``, or raise ``BulkheadFull``."""

    __slots__ = ("_in_flight", "_lock", "_waiters", "max_concurrent", "name", "wait")

    def __init__(self, name: str, max_concurrent: int, wait: float = 0.0) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.wait = wait
        self._in_flight = 0
        self._lock = threading.Lock()
        self._waiters: deque[Waiter] = deque()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _try_enter(self) -> bool:
        if self._in_flight < self.max_concurrent and not self._waiters:
            self._in_flight += 1
            return True
        return False

    def enter(self) -> None:
        waiter = self._join(_thread_waiter)
        if waiter is None:
            return
        try:
            cast(threading.Event, waiter.event).wait(self.wait)
        except BaseException:  # KeyboardInterrupt in the wait: leave the queue, or the slot
            self._abandon(waiter)
            raise
        self._settle(waiter)

    async def aenter(self) -> None:
        import asyncio  # loaded by the async runner already: a lookup, not an import

        loop = asyncio.get_running_loop()
        waiter = self._join(lambda: Waiter(loop=loop, future=loop.create_future()))
        if waiter is None:
            return
        future = cast("asyncio.Future[None]", waiter.future)
        try:
            await asyncio.wait_for(asyncio.shield(future), self.wait)
        except TimeoutError:
            pass
        except BaseException:  # cancelled: a slot handed to us meanwhile is passed on
            self._abandon(waiter)
            raise
        self._settle(waiter)

    def _abandon(self, waiter: Waiter) -> None:
        """A waiter that stops waiting (interrupted, cancelled): out of the queue, or, when
        a slot was granted it meanwhile, that slot passed on (else it would leak)."""
        with self._lock:
            granted = waiter.granted
            if not granted:
                self._waiters.remove(waiter)
        if granted:
            self.leave()

    def _join(self, make_waiter: Callable[[], Waiter]) -> Waiter | None:
        """A free slot (None: the caller holds it), else the queued waiter the caller waits
        on for at most ``wait`` seconds; ``BulkheadFull`` when it may not wait."""
        with self._lock:
            if self._try_enter():
                return None
            if self.wait <= 0:
                raise BulkheadFull(self.name, self.max_concurrent)
            waiter = make_waiter()
            self._waiters.append(waiter)
            return waiter

    def _settle(self, waiter: Waiter) -> None:
        """After waiting: keep a granted slot, or leave the queue and report the bulkhead full."""
        with self._lock:
            if waiter.granted:
                return
            self._waiters.remove(waiter)
        raise BulkheadFull(self.name, self.max_concurrent)

    def leave(self) -> None:
        with self._lock:
            if not self._waiters:
                self._in_flight -= 1
                return
            waiter = self._waiters.popleft()  # the slot passes on; _in_flight is unchanged
            waiter.granted = True
        if not waiter.wake():  # its loop has closed; the waiter is gone, pass the slot on
            self.leave()
