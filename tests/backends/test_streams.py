"""The Streams source: ack after success or dead-lettering, reclaim what a crash left."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from coordination import ConfigError, EventDeadLettered
from coordination.backends.redis import RedisStreamSource

pytestmark = pytest.mark.redis


class Recorder:
    """A processor shaped like CoordinationEventProcessor: dead-letters on 'poison'."""

    def __init__(self, crash_on: str | None = None) -> None:
        self.seen: list[tuple[Any, str]] = []
        self.crash_on = crash_on

    def process_event(self, event_data: Any, event_type: str) -> Any:
        if event_type == self.crash_on:
            raise RuntimeError("handler bug")
        self.seen.append((event_data, event_type))
        if event_type == "poison":
            raise EventDeadLettered(event_type, 41, "bad payload")
        return {"status": "processed"}


@pytest.fixture
def stream(namespace: str) -> str:
    return f"{namespace}:events"


def source(url: str, stream: str, processor: Any, **options: Any) -> RedisStreamSource:
    return RedisStreamSource(processor, stream, url=url, block=0.05, **options)


def test_processes_acknowledges_and_dead_letters(redis_url: str, stream: str) -> None:
    recorder = Recorder()
    src = source(redis_url, stream, recorder)
    src.ensure_group()
    ids = [src.publish({"n": i}, "poison" if i == 2 else "order") for i in range(5)]
    batch = src.poll()
    assert batch.processed == [ids[0], ids[1], ids[3], ids[4]]
    assert batch.dead_lettered == [ids[2]]
    assert [event for event, _ in recorder.seen] == [{"n": i} for i in range(5)]
    assert src.pending() == 0
    dead = redis.Redis.from_url(redis_url, decode_responses=True).xrange(f"{stream}:dead-letters")
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields["source_id"] == ids[2]
    assert fields["reason"] == "bad payload"
    assert fields["dead_letter_id"] == "41"
    assert fields["event_type"] == "poison"


def test_undecodable_entries_are_dead_lettered_not_dropped(redis_url: str, stream: str) -> None:
    src = source(redis_url, stream, Recorder())
    src.ensure_group()
    raw = redis.Redis.from_url(redis_url)
    bad_json = raw.xadd(stream, {"event_type": "x", "event": "{nope"}).decode()
    no_type = raw.xadd(stream, {"event": "{}"}).decode()
    batch = src.poll()
    assert batch.dead_lettered == [bad_json, no_type]
    reasons = [f[b"reason"].decode() for _, f in raw.xrange(f"{stream}:dead-letters")]
    assert "'event' is not JSON" in reasons[0]
    assert "no 'event_type' field" in reasons[1]


def test_a_failed_entry_stays_pending_and_is_reclaimed_by_another_consumer(
    redis_url: str, stream: str
) -> None:
    crashing = source(redis_url, stream, Recorder(crash_on="order"), consumer="a", claim_idle=0)
    crashing.ensure_group()
    entry = crashing.publish({"n": 1}, "order")
    assert crashing.poll().left_pending == [entry]
    assert crashing.pending() == 1
    healthy = Recorder()
    other = source(redis_url, stream, healthy, consumer="b", claim_idle=0)
    batch = other.poll()
    assert batch.reclaimed == [entry]
    assert batch.processed == [entry]
    assert other.pending() == 0
    assert healthy.seen == [({"n": 1}, "order")]


def test_an_entry_delivered_too_often_is_dead_lettered(redis_url: str, stream: str) -> None:
    src = source(redis_url, stream, Recorder(crash_on="order"), claim_idle=0, max_deliveries=2)
    src.ensure_group()
    entry = src.publish({"n": 1}, "order")
    outcomes = [src.poll() for _ in range(3)]
    assert [b.left_pending for b in outcomes] == [[entry], [entry], []]
    assert outcomes[2].dead_lettered == [entry]
    assert src.pending() == 0


def test_run_stops_when_idle_and_counts_what_it_handled(redis_url: str, stream: str) -> None:
    src = source(redis_url, stream, Recorder())
    for i in range(7):
        src.publish({"n": i}, "order")
    assert src.run(max_idle_polls=1) == 7


def test_bad_arguments_are_clear_errors(redis_url: str, stream: str) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        source(redis_url, stream, Recorder(), batch_size=0)
    with pytest.raises(ConfigError, match="url= or client="):
        RedisStreamSource(Recorder(), stream)
    with pytest.raises(ConfigError, match="event_type"):
        source(redis_url, stream, Recorder()).publish({}, "")
