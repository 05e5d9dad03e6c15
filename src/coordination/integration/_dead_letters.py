"""Where events that could not be processed are kept: an embedded SQLite database.

Four tables, one file (or SQLite's own memory database for ``":memory:"``):

* ``dead_letters`` — each failed event with its type, the reason, the error, how many
  attempts were made and when it failed. ``replay()`` / ``areplay()`` feed them back to the
  processor. An event that could not be stored as JSON at all (a cycle, too deep, an int
  beyond the int-to-text limit, a value whose ``str()`` fails) is kept as a bounded
  ``repr`` instead, marked not replayable.
* ``pending`` — the journal behind the at-least-once contract: an event is written here
  (committed) *before* its handler runs and removed in the same transaction that records
  its outcome. Each row names the *run* that wrote it (``_journal_files.RunLease``: a
  random id whose OS lock lives exactly as long as the run). Rows of a run that ended
  without finishing them (SIGKILL, power loss) are found by ``recover_interrupted()`` and
  become dead letters, so every input ends either processed or dead-lettered. An event
  whose handler finished just before the kill is therefore replayed once more: handlers
  must tolerate duplicates, or use an idempotency key.
* ``owners`` — the runs that have the file open (pid and host, for the messages).
* ``processed_keys`` — idempotency keys of processed events (the newest
  ``MAX_PROCESSED_KEYS``), so a replay skips an event that was already processed.

The connection is shared by threads behind a lock that is held only for a statement or
a short transaction, never across a user's handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import reprlib
import secrets
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .._errors import ConfigError, StoreError
from .._redact import error_text, safe_repr, truncate
from .._time import utc_timestamp
from ._journal_files import RunLease, create_private_file

__all__ = [
    "MAX_PROCESSED_KEYS",
    "DeadLetter",
    "DeadLetterStore",
    "ReplayFailure",
    "ReplayReport",
    "encode_event",
    "error_text",
    "representation",
]

MAX_PROCESSED_KEYS = 100_000
MEMORY = ":memory:"
ERROR_TEXT_LIMIT = 2000  # characters of an error message kept in the store
REPRESENTATION_LIMIT = 2000  # characters of an unstorable event's repr kept instead

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
    idempotency_key TEXT,
    replayable INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS owners (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS processed_keys (
    key TEXT PRIMARY KEY,
    processed_at REAL NOT NULL
);
"""

_LETTER_COLUMNS = (
    "id, payload, event_type, reason, error_type, error, attempts, failed_at, "
    "idempotency_key, replayable"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event that could not be processed, as stored.

    ``replayable`` is false for an event that could not be stored as JSON: ``event`` is
    then a bounded ``repr`` of it (text), kept so the failure can be understood.
    """

    id: int
    event: Any
    event_type: str
    reason: str
    error_type: str
    error: str
    attempts: int
    failed_at: str
    idempotency_key: str | None = None
    replayable: bool = True


@dataclass(frozen=True, slots=True)
class ReplayFailure:
    """Why one letter failed again on replay (``error`` is bounded, as stored)."""

    id: int
    event_type: str
    error_type: str
    error: str


@dataclass(slots=True)
class ReplayReport:
    """What a replay did: ids that succeeded (and left the store), failed or were skipped.

    ``failures`` says, for each id in ``failed``, why it failed again.
    """

    succeeded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failures: list[ReplayFailure] = field(default_factory=list)

    @property
    def replayed(self) -> int:
        return len(self.succeeded) + len(self.failed)

    def failure(self, dead_letter_id: int) -> ReplayFailure | None:
        """Why ``dead_letter_id`` failed again (``None`` if it did not)."""
        return next((f for f in self.failures if f.id == dead_letter_id), None)


# Called by replay(): process the event through the processor's handlers, raising on
# failure. Set by the processor that owns the store (areplay() awaits the async twin).
ReplayCallback = Callable[[Any, str], Any]
AsyncReplayCallback = Callable[[Any, str], Awaitable[Any]]


def encode_event(event: Any) -> str:
    """The JSON text journaled for ``event``; ``ValueError`` when it cannot be stored.

    Values JSON has no type for are kept as their ``str()`` so the event is never lost. A
    cycle, nesting deeper than the interpreter allows, an int beyond the int-to-text limit,
    a key JSON cannot hold or a ``str()`` that fails cannot be stored.
    """
    try:
        return json.dumps(event, default=str, separators=(",", ":"))
    except Exception as exc:  # whatever a hostile __str__ or the encoder raises
        raise ValueError(
            f"the event cannot be stored as JSON ({type(exc).__name__}: {error_text(exc, 200)})"
        ) from exc


_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 10
_REPR.maxstring = _REPR.maxother = 200


def representation(event: Any) -> str:
    """A bounded ``repr`` of an event that cannot be stored, never raising."""
    try:
        text = _REPR.repr(event)
    except Exception:  # e.g. an int too long to print, deep inside
        text = safe_repr(event, REPRESENTATION_LIMIT)
    return truncate(text, REPRESENTATION_LIMIT)


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
        self._areplay: AsyncReplayCallback | None = None
        self._key_inserts = 0
        self._lease: RunLease | None = None
        self._forked = False
        self._reopen_lock = threading.Lock()
        if self.path != MEMORY:
            create_private_file(self.path)
        self._connect()
        if self.path != MEMORY:
            _FILE_STORES.add(self)

    def _connect(self) -> None:
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the dead-letter store at {self.path!r}: {exc}") from exc
        try:
            self._open()
        except BaseException:
            self._db.close()
            if self._lease is not None:
                self._lease.release()
            raise

    def _forked_child(self) -> None:
        """Runs in a forked child (``os.register_at_fork``): reopen on next use.

        The inherited lock handle is dropped at once, so a child that never uses the store
        does not keep its parent's run looking alive after the parent dies.
        """
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._reopen_lock = threading.Lock()
        if self._lease is not None:
            self._lease.abandon()  # the parent's lock and file stay the parent's
            self._lease = None
        self._forked = True

    def _reopen_after_fork(self) -> None:
        """A forked child (a gunicorn worker of a preloaded app) is a run of its own.

        SQLite connections must not cross a fork, and the inherited lock would make the
        child's events look like the parent's: so the child closes both and opens its own.
        """
        with self._reopen_lock:
            if not self._forked:
                return
            self._forked = False
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._connect()

    def _open(self) -> None:
        try:
            if self.path != MEMORY:
                # WAL lets readers run beside the writer; NORMAL sync is durable against
                # a killed process (only an OS crash can lose the last commits).
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(dead_letters)")}
            if "replayable" not in columns:  # a file written before the column existed
                self._db.execute(
                    "ALTER TABLE dead_letters ADD COLUMN replayable INTEGER NOT NULL DEFAULT 1"
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the dead-letter store at {self.path!r}: {exc}") from exc
        if self.path == MEMORY:
            # Nobody else can see SQLite's memory database: no lock to prove liveness.
            self.owner = f"run-{secrets.token_hex(8)}"
            return
        self._lease = RunLease(self.path)
        self.owner = self._lease.id
        with self._transaction() as db:
            db.execute(
                "INSERT INTO owners (id, pid, host, started_at) VALUES (?, ?, ?, ?)",
                (self.owner, os.getpid(), socket.gethostname(), utc_timestamp()),
            )

    # --- plumbing --------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._forked:
            self._reopen_after_fork()
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
        if self._forked:
            self._reopen_after_fork()
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"dead-letter store {self.path!r} failed: {exc}") from exc

    def bind(self, replay: ReplayCallback, areplay: AsyncReplayCallback | None = None) -> None:
        """Set how ``replay()`` (and ``areplay()``) process an event (the owning processor
        does this)."""
        self._replay = replay
        self._areplay = areplay

    def close(self) -> None:
        """Close the file; this run's in-flight entries (if any) count as interrupted."""
        _FILE_STORES.discard(self)
        self._forked = False  # a child closing what it inherited: nothing to reopen
        with self._lock:
            if self._lease is not None:
                # Closing must not fail: the lock's release already says the run ended.
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("DELETE FROM owners WHERE id = ?", (self.owner,))
                self._lease.release()
                self._lease = None
            self._db.close()

    def __enter__(self) -> DeadLetterStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the journal -----------------------------------------------------------------

    def begin(self, items: Iterable[tuple[Any, str, str | None]]) -> list[int]:
        """Journal ``(event, event_type, key)`` items as pending, in one commit; their ids.

        ``ValueError`` (nothing journaled) when an event cannot be stored as JSON.
        """
        return self.begin_encoded([(encode_event(e), t, k) for e, t, k in items])

    def begin_encoded(self, items: Iterable[tuple[str, str, str | None]]) -> list[int]:
        """``begin`` for ``(payload, event_type, key)`` items already encoded."""
        now = utc_timestamp()
        ids: list[int] = []
        with self._transaction() as db:
            for payload, event_type, key in items:
                cursor = db.execute(
                    "INSERT INTO pending (owner, event_type, payload, idempotency_key, "
                    "started_at) VALUES (?, ?, ?, ?, ?)",
                    (self.owner, event_type, payload, key, now),
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
        payload: str | None = None,
    ) -> int:
        """Store a failed event (and drop its journal entry) in one commit; its id.

        ``payload`` is the event's journaled JSON when the caller has it. An event that
        cannot be stored as JSON is kept as a bounded ``repr``, not replayable.
        """
        replayable = True
        if payload is None:
            try:
                payload = encode_event(event)
            except ValueError:
                payload, replayable = json.dumps(representation(event)), False
        with self._transaction() as db:
            if pending_id is not None:
                db.execute("DELETE FROM pending WHERE id = ?", (pending_id,))
            cursor = db.execute(
                "INSERT INTO dead_letters (event_type, payload, reason, error_type, error, "
                "attempts, failed_at, idempotency_key, replayable) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event_type,
                    payload,
                    reason,
                    type(error).__name__,
                    error_text(error),
                    attempts,
                    utc_timestamp(),
                    key,
                    int(replayable),
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
        """How many events are journaled and not yet finished (running, or interrupted)."""
        return int(self._query("SELECT COUNT(*) FROM pending")[0][0])

    def recover_interrupted(self) -> int:
        """Dead-letter the journal entries of runs that ended mid-event; how many.

        A run has ended when its lock can be taken (see ``_journal_files``): true after a
        kill, in any PID namespace, whatever pid the next run gets. A live run's entries,
        however old, are never touched.
        """
        if self._lease is None:
            return 0
        owners = self._query("SELECT DISTINCT owner FROM pending UNION SELECT id FROM owners")
        recovered = 0
        for (owner,) in owners:
            if owner == self.owner:
                continue
            ended = self._lease.claim_if_ended(owner)
            if ended is None:
                continue
            try:
                recovered += self._move_interrupted(owner)
            finally:
                ended.release()
        return recovered

    def _move_interrupted(self, owner: object) -> int:
        info = self._query("SELECT pid, host, started_at FROM owners WHERE id = ?", (owner,))
        if info:
            pid, host, started = info[0]
            who = f"run {owner} (pid {pid} on {host}, started {started})"
        else:
            who = f"run {owner}"
        with self._transaction() as db:
            moved = db.execute(
                "INSERT INTO dead_letters (event_type, payload, reason, error_type, error, "
                "attempts, failed_at, idempotency_key, replayable) "
                "SELECT event_type, payload, 'interrupted', 'ProcessInterrupted', ?, 0, ?, "
                "idempotency_key, 1 FROM pending WHERE owner = ? ORDER BY id",
                (f"{who} stopped before the event finished", utc_timestamp(), owner),
            ).rowcount
            db.execute("DELETE FROM pending WHERE owner = ?", (owner,))
            db.execute("DELETE FROM owners WHERE id = ?", (owner,))
        return max(moved, 0)

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
        if event_type is None:
            rows = self._query(
                f"SELECT {_LETTER_COLUMNS} FROM dead_letters ORDER BY id LIMIT ?", (limit,)
            )
        else:
            rows = self._query(
                f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE event_type = ? "
                "ORDER BY id LIMIT ?",
                (event_type, limit),
            )
        return [
            DeadLetter(
                row[0],
                json.loads(row[1]),
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
                row[7],
                row[8],
                bool(row[9]),
            )
            for row in rows
        ]

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
        one that fails again stays, with its attempts and error updated, and the report's
        ``failures`` say why. A letter that is not replayable stays as it is and is
        reported failed.
        """
        if self._replay is None:
            raise RuntimeError("this dead-letter store is not bound to an event processor")
        report = ReplayReport()
        for letter in self.list(event_type, limit=limit):
            if self._settled_before_replay(letter, report):
                continue
            try:
                self._replay(letter.event, letter.event_type)
            except Exception as exc:
                self._replay_failed(letter, exc, report)
                continue
            self._replay_succeeded(letter, report)
        return report

    async def areplay(self, event_type: str | None = None, *, limit: int = 1000) -> ReplayReport:
        """``replay`` for asyncio workers: coroutine handlers are awaited, synchronous ones
        and every SQLite statement run in worker threads, so the event loop never blocks.

        >>> report = await processor.dead_letters.areplay()   # doctest: +SKIP
        """
        if self._areplay is None:
            raise RuntimeError("this dead-letter store is not bound to an event processor")
        report = ReplayReport()
        letters = await asyncio.to_thread(self.list, event_type, limit=limit)
        for letter in letters:
            if await asyncio.to_thread(self._settled_before_replay, letter, report):
                continue
            try:
                await self._areplay(letter.event, letter.event_type)
            except Exception as exc:
                await asyncio.to_thread(self._replay_failed, letter, exc, report)
                continue
            await asyncio.to_thread(self._replay_succeeded, letter, report)
        return report

    # The steps of one letter's replay, shared by replay() and areplay().

    def _settled_before_replay(self, letter: DeadLetter, report: ReplayReport) -> bool:
        """Skip a letter already processed (removing it), or one that cannot be replayed."""
        key = letter.idempotency_key
        if key is not None and self.is_processed(key):
            self.delete(letter.id)
            report.skipped.append(letter.id)
            return True
        if not letter.replayable:
            report.failed.append(letter.id)
            report.failures.append(
                ReplayFailure(
                    letter.id,
                    letter.event_type,
                    "NotReplayable",
                    "only a bounded representation of this event was stored (it could not "
                    "be stored as JSON), so it cannot be replayed",
                )
            )
            return True
        return False

    def _replay_failed(self, letter: DeadLetter, error: Exception, report: ReplayReport) -> None:
        text = error_text(error)
        with self._transaction() as db:
            db.execute(
                "UPDATE dead_letters SET attempts = attempts + 1, error_type = ?, error = ?, "
                "failed_at = ? WHERE id = ?",
                (type(error).__name__, text, utc_timestamp(), letter.id),
            )
        report.failed.append(letter.id)
        report.failures.append(
            ReplayFailure(letter.id, letter.event_type, type(error).__name__, text)
        )

    def _replay_succeeded(self, letter: DeadLetter, report: ReplayReport) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM dead_letters WHERE id = ?", (letter.id,))
            if letter.idempotency_key is not None:
                self._remember_key(db, letter.idempotency_key)
        report.succeeded.append(letter.id)

    def __repr__(self) -> str:
        return f"DeadLetterStore({self.path!r})"


# File stores open in this process, told when it forks (memory stores need nothing).
_FILE_STORES: weakref.WeakSet[DeadLetterStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_FILE_STORES):
        store._forked_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
