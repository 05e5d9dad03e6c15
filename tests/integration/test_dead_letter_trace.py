"""A dead letter keeps the trace context of the span its event failed in, and its
replay's span links to that span: against SQLite and PostgreSQL, from a store written
before the column existed, with nothing traced, with baggage about (never stored), and
with whatever a hand-edited or hostile row holds (never a failed replay).

Spans are the real SDK's (``capture_spans``, an in-memory exporter); the stores are the
real ones (``store_location``: a SQLite file, a PostgreSQL namespace of the test's own).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage, context
from opentelemetry.propagate import extract
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind

from coordination import EventDeadLettered
from coordination._door_spans import _link_to
from coordination.integration import CoordinationEventProcessor
from coordination.integration._dead_letters import (
    TRACE_CONTEXT_LIMIT,
    DeadLetter,
    DeadLetterStore,
    LetterStore,
    trace_context_of,
)
from coordination.testing import capture_spans

from .dead_letter_stores import StoreLocation

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def links(span: ReadableSpan) -> list[tuple[str, str]]:
    return [
        (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x"))
        for link in span.links
    ]


def one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


class Handler:
    def __init__(self) -> None:
        self.broken = True

    def __call__(self, event: Any, event_type: str) -> str:
        if self.broken:
            raise ConnectionError("refused")
        return "done"


@contextlib.contextmanager
def processor_at(
    where: StoreLocation, handler: Callable[[Any, str], Any]
) -> Iterator[CoordinationEventProcessor]:
    with CoordinationEventProcessor(
        handler,
        error_config={"max_retries": 0},
        config={"dead_letter_path": where.location, "dead_letter_namespace": where.namespace},
        validate_structure=False,
    ) as processor:
        yield processor


def raw_trace_contexts(where: StoreLocation) -> list[str | None]:
    """What the column holds, read past the store."""
    if where.kind == "sqlite":
        with contextlib.closing(sqlite3.connect(where.location)) as db:
            return [row[0] for row in db.execute("SELECT trace_context FROM dead_letters")]
    import psycopg

    with psycopg.connect(where.location, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT trace_context FROM coordination_dead_letters WHERE namespace = %s",
            (where.namespace,),
        ).fetchall()
    return [row[0] for row in rows]


def set_raw_trace_context(where: StoreLocation, value: str | None) -> None:
    if where.kind == "sqlite":
        with contextlib.closing(sqlite3.connect(where.location)) as db, db:
            db.execute("UPDATE dead_letters SET trace_context = ?", (value,))
        return
    import psycopg

    with psycopg.connect(where.location, autocommit=True) as conn:
        conn.execute(
            "UPDATE coordination_dead_letters SET trace_context = %s WHERE namespace = %s",
            (value, where.namespace),
        )


# --- the failed event's CONSUMER span, linked from its replay ---------------------------


def test_a_replay_links_to_the_consumer_span_the_event_failed_in(
    store_location: StoreLocation,
) -> None:
    handler = Handler()
    asker = TracerProvider().get_tracer("operator")  # whoever asks for the replay
    with processor_at(store_location, handler) as processor, capture_spans() as spans:
        with pytest.raises(EventDeadLettered):
            processor.process_event({"order": 1}, "orders")
        consumer = one(spans, "orders process")
        assert consumer.kind is SpanKind.CONSUMER
        (letter,) = processor.dead_letters.list()
        assert letter.trace_id == hex_ids(consumer)[0]
        assert letter.trace_context is not None
        assert set(letter.trace_context) <= {"traceparent", "tracestate"}

        again = processor.dead_letters.replay()  # still broken: fails, and links too
        handler.broken = False
        with asker.start_as_current_span("replay dead letters") as asking:
            done = processor.dead_letters.replay()
    assert again.failed == [letter.id]
    assert done.succeeded == [letter.id]
    failed, replayed = [span for span in spans if span.name == "orders replay"]
    assert links(failed) == links(replayed) == [hex_ids(consumer)]
    # the link is the cause; the parent stays whoever asked
    assert replayed.parent is not None
    assert replayed.parent.span_id == asking.get_span_context().span_id
    assert hex_ids(replayed)[0] != hex_ids(consumer)[0]


async def test_an_async_replay_links_too(store_location: StoreLocation) -> None:
    handler = Handler()
    with processor_at(store_location, handler) as processor, capture_spans() as spans:
        with pytest.raises(EventDeadLettered):
            await processor.aprocess_event({"order": 1}, "orders")
        handler.broken = False
        report = await processor.dead_letters.areplay()
    assert len(report.succeeded) == 1
    assert links(one(spans, "orders replay")) == [hex_ids(one(spans, "orders process"))]


def test_the_producers_tracestate_is_kept_and_its_baggage_never(
    store_location: StoreLocation,
) -> None:
    """The event arrives inside a producer's context carrying tracestate and baggage (a
    user id, a token): the letter keeps the tracestate the CONSUMER span inherited, and
    nothing of the baggage reaches the database."""
    carried = extract(
        {
            "traceparent": TRACEPARENT,
            "tracestate": "vendor=opaque1,other=x",
            "baggage": "user.id=alice-secret-42,session=tok-secret-99",
        }
    )
    carried = baggage.set_baggage("tenant", "acme-secret-7", carried)
    handler = Handler()
    with processor_at(store_location, handler) as processor, capture_spans() as spans:
        token = context.attach(carried)
        try:
            with pytest.raises(EventDeadLettered):
                processor.process_event({"order": 1}, "orders")
        finally:
            context.detach(token)
        (letter,) = processor.dead_letters.list()
        (stored,) = raw_trace_contexts(store_location)
        handler.broken = False
        assert processor.dead_letters.replay().succeeded == [letter.id]
    consumer = one(spans, "orders process")
    assert hex_ids(consumer)[0] == TRACE_ID
    assert letter.trace_context == {
        "traceparent": f"00-{TRACE_ID}-{hex_ids(consumer)[1]}-01",
        "tracestate": "vendor=opaque1,other=x",
    }
    assert stored is not None
    assert "secret" not in stored
    assert "baggage" not in stored
    assert len(stored) < 700
    (link,) = one(spans, "orders replay").links
    assert link.context.trace_state.get("vendor") == "opaque1"
    assert link.context.is_remote


def test_a_letter_written_with_nothing_traced_replays_without_a_link(
    store_location: StoreLocation,
) -> None:
    handler = Handler()
    with processor_at(store_location, handler) as processor:
        with pytest.raises(EventDeadLettered):
            processor.process_event({"order": 1}, "orders")  # no provider, no span
        (letter,) = processor.dead_letters.list()
        assert letter.trace_context is None
        assert letter.trace_id is None
        assert raw_trace_contexts(store_location) == [None]
        handler.broken = False
        with capture_spans() as spans:
            assert processor.dead_letters.replay().succeeded == [letter.id]
    assert one(spans, "orders replay").links == ()


def test_writing_a_letter_imports_no_opentelemetry() -> None:
    """With OpenTelemetry not loaded, a letter is written without loading it."""
    code = (
        "import sys\n"
        "from coordination.integration._dead_letters import DeadLetterStore\n"
        "with DeadLetterStore(':memory:') as store:\n"
        "    store.dead_letter(None, {'a': 1}, 'orders', reason='failed',\n"
        "                      error=RuntimeError('x'), attempts=1, key=None)\n"
        "    (letter,) = store.list()\n"
        "assert letter.trace_context is None, letter\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- what the column may hold -----------------------------------------------------------

_HEX = "0123456789abcdef"
_traceparents = st.one_of(
    st.text(max_size=80),
    st.builds(
        "{}-{}-{}-{}".format,
        st.text(_HEX, min_size=2, max_size=2),
        st.text(_HEX, min_size=32, max_size=32),
        st.text(_HEX, min_size=16, max_size=16),
        st.text(_HEX, min_size=2, max_size=2),
    ),
    st.just(f"00-{'0' * 32}-b7ad6b7169203331-01"),  # the invalid trace id
    st.just(f"00-{TRACE_ID}-{'0' * 16}-01"),  # the invalid span id
    st.just("x" * 600),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=8,
)
_stored = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.just("[" * 1100),  # nested past what json.loads recurses, within the bound
    st.just("x" * (TRACE_CONTEXT_LIMIT + 1)),
    _json.map(json.dumps),
    st.fixed_dictionaries(
        {"traceparent": _traceparents},
        optional={"tracestate": st.text(max_size=100), "baggage": st.text(max_size=20)},
    ).map(json.dumps),
)


@settings(max_examples=300, deadline=None)
@given(stored=_stored, other=_json)
def test_anything_stored_reads_as_headers_or_nothing(stored: str | None, other: Any) -> None:
    headers = trace_context_of(stored)
    if headers is not None:
        assert set(headers) <= {"traceparent", "tracestate"}
        assert "traceparent" in headers
        assert all(isinstance(value, str) for value in headers.values())
        trace_id = DeadLetter(1, {}, "t", "r", "E", "e", 0, "now", trace_context=headers).trace_id
        assert trace_id is None or (len(trace_id) == 32 and trace_id != "0" * 32)
    assert trace_context_of(other) is None or isinstance(other, str)


@settings(max_examples=300, deadline=None)
@given(headers=st.dictionaries(st.sampled_from(["traceparent", "tracestate"]), _traceparents))
def test_any_headers_make_a_valid_link_or_none(headers: dict[str, str]) -> None:
    with capture_spans():  # OpenTelemetry's propagator, as a replay has it
        made = _link_to(headers)
    if made is not None:
        (link,) = made
        assert link.context.is_valid


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stored=_stored)
def test_a_hostile_stored_value_never_fails_a_replay(
    store_location: StoreLocation, stored: str | None
) -> None:
    if store_location.kind == "postgres" and stored is not None:
        stored = stored.replace("\x00", "")  # PostgreSQL text holds no NUL
    with processor_at(store_location, lambda event, event_type: "done") as processor:
        store = processor.dead_letters
        store.dead_letter(
            None, {"n": 1}, "orders", reason="failed", error=RuntimeError("x"), attempts=1, key=None
        )
        set_raw_trace_context(store_location, stored)
        (letter,) = store.list()
        with capture_spans() as spans:
            report = store.replay()
    assert report.succeeded == [letter.id]
    replay = one(spans, "orders replay")
    assert all(link.context.is_valid for link in replay.links)
    if trace_context_of(stored) is None:
        assert replay.links == ()


# --- stores written before the column existed --------------------------------------------

_OLD_SQLITE = """
CREATE TABLE dead_letters (
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
INSERT INTO dead_letters (event_type, payload, reason, error_type, error, attempts,
    failed_at, idempotency_key, replayable)
VALUES ('orders', '{"old": true}', 'failed', 'RuntimeError', 'x', 1,
    '2026-01-01T00:00:00+00:00', NULL, 1);
"""


def replay_old_and_new(store: LetterStore) -> None:
    """The old letter lists and replays with no link; one written now links to the span
    current when it was written (the application's own, here)."""
    (old,) = store.list()
    assert old.event == {"old": True}
    assert old.trace_context is None
    assert old.trace_id is None
    with TracerProvider().get_tracer("app").start_as_current_span("failing") as failing:
        store.dead_letter(
            None,
            {"new": 1},
            "orders",
            reason="failed",
            error=RuntimeError("y"),
            attempts=1,
            key=None,
        )
    failed_in = failing.get_span_context()
    new = store.list()[1]
    assert new.trace_id == format(failed_in.trace_id, "032x")
    store.bind(lambda event, event_type: None)
    with capture_spans() as spans:
        report = store.replay()
    assert report.succeeded == [old.id, new.id]
    old_replay, new_replay = [span for span in spans if span.name == "orders replay"]
    assert old_replay.links == ()
    assert [(link.context.trace_id, link.context.span_id) for link in new_replay.links] == [
        (failed_in.trace_id, failed_in.span_id)
    ]


def test_an_old_sqlite_file_gains_the_column_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(_OLD_SQLITE)
    with DeadLetterStore(path) as store:
        replay_old_and_new(store)
    with contextlib.closing(sqlite3.connect(path)) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(dead_letters)")]
    assert columns[-1] == "trace_context"
    with DeadLetterStore(path) as store:  # opened again: nothing more to add
        assert store.count() == 0


# PostgreSQL's tables as the version before the column made them (its _SCHEMA then).
_OLD_POSTGRES = """
CREATE TABLE coordination_dead_letters (
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
    claimed_until TIMESTAMPTZ
);
CREATE INDEX coordination_dead_letters_by_namespace
    ON coordination_dead_letters (namespace, id);
CREATE INDEX coordination_dead_letters_by_type
    ON coordination_dead_letters (namespace, event_type, id);
CREATE INDEX coordination_dead_letters_claims
    ON coordination_dead_letters (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE TABLE coordination_pending (
    id BIGSERIAL PRIMARY KEY,
    namespace TEXT NOT NULL,
    owner TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX coordination_pending_by_owner ON coordination_pending (namespace, owner);
CREATE TABLE coordination_runs (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX coordination_runs_by_namespace ON coordination_runs (namespace);
CREATE TABLE coordination_processed_keys (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, key)
);
CREATE INDEX coordination_processed_keys_by_age
    ON coordination_processed_keys (namespace, processed_at);
INSERT INTO coordination_dead_letters (namespace, event_type, payload, reason, error_type,
    error, attempts) VALUES ('default', 'orders', '{"old": true}', 'failed', 'RuntimeError',
    'x', 1);
"""


@pytest.fixture
def old_postgres_schema(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A schema of the test's own holding the old tables (one old letter); the URL whose
    search_path is that schema. Dropped afterwards, even on failure."""
    import psycopg

    schema = f"coordination_old_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path = {schema}")
        conn.execute(_OLD_POSTGRES)
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}", schema
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def columns_of(url: str, schema: str) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'coordination_dead_letters' ORDER BY ordinal_position",
            (schema,),
        ).fetchall()
    return [name for (name,) in rows]


@pytest.mark.postgres
def test_an_old_postgres_table_gains_the_column_in_place(
    old_postgres_schema: tuple[str, str],
) -> None:
    from coordination.integration._postgres_dead_letters import PostgresDeadLetterStore

    url, schema = old_postgres_schema
    assert "trace_context" not in columns_of(url, schema)
    with PostgresDeadLetterStore(url) as store:
        assert columns_of(url, schema)[-1] == "trace_context"
        replay_old_and_new(store)


@pytest.mark.postgres
def test_a_postgres_table_with_the_column_is_not_altered_again(
    old_postgres_schema: tuple[str, str],
) -> None:
    """Once the column is there, a store opens while another session holds the table
    exclusively (no DDL waits for it: a87f370's rule, kept for the new column)."""
    import psycopg

    from coordination.integration._postgres_dead_letters import PostgresDeadLetterStore

    url, _ = old_postgres_schema
    PostgresDeadLetterStore(url).close()  # migrates
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE coordination_dead_letters IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        store = PostgresDeadLetterStore(url, statement_timeout=2.0)  # no ALTER: no wait
        try:
            assert store.pending_count() == 0
            assert time.monotonic() - started < 1.5
        finally:
            holder.rollback()  # before close(), which releases claims in that table
            store.close()


@pytest.mark.postgres
def test_a_role_that_may_not_alter_the_old_table_still_has_its_store(
    old_postgres_schema: tuple[str, str], postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The table belongs to another role: the store warns once and keeps letters (and
    replays them) without a trace context, rather than refusing to open."""
    import psycopg

    from coordination.integration._postgres_dead_letters import PostgresDeadLetterStore

    url, schema = old_postgres_schema
    role = f"coordination_app_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
        )
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
    try:
        parts = urlsplit(url)
        as_role = urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rsplit('@', 1)[-1]}"))
        with caplog.at_level(logging.WARNING, "coordination.integration"):
            store = PostgresDeadLetterStore(as_role)
        try:
            assert "trace_context" not in columns_of(url, schema)
            (warning,) = [r for r in caplog.records if "trace_context" in r.getMessage()]
            assert "ALTER TABLE coordination_dead_letters ADD COLUMN" in warning.getMessage()
            with TracerProvider().get_tracer("app").start_as_current_span("failing"):
                store.dead_letter(
                    None,
                    {"new": 1},
                    "orders",
                    reason="failed",
                    error=RuntimeError("y"),
                    attempts=1,
                    key=None,
                )
            letters = store.list()
            assert [letter.trace_context for letter in letters] == [None, None]
            store.bind(lambda event, event_type: None)
            with capture_spans() as spans:
                assert len(store.replay().succeeded) == 2
            assert all(span.links == () for span in spans if span.name == "orders replay")
        finally:
            store.close()
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
