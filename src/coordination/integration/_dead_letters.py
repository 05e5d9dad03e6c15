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

``LetterStore`` is what every store offers (this one, and the PostgreSQL store a fleet
shares in ``_postgres_dead_letters``): the interface, and ``replay`` / ``areplay``
written once over a few steps each store implements (where a replay starts, which
letters it takes next, how a letter's outcome is written).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import os
import re
import reprlib
import secrets
import socket
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self

from .._errors import ConfigError, StoreError
from .._redact import error_text, safe_repr, truncate
from .._time import utc_timestamp
from .._tracing import DOORS, current_trace_headers, current_tracer
from ._journal_files import RunLease, create_private_file

__all__ = [
    "MAX_PROCESSED_KEYS",
    "DeadLetter",
    "DeadLetterStore",
    "LetterStore",
    "NewLetter",
    "ReplayCursor",
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
    replayable INTEGER NOT NULL DEFAULT 1,
    trace_context TEXT
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

LETTER_COLUMNS = (
    "id, payload, event_type, reason, error_type, error, attempts, failed_at, "
    "idempotency_key, replayable, trace_context"
)
TRACE_CONTEXT_LIMIT = 1200  # characters of a stored trace context read back (written: ~600)
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}(?:-.*)?")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event that could not be processed, as stored.

    ``replayable`` is false for an event that could not be stored as JSON: ``event`` is
    then a bounded ``repr`` of it (text), kept so the failure can be understood.

    ``trace_context`` is the W3C ``traceparent`` (and ``tracestate``) of the span that was
    current when the event was dead-lettered (the event's CONSUMER span, a Celery task's,
    the producer's for a message a broker source dead-lettered unprocessed), ``None`` when
    nothing was traced then; its replay's span links to that span (never baggage).
    ``trace_id`` is that trace's id (32 hex digits), to look the failure up by.
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
    trace_context: dict[str, str] | None = None

    @property
    def trace_id(self) -> str | None:
        """The id of the trace the event failed in, or ``None`` (nothing was traced)."""
        traceparent = (self.trace_context or {}).get("traceparent")
        if not isinstance(traceparent, str):
            return None
        match = _TRACEPARENT.fullmatch(traceparent)
        if match is None or match.group(1) == "0" * 32:
            return None
        return match.group(1)


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


def check_limit(limit: object) -> int:
    """``limit`` when it is a positive whole number; else ``ValueError``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive whole number, got {limit!r}")
    return limit


def letter_of(row: Sequence[Any]) -> DeadLetter:
    """A ``DeadLetter`` from a row of ``LETTER_COLUMNS`` (``failed_at`` already text)."""
    return DeadLetter(
        int(row[0]),
        json.loads(row[1]),
        row[2],
        row[3],
        row[4],
        row[5],
        int(row[6]),
        row[7],
        row[8],
        bool(row[9]),
        trace_context_of(row[10]),
    )


def stored_trace_context() -> str | None:
    """The column text of the current span's W3C trace context (no baggage), or ``None``
    (OpenTelemetry not loaded, nothing traced: nothing imported, a lookup or two)."""
    headers = current_trace_headers()
    return None if headers is None else json.dumps(headers, separators=(",", ":"))


def trace_context_of(text: object) -> dict[str, str] | None:
    """The W3C headers a stored trace context holds, ``None`` for anything else (an old
    row's NULL, a hand-edited or hostile value: never an error, a letter still lists and
    replays). Only ``traceparent`` and ``tracestate`` are taken, as text; the replay's
    ``extract_context`` checks them again before OpenTelemetry sees them."""
    if not isinstance(text, str) or not text or len(text) > TRACE_CONTEXT_LIMIT:
        return None
    try:
        stored = json.loads(text)
    except Exception:  # not JSON (or nested past the recursion limit)
        return None
    if not isinstance(stored, dict):
        return None
    kept = {
        name: value
        for name in ("traceparent", "tracestate")
        if isinstance(value := stored.get(name), str)
    }
    return kept if "traceparent" in kept else None


class NewLetter(NamedTuple):
    """A dead letter about to be stored, as text and numbers a database column holds."""

    event_type: str
    payload: str
    reason: str
    error_type: str
    error: str
    attempts: int
    key: str | None
    replayable: bool
    trace_context: str | None = None  # the current span's, as ``stored_trace_context``


@dataclass(slots=True)
class ReplayCursor:
    """Where one replay is: the letters it may still take, after ``after``.

    ``horizon`` is the store's own mark of "there when the replay began" (SQLite: the
    highest id then; PostgreSQL: the server's time then), so a replay ends, and a letter
    that failed again during it waits for the next replay.
    """

    event_type: str | None
    left: int
    horizon: Any
    after: int = 0
    taken: deque[DeadLetter] = field(default_factory=deque)


class LetterStore(abc.ABC):
    """What every dead-letter store offers: the journal, the letters, and their replay.

    ``replay`` / ``areplay`` are written here once; a store implements where a replay
    starts (``_start_replay``), which letters it takes next (``_take``: SQLite reads
    them, PostgreSQL claims them so two hosts never replay one letter), and how a
    letter's outcome is written.
    """

    path: str  # where it is, as shown (a URL with its credentials masked)
    kind: str  # "sqlite", "postgresql": the label of its counts in metrics and status
    namespace: str  # the service's share of a shared store
    _replay: ReplayCallback | None = None
    _areplay: AsyncReplayCallback | None = None

    def bind(self, replay: ReplayCallback, areplay: AsyncReplayCallback | None = None) -> None:
        """Set how ``replay()`` (and ``areplay()``) process an event (the owning processor
        does this)."""
        self._replay = replay
        self._areplay = areplay

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the journal -----------------------------------------------------------------

    def begin(self, items: Iterable[tuple[Any, str, str | None]]) -> list[int]:
        """Journal ``(event, event_type, key)`` items as pending, in one commit; their ids.

        ``ValueError`` (nothing journaled) when an event cannot be stored as JSON.
        """
        return self.begin_encoded([(encode_event(e), t, k) for e, t, k in items])

    @abc.abstractmethod
    def begin_encoded(self, items: Iterable[tuple[str, str, str | None]]) -> list[int]: ...

    @abc.abstractmethod
    def finish(self, pending_id: int | None, key: str | None) -> None: ...

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
        replayable: bool = True,
    ) -> int:
        """Store a failed event (and drop its journal entry) in one commit; its id.

        ``payload`` is the event's journaled JSON when the caller has it. An event that
        cannot be stored as JSON is kept as a bounded ``repr``, not replayable; so is any
        event given with ``replayable=False`` (a description of an undecodable message).
        """
        if payload is None:
            try:
                payload = encode_event(event)
            except ValueError:
                payload, replayable = json.dumps(representation(event)), False
        letter = NewLetter(
            event_type,
            payload,
            reason,
            type(error).__name__,
            error_text(error),
            attempts,
            key,
            replayable,
            stored_trace_context(),
        )
        return self._store_letter(pending_id, letter)

    @abc.abstractmethod
    def _store_letter(self, pending_id: int | None, letter: NewLetter) -> int:
        """Insert ``letter`` and delete the journal row ``pending_id``, atomically."""

    @abc.abstractmethod
    def is_processed(self, key: str) -> bool: ...

    @abc.abstractmethod
    def pending_count(self) -> int: ...

    @abc.abstractmethod
    def recover_interrupted(self) -> int: ...

    # --- reading -----------------------------------------------------------------------

    @abc.abstractmethod
    def count(self, event_type: str | None = None) -> int: ...

    @abc.abstractmethod
    def list(self, event_type: str | None = None, *, limit: int = 100) -> list[DeadLetter]: ...

    @abc.abstractmethod
    def delete(self, dead_letter_id: int) -> bool: ...

    @abc.abstractmethod
    def purge(self) -> int: ...

    # --- replaying ---------------------------------------------------------------------

    def replay(self, event_type: str | None = None, *, limit: int = 1000) -> ReplayReport:
        """Feed dead letters back through the processor; what succeeds leaves the store.

        An event whose idempotency key was already processed is skipped (and removed);
        one that fails again stays, with its attempts and error updated, and the report's
        ``failures`` say why. A letter that is not replayable stays as it is and is
        reported failed. Letters stored after the replay began wait for the next one.
        """
        replay = self._replay
        if replay is None:
            raise RuntimeError("this dead-letter store is not bound to an event processor")
        cursor = self._start_replay(event_type, check_limit(limit))
        report = ReplayReport()
        while (letter := self._next_letter(cursor)) is not None:
            if self._settled_before_replay(letter, report):
                continue
            try:
                with _replaying(letter):
                    replay(letter.event, letter.event_type)
            except Exception as exc:
                self._replay_failed(letter, exc, report)
                continue
            except BaseException:  # interrupted: the letter is free for another replay
                with contextlib.suppress(StoreError):
                    self._release(letter)
                raise
            self._replay_succeeded(letter, report)
        return report

    async def areplay(self, event_type: str | None = None, *, limit: int = 1000) -> ReplayReport:
        """``replay`` for asyncio workers: coroutine handlers are awaited, synchronous ones
        and every store statement run in worker threads, so the event loop never blocks.

        >>> report = await processor.dead_letters.areplay()   # doctest: +SKIP
        """
        areplay = self._areplay
        if areplay is None:
            raise RuntimeError("this dead-letter store is not bound to an event processor")
        cursor = await asyncio.to_thread(self._start_replay, event_type, check_limit(limit))
        report = ReplayReport()
        while (letter := await asyncio.to_thread(self._next_letter, cursor)) is not None:
            if await asyncio.to_thread(self._settled_before_replay, letter, report):
                continue
            try:
                with _replaying(letter):
                    await areplay(letter.event, letter.event_type)
            except Exception as exc:
                await asyncio.to_thread(self._replay_failed, letter, exc, report)
                continue
            except BaseException:  # cancelled: the letter is free for another replay
                with contextlib.suppress(StoreError):
                    await asyncio.shield(asyncio.to_thread(self._release, letter))
                raise
            await asyncio.to_thread(self._replay_succeeded, letter, report)
        return report

    def _next_letter(self, cursor: ReplayCursor) -> DeadLetter | None:
        if not cursor.taken and cursor.left > 0:
            cursor.taken.extend(self._take(cursor))
            if cursor.taken:
                cursor.after = cursor.taken[-1].id
                cursor.left -= len(cursor.taken)
        return cursor.taken.popleft() if cursor.taken else None

    # The steps of one letter's replay, shared by replay() and areplay().

    def _settled_before_replay(self, letter: DeadLetter, report: ReplayReport) -> bool:
        """Skip a letter already processed (removing it), or one that cannot be replayed."""
        key = letter.idempotency_key
        if key is not None and self.is_processed(key):
            self.delete(letter.id)
            report.skipped.append(letter.id)
            return True
        if not letter.replayable:
            self._release(letter)
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
        self._record_failure(letter, type(error).__name__, text)
        report.failed.append(letter.id)
        report.failures.append(
            ReplayFailure(letter.id, letter.event_type, type(error).__name__, text)
        )

    def _replay_succeeded(self, letter: DeadLetter, report: ReplayReport) -> None:
        self._record_success(letter)
        report.succeeded.append(letter.id)

    # What each store implements for replay.

    @abc.abstractmethod
    def _start_replay(self, event_type: str | None, limit: int) -> ReplayCursor:
        """A cursor over the letters there now (of ``event_type``), at most ``limit``."""

    @abc.abstractmethod
    def _take(self, cursor: ReplayCursor) -> Sequence[DeadLetter]:
        """The next letters after ``cursor.after`` (at most ``cursor.left``), in id order;
        none when the replay is done. A shared store claims them."""

    @abc.abstractmethod
    def _record_failure(self, letter: DeadLetter, error_type: str, error: str) -> None:
        """The letter failed again: one more attempt, this error, now (claim released)."""

    @abc.abstractmethod
    def _record_success(self, letter: DeadLetter) -> None:
        """The letter was processed: it leaves the store, its key is remembered."""

    @abc.abstractmethod
    def _release(self, letter: DeadLetter) -> None:
        """Give up a letter taken but not replayed (a store that claims releases it)."""


class DeadLetterStore(LetterStore):
    """Dead letters and the processing journal in SQLite (WAL mode for files).

    >>> store = DeadLetterStore(":memory:")
    >>> store.count()
    0
    """

    # What the metrics and the status page label its counts with (every store has both;
    # a file is one service's own, so its namespace is the default one).
    kind = "sqlite"
    namespace = "default"

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
            if "trace_context" not in columns:  # likewise (its letters keep no context)
                self._db.execute("ALTER TABLE dead_letters ADD COLUMN trace_context TEXT")
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

    # --- the journal -----------------------------------------------------------------

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

    def finish(self, pending_id: int | None, key: str | None) -> None:
        """The event behind ``pending_id`` was processed: drop it, remember its key
        (``pending_id`` is None for an event that was never journaled)."""
        with self._transaction() as db:
            if pending_id is not None:
                db.execute("DELETE FROM pending WHERE id = ?", (pending_id,))
            if key is not None:
                self._remember_key(db, key)

    def _store_letter(self, pending_id: int | None, letter: NewLetter) -> int:
        with self._transaction() as db:
            if pending_id is not None:
                db.execute("DELETE FROM pending WHERE id = ?", (pending_id,))
            cursor = db.execute(
                "INSERT INTO dead_letters (event_type, payload, reason, error_type, error, "
                "attempts, failed_at, idempotency_key, replayable, trace_context) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *letter[:6],
                    utc_timestamp(),
                    letter.key,
                    int(letter.replayable),
                    letter.trace_context,
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
        check_limit(limit)
        if event_type is None:
            rows = self._query(
                f"SELECT {LETTER_COLUMNS} FROM dead_letters ORDER BY id LIMIT ?", (limit,)
            )
        else:
            rows = self._query(
                f"SELECT {LETTER_COLUMNS} FROM dead_letters WHERE event_type = ? "
                "ORDER BY id LIMIT ?",
                (event_type, limit),
            )
        return [letter_of(row) for row in rows]

    def delete(self, dead_letter_id: int) -> bool:
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM dead_letters WHERE id = ?", (dead_letter_id,))
            return cursor.rowcount > 0

    def purge(self) -> int:
        """Delete every dead letter; how many there were."""
        with self._transaction() as db:
            return db.execute("DELETE FROM dead_letters").rowcount

    # --- replay's steps (the loop is LetterStore's) -----------------------------------

    def _start_replay(self, event_type: str | None, limit: int) -> ReplayCursor:
        (highest,) = self._query("SELECT COALESCE(MAX(id), 0) FROM dead_letters")[0]
        return ReplayCursor(event_type, limit, int(highest))

    def _take(self, cursor: ReplayCursor) -> Sequence[DeadLetter]:
        sql = f"SELECT {LETTER_COLUMNS} FROM dead_letters WHERE id > ? AND id <= ? "
        params: tuple[Any, ...] = (cursor.after, cursor.horizon)
        if cursor.event_type is not None:
            sql += "AND event_type = ? "
            params += (cursor.event_type,)
        rows = self._query(sql + "ORDER BY id LIMIT ?", (*params, min(cursor.left, 100)))
        return [letter_of(row) for row in rows]

    def _record_failure(self, letter: DeadLetter, error_type: str, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE dead_letters SET attempts = attempts + 1, error_type = ?, error = ?, "
                "failed_at = ? WHERE id = ?",
                (error_type, error, utc_timestamp(), letter.id),
            )

    def _record_success(self, letter: DeadLetter) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM dead_letters WHERE id = ?", (letter.id,))
            if letter.idempotency_key is not None:
                self._remember_key(db, letter.idempotency_key)

    def _release(self, letter: DeadLetter) -> None:
        """Nothing to give back: SQLite's replay reads letters, it does not claim them."""

    def __repr__(self) -> str:
        return f"DeadLetterStore({self.path!r})"


# File stores open in this process, told when it forks (memory stores need nothing).
_FILE_STORES: weakref.WeakSet[DeadLetterStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_FILE_STORES):
        store._forked_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _replaying(letter: DeadLetter) -> contextlib.AbstractContextManager[object]:
    """The letter's replay span while the library's spans are on (``DOORS.on``), else
    nothing (the module that makes spans not even loaded)."""
    tracer = current_tracer() if DOORS.on else None
    if tracer is None:
        return contextlib.nullcontext()
    from .._door_spans import replay_span

    return replay_span(
        tracer,
        letter.event_type,
        letter.id,
        letter.reason,
        letter.attempts,
        letter.trace_context,
    )
