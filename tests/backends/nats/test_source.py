"""NatsJetStreamSource against the real NATS: processing, poison, redelivery limits, the
stream and consumer it finds or makes, heartbeats, publishing."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import api

from coordination import ConfigError, CoordinationEventProcessor, StoreError
from coordination.backends.nats import NatsJetStreamSource

from .._two_loops import publish_from_two_loops
from .conftest import admin, consumer_info

pytestmark = pytest.mark.nats


def processor_at(tmp_path: Path, handler: Any = None) -> CoordinationEventProcessor:
    return CoordinationEventProcessor(
        handler,
        error_config={"max_retries": 0},
        dead_letter_path=str(tmp_path / "dead.sqlite3"),
    )


def source_for(
    processor: Any, name: str, url: str, streams: list[str], **options: Any
) -> NatsJetStreamSource:
    streams.append(options.get("stream", name))
    options.setdefault("stream", name)
    options.setdefault("durable", "worker")
    options.setdefault("poll_timeout", 0.2)
    return NatsJetStreamSource(processor, f"{name}.events", url=url, **options)


async def publish_raw(
    url: str, subject: str, *messages: tuple[bytes, dict[str, str] | None]
) -> None:
    nc = await admin(url)
    try:
        js = nc.jetstream()
        for body, headers in messages:
            await js.publish(subject, body, headers=headers)
    finally:
        await nc.close()


async def test_events_published_are_processed_and_acknowledged(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    seen: list[tuple[Any, str]] = []

    async def handle(event: Any, event_type: str) -> None:
        seen.append((event, event_type))

    source = source_for(processor_at(tmp_path, handle), unique_name, nats_url, streams)
    for n in range(5):
        await source.apublish({"n": n}, "order_created")
    settled = await source.arun(max_idle_polls=1, handle_signals=False)
    await source.aclose()
    assert settled == 5
    assert seen == [({"n": n}, "order_created") for n in range(5)]
    status = source.status()
    assert status["processed"] == 5
    assert status["available"]
    assert status["stream"] == unique_name
    info = await asyncio.to_thread(consumer_info, nats_url, unique_name, "worker")
    assert info.num_pending == 0
    assert info.num_ack_pending == 0
    assert info.config.ack_policy == api.AckPolicy.EXPLICIT
    assert info.config.max_deliver == -1  # the source gives up (into the store), not NATS
    assert info.config.ack_wait == pytest.approx(30.0)


def test_sync_publish_and_run(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    seen: list[Any] = []
    source = source_for(
        processor_at(tmp_path, lambda e, t: seen.append(e)), unique_name, nats_url, streams
    )
    try:
        source.publish({"n": 1}, "order_created")
        source.publish({"n": 2}, "order_created")
    finally:
        source.close()
    assert source.run(max_idle_polls=1, handle_signals=False) == 2
    assert seen == [{"n": 1}, {"n": 2}]


async def test_poison_messages_are_dead_lettered_alone_at_once(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    processor = processor_at(tmp_path, lambda e, t: None)
    source = source_for(processor, unique_name, nats_url, streams, max_message_bytes=1000)
    await source.apublish({"n": 0}, "good")  # makes the stream
    deep = b"[" * 100_000 + b"]" * 100_000
    await publish_raw(
        nats_url,
        f"{unique_name}.events",
        (b"\xff\xfe not utf-8", {"event-type": "bad"}),
        (b"{not json", {"event-type": "bad"}),
        (b'{"n": 1}', None),  # no type
        (b"x" * 2000, {"event-type": "big"}),
        (deep, {"event-type": "deep"}),
        (b'{"n": 2}', {"event-type": "good"}),
    )
    source.max_message_bytes = 300_000  # the deep one reaches the decoder
    await source.arun(max_idle_polls=1, handle_signals=False)
    await source.aclose()
    assert source.counts.processed == 2
    assert source.counts.poison == 5
    letters = processor.dead_letters.list()
    assert len(letters) == 5
    assert all(letter.reason.startswith("poison: ") for letter in letters)
    reasons = " | ".join(letter.reason for letter in letters)
    for words in ("not UTF-8", "not JSON", "no 'event-type'", "nested too deeply"):
        assert words in reasons
    info = await asyncio.to_thread(consumer_info, nats_url, unique_name, "worker")
    assert info.num_pending == 0
    assert info.num_ack_pending == 0


class Unsettled:
    """A processor whose store is down: nothing it is given is ever settled."""

    def __init__(self) -> None:
        self.calls = 0
        self.letters: list[dict[str, Any]] = []

    async def aprocess_message(self, event: Any, event_type: str) -> None:
        self.calls += 1
        raise ConnectionError("the dead-letter store is down")

    async def adead_letter_message(self, event: Any, event_type: str, **details: Any) -> int:
        self.letters.append({"event": event, **details})
        return len(self.letters)


async def test_a_message_delivered_too_often_is_dead_lettered_by_the_source(
    nats_url: str, unique_name: str, streams: list[str]
) -> None:
    processor = Unsettled()
    source = source_for(
        processor,
        unique_name,
        nats_url,
        streams,
        max_deliveries=3,
        requeue_delay=0.0,
        reconnect_interval=0.01,
        max_reconnect_interval=0.02,
    )
    await source.apublish({"n": 1}, "order_created")
    await source.arun(stop=lambda: bool(processor.letters), handle_signals=False)
    await source.aclose()
    assert processor.calls == 3  # deliveries 1..3 ran; the 4th was dead-lettered unrun
    assert processor.letters[0]["event"] == {"n": 1}
    assert processor.letters[0]["reason"] == "redelivered"
    assert processor.letters[0]["attempts"] == 3
    assert source.counts.requeued == 3
    assert source.counts.redelivered_too_often == 1
    info = await asyncio.to_thread(consumer_info, nats_url, unique_name, "worker")
    assert info.num_pending == 0
    assert info.num_ack_pending == 0


async def test_an_unsettled_message_is_naked_with_a_delay(
    nats_url: str, unique_name: str, streams: list[str]
) -> None:
    processor = Unsettled()
    source = source_for(
        processor, unique_name, nats_url, streams, requeue_delay=30.0, reconnect_interval=0.01
    )
    await source.apublish({"n": 1}, "order_created")
    await source.arun(max_idle_polls=3, handle_signals=False)
    await source.aclose()
    assert processor.calls == 1  # NAKed for 30 s: not redelivered within the run
    info = await asyncio.to_thread(consumer_info, nats_url, unique_name, "worker")
    assert info.num_ack_pending == 1
    assert info.num_redelivered == 0


async def test_heartbeats_keep_a_slow_batch_s_messages(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    calls: list[int] = []

    async def slow(event: Any, event_type: str) -> None:
        calls.append(event["n"])
        await asyncio.sleep(1.2)  # the third waits ~2.4 s in the batch: past AckWait

    # AckWait 2 s, a beat every 0.3 s: a margin a loaded machine's timers keep (at 1 s,
    # one late beat on a busy CI machine let a message be redelivered)
    source = source_for(
        processor_at(tmp_path, slow), unique_name, nats_url, streams, ack_wait=2.0, heartbeat=0.3
    )
    (tmp_path / "b").mkdir()
    other = source_for(processor_at(tmp_path / "b", slow), unique_name, nats_url, [])
    for n in range(3):
        await source.apublish({"n": n}, "slow")
    # a second consumer on the same durable would get a message whose AckWait ran out
    await asyncio.gather(
        source.arun(max_idle_polls=2, handle_signals=False),
        other.arun(max_idle_polls=18, handle_signals=False),
    )
    await source.aclose()
    # Every event processed and acknowledged. The heartbeats cover the fetched batch; a
    # message the server delivered into nats-py's buffer beyond what one fetch returned is
    # not the source's to beat for yet, so on a loaded machine it may come back once
    # (at least once allows that; the in-memory loop tests pin the beats themselves).
    assert sorted(set(calls)) == [0, 1, 2]
    assert len(calls) <= 4
    info = await asyncio.to_thread(consumer_info, nats_url, unique_name, "worker")
    assert info.num_ack_pending == 0


def test_heartbeat_must_be_shorter_than_ack_wait() -> None:
    with pytest.raises(ConfigError, match="heartbeat"):
        NatsJetStreamSource(Unsettled(), "a.b", ack_wait=5, heartbeat=5)
    assert NatsJetStreamSource(Unsettled(), "a.b", ack_wait=6).heartbeat == 2.0


async def test_the_stream_is_found_by_subject_or_made_after_it(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    subject = f"{unique_name}.orders.created"
    nc = await admin(nats_url)
    try:
        js = nc.jetstream()
        streams.append(unique_name)
        await js.add_stream(name=unique_name, subjects=[f"{unique_name}.orders.>"])
        found = NatsJetStreamSource(processor_at(tmp_path), subject, url=nats_url)
        await found.apublish({"n": 1}, "t")
        await found.aclose()
        assert (await js.stream_info(unique_name)).state.messages == 1

        lonely = f"{unique_name}_other.x"
        streams.append(f"{unique_name}_other_x")
        made = NatsJetStreamSource(processor_at(tmp_path), lonely, url=nats_url)
        await made.apublish({"n": 1}, "t")
        await made.aclose()
        info = await js.stream_info(f"{unique_name}_other_x")
        assert info.config.subjects == [lonely]
        assert info.config.retention == api.RetentionPolicy.WORK_QUEUE
    finally:
        await nc.close()


async def test_a_stream_that_does_not_capture_the_subject_is_a_config_error(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    nc = await admin(nats_url)
    try:
        js = nc.jetstream()
        streams.append(unique_name)
        await js.add_stream(name=unique_name, subjects=[f"{unique_name}.a.*"])
    finally:
        await nc.close()
    wrong = NatsJetStreamSource(
        processor_at(tmp_path), f"{unique_name}.b", stream=unique_name, url=nats_url
    )
    with pytest.raises(ConfigError, match=r"captures .* not the subject"):
        await wrong.arun(max_idle_polls=1, handle_signals=False)
    deeper = NatsJetStreamSource(
        processor_at(tmp_path), f"{unique_name}.a.>", stream=unique_name, url=nats_url
    )
    with pytest.raises(ConfigError, match="not the subject"):  # '*' does not cover '>'
        await deeper.arun(max_idle_polls=1, handle_signals=False)
    taken = NatsJetStreamSource(
        processor_at(tmp_path), f"{unique_name}.a.x", stream=f"{unique_name}_new", url=nats_url
    )
    streams.append(f"{unique_name}_new")
    with pytest.raises(ConfigError, match=f"the stream '{unique_name}' already captures it"):
        await taken.apublish({"n": 1}, "t")
    await deeper.aclose()
    await taken.aclose()


@pytest.mark.parametrize(
    ("retention", "hidden_lookups"),
    [("workqueue", 1), ("limits", 1), ("limits", 2)],
    ids=["made-alike", "made-otherwise", "still-loading"],
)
async def test_a_stream_made_elsewhere_between_lookup_and_create_is_found_again(
    nats_url: str,
    unique_name: str,
    streams: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    retention: str,
    hidden_lookups: int,
) -> None:
    """Another host (or this source's publishing connection) makes the stream after this
    source looked and before it created it: the stream is looked at again at once and
    used, not a ConfigError that stops the consumer. A server that still hides it on the
    second look (loading its streams from disk after a restart, as CI saw) is a moment's
    outage, and the reconnect finds it."""
    subject = f"{unique_name}.events"
    streams.append(unique_name)
    looked_up = nats.js.client.JetStreamContext.stream_info
    lookups: list[str] = []

    async def stale_lookup(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        lookups.append(name)
        if len(lookups) == 1:  # the first lookup answers "none", and the stream appears
            nc = await admin(nats_url)
            try:
                await nc.jetstream().add_stream(
                    name=name, subjects=[subject], retention=api.RetentionPolicy(retention)
                )
            finally:
                await nc.close()
        if len(lookups) <= hidden_lookups:
            raise nats.js.errors.NotFoundError
        return await looked_up(self, name, *args, **kwargs)

    monkeypatch.setattr(nats.js.client.JetStreamContext, "stream_info", stale_lookup)
    seen: list[Any] = []
    source = NatsJetStreamSource(
        processor_at(tmp_path, lambda e, t: seen.append(e)),
        subject,
        stream=unique_name,
        url=nats_url,
        poll_timeout=0.2,
        reconnect_interval=0.01,
    )
    running = asyncio.ensure_future(source.arun(handle_signals=False))
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not (lookups and source.status()["available"]):  # the consumer met the race
            assert asyncio.get_running_loop().time() < deadline, source.status()
            await asyncio.sleep(0.02)
        await source.apublish({"n": 1}, "order")
        while not seen:
            assert asyncio.get_running_loop().time() < deadline, source.status()
            await asyncio.sleep(0.02)
    finally:
        source.stop()
        await running
        await source.aclose()
    assert set(lookups) == {unique_name}
    assert seen == [{"n": 1}]
    if hidden_lookups == 1:  # made alike ("done") or otherwise ("name in use"): found again
        assert source.counts.broker_errors == 0, source.status()
    else:  # still hidden: one outage, and the reconnect's lookup finds it
        assert source.counts.broker_errors == 1, source.status()
        assert "appeared while this source was creating it" in source.status()["last_error"]


async def test_a_publish_and_the_consumer_s_start_make_one_stream_without_an_error(
    nats_url: str,
    unique_name: str,
    streams: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The publisher's connection and the consumer's start together: the stream is made
    once, by one of them, and the other finds it. Both making it raced inside the
    server (CI: "subjects overlap", then the consumer's reconnect cut the publish in
    flight with 'connection closed')."""
    streams.append(unique_name)
    created = nats.js.client.JetStreamContext.add_stream
    creates: list[Any] = []

    async def counted_create(self: Any, *args: Any, **kwargs: Any) -> Any:
        creates.append(kwargs.get("name"))
        return await created(self, *args, **kwargs)

    monkeypatch.setattr(nats.js.client.JetStreamContext, "add_stream", counted_create)
    seen: list[Any] = []
    source = NatsJetStreamSource(
        processor_at(tmp_path, lambda e, t: seen.append(e)),
        f"{unique_name}.events",
        stream=unique_name,
        url=nats_url,
        poll_timeout=0.2,
    )
    running = asyncio.ensure_future(source.arun(handle_signals=False))
    try:
        await asyncio.gather(*(source.apublish({"n": n}, "order") for n in range(5)))
        deadline = asyncio.get_running_loop().time() + 10
        while len(seen) < 5:
            assert asyncio.get_running_loop().time() < deadline, source.status()
            await asyncio.sleep(0.02)
    finally:
        source.stop()
        await running
        await source.aclose()
    assert creates == [unique_name]
    assert sorted(e["n"] for e in seen) == list(range(5))
    assert source.counts.broker_errors == 0, source.status()


async def test_an_existing_consumer_is_updated_or_refused(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path, caplog: Any
) -> None:
    subject = f"{unique_name}.events"
    streams.append(unique_name)
    nc = await admin(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=unique_name, subjects=[f"{unique_name}.>"])
        await js.add_consumer(
            unique_name,
            api.ConsumerConfig(
                durable_name="old", ack_wait=5, max_deliver=3, filter_subject=subject
            ),
        )
        await js.add_consumer(
            unique_name,
            api.ConsumerConfig(durable_name="elsewhere", filter_subject=f"{unique_name}.other"),
        )
    finally:
        await nc.close()
    caplog.set_level(logging.WARNING, logger="coordination")
    updated = NatsJetStreamSource(
        processor_at(tmp_path), subject, stream=unique_name, durable="old", url=nats_url
    )
    await updated.arun(max_idle_polls=1, handle_signals=False)
    info = await asyncio.to_thread(consumer_info, nats_url, unique_name, "old")
    assert info.config.ack_wait == pytest.approx(30.0)
    assert info.config.max_deliver == -1
    assert "updating the consumer 'old'" in caplog.text

    refused = NatsJetStreamSource(
        processor_at(tmp_path), subject, stream=unique_name, durable="elsewhere", url=nats_url
    )
    with pytest.raises(ConfigError, match=r"exists with another configuration: it filters"):
        await refused.arun(max_idle_polls=1, handle_signals=False)


async def test_trace_context_travels_in_headers(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    trace = pytest.importorskip("opentelemetry.trace")
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    seen: list[str] = []

    async def handle(event: Any, event_type: str) -> None:
        context = trace.get_current_span().get_span_context()
        seen.append(format(context.trace_id, "032x"))

    source = source_for(processor_at(tmp_path, handle), unique_name, nats_url, streams)
    with tracer.start_as_current_span("publish") as span:
        await source.apublish({"n": 1}, "traced")
        published = format(span.get_span_context().trace_id, "032x")
    await source.arun(max_idle_polls=1, handle_signals=False)
    await source.aclose()
    assert seen == [published]


async def test_headers_and_bodies_published_by_others_are_read_as_the_envelope(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    seen: list[Any] = []
    source = source_for(
        processor_at(tmp_path, lambda e, t: seen.append((e, t))), unique_name, nats_url, streams
    )
    await source.apublish({"made": "here"}, "first")  # the stream
    body = json.dumps({"ü": "ñ", "n": [1, 2.5, None]}, ensure_ascii=False).encode()
    await publish_raw(
        nats_url, f"{unique_name}.events", (body, {"event-type": "other", "x-extra": "1"})
    )
    await source.arun(max_idle_polls=1, handle_signals=False)
    await source.aclose()
    assert seen[1] == ({"ü": "ñ", "n": [1, 2.5, None]}, "other")


def test_nats_inside_the_package_is_the_nats_py_library() -> None:
    from coordination.backends.nats import _source

    assert _source.nats is nats
    assert callable(nats.connect)
    assert "coordination" not in (nats.__file__ or "")


def test_passwords_stay_out_of_reprs_and_errors() -> None:
    source = NatsJetStreamSource(Unsettled(), "a.b", url="nats://alice:s3cret@127.0.0.1:1")
    assert "s3cret" not in repr(source)
    with pytest.raises(ConfigError) as caught:
        NatsJetStreamSource(Unsettled(), "a.b", url="amqp://alice:s3cret@host")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"subject": ""}, "subject"),
        ({"subject": "a..b"}, "empty token"),
        ({"subject": "a.b*"}, "whole tokens"),
        ({"subject": "a.>.b"}, "last token"),
        ({"subject": "a b"}, "without spaces"),
        ({"subject": 7}, "subject"),
        ({"stream": "a.b"}, "stream"),
        ({"durable": ""}, "durable"),
        ({"url": "http://x"}, "url"),
        ({"url": []}, "url"),
        ({"retention": "forever"}, "retention"),
        ({"ack_wait": 0}, "ack_wait"),
        ({"requeue_delay": -1}, "requeue_delay"),
        ({"batch_size": 0}, "batch_size"),
        ({"name": "a\nb"}, "name"),
    ],
)
def test_bad_settings_are_config_errors(options: dict[str, Any], words: str) -> None:
    subject = options.pop("subject", "a.b")
    with pytest.raises(ConfigError, match=words):
        NatsJetStreamSource(Unsettled(), subject, **options)


def test_a_processor_without_aprocess_message_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="aprocess_message"):
        NatsJetStreamSource(object(), "a.b")  # type: ignore[arg-type]


async def test_publishing_to_a_wildcard_subject_is_refused() -> None:
    source = NatsJetStreamSource(Unsettled(), "a.*")
    with pytest.raises(ConfigError, match="wildcard"):
        await source.apublish({"n": 1}, "t")


async def test_an_outage_is_logged_once_counted_and_reconnected(
    private_nats: Any, unique_name: str, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="coordination")
    seen: list[Any] = []
    source = NatsJetStreamSource(
        processor_at(tmp_path, lambda e, t: seen.append(e["n"])),
        f"{unique_name}.events",
        stream=unique_name,
        url=private_nats.url,
        poll_timeout=0.2,
        reconnect_interval=0.05,
        max_reconnect_interval=0.2,
    )

    async def until(condition: Any, seconds: float) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, source.status()
            await asyncio.sleep(0.02)

    running = asyncio.ensure_future(source.arun(handle_signals=False))
    try:
        for n in range(5):
            await source.apublish({"n": n}, "order")
        await until(lambda: len(seen) == 5, 10)
        await asyncio.to_thread(private_nats.stop)
        await until(lambda: source.counts.broker_errors >= 3, 10)
        await asyncio.sleep(1.0)
        status = source.status()
        assert not status["available"]
        assert status["broker_errors"] < 20  # backoff, not a spin (1 s, at most 0.2 s apart)
        assert "nats://" in status["last_error"] or "Error" in status["last_error"]
        with pytest.raises(StoreError):  # the publisher is told, not left waiting
            await source.apublish({"n": 99}, "order")
        await asyncio.to_thread(private_nats.start)  # same port, same store: the stream stays
        await until(lambda: source.status()["available"], 15)
        for n in range(5, 10):
            await source.apublish({"n": n}, "order")
        await until(lambda: len(seen) == 10, 10)
    finally:
        source.stop()
        await running
        await source.aclose()
    assert sorted(seen) == list(range(10))
    said = [r.getMessage() for r in caplog.records if r.name == "coordination.nats"]
    assert len([line for line in said if "unavailable" in line]) == 1, said  # logged once
    assert any(" again" in line for line in said), said  # and its end
    info = await asyncio.to_thread(consumer_info, private_nats.url, unique_name, "coordination")
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


def test_two_loops_publishing_at_once_keep_a_connection_each(
    nats_url: str, unique_name: str, streams: list[str], tmp_path: Path
) -> None:
    """A sync publish and an apublish on another thread's loop, taking turns, keep a
    connection each, and both are closed at the end (see tests/backends/_two_loops.py)."""
    source = source_for(processor_at(tmp_path), unique_name, nats_url, streams)
    opened = publish_from_two_loops(source, "_open_link")
    assert len(opened) == 2  # one per loop, however many turns
    assert all(link.nc.is_closed for link in opened)

    async def stored() -> int:
        nc = await admin(nats_url)
        try:
            return (await nc.jetstream().stream_info(unique_name)).state.messages
        finally:
            await nc.close()

    assert asyncio.run(stored()) == 40
