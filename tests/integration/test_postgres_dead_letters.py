"""The PostgreSQL dead-letter store against the real server: what only a shared store has.

(What every store must do runs against both stores in test_dead_letters.py.) Here: two
processes replaying one namespace at once, a process SIGKILLed mid-event or mid-replay
and recovered by the next, namespaces kept apart, payloads round-tripped (Hypothesis),
the schema made by processes starting together, the database cut away (``TcpProxy``)
and back, a forked child, and the event processor end to end. Every test writes under a
namespace of its own and deletes its rows afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination import ConfigError, CoordinationConfig, EventDeadLettered, StoreError
from coordination.integration import CoordinationEventProcessor
from coordination.integration import _postgres_dead_letters as module
from coordination.integration._postgres_dead_letters import PostgresDeadLetterStore
from tcp_proxy import TcpProxy

from .dead_letter_stores import postgres_namespace

pytestmark = pytest.mark.postgres

_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
def _close_everything() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def namespace(postgres_url: str, unique_name: str) -> Iterator[str]:
    """This test's namespace; its rows are deleted afterwards, even on failure."""
    with postgres_namespace(postgres_url, unique_name) as name:
        yield name


def store(url: str, namespace: str, **options: Any) -> PostgresDeadLetterStore:
    opened = PostgresDeadLetterStore(url, namespace, **options)
    _OPEN.append(opened)
    return opened


def fail(message: str = "boom") -> ValueError:
    return ValueError(message)


def letters(target: PostgresDeadLetterStore, n: int, event_type: str = "t") -> list[int]:
    return [
        target.dead_letter(
            None, {"n": i}, event_type, reason="failed", error=fail(), attempts=1, key=None
        )
        for i in range(n)
    ]


def wait_for(predicate: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# --- two hosts replaying at once ------------------------------------------------------

REPLAYER = """
import os, sys, time
from coordination.integration._postgres_dead_letters import PostgresDeadLetterStore

url, namespace, log, go = sys.argv[1:5]
store = PostgresDeadLetterStore(url, namespace)
fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

def handle(event, event_type):
    os.write(fd, b"%d %d\\n" % (event["n"], os.getpid()))
    time.sleep(0.001)

store.bind(handle)
while not os.path.exists(go):
    time.sleep(0.001)
report = store.replay(limit=10_000)
assert not report.failed, report
store.close()
"""


@pytest.mark.slow
def test_two_processes_replaying_one_namespace_never_replay_a_letter_twice(
    postgres_url: str, namespace: str, tmp_path: Path
) -> None:
    seed = store(postgres_url, namespace)
    n = 300
    letters(seed, n)
    log, go = tmp_path / "replayed.log", tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", REPLAYER, postgres_url, namespace, str(log), str(go)]
        )
        for _ in range(2)
    ]
    try:
        time.sleep(1.0)  # both connected and waiting (a late one only replays less)
        go.touch()
        assert [worker.wait(timeout=90) for worker in workers] == [0, 0]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    rows = [line.split() for line in log.read_text().splitlines()]
    replayed = [int(event) for event, _ in rows]
    assert len(replayed) == n, "a letter was replayed twice, or one was missed"
    assert sorted(replayed) == list(range(n))
    assert len({pid for _, pid in rows}) == 2, "both replayers should have taken letters"
    assert seed.count() == 0


def test_a_letter_claimed_by_a_live_replay_is_skipped_by_another(
    postgres_url: str, namespace: str
) -> None:
    first, second = store(postgres_url, namespace), store(postgres_url, namespace)
    ids = letters(first, 3)
    entered, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def slow(event: Any, event_type: str) -> None:
        if event["n"] == 0:
            entered.set()
            release.wait(30)

    first.bind(slow)
    second.bind(lambda event, event_type: seen.append(event["n"]))
    reports: list[Any] = []
    replaying = threading.Thread(target=lambda: reports.append(first.replay(limit=1)))
    replaying.start()
    try:
        assert entered.wait(30)
        report = second.replay()
        assert seen == [1, 2]  # letter 0 is claimed by the first replay, still running
        assert report.succeeded == ids[1:]
    finally:
        release.set()
        replaying.join(30)
    assert reports[0].succeeded == [ids[0]]
    assert first.count() == 0


def test_a_letter_that_fails_again_waits_for_the_next_replay(
    postgres_url: str, namespace: str
) -> None:
    target = store(postgres_url, namespace)
    (letter_id,) = letters(target, 1)
    target.bind(lambda event, event_type: (_ for _ in ()).throw(RuntimeError("still")))
    report = target.replay()
    assert report.failed == [letter_id]
    assert report.failure(letter_id) is not None
    (left,) = target.list()
    assert (left.attempts, left.error_type, left.error) == (2, "RuntimeError", "still")
    assert target.replay().failed == [letter_id]  # free again: no claim left behind


KILLED_REPLAYER = """
import os, sys, time
from coordination.integration._postgres_dead_letters import PostgresDeadLetterStore

url, namespace, marker = sys.argv[1:4]
store = PostgresDeadLetterStore(url, namespace)

def handle(event, event_type):
    open(marker, "w").close()
    time.sleep(600)  # killed here, mid-replay, holding the claim

store.bind(handle)
store.replay()
"""


def test_a_replayer_killed_mid_replay_leaves_its_letter_to_the_next(
    postgres_url: str, namespace: str, tmp_path: Path
) -> None:
    target = store(postgres_url, namespace)  # the lease is 300 s: the run's death frees it
    ids = letters(target, 2)
    marker = tmp_path / "replaying"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_REPLAYER, postgres_url, namespace, str(marker)]
    )
    try:
        wait_for(marker.exists, "the child's replay to start")
    finally:
        child.kill()
        child.wait(timeout=30)
    seen: list[int] = []
    target.bind(lambda event, event_type: seen.append(event["n"]))
    # The server ends the killed session as soon as its socket closes, freeing the run's
    # lock: its claim is taken over then, long before the lease ends (replay until then).
    wait_for(lambda: bool(target.replay().succeeded) and target.count() == 0, "the takeover")
    assert sorted(seen) == [0, 1]  # each once: the letter 1 first, then the freed 0
    assert ids


def test_an_expired_lease_is_taken_over_even_from_a_live_run(
    postgres_url: str, namespace: str
) -> None:
    holder = store(postgres_url, namespace, replay_lease=0.05)
    other = store(postgres_url, namespace)
    (letter_id,) = letters(holder, 1)
    cursor = holder._start_replay(None, 10)
    (claimed,) = holder._take(cursor)  # claimed, then "stuck" (never finished)
    assert other.count() == 1
    time.sleep(0.1)
    other.bind(lambda event, event_type: None)
    assert other.replay().succeeded == [claimed.id] == [letter_id]


# --- the journal across hosts: a SIGKILLed run recovered by the next --------------------

KILLED_WORKER = """
import os, sys, time
from coordination import CoordinationConfig
from coordination.integration import CoordinationEventProcessor

url, namespace, marker = sys.argv[1:4]

def handle(event, event_type):
    if event["id"] == 2:
        open(marker, "w").close()
        time.sleep(600)  # killed here, mid-event

processor = CoordinationEventProcessor(
    handle,
    dead_letter_path=url,
    idempotency_key="id",
    error_config={"max_retries": 0},
    config=CoordinationConfig(dead_letter_namespace=namespace),
)
processor.process_batch([{"id": i} for i in range(5)], "job")
"""


def test_a_process_sigkilled_mid_event_is_recovered_as_interrupted(
    postgres_url: str, namespace: str, tmp_path: Path, clean_environment: None
) -> None:
    marker = tmp_path / "running"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, postgres_url, namespace, str(marker)]
    )
    try:
        wait_for(marker.exists, "the child to reach event 2")
        observer = store(postgres_url, namespace)
        assert observer.pending_count() == 3  # 0 and 1 finished; 2 running, 3 and 4 waiting
        assert observer.recover_interrupted() == 0  # alive: its rows are not touched
    finally:
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL

    done: list[int] = []
    config = CoordinationConfig(dead_letter_namespace=namespace)
    deadline = time.monotonic() + 30
    while True:  # the server drops the killed session's lock as soon as it sees it go
        processor = CoordinationEventProcessor(
            lambda event, event_type: done.append(event["id"]),
            dead_letter_path=postgres_url,
            idempotency_key="id",
            config=config,
        )
        _OPEN.append(processor)
        if processor.dead_letters.count() or time.monotonic() > deadline:
            break
        processor.close()
        time.sleep(0.05)
    interrupted = processor.dead_letters.list()
    assert [letter.event["id"] for letter in interrupted] == [2, 3, 4]
    assert {letter.reason for letter in interrupted} == {"interrupted"}
    assert "pid" in interrupted[0].error
    assert "stopped before the event finished" in (interrupted[0].error)
    assert processor.dead_letters.pending_count() == 0
    report = processor.dead_letters.replay()
    assert sorted(done) == [2, 3, 4]
    assert len(report.succeeded) == 3
    assert processor.dead_letters.count() == 0


# --- namespaces ------------------------------------------------------------------------


def test_namespaces_are_kept_apart(postgres_url: str, unique_name: str) -> None:
    with (
        postgres_namespace(postgres_url, f"{unique_name}_a") as a_name,
        postgres_namespace(postgres_url, f"{unique_name}_b") as b_name,
    ):
        a, b = store(postgres_url, a_name), store(postgres_url, b_name)
        (a_letter,) = letters(a, 1, "orders")
        letters(b, 2, "orders")
        b.begin([({"n": 9}, "t", None)])
        b.finish(None, "shared-key")
        assert (a.count(), a.count("orders"), b.count()) == (1, 1, 2)
        assert [letter.id for letter in a.list()] == [a_letter]
        assert (a.pending_count(), b.pending_count()) == (0, 1)
        assert not a.is_processed("shared-key")
        assert b.is_processed("shared-key")
        assert not b.delete(a_letter)  # another namespace's letter: not found
        seen: list[Any] = []
        b.bind(lambda event, event_type: seen.append(event))
        assert len(b.replay().succeeded) == 2
        assert a.count() == 1  # b's replay never touched a's letter
        assert b.purge() == 0
        assert a.purge() == 1


# --- payloads ---------------------------------------------------------------------------

TEXT = st.text(st.characters(codec=None), max_size=20)  # NUL and lone surrogates too
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=15,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(event=JSON, error=TEXT, key=st.none() | TEXT)
def test_payloads_round_trip(
    postgres_url: str, namespace: str, event: Any, error: str, key: str | None
) -> None:
    target = _hypothesis_store(postgres_url, namespace)
    letter_id = target.dead_letter(
        None, event, "t", reason="failed", error=fail(error), attempts=1, key=key
    )
    (letter,) = target.list()
    assert letter.id == letter_id
    assert letter.event == json.loads(json.dumps(event))
    assert letter.replayable
    if key is not None:
        target.finish(None, key)
        assert target.is_processed(key)
    assert target.purge() == 1


_HYPOTHESIS_STORES: dict[str, PostgresDeadLetterStore] = {}


def _hypothesis_store(url: str, namespace: str) -> PostgresDeadLetterStore:
    if namespace not in _HYPOTHESIS_STORES:
        _HYPOTHESIS_STORES.clear()
        _HYPOTHESIS_STORES[namespace] = store(url, namespace)
    return _HYPOTHESIS_STORES[namespace]


def test_an_event_json_cannot_hold_is_kept_as_a_representation(
    postgres_url: str, namespace: str
) -> None:
    target = store(postgres_url, namespace)
    cycle: list[Any] = []
    cycle.append(cycle)
    target.dead_letter(None, cycle, "t", reason="invalid", error=fail(), attempts=0, key=None)
    (letter,) = target.list()
    assert not letter.replayable
    assert isinstance(letter.event, str)
    target.bind(lambda event, event_type: None)
    report = target.replay()
    assert report.failures[0].error_type == "NotReplayable"
    assert target.count() == 1


def test_processed_keys_are_bounded_per_namespace(
    postgres_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "_TRIM_EVERY", 10)
    target = store(postgres_url, namespace)
    target.max_processed_keys = 5
    for n in range(40):
        target.finish(None, f"k{n}")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM coordination_processed_keys WHERE namespace = %s",
            (namespace,),
        ).fetchone()
    assert row is not None
    assert 5 <= row[0] < 5 + 10
    assert target.is_processed("k39")
    assert not target.is_processed("k0")


# --- the schema, made by processes starting together ----------------------------------

OPENER = """
import sys
from coordination.integration._postgres_dead_letters import PostgresDeadLetterStore
PostgresDeadLetterStore(sys.argv[1], "opener").close()
"""


@pytest.mark.slow
def test_processes_starting_at_once_make_the_schema_once(postgres_url: str) -> None:
    schema = f"coordination_schema_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        url = f"{postgres_url}?options=-csearch_path%3D{schema}"
        openers = [subprocess.Popen([sys.executable, "-c", OPENER, url]) for _ in range(4)]
        assert [opener.wait(timeout=60) for opener in openers] == [0, 0, 0, 0]
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "ORDER BY table_name",
                (schema,),
            ).fetchall()
        assert [name for (name,) in tables] == sorted(
            [
                "coordination_dead_letters",
                "coordination_pending",
                "coordination_runs",
                "coordination_processed_keys",
            ]
        )
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# --- outages ---------------------------------------------------------------------------


def test_the_database_cut_away_is_a_store_error_then_reconnects(
    postgres_url: str, namespace: str, clean_environment: None
) -> None:
    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql://postgres:pw-s3cret@127.0.0.1:{proxy.port}/test"
        processor = CoordinationEventProcessor(
            lambda event, event_type: event["id"],
            dead_letter_path=url,
            config=CoordinationConfig(dead_letter_namespace=namespace),
        )
        _OPEN.append(processor)
        shared = processor.dead_letters
        assert "pw-s3cret" not in shared.path
        assert "pw-s3cret" not in repr(shared)
        assert processor.process_event({"id": 1}, "job") == 1
        proxy.cut()
        for call in (shared.count, shared.pending_count):
            started = time.monotonic()
            with pytest.raises(StoreError) as caught:
                call()
            assert time.monotonic() - started < 10
            assert "dead-letter store" in str(caught.value)
            assert "pw-s3cret" not in str(caught.value)
        with pytest.raises(StoreError):  # not journaled: the caller still has the event
            processor.process_event({"id": 2}, "job")
        # A delivered message whose failure cannot be stored is not settled: a broker
        # source gives it back (EventDeadLettered would have acknowledged it).
        with pytest.raises(StoreError):
            processor.process_message({"no id": True}, "job")
        status_error = None
        try:
            processor.get_processor_status()
        except StoreError as exc:
            status_error = exc
        assert status_error is not None
        assert "pw-s3cret" not in str(status_error)
        proxy.restore()
        assert processor.process_event({"id": 2}, "job") == 2  # reconnected on next use
        assert (shared.count(), shared.pending_count()) == (0, 0)
        # The reconnected run took its lock again: another host leaves its rows alone.
        shared.begin([({"id": 3}, "job", None)])
        assert store(postgres_url, namespace).recover_interrupted() == 0


def test_a_reconnect_takes_over_the_rows_of_a_session_left_lingering(
    postgres_url: str, namespace: str
) -> None:
    """A partition leaves the old session (and its lock) alive on the server: the
    reconnected store is a new run that owns the old run's journal rows and claims."""
    target = store(postgres_url, namespace)
    (pending,) = target.begin([({"n": 1}, "t", None)])
    old_owner = target.owner
    conn = target._conn
    assert conn is not None
    keep = os.dup(conn.pgconn.socket)  # the server keeps the session while this is open
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, conn.pgconn.socket)  # the client side of the link is gone
    os.close(devnull)
    try:
        with pytest.raises(StoreError):
            target.count()
        started = time.monotonic()
        assert target.pending_count() == 1  # reconnected, not blocked on the old lock
        assert time.monotonic() - started < 5
        assert target.owner != old_owner
        other = store(postgres_url, namespace)
        assert other.recover_interrupted() == 0  # the rows are the live new run's
        target.finish(pending, None)
        assert target.pending_count() == 0
    finally:
        os.close(keep)


def test_a_database_that_is_not_there_fails_fast_without_the_password() -> None:
    with TcpProxy("127.0.0.1", 5432) as proxy:
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(StoreError) as caught:
            PostgresDeadLetterStore(f"postgresql://app:pw-s3cret@127.0.0.1:{proxy.port}/test")
        assert time.monotonic() - started < 10
    assert "cannot reach the dead-letter store" in str(caught.value)
    assert "pw-s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "namespace", "message"),
    [
        ("postgresql://app:pw-s3cret@db/x?nonsense=1", "n", "not a valid PostgreSQL URL"),
        ("postgresql://db/x", "", "dead_letter_namespace"),
        ("postgresql://db/x", "a b", "dead_letter_namespace"),
        ("mysql://db/x", "n", "postgresql://"),
    ],
)
def test_bad_settings_are_config_errors(url: str, namespace: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        PostgresDeadLetterStore(url, namespace)
    assert "pw-s3cret" not in str(caught.value)


def test_the_lease_and_timeouts_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="replay_lease"):
        PostgresDeadLetterStore("postgresql://db/x", replay_lease=0)


# --- a forked child -------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_is_a_run_of_its_own_and_leaves_the_parent_session_alone(
    postgres_url: str, namespace: str
) -> None:
    parent = store(postgres_url, namespace)
    parent.begin([({"who": "parent"}, "t", None)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads around
        pid = os.fork()
    if pid == 0:  # the child: journal one event, then die without finishing it
        code = 1
        try:
            parent.begin([({"who": "child"}, "t", None)])
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent.pending_count() == 2  # the parent's session is still alive
    wait_for(lambda: parent.recover_interrupted() == 1, "the child's run to be seen ended")
    (letter,) = parent.list()
    assert letter.event == {"who": "child"}
    assert letter.reason == "interrupted"
    assert parent.pending_count() == 1


# --- psycopg only when asked for ----------------------------------------------------------


def test_psycopg_is_imported_only_for_a_database_url() -> None:
    code = (
        "import sys\n"
        "from coordination.integration import CoordinationEventProcessor\n"
        "CoordinationEventProcessor(dead_letter_path=':memory:').close()\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported for SQLite'\n"
        "sys.modules['psycopg'] = None\n"
        "try:\n"
        "    CoordinationEventProcessor(dead_letter_path='postgresql://db/x')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "pip install 'coordination-systems[postgres]'" in shown


# --- the processor end to end ---------------------------------------------------------


def test_the_event_processor_on_a_shared_store(
    postgres_url: str, namespace: str, clean_environment: None
) -> None:
    config = CoordinationConfig(dead_letter_namespace=namespace)
    broken = {"value": True}

    def handle(event: Any, event_type: str) -> str:
        if event["id"] == 2 and broken["value"]:
            raise RuntimeError("payment service down")
        return f"done {event['id']}"

    processor = CoordinationEventProcessor(
        handle,
        dead_letter_path=postgres_url,
        idempotency_key="id",
        error_config={"max_retries": 0},
        config=config,
    )
    _OPEN.append(processor)
    assert processor.process_event({"id": 1}, "payment") == "done 1"
    with pytest.raises(EventDeadLettered):
        processor.process_event({"id": 2}, "payment")
    outcomes = processor.process_batch([{"id": 1}, {"id": 3}], "payment")
    assert [outcome.status for outcome in outcomes] == ["duplicate", "processed"]
    status = processor.get_processor_status()["dead_letters"]
    assert status == {
        "count": 1,
        "pending": 0,
        "path": processor.dead_letters.path,
        "kind": "postgresql",
        "namespace": namespace,
    }
    # Another host of the same service sees the letter and replays it.
    other = CoordinationEventProcessor(
        handle, dead_letter_path=postgres_url, idempotency_key="id", config=config
    )
    _OPEN.append(other)
    (letter,) = other.dead_letters.list()
    assert (letter.event, letter.reason, letter.idempotency_key) == (
        {"id": 2},
        "failed",
        "payment:2",
    )
    broken["value"] = False
    assert other.dead_letters.replay().succeeded == [letter.id]
    assert processor.dead_letters.count() == 0
    assert processor.dead_letters.is_processed("payment:2")
