"""Dead letters and the journal in PostgreSQL: one store a fleet shares (psycopg 3).

``dead_letter_path="postgresql://…"`` opens this store instead of the SQLite file; every
host points at the same database, and ``dead_letter_namespace`` keeps services apart
(each sees, replays and purges only its namespace). The interface is ``LetterStore``'s,
the SQLite store's.

The tables, made on first use (under an advisory lock, so processes starting together
do not race on the DDL), in the connection's schema (``search_path``):

* ``coordination_dead_letters`` — ``id`` (bigserial), ``namespace``, ``event_type``,
  ``payload`` (the event's JSON as text), ``reason``, ``error_type``, ``error``,
  ``attempts``, ``failed_at`` (timestamptz), ``idempotency_key``, ``replayable``, a
  replay's claim: ``claimed_by`` (the claiming run's lock key), ``claimed_until``, and
  ``trace_context`` (the failed event's W3C trace context as JSON text, or NULL; added
  in place to a table an older version made).
* ``coordination_pending`` — the journal: ``id``, ``namespace``, ``owner`` (run id),
  ``event_type``, ``payload``, ``idempotency_key``, ``started_at``. A row is written
  (committed) before its handler runs and removed in the statement that records its
  outcome.
* ``coordination_runs`` — the stores open now: ``id`` (``run-<16 hex>``), ``namespace``,
  ``pid``, ``host``, ``started_at`` (for the messages; liveness is the lock below).
* ``coordination_processed_keys`` — ``(namespace, key)`` → ``processed_at``: the newest
  ``MAX_PROCESSED_KEYS`` idempotency keys per namespace.

**Who is alive.** Each store is a run whose id encodes a random 62-bit key; its
connection holds the session-level advisory lock on that key while it is open. The
server releases the lock when the session ends, however the process died and whatever
host it ran on, so ``recover_interrupted`` moves the journal rows of exactly the runs
whose lock it can take (``pg_try_advisory_xact_lock``, held while it moves them).

**Replay claims.** A replay claims one letter at a time (``UPDATE … WHERE id = (SELECT …
FOR UPDATE SKIP LOCKED)``): ``claimed_by`` is the run's key, ``claimed_until`` now plus
the lease (``replay_lease``, 300 s). No transaction is held while the user's handler
runs. Another replayer skips a claimed letter unless the claim's lease has expired or
its run has ended (its advisory lock is free, read from ``pg_locks``), so a replayer
killed mid-replay leaves nothing stuck, and two hosts replaying at once never replay one
letter twice. A replay takes only letters that failed before it began, so one that
fails again (here or on another host) waits for the next replay. The lease bounds how
long a live but stuck replayer keeps a letter: make it longer than your slowest handler.

**Outages.** Connecting is bounded (``connect_timeout``, 5 s), every statement too
(``statement_timeout``, 10 s, and ``tcp_user_timeout``); a failure is a ``StoreError``
naming the database with any password masked, and the next call reconnects. The new
session is a new run (the old one may linger on the server after a network partition,
still holding its lock): it takes the old run's journal rows and claims over. The
processor then raises: a journaled event is not lost (its row
stays, or was never written and the caller still holds the event), and a broker source
gives the message back for redelivery.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from .._errors import ConfigError, StoreError
from .._logging import component_logger, log_extra
from .._redact import error_text, redact
from ._dead_letters import (
    LETTER_COLUMNS,
    MAX_PROCESSED_KEYS,
    DeadLetter,
    LetterStore,
    NewLetter,
    ReplayCursor,
    check_limit,
    letter_of,
)

try:
    import psycopg
    from psycopg import conninfo as _conninfo
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "a postgresql:// dead_letter_path needs psycopg 3: "
        "pip install 'coordination-systems[postgres]'"
    ) from exc

__all__ = ["TABLES", "PostgresDeadLetterStore"]

T = TypeVar("T")

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}\Z")  # as the setting's
_RUN_ID = re.compile(r"^run-([0-9a-f]{16})\Z")
# The advisory lock every process takes around the DDL (a constant of this library).
_SCHEMA_LOCK = 0x636F6F72_646C7331  # "coordls1"
TABLES = (
    "coordination_dead_letters",
    "coordination_pending",
    "coordination_runs",
    "coordination_processed_keys",
)
_TRIM_EVERY = 1000  # processed keys inserted between two trims of the namespace's table

_SCHEMA = """
CREATE TABLE IF NOT EXISTS coordination_dead_letters (
    id BIGSERIAL PRIMARY KEY,
    namespace TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    error_type TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    idempotency_key TEXT,
    replayable BOOLEAN NOT NULL DEFAULT TRUE,
    claimed_by BIGINT,
    claimed_until TIMESTAMPTZ,
    trace_context TEXT
);
CREATE INDEX IF NOT EXISTS coordination_dead_letters_by_namespace
    ON coordination_dead_letters (namespace, id);
CREATE INDEX IF NOT EXISTS coordination_dead_letters_by_type
    ON coordination_dead_letters (namespace, event_type, id);
CREATE INDEX IF NOT EXISTS coordination_dead_letters_claims
    ON coordination_dead_letters (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS coordination_pending (
    id BIGSERIAL PRIMARY KEY,
    namespace TEXT NOT NULL,
    owner TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS coordination_pending_by_owner
    ON coordination_pending (namespace, owner);
CREATE TABLE IF NOT EXISTS coordination_runs (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS coordination_runs_by_namespace ON coordination_runs (namespace);
CREATE TABLE IF NOT EXISTS coordination_processed_keys (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, key)
);
CREATE INDEX IF NOT EXISTS coordination_processed_keys_by_age
    ON coordination_processed_keys (namespace, processed_at);
"""

# Every table and index _SCHEMA makes, and the query that says they all exist.
_RELATIONS = tuple(re.findall(r"IF NOT EXISTS (\w+)", _SCHEMA))
_SCHEMA_PRESENT = "SELECT bool_and(to_regclass(name) IS NOT NULL) FROM unnest(%s::text[]) name"
# Columns added since the table was first made (a table of an older version lacks them),
# and the query that answers which of them the table the store writes to has: the one
# ``to_regclass`` finds on the search path, as every statement here does
# (``information_schema.columns`` would need its schema spelled out, and hides the
# columns of a table the role only has some privileges on).
_ADDED_COLUMNS = {"trace_context": "TEXT"}
_COLUMNS_PRESENT = (
    "SELECT attname FROM pg_attribute WHERE attrelid = "
    "to_regclass('coordination_dead_letters') AND attnum > 0 AND NOT attisdropped "
    "AND attname = ANY(%s::text[])"
)

_COLUMNS = LETTER_COLUMNS.replace("failed_at", "failed_at AT TIME ZONE 'UTC'")
_INSERT_LETTER = (
    "INSERT INTO coordination_dead_letters (namespace, event_type, payload, reason, "
    "error_type, error, attempts, idempotency_key, replayable, trace_context) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
# The same for an old table this role could not add trace_context to.
_UNTRACED_COLUMNS = _COLUMNS.replace("trace_context", "NULL")
_INSERT_UNTRACED = _INSERT_LETTER.replace(", trace_context", "").replace(", %s)", ")", 1)
_REMEMBER_KEY = (
    "INSERT INTO coordination_processed_keys (namespace, key) VALUES (%s, %s) "
    "ON CONFLICT (namespace, key) DO UPDATE SET processed_at = now()"
)
# The advisory locks held now in this database, as the bigint keys they were taken with.
_LIVE_RUNS = (
    "SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l "
    "WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class PostgresDeadLetterStore(LetterStore):
    """The dead-letter store every host of a fleet shares, one namespace per service.

    >>> store = PostgresDeadLetterStore("postgresql://app@db/app", "billing")  # doctest: +SKIP
    >>> store.count()                                                          # doctest: +SKIP
    0
    """

    kind = "postgresql"  # what the metrics and the status page label its counts with

    def __init__(
        self,
        url: str,
        namespace: str = "default",
        *,
        replay_lease: float = 300.0,
        connect_timeout: float = 5.0,
        statement_timeout: float = 10.0,
    ) -> None:
        if not isinstance(url, str) or not url.lower().startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                "dead_letter_path must be a postgresql:// URL for this store",
                field="dead_letter_path",
                value=redact(str(url)),
            )
        if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
            raise ConfigError(
                "dead_letter_namespace must be 1-64 letters, digits, '_', '.', ':' or '-', "
                f"starting with a letter or digit, got {namespace!r}",
                field="dead_letter_namespace",
                value=namespace,
            )
        for name, value in (
            ("replay_lease", replay_lease),
            ("connect_timeout", connect_timeout),
            ("statement_timeout", statement_timeout),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(
                    f"{name} must be a positive number of seconds, got {value!r}",
                    field=name,
                    value=value,
                )
        self.path = redact(url)
        self.namespace = namespace
        self.replay_lease = float(replay_lease)
        self.max_processed_keys = MAX_PROCESSED_KEYS
        self._conninfo = _connection_info(url, self.path, connect_timeout, statement_timeout)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._schema_ready = False
        self._trace_column = True  # the table has trace_context (not: an old one we may not alter)
        self._key_inserts = 0
        # After a lost connection: the run (key, id) whose rows the next one takes over.
        self._previous: tuple[int, str] | None = None
        self._new_run()
        with self._lock:
            self._connection()
        _STORES.add(self)

    @property
    def _columns(self) -> str:
        """What a letter is read as (``_letter``), whether or not the table has every column."""
        return _COLUMNS if self._trace_column else _UNTRACED_COLUMNS

    def _new_run(self) -> None:
        self._run_key = secrets.randbits(62)
        self.owner = f"run-{self._run_key:016x}"

    # --- the connection ----------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection (the caller holds ``_lock``), reconnecting when it broke."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            self._lost(conn)
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot reach the dead-letter store at {self.path}: {_message(exc)}"
            ) from exc
        try:
            self._start_run(conn)
        except psycopg.Error as exc:
            with contextlib.suppress(Exception):
                conn.close()
            raise StoreError(
                f"cannot open the dead-letter store at {self.path}: {_message(exc)}"
            ) from exc
        self._conn = conn
        return conn

    def _start_run(self, conn: psycopg.Connection[Any]) -> None:
        if not self._schema_ready:
            # Only when something is missing: CREATE INDEX and ALTER TABLE take locks
            # that would stall every writer of the table for a moment, at each start.
            (present,) = conn.execute(_SCHEMA_PRESENT, (list(_RELATIONS),)).fetchone() or (0,)
            missing = _missing_columns(conn) if present else list(_ADDED_COLUMNS)
            if missing:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    if not present:
                        conn.execute(_SCHEMA)
                    # Asked again under the lock: another process may have just added them.
                    for column in _missing_columns(conn):
                        _add_column(conn, column, self.path)
                missing = _missing_columns(conn)
            self._trace_column = "trace_context" not in missing
            self._schema_ready = True
        previous = self._previous
        if previous is not None:
            # A reconnect is a new run: the old session may linger on the server (a
            # network partition) still holding the old lock. This run takes over the old
            # one's journal rows and claims, so they stay owned by a live run.
            self._new_run()
        # This run's liveness: held by the session, released by the server when it ends.
        conn.execute("SELECT pg_advisory_lock(%s)", (self._run_key,))
        with conn.transaction():
            conn.execute(
                "INSERT INTO coordination_runs (id, namespace, pid, host) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (self.owner, self.namespace, os.getpid(), _text(socket.gethostname())),
            )
            if previous is not None:
                old_key, old_owner = previous
                conn.execute(
                    "UPDATE coordination_pending SET owner = %s "
                    "WHERE namespace = %s AND owner = %s",
                    (self.owner, self.namespace, old_owner),
                )
                conn.execute(
                    "UPDATE coordination_dead_letters SET claimed_by = %s WHERE claimed_by = %s",
                    (self._run_key, old_key),
                )
                conn.execute("DELETE FROM coordination_runs WHERE id = %s", (old_owner,))
        self._previous = None

    def _lost(self, conn: psycopg.Connection[Any]) -> None:
        """The connection broke: forget it; the next one takes this run's rows over."""
        self._conn = None
        self._previous = (self._run_key, self.owner)
        with contextlib.suppress(Exception):
            conn.close()

    def _do(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work(connection)`` under the lock; a database error becomes ``StoreError``."""
        with self._lock:
            conn = self._connection()
            try:
                return work(conn)
            except psycopg.Error as exc:
                if conn.closed or conn.broken or _link_failed(exc):
                    self._lost(conn)
                raise StoreError(f"dead-letter store {self.path} failed: {_message(exc)}") from exc

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row of ``sql`` (None without a row)."""

        def run(conn: psycopg.Connection[Any]) -> Any:
            row = conn.execute(sql, params).fetchone()
            return None if row is None else row[0]

        return self._do(run)

    def _rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._do(lambda conn: conn.execute(sql, params).rowcount)

    def _rows(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        return self._do(lambda conn: conn.execute(sql, params).fetchall())

    def close(self) -> None:
        """End this run: its claims are released, its journal rows (if any) left for
        ``recover_interrupted`` of the next run; the connection closes."""
        _STORES.discard(self)
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is None or conn.closed:
                return
            if not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(
                        "UPDATE coordination_dead_letters SET claimed_by = NULL, "
                        "claimed_until = NULL WHERE claimed_by = %s",
                        (self._run_key,),
                    )
                    conn.execute("DELETE FROM coordination_runs WHERE id = %s", (self.owner,))
            with contextlib.suppress(Exception):
                conn.close()

    def _forked_child(self) -> None:
        """In a forked child: the inherited session is the parent's. Its socket is
        pointed at /dev/null (so the child neither speaks on it nor keeps the session,
        and its lock, alive after the parent dies); the child is a new run."""
        self._lock = threading.Lock()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                devnull = os.open(os.devnull, os.O_RDWR)
                try:
                    os.dup2(devnull, conn.pgconn.socket)
                finally:
                    os.close(devnull)
            _INHERITED.append(conn)  # never finalised here: its close is the parent's
        self._previous = None  # the parent's rows stay the parent's
        self._new_run()

    # --- the journal -------------------------------------------------------------------

    def begin_encoded(self, items: Iterable[tuple[str, str, str | None]]) -> list[int]:
        """``begin`` for ``(payload, event_type, key)`` items already encoded."""
        rows = [(_text(p), _text(t), _key(k)) for p, t, k in items]
        if not rows:
            return []
        payloads, types, keys = (list(column) for column in zip(*rows, strict=True))

        def insert(conn: psycopg.Connection[Any]) -> list[int]:
            cursor = conn.execute(
                "INSERT INTO coordination_pending (namespace, owner, event_type, payload, "
                "idempotency_key) SELECT %s, %s, t, p, k FROM unnest(%s::text[], %s::text[], "
                "%s::text[]) WITH ORDINALITY AS u(p, t, k, n) ORDER BY n RETURNING id",
                (self.namespace, self.owner, payloads, types, keys),
            )
            # Ids come from one sequence in insertion order: sorted, they follow ``items``.
            return sorted(int(row[0]) for row in cursor.fetchall())

        return self._do(insert)

    def finish(self, pending_id: int | None, key: str | None) -> None:
        """The event behind ``pending_id`` was processed: drop it, remember its key
        (``pending_id`` is None for an event that was never journaled)."""
        if key is None:
            if pending_id is not None:
                self._rowcount("DELETE FROM coordination_pending WHERE id = %s", (pending_id,))
            return
        self._do(lambda conn: self._remember(conn, _key(key), pending_id=pending_id))

    def _remember(
        self,
        conn: psycopg.Connection[Any],
        key: str | None,
        *,
        pending_id: int | None = None,
        letter_id: int | None = None,
    ) -> None:
        """In one statement: drop the journal row or the letter, remember ``key``."""
        if key is None:
            sql, params = "DELETE FROM coordination_dead_letters WHERE id = %s", (letter_id,)
            conn.execute(sql, params)
            return
        table, row_id = (
            ("coordination_pending", pending_id)
            if letter_id is None
            else ("coordination_dead_letters", letter_id)
        )
        conn.execute(
            f"WITH gone AS (DELETE FROM {table} WHERE id = %s) {_REMEMBER_KEY}",
            (row_id, self.namespace, key),
        )
        self._key_inserts += 1
        if self._key_inserts % _TRIM_EVERY == 0:  # keep the namespace's keys bounded
            conn.execute(
                "DELETE FROM coordination_processed_keys WHERE namespace = %s AND "
                "processed_at < (SELECT processed_at FROM coordination_processed_keys "
                "WHERE namespace = %s ORDER BY processed_at DESC OFFSET %s LIMIT 1)",
                (self.namespace, self.namespace, self.max_processed_keys - 1),
            )

    def _store_letter(self, pending_id: int | None, letter: NewLetter) -> int:
        values = (
            self.namespace,
            *(_text(text) for text in letter[:5]),
            int(letter.attempts),
            _key(letter.key),
            bool(letter.replayable),
            letter.trace_context,
        )
        insert = _INSERT_LETTER
        if not self._trace_column:
            insert, values = _INSERT_UNTRACED, values[:-1]
        if pending_id is None:
            return int(self._one(insert, values))
        return int(
            self._one(
                f"WITH gone AS (DELETE FROM coordination_pending WHERE id = %s) {insert}",
                (pending_id, *values),
            )
        )

    def is_processed(self, key: str) -> bool:
        return (
            self._one(
                "SELECT 1 FROM coordination_processed_keys WHERE namespace = %s AND key = %s",
                (self.namespace, _key(key)),
            )
            is not None
        )

    def pending_count(self) -> int:
        """How many events of this namespace are journaled and not yet finished."""
        return int(
            self._one(
                "SELECT count(*) FROM coordination_pending WHERE namespace = %s",
                (self.namespace,),
            )
        )

    def recover_interrupted(self) -> int:
        """Dead-letter the journal rows of this namespace's runs that ended; how many.

        A run has ended when its advisory lock can be taken: true after a kill, on any
        host. A live run's rows, however old, are never touched.
        """
        owners = self._rows(
            "SELECT owner FROM coordination_pending WHERE namespace = %s "
            "UNION SELECT id FROM coordination_runs WHERE namespace = %s",
            (self.namespace, self.namespace),
        )
        recovered = 0
        for (owner,) in owners:
            if owner != self.owner:
                recovered += self._do(functools.partial(self._move_if_ended, owner=owner))
        return recovered

    def _move_if_ended(self, conn: psycopg.Connection[Any], *, owner: str) -> int:
        match = _RUN_ID.match(owner)
        with conn.transaction():
            if match is not None:
                (free,) = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (int(match.group(1), 16),)
                ).fetchone() or (False,)
                if not free:
                    return 0  # alive (or being recovered by another host right now)
            info = conn.execute(
                "SELECT pid, host, started_at AT TIME ZONE 'UTC' FROM coordination_runs "
                "WHERE id = %s",
                (owner,),
            ).fetchone()
            who = f"run {owner}"
            if info is not None:
                who += f" (pid {info[0]} on {info[1]}, started {_iso(info[2])})"
            moved = conn.execute(
                "INSERT INTO coordination_dead_letters (namespace, event_type, payload, "
                "reason, error_type, error, attempts, idempotency_key, replayable) "
                "SELECT namespace, event_type, payload, 'interrupted', 'ProcessInterrupted', "
                "%s, 0, idempotency_key, TRUE FROM coordination_pending "
                "WHERE namespace = %s AND owner = %s ORDER BY id",
                (_text(f"{who} stopped before the event finished"), self.namespace, owner),
            ).rowcount
            conn.execute(
                "DELETE FROM coordination_pending WHERE namespace = %s AND owner = %s",
                (self.namespace, owner),
            )
            conn.execute("DELETE FROM coordination_runs WHERE id = %s", (owner,))
        return max(moved, 0)

    # --- reading -----------------------------------------------------------------------

    def count(self, event_type: str | None = None) -> int:
        """How many dead letters this namespace has (of ``event_type``, when given)."""
        if event_type is None:
            sql = "SELECT count(*) FROM coordination_dead_letters WHERE namespace = %s"
            return int(self._one(sql, (self.namespace,)))
        sql = (
            "SELECT count(*) FROM coordination_dead_letters "
            "WHERE namespace = %s AND event_type = %s"
        )
        return int(self._one(sql, (self.namespace, _text(event_type))))

    def list(self, event_type: str | None = None, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of this namespace (of ``event_type``)."""
        check_limit(limit)
        sql = f"SELECT {self._columns} FROM coordination_dead_letters WHERE namespace = %s "
        params: tuple[Any, ...] = (self.namespace,)
        if event_type is not None:
            sql += "AND event_type = %s "
            params += (_text(event_type),)
        rows = self._rows(sql + "ORDER BY id LIMIT %s", (*params, limit))
        return [_letter(row) for row in rows]

    def delete(self, dead_letter_id: int) -> bool:
        deleted = self._rowcount(
            "DELETE FROM coordination_dead_letters WHERE id = %s AND namespace = %s",
            (int(dead_letter_id), self.namespace),
        )
        return deleted > 0

    def purge(self) -> int:
        """Delete every dead letter of this namespace; how many there were."""
        return self._rowcount(
            "DELETE FROM coordination_dead_letters WHERE namespace = %s", (self.namespace,)
        )

    # --- replay's steps (the loop is LetterStore's) ------------------------------------

    def _start_replay(self, event_type: str | None, limit: int) -> ReplayCursor:
        return ReplayCursor(event_type, limit, self._one("SELECT statement_timestamp()"))

    def _take(self, cursor: ReplayCursor) -> Sequence[DeadLetter]:
        """Claim the next letter: free, or its claim's lease expired, or its run ended."""
        typed = "AND event_type = %(type)s " if cursor.event_type is not None else ""
        sql = (
            "UPDATE coordination_dead_letters SET claimed_by = %(me)s, "
            "claimed_until = now() + make_interval(secs => %(lease)s) "
            "WHERE id = (SELECT id FROM coordination_dead_letters "
            f"WHERE namespace = %(ns)s {typed}AND id > %(after)s AND failed_at <= %(horizon)s "
            "AND (claimed_by IS NULL OR claimed_until < now() "
            f"OR claimed_by NOT IN ({_LIVE_RUNS})) "
            "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {self._columns}"
        )
        params = {
            "me": self._run_key,
            "lease": self.replay_lease,
            "ns": self.namespace,
            "type": None if cursor.event_type is None else _text(cursor.event_type),
            "after": cursor.after,
            "horizon": cursor.horizon,
        }
        return [_letter(row) for row in self._rows(sql, params)]

    def _record_failure(self, letter: DeadLetter, error_type: str, error: str) -> None:
        self._rowcount(
            "UPDATE coordination_dead_letters SET attempts = attempts + 1, error_type = %s, "
            "error = %s, failed_at = now(), claimed_by = NULL, claimed_until = NULL "
            "WHERE id = %s",
            (_text(error_type), _text(error), letter.id),
        )

    def _record_success(self, letter: DeadLetter) -> None:
        key = _key(letter.idempotency_key)
        self._do(lambda conn: self._remember(conn, key, letter_id=letter.id))

    def _release(self, letter: DeadLetter) -> None:
        self._rowcount(
            "UPDATE coordination_dead_letters SET claimed_by = NULL, claimed_until = NULL "
            "WHERE id = %s AND claimed_by = %s",
            (letter.id, self._run_key),
        )

    def __repr__(self) -> str:
        return f"PostgresDeadLetterStore({self.path!r}, namespace={self.namespace!r})"


def _connection_info(url: str, shown: str, connect_timeout: float, statement_timeout: float) -> str:
    """``url`` with bounded timeouts added where it does not set its own."""
    try:
        params: dict[str, Any] = _conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise ConfigError(
            f"dead_letter_path {shown} is not a valid PostgreSQL URL: {_message(exc)}",
            field="dead_letter_path",
            value=shown,
        ) from None
    params.setdefault("connect_timeout", str(max(2, round(connect_timeout))))
    milliseconds = max(1, round(statement_timeout * 1000))
    params.setdefault("tcp_user_timeout", str(milliseconds))
    params.setdefault("keepalives_idle", "30")
    params.setdefault("application_name", "coordination-dead-letters")
    options = str(params.get("options") or "")
    if "statement_timeout" not in options:
        options = f"{options} -c statement_timeout={milliseconds}".strip()
    if "lock_timeout" not in options:
        options = f"{options} -c lock_timeout={milliseconds}"
    params["options"] = options
    return _conninfo.make_conninfo(**params)


def _link_failed(error: psycopg.Error) -> bool:
    """Whether ``error`` says the session is gone (not a statement the server refused):
    a client-side failure (no SQLSTATE), a connection exception (08), or the server
    shutting the session down (57P)."""
    state = error.sqlstate
    if state is None:
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
    return state.startswith(("08", "57P"))


def _message(error: BaseException) -> str:
    """A database error as one bounded line, any secret masked."""
    text = " ".join(error_text(error, 500).split()) or type(error).__name__
    return redact(text)


def _text(value: str) -> str:
    """Text PostgreSQL can store: NUL is not allowed in text, nor a lone surrogate."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _key(key: str | None) -> str | None:
    """An idempotency key as stored: one PostgreSQL cannot hold as text, as its SHA-256
    (the same key always maps to the same text, so lookups agree)."""
    if key is None or _text(key) == key:
        return key
    import hashlib

    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _add_column(conn: psycopg.Connection[Any], column: str, shown: str) -> None:
    """Add ``column`` to a dead-letter table an older version made: nullable, no default,
    so a change of the catalog only (no rewrite, a brief exclusive lock). A role that may
    not alter the table (it belongs to a migration role) keeps the store working: its
    letters are then kept without what that column holds, and a warning says so."""
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the DDL transaction usable
            conn.execute(
                f"ALTER TABLE coordination_dead_letters ADD COLUMN IF NOT EXISTS "
                f"{column} {_ADDED_COLUMNS[column]}"
            )
    except psycopg.errors.InsufficientPrivilege as exc:
        component_logger("integration").warning(
            "dead-letter store %s: cannot add the column %s to coordination_dead_letters "
            "(%s); dead letters are kept without it until the table's owner adds it "
            "(seen at the next start): "
            "ALTER TABLE coordination_dead_letters ADD COLUMN %s %s",
            shown,
            column,
            _message(exc),
            column,
            _ADDED_COLUMNS[column],
            extra=log_extra(
                dead_letter_store="postgresql", column=column, error_type=type(exc).__name__
            ),
        )


def _missing_columns(conn: psycopg.Connection[Any]) -> list[str]:
    """The added columns the dead-letter table lacks (all of them while it is missing)."""
    wanted = list(_ADDED_COLUMNS)
    present = {row[0] for row in conn.execute(_COLUMNS_PRESENT, (wanted,)).fetchall()}
    return [column for column in wanted if column not in present]


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat()


def _letter(row: Sequence[Any]) -> DeadLetter:
    return letter_of((*row[:7], _iso(row[7]), *row[8:]))


# Stores open in this process, told when it forks; sessions a child inherited, kept
# (never finalised in the child, where closing would end the parent's session).
_STORES: weakref.WeakSet[PostgresDeadLetterStore] = weakref.WeakSet()
_INHERITED: list[Any] = []


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._forked_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
