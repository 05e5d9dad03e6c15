"""A consumer process for test_processes.py (run as a script).

Feeds ``CoordinationEventProcessor`` (dead letters in ``<dir>/dead.sqlite3``) from the
stream (AckWait ``ack_wait``); the handler appends each event's number to
``<dir>/processed`` (one line each, flushed) after ``delay`` seconds, and writes
``<dir>/started`` first. Given ``hold_after``,
the handler stops at that event (its batch fetched, not acknowledged), says so in
``<dir>/holding`` and waits there to be killed. Runs until SIGTERM or ``<dir>/stop``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from coordination.backends.nats import NatsJetStreamSource
from coordination.integration import CoordinationEventProcessor


def main(url: str, stream: str, folder: str, hold_after: str, delay: str, ack_wait: str) -> None:
    here = Path(folder)
    handled = 0
    processed = (here / "processed").open("a", encoding="utf-8")

    def handle(event: dict[str, Any], event_type: str) -> None:
        nonlocal handled
        handled += 1
        (here / "started").touch()
        if handled == int(hold_after):
            (here / "holding").touch()
            while True:  # holding this batch, unacknowledged, until killed
                time.sleep(1)
        time.sleep(float(delay))
        processed.write(f"{event['n']}\n")
        processed.flush()

    processor = CoordinationEventProcessor(
        handle, error_config={"max_retries": 0}, dead_letter_path=str(here / "dead.sqlite3")
    )
    source = NatsJetStreamSource(
        processor,
        f"{stream}.events",
        stream=stream,
        durable="workers",
        url=url,
        ack_wait=float(ack_wait),
        poll_timeout=0.2,
    )
    stop = here / "stop"
    source.run(stop=stop.exists)
    print(f"stopped: {source.status()}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:7])
