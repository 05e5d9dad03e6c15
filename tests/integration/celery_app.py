"""The Celery app a real ``celery worker`` runs in tests/integration/test_celery_worker.py.

Configured from the environment the test gives the worker (and uses itself to send):
``CELERY_TEST_QUEUE`` (the run's own queue), ``CELERY_TEST_DIR`` (where each attempt is
written down, the failing keys are read, and the dead letters are kept).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import celery

from coordination import Coordination
from coordination.integration.celery import coordinated_task

QUEUE = os.environ.get("CELERY_TEST_QUEUE", "coordination_test_celery")
DIRECTORY = Path(os.environ.get("CELERY_TEST_DIR", "."))
BROKER = os.environ.get("CELERY_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")

app = celery.Celery("coordination_celery_test", broker=BROKER, backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
)

coordination = Coordination(
    config={
        "dead_letter_path": str(DIRECTORY / "dead_letters.db"),
        "jitter": "none",
        "base_delay": 0.4,
        "backoff_multiplier": 2.0,
        "max_delay": 5.0,
    }
)


def _attempt(task: str, key: str) -> None:
    with (DIRECTORY / "attempts.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps({"task": task, "key": key, "at": time.time()}) + "\n")


def _failing() -> set[str]:
    path = DIRECTORY / "failing.json"
    return set(json.loads(path.read_text())) if path.exists() else set()


@coordinated_task(
    app,
    validation_rules={"required_fields": ["order_id"], "fields": {"order_id": {"type": "string"}}},
    error_config={"max_retries": 2},
    coordination=coordination,
)
def charge(order_id: str, amount: int = 0) -> dict[str, Any]:
    """Fails (a ConnectionError, retried) while its order_id is listed in failing.json."""
    _attempt("charge", order_id)
    if order_id in _failing():
        raise ConnectionError(f"payments unreachable for {order_id}")
    return {"charged": order_id, "amount": amount}


@coordinated_task(
    app,
    error_config={
        "max_retries": 3,
        "circuit_breaker_threshold": 1,
        "circuit_breaker_timeout": 1.5,
    },
    coordination=coordination,
)
def guarded(key: str) -> str:
    """Fails once for keys listed in failing.json (which are then taken off the list):
    one failure opens its breaker (threshold 1)."""
    _attempt("guarded", key)
    failing = _failing()
    if key in failing:
        failing.discard(key)
        (DIRECTORY / "failing.json").write_text(json.dumps(sorted(failing)))
        raise ConnectionError(f"dependency down for {key}")
    return key


@app.task(name="coordination_celery_test.report")
def report() -> dict[str, Any]:
    """What this worker counted: each task's stats, the handler's and the monitor's."""
    from coordination.observability import CoordinationMetricsExporter

    monitor = coordination.monitor.snapshot().operations
    return {
        "tasks": {t.name: t.coordination.stats() for t in (charge, guarded)},
        "handler": coordination.error_handler.operation_stats(),
        "monitor": {
            name: {"successes": op.successes, "failures": op.failures}
            for name, op in monitor.items()
        },
        "metrics": CoordinationMetricsExporter(coordination=coordination).export_metrics(),
    }
