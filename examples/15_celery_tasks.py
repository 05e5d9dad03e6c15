"""Celery tasks with validation, retries through Celery, the breaker and dead letters.

Runs the tasks eagerly (``task_always_eager``: no broker, no worker), so it finishes at
once; under a real worker the same retries and re-queues are Celery's own re-sends with
their countdowns (``celery -A yourapp worker``).
"""

from __future__ import annotations

import logging

import celery

from coordination import Coordination
from coordination.integration.celery import coordinated_task

logging.disable(logging.CRITICAL)  # the dead-letter warnings: this example prints its own

app = celery.Celery("shop", broker="memory://", backend="cache+memory://")
app.conf.task_always_eager = True  # a real app names its broker and runs a worker

coordination = Coordination(config={"dead_letter_path": ":memory:", "base_delay": 0.5})
payments_up = {"value": False}
attempts: list[int] = []


@coordinated_task(
    app,
    validation_rules={"required_fields": ["order_id"], "fields": {"amount": {"type": "integer"}}},
    error_config={"max_retries": 2, "circuit_breaker_threshold": 10},
    coordination=coordination,
    bind=True,
)
def charge(self: celery.Task, order_id: str, amount: int = 0) -> str:
    attempts.append(self.request.retries)
    if not payments_up["value"]:
        raise ConnectionError("payments unreachable")
    return f"charged {order_id}: {amount}"


payments_up["value"] = True
print("success:", charge.delay("A-1", amount=30).get())

invalid = charge.delay("A-2", amount="thirty")
print("invalid:", type(invalid.result).__name__, "-", invalid.result.reason.split(":")[0])

payments_up["value"] = False
attempts.clear()
failed = charge.delay("A-3", amount=12)
print(f"failed after {len(attempts)} deliveries (Celery retries {attempts}):", failed.state)
for letter in charge.coordination.list_dead_letters():
    print(
        f"dead letter {letter.id}: {letter.reason}, args={letter.event['args']}, "
        f"kwargs={letter.event['kwargs']}, attempts={letter.attempts}"
    )

payments_up["value"] = True
report = charge.coordination.replay()
print("replayed:", len(report.succeeded), "sent again;", "still failing:", len(report.failed))
print("task counts:", charge.coordination.stats())
stats = coordination.error_handler.operation_stats()[charge.name]
print(
    f"handler: successes={stats['successes']} retries={stats['retries']} failures={stats['failures']}"
)
