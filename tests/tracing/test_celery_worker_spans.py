"""coordinated_task's spans under a real ``celery worker -P solo`` on RabbitMQ: the
worker's deliveries join the publisher's trace (its ``traceparent`` header), a retry's
re-send included (app: celery_traced_app.py)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("celery")

from celery_worker import log_tail, solo_worker

from .doors import PARENT_ID, TRACE_ID, TRACEPARENT

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def worker(rabbitmq_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    settings = {
        "CELERY_TEST_QUEUE": f"coordination_test_celery_spans_{uuid.uuid4().hex[:12]}",
        "CELERY_TEST_DIR": str(tmp_path_factory.mktemp("celery_spans")),
        "CELERY_TEST_BROKER": rabbitmq_url,
    }
    # the worker traces (its global provider); the sender only when a test says so
    traced = {"CELERY_TEST_WORKER": "1"}
    with solo_worker("celery_traced_app", HERE, settings, worker_only=traced) as module:
        try:
            yield module
        finally:
            module.coordination.close()


def _log(directory: Path) -> str:
    return log_tail(directory)


def _spans(app: ModuleType, count: int) -> list[dict[str, Any]]:
    path = app.DIRECTORY / "spans.jsonl"
    deadline = time.monotonic() + 20
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if path.exists():
            found = [json.loads(line) for line in path.read_text().splitlines() if line]
            if len(found) >= count:
                break
        time.sleep(0.05)
    return found


def test_the_workers_deliveries_join_the_publishers_trace(worker: ModuleType) -> None:
    (worker.DIRECTORY / "fail-o2").write_text("")  # its first attempt fails: a re-send
    first = worker.ship.apply_async(("o1",), headers={"traceparent": TRACEPARENT})
    assert first.get(timeout=20) == "o1"
    second = worker.ship.apply_async(("o2",), headers={"traceparent": TRACEPARENT})
    assert second.get(timeout=30) == "o2"
    spans = _spans(worker, 3)
    assert [s["name"] for s in spans] == ["ship order"] * 3, _log(worker.DIRECTORY)
    assert all(s["kind"] == "SpanKind.CONSUMER" for s in spans)
    assert all(s["context"]["trace_id"] == f"0x{TRACE_ID}" for s in spans)
    assert all(s["parent_id"] == f"0x{PARENT_ID}" for s in spans)
    outcomes = [
        (
            s["attributes"]["messaging.message.id"],
            s["attributes"]["coordination.outcome"],
            s["attributes"]["coordination.attempt"],
        )
        for s in spans
    ]
    assert outcomes == [
        (first.id, "success", 1),
        (second.id, "retry", 1),
        (second.id, "success", 2),
    ]


def test_a_task_sent_while_tracing_is_the_workers_parent(worker: ModuleType) -> None:
    """The sender traces (its own provider), the worker traces (its global one): the
    worker's delivery span is the child of the sender's PRODUCER span, one trace."""
    from opentelemetry.trace import SpanKind

    from .doors import hex_span, hex_trace, parent_id, recording

    with recording() as recorded:
        caller = recorded.provider.get_tracer("caller")
        with caller.start_as_current_span("checkout"):
            sent = worker.ship.delay("o3")
        assert sent.get(timeout=20) == "o3"
    producer = recorded.one(SpanKind.PRODUCER)
    assert producer.name == "ship order publish"
    assert dict(producer.attributes or {})["messaging.message.id"] == sent.id
    deadline = time.monotonic() + 20
    delivery: list[dict[str, Any]] = []
    while not delivery and time.monotonic() < deadline:
        delivery = [
            s for s in _spans(worker, 1) if s["attributes"].get("messaging.message.id") == sent.id
        ]
        time.sleep(0.05)
    assert len(delivery) == 1, _log(worker.DIRECTORY)
    assert delivery[0]["context"]["trace_id"] == f"0x{hex_trace(producer)}"
    assert delivery[0]["parent_id"] == f"0x{hex_span(producer)}"
    assert parent_id(producer) is not None  # and the producer is the caller's child
