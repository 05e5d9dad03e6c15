"""A consumer process for the kill and SIGTERM tests (run as a script).

    python _worker.py <url> <queue> <folder> <hold_after> <handler_seconds> <idle_polls>

Feeds ``CoordinationEventProcessor`` from ``queue`` through ``RabbitMQSource`` (prefetch
100), its dead letters in ``<folder>/dead.sqlite``. The handler appends each event's
number to ``<folder>/processed.log`` once it is done (one ``write`` on an O_APPEND file:
a SIGKILL loses no line the handler finished). It touches ``<folder>/started`` at its
first event; at its event number ``hold_after`` (if not 0) it touches
``<folder>/holding`` and waits there, holding its prefetched messages unacknowledged,
until it is killed. It exits after ``idle_polls`` empty polls, or on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from coordination.backends.rabbitmq import RabbitMQSource
from coordination.integration import CoordinationEventProcessor

PREFETCH = 100


def main(url: str, queue: str, folder: str, hold_after: str, seconds: str, idle: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    where = Path(folder)
    log = os.open(where / "processed.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    handled = 0
    hold, pause = int(hold_after), float(seconds)

    async def handle(event: dict[str, Any], event_type: str) -> None:
        nonlocal handled
        handled += 1
        if handled == 1:
            (where / "started").touch()
        if handled == hold:
            (where / "holding").touch()
            # holding this message and the prefetched ones, until killed
            await asyncio.Event().wait()
        if pause:
            await asyncio.sleep(pause)
        os.write(log, f"{event['n']}\n".encode())

    processor = CoordinationEventProcessor(
        handle, error_config={"max_retries": 0}, dead_letter_path=str(where / "dead.sqlite")
    )
    source = RabbitMQSource(processor, queue, url, prefetch=PREFETCH, poll_timeout=0.25)
    settled = source.run(max_idle_polls=int(idle))
    print(f"settled {settled}: {source.status()}", flush=True)
    processor.dead_letters.close()


if __name__ == "__main__":
    main(*sys.argv[1:7])
