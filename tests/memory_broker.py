"""An in-memory broker for testing ``BrokerSource`` without a server, strict like a real one
(the shared loop's tests, the readers', the spans'; the sources' own tests use RabbitMQ and
NATS).

Each delivery is settled at most once: an ``ack`` or ``requeue`` after the first is recorded
in ``MemoryBroker.twice`` (a real broker answers it with a channel error). Closing the
connection (``_disconnect``) gives back every delivery still outstanding, as RabbitMQ and
NATS do, and a delivery from a closed connection can no longer be acknowledged.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coordination.backends._messages import Message, encode_message
from coordination.backends._source import BrokerSource, Delivery


class BrokerDown(ConnectionError):
    """The in-memory broker's connection error."""


@dataclass
class MemoryDelivery:
    broker: MemoryBroker
    body: bytes
    headers: Mapping[str, Any]
    delivery_count: int | None
    ident: str
    fallback_type: str | None = None
    connection: int = 0
    settled: str | None = None  # "acked", "requeued", "returned" (by closing)

    def _settle(self, how: str) -> None:
        self.broker.check()
        if self.connection != self.broker.connection:
            raise BrokerDown(f"delivery {self.ident} belongs to a closed connection")
        if self.settled is not None:
            self.broker.twice.append((self, how))
            return
        self.settled = how
        self.broker.outstanding.pop(self.ident, None)

    async def ack(self) -> None:
        self._settle("acked")
        self.broker.acked.append(self)

    async def requeue(self) -> None:
        self._settle("requeued")
        self.broker.requeued.append(self)
        self.broker.queue.append((self.body, dict(self.headers), (self.delivery_count or 0)))

    async def in_progress(self) -> None:
        self.broker.check()
        self.broker.heartbeats += 1


@dataclass
class MemoryBroker:
    queue: deque[tuple[bytes, dict[str, Any], int]] = field(default_factory=deque)
    acked: list[MemoryDelivery] = field(default_factory=list)
    requeued: list[MemoryDelivery] = field(default_factory=list)
    twice: list[tuple[MemoryDelivery, str]] = field(default_factory=list)
    outstanding: dict[str, MemoryDelivery] = field(default_factory=dict)
    down: bool = False
    heartbeats: int = 0
    tags: int = 0
    connection: int = 0  # bumped by every close: older deliveries cannot be settled
    fetch_forever: bool = False  # an empty queue blocks the fetch until it is cancelled

    def check(self) -> None:
        if self.down:
            raise BrokerDown("the in-memory broker is down")

    def put(self, body: bytes, headers: Mapping[str, Any], delivered_before: int = 0) -> None:
        self.queue.append((body, dict(headers), delivered_before))

    def publish(self, event: Any, event_type: str) -> None:
        """``event`` as a source publishes it (the library's envelope)."""
        message = encode_message(event, event_type)
        self.put(message.body, message.headers)

    def close_connection(self) -> None:
        """What a broker does when the consumer's connection closes."""
        for delivery in list(self.outstanding.values()):
            delivery.settled = "returned"
            self.queue.append(
                (delivery.body, dict(delivery.headers), (delivery.delivery_count or 0))
            )
        self.outstanding.clear()
        self.connection += 1


class MemorySource(BrokerSource):
    """A source consuming ``memory``; ``queue`` names it on the readers (metrics, page)."""

    broker = "memory"

    def __init__(
        self, processor: Any, memory: MemoryBroker, *, queue: str = "memory", **options: Any
    ) -> None:
        super().__init__(processor, **options)
        self.queue = queue
        self.memory = memory
        self.connects = 0
        self.connected = False

    async def _connect(self) -> None:
        self.memory.check()
        if not self.connected:
            self.connected = True
            self.connects += 1

    async def _fetch(self, count: int, wait: float) -> list[Delivery]:
        self.memory.check()
        if not self.memory.queue:
            if self.memory.fetch_forever:
                await asyncio.Event().wait()
            await asyncio.sleep(min(wait, 0.001))
            return []
        deliveries: list[Delivery] = []
        while self.memory.queue and len(deliveries) < count:
            body, headers, before = self.memory.queue.popleft()
            self.memory.tags += 1
            delivery = MemoryDelivery(
                self.memory,
                body,
                headers,
                before + 1,
                str(self.memory.tags),
                connection=self.memory.connection,
            )
            self.memory.outstanding[delivery.ident] = delivery
            deliveries.append(delivery)
        return deliveries

    async def _publish(self, message: Message) -> None:
        self.memory.check()
        self.memory.put(message.body, dict(message.headers))

    async def _disconnect(self) -> None:
        if self.connected:
            self.connected = False
            self.memory.close_connection()

    async def _disconnect_consumer(self) -> None:  # publishing holds no connection here
        await self._disconnect()

    def _broker_errors(self) -> tuple[type[BaseException], ...]:
        return (BrokerDown,)


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


def message(event: Any, event_type: str = "order") -> tuple[bytes, dict[str, Any]]:
    return json.dumps(event).encode(), {"event-type": event_type}


# a source that polls and reconnects at once (the readers' tests wait on its counts)
FAST: dict[str, Any] = {"poll_timeout": 0.001, "reconnect_interval": 0.001}
