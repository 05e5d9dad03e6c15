"""The stream or the durable consumer deleted while the source consumes (an operator, a
cleanup script): a pull from a consumer that is gone just comes back empty, so the source
must look, say so, make both again and go on consuming — not sit "available", fetching
nothing, forever."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from coordination.backends.nats import NatsJetStreamSource
from coordination.integration import CoordinationEventProcessor

from .conftest import admin

pytestmark = pytest.mark.nats


@pytest.mark.parametrize("deleted", ["stream", "consumer"])
def test_a_stream_or_consumer_deleted_while_consuming_is_made_again_and_consumed(
    deleted: str,
    nats_url: str,
    unique_name: str,
    streams: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="coordination")
    stream = f"S_{unique_name}"
    streams.append(stream)
    seen: list[int] = []
    with CoordinationEventProcessor(dead_letter_path=":memory:") as processor:

        @processor.on("order")
        def handle(event: Any, event_type: str) -> None:
            seen.append(event["n"])

        source = NatsJetStreamSource(
            processor,
            f"attack2.{unique_name}",
            stream=stream,
            durable="d",
            url=nats_url,
            poll_timeout=0.05,
            reconnect_interval=0.01,
        )
        source._consumer_check_every = 0.1

        def until(condition: Any) -> None:
            deadline = time.monotonic() + 5
            while not condition():
                assert time.monotonic() < deadline, (seen, source.status())
                time.sleep(0.01)

        async def delete() -> None:
            nc = await admin(nats_url)
            js = nc.jetstream()
            # The handler ran, but its ack is sent after it, without waiting for the
            # server: deleting the consumer before the ack lands leaves event 1 in the
            # work queue, and the new consumer rightly delivers it again (at least once).
            # This test is about the deletion, so it waits for the ack first.
            deadline = time.monotonic() + 5
            while (await js.stream_info(stream)).state.messages:
                assert time.monotonic() < deadline, "event 1 was never acknowledged"
                await asyncio.sleep(0.01)
            if deleted == "stream":
                await js.delete_stream(stream)
            else:
                await js.delete_consumer(stream, "d")
            await nc.close()

        running = threading.Thread(target=source.run, kwargs={"handle_signals": False})
        running.start()
        try:
            source.publish({"n": 1}, "order")
            until(lambda: seen == [1])
            asyncio.run(delete())
            until(lambda: source.counts.reconnects >= 1)
            until(lambda: source.status()["available"])
            source.publish({"n": 2}, "order")
            until(lambda: seen == [1, 2])
        finally:
            source.stop()
            running.join(10)
            source.close()
    assert "was deleted" in caplog.text


async def test_the_consumer_s_reconnect_leaves_the_publisher_s_connection_alone(
    nats_url: str, unique_name: str, streams: list[str]
) -> None:
    """The consumer's trouble is the consumer's: its reconnect used to close every
    connection of the loop, and a publish in flight on the publisher's (healthy) one failed
    with 'connection closed'."""
    stream = f"S_{unique_name}"
    streams.append(stream)
    seen: list[int] = []
    with CoordinationEventProcessor(dead_letter_path=":memory:") as processor:
        processor.on("order")(lambda event, event_type: seen.append(event["n"]))
        source = NatsJetStreamSource(
            processor,
            f"attack2.{unique_name}",
            stream=stream,
            durable="d",
            url=nats_url,
            poll_timeout=0.05,
            reconnect_interval=0.01,
        )
        source._consumer_check_every = 0.05
        running = asyncio.ensure_future(source.arun(handle_signals=False))
        try:
            await source.apublish({"n": 0}, "order")
            publisher = await source._publisher_link()
            nc = await admin(nats_url)
            try:
                await nc.jetstream().delete_consumer(stream, "d")
            finally:
                await nc.close()
            n = 1
            deadline = asyncio.get_running_loop().time() + 10
            while source.counts.reconnects == 0 or not source.status()["available"]:
                assert asyncio.get_running_loop().time() < deadline, source.status()
                await source.apublish({"n": n}, "order")  # never a StoreError meanwhile
                n += 1
                await asyncio.sleep(0.005)
            while set(seen) != set(range(n)):  # at least once: a re-made consumer may
                # deliver again what was acknowledged just before the deletion
                assert asyncio.get_running_loop().time() < deadline, (n, seen)
                await asyncio.sleep(0.02)
            assert await source._publisher_link() is publisher  # the same connection
        finally:
            source.stop()
            await running
            await source.aclose()
    assert set(seen) == set(range(n))
