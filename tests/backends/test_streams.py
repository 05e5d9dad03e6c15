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


@pytest.fixture
def source(closing: Any) -> Any:
    def make(url: str, stream: str, processor: Any, **options: Any) -> RedisStreamSource:
        return closing(RedisStreamSource(processor, stream, url=url, block=0.05, **options))

    return make


def test_processes_acknowledges_and_dead_letters(
    redis_url: str, stream: str, source: Any, closing: Any
) -> None:
    recorder = Recorder()
    src = source(redis_url, stream, recorder)
    src.ensure_group()
    ids = [src.publish({"n": i}, "poison" if i == 2 else "order") for i in range(5)]
    batch = src.poll()
    assert batch.processed == [ids[0], ids[1], ids[3], ids[4]]
    assert batch.dead_lettered == [ids[2]]
    assert [event for event, _ in recorder.seen] == [{"n": i} for i in range(5)]
    assert src.pending() == 0
    client = closing(redis.Redis.from_url(redis_url, decode_responses=True))
    dead = client.xrange(f"{stream}:dead-letters")
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields["source_id"] == ids[2]
    assert fields["reason"] == "bad payload"
    assert fields["dead_letter_id"] == "41"
    assert fields["event_type"] == "poison"


def test_undecodable_entries_are_dead_lettered_not_dropped(
    redis_url: str, stream: str, source: Any, closing: Any
) -> None:
    src = source(redis_url, stream, Recorder())
    src.ensure_group()
    raw = closing(redis.Redis.from_url(redis_url))
    bad_json = raw.xadd(stream, {"event_type": "x", "event": "{nope"}).decode()
    no_type = raw.xadd(stream, {"event": "{}"}).decode()
    batch = src.poll()
    assert batch.dead_lettered == [bad_json, no_type]
    reasons = [f[b"reason"].decode() for _, f in raw.xrange(f"{stream}:dead-letters")]
    assert "'event' is not JSON" in reasons[0]
    assert "no 'event_type' field" in reasons[1]


def test_a_failed_entry_stays_pending_and_is_reclaimed_by_another_consumer(
    redis_url: str, stream: str, source: Any
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


def test_an_entry_delivered_too_often_is_dead_lettered(
    redis_url: str, stream: str, source: Any
) -> None:
    src = source(redis_url, stream, Recorder(crash_on="order"), claim_idle=0, max_deliveries=2)
    src.ensure_group()
    entry = src.publish({"n": 1}, "order")
    outcomes = [src.poll() for _ in range(3)]
    assert [b.left_pending for b in outcomes] == [[entry], [entry], []]
    assert outcomes[2].dead_lettered == [entry]
    assert src.pending() == 0


def test_run_stops_when_idle_and_counts_what_it_handled(
    redis_url: str, stream: str, source: Any
) -> None:
    src = source(redis_url, stream, Recorder())
    for i in range(7):
        src.publish({"n": i}, "order")
    assert src.run(max_idle_polls=1) == 7


def test_bad_arguments_are_clear_errors(redis_url: str, stream: str, source: Any) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        source(redis_url, stream, Recorder(), batch_size=0)
    with pytest.raises(ConfigError, match="url= or client="):
        RedisStreamSource(Recorder(), stream)
    with pytest.raises(ConfigError, match="event_type"):
        source(redis_url, stream, Recorder()).publish({}, "")


async def test_apoll_awaits_the_processors_async_twin(
    redis_url: str, stream: str, source: Any
) -> None:
    from coordination.integration import CoordinationEventProcessor

    seen: list[int] = []

    async def handle(event: dict[str, int], event_type: str) -> None:
        if event["n"] == 1:
            raise ValueError("cannot handle 1")
        seen.append(event["n"])

    processor = CoordinationEventProcessor(
        handle, error_config={"max_retries": 0}, dead_letter_path=":memory:"
    )
    src = source(redis_url, stream, processor)
    ids = [await src.apublish({"n": n}, "order") for n in range(3)]
    batch = await src.apoll()
    assert batch.processed == [ids[0], ids[2]]
    assert batch.dead_lettered == [ids[1]]
    assert seen == [0, 2]
    assert processor.dead_letters.count() == 1
    assert src.pending() == 0
    await src.aclose()
    processor.close()


async def test_arun_runs_a_sync_processor_in_a_thread(
    redis_url: str, stream: str, source: Any
) -> None:
    recorder = Recorder()
    src = source(redis_url, stream, recorder)
    for n in range(4):
        src.publish({"n": n}, "order")
    assert await src.arun(max_idle_polls=1) == 4
    assert [event for event, _ in recorder.seen] == [{"n": n} for n in range(4)]
    await src.aclose()


def test_run_survives_a_redis_restart(
    private_redis: Any, caplog: pytest.LogCaptureFixture, closing: Any
) -> None:
    recorder = Recorder()
    naps: list[float] = []

    def nap(seconds: float) -> None:  # the loop's wait between attempts: restart Redis
        naps.append(seconds)
        if len(naps) == 1:
            private_redis.start()
            producer = RedisStreamSource(Recorder(), "events", url=private_redis.url)
            producer.publish({"n": 2}, "order")
            producer.client.close()

    src = closing(
        RedisStreamSource(
            recorder, "events", url=private_redis.url, block=0.05, reconnect_interval=0.5, sleep=nap
        )
    )
    src.publish({"n": 1}, "order")
    assert src.poll().processed
    private_redis.stop()
    handled = src.run(stop=lambda: len(recorder.seen) == 2)
    assert handled == 1
    assert naps[0] == 0.5
    assert [event for event, _ in recorder.seen] == [{"n": 1}, {"n": 2}]
    assert src.guard.errors >= 1
    assert len([r for r in caplog.records if "Redis unavailable for stream" in r.message]) == 1
