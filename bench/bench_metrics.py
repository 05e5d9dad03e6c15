"""A Prometheus scrape of 1 000 operations, beside a plain prometheus_client registry.

Our scrape reads the real monitor and error handler through CoordinationCollector and
renders the text with prometheus_client. The peer is a plain prometheus_client registry
holding the same families with the same series (Histogram, Counter and Gauge children
already filled in), rendered by the same generate_latest: the cost of exposition alone,
with nothing to read. Two shapes of "1 000 operations":

- 1 000 calls over 20 operation names (a typical service): target well under 100 ms;
- 1 000 distinct operation names (the default max_operation_names, the worst case),
  where the exposition of ~24 000 series dominates and the ratio to the plain registry is
  what to read.

    .venv/bin/python bench/bench_metrics.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

from coordination.error_handling import CoordinationErrorHandler
from coordination.observability import CoordinationMetricsExporter
from coordination.observability._collector import BUCKETS
from coordination.performance import CoordinationPerformanceMonitor

CALLS = 1_000


def build_components(names: int) -> dict[str, object]:
    """A monitor and a handler that have seen CALLS calls spread over ``names`` operations."""
    monitor = CoordinationPerformanceMonitor(config={"max_operation_names": names})
    handler = CoordinationErrorHandler(
        config={"max_operation_names": names, "base_delay": 0, "max_retries": 0}
    )
    for i in range(CALLS):
        name = f"operation_{i % names}"
        monitor.record_duration(name, 0.001 * (1 + i % 200))
        handler.execute_with_error_handling(lambda: None, operation_name=name)
    return {"performance_monitor": monitor, "error_handler": handler}


def plain_registry_like(text: str) -> tuple[CollectorRegistry, int]:
    """prometheus_client metric objects with exactly the families and series of ``text``."""
    registry = CollectorRegistry()
    series = 0
    for family in text_string_to_metric_families(text):
        labelsets = {
            tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("le", "quantile")))
            for s in family.samples
        }
        names = [k for k, _ in next(iter(labelsets))] if labelsets else []
        metric: Counter | Gauge | Histogram
        if family.type == "histogram":
            metric = Histogram(
                family.name, family.documentation, names, registry=registry, buckets=BUCKETS
            )
        elif family.type == "counter":
            metric = Counter(family.name, family.documentation, names, registry=registry)
        else:
            metric = Gauge(family.name, family.documentation, names, registry=registry)
        for labels in labelsets:
            child = metric.labels(*[v for _, v in labels]) if names else metric
            if isinstance(child, Histogram):
                child.observe(0.01)
            elif isinstance(child, Counter):
                child.inc()
            else:
                child.set(1)
        series += sum(1 for _ in family.samples)
    return registry, series


def measure(render: Callable[[], bytes], repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        render()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return min(times), statistics.median(times)


def scenario(names: int, repeats: int) -> float:
    components = build_components(names)
    ours = CollectorRegistry()
    collector = CoordinationMetricsExporter(components, registry=ours).collector
    summary = CollectorRegistry()
    CoordinationMetricsExporter(components, registry=summary, durations="summary")
    text = generate_latest(ours).decode()
    plain, series = plain_registry_like(text)
    rows = [
        ("coordination scrape (histograms)", measure(lambda: generate_latest(ours), repeats)),
        ("  of which reading the components", measure(lambda: list(collector.collect()), repeats)),
        ("coordination scrape (summaries)", measure(lambda: generate_latest(summary), repeats)),
        ("plain prometheus_client, same series", measure(lambda: generate_latest(plain), repeats)),
    ]
    print(f"\n{CALLS} calls over {names} operation names: {series} series, {repeats} scrapes")
    print(f"{'':38} {'best ms':>9} {'median ms':>10} {'vs plain':>9}")
    plain_median = rows[-1][1][1]
    for label, (best, median) in rows:
        print(f"{label:38} {best:9.2f} {median:10.2f} {median / plain_median:8.2f}x")
    return rows[0][1][1]


def main(argv: list[str]) -> int:
    repeats = 5 if "--quick" in argv else 20
    disable_created_metrics()  # the plain registry would otherwise add a _created per series
    typical = scenario(20, repeats * 5)
    scenario(1_000, repeats)
    verdict = "OK" if typical < 100 else "OVER BUDGET"
    print(
        f"\ntarget: a scrape of {CALLS} operations (20 names) well under 100 ms: "
        f"{typical:.2f} ms median -> {verdict}"
    )
    return 0 if typical < 100 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
