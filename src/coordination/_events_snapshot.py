"""``EventsSnapshot``: an event processor's dead-letter store and broker sources, as read.

The writers are ``coordination.integration`` (the event processor: its store) and
``coordination.backends`` (the broker sources feeding it); the readers are in
``coordination.observability`` (the Prometheus collector, the status page). It lives in
the core so that each can name it without importing the others.

A store is read on the readers' side, when they ask, never on the hot path, and bounded:

* at most once every ``STORE_READ_TTL`` seconds per store, whatever the number of readers
  (an exporter, the status page, several scrapers share the last reading);
* within ``STORE_READ_TIMEOUT`` seconds: the counts are read on a worker thread, one at a
  time per store. A store slower than that shows as unavailable for this read; its count
  goes on in the background and a later read takes its answer;
* a store that raises (the database down) shows as unavailable with no counts: logged
  once per outage (and once when it answers again), every failed read counted
  (``read_errors``). A reader never raises because of it.

Names (a namespace, a queue) are shown as they are, bounded (``shown_name``): printable
text, newlines kept, anything else (a lone surrogate, a control character) replaced.

>>> store_snapshot = read_store(store)          # doctest: +SKIP
>>> store_snapshot.available, store_snapshot.dead_letters   # doctest: +SKIP
(True, 3)
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from ._defaults import doors_of
from ._logging import component_logger, log_extra
from ._redact import error_text
from ._time import Clock, monotonic

__all__ = [
    "BROKER_SOURCE_DOORS",
    "MAX_SOURCES",
    "STORE_READ_TIMEOUT",
    "STORE_READ_TTL",
    "CountedStore",
    "EventsSnapshot",
    "ReportsEvents",
    "ReportsSource",
    "SourceSnapshot",
    "StoreReader",
    "StoreSnapshot",
    "events_snapshot",
    "merged_sources",
    "read_store",
    "shown_name",
    "sources_of",
    "store_identity",
]

STORE_READ_TTL = 1.0  # seconds a store's counts are reused by every reader
STORE_READ_TIMEOUT = 2.0  # seconds a reader waits for a store's counts
MAX_SOURCES = 100  # distinct (broker, source) pairs per processor; the rest: __overflow__
NAME_LIMIT = 200  # characters of a name shown
BROKER_SOURCE_DOORS = "broker_source"  # the registry's kind for sources (owner: processor)
_OVERFLOW = "__overflow__"


class CountedStore(Protocol):
    """What the readers read of a dead-letter store (the SQLite ``DeadLetterStore``, the
    PostgreSQL store): two counts, which may raise when the store is down, and what it
    is called — its ``kind`` (``"sqlite"``, ``"postgresql"``: a metric label, a fixed
    word) and its ``namespace``, attributes read by ``store_identity``."""

    def count(self) -> int: ...
    def pending_count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """One dead-letter store as last read: ``dead_letters`` and ``pending`` (journal
    entries not yet settled) are ``None`` when it did not answer (``available`` false,
    ``error`` says why); ``read_errors`` counts the reads that failed since it was first
    read."""

    kind: str
    namespace: str
    dead_letters: int | None
    pending: int | None
    available: bool
    read_errors: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "namespace": self.namespace,
            "dead_letters": self.dead_letters,
            "pending": self.pending,
            "available": self.available,
            "read_errors": self.read_errors,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """One broker source's counts since it was made (or several consuming the same
    ``source`` on the same broker, added up): ``source`` is what it consumes (a queue,
    a subject); ``available`` is false while its broker is unreachable."""

    broker: str
    source: str
    processed: int = 0
    dead_lettered: int = 0
    poison: int = 0
    redelivered: int = 0  # delivered more than max_deliveries times: dead-lettered
    requeued: int = 0
    broker_errors: int = 0
    reconnects: int = 0
    available: bool = True
    last_error: str | None = None

    @property
    def settled(self) -> int:
        return self.processed + self.dead_lettered + self.poison + self.redelivered

    def plus(self, other: SourceSnapshot) -> SourceSnapshot:
        """The two added up (available only if both are)."""
        return replace(
            self,
            processed=self.processed + other.processed,
            dead_lettered=self.dead_lettered + other.dead_lettered,
            poison=self.poison + other.poison,
            redelivered=self.redelivered + other.redelivered,
            requeued=self.requeued + other.requeued,
            broker_errors=self.broker_errors + other.broker_errors,
            reconnects=self.reconnects + other.reconnects,
            available=self.available and other.available,
            last_error=self.last_error or other.last_error,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "broker": self.broker,
            "source": self.source,
            "processed": self.processed,
            "dead_lettered": self.dead_lettered,
            "poison": self.poison,
            "redelivered": self.redelivered,
            "requeued": self.requeued,
            "broker_errors": self.broker_errors,
            "reconnects": self.reconnects,
            "available": self.available,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class EventsSnapshot:
    """An event processor as the readers see it: its store, and the broker sources
    feeding it (one entry per broker and source, at most ``MAX_SOURCES``). ``store`` is
    ``None`` for a broker source read on its own."""

    store: StoreSnapshot | None
    sources: tuple[SourceSnapshot, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": None if self.store is None else self.store.as_dict(),
            "sources": [s.as_dict() for s in self.sources],
        }


@runtime_checkable
class ReportsEvents(Protocol):
    """An event processor as the readers read it (``CoordinationEventProcessor`` is one)."""

    def events_snapshot(self) -> EventsSnapshot: ...


@runtime_checkable
class ReportsSource(Protocol):
    """A broker source as the readers read it (``BrokerSource`` is one)."""

    def source_snapshot(self) -> SourceSnapshot: ...


def shown_name(value: object, limit: int = NAME_LIMIT) -> str:
    """``value`` as text fit for a label and a page: bounded, printable (newlines kept),
    valid UTF-8 (a lone surrogate or a control character becomes U+FFFD)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else "\ufffd" for c in text)


# --- reading a store, bounded ---------------------------------------------------------


class _Count:
    """One read of a store's counts, on its own thread."""

    __slots__ = ("counts", "done", "error", "pid", "started", "taken", "timed_out")

    def __init__(self, started: float) -> None:
        self.started = started
        self.pid = os.getpid()  # a read begun before a fork does not run in the child
        self.done = threading.Event()
        self.counts: tuple[int, int] | None = None
        self.error: BaseException | None = None
        self.taken = False
        self.timed_out = False

    def run(self, store: CountedStore) -> None:
        try:
            self.counts = (int(store.count()), int(store.pending_count()))
        except Exception as exc:  # the store is down: the reader says so
            self.error = exc
        finally:
            self.done.set()


class StoreReader:
    """The bounded reads of one store (see the module docstring): ``read(store)``."""

    def __init__(
        self,
        *,
        ttl: float = STORE_READ_TTL,
        timeout: float = STORE_READ_TIMEOUT,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._clock = clock or monotonic
        self._logger = logger or component_logger("observability")
        self._lock = threading.Lock()
        self._last: StoreSnapshot | None = None
        self._read_at = 0.0
        self._pending: _Count | None = None
        self._errors = 0
        self._down = False

    def read(self, store: CountedStore) -> StoreSnapshot:
        """The store's counts as of at most ``ttl`` seconds ago, or unavailable."""
        now = self._clock()
        with self._lock:
            last = self._last
            if last is not None and now - self._read_at < self.ttl:
                return last
            pending = self._pending
            if pending is None or pending.pid != os.getpid():
                pending = self._pending = _Count(now)
                threading.Thread(
                    target=pending.run, args=(store,), name="coordination-store-count", daemon=True
                ).start()
        pending.done.wait(max(self.timeout - (now - pending.started), 0.0))
        with self._lock:
            if pending.taken and self._last is not None:
                return self._last  # another reader took this answer a moment ago
            snapshot = self._settle(store, pending)
            self._last, self._read_at = snapshot, now
            return snapshot

    def _settle(self, store: CountedStore, pending: _Count) -> StoreSnapshot:
        kind, namespace = store_identity(store)
        if pending.done.is_set():
            pending.taken = True
            if self._pending is pending:
                self._pending = None
            if pending.counts is not None:
                if self._down:
                    self._down = False
                    self._logger.warning(
                        "the %s dead-letter store (namespace %r) answers again",
                        kind,
                        namespace,
                        extra=log_extra(dead_letter_store=kind, namespace=namespace),
                    )
                dead, waiting = pending.counts
                return StoreSnapshot(kind, namespace, dead, waiting, True, self._errors)
            error = pending.error
            assert error is not None  # done without counts: it failed
            why = f"{type(error).__name__}: {error_text(error, 300)}"
            if not pending.timed_out:  # a slow count that then failed is one failure
                self._failed(kind, namespace, why)
        else:
            why = f"no answer within {self.timeout:g} s"
            if not pending.timed_out:  # one slow count is one failure, however often asked
                pending.timed_out = True
                self._failed(kind, namespace, why)
        return StoreSnapshot(kind, namespace, None, None, False, self._errors, why)

    def _failed(self, kind: str, namespace: str, why: str) -> None:
        self._errors += 1
        if self._down:
            return
        self._down = True
        self._logger.warning(
            "the %s dead-letter store (namespace %r) cannot be read for the metrics and the "
            "status page (%s); its counts are left out until it answers (later failures "
            "are counted in coordination_dead_letter_store_errors_total, not logged)",
            kind,
            namespace,
            why,
            extra=log_extra(dead_letter_store=kind, namespace=namespace),
        )


def store_identity(store: object) -> tuple[str, str]:
    """``store``'s kind and namespace as shown: its ``kind`` and ``namespace`` attributes.
    A store without them still shows: named by its location's scheme (a ``path`` of
    ``postgresql://…``) or its class, in the namespace ``default``."""
    kind = getattr(store, "kind", None)
    if not isinstance(kind, str) or not kind:
        path = getattr(store, "path", None)
        scheme = path.partition("://")[0].lower() if isinstance(path, str) else ""
        kind = {"postgresql": "postgresql", "postgres": "postgresql"}.get(
            scheme, type(store).__name__
        )
    namespace = getattr(store, "namespace", None)
    if not isinstance(namespace, str) or not namespace:
        namespace = "default"
    return shown_name(kind, 40), shown_name(namespace)


# One reader per store, shared by every reader of the process; forgotten with the store.
_READERS: weakref.WeakKeyDictionary[object, StoreReader] = weakref.WeakKeyDictionary()
_READERS_LOCK = threading.Lock()


def read_store(store: CountedStore) -> StoreSnapshot:
    """``store``'s counts, read at most once a second for the whole process and within
    ``STORE_READ_TIMEOUT`` seconds; never raises for a store that is down."""
    try:
        with _READERS_LOCK:
            reader = _READERS.get(store)
            if reader is None:
                reader = _READERS[store] = StoreReader(
                    ttl=STORE_READ_TTL, timeout=STORE_READ_TIMEOUT
                )
    except TypeError:  # a store that cannot be weakly referenced: read, bounded, unshared
        reader = StoreReader(ttl=0.0, timeout=STORE_READ_TIMEOUT)
    return reader.read(store)


def events_snapshot(store: CountedStore, owner: object) -> EventsSnapshot:
    """``store`` read as ``read_store`` does, and ``sources_of(owner)``."""
    return EventsSnapshot(read_store(store), sources_of(owner))


def sources_of(owner: object) -> tuple[SourceSnapshot, ...]:
    """The live broker sources registered under ``owner`` (the processor they feed),
    one entry per (broker, source) pair."""
    sources = doors_of(BROKER_SOURCE_DOORS, owner)
    return merged_sources(s.source_snapshot() for s in sources if isinstance(s, ReportsSource))


def merged_sources(sources: Iterable[SourceSnapshot]) -> tuple[SourceSnapshot, ...]:
    """One entry per (broker, source), added up; past ``MAX_SOURCES`` pairs the rest
    go into one ``__overflow__`` source per broker."""
    merged: dict[tuple[str, str], SourceSnapshot] = {}
    for one in sources:
        key = (one.broker, one.source)
        if key not in merged and len(merged) >= MAX_SOURCES:
            one = replace(one, source=_OVERFLOW)
            key = (one.broker, _OVERFLOW)
        known = merged.get(key)
        merged[key] = one if known is None else known.plus(one)
    return tuple(merged.values())
