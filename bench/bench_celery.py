"""A no-op Celery task under coordinated_task, beside the same task as a plain ``app.task``.

    .venv/bin/python bench/bench_celery.py [--quick]

Each delivery runs in process through Celery's own tracer (``task.apply()``: what a worker
does for a message once it is decoded, without the broker), so the rows differ only by
what coordinated_task adds: the progress headers read, the operation's plan (breaker,
one attempt), the monitor's timing and, in the last row, the arguments' validation. The
rows take turns repeat by repeat. Prints deliveries per second (median and best), the
ratio to the plain task's and the microseconds a delivery takes beyond the plain task's.
Target: >= 80 % of the plain task's rate without validation. The broker's share
(publish, deliver, ack) is the same for both and comes on top.

The second row is the plain task with coordinated_task's default delivery options
(``acks_late``, ``reject_on_worker_lost``): for information, Celery's own share of the
difference (its tracer, built at each ``apply()``, reads one more setting for a
late-acked task; a worker builds it once per task).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from typing import Any

import celery

from coordination import Coordination
from coordination.integration.celery import coordinated_task

TARGET_RATIO = 0.8


def rate(task: Any, n: int) -> float:
    apply = task.apply
    start = time.perf_counter_ns()
    for i in range(n):
        apply((str(i),))
    return n / ((time.perf_counter_ns() - start) / 1e9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    args = parser.parse_args()
    n = 500 if args.quick else 3000
    repeats = 3 if args.quick else 7
    logging.disable(logging.CRITICAL)

    app = celery.Celery("bench", broker="memory://")
    app.conf.task_ignore_result = True
    coordination = Coordination(config={"dead_letter_path": ":memory:"})

    @app.task(name="bench.plain")
    def plain(order_id: str) -> str:
        return order_id

    @app.task(name="bench.late", acks_late=True, reject_on_worker_lost=True)
    def late(order_id: str) -> str:
        return order_id

    @coordinated_task(app, error_config={}, coordination=coordination, name="bench.coordinated")
    def coordinated(order_id: str) -> str:
        return order_id

    @coordinated_task(
        app,
        {"required_fields": ["order_id"]},
        error_config={},
        coordination=coordination,
        name="bench.validated",
    )
    def validated(order_id: str) -> str:
        return order_id

    rows: dict[str, tuple[Any, list[float]]] = {
        "plain app.task (peer)": (plain, []),
        "plain app.task, acks_late": (late, []),
        "coordinated_task": (coordinated, []),
        "coordinated_task + validation": (validated, []),
    }
    for _, (task, _) in rows.items():
        rate(task, 50)  # warm up
    for _ in range(repeats):
        for task, rates in rows.values():
            rates.append(rate(task, n))
    peer = statistics.median(rows["plain app.task (peer)"][1])
    print(f"{'row':34} {'median/s':>10} {'best/s':>10} {'vs peer':>8} {'+µs':>6}")
    for name, (_, rates) in rows.items():
        median = statistics.median(rates)
        added = 1e6 / median - 1e6 / peer
        print(f"{name:34} {median:10.0f} {max(rates):10.0f} {median / peer:8.2f} {added:6.1f}")
    ratio = statistics.median(rows["coordinated_task"][1]) / peer
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"target >= {TARGET_RATIO:.0%} of the plain task's rate: {verdict} ({ratio:.0%})")
    coordination.error_handler.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
