"""``coordination demo``: a failing dependency under coordination, watched live.

The run, in ``--duration`` seconds (20 by default): the inventory service behind the
orders route is healthy, then degraded (errors, slower), then down, then recovered. The
error handler retries the errors away while it is degraded; its breaker opens in the
outage (the app answers 503 at once instead of waiting on a dead service), goes half-open
to try again, and closes once the service is back. Validation rejects the malformed orders
throughout. At the end: the health document, a metrics excerpt and a summary table.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from .._config import CoordinationConfig
from .._defaults import process_config
from .._errors import ConfigError
from ..error_handling import BreakerTransition
from ..observability import CoordinationHealthChecker, CoordinationMetricsExporter, StatusPage
from ..testing import FaultInjector, outage_scenario
from ._app import DOWNSTREAM, DemoService, build_service, downstream_policy
from ._console import Console, format_table, metrics_excerpt, status_line
from ._load import LoadDriver

__all__ = ["demo_config", "run_demo"]

_TICK = 0.2
_METRIC_FAMILIES = (
    "coordination_circuit_breaker",
    "coordination_retries",
    "coordination_operations_total",
    "coordination_http_requests_total",
    "coordination_validations_total",
)
_EXCERPT_LINES = 32  # enough for every family above, the HTTP answers by status included


def demo_config(**overrides: Any) -> CoordinationConfig:
    """The process's settings (file and environment) with the demo's endpoints exposed.

    These configure the process-wide components that every door shares; the inventory
    call's retries and breaker are its own, on its decorator (``downstream_policy``).
    """
    return process_config().replace(expose_endpoints=True, **overrides)


def _check_args(args: argparse.Namespace) -> None:
    if not 1 <= args.duration <= 3600:
        raise ConfigError(
            f"--duration must be between 1 and 3600 seconds, got {args.duration:g}",
            field="duration",
            value=args.duration,
            source="command line",
        )
    if not 0 <= args.port <= 65535:
        raise ConfigError(
            f"--port must be between 0 and 65535, got {args.port}",
            field="port",
            value=args.port,
            source="command line",
        )


class _Story:
    """Collects what happened (breaker moves, phase changes) for the live view and summary."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._pending: collections.deque[tuple[float, str]] = collections.deque(maxlen=200)
        self.transitions: list[tuple[float, str, str]] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def note(self, text: str, at: float | None = None) -> None:
        with self._lock:
            self._pending.append((self.elapsed() if at is None else at, text))

    def on_transition(self, moved: BreakerTransition) -> None:
        with self._lock:
            self.transitions.append((self.elapsed(), moved.old.value, moved.new.value))
        self.note(f"breaker {moved.name}: {moved.old.value} → {moved.new.value} ({moved.reason})")

    def drain(self) -> list[tuple[float, str]]:
        with self._lock:
            items = sorted(self._pending)
            self._pending.clear()
        return items


@contextlib.contextmanager
def _quiet_library_logs() -> Iterator[None]:
    """Keep the library's per-call warnings off the screen: the demo shows its own view."""
    logger = logging.getLogger("coordination")
    quiet = logging.NullHandler()
    propagate = logger.propagate
    logger.addHandler(quiet)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(quiet)
        logger.propagate = propagate


def _serve(service: DemoService, port: int) -> BaseWSGIServer:
    # Werkzeug logs every request at INFO; the demo shows its own view instead.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", port, service.flask_app, threaded=True)
    threading.Thread(target=server.serve_forever, name="demo-server", daemon=True).start()
    return server


def _describe_phase(name: str, faults: FaultInjector) -> str:
    phase = next(p for p in faults.phases if p.name == name)
    if phase.outage:
        return f"inventory service: {name} — every call fails"
    return (
        f"inventory service: {name} — {phase.error_rate:.0%} errors, "
        f"{phase.latency * 1000:.0f}–{(phase.latency + phase.latency_jitter) * 1000:.0f} ms"
    )


def run_demo(args: argparse.Namespace) -> int:
    """The ``coordination demo`` command; returns the exit status."""
    _check_args(args)
    if args.redis:
        from ._scaleout import run_scaleout

        return run_scaleout(args)
    with _quiet_library_logs():
        return _run_single(args, Console())


def _run_single(args: argparse.Namespace, console: Console) -> int:
    story = _Story()
    config = demo_config()
    policy = downstream_policy(args.duration)
    # Degraded: errors the retries absorb, almost never five in a row, so the breaker holds.
    faults = FaultInjector(outage_scenario(args.duration, degraded_error_rate=0.1), seed=9)
    service = build_service(faults, duration=args.duration, middleware_config=config)
    service.error_handler.add_transition_hook(story.on_transition)
    # No components named: the page reads the process's set, as the middleware does.
    page = StatusPage(title="coordination demo")
    server = _serve(service, args.port)
    base = f"http://127.0.0.1:{server.port}"
    console.say(f"coordination demo — the spec's Flask app under CoordinationMiddleware at {base}")
    console.say(
        f"  status page {base}{config.status_page_path}   metrics {base}{config.metrics_path}"
        f"   health {base}{config.health_path}"
    )
    console.say(
        "  POST /api/orders reserves stock from an inventory service that fails on schedule; "
        f"retries: {policy['max_retries']}, breaker opens after "
        f"{policy['circuit_breaker_threshold']} failures, tries again after "
        f"{policy['circuit_breaker_timeout']:g}s"
    )
    console.say(
        "  one set of components for the process: the decorated inventory call, the "
        "middleware and its endpoints share them"
    )
    console.say()
    try:
        _drive(console, story, service, page, args.duration, base)
        _conclude(console, story, page, config)
        if args.serve:
            _keep_serving(console, base, config, server.port)
    finally:
        server.shutdown()
        server.server_close()
        service.coordination.close()
    return 0


def _keep_serving(console: Console, base: str, config: CoordinationConfig, port: int) -> None:
    """Serve until Ctrl-C, with a trickle of traffic so the page's charts stay alive."""
    console.say(
        f"\nserving on {base} — status page {base}{config.status_page_path}, "
        f"metrics {base}{config.metrics_path}; Ctrl-C stops"
    )
    trickle = LoadDriver(port, duration=86_400.0, rate=5.0, workers=1)
    trickle.start()
    try:
        console.wait_for_ctrl_c()
    finally:
        trickle.stop()


def _drive(
    console: Console,
    story: _Story,
    service: DemoService,
    page: StatusPage,
    duration: float,
    base: str,
) -> None:
    service.monitor.start_monitoring()
    service.faults.restart()
    story.started = time.monotonic()
    load = LoadDriver(int(base.rsplit(":", 1)[1]), duration=duration)
    probed = False
    load.start()
    phase = ""
    # Phase changes are noticed a tick late; they are shown at the time they happened.
    starts, at = {}, 0.0
    for scheduled in service.faults.phases:
        starts[scheduled.name] = at
        at += scheduled.duration
    try:
        while True:
            elapsed = story.elapsed()
            current = service.faults.current_phase().name
            if current != phase:
                phase = current
                story.note(_describe_phase(current, service.faults), at=starts[current])
            if not probed and _breaker_open(service):
                # What a client, an orchestrator and a scraper see while the decorated
                # call's breaker is open: the middleware's answer to an order, and its own
                # endpoints, reading the same components.
                probed = True
                for text in _probe_endpoints(base, service.middleware.config):
                    story.note(text)
            for at, text in story.drain():
                console.event(at, text)
            finished = load.done or elapsed >= duration + 2
            console.status(
                min(elapsed, duration),
                duration,
                status_line(page.snapshot(), phase, load.snapshot().by_status),
                force=finished,
            )
            if finished:
                break
            time.sleep(_TICK)
    finally:
        load.stop()
        console.finish_status()
    totals = load.snapshot()
    codes = ", ".join(f"{code}: {n}" for code, n in sorted(totals.by_status.items()))
    console.say(f"\nclients sent {totals.sent} requests — responses {codes}")


def _breaker_open(service: DemoService) -> bool:
    state = service.error_handler.circuit_states().get(DOWNSTREAM)
    return state is not None and state.value == "OPEN"


def _probe_order(base: str) -> str:
    """One order while the breaker is open: the middleware's answer, as a line."""
    order = urllib.request.Request(
        base + "/api/orders",
        data=json.dumps({"item": "apple", "quantity": 1}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(order, timeout=5) as response:
            code, headers = response.status, response.headers
    except urllib.error.HTTPError as refused:  # 503 is the answer we expect here
        code, headers = refused.code, refused.headers
        refused.read()
    except OSError as exc:
        return f"client POST /api/orders: unreachable ({exc})"
    retry_after = headers.get("Retry-After")
    waits = f", Retry-After: {retry_after}" if retry_after is not None else ""
    return (
        f"client POST /api/orders → {code} {headers.get('Content-Type', '?')}{waits} "
        "(the open breaker's CircuitOpenError, answered by the middleware)"
    )


def _probe_endpoints(base: str, config: CoordinationConfig) -> list[str]:
    """One order, then one GET of the middleware's readiness probe and metrics, as a
    line each."""
    ready = f"{config.health_path.rstrip('/')}/ready"
    lines = [_probe_order(base)]
    try:
        with urllib.request.urlopen(base + ready, timeout=5) as response:
            code, body = response.status, response.read()
    except urllib.error.HTTPError as refused:  # 503 is the answer we expect here
        code, body = refused.code, refused.read()
    except OSError as exc:
        return [f"middleware GET {ready}: unreachable ({exc})"]
    status = json.loads(body or b"{}").get("status", "?")
    lines.append(f"middleware GET {ready} → {code} {status!r}")
    try:
        with urllib.request.urlopen(base + config.metrics_path, timeout=5) as response:
            text = response.read().decode("utf-8")
    except OSError as exc:
        return [*lines, f"middleware GET {config.metrics_path}: unreachable ({exc})"]
    for line in text.splitlines():
        if line.startswith("coordination_circuit_breaker_state{") and DOWNSTREAM in line:
            lines.append(f"middleware GET {config.metrics_path} → {line}  (2 = OPEN)")
    return lines


def _conclude(
    console: Console,
    story: _Story,
    page: StatusPage,
    config: CoordinationConfig,
) -> None:
    console.say("\nhealth document (CoordinationHealthChecker().check_health()):")
    # No components named: the process's set, which every door of the demo used.
    console.json(CoordinationHealthChecker(config=config).check_health())
    exposition = CoordinationMetricsExporter(config=config).export_metrics()
    console.say(f"\nmetrics excerpt (full text at {config.metrics_path}):")
    console.say(metrics_excerpt(exposition, _METRIC_FAMILIES, limit=_EXCERPT_LINES))
    snapshot = page.snapshot()
    rows = [
        (
            op["name"],
            op["count"],
            op["failures"],
            f"{op['error_rate']:.1%}",
            _fmt(op["p50_ms"]),
            _fmt(op["p95_ms"]),
            _fmt(op["p99_ms"]),
            op["retries"],
            op["rejections"],
            op["breaker"] or "",
        )
        for op in snapshot["operations"]
    ]
    console.say("\nsummary:")
    headers = ("operation", "calls", "errors", "error %", "p50 ms", "p95 ms", "p99 ms")
    console.say(format_table((*headers, "retries", "rejected", "breaker"), rows))
    moves = [f"{at:.1f}s {old}→{new}" for at, old, new in story.transitions]
    console.say(f"\nbreaker {DOWNSTREAM}: " + (", ".join(moves) or "never moved"))
    opened = any(new == "OPEN" for _, _, new in story.transitions)
    closed = bool(story.transitions) and story.transitions[-1][2] == "CLOSED"
    if opened and closed:
        console.say("✔ the breaker opened during the outage and closed again after recovery")
    else:
        console.say(
            "✘ the breaker did not both open and close in this run (try a longer --duration)"
        )


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"
