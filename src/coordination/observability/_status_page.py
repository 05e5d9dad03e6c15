"""The live status page: one self-contained HTML page and the JSON document it polls.

``StatusPage(components)`` reads the same components as the health checker and the
metrics exporter, through the same frozen snapshots (``_readings``: a monitor's
``PerformanceReading``, a handler's ``HandlerSnapshot``, a validator's
``ValidationSnapshot``, each component's health status), when the page asks, never on the
hot path. It serves ``GET <path>`` (the page) and
``GET <path>/status.json`` (the data) as a WSGI app and as an ASGI app.

The charts tell the last 15 minutes from the first view. Before the page's own points,
they come from the monitor: each operation's ``OperationSnapshot.history`` (the window
slots it retires, kept in a fixed ring per operation, see ``performance._history``),
spread over bins of ``_BIN_SECONDS`` ending where the page's own points begin. Those are
finer: each ``snapshot()`` (one per poll of the page, at most one per ``min_interval``
seconds) stores the cumulative count and busy time per operation in a bounded ring, and
throughput and mean latency per interval are the differences between neighbouring
points. The ring starts with the page's creation, counts at zero, which is right for
components that keep no history. The handlers' breaker transitions (when, which
breaker, from, to: ``HandlerSnapshot.transitions``) are marked on the charts' time axis.
Every component is read on its own clock; times are placed by how long ago they were
(``taken_at`` minus the point's time), so a monitor on a test clock still lines up.
Nothing runs in the background.

The tables are bounded (the 50 busiest operations, the 20 concurrency limits refusing
most; ``operations_total`` and ``concurrency_total`` say how many there were), so a
handler tracking its thousand operation names still gives a readable page and a small
poll. Names are user input: the JSON escapes them, the script writes them as text.

The Events section shows each event processor's dead-letter store (kind, namespace, dead
letters, journal entries pending, whether it answers) and each broker source feeding one
(processed, dead-lettered, poison, redelivered, requeued, broker errors, whether its
broker answers): the 20 first stores and the 50 sources in trouble or busiest. A store
that is down shows as such and the page still answers (its counts are read bounded in
time, ``coordination._events_snapshot``). Given no components, the page finds the set's
processors at each poll, as the exporter does.

>>> page = StatusPage({"monitor": monitor, "handler": handler})  # doctest: +SKIP
>>> app.wsgi_app = page.make_wsgi_app()                          # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from .. import _time
from .._config import CoordinationConfig, resolve_config
from .._defaults import ComponentSet
from .._events_snapshot import EventsSnapshot
from .._redact import error_text, redact, safe_repr, truncate
from .._status import HealthStatus, worst_status
from .._time import Clock
from ..error_handling._snapshot import HandlerSnapshot
from ..performance import OperationHistory
from ._components import LiveHttpDoors, reader_components
from ._health_http import acknowledge_lifespan
from ._readings import (
    OperationTimings,
    component_status,
    events_of,
    handler_of,
    performance_of,
    validation_of,
)
from ._status_page_html import PAGE_SCRIPT, PAGE_STYLE, PAGE_TEMPLATE

__all__ = ["StatusPage"]

_JSON_NAME = "status.json"
_CHART_OPERATIONS = 8  # lines per chart: the busiest operations
_HISTORY_SECONDS = 900.0  # what the charts cover from the first view: the last 15 minutes
_BIN_SECONDS = 10.0  # the monitor's history, before the page's own points, in bins this long
_CHART_TRANSITIONS = 100  # breaker transitions marked: the latest, whatever the handlers keep
# Rows per table: a handler tracks up to max_operation_names (1000) operations, and a page
# of a thousand rows is neither readable nor cheap to poll. The busiest are kept; the JSON
# says how many there were, and the page says how many it left out.
_TABLE_OPERATIONS = 50
_TABLE_LIMITS = 20  # concurrency limits: the most refused first, then the fullest
_TABLE_STORES = 20  # event processors' dead-letter stores, in the components' order
_TABLE_SOURCES = 50  # broker sources: those in trouble first, then the busiest


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# The page may run only its own inline script and style, and talk only to its own origin.
_CSP = (
    f"default-src 'none'; script-src {_sha256_source(PAGE_SCRIPT)}; "
    f"style-src {_sha256_source(PAGE_STYLE)}; connect-src 'self'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(slots=True)
class _Row:
    """One operation as the page shows it, merged from every component that knows it."""

    name: str
    count: int = 0
    failures: int = 0
    total_seconds: float = 0.0
    mean_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    handler_calls: int = 0  # from error reports: used for operations no monitor times
    handler_failures: int = 0
    retries: int = 0
    rejections: int = 0
    held_by_budget: int = 0  # failures raised without their retry: the retry budget was spent
    shed: int = 0  # refused by the bulkhead or the adaptive concurrency limit
    hedged_attempts: int = 0  # attempts hedge_after started beside a first one
    hedge_wins: int = 0  # calls a hedged attempt answered
    timed: bool = False
    breaker: str | None = None
    sources: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        # The monitor's counts win where both a monitor and a handler know the operation.
        count = self.count if self.timed else self.handler_calls
        failures = self.failures if self.timed else self.handler_failures
        return {
            "name": self.name,
            "count": count,
            "failures": failures,
            "error_rate": failures / count if count else 0.0,
            "mean_ms": self.mean_ms,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "retries": self.retries,
            "rejections": self.rejections,
            "held_by_budget": self.held_by_budget,
            "shed": self.shed,
            "hedged_attempts": self.hedged_attempts,
            "hedge_wins": self.hedge_wins,
            "breaker": self.breaker,
            "sources": self.sources,
        }


@dataclass(slots=True)
class _Past:
    """What the components remember of the time before the page's points: each operation's
    history and the handlers' transitions, as ages (seconds before their clock's now)."""

    activity: dict[str, list[OperationHistory]] = field(default_factory=dict)
    transitions: list[tuple[float, str, str, str, str]] = field(default_factory=list)

    def add_handler(self, handler: HandlerSnapshot) -> None:
        if handler.taken_at is None:
            return
        for moved in handler.transitions:
            reason = truncate(redact(str(moved.reason)), 200)  # cut after: a cut secret is not seen
            age = handler.taken_at - moved.at
            self.transitions.append((age, moved.name, moved.old.value, moved.new.value, reason))


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _limits_of(component: object, handler: HandlerSnapshot | None) -> dict[str, dict[str, Any]]:
    """The adaptive concurrency limits a component has: an error handler's (by group, from
    ``handler``, its snapshot) and a middleware's (``app_adaptive_concurrency``, as
    ``app``)."""
    limits: dict[str, dict[str, Any]] = {}
    if handler is not None:
        for group, limit in handler.concurrency.items():
            limits[group] = limit.as_dict()
    http_snapshot = getattr(component, "http_snapshot", None)
    if callable(http_snapshot):
        concurrency = getattr(http_snapshot(), "concurrency", None)
        if concurrency is not None:
            limits[concurrency.group] = concurrency.as_dict()
    return limits


def _events_section(events: list[tuple[str, EventsSnapshot]]) -> dict[str, Any]:
    """The Events section: each processor's store, each broker source, bounded."""
    stores = [{"component": name, **read.store.as_dict()} for name, read in events if read.store]
    sources = [
        {"component": name, **source.as_dict(), "settled": source.settled}
        for name, read in events
        for source in read.sources
    ]
    sources.sort(key=lambda s: (s["available"], -s["settled"], s["source"], s["component"]))
    return {
        "stores": stores[:_TABLE_STORES],
        "stores_total": len(stores),
        "sources": sources[:_TABLE_SOURCES],
        "sources_total": len(sources),
    }


def _binned(
    now: float, takeover: float, remembered: Mapping[str, list[OperationHistory]]
) -> tuple[list[float], dict[str, list[tuple[float, float, float]]]]:
    """The monitor's history before ``takeover`` (the page's clock) in bins of
    ``_BIN_SECONDS`` ending there: the bins' ends, and per operation each bin's (calls,
    timed calls, busy seconds). A point is spread over the bins it overlaps in proportion,
    since each operation's slots start when it was first seen, not on a common grid."""
    horizon = now - _HISTORY_SECONDS
    # Before the page's first reading, everything the monitors know belongs to the bins
    # (a call recorded at the very moment they were read included); after it, the page's.
    limit = math.inf if takeover >= now else takeover
    spans: dict[str, list[tuple[float, float, int, int, float]]] = {}
    earliest = takeover
    for op, histories in remembered.items():
        for history in histories:
            shift = now - history.taken_at  # its clock to the page's
            for p in history.points(since=horizon - shift):
                start, end = p.start + shift, p.end + shift
                if start <= limit:
                    spans.setdefault(op, []).append(
                        (start, end, p.count, p.timed_count, p.total_seconds)
                    )
                    earliest = min(earliest, start)
    if not spans:
        return [], {}
    n = min(
        math.ceil((takeover - max(earliest, horizon)) / _BIN_SECONDS),
        1 + int(_HISTORY_SECONDS / _BIN_SECONDS),
    )
    n = max(n, 1)
    first = takeover - n * _BIN_SECONDS
    binned: dict[str, list[tuple[float, float, float]]] = {}
    for op, points in spans.items():
        bins = [[0.0, 0.0, 0.0] for _ in range(n)]
        for start, end, count, timed, busy in points:
            lo, hi = max(start, first), min(end, takeover)
            length = end - start
            if length <= 0:  # a point of no length (a slot begun just now): all of it there
                if first <= start <= limit:
                    b = bins[min(int((start - first) // _BIN_SECONDS), n - 1)]
                    b[0], b[1], b[2] = b[0] + count, b[1] + timed, b[2] + busy
                continue
            if hi <= lo:
                continue
            for index in range(int((lo - first) // _BIN_SECONDS), n):
                b_lo = first + index * _BIN_SECONDS
                if b_lo >= hi:
                    break
                share = (min(hi, b_lo + _BIN_SECONDS) - max(lo, b_lo)) / length
                if share > 0:
                    b = bins[index]
                    b[0], b[1], b[2] = (
                        b[0] + count * share,
                        b[1] + timed * share,
                        b[2] + busy * share,
                    )
        binned[op] = [(c, t, busy) for c, t, busy in bins]
    ends = [first + (i + 1) * _BIN_SECONDS for i in range(n)]
    return ends, binned


class StatusPage:
    """A live page of per-operation latency, error rates, breaker states and charts.

    ``components`` maps names to the library's components (validator, error handler,
    performance monitor, …), as for ``CoordinationHealthChecker``. ``path`` is where the
    page is served (default ``config.status_page_path``); its data is at
    ``<path>/status.json``. The page polls every ``refresh_seconds``. With no components it
    reads the process's set (``default_coordination()``), which every door shares by
    default; ``coordination=`` reads another set (components given as well are a
    ``TypeError``).
    """

    def __init__(
        self,
        components: Mapping[str, object] | None = None,
        *,
        config: CoordinationConfig | Mapping[str, Any] | None = None,
        coordination: ComponentSet | None = None,
        path: str | None = None,
        title: str = "coordination status",
        refresh_seconds: float = 2.0,
        min_interval: float = 1.0,
        max_points: int = 300,
        clock: Clock | None = None,
    ) -> None:
        if components is not None and not isinstance(components, Mapping):
            raise TypeError(
                f"StatusPage: components must be a mapping of names to components, "
                f"not {type(components).__name__}"
            )
        live = components is None  # the set's event processors are looked up at each poll
        components, config = reader_components("StatusPage", components, coordination, config)
        resolved = resolve_config(config)
        path = resolved.status_page_path if path is None else path
        if not path.startswith("/"):
            raise ValueError(f"StatusPage: path must start with '/', got {path!r}")
        if not refresh_seconds > 0 or not min_interval >= 0 or max_points < 2:
            raise ValueError(
                "StatusPage: refresh_seconds must be > 0, min_interval >= 0 and "
                f"max_points >= 2 (got {refresh_seconds!r}, {min_interval!r}, {max_points!r})"
            )
        self.components: Mapping[str, object] = (
            LiveHttpDoors(components, http=False)
            if live
            else components
            if isinstance(components, LiveHttpDoors)
            else dict(components)
        )
        self.path = path.rstrip("/") or "/"
        self.json_path = self.path.rstrip("/") + "/" + _JSON_NAME
        self.title = title
        self.refresh_seconds = refresh_seconds
        self.min_interval = min_interval
        self._clock = clock or _time.monotonic
        self._started = self._clock()
        self._history: deque[tuple[float, dict[str, tuple[int, float]]]] = deque(
            maxlen=min(max_points, resolved.max_data_points)
        )
        # The first point is the page's creation with every count at zero (the components
        # are made with it), so the first poll already draws the traffic since start-up.
        self._creation: tuple[float, dict[str, tuple[int, float]]] = (self._started, {})
        self._history.append(self._creation)
        self._lock = threading.Lock()

    # --- the data -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The JSON document the page shows. Each call, at most one per ``min_interval``
        seconds, adds a history point (a bounded ring), so the charts fill while the page
        is open; no background thread."""
        rows: dict[str, _Row] = {}
        statuses: dict[str, str] = {}
        errors: dict[str, str] = {}
        validation: dict[str, int] | None = None
        totals = {"retries": 0, "rejected_by_circuit_breaker": 0}
        limits: dict[str, dict[str, Any]] = {}  # adaptive concurrency limits, by group
        reloads: dict[str, Any] | None = None
        events: list[tuple[str, EventsSnapshot]] = []
        past = _Past()
        for name, component in list(self.components.items()):
            try:
                # An event processor or a broker source: its own section, no health status.
                read = events_of(component)
                if read is not None:
                    events.append((name, read))
                    continue
                # One snapshot of a handler per poll: it reads every operation and breaker.
                handler = handler_of(component)
                statuses[name] = self._read_component(name, component, handler, rows, totals, past)
                limits.update(_limits_of(component, handler))
                if reloads is None and handler is not None and handler.reloads is not None:
                    reloads = handler.reloads.as_dict()
                counts = validation_of(component)
                if counts is not None:
                    validation = validation or {"total": 0, "valid": 0, "invalid": 0}
                    validation["total"] += counts.total
                    validation["valid"] += counts.valid
                    validation["invalid"] += counts.invalid
            except Exception as exc:  # a broken component shows as ERROR, never breaks the page
                statuses[name] = HealthStatus.ERROR.value
                errors[name] = f"{type(exc).__name__}: {safe_repr(error_text(exc), 200)}"
        now = self._clock()
        history = self._record(now, rows, past)
        known = {s.value for s in HealthStatus}
        overall = worst_status(*(HealthStatus(s) for s in statuses.values() if s in known))
        # Busiest first, then by name, so that a page of equal counts does not reshuffle.
        operations = sorted(
            (r.as_dict() for r in rows.values()), key=lambda d: (-d["count"], d["name"])
        )
        shown_limits = sorted(
            limits.values(),
            key=lambda c: (-sum(c["shed"].values()), -c["in_flight"], c["group"]),
        )[:_TABLE_LIMITS]
        return {
            "title": self.title,
            "timestamp": _time.utc_timestamp(),
            "uptime_seconds": round(now - self._started, 3),
            "refresh_seconds": self.refresh_seconds,
            "status": overall.value,
            "components": statuses,
            "component_errors": errors,
            "operations": operations[:_TABLE_OPERATIONS],
            "operations_total": len(operations),
            "breakers": {r.name: r.breaker for r in rows.values() if r.breaker is not None},
            "totals": {
                "requests": sum(r.count for r in rows.values() if r.timed),
                "failures": sum(r.failures for r in rows.values() if r.timed),
                **totals,
            },
            "validation": validation,
            "concurrency": {c["group"]: c for c in shown_limits},
            "concurrency_total": len(limits),
            "config_reload": reloads,
            "events": _events_section(events),
            "history": history,
        }

    def _read_component(
        self,
        name: str,
        component: object,
        handler: HandlerSnapshot | None,
        rows: dict[str, _Row],
        totals: dict[str, int],
        past: _Past,
    ) -> str:
        def row(op: str) -> _Row:
            entry = rows.get(op) or rows.setdefault(op, _Row(op))
            if name not in entry.sources:
                entry.sources.append(name)
            return entry

        performance = performance_of(component)
        if performance is not None:
            for op, timings in performance.operations.items():
                self._from_stats(row(op), timings)
            for op, data in performance.reported_operations.items():
                self._from_report(row(str(op)), data)
            for op, history in performance.history.items():
                past.activity.setdefault(op, []).append(history)
        if handler is not None:
            past.add_handler(handler)
            totals["retries"] += handler.total("retries")
            totals["rejected_by_circuit_breaker"] += handler.total("rejections")
            for op, counts in handler.operations.items():
                entry = row(op)
                entry.retries += counts.retries
                entry.rejections += counts.rejections
                entry.held_by_budget += counts.retry_budget_exhausted
                entry.shed += counts.bulkhead_rejections
                entry.hedged_attempts += counts.hedged_attempts
                entry.hedge_wins += counts.hedge_wins
                entry.handler_calls += counts.calls
                entry.handler_failures += counts.failures
            for op, breaker in handler.breakers.items():
                row(op).breaker = breaker.state.value
        status = component_status(component, handler)
        return (status or HealthStatus.UNKNOWN).value

    @staticmethod
    def _from_stats(entry: _Row, stats: OperationTimings) -> None:
        count = int(stats.count)
        entry.timed = True
        entry.count += count
        entry.failures += int(stats.failures)
        entry.total_seconds += float(stats.total_seconds)
        if count:
            entry.mean_ms = _ms(entry.total_seconds / entry.count)
            entry.p50_ms = _ms(_number(stats.quantile(0.5)))
            entry.p95_ms = _ms(_number(stats.quantile(0.95)))
            entry.p99_ms = _ms(_number(stats.quantile(0.99)))
            entry.max_ms = _ms(_number(stats.max_seconds))

    @staticmethod
    def _from_report(entry: _Row, data: Mapping[str, Any]) -> None:
        # Reports give milliseconds; latency may sit at the top or under response_times.
        nested = data.get("response_times")
        times: Mapping[str, Any] = nested if isinstance(nested, Mapping) else data
        count = int(data.get("count", times.get("count", 0)) or 0)
        entry.timed = True
        entry.count += count
        entry.failures += int(data.get("failures", 0) or 0)
        mean = _number(times.get("mean"))
        entry.total_seconds += (mean or 0.0) * count / 1000.0
        entry.mean_ms, entry.max_ms = mean, _number(times.get("max"))
        entry.p50_ms, entry.p95_ms, entry.p99_ms = (
            _number(times.get(q)) for q in ("p50", "p95", "p99")
        )

    def _record(self, now: float, rows: Mapping[str, _Row], past: _Past) -> dict[str, Any]:
        point = {r.name: (r.count, r.total_seconds) for r in rows.values() if r.timed}
        with self._lock:
            if not self._history or now - self._history[-1][0] >= self.min_interval:
                self._history.append((now, point))
            points = list(self._history)
        busiest = sorted(point, key=lambda op: -point[op][0])[:_CHART_OPERATIONS]
        # The page's own points take over from the monitor's history at its first reading:
        # the creation point's zeros are a baseline only for what keeps no history (for an
        # operation that does, they would pile everything before the page into one step).
        from_creation = points[0] is self._creation
        readings = points[1:] if from_creation else points
        takeover = readings[0][0] if readings else now
        remembered = {op: past.activity[op] for op in busiest if op in past.activity}
        ends, binned = _binned(now, takeover, remembered)
        times = [round(t - self._started, 3) for t in ends]
        throughput: dict[str, list[float | None]] = {}
        latency: dict[str, list[float | None]] = {}
        for op in busiest:
            counts = binned.get(op)
            if counts is None:
                throughput[op] = [None] * len(ends)
                latency[op] = [None] * len(ends)
            else:
                throughput[op] = [round(c / _BIN_SECONDS, 3) for c, _, _ in counts]
                latency[op] = [
                    _ms(busy / timed) if timed > 1e-9 else None for _, timed, busy in counts
                ]
        for i, ((t0, before), (t1, after)) in enumerate(itertools.pairwise(points)):
            baseline = from_creation and i == 0
            merge = baseline and bool(ends)  # the last bin ends where this interval does
            if not merge:
                times.append(round(t1 - self._started, 3))
            for op in busiest:
                if baseline and op in remembered:
                    if not merge:  # no bin for it: nothing before the page to show
                        throughput[op].append(None)
                        latency[op].append(None)
                    continue
                count0, busy0 = before.get(op, (0, 0.0))
                count1, busy1 = after.get(op, (0, 0.0))
                calls = max(0, count1 - count0)
                rate = round(calls / (t1 - t0), 3)
                mean = _ms((busy1 - busy0) / calls) if calls else None
                if merge:
                    throughput[op][-1], latency[op][-1] = rate, mean
                else:
                    throughput[op].append(rate)
                    latency[op].append(mean)
        # The chart starts where its first interval does (or at an older transition).
        left = ends[0] - _BIN_SECONDS if ends else points[0][0]
        marks = []
        for age, breaker, old, new, reason in past.transitions:
            at = now - age
            if age <= _HISTORY_SECONDS or at >= left:
                left = min(left, at)
                marks.append((at, breaker, old, new, reason))
        marks.sort(key=lambda m: m[0])
        transitions = [
            {
                "t": round(at - self._started, 3),
                "breaker": breaker,
                "from": old,
                "to": new,
                "reason": reason,
            }
            for at, breaker, old, new, reason in marks[-_CHART_TRANSITIONS:]
        ]
        return {
            "start": round(left - self._started, 3),
            "t": times,
            "throughput": throughput,
            "latency_ms": latency,
            "transitions": transitions,
        }

    # --- the page -------------------------------------------------------------------------

    def render_html(self) -> str:
        """The page: markup, style and script inline, nothing fetched but its own JSON."""
        config = json.dumps({"json": _JSON_NAME, "refresh": self.refresh_seconds})
        return PAGE_TEMPLATE.format(
            title=html.escape(self.title),
            style=PAGE_STYLE,
            script=PAGE_SCRIPT,
            config=html.escape(config, quote=True),
        )

    def _respond(self, path: str, method: str) -> tuple[str, list[tuple[str, str]], bytes]:
        headers = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]
        if method not in ("GET", "HEAD"):
            body = b"method not allowed\n"
            headers += [("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")]
            return "405 Method Not Allowed", headers, body
        if path in (self.path, self.path + "/"):
            # A title with a lone surrogate cannot be UTF-8: replaced, never a 500.
            body = self.render_html().encode("utf-8", "replace")
            headers += [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Security-Policy", _CSP),
            ]
            return "200 OK", headers, body
        if path == self.json_path:
            body = json.dumps(self.snapshot(), default=str, allow_nan=False).encode()
            return "200 OK", [*headers, ("Content-Type", "application/json")], body
        return (
            "404 Not Found",
            [*headers, ("Content-Type", "text/plain; charset=utf-8")],
            (b"not found\n"),
        )

    def handles(self, path: str) -> bool:
        """True for the paths this page answers (the page and its JSON)."""
        return path in (self.path, self.path + "/", self.json_path)

    def wsgi_app(
        self, environ: Mapping[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """The WSGI application serving the page and its JSON (404 for anything else)."""
        status, headers, body = self._respond(
            environ.get("PATH_INFO") or "/", environ.get("REQUEST_METHOD", "GET")
        )
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    async def asgi_app(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """The ASGI application (HTTP; lifespan is acknowledged, other scopes refused)."""
        if scope["type"] == "lifespan":
            await acknowledge_lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise RuntimeError(f"StatusPage serves HTTP only, not {scope['type']!r} scopes")
        status, headers, body = self._respond(scope.get("path") or "/", scope.get("method", "GET"))
        headers.append(("Content-Length", str(len(body))))
        await send(
            {
                "type": "http.response.start",
                "status": int(status.split()[0]),
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else body}
        )

    def make_wsgi_app(self) -> Callable[..., Iterable[bytes]]:
        """The WSGI app, named after ``prometheus_client.make_wsgi_app``."""
        return self.wsgi_app

    def make_asgi_app(self) -> Callable[..., Awaitable[None]]:
        """The ASGI app, named after ``prometheus_client.make_asgi_app``."""
        return self.asgi_app
