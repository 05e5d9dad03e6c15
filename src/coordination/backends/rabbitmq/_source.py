"""``RabbitMQSource``: feeds an event processor from a RabbitMQ queue, losing nothing.

The consume loop, settling, outages and stopping are ``BrokerSource``'s (see
``coordination.backends._source``); this module gives it RabbitMQ's steps:

- **connect**: one connection (aio-pika, not its "robust" kind: the base class owns
  reconnecting, so an outage is logged, counted and backed off in one place), a channel
  with ``basic.qos(prefetch)``, the durable queue declared (a mismatch is a
  ``ConfigError``), and a consumer whose callback only appends to a local buffer;
- **fetch**: drain that buffer. The broker never sends more than ``prefetch`` messages
  unacknowledged, so the buffer is bounded and ``prefetch`` is the backpressure;
- **publish**: a second connection with publisher confirms, to the default exchange
  (routing key = the queue), persistent, ``mandatory`` (unroutable is an error), with the
  AMQP ``type`` property set to the event type;
- **disconnect**: cancel the consumer, nack with requeue what is still buffered, close.
  What was delivered but not acknowledged goes back to the queue when the connection
  closes, however it closes (SIGKILL included).

How often a message has been delivered is ``x-delivery-count`` on a quorum queue, a header
of the source's own on a classic queue (see ``_delivery``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aio_pika
import aiormq.abc
import aiormq.connection
import aiormq.exceptions
import pamqp.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue
from aio_pika.connection import make_url
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, ChannelPreconditionFailed
from pamqp.commands import Basic

from ..._errors import ConfigError
from ..._logging import log_extra
from ..._redact import error_text, redact
from ..._time import AsyncSleep, Clock
from .._messages import DEFAULT_MAX_MESSAGE_BYTES, EVENT_TYPE_HEADER, Message
from .._source import (
    BrokerSource,
    Delivery,
    LoopLock,
    MessageProcessor,
    PerLoop,
    _check_seconds,
)
from ._delivery import (
    CLASSIC_COUNT_HEADER,
    QUORUM_COUNT_HEADER,
    AckWindow,
    RabbitMQDelivery,
    failed_before,
    headers_of,
)
from ._queue import QueueSpec, QueueType, mismatch_error

__all__ = ["RabbitMQSource"]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
_MAX_PREFETCH = 65_535  # basic.qos prefetch-count is a short
# The broker refusing the settings (a login, a vhost, a permission): not an outage.
_REFUSALS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AuthenticationError,
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.ConnectionNotAllowed,  # no such virtual host, or not allowed on it
    aiormq.exceptions.ChannelAccessRefused,  # no permission on the queue
)
# How often an idle consumer asks whether the broker still delivers to it (a passive
# declaration: one round trip).
_CONSUMER_CHECK_INTERVAL = 1.0
_CLOSE_TIMEOUT = 5.0  # a stop never hangs on a broker that stopped answering
# A quorum queue nacks a publish while it has no leader (just declared, or a node lost):
# sent again after 0.05, 0.1, 0.2 s before the publisher is told (CI saw the first
# publish to a fresh queue nacked under load)
_NACK_RETRIES = 3
_NACK_PAUSE = 0.05
# The exceptions that mean the broker or the link to it failed (not a bug of ours).
_BROKER_ERRORS: tuple[type[BaseException], ...] = (
    AMQPError,
    ChannelInvalidStateError,  # a RuntimeError: acking on a channel that closed
    OSError,
    TimeoutError,
    pamqp.exceptions.PAMQPException,
)


# aiormq logs every failed connect at ERROR ("error when creating transport"): a line per
# reconnect attempt. The loop already logs an outage once and counts every attempt, so
# aiormq's connection logs are dropped while this source connects (and in the tasks
# aiormq starts then, which inherit the context: the source reports what they would).
# A context variable, so other aiormq users in the process keep their logs.
_connecting: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "coordination_rabbitmq_connecting", default=False
)


class _QuietWhileConnecting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _connecting.get()


aiormq.connection.log.addFilter(_QuietWhileConnecting())  # the logger that writes the line


class _Link:
    """One connection and what the source opened on it, bound to one event loop."""

    def __init__(self, connection: AbstractConnection, loop: asyncio.AbstractEventLoop) -> None:
        self.connection = connection
        self.loop = loop
        self.channel: AbstractChannel | None = None
        self.queue: AbstractQueue | None = None
        self.exchange: AbstractExchange | None = None  # publishing (confirmed)
        self.underlay: aiormq.abc.AbstractChannel | None = None  # the consuming channel
        self.consumer_tag: str | None = None
        self.window: AckWindow | None = None  # the consuming channel's acks
        self.inbox: deque[aiormq.abc.DeliveredMessage] = deque()
        self.saw_ready = False  # the last check found messages ready, none came since
        self.next_check = 0.0  # when an idle poll may next ask for the queue's depth
        self.ready = asyncio.Event()
        self.lost: BaseException | None = None
        connection.close_callbacks.add(self._closed)

    def _closed(self, _sender: Any, error: BaseException | None = None) -> None:
        self.lost = error or ConnectionError("the connection to RabbitMQ closed")
        self.ready.set()

    async def receive(self, message: aiormq.abc.DeliveredMessage) -> None:
        """The consumer's callback: buffer it (``_fetch`` drains the buffer)."""
        if self.window is not None and message.delivery_tag is not None:
            self.window.delivered(message.delivery_tag)
        self.saw_ready = False
        self.inbox.append(message)
        self.ready.set()

    def cancelled(self, frame: Any) -> None:
        """The broker cancelled the consumer (its queue was deleted, say): the link is
        lost, so the loop reconnects, declaring the queue again. Left alone, the source
        stayed "available" on a consumer that no longer existed and fetched nothing."""
        if getattr(frame, "consumer_tag", None) == self.consumer_tag:
            self.lost = ConnectionError(
                "RabbitMQ cancelled the consumer (the queue was deleted, or its node lost)"
            )
            self.ready.set()

    def watch(self, channel: AbstractChannel) -> None:
        """A channel the broker closes (a channel error) ends the link as well."""
        channel.close_callbacks.add(self._closed)

    def usable(self) -> bool:
        return (
            self.lost is None
            and not self.connection.is_closed
            and self.loop is asyncio.get_running_loop()
        )

    def check(self) -> None:
        if self.lost is not None:
            raise self.lost
        if self.window is not None and self.window.error is not None:
            raise self.window.error

    async def close(self) -> None:
        with contextlib.suppress(*_BROKER_ERRORS, RuntimeError):
            await asyncio.wait_for(self.connection.close(), _CLOSE_TIMEOUT)


class RabbitMQSource(BrokerSource):
    """Consumes ``queue`` and hands each event to ``processor``; publishes to it too.

    >>> source = RabbitMQSource(processor, "orders", "amqp://guest:guest@127.0.0.1:5672/")
    >>> source.publish({"order_id": 7}, "order_created")   # a producer, anywhere
    >>> source.run()                                       # a consumer, until SIGTERM
    >>> await source.arun(max_idle_polls=3)                # the same on asyncio

    Each message is acknowledged once the processor has settled it (processed, or stored
    as a dead letter); a message delivered more than ``max_deliveries`` times is
    dead-lettered as it is, one that cannot be decoded at once. ``prefetch`` bounds what
    the broker hands this consumer unacknowledged (its backpressure).
    """

    broker: ClassVar[str] = "rabbitmq"

    def __init__(
        self,
        processor: MessageProcessor,
        queue: str,
        url: str = DEFAULT_URL,
        prefetch: int = 100,
        *,
        queue_type: QueueType = "quorum",
        queue_arguments: Mapping[str, Any] | None = None,
        concurrency: int = 1,
        max_deliveries: int = 5,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        poll_timeout: float = 1.0,
        connect_timeout: float = 10.0,
        publish_timeout: float = 10.0,
        reconnect_interval: float = 0.5,
        max_reconnect_interval: float = 30.0,
        async_sleep: AsyncSleep | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._url = _checked_url(url)
        self.spec = QueueSpec(queue, queue_type, {} if queue_arguments is None else queue_arguments)
        if (
            isinstance(prefetch, bool)
            or not isinstance(prefetch, int)
            or not 1 <= prefetch <= _MAX_PREFETCH
        ):
            raise ConfigError(
                f"prefetch: expected a whole number from 1 to {_MAX_PREFETCH}, got {prefetch!r}",
                field="prefetch",
            )
        _check_seconds("connect_timeout", connect_timeout, positive=True)
        _check_seconds("publish_timeout", publish_timeout, positive=True)
        super().__init__(
            processor,
            concurrency=concurrency,
            batch_size=prefetch,  # never more than the broker hands out at once
            max_deliveries=max_deliveries,
            max_message_bytes=max_message_bytes,
            heartbeat=None,  # RabbitMQ has no "in progress": it waits up to consumer_timeout
            poll_timeout=poll_timeout,
            reconnect_interval=reconnect_interval,
            max_reconnect_interval=max_reconnect_interval,
            async_sleep=async_sleep,
            clock=clock,
        )
        self.queue = self.spec.name
        self.queue_type: QueueType = self.spec.queue_type
        self.prefetch = prefetch
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self._consumer: _Link | None = None
        self._publishers: PerLoop[_Link] = PerLoop()  # a connection per publishing loop
        self._opening = LoopLock()  # one publisher connection opened at a time

    @property
    def url(self) -> str:
        """The broker's URL, its password masked."""
        return redact(self._url)

    def __repr__(self) -> str:
        return (
            f"RabbitMQSource(queue={self.queue!r}, url={self.url!r}, "
            f"queue_type={self.queue_type!r}, prefetch={self.prefetch})"
        )

    # --- the broker's steps -------------------------------------------------------------

    def _broker_errors(self) -> tuple[type[BaseException], ...]:
        return _BROKER_ERRORS

    def _shown_location(self) -> str:
        return self.url

    def _refusal(self, error: BaseException) -> str | None:
        if isinstance(error, _REFUSALS):
            return error_text(error, 300)
        return None

    async def _connect(self) -> None:
        link = self._consumer
        if link is not None and link.usable():
            return
        self._consumer = None
        if link is not None:
            await link.close()
        link = await self._open()
        try:
            assert link.channel is not None
            assert link.queue is not None
            link.watch(link.channel)
            await link.channel.set_qos(prefetch_count=self.prefetch)
            link.underlay = await link.channel.get_underlay_channel()
            link.window = AckWindow(link.underlay)
            link.underlay.on_consumer_cancel_callbacks.add(link.cancelled)
            if self.queue_type == "classic":  # republishing redelivered messages, confirmed
                confirming = await link.connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                link.exchange = confirming.default_exchange
            # aiormq's consumer: the callback only buffers (see RabbitMQDelivery)
            consuming = await link.underlay.basic_consume(
                self.queue, link.receive, no_ack=False, timeout=self.connect_timeout
            )
            link.consumer_tag = consuming.consumer_tag
        except BaseException:
            await link.close()
            raise
        self._consumer = link

    async def _open(self) -> _Link:
        """A connection, a channel, the queue declared (a mismatch: ``ConfigError``)."""
        connection = aio_pika.Connection(make_url(self._url))
        quiet = _connecting.set(True)
        try:
            await connection.connect(timeout=self.connect_timeout)
        except BaseException:
            # aio_pika.connect() drops a connection that failed to connect unclosed; its
            # __del__ then schedules close() on whatever loop runs, or none (a warning)
            await connection.close()
            raise
        finally:
            _connecting.reset(quiet)
        link = _Link(connection, asyncio.get_running_loop())
        try:
            link.channel = await connection.channel(publisher_confirms=False)
            try:
                link.queue = await link.channel.declare_queue(
                    self.queue,
                    durable=True,
                    arguments=self.spec.declare_arguments(),
                    timeout=self.connect_timeout,
                )
            except ChannelPreconditionFailed as exc:
                raise mismatch_error(self.spec, exc) from None
        except BaseException:
            await link.close()
            raise
        return link

    async def _fetch(self, count: int, wait: float) -> list[Delivery]:
        link = self._consumer
        if link is None:
            raise ConnectionError("not connected to RabbitMQ")
        inbox = link.inbox
        if not inbox:
            link.check()
            link.ready.clear()
            if wait > 0:
                try:
                    await asyncio.wait_for(link.ready.wait(), wait)
                except TimeoutError:  # a whole poll and nothing: still delivered to?
                    await self._check_consumer(link)
        link.check()  # what the buffer holds came on a lost channel: it is redelivered
        deliveries: list[Delivery] = []
        classic = self.queue_type == "classic"
        window = link.window
        assert window is not None  # made with the consumer
        while inbox and len(deliveries) < count:
            message = inbox.popleft()
            if not classic:
                count_so_far = failed_before(headers_of(message), QUORUM_COUNT_HEADER) + 1
                deliveries.append(RabbitMQDelivery(message, count_so_far, window))
                continue
            delivery = await self._classic_delivery(link, window, message)
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries

    async def _check_consumer(self, link: _Link) -> None:
        """An idle poll asks the broker, at most once a ``_CONSUMER_CHECK_INTERVAL``,
        how many messages the queue holds ready (a passive declaration on the consuming
        channel). Some ready on two checks in a row, with room in the prefetch window
        and nothing delivered in between: the broker no longer delivers to this consumer
        and never said so (a consumer cancelled without the notification), and the link
        is lost, so the loop connects and consumes anew. A queue that no longer exists
        fails the declaration, which ends the link as well. Left alone, either case sat
        "available" forever, consuming nothing.

        A queue with a single active consumer is not asked: this consumer may rightly
        be the one waiting."""
        window, underlay = link.window, link.underlay
        if underlay is None or window is None or len(window) >= self.prefetch:
            return
        if self.spec.arguments.get("x-single-active-consumer"):
            return
        now = self._clock()
        if now < link.next_check:
            return
        link.next_check = now + _CONSUMER_CHECK_INTERVAL
        declared = await underlay.queue_declare(
            self.queue, passive=True, timeout=self.connect_timeout
        )
        ready = declared.message_count or 0
        if not ready or link.inbox:
            link.saw_ready = False
        elif link.saw_ready:
            link.lost = ConnectionError(
                f"RabbitMQ holds {ready} ready message(s) in {self.queue!r} and delivers "
                "none to this consumer"
            )
        else:
            link.saw_ready = True

    async def _classic_delivery(
        self, link: _Link, window: AckWindow, message: aiormq.abc.DeliveredMessage
    ) -> RabbitMQDelivery | None:
        """The delivery to settle, or None when a redelivered message was published
        again with its count one higher (see ``_delivery``)."""
        headers = headers_of(message)
        failed = failed_before(headers, CLASSIC_COUNT_HEADER)
        if not message.redelivered:
            return RabbitMQDelivery(message, failed + 1, window)
        failed += 1
        if failed + 1 > self.max_deliveries or link.exchange is None:
            return RabbitMQDelivery(message, failed + 1, window)  # the base dead-letters it
        try:
            copy = _copy(message, {**headers, CLASSIC_COUNT_HEADER: failed})
        except (TypeError, ValueError) as exc:  # headers that do not encode again
            self._logger.warning(
                "rabbitmq message %s could not be copied to count its delivery (%s); "
                "processed as it is",
                message.delivery_tag,
                type(exc).__name__,
                extra=log_extra(
                    broker="rabbitmq",
                    message_id=str(message.delivery_tag),
                    error_type=type(exc).__name__,
                ),
            )
            return RabbitMQDelivery(message, failed + 1, window)
        await link.exchange.publish(
            copy, routing_key=self.queue, mandatory=True, timeout=self.publish_timeout
        )
        await RabbitMQDelivery(message, None, window).ack()  # once the copy is confirmed
        return None

    async def _publish(self, message: Message) -> None:
        link = self._publishers.get()
        if link is None or not link.usable():
            link = await self._publisher_link()
        assert link.exchange is not None
        amqp = aio_pika.Message(
            message.body,
            headers=dict(message.headers),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=message.headers.get(EVENT_TYPE_HEADER),
        )
        try:
            await self._publish_confirmed(link.exchange, amqp)
        except _BROKER_ERRORS:
            self._publishers.discard(link)
            await link.close()
            raise

    async def _publish_confirmed(self, exchange: AbstractExchange, amqp: aio_pika.Message) -> None:
        """Publish until the broker confirms; a nack is sent again, ``_NACK_RETRIES``
        times (at least once, as everything here: a nacked message is not queued)."""
        for retry in range(_NACK_RETRIES + 1):
            try:
                await exchange.publish(
                    amqp, routing_key=self.queue, mandatory=True, timeout=self.publish_timeout
                )
                return
            except aiormq.exceptions.DeliveryError as exc:
                if retry == _NACK_RETRIES or not isinstance(exc.frame, Basic.Nack):
                    raise
            await self._sleep(_NACK_PAUSE * 2**retry)

    async def _publisher_link(self) -> _Link:
        """The publishing connection for this loop, opened once however many tasks
        publish at the same moment."""
        async with self._opening.get():
            link = self._publishers.get()
            if link is not None and link.usable():
                return link  # another task opened it meanwhile
            if link is not None:
                self._publishers.discard(link)
                await link.close()
            link = await self._open()
            try:
                channel = await link.connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
                link.exchange = channel.default_exchange
            except BaseException:
                await link.close()
                raise
            self._publishers.set(link)
            return link

    async def _disconnect(self) -> None:
        await self._disconnect_consumer()
        publisher = self._publishers.pop()
        if publisher is not None:
            await publisher.close()

    async def _disconnect_consumer(self) -> None:
        consumer = self._consumer
        if consumer is not None and consumer.loop is asyncio.get_running_loop():
            self._consumer = None
            await self._give_back_buffered(consumer)
            await consumer.close()

    async def _give_back_buffered(self, link: _Link) -> None:
        """Stop the consumer, then nack (requeue) what it buffered and nobody fetched."""
        if not link.usable():
            link.inbox.clear()  # the broker has them back already
            return
        with contextlib.suppress(*_BROKER_ERRORS, RuntimeError):
            if link.window is not None:
                await link.window.flush()  # what was settled is acknowledged first
            if link.underlay is not None and link.consumer_tag is not None:
                await link.underlay.basic_cancel(link.consumer_tag, timeout=_CLOSE_TIMEOUT)
            await asyncio.sleep(0)  # deliveries read before the cancel reach the buffer
            while link.inbox:
                message = link.inbox.popleft()
                self.counts.requeued += 1
                if link.window is not None:
                    await RabbitMQDelivery(message, None, link.window).requeue()
        link.inbox.clear()

    def status(self) -> dict[str, Any]:
        status = super().status()
        link = self._consumer
        status.update(
            queue=self.queue,
            queue_type=self.queue_type,
            url=self.url,
            prefetch=self.prefetch,
            buffered=len(link.inbox) if link is not None else 0,
        )
        return status


def _checked_url(url: object) -> str:
    if not isinstance(url, str) or not url:
        raise ConfigError(f"url: expected an amqp:// URL, got {type(url).__name__}", field="url")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here, not at connect time
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ConfigError(
            f"url: expected amqp://[user:password@]host[:port][/vhost], got {redact(url)!r}",
            field="url",
        )
    return url


def _copy(message: aiormq.abc.DeliveredMessage, headers: dict[str, Any]) -> aio_pika.Message:
    """``message`` to publish again, with ``headers`` (its other properties kept, but
    not ``expiration``: the copy would live a second TTL)."""
    properties = message.header.properties
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=properties.content_type,
        content_encoding=properties.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=properties.priority,
        correlation_id=properties.correlation_id,
        reply_to=properties.reply_to,
        message_id=properties.message_id,
        timestamp=properties.timestamp,
        type=properties.message_type,
        app_id=properties.app_id,
    )
