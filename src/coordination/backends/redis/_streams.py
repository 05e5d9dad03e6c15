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

Entries have two fields: ``event_type`` and ``event`` (JSON); ``publish()`` writes them.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..._errors import ConfigError, EventDeadLettered, StoreError
from ..._logging import component_logger
from ..._redact import safe_repr, truncate

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["EventProcessor", "RedisStreamSource", "StreamBatch"]

_Entry = tuple[str, dict[str, str]]


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
    >>> source.run(stop=lambda: shutting_down)             # a consumer loop
    """

    def __init__(
        self,
        processor: EventProcessor,
        stream: str,
        *,
        url: str | None = None,
        client: redis.Redis | None = None,
        group: str = "coordination",
        consumer: str | None = None,
        dead_letter_stream: str | None = None,
        batch_size: int = 100,
        block: float = 1.0,
        claim_idle: float = 60.0,
        max_deliveries: int = 5,
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
        if client is None:
            from ._connection import connect

            # Blocking reads outlast the short default timeout: allow the block time plus.
            client = connect(url or "", socket_timeout=block + 5.0)
        self.processor = processor
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.dead_letter_stream = dead_letter_stream or f"{stream}:dead-letters"
        self.batch_size = batch_size
        self.block_ms = round(block * 1000)
        self.claim_idle_ms = round(claim_idle * 1000)
        self.max_deliveries = max_deliveries
        self.client = client
        self._claim_cursor = "0-0"
        self._group_ready = False
        self._logger = component_logger("redis")

    # --- producing ----------------------------------------------------------------------

    def publish(self, event: Any, event_type: str, *, maxlen: int | None = None) -> str:
        """Append an event to the stream; returns its entry id."""
        fields: dict[Any, Any] = encode(event, event_type)
        entry_id = self.client.xadd(self.stream, fields, maxlen=maxlen)
        return _text(entry_id)

    # --- consuming -----------------------------------------------------------------------

    def ensure_group(self, start: str = "0") -> None:
        """Create the consumer group (and the stream) unless it exists; ``start="$"`` skips
        entries already in the stream."""
        from redis.exceptions import ResponseError

        try:
            self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def poll(self) -> StreamBatch:
        """Reclaim stale pending entries, else read new ones (blocking up to ``block``),
        process them, and acknowledge what is done. Returns what happened, by id."""
        if not self._group_ready:
            self.ensure_group()
        batch = StreamBatch()
        entries, exhausted = self._reclaim(batch)
        if not entries:
            reply = self.client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: ">"},
                count=self.batch_size,
                block=self.block_ms or None,
            )
            entries = _entries(reply)
        dead: list[tuple[str, dict[str, str]]] = []
        for entry_id, fields in entries:
            if entry_id in exhausted:
                reason = f"delivered more than {self.max_deliveries} times without success"
                dead.append((entry_id, _dead_fields(fields, reason, None)))
                continue
            outcome = self._process(entry_id, fields)
            if outcome is _PROCESSED:
                batch.processed.append(entry_id)
            elif outcome is _PENDING:
                batch.left_pending.append(entry_id)
            else:
                dead.append((entry_id, outcome))
        batch.dead_lettered.extend(entry_id for entry_id, _ in dead)
        self._acknowledge(batch.processed, dead)
        return batch

    def run(
        self, *, stop: Callable[[], bool] = lambda: False, max_idle_polls: int | None = None
    ) -> int:
        """Poll until ``stop()`` is true (or ``max_idle_polls`` polls found nothing in a row).
        Returns the number of entries handled."""
        handled = idle = 0
        while not stop():
            batch = self.poll()
            handled += len(batch.processed) + len(batch.dead_lettered)
            idle = 0 if batch else idle + 1
            if max_idle_polls is not None and idle >= max_idle_polls:
                break
        return handled

    def pending(self) -> int:
        """Entries delivered to some consumer of the group and not yet acknowledged."""
        info: Any = self.client.xpending(self.stream, self.group)
        return int(info["pending"])

    # --- the steps of a poll -----------------------------------------------------------

    def _reclaim(self, batch: StreamBatch) -> tuple[list[_Entry], frozenset[str]]:
        """Entries idle in other consumers' hands, and those among them to give up on."""
        reply: Any = self.client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=self.batch_size,
        )
        self._claim_cursor = _text(reply[0])
        entries = [(_text(i), _decode_fields(f)) for i, f in reply[1] if f is not None]
        if len(reply) > 2 and reply[2]:
            self._logger.error(
                "stream %r: %d pending entries were trimmed before anyone processed them",
                self.stream,
                len(reply[2]),
            )
        if not entries:
            return entries, frozenset()
        batch.reclaimed.extend(entry_id for entry_id, _ in entries)
        details: Any = self.client.xpending_range(
            self.stream, self.group, min=entries[0][0], max=entries[-1][0], count=len(entries)
        )
        limit = self.max_deliveries
        exhausted = frozenset(
            _text(d["message_id"]) for d in details if int(d["times_delivered"]) > limit
        )
        return entries, exhausted

    def _process(self, entry_id: str, fields: dict[str, str]) -> dict[str, str]:
        """The dead-letter fields when dead-lettered, else ``_PROCESSED`` or ``_PENDING``."""
        try:
            event, event_type = decode(fields)
        except ValueError as exc:
            return _dead_fields(fields, f"undecodable entry: {exc}", None)
        try:
            self.processor.process_event(event, event_type)
        except EventDeadLettered as exc:
            return _dead_fields(fields, exc.reason, exc.dead_letter_id)
        except Exception as exc:
            self._logger.warning(
                "stream %r entry %s failed (%s); left pending, to be redelivered",
                self.stream,
                entry_id,
                truncate(f"{type(exc).__name__}: {exc}"),
            )
            return _PENDING
        return _PROCESSED

    def _acknowledge(self, done: list[str], dead: list[tuple[str, dict[str, str]]]) -> None:
        if not done and not dead:
            return
        with self.client.pipeline(transaction=True) as tx:
            for entry_id, fields in dead:
                record: dict[Any, Any] = {**fields, "source_id": entry_id}
                tx.xadd(self.dead_letter_stream, record)
            tx.xack(self.stream, self.group, *done, *(entry_id for entry_id, _ in dead))
            tx.execute()


# Outcomes of _process other than dead-lettering (whose outcome is the dead-letter fields).
_PROCESSED: dict[str, str] = {"outcome": "processed"}
_PENDING: dict[str, str] = {"outcome": "pending"}


def encode(event: Any, event_type: str) -> dict[str, str]:
    """The stream fields of one event."""
    if not isinstance(event_type, str) or not event_type:
        raise ConfigError(f"event_type: expected a non-empty string, got {event_type!r}")
    try:
        payload = json.dumps(event, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"event of type {event_type!r} is not JSON: {safe_repr(event)}") from exc
    return {"event_type": event_type, "event": payload}


def decode(fields: dict[str, str]) -> tuple[Any, str]:
    """``(event, event_type)`` from stream fields; ``ValueError`` naming what is wrong."""
    event_type = fields.get("event_type")
    if not event_type:
        raise ValueError("no 'event_type' field")
    if "event" not in fields:
        raise ValueError("no 'event' field")
    try:
        return json.loads(fields["event"]), event_type
    except json.JSONDecodeError as exc:
        raise ValueError(f"'event' is not JSON ({exc})") from None


def _dead_fields(fields: dict[str, str], reason: str, dead_letter_id: object) -> dict[str, str]:
    result = dict(fields)
    result["reason"] = truncate(reason, 1000)
    if dead_letter_id is not None:
        result["dead_letter_id"] = str(dead_letter_id)
    return result


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode_fields(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


def _entries(reply: Any) -> list[_Entry]:
    if not reply:
        return []
    messages = reply[0][1]
    return [(_text(i), _decode_fields(f)) for i, f in messages if f is not None]
