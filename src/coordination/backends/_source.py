"""What every broker source shares: the consume loop, settling each delivery, outages, stop.

A broker source (``RabbitMQSource``, ``NatsJetStreamSource``) is this loop plus four
broker-specific steps — connect, fetch up to *n* deliveries, publish, close — and a
``Delivery`` per message (ack, requeue, in-progress heartbeat, how often it was
delivered). Delivery is **at least once**: a message is acknowledged only once the
processor has settled it (processed, or stored as a dead letter), so a process killed
mid-message leaves it with the broker, which delivers it again.

How one delivery is settled (``BrokerSource._settle``):

1. Undecodable (over ``max_message_bytes``, not UTF-8, not JSON, too deep, no type): a
   *poison* message. Its bounded description is dead-lettered alone, at once (not
   replayable), and it is acknowledged: one bad message never blocks the others.
2. Delivered more than ``max_deliveries`` times (a handler that kills its process, say):
   dead-lettered as it is (replayable), and acknowledged.
3. Otherwise ``processor.aprocess_message`` runs it (with the publisher's trace context
   current, the message's facts handed to the processor's CONSUMER span when tracing,
   and ``in_progress()`` heartbeats every ``heartbeat`` seconds, while its batch is
   settled, for every message of the batch not settled yet):
   a success or a dead letter (``EventDeadLettered``) is acknowledged; any other error
   (the dead-letter store is unreachable) leaves the event unsettled, so the message is
   given back to the broker (requeued) for a later delivery.

``run()`` / ``await arun()`` consume until ``stop()``, SIGTERM or SIGINT (on the main
thread), or ``max_idle_polls`` empty polls in a row; a stop finishes what is in flight,
acknowledges it, requeues what was fetched but not started, and closes (a second SIGTERM
or SIGINT stops at once, acknowledging nothing more: a hung handler cannot hold the
process). A broker outage
(connecting, fetching or acknowledging fails) is logged once, counted
(``coordination_broker_errors_total{broker, component}``), and reconnected with
exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from prometheus_client import Counter

from .._defaults import register_door
from .._door_spans import MessageFacts, delivered, operation_for, producer_span
from .._errors import ConfigError, EventDeadLettered, StoreError
from .._events_snapshot import BROKER_SOURCE_DOORS, SourceSnapshot, shown_name
from .._logging import component_logger, log_extra
from .._redact import error_text, truncate
from .._time import AsyncSleep, Clock, monotonic
from .._time import async_sleep as _async_sleep
from .._tracing import DOORS, current_tracer, watch_doors
from ._messages import (
    DEFAULT_MAX_MESSAGE_BYTES,
    Message,
    PoisonMessage,
    decode_message,
    describe,
    encode_message,
)
from ._stopping import (
    RunStop,
    install_loop_signal_handlers,
    log_signal,
    refuse_inside_a_loop,
    unless_woken,
)

__all__ = [
    "BrokerSource",
    "Delivery",
    "LoopLock",
    "MessageProcessor",
    "OutageLog",
    "PerLoop",
    "SourceCounts",
    "broker_errors",
    "existing_broker_errors",
]

_T = TypeVar("_T")


class MessageProcessor(Protocol):
    """What a broker source feeds: ``CoordinationEventProcessor`` or anything shaped so."""

    async def aprocess_message(self, event_data: Any, event_type: str) -> Any: ...

    async def adead_letter_message(
        self,
        event_data: Any,
        event_type: str,
        *,
        reason: str,
        error: BaseException,
        attempts: int = 0,
        replayable: bool = True,
    ) -> int: ...


class Delivery(Protocol):
    """One message as a broker delivered it, until it is acknowledged or given back."""

    @property
    def body(self) -> bytes: ...

    @property
    def headers(self) -> Mapping[str, Any]: ...

    @property
    def delivery_count(self) -> int | None:
        """Times the broker has delivered it, this one included (None: unknown)."""

    @property
    def ident(self) -> str:
        """How the logs name it (a delivery tag, a stream sequence)."""

    @property
    def fallback_type(self) -> str | None:
        """The event type when the message has no ``event-type`` header (AMQP ``type``)."""

    async def ack(self) -> None: ...

    async def requeue(self) -> None:
        """Give it back for a later delivery (nack with requeue, NAK)."""

    async def in_progress(self) -> None:
        """Tell the broker it is still being worked on (a no-op where none is needed)."""


@dataclass(slots=True)
class SourceCounts:
    """What a source has done since it was made (``status()`` shows them)."""

    processed: int = 0
    dead_lettered: int = 0  # by the processor: failed, invalid, duplicate keys refused
    poison: int = 0  # undecodable, dead-lettered at once
    redelivered_too_often: int = 0
    requeued: int = 0  # unsettled (the store failed) or fetched but not started at a stop
    broker_errors: int = 0
    reconnects: int = 0
    last_error: str | None = None
    by_outcome: dict[str, int] = field(default_factory=dict)

    @property
    def settled(self) -> int:
        return self.processed + self.dead_lettered + self.poison + self.redelivered_too_often

    def status(self, broker: str, *, available: bool) -> dict[str, Any]:
        """The counts as a source's ``status()`` shows them (``last_error`` is redacted
        when it is recorded)."""
        return {
            "broker": broker,
            "available": available,
            "processed": self.processed,
            "dead_lettered": self.dead_lettered,
            "poison": self.poison,
            "redelivered_too_often": self.redelivered_too_often,
            "requeued": self.requeued,
            "broker_errors": self.broker_errors,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }

    def snapshot(self, broker: str, source: str, *, available: bool) -> SourceSnapshot:
        """The counts as the readers read them (``source``: a queue, a subject, a stream)."""
        return SourceSnapshot(
            broker=shown_name(broker, 40),
            source=shown_name(source),
            processed=self.processed,
            dead_lettered=self.dead_lettered,
            poison=self.poison,
            redelivered=self.redelivered_too_often,
            requeued=self.requeued,
            broker_errors=self.broker_errors,
            reconnects=self.reconnects,
            available=available,
            last_error=self.last_error,
        )


_counter_lock = threading.Lock()
_counter: Counter | None = None


def broker_errors() -> Counter:
    """``coordination_broker_errors_total{broker, component}``, registered on first use."""
    global _counter
    with _counter_lock:
        if _counter is None:
            _counter = Counter(
                "coordination_broker_errors",
                "Broker operations that failed (connect, fetch, ack, publish), by broker "
                "and component.",
                ["broker", "component"],
            )
        return _counter


def existing_broker_errors() -> Counter | None:
    """The counter if a broker source made it in this process, else None."""
    return _counter


class OutageLog:
    """Logs each broker outage once (and its end), counts every error."""

    def __init__(
        self, broker: str, component: str, counts: SourceCounts, subject: str | None = None
    ) -> None:
        self.broker = broker
        self.component = component
        self.subject = subject or f"{broker} is unavailable"  # what the log says is wrong
        self.down = False
        self._counts = counts
        self._metric = broker_errors().labels(broker, component)
        self._logger = component_logger(broker)

    def failed(self, error: BaseException, retry_in: float) -> None:
        self._metric.inc()
        self._counts.broker_errors += 1
        self._counts.last_error = f"{type(error).__name__}: {error_text(error, 500)}"
        if self.down:
            return
        self.down = True
        self._logger.warning(
            "%s %s: %s (%s); trying again with backoff (next in %.2gs; later errors are "
            "counted in coordination_broker_errors_total, not logged)",
            self.broker,
            self.component,
            self.subject,
            self._counts.last_error,
            retry_in,
            extra=log_extra(broker=self.broker, component=self.component, retry_in=retry_in),
        )

    def succeeded(self) -> None:
        if self.down:
            self.down = False
            self._logger.warning(
                "%s %s: working again",
                self.broker,
                self.component,
                extra=log_extra(broker=self.broker, component=self.component),
            )


WARNINGS_LOGGED_EVERY = 10.0  # seconds between two warnings of one kind (poison, ...)


class _RareWarnings:
    """A warning of each kind at most once per ``WARNINGS_LOGGED_EVERY`` seconds, with
    how many there were since the last: a storm of poison messages (thousands a second)
    is one line per 10 s, not a line each (every one is counted in ``status()``)."""

    __slots__ = ("_clock", "_last", "_logger", "_unlogged")

    def __init__(self, logger: logging.Logger, clock: Clock) -> None:
        self._logger = logger
        self._clock = clock
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}

    def warn(self, kind: str, text: str, *args: object, fields: dict[str, object]) -> None:
        count = self._unlogged.get(kind, 0) + 1
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < WARNINGS_LOGGED_EVERY:
            self._unlogged[kind] = count
            return
        self._last[kind], self._unlogged[kind] = now, 0
        since = "" if last is None else f" in the last {now - last:.0f} s"
        self._logger.warning(
            f"{text} [%d such message(s){since}; logged at most once per %g s]",
            *args,
            count,
            WARNINGS_LOGGED_EVERY,
            extra={**fields, "messages": count},
        )


class BrokerSource(ABC):
    """The consume loop every broker source shares; subclasses give the broker's steps."""

    broker: ClassVar[str]  # "rabbitmq", "nats": the logger and the metric label

    def __init__(
        self,
        processor: MessageProcessor,
        *,
        concurrency: int = 1,
        batch_size: int = 100,
        max_deliveries: int = 5,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        heartbeat: float | None = None,
        poll_timeout: float = 1.0,
        reconnect_interval: float = 0.5,
        max_reconnect_interval: float = 30.0,
        async_sleep: AsyncSleep | None = None,
        clock: Clock | None = None,
    ) -> None:
        for name, number in (
            ("concurrency", concurrency),
            ("batch_size", batch_size),
            ("max_deliveries", max_deliveries),
            ("max_message_bytes", max_message_bytes),
        ):
            _check_whole(name, number)
        _check_seconds("max_reconnect_interval", max_reconnect_interval)
        # A fetch that never waits would spin on an empty queue.
        _check_seconds("poll_timeout", poll_timeout, minimum=_MIN_BACKOFF)
        # The backoff starts here and doubles: at 0 an outage would spin without a pause.
        _check_seconds("reconnect_interval", reconnect_interval, minimum=_MIN_BACKOFF)
        if heartbeat is not None:
            _check_seconds("heartbeat", heartbeat, positive=True)
        if not callable(getattr(processor, "aprocess_message", None)):
            raise TypeError(
                "processor must have aprocess_message (a CoordinationEventProcessor), got "
                f"{type(processor).__name__}"
            )
        self.processor = processor
        self.concurrency = concurrency
        self.batch_size = max(batch_size, concurrency)
        self.max_deliveries = max_deliveries
        self.max_message_bytes = max_message_bytes
        self.heartbeat = heartbeat
        self.poll_timeout = poll_timeout
        self.reconnect_interval = reconnect_interval
        self.max_reconnect_interval = max(max_reconnect_interval, reconnect_interval)
        self.counts = SourceCounts()
        self._sleep = async_sleep or _async_sleep
        self._clock = clock or monotonic
        self._outage = OutageLog(self.broker, "source", self.counts)
        # The processor failing to settle (its dead-letter store unreachable): the loop
        # pauses with backoff rather than spinning through redeliveries.
        self._store_outage = OutageLog(
            self.broker, "source", self.counts, "the event processor cannot settle messages"
        )
        self._unsettled: BaseException | None = None
        self._logger = component_logger(self.broker)
        self._warnings = _RareWarnings(self._logger, self._clock)
        self._stopping = RunStop()
        self._publisher_loop: asyncio.AbstractEventLoop | None = None
        self._publisher_lock = threading.Lock()
        register_door(BROKER_SOURCE_DOORS, processor, self)  # the readers find it
        watch_doors()  # each message reads _tracing.DOORS.on, kept true while spans are on

    # --- the broker's steps -------------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None:
        """Connect, declare what the source consumes, start receiving (idempotent)."""

    @abstractmethod
    async def _fetch(self, count: int, wait: float) -> list[Delivery]:
        """Up to ``count`` deliveries, waiting at most ``wait`` seconds for the first."""

    @abstractmethod
    async def _publish(self, message: Message) -> None:
        """Publish one message (connecting first if needed), confirmed by the broker."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close every connection of this loop; deliveries not acknowledged go back."""

    @abstractmethod
    async def _disconnect_consumer(self) -> None:
        """Close the consuming connection only (the loop's reconnect after a broker
        error): a publisher's own connection stays, so a publish in flight on it is not
        failed by the consumer's trouble. It reconnects by itself when it is broken too."""

    @abstractmethod
    def _broker_errors(self) -> tuple[type[BaseException], ...]:
        """The exceptions that mean the broker (or the connection to it) failed."""

    # --- publishing ---------------------------------------------------------------------

    async def apublish(self, event: Any, event_type: str) -> None:
        """Publish an event (JSON body, ``event-type`` header, trace context). The broker
        failing is a ``StoreError`` naming it and its masked URL (the client's error as
        ``__cause__``), counted in ``coordination_broker_errors_total{component="publisher"}``.

        While a tracer provider is set, a PRODUCER span ``"<event_type> publish"`` is made
        around it, and the message carries that span's context."""
        tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
        if tracer is None:
            await self._encode_and_publish(event, event_type)
            return
        operation = operation_for(self.processor, event_type)
        with producer_span(tracer, event_type, operation, self.broker, self.source_name):
            await self._encode_and_publish(event, event_type)

    async def _encode_and_publish(self, event: Any, event_type: str) -> None:
        message = encode_message(event, event_type)
        try:
            await self._publish(message)
        except self._broker_errors() as exc:
            self._raise_if_refused(exc)
            broker_errors().labels(self.broker, "publisher").inc()
            self.counts.broker_errors += 1
            self.counts.last_error = f"{type(exc).__name__}: {error_text(exc, 500)}"
            raise StoreError(
                f"cannot publish to {self.broker} at {self._shown_location()}: "
                f"{self.counts.last_error}"
            ) from exc

    def _shown_location(self) -> str:
        """Where the broker is, as errors show it (any password masked)."""
        return self.broker

    def _refusal(self, error: BaseException) -> str | None:
        """Why the broker refused this source's settings (a login, a permission, a
        virtual host), or None when ``error`` is an outage worth retrying."""
        return None

    def _raise_if_refused(self, error: BaseException) -> None:
        """Fail fast on a configuration error, back off on an outage: a wrong password
        does not fix itself, and retrying it forever (logged once) hid it."""
        why = self._refusal(error)
        if why is not None:
            raise ConfigError(
                f"{self.broker} at {self._shown_location()} refused this source: {why} "
                "(check the URL's user, password and virtual host, and the user's "
                "permissions; not retried)",
                field="url",
                value=self._shown_location(),
            ) from error

    def publish(self, event: Any, event_type: str) -> None:
        """``apublish`` from synchronous code (a private event loop keeps the connection
        between calls); from inside a running event loop, ``await apublish`` instead."""
        refuse_inside_a_loop("publish", "apublish")
        with self._publisher_lock:
            if self._publisher_loop is None or self._publisher_loop.is_closed():
                self._publisher_loop = asyncio.new_event_loop()
            self._publisher_loop.run_until_complete(self.apublish(event, event_type))

    # --- consuming ----------------------------------------------------------------------

    def run(
        self,
        *,
        stop: Callable[[], bool] | None = None,
        max_idle_polls: int | None = None,
        handle_signals: bool = True,
    ) -> int:
        """Consume until ``stop()`` is true, SIGTERM/SIGINT, ``self.stop()`` or
        ``max_idle_polls`` empty polls in a row; the number of messages settled."""
        refuse_inside_a_loop("run", "arun")
        return asyncio.run(
            self.arun(stop=stop, max_idle_polls=max_idle_polls, handle_signals=handle_signals)
        )

    async def arun(
        self,
        *,
        stop: Callable[[], bool] | None = None,
        max_idle_polls: int | None = None,
        handle_signals: bool = True,
    ) -> int:
        """``run`` on the running event loop. Cancelling the task stops at once: what was
        not acknowledged is delivered again later."""
        if max_idle_polls is not None:
            _check_whole("max_idle_polls", max_idle_polls)
        loop = asyncio.get_running_loop()
        self._stopping.begin(self, loop=loop)
        settled_before = self.counts.settled
        restore = (
            install_loop_signal_handlers(loop, self._on_signal) if handle_signals else _nothing
        )
        try:
            await self._consume(stop or _never, max_idle_polls)
        finally:
            restore()
            with contextlib.suppress(*self._broker_errors(), OSError, asyncio.CancelledError):
                await self._disconnect()
            self._stopping.end()  # a stop asked before or during this run is used up here
        return self.counts.settled - settled_before

    def stop(self) -> None:
        """Ask a running ``run``/``arun`` to finish what is in flight and return (from
        any thread, or a signal handler); before a run starts, it returns at once."""
        self._stopping.stop()

    async def _consume(self, stop: Callable[[], bool], max_idle_polls: int | None) -> None:
        idle = 0
        backoff = store_backoff = self.reconnect_interval
        errors = self._broker_errors()
        while not (self._stopping.is_set() or stop()):
            try:
                await self._connect()
                deliveries = await self._fetch_or_wake(self.batch_size)
            except errors as exc:
                self._raise_if_refused(exc)
                retry_in = _jittered(backoff)
                self._outage.failed(exc, retry_in)
                await self._disconnect_consumer_quietly()
                await self._pause(retry_in)
                backoff = min(backoff * 2, self.max_reconnect_interval)
                self.counts.reconnects += 1
                continue
            self._outage.succeeded()
            backoff = self.reconnect_interval
            if not deliveries:
                idle += 1
                if max_idle_polls is not None and idle >= max_idle_polls:
                    return
                continue
            idle = 0
            await self._settle_all(deliveries)
            if self._unsettled is not None:
                retry_in = _jittered(store_backoff)
                self._store_outage.failed(self._unsettled, retry_in)
                self._unsettled = None
                await self._pause(retry_in)
                store_backoff = min(store_backoff * 2, self.max_reconnect_interval)
            else:
                self._store_outage.succeeded()
                store_backoff = self.reconnect_interval

    async def _fetch_or_wake(self, count: int) -> list[Delivery]:
        """Fetch, unless a stop arrives first."""
        wake = self._stopping.wake
        if wake is None:
            return []
        fetched = await unless_woken(lambda: self._fetch(count, self.poll_timeout), wake)
        return fetched or []  # what it fetched before the stop is given back unstarted

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or until a stop."""
        wake = self._stopping.wake
        if wake is not None:
            await unless_woken(lambda: self._sleep(seconds), wake)

    async def _disconnect_consumer_quietly(self) -> None:
        with contextlib.suppress(*self._broker_errors(), OSError):
            await self._disconnect_consumer()

    async def _settle_all(self, deliveries: list[Delivery]) -> None:
        """Settle a fetched batch, ``concurrency`` at a time; at a stop, what has not
        started is given back. While the batch lasts, every ``heartbeat`` seconds, each
        message not settled yet — in its handler, or waiting its turn — is told to the
        broker as still in progress: a batch of slow handlers outlasts the broker's ack
        deadline as a whole, not only the message in flight."""
        beat = None if self.heartbeat is None else _Heartbeat(self, deliveries, self.heartbeat)
        try:
            if self.concurrency == 1 or len(deliveries) == 1:
                await self._settle_in_order(deliveries, beat)
                return
            slots = asyncio.Semaphore(self.concurrency)

            async def settle(delivery: Delivery) -> None:
                async with slots:
                    await self._settle_unless_stopping(delivery)
                    if beat is not None:
                        beat.settled.add(id(delivery))

            tasks = [asyncio.ensure_future(settle(d)) for d in deliveries]
            try:
                await asyncio.gather(*tasks)
            finally:  # one failed, or this task was cancelled: the others stop too, unacked
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
        finally:
            if beat is not None:
                await beat.stop()

    async def _settle_in_order(self, deliveries: list[Delivery], beat: _Heartbeat | None) -> None:
        """One at a time, in delivery order. Consecutive events whose handlers are
        synchronous run together on one worker thread (``process_message``): a thread hop
        per event cost more than the bare client's whole loop."""
        decoded = [self._decode(delivery) for delivery in deliveries]
        index = 0
        while index < len(deliveries):
            end = index
            while end < len(deliveries) and self._runs_on_a_thread(decoded[end]):
                end += 1
            if end - index > 1:
                await self._settle_on_a_thread(deliveries[index:end], decoded[index:end], beat)
                index = end
                continue
            delivery = deliveries[index]
            if self._stopping.is_set() or self._unsettled is not None:
                # one could not be settled (the store is down): the rest would fail the
                # same way, each waiting out the store's connect timeout
                await self._give_back(delivery)
            else:
                await self._settle_decoded(delivery, decoded[index])
            if beat is not None:
                beat.settled.add(id(delivery))
            index += 1

    async def _settle_unless_stopping(self, delivery: Delivery) -> None:
        if self._stopping.is_set() or self._unsettled is not None:
            await self._give_back(delivery)
            return
        await self._settle(delivery)

    async def _settle(self, delivery: Delivery) -> None:
        """Decode, process, and acknowledge one delivery (see the module docstring)."""
        await self._settle_decoded(delivery, self._decode(delivery))

    def _decode(self, delivery: Delivery) -> tuple[Any, str] | PoisonMessage:
        try:
            return decode_message(
                delivery.body,
                delivery.headers,
                max_bytes=self.max_message_bytes,
                fallback_type=delivery.fallback_type,
            )
        except PoisonMessage as exc:
            return exc

    def _over_delivered(self, delivery: Delivery) -> bool:
        count = delivery.delivery_count
        return count is not None and count > self.max_deliveries

    async def _settle_decoded(
        self, delivery: Delivery, decoded: tuple[Any, str] | PoisonMessage
    ) -> None:
        if isinstance(decoded, PoisonMessage):
            await self._dead_letter_poison(delivery, decoded)
            return
        event, event_type = decoded
        if self._over_delivered(delivery):
            count = delivery.delivery_count
            assert count is not None
            await self._dead_letter_redelivered(delivery, event, event_type, count)
            return
        headers = delivery.headers
        tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
        try:
            if tracer is not None or "traceparent" in headers:
                with delivered(headers, None if tracer is None else self._facts(delivery)):
                    await self._process(delivery, event, event_type)
            else:  # no trace context to make current: skip the context manager's cost
                await self._process(delivery, event, event_type)
        except Exception as exc:
            await self._conclude(delivery, exc)
        else:
            await self._conclude(delivery, None)

    async def _conclude(self, delivery: Delivery, error: Exception | None) -> None:
        """Acknowledge what the processor settled (None, or EventDeadLettered: stored);
        give back what it could not settle (any other error)."""
        if error is None:
            self.counts.processed += 1
        elif isinstance(error, EventDeadLettered):
            self.counts.dead_lettered += 1
        else:  # the processor could not settle it: not lost, given back
            await self._not_settled(delivery, error, "was not settled")
            return
        await self._ack(delivery)

    # --- synchronous handlers, a run of them per worker thread --------------------------

    def _runs_on_a_thread(self, decoded: tuple[Any, str] | PoisonMessage) -> bool:
        if isinstance(decoded, PoisonMessage):
            return False
        asks = getattr(self.processor, "handles_asynchronously", None)
        sync = getattr(self.processor, "process_message", None)
        return asks is not None and sync is not None and not asks(decoded[1])

    async def _settle_on_a_thread(
        self,
        deliveries: list[Delivery],
        decoded: list[tuple[Any, str] | PoisonMessage],
        beat: _Heartbeat | None,
    ) -> None:
        """Run a run of synchronous handlers on one worker thread, then settle each
        outcome in order on the loop; what a stop kept from starting is given back."""
        work = [
            (delivery, event)
            for delivery, event in zip(deliveries, decoded, strict=True)
            if not isinstance(event, PoisonMessage) and not self._over_delivered(delivery)
        ]
        outcomes = await asyncio.to_thread(self._process_on_this_thread, work)
        done = dict(zip((id(d) for d, _ in work), outcomes, strict=True))
        for delivery, event in zip(deliveries, decoded, strict=True):
            outcome = done.get(id(delivery), _ASYNC_PATH)
            if outcome is _ASYNC_PATH:  # over-delivered: dead-lettered on the loop
                await self._settle_decoded(delivery, event)
            elif outcome is _NOT_STARTED:
                await self._give_back(delivery)
            else:
                await self._conclude(delivery, outcome)  # type: ignore[arg-type]
            if beat is not None:
                beat.settled.add(id(delivery))

    def _process_on_this_thread(
        self, work: list[tuple[Delivery, tuple[Any, str]]]
    ) -> list[Exception | object | None]:
        """Each event's outcome: None (processed), the exception, or ``_NOT_STARTED``."""
        process = self.processor.process_message  # type: ignore[attr-defined]
        outcomes: list[Exception | object | None] = []
        unsettled = False
        for delivery, decoded in work:
            if self._stopping.is_set() or unsettled:  # after one the store refused, too
                outcomes.append(_NOT_STARTED)
                continue
            event, event_type = decoded
            headers = delivery.headers
            tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
            try:
                if tracer is not None or "traceparent" in headers:
                    with delivered(headers, None if tracer is None else self._facts(delivery)):
                        process(event, event_type)
                else:
                    process(event, event_type)
            except Exception as exc:
                outcomes.append(exc)
                unsettled = not isinstance(exc, EventDeadLettered)
            else:
                outcomes.append(None)
        return outcomes

    def _facts(self, delivery: Delivery) -> MessageFacts:
        """What the processor's CONSUMER span says of the message (while tracing)."""
        # A broker's delivery has no message id of ours (the delivery tag and the stream
        # sequence are the broker's bookkeeping): its log name lets a span meet its lines.
        return MessageFacts(self.broker, self.source_name, delivery=delivery.ident)

    async def _process(self, delivery: Delivery, event: Any, event_type: str) -> None:
        await self.processor.aprocess_message(event, event_type)

    async def _dead_letter_poison(self, delivery: Delivery, problem: PoisonMessage) -> None:
        event_type = _printable(delivery.headers, delivery.fallback_type)
        stored = await self._store_dead_letter(
            delivery,
            describe(delivery.body, delivery.headers),
            event_type,
            reason=f"poison: {problem}",
            error=problem,
            replayable=False,
        )
        if stored:
            self.counts.poison += 1
            self._warnings.warn(
                "poison",
                "%s message %s cannot be decoded (%s); dead-lettered",
                self.broker,
                delivery.ident,
                problem,
                fields=log_extra(
                    broker=self.broker,
                    message_id=str(delivery.ident),
                    event_type=event_type,
                    reason="poison",
                ),
            )

    async def _dead_letter_redelivered(
        self, delivery: Delivery, event: Any, event_type: str, count: int
    ) -> None:
        reason = f"delivered {count} times, more than max_deliveries={self.max_deliveries}"
        if await self._store_dead_letter(
            delivery,
            event,
            event_type,
            reason="redelivered",
            error=RuntimeError(reason),
            replayable=True,
            attempts=count - 1,
        ):
            self.counts.redelivered_too_often += 1
            self._warnings.warn(
                "redelivered",
                "%s message %s of type %r was %s; dead-lettered",
                self.broker,
                delivery.ident,
                event_type,
                reason,
                fields=log_extra(
                    broker=self.broker,
                    message_id=str(delivery.ident),
                    event_type=event_type,
                    reason="redelivered",
                    attempt=count - 1,
                ),
            )

    async def _store_dead_letter(
        self,
        delivery: Delivery,
        event: Any,
        event_type: str,
        *,
        reason: str,
        error: BaseException,
        replayable: bool,
        attempts: int = 0,
    ) -> bool:
        """Store, then acknowledge; a store that fails leaves the message with the broker
        (False). The producer's trace context (when the message carries one) is current
        meanwhile, so the letter keeps it and its replay links to the publish."""
        headers = delivery.headers
        carried = delivered(headers, None) if "traceparent" in headers else contextlib.nullcontext()
        try:
            with carried:
                await self.processor.adead_letter_message(
                    event,
                    event_type,
                    reason=reason,
                    error=error,
                    attempts=attempts,
                    replayable=replayable,
                )
        except Exception as exc:
            await self._not_settled(delivery, exc, "could not be dead-lettered")
            return False
        await self._ack(delivery)
        return True

    async def _not_settled(self, delivery: Delivery, error: Exception, what: str) -> None:
        """Give back a message the processor could not settle; the loop then backs off
        (one warning per outage: the rest are debug lines)."""
        self._unsettled = error
        self._logger.log(
            logging.DEBUG if self._store_outage.down else logging.WARNING,
            "%s message %s %s (%s); given back to the broker",
            self.broker,
            delivery.ident,
            what,
            truncate(f"{type(error).__name__}: {error_text(error, 300)}", 400),
            extra=log_extra(
                broker=self.broker,
                message_id=str(delivery.ident),
                error_type=type(error).__name__,
            ),
        )
        await self._give_back(delivery)

    async def _ack(self, delivery: Delivery) -> None:
        try:
            await delivery.ack()
        except self._broker_errors() as exc:  # settled, but the broker will deliver it again
            self._outage.failed(exc, self.reconnect_interval)

    async def _give_back(self, delivery: Delivery) -> None:
        self.counts.requeued += 1
        try:
            await delivery.requeue()
        except self._broker_errors() as exc:  # the connection is gone: it goes back anyway
            self._outage.failed(exc, self.reconnect_interval)

    # --- stopping on signals ------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        """The first SIGTERM or SIGINT, on the loop: a graceful stop (a second one does
        what the handler found before did: see ``_stopping.install_stop_signals``)."""
        log_signal(self._logger, self.broker, signum)
        self.stop()

    # --- closing and status ---------------------------------------------------------------

    def close(self) -> None:
        """Close the publisher's private loop (a consuming loop closes on its own)."""
        with self._publisher_lock:
            loop, self._publisher_loop = self._publisher_loop, None
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(*self._broker_errors(), OSError):
                loop.run_until_complete(self._disconnect())
            loop.close()

    async def aclose(self) -> None:
        """Close the connections this event loop holds: a publisher's after ``apublish``
        on an application's own loop (``arun`` closes its own as it returns)."""
        with contextlib.suppress(*self._broker_errors(), OSError):
            await self._disconnect()

    def status(self) -> dict[str, Any]:
        """What the source has done, and whether the broker answers."""
        return self.counts.status(self.broker, available=not self._outage.down)

    @property
    def source_name(self) -> str:
        """What the source consumes, as the metrics and the status page name it (its
        queue, its subject): a subclass may say; by default its ``queue`` or ``subject``
        attribute, else the broker's name."""
        for attribute in ("queue", "subject"):
            name = getattr(self, attribute, None)
            if isinstance(name, str) and name:
                return name
        return self.broker

    def source_snapshot(self) -> SourceSnapshot:
        """``status()`` as the readers read it (a frozen, typed snapshot)."""
        return self.counts.snapshot(self.broker, self.source_name, available=not self._outage.down)


class PerLoop(Generic[_T]):
    """A value for each event loop that uses it: a publisher's connection, a lock. A
    source meets several loops, some at the same time (a sync ``publish``'s private loop
    in one thread, ``arun``'s loop in another, an application's own), and an asyncio
    object belongs to one. A single slot made the loops take turns: each took the slot
    from the other, dropped its connection unclosed and opened a new one, a leaked
    connection per turn. The entries of closed loops are dropped as the others are set.
    """

    __slots__ = ("_by_loop", "_guard")

    def __init__(self) -> None:
        self._by_loop: dict[asyncio.AbstractEventLoop, _T] = {}
        self._guard = threading.Lock()  # loops in other threads set theirs meanwhile

    def get(self) -> _T | None:
        """The running loop's value, if it has one."""
        return self._by_loop.get(asyncio.get_running_loop())

    def set(self, value: _T) -> None:
        loop = asyncio.get_running_loop()
        with self._guard:
            for closed in [other for other in self._by_loop if other.is_closed()]:
                del self._by_loop[closed]  # nothing can use (or close) them any more
            self._by_loop[loop] = value

    def pop(self) -> _T | None:
        """Take the running loop's value away (it is closing it)."""
        with self._guard:
            return self._by_loop.pop(asyncio.get_running_loop(), None)

    def discard(self, value: _T) -> None:
        """Take the running loop's value away if it is still ``value`` (another task may
        have put a new one there meanwhile)."""
        with self._guard:
            loop = asyncio.get_running_loop()
            if self._by_loop.get(loop) is value:
                del self._by_loop[loop]


class LoopLock:
    """An ``asyncio.Lock`` for the running event loop (see ``PerLoop``): one loop's
    tasks take turns, and a lock made on another loop is never waited on."""

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: PerLoop[asyncio.Lock] = PerLoop()

    def get(self) -> asyncio.Lock:
        lock = self._locks.get()
        if lock is None:
            lock = asyncio.Lock()
            self._locks.set(lock)
        return lock


class _Heartbeat:
    """``in_progress()`` every ``every`` seconds for each delivery of a batch not settled
    yet. One timer per batch, not a task per message: most batches end long before the
    first beat, and arming a timer costs far less than starting and cancelling tasks."""

    __slots__ = ("_deliveries", "_every", "_loop", "_sending", "_source", "_timer", "settled")

    def __init__(self, source: BrokerSource, deliveries: list[Delivery], every: float) -> None:
        self._source = source
        self._deliveries = deliveries
        self._every = every
        self.settled: set[int] = set()  # id() of each delivery settled
        self._loop = asyncio.get_running_loop()
        self._sending: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(every, self._due)

    def _due(self) -> None:
        self._timer = None
        self._sending = self._loop.create_task(self._send())

    async def _send(self) -> None:
        try:
            for delivery in self._deliveries:
                if id(delivery) not in self.settled:
                    await delivery.in_progress()
        except self._source._broker_errors() as exc:  # the ack will fail too; redelivered
            self._source._outage.failed(exc, self._source.reconnect_interval)
            return
        self._timer = self._loop.call_later(self._every, self._due)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sending, self._sending = self._sending, None
        if sending is not None and not sending.done():
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending


_NOT_STARTED = object()  # a stop came before the worker thread reached the event
_ASYNC_PATH = object()  # not for the thread: settled on the loop instead


def _never() -> bool:
    return False


def _nothing() -> None:
    return None


_MIN_BACKOFF = 0.001  # seconds: the least reconnect_interval


def _jittered(seconds: float) -> float:
    """Full jitter on the upper half: between half and all of ``seconds``."""
    return seconds * (0.5 + random.random() / 2)  # spreading reconnects, not a secret


def _printable(headers: Mapping[str, Any], fallback: str | None) -> str:
    value = headers.get("event-type", fallback)
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str) and value and value.isprintable() and len(value) <= 256:
        return value
    return "undecodable"


def _check_whole(name: str, number: object) -> None:
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ConfigError(
            f"{name}: expected a whole number of at least 1, got {number!r}", field=name
        )


def _check_seconds(
    name: str, seconds: object, *, positive: bool = False, minimum: float = 0.0
) -> None:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or seconds < minimum
        or (positive and seconds == 0)
        or seconds != seconds
        or seconds > 1e6
    ):
        bound = "more than 0" if positive else f"at least {minimum:g}"
        raise ConfigError(
            f"{name}: expected seconds ({bound}, at most 1e6), got {seconds!r}", field=name
        )
