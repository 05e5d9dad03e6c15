"""The status page's first view tells the last 15 minutes: history from before the page.

A real monitor and a real error handler, on a test clock, live through ten minutes of
traffic and a breaker that opens half-way through, before the page exists. The page
(on the real clock: every component is read on its own) must serve that history and the
transition in its very first JSON, without a spike where its own points begin, bounded
however many operations and transitions there are; and real headless chromium must draw
it on the first render — a line across the whole ten minutes, the transition marked on
the time axis at its place, listed below — with no console error, under the strict CSP.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.serving import WSGIRequestHandler, make_server

from coordination.error_handling import CoordinationErrorHandler
from coordination.observability import StatusPage
from coordination.performance import CoordinationPerformanceMonitor
from coordination.performance._history import HISTORY_POINTS
from fakes import FakeClock

from ._chromium import CHROMIUM, Chromium
from ._live_app import HOSTILE_NAME

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ROUTE = "GET /api/orders"


class _Down(Exception):
    pass


def _fail() -> None:
    raise _Down("the database is down")


def _past(
    minutes: int = 10, breaker: str = "inventory.reserve"
) -> tuple[FakeClock, CoordinationPerformanceMonitor, CoordinationErrorHandler]:
    """``minutes`` of traffic before any page: ROUTE twice a second at 20 ms (4 a second
    at 50 ms during the second half), and ``breaker`` opened by two failures half-way."""
    clock = FakeClock(10_000.0)
    monitor = CoordinationPerformanceMonitor({}, clock=clock)
    handler = CoordinationErrorHandler(
        {"max_retries": 0, "circuit_breaker_threshold": 2, "circuit_breaker_timeout": 3600},
        clock=clock,
        sleep=clock.advance,
    )
    seconds = minutes * 60
    for second in range(seconds):
        late = second >= seconds // 2
        for _ in range(4 if late else 2):
            monitor.record_duration(ROUTE, 0.05 if late else 0.02)
        if second == seconds // 2:
            for _ in range(2):
                with pytest.raises(_Down):
                    handler.execute_with_error_handling(_fail, operation_name=breaker)
        clock.advance(1.0)
    return clock, monitor, handler


# --- the data ------------------------------------------------------------------------------


def test_the_first_snapshot_holds_the_ten_minutes_before_the_page_and_the_transition() -> None:
    _, monitor, handler = _past()
    page_clock = FakeClock(3.0)  # another clock altogether: placed by age, not by value
    page = StatusPage({"monitor": monitor, "handler": handler}, config={}, clock=page_clock)
    history = page.snapshot()["history"]
    times, rates = history["t"], history["throughput"][ROUTE]
    # Ten minutes before the page, in 10 s bins ending at its first view.
    assert history["start"] == pytest.approx(-600.0, abs=10.0)
    assert times[0] < -580
    assert times[-1] == pytest.approx(0.0)
    assert all(b > a for a, b in itertools.pairwise(times))
    # The rate and the latency of each half, as they were (the bins straddling the change
    # and the current, partial slot aside).
    first = [r for t, r in zip(times, rates, strict=True) if -580 < t < -320]
    second = [r for t, r in zip(times, rates, strict=True) if -280 < t < -20]
    assert first
    assert all(r == pytest.approx(2.0, abs=0.01) for r in first)
    assert second
    assert all(r == pytest.approx(4.0, abs=0.01) for r in second)
    latency = dict(zip(times, history["latency_ms"][ROUTE], strict=True))
    assert latency[times[5]] == pytest.approx(20.0, abs=0.1)
    assert latency[times[-5]] == pytest.approx(50.0, abs=0.1)
    # The calls are conserved: every one of the ten minutes' is in some bin.
    assert sum(r * 10.0 for r in rates if r) == pytest.approx(300 * 2 + 300 * 4, abs=1)
    [opened] = history["transitions"]
    assert (opened["breaker"], opened["from"], opened["to"]) == (
        "inventory.reserve",
        "CLOSED",
        "OPEN",
    )
    assert opened["t"] == pytest.approx(-299.0, abs=1.0)
    assert "consecutive failures" in opened["reason"]


def test_the_page_points_take_over_without_a_spike_where_they_begin() -> None:
    clock, monitor, _ = _past(minutes=3)
    page_clock = FakeClock(0.0)
    page = StatusPage({"monitor": monitor}, config={}, clock=page_clock, min_interval=1.0)
    for _ in range(5):  # the page polled every 2 s, the traffic going on at 4 a second
        for _ in range(8):
            monitor.record_duration(ROUTE, 0.05)
        clock.advance(2.0)
        page_clock.advance(2.0)
        history = page.snapshot()["history"]
    times, rates = history["t"], history["throughput"][ROUTE]
    assert all(b > a for a, b in itertools.pairwise(times))
    # The page's own points: the last four intervals, 2 s each, 4 calls a second. The
    # creation point's zeros never became the baseline of the minutes before the page.
    assert times[-4:] == [4.0, 6.0, 8.0, 10.0]
    assert rates[-4:] == [4.0, 4.0, 4.0, 4.0]
    assert max(r for r in rates if r is not None) <= 4.0 + 1e-9
    assert times[0] < -170


def test_components_without_history_still_start_from_the_page_creation() -> None:
    class Counts:
        """Another object's timings: counts only, no history (as before issue 18)."""

        calls = 0

        def operation_stats(self) -> dict[str, Any]:
            from types import SimpleNamespace

            self.calls += 10
            return {
                "op": SimpleNamespace(
                    count=self.calls,
                    successes=self.calls,
                    failures=0,
                    total_seconds=self.calls * 0.001,
                    max_seconds=0.001,
                    quantile=lambda q: 0.001,
                )
            }

    _, monitor, _ = _past(minutes=2)
    clock = FakeClock(0.0)
    page = StatusPage({"other": Counts(), "monitor": monitor}, config={}, clock=clock)
    clock.advance(1.0)
    history = page.snapshot()["history"]
    # One axis: the monitor's bins, the last of which also holds the other component's
    # first interval (from the page's creation, counts at zero).
    assert history["t"][-1] == 1.0
    assert history["throughput"]["op"][-1] == 10.0
    assert all(v is None for v in history["throughput"]["op"][:-1])
    assert history["throughput"][ROUTE][0] == pytest.approx(2.0, abs=0.01)


def test_history_and_transitions_are_bounded() -> None:
    clock = FakeClock(0.0)
    monitor = CoordinationPerformanceMonitor({"max_operation_names": 20}, clock=clock)
    handler = CoordinationErrorHandler(
        {"max_retries": 0, "circuit_breaker_threshold": 1, "circuit_breaker_timeout": 1},
        clock=clock,
        sleep=clock.advance,
    )
    for second in range(3600):  # an hour, 30 names (20 kept), a breaker flapping
        for i in range(30):
            monitor.record_duration(f"op{i}", 0.001)
        if second % 2 == 0:
            with pytest.raises(_Down):
                handler.execute_with_error_handling(_fail, operation_name="flappy")
        clock.advance(1.0)
    size = monitor.operation_memory_bytes("op0")
    for _ in range(600):
        monitor.record_duration("op0", 0.001)
        clock.advance(1.0)
    assert monitor.operation_memory_bytes("op0") == size
    snapshot = monitor.snapshot()
    assert len(snapshot.operations) == 21  # 20 names and the overflow
    points = snapshot.operations["op0"].history.points()
    assert len(points) <= HISTORY_POINTS + 6  # the ring and the window's slots
    assert points[-1].end - points[0].start <= 15 * 60 + 60 + 1
    assert len(handler.snapshot().transitions) == 200
    data = StatusPage({"m": monitor, "h": handler}, config={}, clock=FakeClock(0.0)).snapshot()
    history = data["history"]
    assert len(history["throughput"]) == 8  # the busiest, as before
    assert len(history["t"]) <= 91
    assert 0 < len(history["transitions"]) <= 100
    assert all(m["t"] >= -15 * 60 - 1 for m in history["transitions"])
    json.dumps(data, allow_nan=False)


# Traffic: (seconds to wait, calls, failures, latency) steps; polls of the page between.
_steps = st.lists(
    st.tuples(
        st.floats(0.0, 400.0),
        st.integers(0, 50),
        st.integers(0, 5),
        st.floats(0.0, 5.0),
        st.booleans(),
    ),
    max_size=40,
)


def _poll(page: StatusPage, calls: list[tuple[float, int]], cutoff: int) -> int:
    """Poll the page; the calls its newest point holds (all so far, if it made one)."""
    newest = page._history[-1]
    page.snapshot()
    return len(calls) if page._history[-1] is not newest else cutoff


@settings(max_examples=60, deadline=None)
@given(steps=_steps, window=st.sampled_from([6.0, 60.0, 600.0]))
def test_any_traffic_gives_an_ordered_finite_chart_conserving_recent_calls(
    steps: list[tuple[float, int, int, float, bool]], window: float
) -> None:
    clock = FakeClock(500.0)
    monitor = CoordinationPerformanceMonitor({}, clock=clock, window_seconds=window)
    page_clock = FakeClock(0.0)
    page: StatusPage | None = None
    calls: list[tuple[float, int]] = []  # (page time, calls) of what was recorded
    cutoff = 0  # the calls made before the page's latest point
    for wait, ok, failed, latency, poll in steps:
        clock.advance(wait)
        page_clock.advance(wait)
        for _ in range(ok):
            monitor.record_duration("op", latency)
        for _ in range(failed):
            monitor.record_failure("op", "timeout")
        calls.append((page_clock.now, ok + failed))
        if poll and page is None:
            page = StatusPage({"monitor": monitor}, config={}, clock=page_clock)
        elif poll:
            cutoff = _poll(page, calls, cutoff)
    page = page or StatusPage({"monitor": monitor}, config={}, clock=page_clock)
    cutoff = _poll(page, calls, cutoff)
    data = page.snapshot()
    json.dumps(data, allow_nan=False)  # finite everywhere
    history = data["history"]
    times = history["t"]
    assert all(b > a for a, b in itertools.pairwise(times))
    assert history["start"] <= (times[0] if times else history["start"])
    if "op" not in history["throughput"]:
        assert times == [] or all(c == 0 for _, c in calls)
        return
    rates = history["throughput"]["op"]
    assert len(rates) == len(times)
    assert all(r is None or (r >= 0 and math.isfinite(r)) for r in rates)
    assert all(v is None or v >= 0 for v in history["latency_ms"]["op"])
    # Every call within the chart's 15 minutes is drawn, none twice (rounding aside):
    # the bins hold the monitor's history, the page's intervals what came after.
    lengths = [b - a for a, b in zip([history["start"], *times], times, strict=False)]
    drawn = sum(r * dt for r, dt in zip(rates, lengths, strict=True) if r)
    # Drawn: at least the calls of the last 15 minutes, at most those since the chart's
    # start (the page's own points may reach further back). A row of the monitor's that
    # straddles a bound (the chart's start, or where the page's own points take over) is
    # drawn in proportion: calls a row's length either side may or may not be in.
    start = history["start"] + page._started
    recent = max(start, page_clock.now - 900.0)
    row = max(window / 6, 10.0)
    readings = [p[0] for p in page._history if p is not page._creation]
    takeover = readings[0] if readings else page_clock.now
    near = sum(n for at, n in calls if abs(at - takeover) <= row)
    if readings:  # what came after the page's latest point waits for its next one
        calls = calls[:cutoff]
    at_most = sum(n for at, n in calls if at >= start - row) + near
    at_least = sum(n for at, n in calls if at >= recent + row) - near
    rounding = 0.0005 * 600 * len(times)  # each rate is rounded to 3 decimals
    assert at_least - rounding - 1e-6 <= drawn <= at_most + rounding + 1e-6


# --- the browser ---------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@contextlib.contextmanager
def _serving(page: StatusPage) -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, page.wsgi_app, threaded=True, request_handler=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.browser
@pytest.mark.slow
def test_the_first_view_in_chromium_already_shows_the_story() -> None:
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    _, monitor, handler = _past(breaker=HOSTILE_NAME)
    # One poll an hour: what the test reads is the first view, never a refresh.
    page = StatusPage({"monitor": monitor, "handler": handler}, config={}, refresh_seconds=3600)
    with _serving(page) as base, Chromium() as browser:
        if True:
            browser.navigate(f"{base}/coordination")
            browser.wait_for("document.body && document.body.dataset.loaded === 'true'")
            line = browser.evaluate(
                "document.querySelector('#throughput path')?.getAttribute('d') || ''"
            )
            caption = browser.evaluate(
                "[...document.querySelectorAll('#throughput text')].map(t => t.textContent)"
            )
            marks = browser.evaluate(
                "[...document.querySelectorAll('#throughput line.mark')].map(m => "
                "[m.dataset.breaker, m.dataset.to, +m.getAttribute('x1'), "
                "m.querySelector('title').textContent])"
            )
            listed = browser.evaluate(
                "[...document.querySelectorAll('#transitions li')].map(li => "
                "[li.dataset.breaker, li.dataset.to, li.textContent])"
            )
            latency_marks = browser.evaluate("document.querySelectorAll('#latency .mark').length")
            hidden = browser.evaluate("document.getElementById('transitions-section').hidden")
            pwned = browser.evaluate("window.pwned === undefined")
            browser.screenshot(ARTIFACTS / "status-page-history.png")
            browser.evaluate("1")  # collect console events that arrived meanwhile
            problems = list(browser.problems)
    # A line across the whole ten minutes at the first view: one point per 10 s bin.
    points = [p.split() for p in line.replace("M", "").split(" L")]
    xs = [float(p[0]) for p in points]
    assert len(points) >= 55
    assert xs[0] < 60
    assert xs[-1] > 590  # from the left edge (x = 44) to the right (600)
    assert any("last 10 min" in c for c in caption), caption
    # The breaker that opened five minutes ago is marked half-way along the axis, named
    # as text (its name is markup), and listed under the charts.
    [(name, to, x, title)] = marks
    assert (name, to) == (HOSTILE_NAME, "OPEN")
    assert 44 + 0.45 * 556 < x < 44 + 0.55 * 556
    assert f"{HOSTILE_NAME}: CLOSED → OPEN at " in title
    assert latency_marks == 1
    assert not hidden
    [(name, to, text)] = listed
    assert (name, to) == (HOSTILE_NAME, "OPEN")
    assert HOSTILE_NAME in text
    assert "consecutive failures" in text
    assert pwned
    assert problems == []
    assert (ARTIFACTS / "status-page-history.png").stat().st_size > 10_000
