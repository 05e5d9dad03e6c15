"""``coordinated_task``: a Celery task with validation, the error handler, timing and dead
letters around it.

>>> app = celery.Celery("shop", broker="amqp://guest:guest@127.0.0.1:5672//")
>>> @coordinated_task(app, validation_rules={"required_fields": ["order_id"]},
...                   error_config={"max_retries": 3, "base_delay": 2.0})
... def charge(order_id, amount=0):
...     return payments.charge(order_id, amount)      # doctest: +SKIP

Each run of the task (the first delivery, and every re-send) goes through:

1. **Validation** of its arguments (the rule of ``coordination.validation._arguments``, as
   every door): an invalid task is dead-lettered (reason ``invalid``) and never retried.
2. **The operation's pipeline** (its ``error_config``, over the configuration's
   ``operations:`` entry): rate limit, bulkhead or adaptive limit, breaker, one attempt
   (with its timeout), the breaker told the outcome. Only one attempt runs per delivery:
   a retry the plan decides (``retry_on`` / ``give_up_on``, ``max_retries``, the backoff,
   a ``Retry-After`` hint, the retry budget) is a Celery retry, ``self.retry(countdown=
   <the plan's wait>)``, so no worker slot is held while waiting.
3. **A refusal** — the breaker open, the rate limit spent, the bulkhead or adaptive limit
   full — re-queues the task with ``countdown = retry_after`` (Celery's ``retry`` again).
   Re-queues do *not* spend the retry allowance: the task did not fail, its dependency is
   known to be down, and spending ``max_retries`` on that would dead-letter every task of
   a long outage after a few open periods. They are bounded by ``max_requeues`` per task
   (default 100: with the default 30 s open period, about 50 minutes of outage; open
   periods that grow on re-opens make it longer); past it the task is dead-lettered
   (reason ``requeue_limit``), ready for ``replay()`` once the outage is over.
4. **A final failure** (no retry left, an error not retried, the budget spent) is
   dead-lettered with its arguments (``{"args": [...], "kwargs": {...}, "task_id": ...}``,
   reason ``failed``) in the store ``dead_letter_path`` names (SQLite by default);
   ``task.coordination.replay()`` sends them again.

A dead-lettered run raises ``TaskDeadLettered`` (an ``EventDeadLettered``; ``InvalidTask``,
also an ``InvalidEvent``, for invalid arguments),
so Celery marks it FAILURE and retries it no more. A ``fallback`` in the options answers
as it does everywhere: the task then returns its value (nothing is re-queued or kept).

Celery's ``request.retries`` counts every re-send; the failed attempts (the plan's attempt
number) and the re-queues are carried in the message headers ``coordination_failures`` /
``coordination_requeues`` (``coordination_wait``: the last wait, for decorrelated jitter;
``coordination_started``: the first failure's time, for ``retry_time_budget``).
Under ``task_always_eager`` (or ``apply()``) Celery runs a retry at once, ignoring its
countdown; the same bounds end it.

Nothing is lost when a worker dies: tasks are acknowledged late (``acks_late=True``,
``reject_on_worker_lost=True`` unless told otherwise), so a killed worker's tasks go to
another; a body may then run twice, at most the tasks the dead worker held
(``worker_prefetch_multiplier`` × its processes). After each task in a worker's own event
loop (``-P solo``) the loop is woken so that its late ack goes out at once (Celery queues it
without waking the loop: with a prefetch of 1 the worker would wait for its next timer,
up to 10 s, before the broker sent the next task).

Each task's dead letters show in ``/metrics`` (``coordination_dead_letters{store,namespace,
component}``) and on the status page's Events section, as an event processor's do: read
when a reader asks (the store is opened by the first read), that task's letters only
(``component``: ``events``, ``events_2``, … in the order the doors were made).

Celery 5 runs task functions synchronously: a coroutine function is refused with a
``TypeError``.
"""

from __future__ import annotations

try:
    import celery as _celery  # noqa: F401  (the library itself: this package needs it)
except ImportError as exc:  # pragma: no cover - the extra is installed in the test env
    raise ImportError(
        "coordination.integration.celery needs Celery: pip install 'coordination-systems[celery]'"
    ) from exc

from ._task import CoordinatedTask, InvalidTask, TaskDeadLettered, coordinated_task

__all__ = ["CoordinatedTask", "InvalidTask", "TaskDeadLettered", "coordinated_task"]
