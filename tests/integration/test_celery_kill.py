"""coordinated_task under real ``celery worker -P solo`` processes (app: celery_kill_app.py).

* Nothing lost under SIGKILL: 300 tasks (every 30th with invalid arguments), the worker
  killed mid-task and another started: every valid task's body completed at least once
  (duplicates at most the worker's prefetch: one, ``worker_prefetch_multiplier=1`` with
  one process), every invalid one dead-lettered, the queue empty at the end; and the
  worker's /metrics and status page show the task's dead-letter store.
* A PostgreSQL dead-letter store (``dead_letter_path`` a ``postgresql://`` URL): a final
  failure lands there under the worker's namespace; ``replay()`` from this process (the
  task defined again, as an operator's script would) sends it again and it succeeds.

Each test has its own queue (deleted afterwards) and directory; the PostgreSQL one its own
namespace (purged afterwards).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

celery = pytest.importorskip("celery")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from coordination.integration import DeadLetterStore  # noqa: E402

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
TASK = "coordination_celery_kill.work"
REPORT = "coordination_celery_kill.report"


@dataclass
class Run:
    """One test's queue, directory and workers."""

    queue: str
    directory: Path
    env: dict[str, str]
    app: Any
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        number = len(self.workers) + 1
        log_path = self.directory / f"worker{number}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "celery_kill_app",
                    "worker",
                    "-P",
                    "solo",
                    "-Q",
                    self.queue,
                    "-n",
                    f"{self.queue}_{number}@%h",
                    "--without-heartbeat",
                    "--without-gossip",
                    "--without-mingle",
                    "-l",
                    "info",
                ],
                cwd=HERE,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.workers.append(process)
        wait_for(
            lambda: "ready." in log_path.read_text(errors="replace"),
            30,
            lambda: f"worker {number} did not start:\n{self.logs()}",
            process,
        )
        return process

    def send(self, *args: Any) -> None:
        self.app.send_task(TASK, args=list(args), queue=self.queue)

    def bodies(self) -> list[dict[str, Any]]:
        path = self.directory / "bodies.jsonl"
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def done(self) -> Counter[str]:
        return Counter(b["key"] for b in self.bodies() if b["what"] == "done")

    def fail(self, *keys: str) -> None:
        (self.directory / "failing.json").write_text(json.dumps(sorted(keys)))

    def report(self) -> dict[str, Any]:
        """The worker's /metrics text and its status page's Events section."""
        path = self.directory / "report.json"
        path.unlink(missing_ok=True)
        self.app.send_task(REPORT, queue=self.queue)
        wait_for(path.exists, 20, lambda: f"no report:\n{self.logs()}")
        report: dict[str, Any] = json.loads(path.read_text())
        return report

    def ready_count(self) -> int:
        """Messages waiting in the queue (none unacknowledged: every worker is stopped)."""
        with self.app.connection_for_write() as connection:
            declared = connection.default_channel.queue_declare(self.queue, passive=True)
        return int(declared.message_count)

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()  # a warm shutdown: the running task finishes
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-3000:]
            for path in sorted(self.directory.glob("worker*.log"))
        )


def wait_for(
    condition: Callable[[], bool],
    seconds: float,
    why: Callable[[], str],
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline or (process is not None and process.poll() is not None):
            pytest.fail(why())
        time.sleep(0.02)


@pytest.fixture
def make_run(rabbitmq_url: str, tmp_path: Path) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def make(**settings: str) -> Run:
        queue = f"coordination_test_celery_kill_{uuid.uuid4().hex[:12]}"
        directory = tmp_path / f"run{len(runs)}"
        directory.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COORDINATION_")},
            "CELERY_TEST_QUEUE": queue,
            "CELERY_TEST_DIR": str(directory),
            "CELERY_TEST_BROKER": rabbitmq_url,
            **settings,
        }
        app = celery.Celery("coordination_celery_kill_sender", broker=rabbitmq_url)
        app.conf.update(task_default_queue=queue, task_serializer="json")
        run = Run(queue, directory, env, app)
        runs.append(run)
        with app.connection_for_write() as connection:  # declared before anything is sent
            connection.default_channel.queue_declare(queue, durable=True, auto_delete=False)
        return run

    yield make
    for run in runs:
        for process in run.workers:
            if process.poll() is None:
                process.kill()
                process.wait()
        with run.app.connection_for_write() as connection:
            connection.default_channel.queue_delete(run.queue)
        run.app.close()


def dead_letter_gauges(metrics: str) -> dict[tuple[str, str, str], float]:
    found = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "coordination_dead_letters":
                labels = sample.labels
                key = (labels["store"], labels["namespace"], labels["component"])
                found[key] = sample.value
    return found


TOTAL = 300
PREFETCH = 1  # the app's worker_prefetch_multiplier, one process (-P solo)
INVALID_EVERY = 30


def test_sigkill_mid_task_loses_nothing_and_the_store_shows_on_metrics(
    make_run: Callable[..., Run],
) -> None:
    run = make_run(CELERY_TEST_SLEEP="0.01")
    valid = [f"k{i}" for i in range(TOTAL) if i % INVALID_EVERY != INVALID_EVERY - 1]
    invalid = [i for i in range(TOTAL) if i % INVALID_EVERY == INVALID_EVERY - 1]
    for i in range(TOTAL):
        run.send(i if i in invalid else f"k{i}")  # an int key breaks the rules

    first = run.start_worker()
    wait_for(lambda: len(run.done()) >= TOTAL // 3, 30, run.logs, first)
    # kill it mid-task: a body has started and not finished
    deadline = time.monotonic() + 10
    while (last := run.bodies()[-1])["what"] != "start" and time.monotonic() < deadline:
        time.sleep(0.001)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_in = last["key"] if last["what"] == "start" else None
    done_before = sum(run.done().values())
    assert done_before < len(valid), "the worker finished before it was killed"

    second = run.start_worker()
    store = DeadLetterStore(str(run.directory / "dead_letters.db"))
    try:
        wait_for(
            lambda: set(run.done()) == set(valid) and store.count(TASK) >= len(invalid),
            40,
            lambda: (
                f"{len(run.done())}/{len(valid)} done, {store.count(TASK)} dead letters\n"
                + run.logs()
            ),
            second,
        )
        letters = store.list(TASK, limit=1000)
    finally:
        store.close()
    assert killed_in is not None, "the kill did not land mid-task"
    assert killed_in in run.done()  # the task the kill interrupted ran again, to the end

    done = run.done()
    duplicates = sum(done.values()) - len(valid)
    # at most the tasks the killed worker held unacknowledged (its prefetch): their bodies
    # may have ended before their late acknowledgements reached the broker
    assert 0 <= duplicates <= PREFETCH, done.most_common(5)
    print(f"killed after {done_before} bodies; {duplicates} ran twice")
    invalid_letters = Counter(letter.event["args"][0] for letter in letters)
    assert set(invalid_letters) == set(invalid)
    assert sum(invalid_letters.values()) - len(invalid) <= 1
    assert {(letter.reason, letter.attempts) for letter in letters} == {("invalid", 0)}
    assert not any(b["key"] in map(str, invalid) for b in run.bodies())  # never ran

    # the surviving worker's readers show the task's store (counted when they read)
    report = run.report()
    gauges = dead_letter_gauges(report["metrics"])
    assert gauges == {("sqlite", "default", "events"): float(len(letters))}, gauges
    (shown,) = report["events"]["stores"]
    assert shown["component"] == "events"
    assert (shown["kind"], shown["dead_letters"], shown["available"]) == (
        "sqlite",
        len(letters),
        True,
    )

    run.stop(second)
    assert second.returncode == 0, run.logs()
    assert run.ready_count() == 0  # nothing left on the broker


def test_postgres_dead_letter_replayed_from_another_process(
    make_run: Callable[..., Run], postgres_url: str, unique_name: str
) -> None:
    from coordination import Coordination
    from coordination.integration._dead_letter_stores import open_dead_letter_store
    from coordination.integration.celery import coordinated_task

    run = make_run(CELERY_TEST_DEAD_LETTERS=postgres_url, CELERY_TEST_NAMESPACE=unique_name)
    store = open_dead_letter_store(postgres_url, unique_name)
    other = open_dead_letter_store(postgres_url, unique_name + "_other")  # not this one's
    try:
        other.dead_letter(
            None,
            {"args": ["x"], "kwargs": {}},
            TASK,
            reason="failed",
            error=ConnectionError("x"),
            attempts=1,
            key=None,
        )
        run.fail("pg-1")
        worker = run.start_worker()
        run.send("pg-1")
        wait_for(lambda: store.count(TASK) == 1, 20, run.logs, worker)
        (letter,) = store.list(TASK)
        assert (letter.reason, letter.attempts, letter.error_type) == (
            "failed",
            1,
            "ConnectionError",
        )
        assert letter.event["args"] == ["pg-1"]

        # the worker's readers show its namespace's count, not the other namespace's
        report = run.report()
        gauges = dead_letter_gauges(report["metrics"])
        assert gauges == {("postgresql", unique_name, "events"): 1.0}, gauges
        (shown,) = report["events"]["stores"]
        assert (shown["kind"], shown["namespace"], shown["dead_letters"]) == (
            "postgresql",
            unique_name,
            1,
        )

        # the dependency is back: an operator's process replays it, the worker runs it
        run.fail()
        operator = celery.Celery(
            "coordination_celery_kill_operator", broker=run.env["CELERY_TEST_BROKER"]
        )
        operator.conf.update(task_default_queue=run.queue, task_serializer="json")
        try:

            @coordinated_task(
                operator,
                name=TASK,
                config={"dead_letter_path": postgres_url, "dead_letter_namespace": unique_name},
                coordination=Coordination(),
            )
            def work(key: str) -> str:  # the worker's; never run here
                raise AssertionError("run in the worker")

            replayed = work.coordination.replay()
            assert replayed.succeeded == [letter.id], replayed
            work.coordination.close()
        finally:
            operator.close()
        wait_for(lambda: run.done()["pg-1"] == 1, 20, run.logs, worker)
        assert store.count(TASK) == 0
        assert other.count(TASK) == 1  # another service's letter was left alone
        run.stop(worker)
        assert run.ready_count() == 0
    finally:
        store.purge()
        other.purge()
        store.close()
        other.close()
