"""The dashboard and the alerts on a real Prometheus scraping ``coordination demo --serve``.

One Prometheus (Debian's package) scrapes the demo every second -- the default one and
``--redis`` on the real Redis (its two workers are the only processes with Redis-backed
components) -- with the rules ``coordination alerts`` printed. Nothing else feeds it: every
query of every dashboard panel, its Grafana variables replaced by their "All" values, must
return data from the demo alone; every rule must evaluate with health ``ok``; and the rules
that the demo's story should set off do. The Redis outage alert is proved by promtool's
unit tests (test_alerts.py): the demo does not take the reader's Redis down.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordination.observability._alerts import ALERT_NAMES
from coordination.observability._dashboard import PANELS, VARIABLES_ALL
from loopback import require_prometheus, require_redis
from tool_modules import load_tool

from .stack import Stack, running_stack

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(120)]


def with_all_values(expr: str) -> str:
    """A panel's query as Grafana runs it with every variable at "All"."""
    for variable, value in VARIABLES_ALL.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a variable the test does not know: {expr}"
    return expr


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus, _ = require_prometheus()
    folder = tmp_path_factory.mktemp("prometheus")
    # Short pending periods, so the test sees alerts go pending and fire in seconds.
    options = ["--pending-for", "1s", "--outage-for", "1s", "--window", "1m"]
    options += ["--validation-failure-ratio", "0.05"]  # the demo's orders: about 8 % invalid
    with running_stack(
        folder, prometheus, redis_url=require_redis(), alert_options=options
    ) as running:
        yield running


TARGETS = [
    pytest.param(target.expr, id=f"{panel.title} #{i}")
    for panel in PANELS
    for i, target in enumerate(panel.targets)
]


@pytest.mark.parametrize("expr", TARGETS)
def test_every_dashboard_query_returns_data(stack: Stack, expr: str) -> None:
    result = stack.query(with_all_values(expr))
    assert result, f"no data for {with_all_values(expr)}"
    values = [float(sample["value"][1]) for sample in result]
    # A quantile of a series with no traffic in the window is NaN; one series at least
    # must be a number for the panel to show anything.
    assert any(math.isfinite(v) for v in values), (expr, values)


def test_the_redis_panel_reads_the_redis_demo_and_only_it(stack: Stack) -> None:
    """Redis errors are series of the ``--redis`` workers' Redis-backed components (zero:
    Redis answered); the default demo has no Redis, so it has no such series."""
    result = stack.query("coordination_redis_errors_total")
    instances = {sample["metric"]["instance"] for sample in result}
    assert instances == {worker.removeprefix("http://") for worker in stack.redis_workers}
    assert {sample["metric"]["component"] for sample in result} >= {"breaker", "rate_limit"}
    assert all(float(sample["value"][1]) == 0 for sample in result), result


def rules(stack: Stack) -> dict[str, dict[str, object]]:
    (group,) = stack.get("/api/v1/rules")["groups"]
    assert group["name"] == "coordination"
    assert group["file"] == str(stack.rules)
    return {rule["name"]: rule for rule in group["rules"]}


def test_every_alert_rule_evaluates_with_health_ok(stack: Stack) -> None:
    deadline = time.monotonic() + 20
    while True:
        loaded = rules(stack)
        evaluated = all(
            rule.get("lastEvaluation", "0001").startswith("20") for rule in loaded.values()
        )
        if evaluated or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert sorted(loaded) == sorted(ALERT_NAMES)
    for name, rule in loaded.items():
        assert rule["type"] == "alerting", name
        assert rule["health"] == "ok", (name, rule.get("lastError"))


def test_the_alerts_the_story_should_set_off_are_active(stack: Stack) -> None:
    """The demo's inventory fails 40 % of its calls, its orders break their rules and the
    ledger refuses some of their events: those alerts go pending (then fire). A breaker
    that closed again after the outage does not stay alerted; Redis answered throughout."""
    wanted = {
        "CoordinationErrorRatioHigh",
        "CoordinationDeadLettersGrowing",
        "CoordinationValidationFailureSpike",
    }
    deadline = time.monotonic() + 20
    while True:
        active = {
            alert["labels"]["alertname"]: alert for alert in stack.get("/api/v1/alerts")["alerts"]
        }
        if wanted <= set(active) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert wanted <= set(active), sorted(active)
    letters = active["CoordinationDeadLettersGrowing"]
    # The default demo's ledger keeps its dead letters in a SQLite file.
    assert letters["labels"]["store"] == "sqlite", letters["labels"]
    assert letters["annotations"]["runbook_url"].endswith("#coordinationdeadlettersgrowing")
    assert "CoordinationRedisOutage" not in active
    # The breaker's alert waits its 5 minutes: the demo's outage lasted seconds.
    breaker = active.get("CoordinationCircuitBreakerOpen")
    assert breaker is None or breaker["state"] == "pending"


def test_the_dashboard_renders_from_prometheus(stack: Stack, tmp_path: Path) -> None:
    """tools/render_dashboard.py draws every panel from this Prometheus' data (and, with
    COORDINATION_DASHBOARD_PNG=path, keeps the picture: docs/images/dashboard.png)."""
    render = load_tool("render_dashboard").render
    out = tmp_path / "dashboard.png"
    drawn = render(stack.prometheus, out, minutes=1)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn == {panel.title for panel in PANELS}
    keep = os.environ.get("COORDINATION_DASHBOARD_PNG")
    if keep:
        shutil.copyfile(out, keep)
