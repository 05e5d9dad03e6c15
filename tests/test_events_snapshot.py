"""The readers' view of event processors: a store's counts read bounded, the registry.

``StoreReader`` must never let a store that is down or slow break a reader: counts at
most ``ttl`` old and shared, a reader waiting at most ``timeout``, each outage logged once
and every failed read counted. The door registry must hold doors weakly.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordination._defaults import doors_of, forget_door, register_door
from coordination._events_snapshot import (
    MAX_SOURCES,
    NAME_LIMIT,
    SourceSnapshot,
    StoreReader,
    merged_sources,
    shown_name,
)
from fakes import FakeClock


class Store:
    """The store interface the readers rely on: kind, namespace, two counts."""

    kind = "sqlite"

    def __init__(self, namespace: str = "orders") -> None:
        self.namespace = namespace
        self.dead, self.waiting = 3, 1
        self.reads = 0
        self.error: Exception | None = None
        self.gate: threading.Event | None = None

    def count(self) -> int:
        self.reads += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error
        return self.dead

    def pending_count(self) -> int:
        return self.waiting


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_counts_are_read_once_per_ttl_whoever_asks() -> None:
    clock, store = FakeClock(), Store()
    reader = StoreReader(ttl=1.0, timeout=1.0, clock=clock)
    first = reader.read(store)
    assert (first.kind, first.namespace, first.dead_letters, first.pending) == (
        "sqlite",
        "orders",
        3,
        1,
    )
    assert first.available
    assert first.error is None
    assert first.read_errors == 0
    store.dead = 4
    assert reader.read(store) is first  # within the second: the same reading
    assert store.reads == 1
    clock.advance(1.0)
    assert reader.read(store).dead_letters == 4
    assert store.reads == 2


def test_concurrent_readers_share_one_count() -> None:
    store = Store()
    store.gate = threading.Event()
    reader = StoreReader(ttl=5.0, timeout=5.0)
    seen: list[int | None] = []
    threads = [
        threading.Thread(target=lambda: seen.append(reader.read(store).dead_letters))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    store.gate.set()
    for thread in threads:
        thread.join(5)
    assert seen == [3] * 8
    assert store.reads == 1


def test_a_store_that_raises_is_unavailable_logged_once_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, store = FakeClock(), Store()
    reader = StoreReader(ttl=1.0, timeout=1.0, clock=clock)
    assert reader.read(store).available
    store.error = ConnectionError("connection to postgresql://app:hunter2@db:5432 refused")
    caplog.set_level(logging.WARNING, logger="coordination")
    for expected_errors in (1, 2, 3):
        clock.advance(1.0)
        down = reader.read(store)
        assert not down.available
        assert down.dead_letters is None
        assert down.pending is None
        assert down.read_errors == expected_errors
        assert down.error is not None
        assert down.error.startswith("ConnectionError: ")
        assert "hunter2" not in down.error  # error text is redacted
    logged = warnings_of(caplog)
    assert len(logged) == 1
    assert "cannot be read" in logged[0]
    assert "'orders'" in logged[0]
    assert "hunter2" not in logged[0]
    store.error = None
    clock.advance(1.0)
    back = reader.read(store)
    assert back.available
    assert back.dead_letters == 3
    assert back.read_errors == 3
    assert "answers again" in warnings_of(caplog)[-1]
    store.error = OSError("gone again")  # a second outage is logged again, once
    for _ in range(2):
        clock.advance(1.0)
        reader.read(store)
    assert len(warnings_of(caplog)) == 3


def test_a_slow_store_holds_a_reader_for_the_timeout_once() -> None:
    clock, store = FakeClock(), Store()
    store.gate = threading.Event()
    reader = StoreReader(ttl=1.0, timeout=0.05, clock=clock)
    started = time.monotonic()
    slow = reader.read(store)
    assert time.monotonic() - started < 2.0
    assert not slow.available
    assert slow.error == "no answer within 0.05 s"
    assert slow.read_errors == 1
    # The count is still running: the next read neither waits nor starts another one,
    # nor counts the same slow count twice.
    clock.advance(1.0)
    started = time.monotonic()
    again = reader.read(store)
    assert time.monotonic() - started < 0.04
    assert not again.available
    assert again.read_errors == 1
    assert store.reads == 1
    store.gate.set()
    deadline = time.monotonic() + 5
    clock.advance(1.0)
    while not (answered := reader.read(store)).available and time.monotonic() < deadline:
        clock.advance(1.0)
        time.sleep(0.01)
    assert answered.dead_letters == 3
    assert answered.pending == 1


def test_a_store_with_hostile_names_is_shown_bounded() -> None:
    store = Store(namespace="x" * 1000 + "\ud800")
    store.kind = "sqlite\x00"  # type: ignore[misc]
    read = StoreReader(ttl=0.0).read(store)
    assert read.kind == "sqlite\ufffd"
    assert len(read.namespace) <= NAME_LIMIT + 1
    read.namespace.encode("utf-8")


@given(st.text(max_size=400))
def test_shown_names_are_bounded_printable_utf8(name: str) -> None:
    shown = shown_name(name)
    assert len(shown) <= NAME_LIMIT + 1
    shown.encode("utf-8")
    assert all(c.isprintable() or c == "\n" for c in shown)
    if name.isprintable() and len(name) <= NAME_LIMIT:
        assert shown == name  # an ordinary name is shown exactly


def test_sources_on_one_queue_add_up_and_too_many_share_an_overflow() -> None:
    one = SourceSnapshot("rabbitmq", "orders", processed=2, requeued=1, available=True)
    two = SourceSnapshot("rabbitmq", "orders", processed=3, poison=1, available=False)
    (merged,) = merged_sources([one, two])
    assert (merged.processed, merged.poison, merged.requeued) == (5, 1, 1)
    assert not merged.available
    assert merged.settled == 6
    many = [SourceSnapshot("nats", f"s{i}", processed=1) for i in range(MAX_SOURCES + 5)]
    shown = merged_sources(many)
    assert len(shown) == MAX_SOURCES + 1
    assert shown[-1].source == "__overflow__"
    assert shown[-1].processed == 5


class Door:
    pass


def test_doors_are_held_weakly_and_forgotten_on_request() -> None:
    owner, first, second = Door(), Door(), Door()
    register_door("test", owner, first)
    register_door("test", owner, second)
    assert doors_of("test", owner) == [first, second]
    forget_door("test", owner, first)
    assert doors_of("test", owner) == [second]
    del second
    gc.collect()
    assert doors_of("test", owner) == []
    assert doors_of("nothing registered", owner) == []


def test_owners_that_cannot_be_weakly_referenced_are_ignored() -> None:
    unhashable: Any = []
    register_door("test", unhashable, Door())  # neither raises nor remembers
    register_door("test", 42, Door())
    assert doors_of("test", unhashable) == []
    assert doors_of("test", 42) == []
    forget_door("test", unhashable, Door())


class BareCounts:
    """Counts only: no kind, no namespace, not hashable (an object of the user's)."""

    __hash__ = None  # type: ignore[assignment]

    def count(self) -> int:
        return 2

    def pending_count(self) -> int:
        return 0


def test_any_object_with_the_two_counts_is_read() -> None:
    from coordination._events_snapshot import read_store

    read = read_store(BareCounts())  # type: ignore[arg-type]
    assert (read.kind, read.namespace, read.dead_letters, read.available) == (
        "BareCounts",
        "default",
        2,
        True,
    )


class UnnamedSharedStore(BareCounts):
    """A shared store that says its namespace but not its kind (only its location)."""

    path = "postgresql://app:[redacted]@db:5432/app"
    namespace = "billing"


def test_a_store_without_a_kind_is_named_by_its_locations_scheme() -> None:
    read = StoreReader(ttl=0.0).read(UnnamedSharedStore())  # type: ignore[arg-type]
    assert (read.kind, read.namespace) == ("postgresql", "billing")
