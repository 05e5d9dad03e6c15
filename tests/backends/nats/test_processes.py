"""Real consumer processes: SIGTERM finishes what is in flight; SIGKILL loses nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from coordination.integration import CoordinationEventProcessor

from .conftest import admin, consumer_info

pytestmark = [pytest.mark.nats, pytest.mark.slow]

WORKER = Path(__file__).with_name("_worker.py")


def spawn(
    url: str,
    stream: str,
    folder: Path,
    hold_after: int = 0,
    delay: float = 0.0,
    ack_wait: float = 2.0,
) -> Any:
    with (folder / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                url,
                stream,
                str(folder),
                str(hold_after),
                str(delay),
                str(ack_wait),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def is_poison(n: int) -> bool:
    return n % 100 == 37


async def publish(url: str, stream: str, count: int) -> None:
    """``count`` events on a fresh stream (work-queue, as a source would make it); one in
    every hundred is poison (not JSON)."""
    nc = await admin(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.events"], retention="workqueue")
        for n in range(count):
            body = b"\xff poison" if is_poison(n) else json.dumps({"n": n}).encode()
            await js.publish_async(f"{stream}.events", body, headers={"event-type": "order"})
            if n % 500 == 499:
                await js.publish_async_completed()
        await js.publish_async_completed()
    finally:
        await nc.close()


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def processed(folder: Path) -> list[int]:
    path = folder / "processed"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_sigterm_finishes_the_event_in_flight_and_gives_the_rest_back(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    streams.append(unique_name)
    asyncio.run(publish(nats_url, unique_name, 20))
    # AckWait 30 s: what the second worker gets within 15 s was given back (NAKed)
    worker = spawn(nats_url, unique_name, tmp_path, delay=0.5, ack_wait=30.0)
    try:
        wait_for((tmp_path / "started").exists, 30, "the first event to start")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        worker.kill()
        worker.wait()
    done = processed(tmp_path)
    log = (tmp_path / "worker.log").read_text()
    assert 1 <= len(done) < 19, log
    assert "SIGTERM received; finishing the messages in flight" in log
    assert f"'processed': {len(done)}, " in log
    assert f"'requeued': {20 - len(done)}, " in log

    second = spawn(nats_url, unique_name, tmp_path, ack_wait=30.0)
    try:
        wait_for(lambda: len(processed(tmp_path)) >= 20, 15, "the rest, given back")
        (tmp_path / "stop").touch()
        assert second.wait(timeout=20) == 0
    finally:
        second.kill()
        second.wait()
    assert sorted(processed(tmp_path)) == list(range(20))  # the one in flight: acked, once
    info = consumer_info(nats_url, unique_name, "workers")
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


def test_no_event_is_lost_when_the_consumer_is_killed(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    events = 3000
    streams.append(unique_name)
    asyncio.run(publish(nats_url, unique_name, events))
    good = {n for n in range(events) if not is_poison(n)}

    first = spawn(nats_url, unique_name, tmp_path, hold_after=1000)
    try:
        wait_for((tmp_path / "holding").exists, 60, "the first worker to hold a batch")
        before = consumer_info(nats_url, unique_name, "workers")
        assert before.num_ack_pending > 0  # it holds fetched, unacknowledged messages
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
        first.wait()
    seen_before = len(processed(tmp_path))
    assert 900 <= seen_before < len(good)

    second = spawn(nats_url, unique_name, tmp_path)
    try:

        def drained() -> bool:
            info = consumer_info(nats_url, unique_name, "workers")
            return (
                info.num_pending == 0
                and info.num_ack_pending == 0
                and set(processed(tmp_path)) >= good
            )

        wait_for(drained, 90, "every message to be settled")
        (tmp_path / "stop").touch()
        assert second.wait(timeout=20) == 0
    finally:
        second.kill()
        second.wait()

    done = processed(tmp_path)
    assert set(done) == good
    duplicates = sum(count - 1 for count in Counter(done).values())
    assert duplicates <= 100, f"{duplicates} events processed twice (prefetch is 100)"
    store = CoordinationEventProcessor(dead_letter_path=str(tmp_path / "dead.sqlite3"))
    try:
        letters = store.dead_letters.list(limit=1000)
    finally:
        store.dead_letters.close()
    assert len(letters) == events // 100
    assert all(letter.reason.startswith("poison: the body is not UTF-8") for letter in letters)
    info = consumer_info(nats_url, unique_name, "workers")
    assert info.num_pending == 0
    assert info.num_ack_pending == 0
    print(f"kill test: {seen_before} processed before the kill, {duplicates} twice")
