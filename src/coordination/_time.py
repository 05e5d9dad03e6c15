"""The clock and sleep functions every component takes, so tests never really wait.

Durations always come from a monotonic clock; wall-clock time is used only for
timestamps shown to people (reports, health documents).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias

Clock: TypeAlias = Callable[[], float]
Sleep: TypeAlias = Callable[[float], None]
AsyncSleep: TypeAlias = Callable[[float], Awaitable[None]]

monotonic: Clock = time.monotonic
perf_counter: Clock = time.perf_counter
sleep: Sleep = time.sleep


async def async_sleep(seconds: float) -> None:
    """``asyncio.sleep``; asyncio is imported when first awaited, not with the library."""
    import asyncio

    await asyncio.sleep(seconds)


def utc_timestamp() -> str:
    """ISO-8601 wall-clock time in UTC, for reports and health documents."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()
