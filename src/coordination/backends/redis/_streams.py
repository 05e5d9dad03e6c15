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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ... import _time
from ..._defaults import register_door
from ..._door_spans import MessageFacts, delivered, operation_for, producer_span
from ..._errors import ConfigError, EventDeadLettered
from ..._events_snapshot import BROKER_SOURCE_DOORS, SourceSnapshot, shown_name
from ..._logging import component_logger, log_extra
from ..._redact import redact, truncate
from ..._time import AsyncSleep, Sleep
from ..._tracing import DOORS, current_tracer, watch_doors
from .._stopping import install_stop_signals
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

    def __len__(self) -> int:
        return len(self.processed) + len(self.dead_lettered) + len(self.left_pending)


class RedisStreamSource:
    """Reads ``stream`` as ``consumer`` of ``group`` and hands each event to ``processor``.

    >>> source = RedisStreamSource(processor, "orders", url="redis://127.0.0.1:6379/0")
    >>> source.publish({"order_id": 7}, "order_created")   # a producer, anywhere
    >>> source.run()                  # a consumer loop, until SIGTERM/SIGINT or stop()
    >>> await source.arun()           # the same on asyncio

    ``run``/``arun`` survive Redis outages: the first error is logged, every one is
    counted (``coordination_redis_errors_total{component="stream"}``, and
    ``status()["broker_errors"]``), and the loop waits ``reconnect_interval`` seconds
    before polling again. ``stop()`` (from any thread), SIGTERM or SIGINT end a run
    after the batch in flight, which is acknowledged.
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
        self._sleep = sleep or _time.sleep
        self._async_sleep = async_sleep or _time.async_sleep
        self._async: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster | None = None
        self._claim_cursor = "0-0"
        self._group_ready = False
        self._logger = component_logger("redis")
        self._injected_sleep = sleep is not None  # else a stop cuts the reconnect wait short
        self._injected_async_sleep = async_sleep is not None
        self._stopping = threading.Event()
        self._running_lock = threading.Lock()
        self._running = False
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None  # arun's
        self._processed = self._dead_lettered = self._reconnects = 0
        self._poison = self._redelivered = 0  # dead-lettered by the source itself
        register_door(BROKER_SOURCE_DOORS, processor, self)  # /metrics, the status page

    def __repr__(self) -> str:
        where = redact(self.url) if self.url is not None else "client"
        return (
            f"RedisStreamSource(stream={self.stream!r}, group={self.group!r}, "
            f"consumer={self.consumer!r}, url={where!r})"
        )

    @property
    def client(self) -> redis.Redis | redis.RedisCluster:
        """The redis-py client; with ``cluster=True`` made on first use (it reads the slot
        map then), so a cluster down at start is an outage ``run`` waits out."""
        return self._client.get()

    # --- producing ----------------------------------------------------------------------

    def publish(self, event: Any, event_type: str, *, maxlen: int | None = None) -> str:
        """Append an event to the stream; returns its entry id."""
        tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
        if tracer is None:
            fields: dict[Any, Any] = encode(event, event_type)
            return text(self.client.xadd(self.stream, fields, maxlen=maxlen))
        operation = operation_for(self.processor, event_type)
        with producer_span(tracer, event_type, operation, "redis", self.stream) as block:
            traced: dict[Any, Any] = encode(event, event_type)
            entry_id = text(self.client.xadd(self.stream, traced, maxlen=maxlen))
            block.span.set_attribute("messaging.message.id", entry_id)
            return entry_id

    async def apublish(self, event: Any, event_type: str, *, maxlen: int | None = None) -> str:
        tracer = current_tracer() if DOORS.on else None  # DOORS.on: an attribute read
        if tracer is None:
            fields: dict[Any, Any] = encode(event, event_type)
            return text(await self.async_client().xadd(self.stream, fields, maxlen=maxlen))
        operation = operation_for(self.processor, event_type)
        with producer_span(tracer, event_type, operation, "redis", self.stream) as block:
            traced: dict[Any, Any] = encode(event, event_type)
            entry_id = text(await self.async_client().xadd(self.stream, traced, maxlen=maxlen))
            block.span.set_attribute("messaging.message.id", entry_id)
            return entry_id

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
        if not self._group_ready:
            self.ensure_group()
        batch = StreamBatch()
        entries = self._claimed(self.client.xautoclaim(**self._claim_args()), batch)
        exhausted: frozenset[str] = frozenset()
        if entries:
            exhausted = self._exhausted(self.client.xpending_range(**self._pending_args(entries)))
        else:
            entries = read_entries(self.client.xreadgroup(**self._read_args()))
        dead: list[tuple[str, RawFields]] = []
        kinds = _SourceDead()
        for entry_id, fields, event in self._to_process(entries, exhausted, dead, kinds):
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
        if batch.processed or dead:
            with self.client.pipeline(transaction=True) as tx:
                self._acknowledge(tx, batch, dead)
                tx.execute()
        self._count(batch, kinds)
        return batch

    def run(
        self,
        *,
        stop: Callable[[], bool] = lambda: False,
        max_idle_polls: int | None = None,
        handle_signals: bool = True,
    ) -> int:
        """Poll until ``stop()`` is true, ``self.stop()``, SIGTERM/SIGINT (on the main
        thread, with ``handle_signals``; a second signal does what it did before), or
        ``max_idle_polls`` polls found nothing in a row. The batch in flight finishes
        and is acknowledged first; a stop arriving during a blocking read takes effect
        when the read ends (at most ``block`` seconds). Returns the number of entries
        processed or dead-lettered."""
        self._start_run(None)
        restore = install_stop_signals(self._on_signal) if handle_signals else _nothing
        try:
            return self._run_sync(stop, max_idle_polls)
        finally:
            restore()
            self._end_run()

    def _run_sync(self, stop: Callable[[], bool], max_idle_polls: int | None) -> int:
        handled = idle = 0
        errors = store_errors()
        while not (self._stopping.is_set() or stop()):
            try:
                batch = self.poll()
            except errors as exc:
                self._outage(exc)
                if self._injected_sleep:
                    self._sleep(self.guard.reconnect_interval)
                else:
                    self._stopping.wait(self.guard.reconnect_interval)
                continue
            self.guard.succeeded()
            handled += len(batch.processed) + len(batch.dead_lettered)
            idle = 0 if batch else idle + 1
            if max_idle_polls is not None and idle >= max_idle_polls:
                break
        return handled

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
        client = self.async_client()
        if not self._group_ready:
            await self.aensure_group()
        batch = StreamBatch()
        entries = self._claimed(await client.xautoclaim(**self._claim_args()), batch)
        exhausted: frozenset[str] = frozenset()
        if entries:
            details = await client.xpending_range(**self._pending_args(entries))
            exhausted = self._exhausted(details)
        else:
            entries = read_entries(await client.xreadgroup(**self._read_args()))
        dead: list[tuple[str, RawFields]] = []
        kinds = _SourceDead()
        process = getattr(self.processor, "aprocess_event", None)
        for entry_id, fields, event in self._to_process(entries, exhausted, dead, kinds):
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
        if batch.processed or dead:
            async with client.pipeline(transaction=True) as tx:
                self._acknowledge(tx, batch, dead)
                await tx.execute()
        self._count(batch, kinds)
        return batch

    async def arun(
        self,
        *,
        stop: Callable[[], bool] = lambda: False,
        max_idle_polls: int | None = None,
        handle_signals: bool = True,
    ) -> int:
        """``run`` for asyncio. Cancelling the task ends it at once: what was read and
        not acknowledged is reclaimed later (``claim_idle``)."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        self._start_run((loop, wake))
        restore = _nothing
        if handle_signals:

            def first(signum: int) -> None:  # the stop is asked from the loop
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._on_signal, signum)

            restore = install_stop_signals(first)
        try:
            return await self._run_async(stop, max_idle_polls, wake)
        finally:
            restore()
            self._end_run()

    async def _run_async(
        self, stop: Callable[[], bool], max_idle_polls: int | None, wake: asyncio.Event
    ) -> int:
        handled = idle = 0
        errors = store_errors()
        while not (self._stopping.is_set() or stop()):
            try:
                batch = await self.apoll()
            except errors as exc:
                self._outage(exc)
                if self._injected_async_sleep:
                    await self._async_sleep(self.guard.reconnect_interval)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), self.guard.reconnect_interval)
                continue
            self.guard.succeeded()
            handled += len(batch.processed) + len(batch.dead_lettered)
            idle = 0 if batch else idle + 1
            if max_idle_polls is not None and idle >= max_idle_polls:
                break
        return handled

    # --- stopping and status ----------------------------------------------------------

    def stop(self) -> None:
        """Ask a running ``run``/``arun`` to finish the batch in flight and return (from
        any thread, or a signal handler); before a run starts, that run returns at once."""
        self._stopping.set()
        woken = self._wake
        if woken is not None and not woken[0].is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                woken[0].call_soon_threadsafe(woken[1].set)

    def status(self) -> dict[str, Any]:
        """What the source has done, and whether Redis answers (the URL never shows:
        errors are redacted)."""
        return {
            "broker": "redis",
            "available": not self.guard.down,
            "running": self._running,
            "stream": self.stream,
            "group": self.group,
            "consumer": self.consumer,
            "processed": self._processed,
            "dead_lettered": self._dead_lettered,
            "poison": self._poison,
            "redelivered_too_often": self._redelivered,
            "broker_errors": self.guard.errors,
            "reconnects": self._reconnects,
            "last_error": self.guard.last_error,
        }

    def _start_run(self, wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None) -> None:
        with self._running_lock:  # held for two lines, never across a wait
            if self._running:
                raise RuntimeError(
                    "this RedisStreamSource is already running: one run() or arun() at a "
                    "time (make a source per consumer)"
                )
            self._running = True
            self._wake = wake

    def _end_run(self) -> None:
        # A stop asked for before this run started (or while it ran) is used up here,
        # not at the start, where it could be lost to a run still starting.
        self._stopping.clear()
        with self._running_lock:
            self._running = False
            self._wake = None

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        self._logger.warning(
            "redis stream source: %s received; finishing the batch in flight, then stopping",
            name,
            extra=log_extra(broker="redis", stream=self.stream, signal=name),
        )
        self.stop()

    def _count(self, batch: StreamBatch, kinds: _SourceDead) -> None:
        """Once the batch's transaction is done (a failed one is read and counted again)."""
        self._processed += len(batch.processed)
        self._poison += kinds.poison
        self._redelivered += kinds.redelivered
        self._dead_lettered += len(batch.dead_lettered) - kinds.poison - kinds.redelivered

    def source_snapshot(self) -> SourceSnapshot:
        """``status()`` as the readers read it (``/metrics``, the status page)."""
        return SourceSnapshot(
            broker="redis",
            source=shown_name(self.stream),
            processed=self._processed,
            dead_lettered=self._dead_lettered,
            poison=self._poison,
            redelivered=self._redelivered,
            broker_errors=self.guard.errors,
            reconnects=self._reconnects,
            available=not self.guard.down,
            last_error=self.guard.last_error,
        )

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

    def _outage(self, error: Exception) -> None:
        self.guard.failed(error)
        self._reconnects += 1
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
        dead: list[tuple[str, RawFields]],
        kinds: _SourceDead,
    ) -> Iterator[tuple[str, RawFields, tuple[Any, str]]]:
        """The entries to hand to the processor; the others go straight to ``dead``."""
        for entry_id, fields in entries:
            if entry_id in exhausted:
                reason = f"delivered more than {self.max_deliveries} times without success"
                dead.append((entry_id, dead_fields(fields, reason, None)))
                kinds.redelivered += 1
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
                dead.append((entry_id, dead_fields(fields, f"undecodable entry: {exc}", None)))
                kinds.poison += 1
                continue
            yield entry_id, fields, event

    def _settle(
        self,
        batch: StreamBatch,
        dead: list[tuple[str, RawFields]],
        entry_id: str,
        fields: RawFields,
        error: Exception,
    ) -> None:
        if isinstance(error, EventDeadLettered):
            dead.append((entry_id, dead_fields(fields, error.reason, error.dead_letter_id)))
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

    def _acknowledge(self, tx: Any, batch: StreamBatch, dead: list[tuple[str, RawFields]]) -> None:
        """Queue, on a MULTI pipeline, each dead letter's copy and every XACK."""
        for entry_id, fields in dead:
            tx.xadd(self.dead_letter_stream, {**fields, "source_id": entry_id})
        batch.dead_lettered.extend(entry_id for entry_id, _ in dead)
        tx.xack(self.stream, self.group, *batch.processed, *batch.dead_lettered)


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


class _SourceDead:
    """A batch's entries the source dead-letters itself, by why (the processor's own
    dead letters are the rest of ``StreamBatch.dead_lettered``)."""

    __slots__ = ("poison", "redelivered")

    def __init__(self) -> None:
        self.poison = 0
        self.redelivered = 0


def _nothing() -> None:
    return None
