"""coordinated_task under a real ``celery worker -P solo`` on RabbitMQ (app: celery_app.py).

One worker serves the module, on a queue of its own (deleted afterwards); results come
back over ``rpc://``; the worker writes each attempt down, and its dead letters go to a
SQLite file this process reads too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("celery")

import itertools

from celery_worker import log_tail, solo_worker
from coordination.integration.celery import InvalidTask, TaskDeadLettered

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def worker(rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The app module (imported here with the worker's settings) while a worker runs it."""
    import uuid

    def open_stores(module: ModuleType) -> None:
        # opened here, for the module (each test's own stores are closed after it)
        module.charge.coordination.dead_letters  # noqa: B018
        module.guarded.coordination.dead_letters  # noqa: B018

    settings = {
        "CELERY_TEST_QUEUE": f"coordination_test_celery_{uuid.uuid4().hex[:12]}",
        "CELERY_TEST_DIR": str(tmp_path_factory.mktemp("celery")),
        "CELERY_TEST_BROKER": rabbitmq_url,
    }
    with solo_worker("celery_app", HERE, settings, before_start=open_stores) as module:
        try:
            yield module
        finally:
            module.charge.coordination.close()
            module.guarded.coordination.close()


def _log(directory: Path) -> str:
    return log_tail(directory)


def _attempts(app: ModuleType, key: str) -> list[float]:
    path = app.DIRECTORY / "attempts.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [line["at"] for line in lines if line["key"] == key]


def _fail(app: ModuleType, *keys: str) -> None:
    (app.DIRECTORY / "failing.json").write_text(json.dumps(sorted(keys)))


def _report(app: ModuleType) -> dict[str, Any]:
    report: dict[str, Any] = app.report.delay().get(timeout=20)
    return report


def test_invalid_arguments_are_dead_lettered_and_never_run(worker: ModuleType) -> None:
    result = worker.app.send_task(worker.charge.name, args=[123], kwargs={"amount": 1})
    with pytest.raises(InvalidTask) as raised:
        result.get(timeout=20)
    assert "order_id: must be a string" in str(raised.value)
    assert _attempts(worker, "123") == []  # the body never ran
    letters = [
        letter
        for letter in worker.charge.coordination.list_dead_letters()
        if letter.event["args"] == [123]
    ]
    assert [(letter.reason, letter.attempts) for letter in letters] == [("invalid", 0)]
    assert letters[0].event["kwargs"] == {"amount": 1}
    assert _report(worker)["tasks"][worker.charge.name]["invalid"] >= 1


def test_failures_retry_with_backoff_then_dead_letter_with_args_then_replay(
    worker: ModuleType,
) -> None:
    _fail(worker, "fail-1")
    result = worker.charge.delay("fail-1", amount=5)
    with pytest.raises(TaskDeadLettered) as raised:
        result.get(timeout=30)
    assert "failed: payments unreachable for fail-1" in str(raised.value)
    times = _attempts(worker, "fail-1")
    assert len(times) == 3  # max_retries 2: Celery re-sent it twice
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # base_delay 0.4, multiplier 2, no jitter: countdowns of 0.4 s then 0.8 s
    assert gaps[0] >= 0.35, gaps
    assert gaps[1] >= 0.75, gaps
    assert gaps[1] > gaps[0]
    (letter,) = [
        letter
        for letter in worker.charge.coordination.list_dead_letters()
        if letter.event["args"] == ["fail-1"]
    ]
    assert letter.reason == "failed"
    assert letter.attempts == 3
    assert letter.event["kwargs"] == {"amount": 5}
    assert letter.error_type == "ConnectionError"

    report = _report(worker)
    stats = report["tasks"][worker.charge.name]
    assert stats["retried"] >= 2
    assert stats["failed"] >= 1
    assert stats["dead_lettered"] >= 1
    handler = report["handler"][worker.charge.name]
    assert handler["retries"] >= 2
    assert handler["failures"] >= 1
    assert report["monitor"][worker.charge.name]["failures"] >= 3
    metrics = report["metrics"]
    assert (
        'coordination_retries_total{component="error_handler",operation="celery_app.charge"}'
        in (metrics)
    )

    # the dependency is back: replay sends the task again, and it succeeds
    _fail(worker)
    replayed = worker.charge.coordination.replay()
    assert letter.id in replayed.succeeded  # (the invalid one of the test before is re-sent too)
    deadline = time.monotonic() + 20
    while len(_attempts(worker, "fail-1")) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_attempts(worker, "fail-1")) == 4
    assert all(
        entry.event["args"] != ["fail-1"]
        for entry in worker.charge.coordination.list_dead_letters()
    )


def test_open_breaker_requeues_with_its_retry_after(worker: ModuleType) -> None:
    _fail(worker, "g-1")
    first = worker.guarded.delay("g-1")
    deadline = time.monotonic() + 20
    while not _attempts(worker, "g-1") and time.monotonic() < deadline:
        time.sleep(0.01)
    opened_at = _attempts(worker, "g-1")[0]  # this failure opens the breaker (threshold 1)
    time.sleep(0.1)
    second = worker.guarded.delay("g-2")  # arrives while the breaker is open
    assert first.get(timeout=30) == "g-1"
    assert second.get(timeout=30) == "g-2"
    # neither ran while the breaker was open (1.5 s): each waited in the queue, re-queued
    # with the breaker's retry_after as countdown, not in a worker slot
    for key in ("g-1", "g-2"):
        later = [at for at in _attempts(worker, key) if at > opened_at]
        assert later, key
        assert min(later) >= opened_at + 1.4, (key, later, opened_at)
    report = _report(worker)
    stats = report["tasks"][worker.guarded.name]
    assert stats["requeued"] >= 2, stats
    assert stats["succeeded"] >= 2
    assert stats["dead_lettered"] == 0
    assert stats["retried"] >= 1
    handler = report["handler"][worker.guarded.name]
    assert handler["rejections"] >= 2
    assert handler["circuit_state"] == "CLOSED"
    assert "Retry in 1." in _log(worker.DIRECTORY)  # Celery's own retry, countdown > 1 s
