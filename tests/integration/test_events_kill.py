"""The at-least-once contract, proven: a child process is killed by SIGKILL mid-batch, and
every input still ends processed or dead-lettered (then replay processes the rest), with
the journal in SQLite and in PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from coordination import CoordinationConfig
from coordination.integration import CoordinationEventProcessor

from .dead_letter_stores import StoreLocation

N_EVENTS = 300

CHILD = """
import os, sys, time
from coordination import CoordinationConfig
from coordination.integration import CoordinationEventProcessor

db, log, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

def handle(event, event_type):
    if event["id"] % 7 == 3:
        raise ValueError("poison event")
    os.write(fd, b"%d\\n" % event["id"])
    time.sleep(0.002)  # slow enough that the parent's kill lands mid-batch

processor = CoordinationEventProcessor(
    handle, dead_letter_path=db, error_config={"max_retries": 0}
)
processor.process_batch([{"id": i} for i in range(n)], "job")
os.write(fd, b"done\\n")
"""


def _processed(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_sigkill_mid_batch_loses_no_event(
    tmp_path: Path, clean_environment: None, store_location: StoreLocation
) -> None:
    db, log = store_location.location, tmp_path / "processed.log"
    namespace = store_location.namespace
    env = {
        **os.environ,
        "COORDINATION_BASE_DELAY": "0",
        "COORDINATION_DEAD_LETTER_NAMESPACE": namespace,
    }
    child = subprocess.Popen([sys.executable, "-c", CHILD, db, str(log), str(N_EVENTS)], env=env)
    deadline = time.monotonic() + 60
    while len(_processed(log)) < 40 and time.monotonic() < deadline:
        assert child.poll() is None, "the child finished or failed before it could be killed"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    processed_before = _processed(log)
    assert "done" not in processed_before
    assert 40 <= len(processed_before) < N_EVENTS

    done: list[int] = []

    def handle(event: Any, event_type: str) -> None:
        if event["id"] % 7 == 3:
            raise ValueError("poison event")
        done.append(event["id"])

    # Opening the store turns the dead child's journal entries into dead letters. (The
    # replay below starts with the poison events: a high breaker threshold keeps their
    # run of failures from opening the breaker against the healthy ones after them.)
    processor = CoordinationEventProcessor(
        handle,
        dead_letter_path=db,
        error_config={"max_retries": 0},
        config=CoordinationConfig(
            circuit_breaker_threshold=N_EVENTS, dead_letter_namespace=namespace
        ),
    )
    try:
        _recovered_and_replayed(processor, processed_before, done)
    finally:
        processor.close()


def _recovered_and_replayed(
    processor: CoordinationEventProcessor, processed_before: list[str], done: list[int]
) -> None:
    # PostgreSQL drops the killed session's lock a moment after its socket closes: a
    # processor opened in that moment finds the rows still owned; look again briefly.
    deadline = time.monotonic() + 30
    while processor.dead_letters.pending_count() and time.monotonic() < deadline:
        time.sleep(0.02)
        processor.dead_letters.recover_interrupted()
    letters = processor.dead_letters.list(limit=N_EVENTS)
    dead_ids = {letter.event["id"] for letter in letters}
    processed_ids = {int(line) for line in processed_before}
    assert processed_ids | dead_ids == set(range(N_EVENTS))
    assert {letter.reason for letter in letters} == {"failed", "interrupted"}
    assert processor.dead_letters.pending_count() == 0

    # Replay runs what was interrupted; only the poison events stay dead letters.
    processor.dead_letters.replay(limit=N_EVENTS)
    assert processed_ids | set(done) == {i for i in range(N_EVENTS) if i % 7 != 3}
    left = {letter.event["id"] for letter in processor.dead_letters.list(limit=N_EVENTS)}
    assert left == {i for i in range(N_EVENTS) if i % 7 == 3}
