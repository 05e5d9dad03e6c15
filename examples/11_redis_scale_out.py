"""Scaling out on Redis: two processes share one circuit breaker.

With ``redis_url`` set, every process's ``CoordinationErrorHandler`` keeps its breakers in
Redis. Worker A sees the payments service fail and opens the breaker; worker B, a separate
process, is rejected from its very first call without touching the failing service.

Needs a Redis server (``redis-server`` at 127.0.0.1:6379 by default, or
``COORDINATION_REDIS_URL``).

    .venv/bin/python examples/11_redis_scale_out.py
"""

import multiprocessing
import os
import uuid

from coordination import CircuitOpenError, CoordinationErrorHandler

REDIS_URL = os.environ.get("COORDINATION_REDIS_URL", "redis://127.0.0.1:6379/0")


def charge_card():
    raise ConnectionError("payments service unreachable")


def worker(name, namespace, results):
    handler = CoordinationErrorHandler(
        {
            "redis_url": REDIS_URL,
            "redis_namespace": namespace,
            "circuit_breaker_threshold": 3,
            "circuit_breaker_timeout": 30.0,
            "max_retries": 0,
        }
    )
    outcomes = []
    for _ in range(4):
        try:
            handler.execute_with_error_handling(charge_card, operation_name="payments")
        except CircuitOpenError:
            outcomes.append("rejected by the open breaker")
        except ConnectionError:
            outcomes.append("failed")
    results.put((name, outcomes, handler.circuit_breaker("payments").state.value))


if __name__ == "__main__":
    namespace = f"example-{uuid.uuid4().hex[:8]}"  # a fresh breaker for every run
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    for name in ("worker A", "worker B"):
        process = context.Process(target=worker, args=(name, namespace, results))
        process.start()
        process.join(timeout=60)
        who, outcomes, state = results.get(timeout=5)
        print(f"{who} (pid {process.pid}): {', '.join(outcomes)}; breaker {state}")

    import redis

    client = redis.Redis.from_url(REDIS_URL)
    removed = sum(client.delete(key) for key in client.scan_iter(f"{namespace}*"))
    client.close()
    print(f"cleaned up {removed} Redis key(s) under {namespace!r}")
