"""The Celery app of tests/integration/test_celery_kill.py: real workers, killed and
restarted; no result backend (results are not kept: what the body did is written down).

Configured from the environment: ``CELERY_TEST_QUEUE`` (the run's own queue),
``CELERY_TEST_DIR`` (where each body's start and end are written down, the failing keys
read, and the report written), ``CELERY_TEST_BROKER``, ``CELERY_TEST_DEAD_LETTERS`` (a
SQLite path or a postgresql:// URL), ``CELERY_TEST_NAMESPACE``, ``CELERY_TEST_SLEEP``
(seconds each body takes).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import celery

from coordination import Coordination
from coordination.integration.celery import coordinated_task

QUEUE = os.environ.get("CELERY_TEST_QUEUE", "coordination_test_celery_kill")
DIRECTORY = Path(os.environ.get("CELERY_TEST_DIR", "."))
BROKER = os.environ.get("CELERY_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
SLEEP = float(os.environ.get("CELERY_TEST_SLEEP", "0.01"))
TASK = "coordination_celery_kill.work"

app = celery.Celery("coordination_celery_kill", broker=BROKER)
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,  # one unacknowledged task at a time: one duplicate at most
    worker_hijack_root_logger=False,
)

coordination = Coordination(
    config={
        "dead_letter_path": os.environ.get(
            "CELERY_TEST_DEAD_LETTERS", str(DIRECTORY / "dead_letters.db")
        ),
        "dead_letter_namespace": os.environ.get("CELERY_TEST_NAMESPACE", "default"),
        "jitter": "none",
        "base_delay": 0.05,
    }
)


def _note(what: str, key: str) -> None:
    # one short line per write, O_APPEND: whole lines even from two processes
    with (DIRECTORY / "bodies.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps({"what": what, "key": key, "pid": os.getpid()}) + "\n")


def _failing() -> set[str]:
    path = DIRECTORY / "failing.json"
    return set(json.loads(path.read_text())) if path.exists() else set()


@coordinated_task(
    app,
    validation_rules={"required_fields": ["key"], "fields": {"key": {"type": "string"}}},
    error_config={"max_retries": 0},
    name=TASK,
    coordination=coordination,
)
def work(key: str) -> str:
    """Takes SLEEP seconds; fails (ConnectionError) while ``key`` is in failing.json."""
    _note("start", key)
    time.sleep(SLEEP)
    if key in _failing():
        raise ConnectionError(f"dependency down for {key}")
    _note("done", key)
    return key


@app.task(name="coordination_celery_kill.report")
def report() -> None:
    """What a reader of this worker's set sees: /metrics and the status page's Events."""
    from coordination.observability import CoordinationMetricsExporter, StatusPage

    exported = {
        "metrics": CoordinationMetricsExporter(coordination=coordination).export_metrics(),
        "events": StatusPage(coordination=coordination).snapshot()["events"],
    }
    partial = DIRECTORY / "report.json.part"
    partial.write_text(json.dumps(exported))
    partial.replace(DIRECTORY / "report.json")
