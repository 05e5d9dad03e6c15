"""A protected call with its breaker state in Redis, beside pybreaker's CircuitRedisStorage.

    .venv/bin/python bench/bench_redis.py [--quick] [--url redis://127.0.0.1:6379/0]

Every row protects the same trivial function with a breaker kept in the same Redis
(loopback), and the rows take turns repeat by repeat, so the noise of a shared machine
hits them alike. Prints calls per second (median and best of the repeats) and the ratio
to pybreaker's. Target: the coordination breaker at >= 2x pybreaker's throughput (it
makes one round trip per healthy call, pybreaker two: GET state, SET counter). With a
Redis rate limit as well, the handler still makes one round trip (one script takes both
checks); the "two separate scripts" row shows what the two checks cost apart. A breaker
with a failure-rate window also makes one round trip per healthy call (its successes
travel with the next acquire). A failed attempt and its retry's admission share one
script: a call failing once then succeeding costs three round trips (acquire, failure +
acquire, the success that ends the streak), not four.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pybreaker
import redis

from coordination.backends.redis import RedisBackend
from coordination.error_handling import BreakerSettings, CoordinationErrorHandler, Rate

TARGET_RATIO = 2.0


def work(x: int) -> int:
    return x


def rate(loop: Callable[[int], None], n: int) -> float:
    """Calls per second of ``loop(n)``."""
    start = time.perf_counter_ns()
    loop(n)
    return n / ((time.perf_counter_ns() - start) / 1e9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    n = 500 if args.quick else 3000
    repeats = 3 if args.quick else 7
    namespace = f"bench-{uuid.uuid4().hex[:8]}"

    client = redis.Redis.from_url(args.url)
    try:
        client.ping()
    except redis.RedisError as exc:
        print(f"Redis at {args.url} is unreachable ({exc}); nothing measured")
        return 1

    storage = pybreaker.CircuitRedisStorage(
        pybreaker.STATE_CLOSED, client, namespace=f"{namespace}-pybreaker"
    )
    peer = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30, state_storage=storage)

    backend = RedisBackend(args.url, namespace=namespace)
    breaker = backend.breaker(
        "work",
        BreakerSettings(failure_threshold=5, open_seconds=30),
        clock=time.monotonic,
        on_transition=lambda t: None,
    )
    windowed = backend.breaker(
        "work-window",
        BreakerSettings(failure_threshold=5, open_seconds=30, failure_rate_threshold=0.5),
        clock=time.monotonic,
        on_transition=lambda t: None,
    )
    handler = CoordinationErrorHandler(
        {"max_retries": 0},
        breaker_factory=backend.breaker,
        rate_limiter_factory=backend.rate_limiter,
    )
    handled = handler.decorate(work, operation_name="work-handler")
    limited = CoordinationErrorHandler(
        {"max_retries": 0},
        breaker_factory=backend.breaker,
        rate_limiter_factory=backend.rate_limiter,
    ).decorate(work, operation_name="work-limited", rate_limit="1000000/s")

    def pybreaker_loop(k: int) -> None:
        call = peer.call
        for i in range(k):
            call(work, i)

    def loop_of(shared: Any) -> Callable[[int], None]:
        def breaker_loop(k: int) -> None:
            acquire, success = shared.acquire, shared.record_success
            for i in range(k):
                acquire()
                try:
                    work(i)
                except Exception:
                    shared.record_failure(0.0)
                    raise
                success(0.0)

        return breaker_loop

    # every other attempt fails and is retried once: the failure and the retry's acquire
    # are one script
    retrying = CoordinationErrorHandler(
        {"max_retries": 1, "base_delay": 0.0, "jitter": "none"},
        breaker_factory=backend.breaker,
    )
    attempts = iter(range(1 << 62))

    def flaky(x: int) -> int:
        if next(attempts) % 2 == 0:
            raise ConnectionError("every other attempt")
        return x

    retried = retrying.decorate(flaky, operation_name="work-retried")

    def retried_loop(k: int) -> None:
        for i in range(k):
            retried(i)

    limiter = backend.rate_limiter(Rate.parse("1000000/s"), clock=time.monotonic)

    def separate_loop(k: int) -> None:
        try_acquire, acquire, success = limiter.try_acquire, breaker.acquire, breaker.record_success
        for i in range(k):
            if try_acquire("work") == 0.0:
                acquire()
                work(i)
                success(0.0)

    def handler_loop(k: int) -> None:
        for i in range(k):
            handled(i)

    def limited_loop(k: int) -> None:
        for i in range(k):
            limited(i)

    rows: dict[str, Callable[[int], None]] = {
        "pybreaker + CircuitRedisStorage": pybreaker_loop,
        "coordination RedisCircuitBreaker": loop_of(breaker),
        "  with a failure-rate window": loop_of(windowed),
        "coordination handler (Redis breaker)": handler_loop,
        "  + Redis GCRA rate limit (one script)": limited_loop,
        "  limit + breaker, two separate scripts": separate_loop,
        "handler: a failure, then its retry succeeds": retried_loop,
    }
    for loop in rows.values():  # warm up: connections made, scripts loaded
        loop(50)
    results: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeats):
        for name, loop in rows.items():
            results[name].append(rate(loop, n))

    base = statistics.median(results["pybreaker + CircuitRedisStorage"])
    print(f"{n} protected calls x {repeats} repeats, Redis at {args.url}, taking turns")
    print(
        f"{'':40} {'median calls/s':>15} {'best calls/s':>13} {'us/call':>8} {'vs pybreaker':>13}"
    )
    for name, values in results.items():
        median = statistics.median(values)
        print(
            f"{name:40} {median:15,.0f} {max(values):13,.0f} {1e6 / median:8.1f}"
            f" {median / base:12.2f}x"
        )
    ratio = statistics.median(results["coordination RedisCircuitBreaker"]) / base
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(
        f"RedisCircuitBreaker: {ratio:.2f}x pybreaker ({verdict} the >= {TARGET_RATIO:g}x target)"
    )

    combined = statistics.median(results["  + Redis GCRA rate limit (one script)"])
    alone = statistics.median(results["coordination handler (Redis breaker)"])
    print(
        f"handler with a Redis rate limit: {combined / alone:.2f}x the breaker alone's throughput"
    )

    keys = list(client.scan_iter(match=f"{namespace}*"))
    if keys:
        client.delete(*keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
