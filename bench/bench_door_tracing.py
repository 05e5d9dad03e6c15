"""Tracing at the doors: what a request's SERVER span and an event's CONSUMER span cost.

Run:  .venv/bin/python bench/bench_door_tracing.py [--quick] [--baseline REV]

Per request, a hello-world WSGI app called the way a server calls it (fresh environ with a
``traceparent`` header, body iterated and closed):

1. the bare app;
2. behind ``CoordinationMiddleware`` with no tracer provider; with ``--baseline REV``
   its overhead over the bare app beside the same middleware's of that revision
   (``git archive``d): four long-lived workers per tree taking turns for 16 rounds, each
   worker's best round, the median difference and its bootstrap 95 % interval (as
   ``bench_closed_path.py`` does) — what the doors' tracing adds when it is off;
3. the middleware with the SDK's ``ALWAYS_OFF`` sampler (a provider, nothing recorded);
4. the middleware with the SDK sampling every request into an in-memory exporter;
5. the peer: OpenTelemetry's own ``tracer.start_as_current_span(kind=SERVER)`` around the
   bare app, continuing the header with ``propagate.extract`` (what a hand-written
   OpenTelemetry WSGI middleware costs), sampled into the same exporter.

Per event, ``CoordinationEventProcessor.process_message`` (no journal: the broker path)
with no provider and with the SDK sampling its CONSUMER span.

Each figure is the best of several short loops in one worker; rows of one table come from
the same run. Compare ratios, not absolute times (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import timeit
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/hello",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_HOST": "localhost:8000",
    "HTTP_USER_AGENT": "bench",
    "HTTP_ACCEPT": "*/*",
    "HTTP_TRACEPARENT": TRACEPARENT,
    "wsgi.url_scheme": "http",
}


def hello_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def _start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    return None


def serve_once(app: Any) -> None:
    environ = dict(ENVIRON)
    environ["wsgi.input"] = io.BytesIO(b"")
    body = app(environ, _start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()


def best_ns(func: Callable[[], Any], number: int, repeat: int) -> float:
    return min(timeit.Timer(func).repeat(repeat=repeat, number=number)) / number * 1e9


def otel_peer(tracer: Any) -> Any:
    """A hand-written OpenTelemetry WSGI middleware: extract, SERVER span, attributes."""
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        parent = propagate.extract({"traceparent": environ.get("HTTP_TRACEPARENT", "")})
        with tracer.start_as_current_span(
            environ["REQUEST_METHOD"],
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": environ["REQUEST_METHOD"]},
        ) as span:
            statuses: list[str] = []

            def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
                statuses.append(status)
                return start_response(status, headers)

            body = list(hello_app(environ, capture))
            span.set_attribute("http.response.status_code", int(statuses[0][:3]))
            return body

    return middleware


def worker(rows: list[str], quick: bool) -> dict[str, float]:
    """Each named row's best ns per call, in this process (its own ``src`` on the path)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from coordination._tracing import use_tracer_provider
    from coordination.integration import CoordinationEventProcessor, CoordinationMiddleware

    number, repeat = (500, 3) if quick else (2000, 7)
    exporter = InMemorySpanExporter()
    sampled = TracerProvider()
    sampled.add_span_processor(SimpleSpanProcessor(exporter))
    off = TracerProvider(sampler=ALWAYS_OFF)
    wrapped = CoordinationMiddleware(hello_app, config={})
    processor = CoordinationEventProcessor(
        lambda event, kind: None,
        dead_letter_path=":memory:",
        validate_structure=False,
        error_config={"max_retries": 0},
    )
    peer = otel_peer(sampled.get_tracer("peer"))

    def sampled_row(func: Callable[[], Any]) -> float:
        with use_tracer_provider(sampled):
            figure = best_ns(lambda: (func(), exporter.clear()), number, repeat)
        return figure - best_ns(exporter.clear, number, repeat)  # the clearing is not ours

    measures: dict[str, Callable[[], float]] = {
        "bare": lambda: best_ns(lambda: serve_once(hello_app), number, repeat),
        "off": lambda: best_ns(lambda: serve_once(wrapped), number, repeat),
        "always_off": lambda: _with(
            off, lambda: best_ns(lambda: serve_once(wrapped), number, repeat)
        ),
        "sampled": lambda: sampled_row(lambda: serve_once(wrapped)),
        "peer": lambda: sampled_row(lambda: serve_once(peer)),
        "event_off": lambda: best_ns(
            lambda: processor.process_message({}, "orders"), number, repeat
        ),
        "event_sampled": lambda: sampled_row(lambda: processor.process_message({}, "orders")),
    }
    try:
        return {row: measures[row]() for row in rows}
    finally:
        processor.close()


def _with(provider: Any, measure: Callable[[], float]) -> float:
    from coordination._tracing import use_tracer_provider

    with use_tracer_provider(provider):
        return measure()


def delta_worker(n: int, repeats: int) -> None:
    """The middleware's overhead over the bare app, no provider: once per line read, the
    best of ``repeats`` short loops of each (a collection inside a loop is noise)."""
    import gc
    import time

    from coordination.integration import CoordinationMiddleware

    wrapped = CoordinationMiddleware(hello_app, config={})

    def loop(app: Any) -> float:
        start = time.perf_counter_ns()
        for _ in range(n):
            serve_once(app)
        return (time.perf_counter_ns() - start) / n

    for _ in range(3):  # warm: route shapes, status lines, first-call caches
        loop(wrapped)
    print(json.dumps({"ready": True}), flush=True)
    for _ in sys.stdin:
        gc.disable()
        try:
            bare = min(loop(hello_app) for _ in range(repeats))
            off = min(loop(wrapped) for _ in range(repeats))
        finally:
            gc.enable()
        print(json.dumps({"overhead": off - bare}), flush=True)


class DeltaWorker:
    """A ``delta_worker`` process of one tree, alive for the whole run."""

    def __init__(self, src: Path, n: int, repeats: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(src)}
        command = [sys.executable, __file__, "--delta-worker", f"{n},{repeats}"]
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.figures: list[float] = []
        self._read()

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        answer: dict[str, Any] = json.loads(self.process.stdout.readline())
        return answer

    def measure(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        self.figures.append(float(self._read()["overhead"]))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def delta(base: Path, quick: bool) -> tuple[float, float, float, float]:
    """(this tree's overhead, the baseline's, their median difference, its noise): every
    worker alive for the whole run, each round visiting all of them in alternating order,
    each worker's best round kept (the one a noisy neighbour did not disturb)."""
    from bench_closed_path import median_difference

    pairs, rounds = (2, 4) if quick else (4, 16)
    workers: dict[str, list[DeltaWorker]] = {"now": [], "before": []}
    try:
        for _ in range(pairs):
            workers["now"].append(DeltaWorker(ROOT / "src", 1000, 5))
            workers["before"].append(DeltaWorker(base, 1000, 5))
        for index in range(rounds):
            for pair, twins in enumerate(zip(workers["now"], workers["before"], strict=True)):
                for one in twins if (pair + index) % 2 == 0 else twins[::-1]:
                    one.measure()
    finally:
        for one in workers["now"] + workers["before"]:
            one.close()
    now = [min(w.figures) for w in workers["now"]]
    before = [min(w.figures) for w in workers["before"]]
    import statistics

    difference, noise = median_difference(now, before)
    return statistics.median(now), statistics.median(before), difference, noise


def run_worker(src: Path, rows: list[str], quick: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--worker", ",".join(rows)]
    if quick:
        command.append("--quick")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def baseline_src(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


ROWS = ["bare", "off", "always_off", "sampled", "peer", "event_off", "event_sampled"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--baseline", help="a revision whose middleware is measured beside")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--delta-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.delta_worker:
        n, repeats = (int(part) for part in args.delta_worker.split(","))
        delta_worker(n, repeats)
        return
    if args.worker:
        print(json.dumps(worker(args.worker.split(","), args.quick)))
        return
    ours: dict[str, float] = run_worker(ROOT / "src", ROWS, args.quick)
    compared: tuple[float, float, float, float] | None = None
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            compared = delta(baseline_src(args.baseline, Path(tmp)), args.quick)
    bare = ours["bare"]
    print("per request, WSGI hello app (traceparent sent)")
    lines = [
        ("bare app", ours["bare"]),
        ("middleware, no tracer provider", ours["off"]),
        ("middleware, SDK with ALWAYS_OFF sampler", ours["always_off"]),
        ("middleware, SDK sampling to an in-memory exporter", ours["sampled"]),
        ("peer: OpenTelemetry start_as_current_span(SERVER) around the app", ours["peer"]),
    ]
    for label, value in lines:
        print(f"  {label:<66} {value / 1000:7.2f} µs  (+{(value - bare) / 1000:5.2f} µs)")
    if compared is not None:
        now, before, difference, noise = compared
        print(
            f"  overhead with no provider, this tree {now:.0f} ns, at {args.baseline} "
            f"{before:.0f} ns: {difference:+.0f} ns ± {noise:.0f} (bootstrap 95 %)"
        )
    print("per event, process_message (no journal)")
    print(f"  no tracer provider                      {ours['event_off'] / 1000:7.2f} µs")
    print(
        f"  SDK sampling its CONSUMER span          {ours['event_sampled'] / 1000:7.2f} µs"
        f"  (+{(ours['event_sampled'] - ours['event_off']) / 1000:.2f} µs)"
    )


if __name__ == "__main__":
    main()
