"""``coordination demo --redis URL``: two worker processes sharing one breaker through Redis.

Each worker process serves the same demo app on its own port, with ``redis_url`` set, so
the inventory breaker lives in Redis. The load alternates between the workers; when the
outage opens the breaker in one worker, the other rejects from its next call, and when a
trial call succeeds in either, both close. Breaker moves are reported by the worker that
saw them; the live line merges both workers' status pages. With ``--port N`` worker ``i``
listens on ``N + i`` (a Prometheus can be told where to scrape them); by default on free
ports. Their /metrics have ``coordination_redis_errors_total`` by Redis-backed component
(zero while Redis answers): the dashboard's Redis panel has data only in this mode.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from multiprocessing.synchronize import Event as EventType
from typing import Any

from ..testing import FaultInjector, outage_scenario
from ._console import Console, format_table, metrics_excerpt, status_line
from ._load import LoadDriver
from ._run import _AROUND

__all__ = ["run_scaleout"]

_WORKERS = 2
_START_TIMEOUT = 60.0


def _worker(
    index: int,
    port: int,
    redis_url: str,
    namespace: str,
    duration: float,
    ports: Any,
    events: Any,
    go: EventType,
    stop: EventType,
) -> None:
    """One server process: the demo app with its breaker state in Redis."""
    import os

    from ..error_handling import BreakerTransition
    from ._app import build_service
    from ._run import _quiet_library_logs, _serve, demo_config

    def report(moved: BreakerTransition) -> None:
        events.put((index, moved.old.value, moved.new.value, moved.reason))

    # A worker process of its own: its one set of components is configured the way a
    # deployment configures it, by the environment, before anything uses it.
    os.environ["COORDINATION_REDIS_URL"] = redis_url
    os.environ["COORDINATION_REDIS_NAMESPACE"] = namespace
    with _quiet_library_logs():
        faults = FaultInjector(outage_scenario(duration, degraded_error_rate=0.1), seed=9 + index)
        service = build_service(faults, duration=duration, middleware_config=demo_config())
        service.error_handler.add_transition_hook(report)
        handler = service.coordination
        server = _serve(service, port)
        ports.put((index, server.port))
        go.wait(_START_TIMEOUT)
        faults.restart()  # both workers' schedules start together
        stop.wait()
        server.shutdown()
        server.server_close()
        service.ledger.close()
        handler.close()


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        data: dict[str, Any] = json.load(response)
        return data


def _merge(snapshots: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The workers' status documents as one, for the live line (worst latency shown)."""
    operations: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        for op in snap["operations"]:
            merged = operations.setdefault(op["name"], {"name": op["name"]})
            for key in ("count", "failures", "retries", "rejections"):
                merged[key] = merged.get(key, 0) + op[key]
            for key in ("p50_ms", "p95_ms", "p99_ms"):
                values = [v for v in (merged.get(key), op[key]) if v is not None]
                merged[key] = max(values) if values else None
            merged["breaker"] = op["breaker"] or merged.get("breaker")
    totals = {
        key: sum(s["totals"][key] for s in snapshots)
        for key in ("requests", "failures", "retries", "rejected_by_circuit_breaker")
    }
    invalid = sum((s.get("validation") or {}).get("invalid", 0) for s in snapshots)
    return {
        "operations": list(operations.values()),
        "totals": totals,
        "validation": {"invalid": invalid},
    }


def run_scaleout(args: argparse.Namespace) -> int:
    """Run the demo on two worker processes sharing breaker state through ``args.redis``."""
    import redis

    console = Console()
    try:
        client = redis.Redis.from_url(args.redis, socket_timeout=2)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        console.say(f"coordination demo: cannot reach Redis at {args.redis}: {exc}")
        return 2
    namespace = f"coordination-demo-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    ports, events = context.Queue(), context.Queue()
    go, stop = context.Event(), context.Event()
    processes = [
        context.Process(
            target=_worker,
            args=(
                *(i, args.port + i if args.port else 0, args.redis, namespace, args.duration),
                *(ports, events, go, stop),
            ),
            name=f"demo-worker-{i}",
        )
        for i in range(_WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        bases = _wait_for_ports(ports)
        console.say(f"coordination demo with Redis at {args.redis}: {_WORKERS} worker processes")
        for i, base in enumerate(bases):
            console.say(f"  worker {i}: {base}   status page {base}/coordination")
        console.say(f"  shared breaker state under the key prefix {namespace!r}\n")
        go.set()
        transitions = _drive(console, bases, events, args.duration)
        _conclude(console, bases, transitions)
        if args.serve:
            console.say(
                f"\nserving on {', '.join(bases)} — metrics at /metrics of each; Ctrl-C stops"
            )
            console.wait_for_ctrl_c()
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()
        for key in client.scan_iter(f"{namespace}*"):
            client.delete(key)
        client.close()
    return 0


def _wait_for_ports(ports: Any) -> list[str]:
    found: dict[int, int] = {}
    deadline = time.monotonic() + _START_TIMEOUT
    while len(found) < _WORKERS:
        try:
            index, port = ports.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError("the demo's worker processes did not start in time") from None
        found[index] = port
    return [f"http://127.0.0.1:{found[i]}" for i in range(_WORKERS)]


def _drive(
    console: Console, bases: list[str], events: Any, duration: float
) -> list[tuple[float, int, str, str]]:
    started = time.monotonic()
    schedule = FaultInjector(outage_scenario(duration))  # only to name the phase shown
    load = LoadDriver([int(b.rsplit(":", 1)[1]) for b in bases], duration=duration)
    load.start()
    transitions: list[tuple[float, int, str, str]] = []
    try:
        while True:
            elapsed = time.monotonic() - started
            while True:
                try:
                    worker, old, new, reason = events.get_nowait()
                except queue.Empty:
                    break
                transitions.append((elapsed, worker, old, new))
                console.event(elapsed, f"worker {worker}: breaker {old} → {new} ({reason})")
            snapshots = [_get_json(f"{b}/coordination/status.json") for b in bases]
            finished = load.done or elapsed >= duration + 2
            phase = schedule.phase_at(elapsed).name
            line = status_line(_merge(snapshots), phase, load.snapshot().by_status)
            console.status(min(elapsed, duration), duration, line, force=finished)
            if finished:
                break
            time.sleep(0.25)
    finally:
        load.stop()
        console.finish_status()
    totals = load.snapshot()
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(totals.by_status.items()))
    console.say(f"\nclients sent {totals.sent} requests — responses {codes}")
    return transitions


def _conclude(
    console: Console, bases: list[str], transitions: list[tuple[float, int, str, str]]
) -> None:
    rows = []
    rejected_by_worker = []
    for i, base in enumerate(bases):
        snapshot = _get_json(f"{base}/coordination/status.json")
        rejected_by_worker.append(snapshot["totals"]["rejected_by_circuit_breaker"])
        for op in snapshot["operations"]:
            counts = (op["count"], op["failures"], op["retries"], op["rejections"])
            rows.append((f"worker {i}: {op['name']}", *counts, op["breaker"] or ""))
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode()
        console.say(f"\nworker {i} metrics excerpt:")
        console.say(metrics_excerpt(text, ("coordination_circuit_breaker",), 8, skip=_AROUND))
    console.say("\nsummary:")
    headers = ("operation", "calls", "errors", "retries", "rejected", "breaker")
    console.say(format_table(headers, rows))
    opened = sorted({w for _, w, _, new in transitions if new == "OPEN"})
    closed = sorted({w for _, w, old, new in transitions if old == "HALF_OPEN" and new == "CLOSED"})
    console.say(
        f"\nthe shared breaker was opened by worker(s) {opened} and closed by worker(s) "
        f"{closed}; calls rejected while open: "
        + ", ".join(f"worker {i}: {n}" for i, n in enumerate(rejected_by_worker))
    )
    if opened and closed and all(rejected_by_worker):
        console.say("✔ one breaker, shared: every worker rejected calls while it was open")
