"""One AMQP delivery as ``BrokerSource`` sees it, and how often it has been delivered.

A quorum queue counts for us: RabbitMQ sets ``x-delivery-count`` (the deliveries that
ended without an ack: a nack with requeue, a channel or connection that closed) on every
redelivery, so this delivery is number ``x-delivery-count + 1``.

A classic queue keeps no count, only the ``redelivered`` flag ("delivered before, maybe").
So the source keeps the count in a header of its own, ``x-coordination-deliveries`` (the
deliveries that ended without an ack): a message that arrives *redelivered* is published
again at the tail of the queue with the header one higher — confirmed by the broker, and
only then acknowledged — and not processed this time; the copy, which arrives fresh, is
delivery number ``header + 1``. A redelivered message whose count would pass
``max_deliveries`` is handed to the base class instead, which dead-letters it. The cost
is one confirmed publish per redelivery (none on the healthy path), and a redelivered
message loses its place in the queue.

Acknowledgements are coalesced (``AckWindow``): settling a message marks it, and the
messages settled in delivery order are acknowledged with one ``basic.ack(multiple)``
the next time the event loop comes up for air (while a handler awaits, or the source
waits for more) — one frame per batch instead of one per message, and never more than
what was settled. A message settled out of order (``concurrency`` > 1) is acknowledged
alone at once, so a slow one never holds the others' acks back. A requeue is sent at
once. A process killed before a flush has its settled-but-unacknowledged messages
delivered again: at most a batch (``prefetch``) of duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from typing import Any

import aiormq.abc

__all__ = [
    "CLASSIC_COUNT_HEADER",
    "QUORUM_COUNT_HEADER",
    "AckWindow",
    "RabbitMQDelivery",
    "failed_before",
    "headers_of",
]

QUORUM_COUNT_HEADER = "x-delivery-count"
CLASSIC_COUNT_HEADER = "x-coordination-deliveries"
_NO_HEADERS: Mapping[str, Any] = {}
_MAX_COUNT = 1 << 31  # a hostile header's number stays a number


def failed_before(headers: Mapping[str, Any], name: str) -> int:
    """The whole number in header ``name`` (deliveries that ended without an ack); 0 when
    it is missing or not a sane count (a publisher's header is not trusted to be one)."""
    value = headers.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return min(max(value, 0), _MAX_COUNT)


class AckWindow:
    """The delivery tags one channel handed out and not yet settled; acks coalesced."""

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self._channel = channel
        self._outstanding: deque[int] = deque()  # in delivery order (tags ascend)
        self._settled: set[int] = set()  # settled out of order, still in _outstanding
        self._upto = 0  # every tag up to this one is settled
        self._acked = 0  # and acknowledged up to this one
        self._flushing: asyncio.Future[None] | None = None
        self.error: BaseException | None = None  # a flush failed: the channel is gone

    def delivered(self, tag: int) -> None:
        self._outstanding.append(tag)

    def __len__(self) -> int:
        return len(self._outstanding)

    async def ack(self, tag: int) -> None:
        if self.error is not None:
            raise self.error
        if self._settle(tag, deferred=True):
            if self._flushing is None:
                self._flushing = asyncio.ensure_future(self._flush())
            return
        await self._channel.basic_ack(tag)  # out of order: alone, at once

    async def requeue(self, tag: int) -> None:
        await self._channel.basic_nack(tag, requeue=True)
        self._settle(tag, deferred=False)

    def _settle(self, tag: int, *, deferred: bool) -> bool:
        """Mark ``tag`` settled; True when its ack can wait for the next flush (it was
        the oldest outstanding tag). A multiple ack must name a tag the broker still
        holds, so only a deferred ack moves ``_upto``; the tags settled out of order
        after it (acked alone, or requeued) are only dropped from the window."""
        outstanding, settled = self._outstanding, self._settled
        if not outstanding or outstanding[0] != tag:
            settled.add(tag)
            return False
        outstanding.popleft()
        if deferred:
            self._upto = tag
        while outstanding and outstanding[0] in settled:
            settled.discard(outstanding.popleft())
        return deferred

    async def _flush(self) -> None:
        try:
            # A multiple ack covers only what the broker still holds for this channel:
            # tags requeued or acked alone in between are not acknowledged twice.
            while self._upto > self._acked:
                upto = self._upto
                await self._channel.basic_ack(upto, multiple=True)
                self._acked = upto
        except Exception as exc:  # the next ack or fetch raises it (a broker error)
            self.error = exc
        finally:
            self._flushing = None

    async def flush(self) -> None:
        """Send what is settled and not yet acknowledged (before a close)."""
        if self._flushing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._flushing
        if self._upto > self._acked and self.error is None:
            await self._flush()
        if self.error is not None:
            raise self.error


def headers_of(message: aiormq.abc.DeliveredMessage) -> Mapping[str, Any]:
    return message.header.properties.headers or _NO_HEADERS


class RabbitMQDelivery:
    """A delivered message with the ``Delivery`` shape ``BrokerSource`` settles.

    It wraps aiormq's ``DeliveredMessage`` as it came off the channel: the consumer only
    buffers messages, so aio-pika's ``IncomingMessage`` (its properties copied one by
    one, and a task of its own per message) would be built for nothing."""

    __slots__ = ("_window", "delivery_count", "message")

    def __init__(
        self,
        message: aiormq.abc.DeliveredMessage,
        delivery_count: int | None,
        window: AckWindow,
    ) -> None:
        self.message = message
        self.delivery_count = delivery_count
        self._window = window

    @property
    def body(self) -> bytes:
        return self.message.body

    @property
    def headers(self) -> Mapping[str, Any]:
        return self.message.header.properties.headers or _NO_HEADERS

    @property
    def ident(self) -> str:
        return f"delivery tag {self.message.delivery_tag}"

    @property
    def fallback_type(self) -> str | None:
        kind = self.message.header.properties.message_type
        return kind if isinstance(kind, str) and kind else None

    async def ack(self) -> None:
        tag = self.message.delivery_tag
        assert tag is not None  # a consumed message always has one
        await self._window.ack(tag)

    async def requeue(self) -> None:
        tag = self.message.delivery_tag
        assert tag is not None
        await self._window.requeue(tag)

    async def in_progress(self) -> None:
        """Nothing to tell: RabbitMQ waits for an ack up to its ``consumer_timeout``."""
