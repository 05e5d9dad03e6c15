"""The event processor's CONSUMER span and the publishers' PRODUCER spans: the processor
alone, a real Redis stream, RabbitMQ and NATS JetStream, recorded by the real
OpenTelemetry SDK (in-memory exporter)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from coordination import EventDeadLettered
from coordination.integration import CoordinationEventProcessor

from .doors import (
    PARENT_ID,
    TRACE_ID,
    TRACEPARENT,
    Recorded,
    everything_shown,
    hex_span,
    hex_trace,
    parent_id,
)


def make_processor(handler: Any = None, **options: Any) -> CoordinationEventProcessor:
    options.setdefault("error_config", {"max_retries": 0})
    options.setdefault("dead_letter_path", ":memory:")
    options.setdefault("validate_structure", False)
    return CoordinationEventProcessor(handler, **options)


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def assert_joined(consumer: ReadableSpan, producer: ReadableSpan) -> None:
    """The consumer's span is the producer's child, in the producer's trace."""
    assert hex_trace(consumer) == hex_trace(producer)
    assert parent_id(consumer) == hex_span(producer)


# --- the processor alone ------------------------------------------------------------------


def test_an_event_is_processed_inside_its_consumer_span(recorded: Recorded) -> None:
    inside = recorded.provider.get_tracer("the-app")

    def handle(event: Any, event_type: str) -> str:
        with inside.start_as_current_span("charge card"):
            return "done"

    with make_processor(handle) as processor:
        caller = recorded.provider.get_tracer("caller")
        with caller.start_as_current_span("caller") as span:
            assert processor.process_event({"n": 1}, "orders") == "done"
            caller_id = format(span.get_span_context().span_id, "016x")

    consumer = recorded.one(SpanKind.CONSUMER)
    assert consumer.name == "orders process"
    assert parent_id(consumer) == caller_id
    assert attributes(consumer) == {
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "coordination.event_type": "orders",
        "coordination.operation": "event_orders",
        "coordination.outcome": "processed",
    }
    assert consumer.status.status_code is StatusCode.UNSET
    charged = next(s for s in recorded.spans if s.name == "charge card")
    # the handler runs as the protected call of the event's operation, inside the event
    call = next(s for s in recorded.spans if s.name == "event_orders")
    assert call.kind is SpanKind.INTERNAL
    assert parent_id(call) == hex_span(consumer)
    assert parent_id(charged) == hex_span(call)


def test_a_dead_lettered_event_is_an_error_showing_the_handlers_exception(
    recorded: Recorded,
) -> None:
    def handle(event: Any, event_type: str) -> None:
        raise ValueError("card declined: api_key=sk-live-abcdefghijklmnop1234")

    with make_processor(handle) as processor, pytest.raises(EventDeadLettered) as dead:
        processor.process_event({"n": 1}, "orders")
    consumer = recorded.one(SpanKind.CONSUMER)
    assert consumer.status.status_code is StatusCode.ERROR
    found = attributes(consumer)
    assert found["coordination.outcome"] == "dead_lettered"
    assert found["error.type"] == "ValueError"
    assert found["coordination.dead_letter_id"] == str(dead.value.dead_letter_id)
    (event,) = consumer.events
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert "sk-live" not in everything_shown(recorded.spans)


def test_duplicates_and_invalid_events_say_so(recorded: Recorded) -> None:
    with make_processor(
        idempotency_key="id", rules={"orders": {"required_fields": ["sku"]}}
    ) as processor:
        processor.process_event({"id": 1, "sku": "a"}, "orders")
        processor.process_event({"id": 1, "sku": "a"}, "orders")
        with pytest.raises(EventDeadLettered):
            processor.process_event({"id": 2}, "orders")
    outcomes = [attributes(s)["coordination.outcome"] for s in recorded.of_kind(SpanKind.CONSUMER)]
    assert outcomes == ["processed", "duplicate", "dead_lettered"]


def test_a_batch_has_a_span_per_event(recorded: Recorded) -> None:
    def handle(event: Any, event_type: str) -> None:
        if event["n"] == 1:
            raise RuntimeError("no")

    with make_processor(handle) as processor:
        outcomes = processor.process_batch([{"n": n} for n in range(3)], "orders")
    assert [o.status for o in outcomes] == ["processed", "dead_lettered", "processed"]
    spans = recorded.of_kind(SpanKind.CONSUMER)
    assert [attributes(s)["coordination.outcome"] for s in spans] == [
        "processed",
        "dead_lettered",
        "processed",
    ]


async def test_a_coroutine_handlers_work_is_the_events_child(recorded: Recorded) -> None:
    inside = recorded.provider.get_tracer("the-app")

    async def handle(event: Any, event_type: str) -> None:
        with inside.start_as_current_span("await a reply"):
            await asyncio.sleep(0)

    with make_processor(handle) as processor:
        await processor.aprocess_event({"n": 1}, "orders")
        await processor.aprocess_message({"n": 2}, "orders")
    first, second = recorded.of_kind(SpanKind.CONSUMER)
    children = [s for s in recorded.spans if s.name == "await a reply"]
    calls = [s for s in recorded.spans if s.name == "event_orders"]  # the protected calls
    assert [parent_id(s) for s in calls] == [hex_span(first), hex_span(second)]
    assert [parent_id(s) for s in children] == [hex_span(c) for c in calls]


def test_no_tracer_provider_no_span(recorded: Recorded) -> None:
    from coordination._tracing import use_tracer_provider

    with make_processor() as processor, use_tracer_provider(None):
        processor.process_event({"n": 1}, "orders")
    assert recorded.spans == ()


def test_event_types_beyond_the_cap_share_one_span_name(recorded: Recorded) -> None:
    with make_processor(config={"max_operation_names": 2}) as processor:
        for n in range(4):
            processor.process_event({}, f"kind-{n}")
    names = [s.name for s in recorded.of_kind(SpanKind.CONSUMER)]
    overflow = "__overflow__ process"
    assert names == ["kind-0 process", "kind-1 process", overflow, overflow]


# --- a broker source's steps, in memory, under hostile headers ------------------------------

_trace_values = st.one_of(
    st.just(TRACEPARENT),
    st.text(max_size=60),
    st.binary(max_size=40),
    st.builds(lambda n: "k=v," * n, st.integers(2_000, 5_000)),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    headers=st.lists(
        st.dictionaries(
            st.sampled_from(["traceparent", "tracestate", "baggage"]), _trace_values, max_size=3
        ),
        min_size=1,
        max_size=4,
    ),
    synchronous=st.booleans(),
)
def test_every_delivered_message_gets_its_span_whatever_its_trace_headers(
    recorded: Recorded, headers: list[dict[str, Any]], synchronous: bool
) -> None:
    from memory_broker import MemoryBroker, MemorySource, no_sleep

    recorded.clear()

    def handle(event: Any, event_type: str) -> None:
        return None

    async def ahandle(event: Any, event_type: str) -> None:
        return None

    memory = MemoryBroker()
    for carried in headers:
        memory.put(b"{}", {"event-type": "orders", **carried})
    with make_processor(handle if synchronous else ahandle) as processor:
        source = MemorySource(processor, memory, async_sleep=no_sleep)
        assert source.run(max_idle_polls=1, handle_signals=False) == len(headers)
    consumers = recorded.of_kind(SpanKind.CONSUMER)
    assert len(consumers) == len(headers)  # one each, in order, none lost to a bad header
    for span, carried in zip(consumers, headers, strict=True):
        assert attributes(span)["coordination.outcome"] == "processed"
        assert attributes(span)["coordination.delivery"]
        if carried.get("traceparent") == TRACEPARENT:
            assert parent_id(span) == PARENT_ID


# --- a real Redis stream ------------------------------------------------------------------


@pytest.mark.redis
def test_a_redis_stream_entry_carries_the_producers_trace(
    recorded: Recorded, redis_url: str, namespace: str
) -> None:
    import redis

    from coordination.backends.redis import RedisStreamSource

    stream = f"{namespace}:orders"
    with make_processor() as processor:
        source = RedisStreamSource(processor, stream, url=redis_url, block=0.05)
        try:
            source.ensure_group()
            entry_id = source.publish({"n": 1}, "orders")
            batch = source.poll()
        finally:
            source.close()
    assert batch.processed == [entry_id]

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        ((_, fields),) = client.xrange(stream)
    finally:
        client.close()
    producer = recorded.one(SpanKind.PRODUCER)
    assert fields["traceparent"].startswith(f"00-{hex_trace(producer)}-{hex_span(producer)}-")

    assert producer.name == "orders publish"
    assert attributes(producer) == {
        "messaging.system": "redis",
        "messaging.destination.name": stream,
        "messaging.operation.name": "publish",
        "messaging.operation.type": "send",
        "messaging.message.id": entry_id,
        "coordination.event_type": "orders",
        "coordination.outcome": "published",
    }
    consumer = recorded.one(SpanKind.CONSUMER)
    assert_joined(consumer, producer)
    found = attributes(consumer)
    assert found["messaging.system"] == "redis"
    assert found["messaging.destination.name"] == stream
    assert found["messaging.message.id"] == entry_id


@pytest.mark.redis
async def test_a_redis_stream_on_asyncio_and_entries_of_other_producers(
    recorded: Recorded, redis_url: str, namespace: str
) -> None:
    import redis.asyncio

    from coordination.backends.redis import RedisStreamSource

    stream = f"{namespace}:orders"
    seen: list[Any] = []

    async def handle(event: Any, event_type: str) -> None:
        seen.append(event)

    client = redis.asyncio.Redis.from_url(redis_url)
    with make_processor(handle) as processor:
        source = RedisStreamSource(processor, stream, url=redis_url, block=0.05)
        try:
            await source.aensure_group()
            await source.apublish({"n": 1}, "orders")
            # written by others: a trace of their own, a hostile field, none at all
            await client.xadd(
                stream, {"event_type": "orders", "event": "2", "traceparent": TRACEPARENT}
            )
            await client.xadd(
                stream, {"event_type": "orders", "event": "3", "traceparent": b"\xff" * 9}
            )
            await client.xadd(stream, {"event_type": "orders", "event": "4"})
            batch = await source.apoll()
        finally:
            await source.aclose()
            await client.aclose()
            source.close()
    assert len(batch.processed) == 4
    assert seen == [{"n": 1}, 2, 3, 4]
    producer = recorded.one(SpanKind.PRODUCER)
    ours, theirs, hostile, plain = recorded.of_kind(SpanKind.CONSUMER)
    assert_joined(ours, producer)
    assert (hex_trace(theirs), parent_id(theirs)) == (TRACE_ID, PARENT_ID)
    assert hostile.parent is None
    assert plain.parent is None


# --- RabbitMQ -----------------------------------------------------------------------------


@contextlib.contextmanager
def rabbitmq_queue(url: str, name: str) -> Iterator[str]:
    import aio_pika

    try:
        yield name
    finally:

        async def delete() -> None:
            connection = await aio_pika.connect(url)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(name)

        asyncio.run(delete())


@pytest.mark.rabbitmq
def test_a_rabbitmq_message_carries_the_producers_trace(
    recorded: Recorded, rabbitmq_url: str, unique_name: str
) -> None:
    from coordination.backends.rabbitmq import RabbitMQSource

    inside = recorded.provider.get_tracer("caller")
    with rabbitmq_queue(rabbitmq_url, unique_name) as queue, make_processor() as processor:
        source = RabbitMQSource(processor, queue, rabbitmq_url, poll_timeout=0.2)
        try:
            with inside.start_as_current_span("checkout") as checkout:
                source.publish({"n": 1}, "orders")
            assert source.run(max_idle_polls=2, handle_signals=False) == 1
        finally:
            source.close()
    producer = recorded.one(SpanKind.PRODUCER)
    assert producer.name == "orders publish"
    assert parent_id(producer) == format(checkout.get_span_context().span_id, "016x")
    assert attributes(producer)["messaging.system"] == "rabbitmq"
    consumer = recorded.one(SpanKind.CONSUMER)
    assert_joined(consumer, producer)
    found = attributes(consumer)
    assert (found["messaging.system"], found["messaging.destination.name"]) == ("rabbitmq", queue)
    assert found["coordination.delivery"].startswith("delivery tag ")


# --- NATS JetStream -----------------------------------------------------------------------


@pytest.mark.nats
async def test_a_nats_message_carries_the_producers_trace(
    recorded: Recorded, nats_url: str, unique_name: str
) -> None:
    import nats
    import nats.js.errors

    from coordination.backends.nats import NatsJetStreamSource

    seen: list[Any] = []

    def handle(event: Any, event_type: str) -> None:  # synchronous: on a worker thread
        seen.append(event)

    try:
        with make_processor(handle) as processor:
            source = NatsJetStreamSource(
                processor,
                f"{unique_name}.events",
                stream=unique_name,
                durable="worker",
                url=nats_url,
                poll_timeout=0.2,
                connect_timeout=10,  # a loaded machine's JetStream can stall for seconds
            )
            try:
                for n in range(2):
                    await source.apublish({"n": n}, "orders")
                assert await source.arun(max_idle_polls=1, handle_signals=False) == 2
            finally:
                await source.aclose()
    finally:
        from backends.nats.conftest import admin

        nc = await admin(nats_url)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream(timeout=10).delete_stream(unique_name)
        finally:
            await nc.close()
    assert seen == [{"n": 0}, {"n": 1}]
    producers = recorded.of_kind(SpanKind.PRODUCER)
    consumers = recorded.of_kind(SpanKind.CONSUMER)
    assert len(producers) == len(consumers) == 2
    for producer, consumer in zip(producers, consumers, strict=True):
        assert_joined(consumer, producer)
        found = attributes(consumer)
        assert found["messaging.system"] == "nats"
        assert found["messaging.destination.name"] == f"{unique_name}.events"
    assert attributes(producers[0])["messaging.system"] == "nats"


def test_a_nested_event_does_not_inherit_the_outer_messages_facts(recorded: Recorded) -> None:
    from coordination._door_spans import MessageFacts, delivered

    with make_processor() as processor:

        def outer(event: Any, event_type: str) -> None:
            processor.process_event({}, "inner")

        processor.on("outer")(outer)
        with delivered({"traceparent": TRACEPARENT}, MessageFacts("redis", "s", "1-0")):
            processor.process_event({}, "outer")
    inner, outer_span = recorded.of_kind(SpanKind.CONSUMER)
    assert attributes(outer_span)["messaging.system"] == "redis"
    assert parent_id(outer_span) == PARENT_ID
    assert "messaging.system" not in attributes(inner)
    # inside the outer event's protected call (its operation's span)
    call = next(s for s in recorded.spans if s.name == "event_outer")
    assert parent_id(call) == hex_span(outer_span)
    assert parent_id(inner) == hex_span(call)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    event_type=st.text(min_size=1, max_size=400).filter(
        lambda t: t.isprintable() and "\ud800" not in t
    )
)
def test_any_event_type_makes_a_short_printable_span_name(
    recorded: Recorded, event_type: str
) -> None:
    recorded.clear()
    try:
        event_type.encode("utf-8")
    except UnicodeEncodeError:
        return  # refused by the processor before anything runs (tested in integration/)
    with make_processor() as processor:
        processor.process_event({}, event_type)
    (span,) = recorded.of_kind(SpanKind.CONSUMER)
    assert span.name.endswith(" process")
    assert span.name.isprintable()
    assert len(span.name) <= 130
    assert len(attributes(span)["coordination.event_type"]) <= 256 + 40  # truncate's note


@settings(max_examples=150, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(["traceparent", b"traceparent", "tracestate", b"baggage", "x"]),
        st.one_of(st.binary(max_size=60), st.text(max_size=60), st.just(TRACEPARENT)),
        max_size=5,
    )
)
def test_stream_trace_fields_of_any_shape_never_raise(fields: dict[Any, Any]) -> None:
    from coordination._door_spans import MessageFacts, delivered
    from coordination.backends.redis._stream_entries import carried

    carrier = carried(fields)
    with delivered(carrier or {}, MessageFacts("redis", "s", "1-0")):
        pass  # made current and let go again, whatever the fields held


def test_a_publish_that_fails_is_an_error_span_and_a_store_error(recorded: Recorded) -> None:
    from coordination import StoreError
    from memory_broker import MemoryBroker, MemorySource, no_sleep

    memory = MemoryBroker()
    with make_processor() as processor:
        source = MemorySource(processor, memory, async_sleep=no_sleep)
        source.publish({"n": 1}, "orders")
        memory.down = True
        with pytest.raises(StoreError, match="cannot publish to memory"):
            source.publish({"n": 2}, "orders")
        source.close()
    sent, failed = recorded.of_kind(SpanKind.PRODUCER)
    assert attributes(sent)["coordination.outcome"] == "published"
    assert sent.status.status_code is StatusCode.UNSET
    assert memory.queue[0][1]["traceparent"].startswith(f"00-{hex_trace(sent)}-{hex_span(sent)}-")
    assert attributes(failed)["coordination.outcome"] == "error"
    assert attributes(failed)["error.type"] == "coordination.StoreError"
    assert failed.status.status_code is StatusCode.ERROR


def test_letters_a_source_writes_itself_keep_the_producers_context(recorded: Recorded) -> None:
    """A poison message and one delivered too often get no CONSUMER span (nothing
    processes them): their letters keep the producer's context the message carried, so
    a replay links to the publish."""
    from memory_broker import MemoryBroker, MemorySource, no_sleep

    memory = MemoryBroker()
    memory.put(b"{not json", {"event-type": "orders", "traceparent": TRACEPARENT})
    memory.put(
        b'{"n": 1}',
        {"event-type": "orders", "traceparent": TRACEPARENT, "baggage": "user=secret"},
        delivered_before=5,
    )
    memory.put(b'{"n": 2}', {"event-type": "orders"}, delivered_before=5)  # nothing carried
    with make_processor(lambda event, event_type: None) as processor:
        source = MemorySource(processor, memory, max_deliveries=5, async_sleep=no_sleep)
        assert source.run(max_idle_polls=1, handle_signals=False) == 3
        poison, redelivered, untraced = processor.dead_letters.list()
        recorded.clear()
        assert len(processor.dead_letters.replay().succeeded) == 2  # poison is not replayable
    assert poison.trace_context == {"traceparent": TRACEPARENT}
    assert redelivered.trace_context == {"traceparent": TRACEPARENT}  # no baggage
    assert untraced.trace_context is None
    replays = [span for span in recorded.spans if span.name == "orders replay"]
    assert [[format(link.context.span_id, "016x") for link in s.links] for s in replays] == [
        [PARENT_ID],
        [],
    ]
