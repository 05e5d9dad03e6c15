"""A consumer process for test_stream_kill.py (run as a script).

Feeds ``CoordinationEventProcessor`` from the stream; the handler records each event's
number in a Redis set, and events marked ``poison`` fail, so the processor dead-letters
them. Runs until ``<dir>/stop`` exists. Given ``hold_after``, the consumer stops in the
middle of handling its event number ``hold_after`` (its batch read, not acknowledged),
says so in ``<dir>/<consumer>.holding`` and waits there to be killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import redis

from coordination.backends.redis import RedisStreamSource
from coordination.integration import CoordinationEventProcessor


def main(url: str, stream: str, consumer: str, folder: str, hold_after: str = "0") -> None:
    done_key = f"{stream}:processed"
    client = redis.Redis.from_url(url)
    handled = 0

    def handle(event: dict[str, Any], event_type: str) -> None:
        nonlocal handled
        handled += 1
        if handled == int(hold_after):
            (Path(folder) / f"{consumer}.holding").touch()
            while True:  # holding this batch's entries, unacknowledged, until killed
                time.sleep(1)
        if event.get("poison"):
            raise ValueError(f"poison event {event['n']}")
        client.sadd(done_key, event["n"])

    processor = CoordinationEventProcessor(
        handle, error_config={"max_retries": 0}, dead_letter_path=":memory:"
    )
    source = RedisStreamSource(
        processor, stream, url=url, consumer=consumer, batch_size=50, block=0.1, claim_idle=1.0
    )
    stop = Path(folder) / "stop"
    source.run(stop=stop.exists)


if __name__ == "__main__":
    main(*sys.argv[1:6])
