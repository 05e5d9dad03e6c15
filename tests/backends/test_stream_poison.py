"""Poison entries in a Redis stream, on the real Redis: each is dead-lettered alone and at
once (XACK and the dead-letter copy in one MULTI/EXEC), and every consumer keeps going.

Before, one entry that was not UTF-8 (or JSON nested deeper than the decoder goes) made the
whole read raise: every consumer that read it crashed in turn, and its healthy neighbours
were redelivered until they were dead-lettered as "delivered more than 5 times"."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination import CoordinationConfig
from coordination.backends.redis import RedisStreamSource
from coordination.backends.redis._stream_entries import decode
from coordination.integration import CoordinationEventProcessor

POISON: dict[str, dict[Any, Any]] = {
    "event not UTF-8": {"event_type": "order", "event": b"\xff\xfe{}"},
    "type not UTF-8": {"event_type": b"\xc3", "event": "{}"},
    "too deep": {"event_type": "order", "event": "[" * 100_000 + "]" * 100_000},
    "not JSON": {"event_type": "order", "event": "{nope"},
    "huge int": {"event_type": "order", "event": "1" * 5000},
    "no event": {"event_type": "order"},
    "no type": {"event": "{}"},
    "type not printable": {"event_type": "or\nder", "event": "{}"},
}


def _processor(handled: list[int]) -> CoordinationEventProcessor:
    return CoordinationEventProcessor(
        lambda event, event_type: handled.append(event["n"]),
        dead_letter_path=":memory:",
        config=CoordinationConfig(max_retries=0, base_delay=0.0),
    )


@pytest.mark.redis
def test_poison_entries_among_good_ones_with_several_consumers(
    redis_url: str, namespace: str, closing: Any
) -> None:
    stream = f"{namespace}:events"
    raw = closing(redis.Redis.from_url(redis_url))
    handled: list[int] = []
    processor = closing(_processor(handled))
    consumers = [
        closing(
            RedisStreamSource(
                processor, stream, url=redis_url, consumer=f"c{i}", batch_size=5, block=0.05
            )
        )
        for i in range(3)
    ]
    consumers[0].ensure_group()
    good, poison = [], {}
    for n in range(40):
        good.append(consumers[0].publish({"n": n}, "order"))
        if n % 5 == 2:
            name = list(POISON)[len(poison) % len(POISON)]
            poison[raw.xadd(stream, POISON[name]).decode()] = name

    for _ in range(60):  # the consumers take turns; none of them may raise
        if not sum(len(c.poll()) for c in consumers):
            break

    assert sorted(handled) == list(range(40))  # every good event, once
    dead = raw.xrange(f"{stream}:dead-letters")
    assert {f[b"source_id"].decode(): f[b"reason"].decode() for _, f in dead}.keys() == set(poison)
    for _, fields in dead:
        reason = fields[b"reason"].decode()
        assert reason.startswith("undecodable entry: "), reason
        assert "delivered more than" not in reason
    # The dead copy keeps the entry's own bytes, so nothing about it is lost.
    by_source = {f[b"source_id"].decode(): f for _, f in dead}
    not_utf8 = next(i for i, name in poison.items() if name == "event not UTF-8")
    assert by_source[not_utf8][b"event"] == b"\xff\xfe{}"
    assert consumers[0].pending() == 0
    assert processor.dead_letters.count() == 0  # poison never reached the processor
    raw.delete(f"{stream}:dead-letters")


@pytest.mark.redis
async def test_poison_entries_on_the_asyncio_consumer(
    redis_url: str, namespace: str, closing: Any
) -> None:
    stream = f"{namespace}:events"
    raw = closing(redis.Redis.from_url(redis_url))
    handled: list[int] = []
    processor = closing(_processor(handled))
    consumers = [
        RedisStreamSource(
            processor, stream, url=redis_url, consumer=f"a{i}", batch_size=4, block=0.05
        )
        for i in range(2)
    ]
    try:
        await consumers[0].aensure_group()
        poison = []
        for n in range(12):
            await consumers[0].apublish({"n": n}, "order")
            if n % 3 == 0:
                poison.append(raw.xadd(stream, POISON["too deep"]).decode())
                poison.append(raw.xadd(stream, POISON["event not UTF-8"]).decode())
        for _ in range(40):
            if not sum([len(await c.apoll()) for c in consumers]):
                break
        assert sorted(handled) == list(range(12))
        dead = raw.xrange(f"{stream}:dead-letters")
        assert sorted(f[b"source_id"].decode() for _, f in dead) == sorted(poison)
        assert consumers[0].pending() == 0
    finally:
        for consumer in consumers:
            await consumer.aclose()
            consumer.close()
        raw.delete(f"{stream}:dead-letters")


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from([b"event_type", b"event", "event_type", "event", b"other"]),
        st.one_of(st.binary(max_size=40), st.text(max_size=40)),
        max_size=4,
    )
)
def test_decode_fails_only_with_a_value_error_naming_the_problem(
    fields: dict[Any, Any],
) -> None:
    problems: list[str] = []
    try:
        _event, event_type = decode(fields)
    except ValueError as exc:
        problems.append(str(exc))
    else:
        assert isinstance(event_type, str)
        assert event_type
    assert all(problems)  # a refusal always says what is wrong


def test_decode_refuses_deep_json_and_huge_ints_with_a_value_error() -> None:
    for name in ("too deep", "huge int", "event not UTF-8", "type not printable"):
        with pytest.raises(ValueError, match="'event"):
            decode(POISON[name])
