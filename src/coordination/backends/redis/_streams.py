"""``RedisStreamSource``: feeds an event processor from a Redis stream, losing nothing.

Delivery is **at least once**. Each consumer of a consumer group reads new entries with
``XREADGROUP``; an entry is acknowledged (``XACK``) only after the processor handled it, or
after it was dead-lettered, in which case it is copied to the dead-letter stream in the
same ``MULTI``/``EXEC`` transaction as its ``XACK``, so it is never both dropped and
unrecorded. Entries a consumer read but never acknowledged (it crashed, or was killed) stay
pending; any consumer reclaims them with ``XAUTOCLAIM`` once they have been idle for
``claim_idle`` seconds, and processes them again. So after a crash an event may be
processed twice (make handlers idempotent, or use the processor's idempotency key), and
an entry delivered ``max_deliveries`` times without success is dead-lettered instead of
retried forever.

Entries have two fields: ``event_type`` and ``event`` (JSON); ``publish()`` writes them,
and the publisher's W3C trace context as ``traceparent`` (``tracestate``, ``baggage``)
fields when OpenTelemetry is loaded. While a tracer provider is set, ``publish()`` makes a
PRODUCER span ``"<event_type> publish"`` (whose context the entry carries) and the
processor's CONSUMER span ``"<event_type> process"`` is its child, with the stream, the
entry id and ``messaging.system="redis"``.

On a Redis Cluster (``cluster=True``, or a ``redis.RedisCluster`` as ``client``) the
dead-letter stream must share the stream's slot, since it is written in the transaction
that acknowledges: its default name is then ``{<stream>}:dead-letters`` (the stream's
name as its hash tag), and a ``dead_letter_stream`` in another slot is a ``ConfigError``.

``run()`` / ``await arun()`` stop as every source does (``backends/_stopping.py``): on
``stop()`` from any thread, SIGTERM or SIGINT (on the main thread; a second one does what
the application's handler does), ``stop=`` returning true, or ``max_idle_polls`` empty
polls in a row. The entry in flight finishes and is acknowledged; entries read but not
started are given back (``XCLAIM ... IDLE claim_idle``: any consumer's next
``XAUTOCLAIM`` takes them at once). A blocking read is woken: ``arun`` cancels it (an
entry Redis handed over in that very instant stays pending, reclaimed after
``claim_idle``), ``run`` has Redis end it (``CLIENT UNBLOCK``; within ``block`` seconds
on a Redis Cluster). ``status()`` shows what the source did, the URL masked; the source
is registered with its processor, so /metrics and the status page show it.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..._defaults import register_door
from ..._door_spans import MessageFacts, delivered, operation_for, producer_span
from ..._errors import ConfigError, EventDeadLettered, StoreError
from ..._events_snapshot import BROKER_SOURCE_DOORS, SourceSnapshot
from ..._logging import component_logger, log_extra
from ..._redact import redact, truncate
from ..._time import AsyncSleep, Sleep
from ..._time import async_sleep as _async_sleep
from ..._tracing import DOORS, current_tracer, watch_doors
from .._source import SourceCounts, _check_whole
from .._stopping import (
    RunStop,
    install_loop_signal_handlers,
    install_stop_signals,
    log_signal,
    refuse_inside_a_loop,
    unless_woken,
)
from ._connection import (
    ClientOnDemand,
    RedisGuard,
    connect_async,
    is_cluster_client,
    store_errors,
)
from ._stream_entries import (
    Entry,
    RawFields,
    carried,
    dead_fields,
    decode,
    encode,
    raw_fields,
    read_entries,
    text,
)
from ._stream_stop import ReadWaker

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster

__all__ = ["EventProcessor", "RedisStreamSource", "StreamBatch"]


class EventProcessor(Protocol):
    """What the source feeds: ``CoordinationEventProcessor`` or anything shaped like it."""

    def process_event(self, event_data: Any, event_type: str) -> Any: ...


@dataclass(slots=True)
class StreamBatch:
    """What one ``poll()`` did, by stream entry id."""

    processed: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    left_pending: list[str] = field(default_factory=list)  # failed; redelivered later
    reclaimed: list[str] = field(default_factory=list)  # taken over from another consumer
    given_back: list[str] = field(default_factory=list)  # not started at a stop: claimable

    def __len__(self) -> int:
        return len(self.processed) + len(self.dead_lettered) + len(self.left_pending)


class RedisStreamSource:
    """Reads ``stream`` as ``consumer`` of ``group`` and hands each event to ``processor``.

    >>> source = RedisStreamSource(processor, "orders", url="redis://127.0.0.1:6379/0")
    >>> source.publish({"order_id": 7}, "order_created")   # a producer, anywhere
    >>> source.run()               # a consumer loop, until SIGTERM/SIGINT or source.stop()
    >>> await source.arun(stop=...)                        # the same on asyncio

    ``run``/``arun`` survive Redis outages: the first error is logged, every one is
    counted (``coordination_redis_errors_total{component="stream"}``), and the loop waits
    ``reconnect_interval`` seconds (or until a stop) before polling again.
    """

    def __init__(
        self,
        processor: EventProcessor,
        stream: str,
        *,
        url: str | None = None,
        client: redis.Redis | redis.RedisCluster | None = None,
        cluster: bool = False,
        group: str = "coordination",
        consumer: str | None = None,
        dead_letter_stream: str | None = None,
        batch_size: int = 100,
        block: float = 1.0,
        claim_idle: float = 60.0,
        max_deliveries: int = 5,
        reconnect_interval: float = 1.0,
        sleep: Sleep | None = None,
        async_sleep: AsyncSleep | None = None,
    ) -> None:
        for name, value in (("stream", stream), ("group", group)):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
        for name, number in (("batch_size", batch_size), ("max_deliveries", max_deliveries)):
            if not isinstance(number, int) or isinstance(number, bool) or number < 1:
                raise ConfigError(f"{name}: expected a whole number of at least 1, got {number!r}")
        for name, seconds in (("block", block), ("claim_idle", claim_idle)):
            if not isinstance(seconds, int | float) or seconds < 0:
                raise ConfigError(f"{name}: expected seconds (at least 0), got {seconds!r}")
        if client is None and url is None:
            raise ConfigError("RedisStreamSource needs url= or client=", field="redis_url")
        # Blocking reads outlast the short default socket timeout: allow the block time plus.
        self._socket_timeout = block + 5.0
        cluster = cluster or is_cluster_client(client)
        dead_letter_stream = dead_letter_stream or _dead_letter_name(stream, cluster)
        if cluster:
            _check_same_slot(stream, dead_letter_stream)
        self.processor = processor
        self.stream = stream
        watch_doors()  # each entry reads _tracing.DOORS.on, kept true while spans are on
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.cluster = cluster
        self.dead_letter_stream = dead_letter_stream
        self.batch_size = batch_size
        self.block_ms = round(block * 1000)
        self.claim_idle_ms = round(claim_idle * 1000)
        self.max_deliveries = max_deliveries
        self._client = ClientOnDemand(
            url, client, cluster=cluster, socket_timeout=self._socket_timeout
        )
        self.url = url
        self.guard = RedisGuard("stream", reconnect_interval=reconnect_interval)
        self._sleep = sleep  # None: wait on the stop itself, so a stop ends the wait
        self._async_sleep = async_sleep or _async_sleep
        self.counts = SourceCounts()
        self._stopping = RunStop()
        self._async: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster | None = None
        self._claim_cursor = "0-0"
        self._group_ready = False
        self._logger = component_logger("redis")
        register_door(BROKER_SOURCE_DOORS, processor, self)  # the readers find it

    def __repr__(self) -> str:
        return (
            f"RedisStreamSource(stream={self.stream!r}, group={self.group!r}, "
            f"consumer={self.consumer!r}, url={self._shown_url() or 'client'!r})"
        )

    @property
    def client(self) -> redis.Redis | redis.RedisCluster:
        """The redis-py client; with ``cluster=True`` made on first use (it reads the slot
        map then), so a cluster down at start is an outage ``run`` waits out."""
        return self._client.get()

    # --- producing ----------------------------------------------------------------------

    def publish(self, event: Any, event_type: str, *, maxlen: int | None = None) -> str:
        """Append an event to the stream; returns its entry id. Redis failing is a
        ``StoreError`` naming it and its masked URL (redis-py's error as ``__cause__``),
        counted in ``coordination_redis_errors_total{component="stream"}``."""
        tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
        if tracer is None:
            return self._appended(encode(event, event_type), maxlen)
        operation = operation_for(self.processor, event_type)
        with producer_span(tracer, event_type, operation, "redis", self.stream) as block:
            entry_id = self._appended(encode(event, event_type), maxlen)
            block.span.set_attribute("messaging.message.id", entry_id)
            return entry_id

    async def apublish(self, event: Any, event_type: str, *, maxlen: int | None = None) -> str:
        """``publish`` on the asyncio client."""
        tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
        if tracer is None:
            return await self._aappended(encode(event, event_type), maxlen)
        operation = operation_for(self.processor, event_type)
        with producer_span(tracer, event_type, operation, "redis", self.stream) as block:
            entry_id = await self._aappended(encode(event, event_type), maxlen)
            block.span.set_attribute("messaging.message.id", entry_id)
            return entry_id

    def _appended(self, fields: Any, maxlen: int | None) -> str:
        try:  # the client too: a cluster's is made (its slots read) on first use
            entry_id = text(self.client.xadd(self.stream, fields, maxlen=maxlen))
        except store_errors() as exc:
            raise self._publish_failed(exc) from exc
        self.guard.succeeded()
        return entry_id

    async def _aappended(self, fields: Any, maxlen: int | None) -> str:
        try:
            entry_id = text(await self.async_client().xadd(self.stream, fields, maxlen=maxlen))
        except store_errors() as exc:
            raise self._publish_failed(exc) from exc
        self.guard.succeeded()
        return entry_id

    def _publish_failed(self, error: Exception) -> StoreError | ConfigError:
        refused = self._refusal(error)
        if refused is not None:
            return refused
        self._failed(error)  # the outage logged once, as the consumer's are
        where = self._shown_url() or "the given client"
        return StoreError(f"cannot publish to redis at {where}: {self.counts.last_error}")

    # --- consuming, sync -----------------------------------------------------------------

    def ensure_group(self, start: str = "0") -> None:
        """Create the consumer group (and the stream) unless it exists; ``start="$"`` skips
        entries already in the stream."""
        try:
            self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except _response_error() as exc:
            _unless_busy_group(exc)
        self._group_ready = True

    def poll(self) -> StreamBatch:
        """Reclaim stale pending entries, else read new ones (blocking up to ``block``),
        process them, and acknowledge what is done. Returns what happened, by id."""
        return self._poll(None)

    def _poll(self, waker: ReadWaker | None) -> StreamBatch:
        """``poll``; in a run (``waker``), the read is wakeable and a stop gives back
        what has not started."""
        if not self._group_ready:
            self.ensure_group()
        client = self.client
        batch = StreamBatch()
        entries = self._claimed(client.xautoclaim(**self._claim_args()), batch)
        exhausted: frozenset[str] = frozenset()
        if entries:
            exhausted = self._exhausted(client.xpending_range(**self._pending_args(entries)))
        elif waker is None:
            entries = read_entries(client.xreadgroup(**self._read_args()))
        else:
            reader = waker.reader()
            if not self._stopping.is_set():  # a stop from here on unblocks the read
                entries = read_entries(reader.xreadgroup(**self._read_args()))
        dead: list[_Dead] = []
        for entry_id, fields, event in self._to_process(entries, exhausted, dead):
            if waker is not None and self._stopping.is_set():
                batch.given_back.append(entry_id)
                continue
            carrier = carried(fields)
            tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
            try:
                if carrier is None and tracer is None:
                    self.processor.process_event(*event)
                else:
                    with delivered(carrier or {}, self._facts(tracer, entry_id)):
                        self.processor.process_event(*event)
            except Exception as exc:
                self._settle(batch, dead, entry_id, fields, exc)
            else:
                batch.processed.append(entry_id)
        if batch.processed or dead or batch.given_back:
            with client.pipeline(transaction=True) as tx:
                self._acknowledge(tx, batch, dead)
                tx.execute()
        self._count(batch, dead)
        return batch

    def run(
        self,
        *,
        stop: Callable[[], bool] | None = None,
        max_idle_polls: int | None = None,
        handle_signals: bool = True,
    ) -> int:
        """Poll until ``stop()`` is true, SIGTERM/SIGINT, ``self.stop()`` or
        ``max_idle_polls`` polls found nothing in a row. Returns the number of entries
        processed or dead-lettered. A stop wakes the blocking read (``CLIENT UNBLOCK``;
        on a Redis Cluster it ends within ``block`` seconds) and the reconnect wait. On a
        running event loop, ``await arun()`` instead (a ``RuntimeError`` here: this would
        stall the loop)."""
        refuse_inside_a_loop("run", "arun")
        tally = _RunTally(max_idle_polls)  # checked before the run begins
        waker = ReadWaker(lambda: self.client, self._on_signal)
        self._stopping.begin(self, on_stop=waker.wake)
        errors = store_errors()
        waker.start()
        restore = install_stop_signals(waker.signalled) if handle_signals else _nothing
        try:
            while not (self._stopping.is_set() or (stop is not None and stop())):
                try:
                    batch = self._poll(waker)
                except errors as exc:
                    self._raise_if_refused(exc)
                    waker.broken()
                    self._outage(exc)
                    self._pause(self.guard.reconnect_interval)
                    continue
                self.guard.succeeded()
                if tally.idle_enough(batch):
                    break
        finally:
            restore()
            waker.close()
            self._stopping.end()  # a stop asked before or during this run is used up here
        return tally.handled

    def stop(self) -> None:
        """Ask a running ``run``/``arun`` to finish the entry in flight, acknowledge it,
        give back what it read but did not start, and return (from any thread, or a
        signal handler); before a run starts, that run returns at once."""
        self._stopping.stop()

    def _on_signal(self, signum: int) -> None:
        log_signal(self._logger, "redis", signum)
        self.stop()

    async def _reconnect_wait(self) -> None:
        await self._async_sleep(self.guard.reconnect_interval)

    def _pause(self, seconds: float) -> None:
        """The reconnect wait, ended early by a stop (an injected ``sleep`` is not)."""
        if self._sleep is None:
            self._stopping.asked.wait(seconds)
        else:
            self._sleep(seconds)

    def pending(self) -> int:
        """Entries delivered to some consumer of the group and not yet acknowledged."""
        info: Any = self.client.xpending(self.stream, self.group)
        return int(info["pending"])

    # --- consuming, asyncio ----------------------------------------------------------------

    def async_client(self) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
        """The asyncio client (made on first use, from ``url``; the asyncio
        ``RedisCluster`` with ``cluster=True``)."""
        if self._async is None:
            if self.url is None:
                raise ConfigError("async use needs RedisStreamSource(url=...)", field="redis_url")
            self._async = connect_async(
                self.url, socket_timeout=self._socket_timeout, cluster=self.cluster
            )
        return self._async

    async def aensure_group(self, start: str = "0") -> None:
        try:
            await self.async_client().xgroup_create(
                self.stream, self.group, id=start, mkstream=True
            )
        except _response_error() as exc:
            _unless_busy_group(exc)
        self._group_ready = True

    async def apoll(self) -> StreamBatch:
        """``poll`` on the asyncio client; awaits the processor's ``aprocess_event`` when
        it has one, else runs ``process_event`` in a worker thread."""
        return await self._apoll(None)

    async def _apoll(self, wake: asyncio.Event | None) -> StreamBatch:
        """``apoll``; in a run (``wake``), a stop cancels the read and gives back what
        has not started."""
        client = self.async_client()
        if not self._group_ready:
            await self.aensure_group()
        batch = StreamBatch()
        entries = self._claimed(await client.xautoclaim(**self._claim_args()), batch)
        exhausted: frozenset[str] = frozenset()
        if entries:
            details = await client.xpending_range(**self._pending_args(entries))
            exhausted = self._exhausted(details)
        elif wake is None:
            entries = read_entries(await client.xreadgroup(**self._read_args()))
        else:
            read = self._read_args()
            entries = read_entries(await unless_woken(lambda: client.xreadgroup(**read), wake))
        dead: list[_Dead] = []
        process = getattr(self.processor, "aprocess_event", None)
        for entry_id, fields, event in self._to_process(entries, exhausted, dead):
            if wake is not None and self._stopping.is_set():
                batch.given_back.append(entry_id)
                continue
            carrier = carried(fields)
            tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
            try:
                if carrier is None and tracer is None:
                    await self._aprocess(process, event)
                else:
                    with delivered(carrier or {}, self._facts(tracer, entry_id)):
                        await self._aprocess(process, event)
            except Exception as exc:
                self._settle(batch, dead, entry_id, fields, exc)
            else:
                batch.processed.append(entry_id)
        if batch.processed or dead or batch.given_back:
            async with client.pipeline(transaction=True) as tx:
                self._acknowledge(tx, batch, dead)
                await tx.execute()
        self._count(batch, dead)
        return batch

    async def arun(
        self,
        *,
        stop: Callable[[], bool] | None = None,
        max_idle_polls: int | None = None,
        handle_signals: bool = True,
    ) -> int:
        """``run`` for asyncio: a stop cancels the blocking read at once. Cancelling the
        task stops at once too: what was not acknowledged is redelivered later."""
        tally = _RunTally(max_idle_polls)  # checked before the run begins
        loop = asyncio.get_running_loop()
        self._stopping.begin(self, loop=loop)
        wake = self._stopping.wake
        assert wake is not None  # begin made it, for this loop
        errors = store_errors()
        restore = (
            install_loop_signal_handlers(loop, self._on_signal) if handle_signals else _nothing
        )
        try:
            while not (self._stopping.is_set() or (stop is not None and stop())):
                try:
                    batch = await self._apoll(wake)
                except errors as exc:
                    self._raise_if_refused(exc)
                    self._outage(exc)
                    await unless_woken(self._reconnect_wait, wake)
                    continue
                self.guard.succeeded()
                if tally.idle_enough(batch):
                    break
        finally:
            restore()
            self._stopping.end()  # a stop asked before or during this run is used up here
        return tally.handled

    def close(self) -> None:
        self._client.close()

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    async def _aprocess(self, process: Any, event: tuple[Any, str]) -> None:
        if process is not None:
            await process(*event)
        else:  # a worker thread runs it in a copy of this context: the trace goes along
            await asyncio.to_thread(self.processor.process_event, *event)

    # --- the steps of a poll, shared by both ------------------------------------------

    def _facts(self, tracer: object, entry_id: str) -> MessageFacts | None:
        """What the processor's CONSUMER span says of the entry (None: not tracing)."""
        return None if tracer is None else MessageFacts("redis", self.stream, entry_id)

    def _failed(self, error: Exception) -> None:
        """A Redis command failed: logged once per outage, counted in the metric and in
        ``counts``."""
        self.guard.failed(error)
        self.counts.broker_errors += 1
        self.counts.last_error = self.guard.last_error  # redacted by the guard

    def _refusal(self, error: Exception) -> ConfigError | None:
        """The error to raise when Redis refused this source's credentials or its ACL
        (a wrong password does not fix itself: retried as an outage, logged once, it was
        hidden), or None for an outage worth waiting out."""
        if not isinstance(error, _refusal_errors()):
            return None
        self._failed(error)  # counted, as every Redis error is
        where = self._shown_url() or "the given client"
        return ConfigError(
            f"redis at {where} refused this source: {self.counts.last_error} (check the "
            "URL's user and password and the user's ACL permissions; not retried)",
            field="redis_url",
            value=where,
        )

    def _raise_if_refused(self, error: Exception) -> None:
        refused = self._refusal(error)
        if refused is not None:
            raise refused from error

    def _outage(self, error: Exception) -> None:
        self._failed(error)
        self.counts.reconnects += 1  # the run polls again after its wait
        # A restarted Redis without persistence has lost the group: make it again.
        self._group_ready = False

    def _claim_args(self) -> dict[str, Any]:
        return {
            "name": self.stream,
            "groupname": self.group,
            "consumername": self.consumer,
            "min_idle_time": self.claim_idle_ms,
            "start_id": self._claim_cursor,
            "count": self.batch_size,
        }

    def _read_args(self) -> dict[str, Any]:
        return {
            "groupname": self.group,
            "consumername": self.consumer,
            "streams": {self.stream: ">"},
            "count": self.batch_size,
            "block": self.block_ms or None,
        }

    def _pending_args(self, entries: list[Entry]) -> dict[str, Any]:
        first, last = entries[0][0], entries[-1][0]
        return {
            "name": self.stream,
            "groupname": self.group,
            "min": first,
            "max": last,
            "count": len(entries),
        }

    def _claimed(self, reply: Any, batch: StreamBatch) -> list[Entry]:
        """Entries ``XAUTOCLAIM`` took over from consumers that let them sit too long."""
        self._claim_cursor = text(reply[0])
        entries = [(text(i), raw_fields(f)) for i, f in reply[1] if f is not None]
        if len(reply) > 2 and reply[2]:
            self._logger.error(
                "stream %r: %d pending entries were trimmed before anyone processed them",
                self.stream,
                len(reply[2]),
                extra=log_extra(broker="redis", stream=self.stream, trimmed=len(reply[2])),
            )
        batch.reclaimed.extend(entry_id for entry_id, _ in entries)
        return entries

    def _exhausted(self, details: Any) -> frozenset[str]:
        """Ids among the reclaimed entries delivered too often: dead-letter, don't retry."""
        limit = self.max_deliveries
        return frozenset(
            text(d["message_id"]) for d in details if int(d["times_delivered"]) > limit
        )

    def _to_process(
        self,
        entries: list[Entry],
        exhausted: frozenset[str],
        dead: list[_Dead],
    ) -> Iterator[tuple[str, RawFields, tuple[Any, str]]]:
        """The entries to hand to the processor; the others go straight to ``dead``."""
        for entry_id, fields in entries:
            if entry_id in exhausted:
                reason = f"delivered more than {self.max_deliveries} times without success"
                dead.append((entry_id, dead_fields(fields, reason, None), _REDELIVERED))
                continue
            try:
                event = decode(fields)
            except ValueError as exc:  # a poison entry: dead-lettered alone, at once
                self._logger.warning(
                    "stream %r entry %s cannot be decoded (%s); dead-lettered",
                    self.stream,
                    entry_id,
                    exc,
                    extra=log_extra(
                        broker="redis", stream=self.stream, message_id=entry_id, reason="poison"
                    ),
                )
                reason = f"undecodable entry: {exc}"
                dead.append((entry_id, dead_fields(fields, reason, None), _POISON))
                continue
            yield entry_id, fields, event

    def _settle(
        self,
        batch: StreamBatch,
        dead: list[_Dead],
        entry_id: str,
        fields: RawFields,
        error: Exception,
    ) -> None:
        if isinstance(error, EventDeadLettered):
            stored = dead_fields(fields, error.reason, error.dead_letter_id)
            dead.append((entry_id, stored, _DEAD_LETTERED))
            return
        self._logger.warning(
            "stream %r entry %s failed (%s); left pending, to be redelivered",
            self.stream,
            entry_id,
            truncate(f"{type(error).__name__}: {error}"),
            extra=log_extra(
                broker="redis",
                stream=self.stream,
                message_id=entry_id,
                error_type=type(error).__name__,
            ),
        )
        batch.left_pending.append(entry_id)

    def _acknowledge(self, tx: Any, batch: StreamBatch, dead: list[_Dead]) -> None:
        """Queue, on a MULTI pipeline, each dead letter's copy and every XACK; what a
        stop kept from starting is made claimable at once (its idle time set to
        ``claim_idle``; ``JUSTID`` leaves its delivery count as it was)."""
        for entry_id, fields, _ in dead:
            tx.xadd(self.dead_letter_stream, {**fields, "source_id": entry_id})
        batch.dead_lettered.extend(entry_id for entry_id, _, _ in dead)
        if batch.processed or batch.dead_lettered:
            tx.xack(self.stream, self.group, *batch.processed, *batch.dead_lettered)
        if batch.given_back:
            tx.xclaim(
                self.stream,
                self.group,
                self.consumer,
                0,
                batch.given_back,
                idle=self.claim_idle_ms,
                justid=True,
            )

    def _count(self, batch: StreamBatch, dead: list[_Dead]) -> None:
        """Add what a poll settled to ``counts`` (once its transaction went through)."""
        counts = self.counts
        counts.processed += len(batch.processed)
        counts.requeued += len(batch.left_pending) + len(batch.given_back)
        for _, _, kind in dead:
            if kind is _POISON:
                counts.poison += 1
            elif kind is _REDELIVERED:
                counts.redelivered_too_often += 1
            else:
                counts.dead_lettered += 1

    # --- status ---------------------------------------------------------------------------

    def _shown_url(self) -> str | None:
        """``url`` as shown anywhere: any password masked."""
        return None if self.url is None else redact(self.url)

    def status(self) -> dict[str, Any]:
        """What the source has done, and whether Redis answers (no command is sent:
        ``pending()`` asks Redis for the group's pending count)."""
        return {
            **self.counts.status("redis", available=not self.guard.down),
            "running": self._stopping.running,
            "stream": self.stream,
            "group": self.group,
            "consumer": self.consumer,
            "dead_letter_stream": self.dead_letter_stream,
            "url": self._shown_url(),
        }

    def source_snapshot(self) -> SourceSnapshot:
        """``status()`` as the readers (/metrics, the status page) read it."""
        return self.counts.snapshot("redis", self.stream, available=not self.guard.down)


class _RunTally:
    """What a run has handled, and whether ``max_idle_polls`` empty polls came in a row."""

    __slots__ = ("_idle", "_max_idle_polls", "handled")

    def __init__(self, max_idle_polls: int | None) -> None:
        if max_idle_polls is not None:
            _check_whole("max_idle_polls", max_idle_polls)
        self.handled = 0
        self._idle = 0
        self._max_idle_polls = max_idle_polls

    def idle_enough(self, batch: StreamBatch) -> bool:
        """Count ``batch``; True once ``max_idle_polls`` polls in a row found nothing."""
        self.handled += len(batch.processed) + len(batch.dead_lettered)
        self._idle = 0 if batch else self._idle + 1
        return self._max_idle_polls is not None and self._idle >= self._max_idle_polls


# What a poll dead-letters: (entry id, the dead letter's fields, why: one of the three).
_Dead = tuple[str, RawFields, object]
_DEAD_LETTERED = object()  # the processor raised EventDeadLettered
_POISON = object()  # undecodable
_REDELIVERED = object()  # delivered more than max_deliveries times


def _nothing() -> None:
    return None


def _refusal_errors() -> tuple[type[Exception], ...]:
    """A wrong user or password (``WRONGPASS``, ``NOAUTH``) and an ACL that forbids a
    command or the stream's key (``NOPERM``)."""
    from redis.exceptions import AuthenticationError, NoPermissionError

    return (AuthenticationError, NoPermissionError)


def _response_error() -> type[Exception]:
    from redis.exceptions import ResponseError

    return ResponseError


def _unless_busy_group(error: Exception) -> None:
    """An existing group is fine (BUSYGROUP); any other error is raised again."""
    if "BUSYGROUP" not in str(error):
        raise error


def _dead_letter_name(stream: str, cluster: bool) -> str:
    """``<stream>:dead-letters``; on a Redis Cluster, in the stream's slot: a stream name
    with a hash tag keeps it, any other becomes the tag (``{orders}`` hashes as ``orders``)."""
    if not cluster or _hash_tag(stream) is not None:
        return f"{stream}:dead-letters"
    return f"{{{stream}}}:dead-letters"


def _hash_tag(key: str) -> str | None:
    """The part of ``key`` Redis Cluster hashes when it is not the whole key."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    return None if end <= start + 1 else key[start + 1 : end]


def _check_same_slot(stream: str, dead_letter_stream: str) -> None:
    from redis.crc import key_slot

    if key_slot(stream.encode()) != key_slot(dead_letter_stream.encode()):
        raise ConfigError(
            f"dead_letter_stream: {dead_letter_stream!r} is not in the Redis Cluster slot of "
            f"stream {stream!r}, and both are written in one transaction; give them one hash "
            f"tag, such as '{{{stream}}}:dead-letters'",
            field="dead_letter_stream",
            value=dead_letter_stream,
        )
