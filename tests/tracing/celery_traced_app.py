"""The Celery app a real worker runs in test_celery_worker_spans.py: the SDK's tracer
provider set globally in the worker (its own process), each finished span written as a
JSON line to ``$CELERY_TEST_DIR/spans.jsonl`` for the test to read."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import celery
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from coordination import Coordination
from coordination.integration.celery import coordinated_task

QUEUE = os.environ.get("CELERY_TEST_QUEUE", "coordination_test_celery_spans")
DIRECTORY = Path(os.environ.get("CELERY_TEST_DIR", "."))
BROKER = os.environ.get("CELERY_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")


class _LinesExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            for span in spans:
                out.write(json.dumps(json.loads(span.to_json())) + "\n")
        return SpanExportResult.SUCCESS


if os.environ.get("CELERY_TEST_WORKER") == "1":  # the worker traces; the sender does not
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_LinesExporter(DIRECTORY / "spans.jsonl")))
    trace.set_tracer_provider(provider)

app = celery.Celery("coordination_celery_spans", broker=BROKER, backend="rpc://")
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
        "base_delay": 0.1,
    }
)


@coordinated_task(
    app, operation_name="ship order", error_config={"max_retries": 2}, coordination=coordination
)
def ship(order_id: str) -> str:
    """Fails its first attempt for an order whose marker file exists (then removes it)."""
    marker = DIRECTORY / f"fail-{order_id}"
    if marker.exists():
        marker.unlink()
        raise ConnectionError(f"carrier unreachable for {order_id}")
    return order_id
