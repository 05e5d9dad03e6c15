"""The dead-letter stores: SQLite (a file in WAL mode, or its memory database) and, for
every test that applies to both (``open_store``), PostgreSQL too."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coordination import ConfigError
from coordination.integration import DeadLetterStore
from coordination.integration._dead_letters import LetterStore

from .dead_letter_stores import StoreLocation

OpenStore = Callable[[], LetterStore]

_OPENED: list[DeadLetterStore] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    """Every store a test opens is closed after it (3.13 warns of unclosed sqlite)."""
    yield
    while _OPENED:
        _OPENED.pop().close()


def _opened(path: str | Path) -> DeadLetterStore:
    store = DeadLetterStore(path)
    _OPENED.append(store)
    return store


def _fail(message: str) -> ValueError:
    return ValueError(message)


def test_file_store_uses_wal_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "letters.sqlite3"
    store = _opened(path)
    letter_id = store.dead_letter(
        None,
        {"id": 1, "when": "now"},
        "orders",
        reason="failed",
        error=_fail("boom"),
        attempts=3,
        key=None,
    )
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    reopened = _opened(path)
    (letter,) = reopened.list()
    assert letter.id == letter_id
    assert letter.event == {"id": 1, "when": "now"}
    assert (letter.event_type, letter.reason, letter.attempts) == ("orders", "failed", 3)
    assert (letter.error_type, letter.error) == ("ValueError", "boom")
    assert letter.failed_at.endswith("+00:00")


def test_count_and_list_filter_by_type_and_keep_order(open_store: OpenStore) -> None:
    store = open_store()
    for n in range(5):
        store.dead_letter(
            None,
            {"n": n},
            "a" if n % 2 else "b",
            reason="failed",
            error=_fail(str(n)),
            attempts=1,
            key=None,
        )
    assert store.count() == 5
    assert store.count("a") == 2
    assert [d.event["n"] for d in store.list("b")] == [0, 2, 4]
    assert [d.event["n"] for d in store.list(limit=2)] == [0, 1]
    with pytest.raises(ValueError, match="limit"):
        store.list(limit=0)


def test_values_json_cannot_hold_are_kept_as_text(open_store: OpenStore) -> None:
    store = open_store()
    store.dead_letter(
        None,
        {"path": Path("/tmp/x"), "n": 1},
        "t",
        reason="failed",
        error=_fail("x"),
        attempts=1,
        key=None,
    )
    assert store.list()[0].event == {"path": "/tmp/x", "n": 1}


def test_replay_needs_a_processor(open_store: OpenStore) -> None:
    with pytest.raises(RuntimeError, match="not bound"):
        open_store().replay()


def test_replay_removes_successes_and_updates_failures(open_store: OpenStore) -> None:
    store = open_store()
    seen: list[Any] = []

    def process(event: Any, event_type: str) -> None:
        seen.append(event["n"])
        if event["n"] == 1:
            raise RuntimeError("still broken")

    store.bind(process)
    for n in range(3):
        store.dead_letter(
            None, {"n": n}, "t", reason="failed", error=_fail("x"), attempts=2, key=None
        )
    report = store.replay()
    assert seen == [0, 1, 2]
    assert report.replayed == 3
    assert len(report.succeeded) == 2
    (left,) = store.list()
    assert left.id == report.failed[0]
    assert (left.attempts, left.error_type, left.error) == (3, "RuntimeError", "still broken")


def test_replay_skips_keys_already_processed(open_store: OpenStore) -> None:
    store = open_store()
    calls: list[Any] = []
    store.bind(lambda event, event_type: calls.append(event))
    (pending,) = store.begin([({"n": 1}, "t", "t:1")])
    store.finish(pending, "t:1")
    store.dead_letter(
        None, {"n": 1}, "t", reason="interrupted", error=_fail("x"), attempts=0, key="t:1"
    )
    report = store.replay()
    assert calls == []
    assert len(report.skipped) == 1
    assert store.count() == 0


def test_journal_entries_of_a_dead_process_become_dead_letters(
    store_location: StoreLocation, open_store: OpenStore
) -> None:
    child = (
        "import sys; from coordination.integration._dead_letter_stores import "
        "open_dead_letter_store as open_store;"
        "open_store(sys.argv[1], sys.argv[2]).begin([({'n': 1}, 't', None), ({'n': 2}, 't', 'k2')])"
    )
    where = [store_location.location, store_location.namespace]
    subprocess.run([sys.executable, "-c", child, *where], check=True, timeout=60)
    store = open_store()
    assert store.pending_count() == 2
    assert store.recover_interrupted() == 2
    assert store.pending_count() == 0
    letters = store.list()
    assert [d.event for d in letters] == [{"n": 1}, {"n": 2}]
    assert {d.reason for d in letters} == {"interrupted"}
    assert letters[1].idempotency_key == "k2"


def test_journal_entries_of_this_process_are_left_alone(open_store: OpenStore) -> None:
    store, other = open_store(), open_store()  # two live runs, one process
    store.begin([({"n": 1}, "t", None)])
    assert store.recover_interrupted() == 0
    assert other.recover_interrupted() == 0
    assert store.pending_count() == 1
    assert os.getpid() > 0


def test_memory_store_leaves_its_own_entries_alone() -> None:
    store = _opened(":memory:")
    store.begin([({"n": 1}, "t", None)])
    assert store.recover_interrupted() == 0
    assert store.pending_count() == 1


def test_an_empty_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dead_letter_path"):
        _opened("")


def test_purge_and_delete(open_store: OpenStore) -> None:
    store = open_store()
    first = store.dead_letter(None, 1, "t", reason="failed", error=_fail("x"), attempts=1, key=None)
    store.dead_letter(None, 2, "t", reason="failed", error=_fail("x"), attempts=1, key=None)
    assert store.delete(first) is True
    assert store.delete(first) is False
    assert store.purge() == 1
    assert store.count() == 0


def test_replay_of_one_type_leaves_the_others(open_store: OpenStore) -> None:
    store = open_store()
    seen: list[Any] = []
    store.bind(lambda event, event_type: seen.append((event_type, event)))
    for n, kind in enumerate(["a", "b", "a"]):
        store.dead_letter(None, n, kind, reason="failed", error=_fail("x"), attempts=1, key=None)
    report = store.replay("a", limit=1)
    assert seen == [("a", 0)]
    assert report.replayed == 1
    assert len(store.replay("a").succeeded) == 1
    assert [letter.event_type for letter in store.list()] == ["b"]


async def test_areplay_awaits_the_handler(open_store: OpenStore) -> None:
    store = open_store()
    seen: list[Any] = []

    async def process(event: Any, event_type: str) -> None:
        seen.append(event)
        if event == 1:
            raise RuntimeError("again")

    store.bind(lambda event, event_type: None, process)
    for n in range(2):
        store.dead_letter(None, n, "t", reason="failed", error=_fail("x"), attempts=1, key=None)
    report = await store.areplay()
    assert seen == [0, 1]
    assert len(report.succeeded) == 1
    assert report.failures[0].error == "again"
    assert store.count() == 1
