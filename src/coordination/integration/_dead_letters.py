"""Where events that could not be processed are kept: an embedded SQLite database.

Three tables, one file (or SQLite's own memory database for ``":memory:"``):

* ``dead_letters`` — each failed event with its type, the reason, the error, how many
  attempts were made and when it failed. ``replay()`` feeds them back to the processor.
* ``pending`` — the journal behind the at-least-once contract: an event is written here
  (committed) *before* its handler runs and removed in the same transaction that records
  its outcome. Rows left by a process that died (SIGKILL, power loss) are found by
  ``recover_interrupted()`` and become dead letters, so every input ends either processed
  or dead-lettered. An event whose handler finished just before the kill is therefore
  replayed once more: handlers must tolerate duplicates, or use an idempotency key.
* ``processed_keys`` — idempotency keys of processed events (the newest
  ``MAX_PROCESSED_KEYS``), so a replay skips an event that was already processed.

The connection is shared by threads behind a lock that is held only for a statement or
a short transaction, never across a user's handler.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigError, StoreError
from .._process import pid_alive
from .._redact import error_text
from .._time import utc_timestamp

__all__ = ["MAX_PROCESSED_KEYS", "DeadLetter", "DeadLetterStore", "ReplayReport"]

MAX_PROCESSED_KEYS = 100_000
MEMORY = ":memory:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    error_type TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at TEXT NOT NULL,
    idempotency_key TEXT
);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS processed_keys (
    key TEXT PRIMARY KEY,
    processed_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event that could not be processed, as stored."""

    id: int
    event: Any
    event_type: str
    reason: str
    error_type: str
    error: str
    attempts: int
    failed_at: str
    idempotency_key: str | None = None


@dataclass(slots=True)
class ReplayReport:
    """What ``replay()`` did: ids that succeeded (and left the store), failed or were skipped."""

    succeeded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)

    @property
    def replayed(self) -> int:
        return len(self.succeeded) + len(self.failed)


# Called by replay(): process the event through the processor's handlers, raising on
# failure. Set by the processor that owns the store.
ReplayCallback = Callable[[Any, str], Any]


def _dumps(event: Any) -> str:
    # Values JSON cannot hold are kept as their str() so the event is never lost.
    return json.dumps(event, default=str, separators=(",", ":"))


class DeadLetterStore:
    """Dead letters and the processing journal in SQLite (WAL mode for files).

    >>> store = DeadLetterStore(":memory:")
    >>> store.count()
    0
    """

    def __init__(self, path: str | os.PathLike[str] = MEMORY) -> None:
        self.path = os.fspath(path)
        if not self.path:
            raise ConfigError(
                "dead_letter_path must be a file path or ':memory:', not an empty string",
                field="dead_letter_path",
                value=path,
                source="keyword argument",
            )
        self._lock = threading.Lock()
        self._replay: ReplayCallback | None = None
        self._key_inserts = 0
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            if self.path != MEMORY:
                # WAL lets readers run beside the writer; NORMAL sync is durable against
                # a killed process (only an OS crash can lose the last commits).
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the dead-letter store at {self.path!r}: {exc}") from exc

    # --- plumbing --------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except Exception:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"dead-letter store {self.path!r} failed: {exc}") from exc

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"dead-letter store {self.path!r} failed: {exc}") from exc

    def bind(self, replay: ReplayCallback) -> None:
        """Set how ``replay()`` processes an event (the owning processor does this)."""
        self._replay = replay

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- the journal -----------------------------------------------------------------

    def begin(self, items: Iterable[tuple[Any, str, str | None]]) -> list[int]:
        """Journal ``(event, event_type, key)`` items as pending, in one commit; their ids."""
        owner, now = os.getpid(), utc_timestamp()
        ids: list[int] = []
        with self._transaction() as db:
            for event, event_type, key in items:
                cursor = db.execute(
                    "INSERT INTO pending (owner, event_type, payload, idempotency_key, "
                    "started_at) VALUES (?, ?, ?, ?, ?)",
                    (owner, event_type, _dumps(event), key, now),
                )
                ids.append(int(cursor.lastrowid or 0))
        return ids

    def finish(self, pending_id: int, key: str | None) -> None:
        """The event behind ``pending_id`` was processed: drop it, remember its key."""
        with self._transaction() as db:
            db.execute("DELETE FROM pending WHERE id = ?", (pending_id,))
            if key is not None:
                self._remember_key(db, key)

    def dead_letter(
        self,
        pending_id: int | None,
        event: Any,
        event_type: str,
        *,
        reason: str,
        error: BaseException,
        attempts: int,
        key: str | None,
    ) -> int:
        """Store a failed event (and drop its journal entry) in one commit; its id."""
        with self._transaction() as db:
            if pending_id is not None:
                db.execute("DELETE FROM pending WHERE id = ?", (pending_id,))
            cursor = db.execute(
                "INSERT INTO dead_letters (event_type, payload, reason, error_type, error, "
                "attempts, failed_at, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event_type,
                    _dumps(event),
                    reason,
                    type(error).__name__,
                    error_text(error),
                    attempts,
                    utc_timestamp(),
                    key,
                ),
            )
            return int(cursor.lastrowid or 0)

    def is_processed(self, key: str) -> bool:
        return bool(self._query("SELECT 1 FROM processed_keys WHERE key = ?", (key,)))

    def _remember_key(self, db: sqlite3.Connection, key: str) -> None:
        db.execute(
            "INSERT OR REPLACE INTO processed_keys (key, processed_at) VALUES (?, ?)",
            (key, time.time()),
        )
        self._key_inserts += 1
        if self._key_inserts % 1000 == 0:  # keep the table bounded, cheaply
            db.execute(
                "DELETE FROM processed_keys WHERE key NOT IN (SELECT key FROM processed_keys "
                "ORDER BY processed_at DESC LIMIT ?)",
                (MAX_PROCESSED_KEYS,),
            )

    def pending_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM pending")[0][0])

    def recover_interrupted(self) -> int:
        """Dead-letter the journal entries of processes that died mid-event; how many."""
        rows = self._query("SELECT id, owner, event_type, payload, idempotency_key FROM pending")
        dead = [row for row in rows if not pid_alive(int(row[1]))]
        if not dead:
            return 0
        now = utc_timestamp()
        with self._transaction() as db:
            for pending_id, owner, event_type, payload, key in dead:
                db.execute("DELETE FROM pending WHERE id = ?", (pending_id,))
                db.execute(
                    "INSERT INTO dead_letters (event_type, payload, reason, error_type, error, "
                    "attempts, failed_at, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        event_type,
                        payload,
                        "interrupted",
                        "ProcessInterrupted",
                        f"process {owner} stopped before the event finished",
                        0,
                        now,
                        key,
                    ),
                )
        return len(dead)

    # --- reading and replaying -------------------------------------------------------

    def count(self, event_type: str | None = None) -> int:
        """How many dead letters there are (of ``event_type``, when given)."""
        if event_type is None:
            return int(self._query("SELECT COUNT(*) FROM dead_letters")[0][0])
        sql = "SELECT COUNT(*) FROM dead_letters WHERE event_type = ?"
        return int(self._query(sql, (event_type,))[0][0])

    def list(self, event_type: str | None = None, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters (of ``event_type``, when given)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive whole number, got {limit!r}")
        columns = (
            "id, payload, event_type, reason, error_type, error, attempts, failed_at, "
            "idempotency_key"
        )
        if event_type is None:
            rows = self._query(f"SELECT {columns} FROM dead_letters ORDER BY id LIMIT ?", (limit,))
        else:
            rows = self._query(
                f"SELECT {columns} FROM dead_letters WHERE event_type = ? ORDER BY id LIMIT ?",
                (event_type, limit),
            )
        return [DeadLetter(row[0], json.loads(row[1]), *row[2:]) for row in rows]

    def delete(self, dead_letter_id: int) -> bool:
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM dead_letters WHERE id = ?", (dead_letter_id,))
            return cursor.rowcount > 0

    def purge(self) -> int:
        """Delete every dead letter; how many there were."""
        with self._transaction() as db:
            return db.execute("DELETE FROM dead_letters").rowcount

    def replay(self, event_type: str | None = None, *, limit: int = 1000) -> ReplayReport:
        """Feed dead letters back through the processor; what succeeds leaves the store.

        An event whose idempotency key was already processed is skipped (and removed);
        one that fails again stays, with its attempts and error updated.
        """
        if self._replay is None:
            raise RuntimeError("this dead-letter store is not bound to an event processor")
        report = ReplayReport()
        for letter in self.list(event_type, limit=limit):
            key = letter.idempotency_key
            if key is not None and self.is_processed(key):
                self.delete(letter.id)
                report.skipped.append(letter.id)
                continue
            try:
                self._replay(letter.event, letter.event_type)
            except Exception as exc:
                self._record_failed_replay(letter, exc)
                report.failed.append(letter.id)
                continue
            with self._transaction() as db:
                db.execute("DELETE FROM dead_letters WHERE id = ?", (letter.id,))
                if key is not None:
                    self._remember_key(db, key)
            report.succeeded.append(letter.id)
        return report

    def _record_failed_replay(self, letter: DeadLetter, error: Exception) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE dead_letters SET attempts = attempts + 1, error_type = ?, error = ?, "
                "failed_at = ? WHERE id = ?",
                (type(error).__name__, error_text(error), utc_timestamp(), letter.id),
            )

    def __repr__(self) -> str:
        return f"DeadLetterStore({self.path!r})"
