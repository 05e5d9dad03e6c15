"""The queue deleted while the source consumes it (an operator, a cleanup script): the
broker cancels the consumer. The source must notice, say so, declare the queue again and
go on consuming — not sit "available" on a consumer that no longer exists."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import aiormq
import pytest

from coordination import StoreError
from coordination.backends.rabbitmq import RabbitMQSource

from .conftest import Amqp

pytestmark = pytest.mark.rabbitmq


def test_a_queue_deleted_while_consuming_is_declared_again_and_consumed(
    queue: str, amqp: Amqp, processor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="coordination")
    # the backoff capped low: under CI's load a few failed reconnects in a row (the queue
    # still being deleted) had doubled it past the test's 5 s wait
    source = RabbitMQSource(
        processor, queue, reconnect_interval=0.01, max_reconnect_interval=0.2, poll_timeout=0.05
    )

    def until(condition: Any) -> None:
        deadline = time.monotonic() + 5
        while not condition():
            assert time.monotonic() < deadline, source.status()
            time.sleep(0.01)

    running = threading.Thread(target=source.run, kwargs={"handle_signals": False})
    running.start()
    try:
        source.publish({"n": 1}, "order")
        until(lambda: len(processor.handled) == 1)
        amqp.run(amqp.channel.queue_delete(queue))
        until(lambda: source.counts.reconnects >= 1)
        until(lambda: source.status()["available"])

        def published() -> bool:
            try:
                source.publish({"n": 2}, "order")
            except StoreError:  # NO_ROUTE: the reconnect has not declared the queue yet
                return False
            return True

        until(published)  # the queue is there again
        until(lambda: len(processor.handled) == 2)
    finally:
        source.stop()
        running.join(10)
        source.close()
    assert [event["n"] for event, _ in processor.handled] == [1, 2]
    assert "cancelled the consumer" in caplog.text


async def test_the_consumer_s_reconnect_leaves_the_publisher_s_connection_alone(
    queue: str, processor: Any
) -> None:
    """The consuming connection breaks while the same loop publishes: only it is
    reopened. The loop's reconnect used to close every connection of the loop, the
    publisher's healthy one with its publishes in flight."""
    source = RabbitMQSource(processor, queue, reconnect_interval=0.01, poll_timeout=0.05)
    running = asyncio.ensure_future(source.arun(handle_signals=False))
    try:
        await source.apublish({"n": 0}, "order")
        deadline = asyncio.get_running_loop().time() + 10
        while not processor.handled or source._consumer is None:
            assert asyncio.get_running_loop().time() < deadline, source.status()
            await asyncio.sleep(0.01)
        publisher = source._publishers.get()
        await source._consumer.connection.close()  # the consumer's link breaks
        n = 1
        while source.counts.reconnects == 0 or not source.status()["available"]:
            assert asyncio.get_running_loop().time() < deadline, source.status()
            try:
                await source.apublish({"n": n}, "order")
            except StoreError as exc:  # never the connection cut under the publish; the
                # quorum queue may nack one (seen once in CI-like load), as it may anytime
                if not isinstance(exc.__cause__, aiormq.exceptions.DeliveryError):
                    raise
                continue  # published again
            n += 1
            await asyncio.sleep(0.005)
        while {event["n"] for event, _ in processor.handled} != set(range(n)):
            assert asyncio.get_running_loop().time() < deadline, source.status()
            await asyncio.sleep(0.01)
        assert source._publishers.get() is publisher  # the same connection, never reopened
    finally:
        source.stop()
        await running  # its end closes both connections of this loop
