"""10 000 events, two consumer processes, one killed with SIGKILL halfway: none lost."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from coordination.backends.redis import RedisStreamSource

pytestmark = [pytest.mark.redis, pytest.mark.slow]

WORKER = Path(__file__).with_name("_stream_worker.py")
EVENTS = 10_000


def is_poison(n: int) -> bool:
    return n % 97 == 0


def test_no_event_is_lost_when_a_consumer_is_killed(
    redis_url: str, namespace: str, tmp_path: Path
) -> None:
    stream = f"{namespace}:events"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    producer = RedisStreamSource(object(), stream, url=redis_url)  # type: ignore[arg-type]
    producer.ensure_group()
    with client.pipeline(transaction=False) as pipe:
        for n in range(EVENTS):
            event = {"n": n, "poison": is_poison(n)}
            pipe.xadd(stream, {"event_type": "order", "event": _json(event)})
        pipe.execute()

    def spawn(name: str, hold_after: int = 0) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER),
                    redis_url,
                    stream,
                    name,
                    str(tmp_path),
                    str(hold_after),
                ],
                stdout=log,
                stderr=log,
            )

    # the victim stops mid-batch after a tenth of the events: it is killed while it holds
    # read-but-unacknowledged entries (between two batches it would hold none), so the
    # test proves that what a dead consumer held is reclaimed
    victim, survivor = spawn("victim", hold_after=EVENTS // 10), spawn("survivor")
    dead_stream = f"{stream}:dead-letters"
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "victim.holding").exists():
            assert time.monotonic() < deadline, "the victim never reached its hold"
            assert victim.poll() is None, (tmp_path / "victim.log").read_text()
            assert survivor.poll() is None, (tmp_path / "survivor.log").read_text()
            time.sleep(0.005)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        victim_pending = client.xpending_range(stream, "coordination", "-", "+", 1000, "victim")
        expected = EVENTS - sum(1 for n in range(EVENTS) if is_poison(n))
        while (
            client.scard(f"{stream}:processed") < expected
            or client.xlen(dead_stream) < EVENTS - expected
            or client.xpending(stream, "coordination")["pending"] > 0
        ):
            assert time.monotonic() < deadline, "events were not all handled in time"
            assert survivor.poll() is None, (tmp_path / "survivor.log").read_text()
            time.sleep(0.05)
    finally:
        (tmp_path / "stop").touch()
        for worker in (victim, survivor):
            if worker.poll() is None:
                try:
                    worker.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()

    processed = {int(n) for n in client.smembers(f"{stream}:processed")}
    dead = [fields for _, fields in client.xrange(dead_stream)]
    dead_numbers = {int(_load(f["event"])["n"]) for f in dead}
    assert processed | dead_numbers == set(range(EVENTS))  # every event, counted by id
    assert dead_numbers == {n for n in range(EVENTS) if is_poison(n)}
    assert processed.isdisjoint(dead_numbers)
    assert all("poison event" in f["reason"] for f in dead)
    assert client.xpending(stream, "coordination")["pending"] == 0
    # the kill really left work behind, which the survivor reclaimed
    assert victim.returncode == -signal.SIGKILL
    assert len(victim_pending) > 0


def _json(value: object) -> str:
    import json

    return json.dumps(value)


def _load(text: str) -> dict[str, object]:
    import json

    result: dict[str, object] = json.loads(text)
    return result
