"""Real consumer processes: one SIGKILLed while it holds unacknowledged messages and
restarted (3 000 events, a poison one in every 100: none lost), one stopped by SIGTERM
mid-event (it finishes the event, acknowledges it, gives the rest back, exits 0)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordination.integration import CoordinationEventProcessor, DeadLetter

from .conftest import Amqp

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

WORKER = Path(__file__).with_name("_worker.py")
PREFETCH = 100  # the worker's
EVENTS = 3000


def is_poison(n: int) -> bool:
    return n % 100 == 37


def body(n: int) -> bytes:
    return f"poison #{n}: not JSON".encode() if is_poison(n) else b'{"n": %d}' % n


def spawn(
    url: str, queue: str, folder: Path, *, hold: int = 0, seconds: float = 0.0, idle: int = 8
) -> subprocess.Popen[bytes]:
    with (folder / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                url,
                queue,
                str(folder),
                str(hold),
                str(seconds),
                str(idle),
            ],
            stdout=log,
            stderr=log,
        )


def wait_for(path: Path, worker: subprocess.Popen[bytes], folder: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert worker.poll() is None, (folder / "worker.log").read_text()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


def dead_letters(folder: Path) -> list[DeadLetter]:
    reader = CoordinationEventProcessor(dead_letter_path=str(folder / "dead.sqlite"))
    try:
        return reader.dead_letters.list(limit=EVENTS)
    finally:
        reader.dead_letters.close()


def processed(folder: Path) -> list[int]:
    log = folder / "processed.log"
    return [int(line) for line in log.read_text().split()] if log.exists() else []


def test_a_killed_consumer_loses_nothing(
    queue: str, amqp: Amqp, rabbitmq_url: str, tmp_path: Path
) -> None:
    amqp.declare(queue)
    amqp.publish_many(queue, [(body(n), {"event-type": "order"}) for n in range(EVENTS)])
    assert amqp.settled(queue, (EVENTS, 0)) == (EVENTS, 0)

    victim = spawn(rabbitmq_url, queue, tmp_path, hold=EVENTS // 3)
    try:
        wait_for(tmp_path / "holding", victim, tmp_path, 60)
        ready, consumers = amqp.depth(queue)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    done_before = len(processed(tmp_path))
    poisoned_before = dead_letters(tmp_path)
    # what the victim held unacknowledged when it was killed: neither ready nor settled
    held = EVENTS - ready - done_before - len(poisoned_before)
    assert consumers == 1
    assert held > 0, (ready, done_before, len(poisoned_before))

    survivor = spawn(rabbitmq_url, queue, tmp_path)
    try:
        survivor.wait(90)
    finally:
        if survivor.poll() is None:
            survivor.kill()
            survivor.wait()
    output = (tmp_path / "worker.log").read_text()
    assert survivor.returncode == 0, output

    good = {n for n in range(EVENTS) if not is_poison(n)}
    numbers = processed(tmp_path)
    assert set(numbers) == good  # every good event, at least once
    duplicates = len(numbers) - len(set(numbers))
    assert duplicates <= PREFETCH
    letters = dead_letters(tmp_path)
    dead = {int(letter.event["body"].split("#")[1].split(":")[0]) for letter in letters}
    assert dead == {n for n in range(EVENTS) if is_poison(n)}  # every poison one, once
    assert len(letters) == len(dead)
    assert all(letter.reason.startswith("poison") for letter in letters)
    # empty, and no consumer: nothing can be held unacknowledged
    assert amqp.settled(queue, (0, 0)) == (0, 0)
    print(  # the figures the report quotes (pytest -s)
        f"kill test: {done_before} processed before the kill, {len(numbers)} in all, "
        f"{duplicates} duplicate(s), {len(letters)} poison dead-lettered, "
        f"{held} held unacknowledged at the kill"
    )


def test_sigterm_finishes_the_event_in_flight_and_gives_back_the_rest(
    queue: str, amqp: Amqp, rabbitmq_url: str, tmp_path: Path
) -> None:
    amqp.declare(queue)
    amqp.publish_many(queue, [(b'{"n": %d}' % n, {"event-type": "order"}) for n in range(30)])
    worker = spawn(rabbitmq_url, queue, tmp_path, seconds=0.3, idle=1000)
    try:
        wait_for(tmp_path / "started", worker, tmp_path, 30)  # inside its first event
        worker.send_signal(signal.SIGTERM)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = (tmp_path / "worker.log").read_text()
    assert worker.returncode == 0, output
    assert "SIGTERM received" in output
    numbers = processed(tmp_path)
    assert numbers
    assert numbers == sorted(set(numbers))
    # what it finished is acknowledged; the rest (prefetched too) is back, none held
    assert amqp.settled(queue, (30 - len(numbers), 0)) == (30 - len(numbers), 0)
    assert "Traceback" not in output
