"""Publishing through one broker source from two event loops at once: a sync ``publish``
(the source's private loop) and an ``apublish`` on another thread's loop, taking turns.
One publishing slot made each loop take it from the other, dropping the other's
connection unclosed and opening a new one: a leaked connection per turn."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


def publish_from_two_loops(source: Any, opener: str, events: int = 40) -> list[Any]:
    """Publish ``events`` events, the two loops taking turns, then close both loops'
    connections (``aclose()`` on the thread's loop, ``close()`` for the private one).
    Returns what the source's ``opener`` method opened meanwhile."""
    opened: list[Any] = []
    open_link = getattr(source, opener)

    async def counted_open() -> Any:
        link = await open_link()
        opened.append(link)
        return link

    setattr(source, opener, counted_open)
    other = asyncio.new_event_loop()
    running = threading.Thread(target=other.run_forever)
    running.start()

    def on_other(coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, other).result(10)

    try:
        for n in range(0, events, 2):
            source.publish({"n": n}, "order")
            on_other(source.apublish({"n": n + 1}, "order"))
        on_other(source.aclose())
        source.close()
    finally:
        other.call_soon_threadsafe(other.stop)
        running.join(10)
        other.close()
    return opened
