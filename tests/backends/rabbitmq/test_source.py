"""RabbitMQSource against the real broker: publish and consume, poison messages, the
redelivery limit on quorum and classic queues, a stop that gives back what it holds, and
a declaration that does not match the queue there."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiormq.exceptions
import pytest

from coordination import ConfigError
from coordination.backends.rabbitmq import RabbitMQSource
from coordination.integration import CoordinationEventProcessor

from .._two_loops import publish_from_two_loops
from .conftest import Amqp

pytestmark = pytest.mark.rabbitmq


def consume(source: RabbitMQSource, idle: int = 2) -> int:
    return source.run(max_idle_polls=idle, handle_signals=False)


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_published_events_are_processed_and_acknowledged(
    queue_type: Any, queue: str, amqp: Amqp, rabbitmq_url: str, processor: Any
) -> None:
    source = RabbitMQSource(processor, queue, rabbitmq_url, queue_type=queue_type, poll_timeout=0.2)
    for n in range(20):
        source.publish({"n": n}, "order")
    source.close()
    assert consume(source) == 20
    assert processor.handled == [({"n": n}, "order") for n in range(20)]
    assert amqp.settled(queue, (0, 0)) == (0, 0)  # all acknowledged, the consumer gone
    assert source.status()["processed"] == 20


def test_the_amqp_type_property_carries_the_event_type(
    queue: str, amqp: Amqp, rabbitmq_url: str, processor: Any
) -> None:
    source = RabbitMQSource(processor, queue, rabbitmq_url, poll_timeout=0.2)
    source.publish({"n": 1}, "order")
    source.close()
    message = amqp.take(queue)
    assert message.type == "order"
    assert message.headers["event-type"] == "order"
    assert message.content_type == "application/json"
    assert message.delivery_mode == 2  # persistent
    # a producer that sets only the AMQP type is understood too
    amqp.publish(queue, message.body, type="refund")
    amqp.run(message.ack())
    assert consume(source) == 1
    assert processor.handled == [({"n": 1}, "refund")]


def test_poison_messages_are_dead_lettered_alone_at_once(
    queue: str, amqp: Amqp, rabbitmq_url: str, processor: Any
) -> None:
    source = RabbitMQSource(
        processor, queue, rabbitmq_url, poll_timeout=0.2, max_message_bytes=10_000
    )
    source.publish({"n": 0}, "order")  # declares the queue
    source.close()
    poison = [
        (b"not json", {"event-type": "order"}),
        (b"\xff\xfe\x00", {"event-type": "order"}),
        (b"[" * 5000 + b"]" * 5000, {"event-type": "order"}),  # too deep (and big)
        (b"[" * 4000 + b"]" * 4000, {"event-type": "order"}),  # too deep, not too big
        (json.dumps({"n": "big", "pad": "x" * 20_000}).encode(), {"event-type": "order"}),
        (b'{"n": "untyped"}', {}),
    ]
    for body, headers in poison:
        amqp.publish(queue, body, headers)
        amqp.publish(
            queue, json.dumps({"n": len(processor.handled)}).encode(), {"event-type": "order"}
        )
    assert consume(source) == 1 + 2 * len(poison)
    assert len(processor.handled) == 1 + len(poison)  # every good one, each once
    letters = processor.dead_letters.list(limit=100)
    assert len(letters) == len(poison)
    assert all(not letter.replayable and letter.reason.startswith("poison") for letter in letters)
    assert source.counts.poison == len(poison)
    assert amqp.settled(queue, (0, 0)) == (0, 0)
    reasons = " ".join(letter.reason for letter in letters)
    for problem in (
        "not JSON",
        "not UTF-8",
        "too deeply",
        "more than max_message_bytes",
        "no 'event-type'",
    ):
        assert problem in reasons


def test_a_quorum_message_delivered_too_often_is_dead_lettered_replayable(
    queue: str, amqp: Amqp, rabbitmq_url: str, processor: Any
) -> None:
    source = RabbitMQSource(processor, queue, rabbitmq_url, poll_timeout=0.2, max_deliveries=2)
    source.publish({"n": 1}, "order")
    source.close()
    for _ in range(2):  # two deliveries that ended without an ack
        amqp.run(amqp.take(queue).nack(requeue=True))
    assert consume(source) == 1
    assert processor.handled == []
    [letter] = processor.dead_letters.list()
    assert letter.reason == "redelivered"
    assert letter.replayable
    assert letter.event == {"n": 1}
    assert letter.attempts == 2
    assert source.counts.redelivered_too_often == 1
    assert amqp.settled(queue, (0, 0)) == (0, 0)


def test_a_classic_queue_counts_redeliveries_in_a_header(
    queue: str, amqp: Amqp, rabbitmq_url: str, processor: Any
) -> None:
    source = RabbitMQSource(
        processor, queue, rabbitmq_url, queue_type="classic", poll_timeout=0.2, max_deliveries=3
    )
    source.publish({"n": 1}, "order")
    source.publish({"n": 2}, "order")
    source.close()
    # n=1 fails once (redelivered): processed, its copy counting 1 failed delivery
    amqp.run(amqp.take(queue).nack(requeue=True))
    assert consume(source) == 2
    assert sorted(e["n"] for e, _ in processor.handled) == [1, 2]
    # a message that already failed 3 times, delivered again: dead-lettered
    amqp.publish(queue, b'{"n": 3}', {"event-type": "order", "x-coordination-deliveries": 2})
    amqp.run(amqp.take(queue).nack(requeue=True))  # the 3rd failure: redelivered
    assert consume(source) == 1
    [letter] = processor.dead_letters.list()
    assert letter.reason == "redelivered"
    assert letter.event == {"n": 3}
    assert amqp.settled(queue, (0, 0)) == (0, 0)


def test_the_classic_copy_carries_the_count_and_the_properties(
    queue: str, amqp: Amqp, rabbitmq_url: str
) -> None:
    seen: list[Any] = []

    class Holding:
        """A processor that stops the source at the first event, so the copy stays."""

        async def aprocess_message(self, event: Any, event_type: str) -> None:
            seen.append(event)

        async def adead_letter_message(self, *args: Any, **kwargs: Any) -> int:
            raise AssertionError("nothing is dead-lettered here")

    source = RabbitMQSource(
        Holding(),
        queue,
        rabbitmq_url,
        queue_type="classic",
        poll_timeout=0.2,  # type: ignore[arg-type]
    )
    source.publish({"n": 1}, "order")
    source.close()
    amqp.run(amqp.take(queue).nack(requeue=True))

    async def fetch_the_copy() -> None:
        await source._connect()
        deliveries: list[Any] = []
        for _ in range(3):  # the copy may come in the fetch that republished it, or next
            deliveries += await source._fetch(10, 1.0)
            if deliveries:
                break
        [copy] = deliveries  # the redelivered original went back as this copy
        assert copy.delivery_count == 2
        assert copy.headers["x-coordination-deliveries"] == 1
        assert copy.message.redelivered is False
        assert copy.fallback_type == "order"
        assert copy.message.header.properties.content_type == "application/json"
        assert json.loads(copy.body) == {"n": 1}
        await copy.ack()
        await source._disconnect()

    asyncio.run(fetch_the_copy())
    assert amqp.settled(queue, (0, 0)) == (0, 0)
    assert seen == []


def test_a_stop_gives_back_what_was_fetched_and_buffered(
    queue: str, amqp: Amqp, rabbitmq_url: str
) -> None:
    handled: list[int] = []
    source: RabbitMQSource

    async def handle(event: Any, event_type: str) -> None:
        handled.append(event["n"])
        if len(handled) == 3:
            source.stop()

    processor = CoordinationEventProcessor(handle, dead_letter_path=":memory:")
    source = RabbitMQSource(processor, queue, rabbitmq_url, prefetch=10, poll_timeout=0.2)
    for n in range(40):
        source.publish({"n": n}, "order")
    source.close()
    assert consume(source, idle=5) == 3
    assert handled == [0, 1, 2]
    assert source.counts.requeued >= 7  # the rest of the prefetched ten
    assert amqp.settled(queue, (37, 0)) == (37, 0)  # given back, none held
    processor.dead_letters.close()


def test_a_queue_declared_otherwise_is_a_config_error(
    queue: str, amqp: Amqp, rabbitmq_url: str, processor: Any
) -> None:
    amqp.declare(queue, "classic")
    source = RabbitMQSource(processor, queue, rabbitmq_url)  # quorum
    with pytest.raises(ConfigError, match="x-queue-type") as raised:
        consume(source)
    assert "PRECONDITION_FAILED" not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    with pytest.raises(ConfigError, match="x-queue-type"):
        source.publish({"n": 1}, "order")
    source.close()
    # declared as it is, it is consumed
    assert consume(RabbitMQSource(processor, queue, rabbitmq_url, queue_type="classic")) == 0


def test_queue_arguments_are_declared(
    queue: str, amqp: Amqp, rabbitmq_url: str, processor: Any
) -> None:
    source = RabbitMQSource(processor, queue, rabbitmq_url, queue_arguments={"x-max-length": 5})
    for n in range(8):
        source.publish({"n": n}, "order")
    source.close()
    assert amqp.depth(queue)[0] == 5
    with pytest.raises(ConfigError, match="x-max-length"):
        consume(RabbitMQSource(processor, queue, rabbitmq_url))


def test_a_sync_handler_is_fed_too(queue: str, amqp: Amqp, rabbitmq_url: str) -> None:
    handled: list[int] = []
    processor = CoordinationEventProcessor(
        lambda event, event_type: handled.append(event["n"]), dead_letter_path=":memory:"
    )
    source = RabbitMQSource(processor, queue, rabbitmq_url, poll_timeout=0.2, concurrency=4)
    for n in range(30):
        source.publish({"n": n}, "order")
    source.close()
    assert consume(source) == 30
    assert sorted(handled) == list(range(30))
    assert amqp.settled(queue, (0, 0)) == (0, 0)
    processor.dead_letters.close()


def test_a_failing_handler_is_dead_lettered_and_acknowledged(
    queue: str, amqp: Amqp, rabbitmq_url: str
) -> None:
    def handle(event: Any, event_type: str) -> None:
        raise ValueError("no such order")

    processor = CoordinationEventProcessor(
        handle, error_config={"max_retries": 0}, dead_letter_path=":memory:"
    )
    source = RabbitMQSource(processor, queue, rabbitmq_url, poll_timeout=0.2)
    source.publish({"n": 1}, "order")
    source.close()
    assert consume(source) == 1
    assert source.counts.dead_lettered == 1
    assert processor.dead_letters.count() == 1
    assert amqp.settled(queue, (0, 0)) == (0, 0)
    processor.dead_letters.close()


def test_out_of_order_settling_acknowledges_every_message(
    queue: str, amqp: Amqp, rabbitmq_url: str
) -> None:
    handled: list[int] = []

    async def handle(event: Any, event_type: str) -> None:
        await asyncio.sleep((event["n"] * 7 % 5) / 500)  # they finish out of order
        handled.append(event["n"])

    processor = CoordinationEventProcessor(handle, dead_letter_path=":memory:")
    source = RabbitMQSource(
        processor, queue, rabbitmq_url, prefetch=20, concurrency=8, poll_timeout=0.2
    )
    for n in range(120):
        source.publish({"n": n}, "order")
    source.close()
    assert consume(source) == 120
    assert sorted(handled) == list(range(120))
    assert handled != sorted(handled)
    assert amqp.settled(queue, (0, 0)) == (0, 0)
    processor.dead_letters.close()


def test_concurrent_publishers_share_one_connection(
    queue: str, amqp: Amqp, rabbitmq_url: str, processor: Any
) -> None:
    source = RabbitMQSource(processor, queue, rabbitmq_url)

    async def publish_all() -> Any:
        await asyncio.gather(*(source.apublish({"n": n}, "order") for n in range(50)))
        link = source._publishers.get()
        await source._disconnect()
        return link

    link = asyncio.run(publish_all())
    assert link is not None
    assert amqp.settled(queue, (50, 0)) == (50, 0)


def test_a_channel_the_broker_closes_is_reconnected(
    queue: str, amqp: Amqp, rabbitmq_url: str, processor: Any
) -> None:
    source = RabbitMQSource(
        processor, queue, rabbitmq_url, poll_timeout=0.2, reconnect_interval=0.05
    )
    for n in range(10):
        source.publish({"n": n}, "order")
    source.close()

    async def scenario() -> None:
        running = asyncio.ensure_future(source.arun(max_idle_polls=10, handle_signals=False))
        for _ in range(1000):  # until the first ten are handled
            if source._consumer is not None and len(processor.handled) >= 10:
                break
            await asyncio.sleep(0.01)
        link = source._consumer
        assert link is not None
        assert link.channel is not None
        channel = await link.channel.get_underlay_channel()
        await channel.basic_ack(999_999)  # an unknown tag: the broker closes the channel
        for n in range(10, 20):
            await source.apublish({"n": n}, "order")
        await running
        assert link.lost is not None

    asyncio.run(scenario())
    assert sorted(e["n"] for e, _ in processor.handled) == list(range(20))
    assert source.counts.broker_errors >= 1
    assert amqp.settled(queue, (0, 0)) == (0, 0)


def test_aclose_closes_what_apublish_opened_on_the_application_s_loop(
    queue: str, amqp: Amqp, processor: Any
) -> None:
    """An application that only publishes, on its own loop: ``aclose()`` closes the
    publisher's connection (there was no way to, and it lingered until the loop died)."""
    source = RabbitMQSource(processor, queue)

    async def publish_then_close() -> Any:
        await source._connect()  # the queue declared, as a consumer would
        await source._disconnect_consumer()
        await source.apublish({"n": 1}, "order")
        link = source._publishers.get()
        assert link is not None
        assert not link.connection.is_closed
        await source.aclose()
        assert source._publishers.get() is None
        await source.aclose()  # twice is harmless
        return link

    link = asyncio.run(publish_then_close())
    assert link.connection.is_closed
    assert amqp.settled(queue, (1, 0)) == (1, 0)  # the message stayed for a consumer


def test_a_nacked_publish_is_sent_again_and_a_refused_one_is_told(
    queue: str, amqp: Amqp, processor: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quorum queue without a leader (just declared, a node lost) nacks: the publish is
    sent again and the message queued once; a broker that keeps nacking is a StoreError."""
    from aio_pika.exchange import Exchange
    from pamqp.commands import Basic

    from coordination import StoreError

    sent = Exchange.publish
    nacks = {"left": 2}

    async def nacking(self: Any, *args: Any, **kwargs: Any) -> Any:
        if nacks["left"]:
            nacks["left"] -= 1
            raise aiormq.exceptions.DeliveryError(None, Basic.Nack(delivery_tag=1))
        return await sent(self, *args, **kwargs)

    monkeypatch.setattr(Exchange, "publish", nacking)
    source = RabbitMQSource(processor, queue)
    try:
        source.publish({"n": 1}, "order")
        assert nacks["left"] == 0
        assert amqp.settled(queue, (1, 0)) == (1, 0)  # queued once
        nacks["left"] = 99
        with pytest.raises(StoreError, match="Nack"):
            source.publish({"n": 2}, "order")
        assert nacks["left"] == 99 - 4  # the first send and three more
    finally:
        source.close()
    assert amqp.settled(queue, (1, 0)) == (1, 0)


def test_two_loops_publishing_at_once_keep_a_connection_each(
    queue: str, amqp: Amqp, processor: Any
) -> None:
    """A sync publish and an apublish on another thread's loop, taking turns, keep a
    connection each, and both are closed at the end (see tests/backends/_two_loops.py)."""
    source = RabbitMQSource(processor, queue)
    opened = publish_from_two_loops(source, "_open")
    assert len(opened) == 2  # one per loop, however many turns
    assert all(link.connection.is_closed for link in opened)
    assert amqp.settled(queue, (40, 0)) == (40, 0)
