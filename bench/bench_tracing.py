"""What a span per protected call costs, beside a bare call and OpenTelemetry's own span.

    .venv/bin/python bench/bench_tracing.py [--quick] [--no-delta]
    .venv/bin/python -m bench tracing [--quick]

Rows, ns per call in one process (the best of several short loops; ``added`` is over the
bare call measured the same way, sync or async):

- the bare call (``work()``, ``await awork()``);
- ``handle_errors`` (the breaker's guard) and the pipeline (a bulkhead never full:
  the whole pipeline's path) with **no provider**: before OpenTelemetry is imported, and
  after it is imported with no provider set (the wrappers are untouched either way);
- the same with the SDK's ``TracerProvider(sampler=ALWAYS_OFF)`` given to the library: it
  records nothing, so the library makes no span (the target: at most 1 µs added);
- the same with the SDK **sampling** every span into an ``InMemorySpanExporter``
  (``SimpleSpanProcessor``: the span is exported as it ends, inside the call);
- the peers, OpenTelemetry's own ``tracer.start_as_current_span`` around the bare call,
  with ``ALWAYS_OFF`` and sampling into the same exporter (and, sync, with the five
  attributes a span of ours carries): what instrumenting the call by hand costs.

Then, unless ``--no-delta``, the pipeline with no provider **against the tree before
tracing** (``BEFORE``, extracted with ``git archive``) with ``bench_closed_path.py``'s
machinery: worker processes per tree taking turns, the median difference and its noise.
The wrappers are the same closures as before; the delta is what remains of the change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# main before a span per protected call: the landed tree issues 17 and 18 were built on
# (their first commits, c196b0f among them, did not land and are not in the history)
BEFORE = "5d1c5f4"


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def best(call: Callable[[], Any], n: int, repeats: int) -> float:
    """ns per call: the best of ``repeats`` loops of ``n`` calls."""
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in repeat(None, n):
            call()
        fastest = min(fastest, (time.perf_counter_ns() - start) / n)
    return fastest


async def abest(call: Callable[[], Awaitable[Any]], n: int, repeats: int) -> float:
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in repeat(None, n):
            await call()
        fastest = min(fastest, (time.perf_counter_ns() - start) / n)
    return fastest


Condition = Callable[[], contextlib.AbstractContextManager[Any]]


def measure(
    conditions: dict[str, Condition],
    rows: dict[str, tuple[Callable[[], Any], bool]],
    n: int,
    repeats: int,
    rounds: int,
) -> dict[tuple[str, str], float]:
    """Every row under every condition, round after round (each condition entered once a
    round, in turn), the best kept: a shared machine's slow moments hit them all alike."""
    loop = asyncio.new_event_loop()
    found: dict[tuple[str, str], float] = {}
    for _ in range(rounds):
        for condition, enter in conditions.items():
            with enter():
                gc.disable()  # a collection inside a timed loop would be noise
                try:
                    for label, (call, asynchronous) in rows.items():
                        if asynchronous:
                            ns = loop.run_until_complete(abest(call, n, repeats))
                        else:
                            ns = best(call, n, repeats)
                        key = (condition, label)
                        found[key] = min(found.get(key, float("inf")), ns)
                finally:
                    gc.enable()
    loop.close()
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--no-delta", action="store_true", help="skip the run against BEFORE")
    args, _ = parser.parse_known_args(argv)
    n, repeats, rounds = (500, 3, 3) if args.quick else (2_000, 3, 9)

    from coordination import _tracing
    from coordination.error_handling import CoordinationErrorHandler

    handler = CoordinationErrorHandler({"max_retries": 3})
    rows: dict[str, tuple[Callable[[], Any], bool]] = {
        "bare call": (work, False),
        "handle_errors": (handler.decorate(work, operation_name="guard"), False),
        "pipeline": (
            handler.decorate(work, max_concurrent=1_000_000, operation_name="pipeline"),
            False,
        ),
        "async bare call": (awork, True),
        "async handle_errors": (handler.decorate(awork, operation_name="aguard"), True),
        "async pipeline": (
            handler.decorate(awork, max_concurrent=1_000_000, operation_name="apipeline"),
            True,
        ),
    }
    assert "opentelemetry" not in sys.modules
    # before OpenTelemetry is imported: measured first (it cannot be undone in a process)
    found = measure({"not imported": contextlib.nullcontext}, rows, n, repeats, rounds)

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    off = TracerProvider(sampler=ALWAYS_OFF)
    exporter = InMemorySpanExporter()
    sampled = TracerProvider()
    sampled.add_span_processor(SimpleSpanProcessor(exporter))
    off_tracer = off.get_tracer("peer")
    sampled_tracer = sampled.get_tracer("peer")

    def otel_off() -> int:
        with off_tracer.start_as_current_span("work"):
            return work()

    def otel_sampled() -> int:
        with sampled_tracer.start_as_current_span("work"):
            return work()

    # the same five attributes ours carries: what the SDK charges for them
    five = {"a.operation": "guard", "a.severity": "MEDIUM"}

    def otel_attributes() -> int:
        with sampled_tracer.start_as_current_span("work", attributes=five) as span:
            result = work()
            span.set_attributes({"a.attempts": 1, "a.outcome": "success", "a.state": "CLOSED"})
            return result

    async def aotel_off() -> int:
        with off_tracer.start_as_current_span("work"):
            return await awork()

    async def aotel_sampled() -> int:
        with sampled_tracer.start_as_current_span("work"):
            return await awork()

    @contextlib.contextmanager
    def sampling() -> Iterator[None]:
        with _tracing.use_tracer_provider(sampled):
            yield
        exporter.clear()  # the exporter keeps every span: not kept across rounds

    conditions: dict[str, Condition] = {
        "no provider": contextlib.nullcontext,
        "ALWAYS_OFF": lambda: _tracing.use_tracer_provider(off),
        "sampling": sampling,
    }
    found.update(measure(conditions, rows, n, repeats, rounds))
    peers: dict[str, tuple[Callable[[], Any], bool]] = {
        "bare call": (work, False),
        "async bare call": (awork, True),
        "OpenTelemetry's span, ALWAYS_OFF": (otel_off, False),
        "OpenTelemetry's span, sampling": (otel_sampled, False),
        "OpenTelemetry's span, sampling, 5 attributes": (otel_attributes, False),
        "async OpenTelemetry's span, ALWAYS_OFF": (aotel_off, True),
        "async OpenTelemetry's span, sampling": (aotel_sampled, True),
    }
    found.update(measure({"peer": sampling}, peers, n, repeats, rounds))

    print("A span per protected call: ns per call (best of short loops, conditions taking")
    print("turns), and added over the bare call. handle_errors: the closed breaker's guard;")
    print("pipeline: a bulkhead never full (the whole pipeline's path).")
    for prefix in ("", "async "):
        bare = min(value for (_, label), value in found.items() if label == f"{prefix}bare call")
        print(f"\n  {prefix or 'sync '}{'':52s} {'ns/call':>9s} {'added':>9s}")
        print(f"  {'bare call':57s} {bare:9.0f} {0:9.0f}")
        for kind in ("handle_errors", "pipeline"):
            for condition, title in (
                ("not imported", "no provider, OpenTelemetry not imported"),
                ("no provider", "no provider, OpenTelemetry imported"),
                ("ALWAYS_OFF", "SDK, ALWAYS_OFF sampler"),
                ("sampling", "SDK sampling, in-memory exporter"),
            ):
                ns = found[(condition, f"{prefix}{kind}")]
                print(f"  {kind + ', ' + title:57s} {ns:9.0f} {ns - bare:9.0f}")
        for peer in ("ALWAYS_OFF", "sampling", "sampling, 5 attributes"):
            key = ("peer", f"{prefix}OpenTelemetry's span, {peer}")
            if key not in found:
                continue
            ns = found[key]
            label = f"peer: start_as_current_span, {peer}"
            print(f"  {label:57s} {ns:9.0f} {ns - bare:9.0f}")
    worst = max(
        found[("ALWAYS_OFF", f"{prefix}{kind}")] - found[("no provider", f"{prefix}{kind}")]
        for prefix in ("", "async ")
        for kind in ("handle_errors", "pipeline")
    )
    with _tracing.use_tracer_provider(off):
        switched = _tracing._state.calls_on
    print(f"\nALWAYS_OFF over no provider, the worst row: {worst:+.0f} ns (target <= 1000 ns);")
    print(f"the wrappers switched to their traced path under ALWAYS_OFF: {switched}")
    print("(not switched: the same closures run, so any difference here is this machine's noise)")

    if args.no_delta:
        return 0
    print(f"\nThe pipeline with no provider, this tree against {BEFORE} (before tracing):")
    import bench_closed_path

    return bench_closed_path.main(["--baseline", BEFORE, *(["--quick"] if args.quick else [])])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
