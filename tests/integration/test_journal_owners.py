"""Who owns an in-flight event, proven across PID namespaces with ``unshare``.

The journal used to judge "the writer died" by ``pid_alive(pid)``. A container restarted
as PID 1 then saw its own pid in the dead run's rows and left them pending forever, and a
process in another PID namespace saw a live writer's pid as gone. Each store is now a run
with a random id and an ``flock`` the OS drops when the process dies: these tests kill a
real PID-1 writer and restart it as PID 1, and run two live writers in two namespaces on
one file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from coordination import CoordinationConfig, StoreError
from coordination.integration import CoordinationEventProcessor, DeadLetterStore


def _unshare_problem() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare(1) on this machine"
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=30
    )
    if probe.returncode != 0:
        return f"unshare --pid needs root here: {probe.stderr.decode(errors='replace')[:200]}"
    return None


needs_unshare = pytest.mark.skipif(
    sys.platform != "linux" or _unshare_problem() is not None,
    reason="PID namespaces need Linux and root (unshare --pid --fork --mount-proc)",
)

IN_NAMESPACE = ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c"]

# A writer that must be PID 1 of its namespace; each handled id is appended to the log.
WRITER = """
import os, sys, time
from coordination.integration import CoordinationEventProcessor

db, log, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
assert os.getpid() == 1, os.getpid()
fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

def handle(event, event_type):
    os.write(fd, b"%d\\n" % event["id"])
    time.sleep(0.005)  # slow enough that the parent's kill lands mid-batch

processor = CoordinationEventProcessor(
    handle, dead_letter_path=db, error_config={"max_retries": 0}
)
processor.process_batch([{"id": i} for i in range(n)], "job")
os.write(fd, b"done\\n")
"""

# The restarted run, PID 1 again: what it recovered, and what its replay did.
RESTARTED = """
import json, os, sys
from coordination import CoordinationConfig, StoreError
from coordination.integration import CoordinationEventProcessor

db, n = sys.argv[1], int(sys.argv[2])
assert os.getpid() == 1, os.getpid()
done = []
with CoordinationEventProcessor(
    lambda event, event_type: done.append(event["id"]),
    dead_letter_path=db,
    error_config={"max_retries": 0},
    config=CoordinationConfig(circuit_breaker_threshold=n),
) as processor:
    letters = processor.dead_letters.list(limit=n)
    interrupted = [d.event["id"] for d in letters if d.reason == "interrupted"]
    errors = sorted({d.error.split(" (pid")[0].split()[0] for d in letters})
    report = processor.dead_letters.replay(limit=n)
    print(json.dumps({
        "interrupted": interrupted,
        "replayed": done,
        "failed": report.failed,
        "pending": processor.dead_letters.pending_count(),
        "left": processor.dead_letters.count(),
        "first_error": letters[0].error if letters else "",
    }))
"""


def _lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat_line = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ")".
        if int(stat_line.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry))
    return children


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@needs_unshare
@pytest.mark.slow
def test_a_pid_1_writer_killed_and_restarted_as_pid_1_gets_its_events_back(
    tmp_path: Path, clean_environment: None
) -> None:
    db, log, n = tmp_path / "letters.sqlite3", tmp_path / "handled.log", 200
    env = {**os.environ, "COORDINATION_BASE_DELAY": "0"}
    launcher = subprocess.Popen([*IN_NAMESPACE, WRITER, str(db), str(log), str(n)], env=env)
    try:
        _wait_for(lambda: len(_lines(log)) >= 20, "the writer to handle 20 events")
        (writer,) = _children_of(launcher.pid)  # PID 1 of the new namespace, seen from here
        os.kill(writer, signal.SIGKILL)
        launcher.wait(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    handled = _lines(log)
    assert "done" not in handled
    handled_ids = {int(line) for line in handled}
    assert 20 <= len(handled_ids) < n

    restarted = subprocess.run(
        [*IN_NAMESPACE, RESTARTED, str(db), str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    outcome = json.loads(restarted.stdout.strip().splitlines()[-1])
    # Every event the killed PID 1 had not finished is a dead letter again, then replayed.
    assert handled_ids | set(outcome["interrupted"]) == set(range(n))
    assert sorted(outcome["replayed"]) == sorted(outcome["interrupted"])
    assert outcome["failed"] == []
    assert (outcome["pending"], outcome["left"]) == (0, 0)
    assert "pid 1 on" in outcome["first_error"]  # the message names the run, pid and host
    assert os.listdir(f"{db}-owners") == []  # the dead run's lock file went with its rows


# Blocks in its first handler call until the go file appears, so its whole batch (journaled
# before the first handler runs) is in flight; then, done, it looks for interrupted runs.
LIVE_WRITER = """
import json, os, sys, time
from coordination.integration import CoordinationEventProcessor

db, log, go, name, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

def handle(event, event_type):
    if event["n"] == 0:
        os.write(fd, ("%s-started pid=%d\\n" % (name, os.getpid())).encode())
        while not os.path.exists(go):
            time.sleep(0.01)
    os.write(fd, ("%s-%d\\n" % (name, event["n"])).encode())

with CoordinationEventProcessor(
    handle, dead_letter_path=db, error_config={"max_retries": 0}
) as processor:
    recovered_at_open = processor.dead_letters.count()
    outcomes = processor.process_batch([{"n": i} for i in range(n)], name)
    recovered_after = processor.dead_letters.recover_interrupted()
    os.write(fd, ("%s-result %s\\n" % (name, json.dumps({
        "dead_at_open": recovered_at_open,
        "recovered_after": recovered_after,
        "statuses": sorted({o.status for o in outcomes}),
    }))).encode())
"""

# Runs LIVE_WRITER as a child, so that writer is PID 2 of its namespace: a pid that does
# not exist in the other namespace (where the old pid check called it dead).
AS_PID_2 = """
import subprocess, sys
sys.exit(subprocess.call([sys.executable, "-c", sys.argv[1], *sys.argv[2:]]))
"""


@needs_unshare
@pytest.mark.slow
def test_live_writers_in_two_pid_namespaces_never_take_each_others_events(
    tmp_path: Path, clean_environment: None
) -> None:
    db, log, n = tmp_path / "letters.sqlite3", tmp_path / "handled.log", 50
    go_a, go_b = tmp_path / "go-a", tmp_path / "go-b"
    env = {**os.environ, "COORDINATION_BASE_DELAY": "0"}
    a = subprocess.Popen(
        [*IN_NAMESPACE, AS_PID_2, LIVE_WRITER, str(db), str(log), str(go_a), "a", str(n)],
        env=env,
    )
    b: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(lambda: any(x.startswith("a-started") for x in _lines(log)), "writer a")
        # b opens the file (and looks for interrupted runs) while a's batch is in flight.
        b = subprocess.Popen(
            [*IN_NAMESPACE, LIVE_WRITER, str(db), str(log), str(go_b), "b", str(n)], env=env
        )
        _wait_for(lambda: any(x.startswith("b-started") for x in _lines(log)), "writer b")
        # a finishes and looks for interrupted runs while b's batch is in flight.
        go_a.touch()
        assert a.wait(timeout=60) == 0
        go_b.touch()
        assert b.wait(timeout=60) == 0
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text()
    assert "a-started pid=2" in text
    assert "b-started pid=1" in text
    results = {
        line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
        for line in text.splitlines()
        if "-result " in line
    }
    for name in ("a", "b"):
        assert results[f"{name}-result"] == {
            "dead_at_open": 0,
            "recovered_after": 0,
            "statuses": ["processed"],
        }
        handled = [x for x in text.split() if x.startswith(f"{name}-") and x[2:].isdigit()]
        assert sorted(handled) == sorted(f"{name}-{i}" for i in range(n))  # each once
    store = DeadLetterStore(db)
    try:
        assert (store.count(), store.pending_count()) == (0, 0)
    finally:
        store.close()


# --- the same rules in one process: no namespaces needed ----------------------------------


def test_a_live_store_in_this_process_keeps_its_in_flight_events(tmp_path: Path) -> None:
    path = tmp_path / "letters.sqlite3"
    first, second = DeadLetterStore(path), DeadLetterStore(path)
    try:
        first.begin([({"n": 1}, "t", None)])
        assert second.recover_interrupted() == 0
        assert second.pending_count() == 1
        first.close()  # the run ended with its event unfinished
        assert second.recover_interrupted() == 1
        (letter,) = second.list()
        assert (letter.reason, letter.event) == ("interrupted", {"n": 1})
        assert first.owner in letter.error
    finally:
        second.close()


def test_rows_written_with_a_pid_by_an_older_version_are_still_recovered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "letters.sqlite3"
    DeadLetterStore(path).close()
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    import sqlite3

    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(
                "INSERT INTO pending (owner, event_type, payload, idempotency_key, started_at) "
                "VALUES (?, 't', '{\"n\": 7}', NULL, 'then')",
                (int(dead_pid),),
            )
    finally:
        db.close()
    store = DeadLetterStore(path)
    try:
        assert store.recover_interrupted() == 1
        assert store.list()[0].event == {"n": 7}
    finally:
        store.close()


# --- who may read the journal, and where it is by default ---------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_journal_and_its_wal_and_shm_are_0600_under_umask_022(tmp_path: Path) -> None:
    path = tmp_path / "letters.sqlite3"
    previous = os.umask(0o022)
    try:
        store = DeadLetterStore(path)
        try:
            store.begin([({"secret": "payload"}, "t", None)])
            files = {
                p.name: _mode(p)
                for p in tmp_path.iterdir()
                if p.name.startswith("letters.sqlite3") and p.is_file()
            }
            assert set(files) == {"letters.sqlite3", "letters.sqlite3-wal", "letters.sqlite3-shm"}
            assert set(files.values()) == {0o600}, files
            owners = Path(f"{path}-owners")
            assert _mode(owners) == 0o700
            assert {_mode(p) for p in owners.iterdir()} == {0o600}
        finally:
            store.close()
    finally:
        os.umask(previous)


def test_the_default_journal_is_in_the_state_directory_and_said_at_start(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_environment: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    previous = os.umask(0o022)
    try:
        with caplog.at_level("INFO", logger="coordination"):
            processor = CoordinationEventProcessor(config=CoordinationConfig())
    finally:
        os.umask(previous)
    try:
        expected = tmp_path / "state" / "coordination" / "dead-letters.sqlite3"
        assert Path(processor.dead_letters.path) == expected
        assert _mode(expected.parent) == 0o700
        assert _mode(expected) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["state"]  # nothing in the cwd
        said = [r.getMessage() for r in caplog.records if "dead-letter journal at" in r.message]
        assert said == [
            f"dead-letter journal at {expected} (events that fail are kept there for replay())"
        ]
    finally:
        processor.close()


def test_an_environment_path_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environment: None
) -> None:
    monkeypatch.setenv("COORDINATION_DEAD_LETTER_PATH", str(tmp_path / "mine.sqlite3"))
    with CoordinationEventProcessor() as processor:
        assert processor.dead_letters.path == str(tmp_path / "mine.sqlite3")


# --- a fork makes a run of its own (gunicorn workers of a preloaded app) -----------------

FORKING = """
import json, os, sys
from coordination.integration import DeadLetterStore

store = DeadLetterStore(sys.argv[1])
child = os.fork()
if child == 0:
    store.begin([({"n": 1}, "t", None)])  # the child journals an event, then dies mid-event
    os._exit(0)
os.waitpid(child, 0)
print(json.dumps({"recovered": store.recover_interrupted(), "pending": store.pending_count()}))
store.close()
"""


def test_a_forked_child_that_dies_mid_event_is_recovered_by_its_live_parent(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FORKING, str(tmp_path / "letters.sqlite3")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout) == {"recovered": 1, "pending": 0}


ORPHANING = """
import os, sys, time
from coordination.integration import DeadLetterStore

store = DeadLetterStore(sys.argv[1])
store.begin([({"n": 2}, "t", None)])
if os.fork() == 0:  # a child that never touches the store outlives its parent
    time.sleep(60)
    os._exit(0)
os._exit(0)  # the parent dies mid-event
"""


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and text in Path(f"/proc/{entry}/cmdline").read_bytes().decode(
                errors="replace"
            ):
                found.append(int(entry))
        except OSError:  # it ended meanwhile
            continue
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="finds the orphan through /proc")
def test_a_forked_child_does_not_keep_its_dead_parents_events_hostage(tmp_path: Path) -> None:
    path = tmp_path / "letters.sqlite3"
    launcher = subprocess.Popen([sys.executable, "-c", ORPHANING, str(path)])
    assert launcher.wait(timeout=60) == 0
    orphans = _processes_mentioning(str(path))
    try:
        assert orphans, "the forked child should still be running"
        store = DeadLetterStore(path)
        try:
            assert store.recover_interrupted() == 1
        finally:
            store.close()
    finally:
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)


def test_an_unwritable_state_directory_says_how_to_choose_another_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environment: None
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the state directory should be")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocked))
    with pytest.raises(StoreError, match="COORDINATION_DEAD_LETTER_PATH"):
        CoordinationEventProcessor()
