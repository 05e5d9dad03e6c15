"""Cost of recording an operation, beside prometheus_client, in one run.

    .venv/bin/python bench/bench_performance.py [--quick]

Prints nanoseconds per call *over the bare loop* (best and median of several repeats) for
record_operation, track_performance (over a bare call), prometheus_client's
Histogram.time() and Counter.inc(), the same with monitoring disabled, and the memory one
operation holds after 10^4 and 10^7 recordings (10^6 with --quick).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

from coordination.performance import CoordinationPerformanceMonitor, track_performance

TARGETS_NS = {"record_operation": 500, "track_performance": 600}


def measure(loop: Callable[[int], None], n: int, repeats: int) -> list[float]:
    """ns per iteration of ``loop(n)``, once per repeat."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter_ns()
        loop(n)
        times.append((time.perf_counter_ns() - start) / n)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    args = parser.parse_args()
    n = 50_000 if args.quick else 200_000
    repeats = 5 if args.quick else 9

    monitor = CoordinationPerformanceMonitor({"max_operation_names": 100})
    disabled = CoordinationPerformanceMonitor({"enable_performance_monitoring": False})
    registry = CollectorRegistry()
    histogram = Histogram("bench_seconds", "bench", registry=registry)
    counter = Counter("bench", "bench", registry=registry)

    def bare_function(x: int) -> int:
        return x

    tracked = track_performance("tracked", monitor=monitor)(bare_function)
    tracked_disabled = track_performance("tracked", monitor=disabled)(bare_function)

    def empty_loop(k: int) -> None:
        for _ in range(k):
            pass

    def call_loop(fn: Callable[[int], int]) -> Callable[[int], None]:
        def loop(k: int) -> None:
            for i in range(k):
                fn(i)

        return loop

    def record_loop(m: CoordinationPerformanceMonitor) -> Callable[[int], None]:
        def loop(k: int) -> None:
            record = m.record_operation
            for _ in range(k):
                with record("op"):
                    pass

        return loop

    def histogram_loop(k: int) -> None:
        time_it = histogram.time
        for _ in range(k):
            with time_it():
                pass

    def counter_loop(k: int) -> None:
        inc = counter.inc
        for _ in range(k):
            inc()

    # Interleave the cases repeat by repeat, so machine noise hits all of them alike.
    cases: dict[str, tuple[Callable[[int], None], str]] = {
        "bare loop": (empty_loop, "empty"),
        "bare call": (call_loop(bare_function), "empty"),
        "record_operation": (record_loop(monitor), "empty"),
        "record_operation (disabled)": (record_loop(disabled), "empty"),
        "track_performance": (call_loop(tracked), "bare call"),
        "track_performance (disabled)": (call_loop(tracked_disabled), "bare call"),
        "prometheus Histogram.time()": (histogram_loop, "empty"),
        "prometheus Counter.inc()": (counter_loop, "empty"),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (loop, _) in cases.items():
            samples[name].extend(measure(loop, n, 1))

    baseline = {"empty": min(samples["bare loop"]), "bare call": min(samples["bare call"])}
    print(f"Python {sys.version.split()[0]}, {n} calls x {repeats} repeats; ns per call")
    print(f"{'case':32} {'best':>8} {'median':>8}  over       target   vs Histogram.time()")
    histogram_best = min(samples["prometheus Histogram.time()"]) - baseline["empty"]
    for name, (_, over) in cases.items():
        if name in ("bare loop", "bare call"):
            continue
        best = min(samples[name]) - baseline[over]
        median = statistics.median(samples[name]) - baseline[over]
        target = TARGETS_NS.get(name)
        target_text = f"<= {target}" if target else ""
        print(
            f"{name:32} {best:8.0f} {median:8.0f}  {over:10} {target_text:8} "
            f"{best / histogram_best:6.2f}x"
        )

    async def coroutine(x: int) -> int:
        return x

    tracked_async = track_performance("tracked_async", monitor=monitor)(coroutine)

    async def async_loop(fn: Callable[[int], object], k: int) -> float:
        start = time.perf_counter_ns()
        for i in range(k):
            await fn(i)  # type: ignore[misc]
        return (time.perf_counter_ns() - start) / k

    bare_async = min(asyncio.run(async_loop(coroutine, n)) for _ in range(3))
    tracked_async_ns = min(asyncio.run(async_loop(tracked_async, n)) for _ in range(3))
    print(
        f"{'track_performance (async)':32} {tracked_async_ns - bare_async:8.0f}           over bare await"
    )

    print("\nmemory of one operation (its recorder: counters, window ring and sketches)")
    ticks = iter(range(10**9))

    def clock() -> float:  # 10 ms per recording: 10^4 recordings span the one-minute window
        return next(ticks) * 0.01

    memory_monitor = CoordinationPerformanceMonitor({"max_operation_names": 10}, clock=clock)
    top = 1_000_000 if args.quick else 10_000_000
    done = 0
    checkpoints = (10_000, top)
    # Durations spread log-uniformly over 50 µs..2 s, recorded as an application would.
    durations = [50e-6 * (40_000 ** (i / 9_999)) for i in range(10_000)]
    random.Random(1).shuffle(durations)  # in no particular order, as traffic comes
    record = memory_monitor.record_duration
    for checkpoint in checkpoints:
        while done < checkpoint:
            for d in durations:
                record("op", d)
            done += len(durations)
        size = memory_monitor.operation_memory_bytes("op")
        print(f"  after {done:>12,} recordings: {size:>7,} bytes")
    stats = memory_monitor.operation_stats()["op"]
    print(
        f"  count {stats.count:,}, p50 {stats.quantile(0.5) * 1000:.3f} ms, p99 {stats.quantile(0.99) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
