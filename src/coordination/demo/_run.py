"""``coordination demo``: a failing dependency and an overloaded one under coordination.

The run, in ``--duration`` seconds (20 by default), has two acts of half of it each.

The first: the inventory service behind the orders route is healthy, then degraded (40 %
errors, slower), then down, then recovered. The error handler retries the errors, but
only within a retry budget (20 % of the calls), so the degraded service is not sent half
as many calls again; its breaker opens in the outage (the app answers 503 at once
instead of waiting on a dead service), goes half-open to try again, and closes once the
service is back. Validation rejects the malformed orders throughout. Around the orders: a
shipping quote under a timeout (a slow carrier's is given up), the order's event to a
ledger whose refusals are dead-lettered (in a temporary SQLite file), and sign-ups whose
welcome mails a rate limit holds to 5 a second (429 past it) -- so every panel of
``coordination dashboard`` has data from the demo alone (Redis errors: with ``--redis``).

The second: a flash sale on the pricing database, which serves 4 queries at once and
slows down quadratically past that. Shoppers' price lookups (LOW) and buyers' checkouts
(CRITICAL) share one adaptive concurrency limit: it follows the database's latency down
when the surge arrives, and the LOW calls are shed (503) so the CRITICAL ones are served.

At the end: the health document, a metrics excerpt and a summary of both acts.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import os
import tempfile
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
from ._app import (
    BROWSE,
    CHECKOUT,
    DOWNSTREAM,
    MAIL,
    MAIL_RATE,
    ORDER_PLACED,
    PRICING_GROUP,
    SHIPPING,
    SHIPPING_TIMEOUT,
    DemoService,
    build_service,
    downstream_policy,
)
from ._console import Console, format_table, metrics_excerpt, sparkline, status_line, surge_line
from ._load import LoadDriver, LoadTotals
from ._surge import CLIENT_KINDS, SurgeDriver, SurgePhase, surge_phases
from ._watch import SurgeTrace, budget_held, group_reading

__all__ = ["demo_config", "run_demo"]

_TICK = 0.2
_METRIC_FAMILIES = (
    "coordination_circuit_breaker",
    "coordination_retries",
    "coordination_retry_budget",
    "coordination_concurrency",
    "coordination_operations_total",
    "coordination_http_requests_total",
    "coordination_validations_total",
)
# The operations around the orders (the event processor's is named after the event type)
# show in the excerpt only by what they are there for: a timeout, a rate limit, dead letters.
_AROUND = (SHIPPING, MAIL, f"event_{ORDER_PLACED}")
_AROUND_FAMILIES = (
    "coordination_timeouts_total",
    "coordination_rate_limited_total",
    "coordination_dead_letter",
)
_EXCERPT_LINES = 56  # every family above: the HTTP answers by status and the dead letters included


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
    # With --redis, two workers listen on --port and the next one.
    highest = 65534 if args.redis and args.port else 65535
    if not 0 <= args.port <= highest:
        raise ConfigError(
            f"--port must be between 0 and {highest}, got {args.port}",
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


def _acts(duration: float) -> tuple[float, float]:
    """The seconds of each act: half of the run each."""
    return duration / 2, duration / 2


def _run_single(args: argparse.Namespace, console: Console) -> int:
    story = _Story()
    config = demo_config()
    first, second = _acts(args.duration)
    policy = downstream_policy(first)
    # Degraded: 40 % errors, which retries would answer with over half as many calls
    # again; the budget holds them to a fifth. Twelve in a row (the breaker's threshold)
    # almost never happen there: the outage opens the breaker, not the degraded phase.
    faults = FaultInjector(outage_scenario(first, degraded_error_rate=0.4), seed=9)
    # The ledger's dead letters live as long as the run (and its --serve).
    letters = tempfile.TemporaryDirectory(prefix="coordination-demo-", ignore_cleanup_errors=True)
    dead_letter_path = os.path.join(letters.name, "dead-letters.sqlite3")
    service = build_service(
        faults, duration=first, middleware_config=config, dead_letter_path=dead_letter_path
    )
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
        "  one set of components for the process: the decorated calls, the middleware and "
        "its endpoints share them"
    )
    console.say()
    console.say(
        f"act 1 ({first:g}s): POST /api/orders reserves stock from an inventory service that "
        f"fails on schedule; retries: {policy['max_retries']}, within a budget of "
        f"{policy['retry_budget']:.0%} of the calls of the last {policy['retry_budget_window']:g}s"
        f"; the breaker opens after {policy['circuit_breaker_threshold']} failures in a row, "
        f"tries again after {policy['circuit_breaker_timeout']:g}s"
    )
    console.say(
        f"  around each order: {SHIPPING} with a timeout of {SHIPPING_TIMEOUT * 1000:.0f} ms, "
        f"and an {ORDER_PLACED} event to the ledger (an event processor: what it refuses is "
        f"dead-lettered in {dead_letter_path}); POST /api/users mails through {MAIL}, "
        f"rate_limit={MAIL_RATE!r}"
    )
    try:
        totals = _drive(console, story, service, page, first, base)
        console.say()
        console.say(
            f"act 2 ({second:g}s): a flash sale on the pricing database (serves "
            f"{service.pricing.capacity} queries at once in "
            f"{service.pricing.base_latency * 1000:.0f} ms, slower past that); "
            f"GET /api/prices ({BROWSE}, LOW) and POST /api/checkout ({CHECKOUT}, CRITICAL) "
            f"share one adaptive limit, concurrency_group={PRICING_GROUP!r}"
        )
        trace = _drive_surge(console, story, service, second, server.port)
        _conclude(console, story, page, config, service, totals, trace)
        if args.serve:
            _keep_serving(console, base, config, server.port)
    finally:
        server.shutdown()
        server.server_close()
        service.ledger.close()
        service.coordination.close()
        letters.cleanup()
    return 0


def _keep_serving(console: Console, base: str, config: CoordinationConfig, port: int) -> None:
    """Serve until Ctrl-C, with a trickle of traffic (orders, prices and checkouts) so the
    page's charts and its limit stay alive."""
    trickle = LoadDriver(port, duration=86_400.0, rate=5.0, workers=1)
    shoppers = SurgeDriver(
        port, [SurgePhase("trickle", 86_400.0, low_clients=1, critical_clients=1)], think=0.5
    )
    try:
        trickle.start()
        shoppers.start()
        # Said once the traffic runs: from here on Ctrl-C lands in wait_for_ctrl_c.
        console.say(
            f"\nserving on {base} — status page {base}{config.status_page_path}, "
            f"metrics {base}{config.metrics_path}; Ctrl-C stops"
        )
        console.wait_for_ctrl_c()
    finally:
        trickle.stop()
        shoppers.stop()


def _drive(
    console: Console,
    story: _Story,
    service: DemoService,
    page: StatusPage,
    duration: float,
    base: str,
) -> LoadTotals:
    service.monitor.start_monitoring()
    service.faults.restart()
    story.started = time.monotonic()
    load = LoadDriver(int(base.rsplit(":", 1)[1]), duration=duration)
    probed = False
    load.start()
    phase = ""
    budget_spent = False
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
            held = budget_held(service.error_handler, DOWNSTREAM)
            if held and not budget_spent:
                budget_spent = True
                story.note(
                    f"retry budget of {DOWNSTREAM} spent: a failure past it is answered at "
                    "once instead of retried (the service is not sent more calls)"
                )
            for at, text in story.drain():
                console.event(at, text)
            finished = load.done or elapsed >= duration + 2
            console.status(
                min(elapsed, duration),
                duration,
                status_line(page.snapshot(), phase, load.snapshot().by_status, held),
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
    return totals


def _describe_surge(phase: SurgePhase) -> str:
    backup = f", a backup leaves it {phase.capacity} queries at once" if phase.capacity < 4 else ""
    return (
        f"pricing database: {phase.name} — {phase.low_clients} shoppers (LOW) and "
        f"{phase.critical_clients} buyers (CRITICAL) at once{backup}"
    )


def _drive_surge(
    console: Console, story: _Story, service: DemoService, duration: float, port: int
) -> SurgeTrace:
    """The second act: the surge driven, the limit and the shedding watched."""
    load = SurgeDriver(port, surge_phases(duration))
    trace = SurgeTrace()
    starts = load.phase_starts()
    story.started = time.monotonic()
    load.start()
    phase = ""
    try:
        while True:
            elapsed = story.elapsed()
            current = load.phase_at(elapsed)
            reading = group_reading(service.error_handler, PRICING_GROUP)
            database = service.pricing
            latency_ms = database.latency_at(database.in_flight) * 1000
            trace.add(elapsed, current.name, reading, latency_ms)
            if current.name != phase:
                phase = current.name
                service.pricing.capacity = current.capacity
                story.note(_describe_surge(current), at=starts[current.name])
            for text in trace.news():
                story.note(text)
            for at, text in story.drain():
                console.event(at, text)
            finished = load.done or elapsed >= duration + 2
            tallies = load.snapshot()
            console.status(
                min(elapsed, duration),
                duration,
                surge_line(
                    current.name,
                    {kind: current.clients(kind) for kind in CLIENT_KINDS},
                    None if reading is None else reading.limit,
                    0 if reading is None else reading.in_flight,
                    latency_ms,
                    {kind: tallies[kind].shed for kind in CLIENT_KINDS},
                    {kind: tallies[kind].served_count for kind in CLIENT_KINDS},
                ),
                force=finished,
            )
            if finished:
                break
            time.sleep(_TICK)
    finally:
        load.stop()
        service.pricing.capacity = surge_phases(duration)[-1].capacity
        console.finish_status()
    trace.clients = load.snapshot()
    sent = ", ".join(
        f"{kind} {tally.sent} (served {tally.served_count}, shed {tally.shed})"
        for kind, tally in trace.clients.items()
    )
    console.say(f"\nclients sent {sent}")
    return trace


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
    service: DemoService,
    totals: LoadTotals,
    trace: SurgeTrace,
) -> None:
    console.say("\nhealth document (CoordinationHealthChecker().check_health()):")
    # No components named: the process's set, which every door of the demo used.
    console.json(CoordinationHealthChecker(config=config).check_health())
    exposition = CoordinationMetricsExporter(config=config).export_metrics()
    console.say(f"\nmetrics excerpt (full text at {config.metrics_path}):")
    console.say(
        metrics_excerpt(
            exposition,
            (*_METRIC_FAMILIES, *_AROUND_FAMILIES),
            _EXCERPT_LINES,
            skip=_AROUND,
            keep=_AROUND_FAMILIES,
        )
    )
    snapshot = page.snapshot()
    handled = service.error_handler.snapshot().operations
    rows = []
    for op in snapshot["operations"]:
        counts = handled.get(op["name"])
        rows.append(
            (
                op["name"],
                op["count"],
                op["failures"],
                f"{op['error_rate']:.1%}",
                _fmt(op["p50_ms"]),
                _fmt(op["p95_ms"]),
                _fmt(op["p99_ms"]),
                op["retries"],
                "" if counts is None else budget_held(service.error_handler, op["name"]),
                op["rejections"],
                "" if counts is None else counts.bulkhead_rejections,
                op["breaker"] or "",
            )
        )
    console.say("\nsummary:")
    headers = ("operation", "calls", "errors", "error %", "p50 ms", "p95 ms", "p99 ms")
    more = ("retries", "held by budget", "rejected", "shed", "breaker")
    console.say(format_table((*headers, *more), rows))
    console.say("\nact 1:")
    moves = [f"{at:.1f}s {old}→{new}" for at, old, new in story.transitions]
    console.say(f"breaker {DOWNSTREAM}: " + (", ".join(moves) or "never moved"))
    opened = any(new == "OPEN" for _, _, new in story.transitions)
    closed = bool(story.transitions) and story.transitions[-1][2] == "CLOSED"
    if opened and closed:
        console.say("✔ the breaker opened during the outage and closed again after recovery")
    else:
        console.say(
            "✘ the breaker did not both open and close in this run (try a longer --duration)"
        )
    inventory = handled.get(DOWNSTREAM)
    if inventory is not None:
        _conclude_budget(
            console,
            inventory.calls,
            inventory.retries,
            budget_held(service.error_handler, DOWNSTREAM),
        )
    _conclude_around(console, service)
    console.say("\nact 2:")
    _conclude_surge(console, trace)


def _conclude_budget(console: Console, calls: int, retries: int, held: int) -> None:
    share = retries / calls if calls else 0.0
    wanted = (retries + held) / calls if calls else 0.0
    console.say(
        f"retry budget {DOWNSTREAM}: {retries} retries made for {calls} calls ({share:.0%} "
        f"more calls to the service); {held} more held back and answered at once "
        f"(retries asked for: {wanted:.0%})"
    )
    if held:
        console.say(
            f"✔ the retry budget held back {held} retries while the inventory service was failing"
        )
    else:
        console.say("✘ the retry budget was never spent in this run (try a longer --duration)")


def _conclude_around(console: Console, service: DemoService) -> None:
    """The timeout, the dead letters and the rate limit, in a line each (a ✘ when one of
    them never happened: the dashboard's panel would be empty)."""
    handled = service.error_handler.snapshot().operations
    shipping, mail = handled.get(SHIPPING), handled.get(MAIL)
    timeouts = 0 if shipping is None else shipping.timeouts
    limited = 0 if mail is None else mail.rate_limited
    letters = service.ledger.dead_letters.count()
    told = (
        (
            timeouts,
            f"{timeouts} shipping quotes given up after {SHIPPING_TIMEOUT * 1000:.0f} ms "
            "(those orders placed without one)",
        ),
        (
            letters,
            f"{letters} {ORDER_PLACED} events the ledger refused, dead-lettered for a "
            "replay (nothing lost)",
        ),
        (limited, f"{limited} welcome mails over {MAIL_RATE} refused by the rate limit (429)"),
    )
    for count, text in told:
        console.say(("✔ " if count else "✘ none: ") + text)


def _conclude_surge(console: Console, trace: SurgeTrace) -> None:
    rows = []
    operations = {"LOW": BROWSE, "CRITICAL": CHECKOUT}
    shares: dict[str, float] = {}
    for kind in CLIENT_KINDS:
        tally = trace.clients.get(kind)
        if tally is None:
            continue
        shares[kind] = tally.shed / tally.sent if tally.sent else 0.0
        p50, p95 = tally.served.quantiles([0.5, 0.95]) if tally.served_count else (None, None)
        rows.append(
            (
                kind,
                operations[kind],
                tally.sent,
                tally.served_count,
                tally.shed,
                f"{shares[kind]:.1%}",
                _fmt(None if p50 is None else p50 * 1000),
                _fmt(None if p95 is None else p95 * 1000),
            )
        )
    headers = ("severity", "operation", "requests", "served", "shed", "shed %")
    console.say(format_table((*headers, "p50 ms", "p95 ms"), rows))
    limits = trace.limits()
    if not limits:
        console.say(f"✘ the limit of {PRICING_GROUP} was never read")
        return
    surge, backup = trace.limits("surge") or limits[:1], trace.limits("backup")
    console.say(
        f"limit of {PRICING_GROUP} over the act: {sparkline(limits)}  (from {limits[0]}, "
        f"up to {max(surge)} in the surge, {min(backup) if backup else '–'} at its lowest "
        f"in the backup, {limits[-1]} at the end)"
    )
    if backup and max(limits) > limits[0] and min(backup) < max(surge):
        console.say(
            f"✔ the limit followed the database: up from {limits[0]} to {max(surge)} while it "
            f"kept up, down to {min(backup)} when the backup made it slow"
        )
    else:
        console.say("✘ the limit did not both rise and come down in this run")
    low, critical = shares.get("LOW", 0.0), shares.get("CRITICAL", 0.0)
    if trace.shed.get("LOW") and low > critical:
        console.say(
            f"✔ LOW was shed before CRITICAL: {low:.0%} of the shoppers' requests shed, "
            f"{critical:.0%} of the buyers'"
        )
    else:
        console.say(
            f"✘ LOW was not shed more than CRITICAL in this run ({low:.0%} against {critical:.0%})"
        )


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"
