"""Fixtures for the RabbitMQ source's tests: ``amqp``, a plain aio-pika client on the
shared broker (publish raw messages, read a queue's depth, take and give back messages),
which deletes every queue a test names through it, even when the test fails."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

import aio_pika
import pytest

from coordination.integration import CoordinationEventProcessor


class Amqp:
    """A synchronous face on aio-pika for the tests (its own event loop)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.connection, self.channel = self.run(self._open())
        self.queues: set[str] = set()

    async def _open(self) -> tuple[Any, Any]:
        connection = await aio_pika.connect(self.url)
        return connection, await connection.channel()

    def reopen(self) -> None:
        """A new connection, after the broker closed this one."""
        with contextlib.suppress(Exception):
            self.run(self.connection.close())
        self.connection, self.channel = self.run(self._open())

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def name(self, queue: str) -> str:
        """``queue``, deleted when the test ends."""
        self.queues.add(queue)
        return queue

    def declare(self, queue: str, queue_type: str = "quorum", **arguments: Any) -> str:
        if queue_type == "quorum":
            arguments["x-queue-type"] = "quorum"
        self.run(self.channel.declare_queue(self.name(queue), durable=True, arguments=arguments))
        return queue

    def publish(
        self,
        queue: str,
        body: bytes,
        headers: Mapping[str, Any] | None = None,
        type: str | None = None,
    ) -> None:
        message = aio_pika.Message(body, headers=dict(headers or {}), type=type)
        self.run(self.channel.default_exchange.publish(message, routing_key=queue))

    def publish_many(self, queue: str, messages: list[tuple[bytes, dict[str, Any]]]) -> None:
        """Publish ``(body, headers)`` pairs, confirmed, in order."""

        async def publish() -> None:
            channel = await self.connection.channel(publisher_confirms=True)
            exchange = channel.default_exchange
            for start in range(0, len(messages), 500):
                await asyncio.gather(
                    *(
                        exchange.publish(aio_pika.Message(body, headers=headers), routing_key=queue)
                        for body, headers in messages[start : start + 500]
                    )
                )
            await channel.close()

        self.run(publish())

    def depth(self, queue: str) -> tuple[int, int]:
        """(messages ready, consumers) of ``queue``."""
        result = self.run(self.channel.declare_queue(queue, passive=True)).declaration_result
        return result.message_count, result.consumer_count

    def settled(
        self, queue: str, expected: tuple[int, int], timeout: float = 10.0
    ) -> tuple[int, int]:
        """``depth(queue)`` once it is ``expected`` (a quorum queue counts a closed
        consumer's messages back a moment after the close), or as it is at the timeout."""
        deadline = time.monotonic() + timeout
        while (found := self.depth(queue)) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def take(self, queue: str) -> Any:
        """``basic.get`` one message (to nack it: a delivery that failed)."""
        declared = self.run(self.channel.declare_queue(queue, passive=True))
        return self.run(declared.get(timeout=5))

    def close(self) -> None:
        try:
            for queue in sorted(self.queues):
                self.run(self.channel.queue_delete(queue))
        finally:
            self.run(self.connection.close())
            self.loop.close()


@pytest.fixture
def amqp(rabbitmq_url: str) -> Iterator[Amqp]:
    client = Amqp(rabbitmq_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def queue(amqp: Amqp, unique_name: str) -> str:
    """A fresh queue name (the source declares it), deleted after the test."""
    return amqp.name(unique_name)


@pytest.fixture
def processor() -> Iterator[CoordinationEventProcessor]:
    """A processor recording what it handled, its dead letters in memory."""
    handled: list[tuple[Any, str]] = []

    async def handle(event: Any, event_type: str) -> None:
        handled.append((event, event_type))

    made = CoordinationEventProcessor(
        handle, error_config={"max_retries": 0}, dead_letter_path=":memory:"
    )
    made.handled = handled  # type: ignore[attr-defined]
    yield made
    made.dead_letters.close()
