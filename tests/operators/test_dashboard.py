"""``coordination dashboard``: a Grafana JSON model over series the library really exports.

Every metric name in every panel's query is checked against the collector's catalogue
(``_series.SERIES``, with the names each type is exposed under) and against the tables of
docs/observability.md; every label a query groups or filters by is one that series
carries. test_on_prometheus.py then runs each query on a real Prometheus.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordination import ConfigError
from coordination.observability._collector import SERIES
from coordination.observability._dashboard import PANELS, VARIABLES_ALL, grafana_dashboard

ROOT = Path(__file__).resolve().parents[2]
# Served beside the collector's catalogue by BackendErrorsCollector (prometheus_client
# counters of the backends, docs/observability.md's Redis and Events tables).
BACKEND_COUNTERS = {
    "coordination_redis_errors_total": ("component",),
    "coordination_broker_errors_total": ("broker", "component"),
}
_NAME = re.compile(r"\bcoordination_[a-z_]+\b")
_BY = re.compile(r"\bby \(([^)]*)\)")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")


def attempt(call: Callable[[], Any]) -> tuple[Any, ConfigError | None]:
    """The call's value, or the ConfigError it raised (anything else propagates)."""
    try:
        return call(), None
    except ConfigError as exc:
        return None, exc


def exported() -> dict[str, set[str]]:
    """Every name a scrape can show -> the labels it carries."""
    names: dict[str, set[str]] = {}
    for series in SERIES:
        labels = {"component", *series.labels}
        if series.type == "counter":
            names[series.name + "_total"] = labels
        elif series.type == "gauge":
            names[series.name] = labels
        else:  # a histogram (or, with durations="summary", a summary: no _bucket then)
            names[series.name + "_bucket"] = labels | {"le"}
            names[series.name + "_sum"] = names[series.name + "_count"] = labels
    for name, labels in BACKEND_COUNTERS.items():
        names[name] = set(labels)
    return names


def documented() -> set[str]:
    text = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    return set(re.findall(r"^\| `(coordination_[a-z_]+)` \|", text, flags=re.M))


def expressions() -> list[str]:
    return [target.expr for panel in PANELS for target in panel.targets]


def test_at_least_eight_panels_cover_what_the_issue_asks() -> None:
    titles = " / ".join(panel.title for panel in PANELS).lower()
    assert len(PANELS) >= 8
    for topic in (
        "requests by route",
        "errors by route",
        "latency quantiles",
        "breaker states",
        "retries and rejections",
        "rate limiting",
        "bulkheads and adaptive limits",
        "validation failures by rule set",
        "dead letters",
        "redis errors",
    ):
        assert topic in titles, topic


def test_every_query_uses_only_series_the_library_exports_and_documents() -> None:
    names, docs = exported(), documented()
    used: set[str] = set()
    for expr in expressions():
        found = set(_NAME.findall(expr))
        assert found, expr
        for name in found:
            assert name in names, f"{name} is not exported by the collector ({expr})"
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in docs or base in docs, f"{name} is not in docs/observability.md"
        used |= found
    # Every area of the catalogue the issue names has at least one query.
    for needed in (
        "coordination_http_requests_total",
        "coordination_operation_duration_seconds_bucket",
        "coordination_circuit_breaker_state",
        "coordination_retries_total",
        "coordination_rate_limited_total",
        "coordination_concurrency_limit",
        "coordination_bulkhead_rejections_total",
        "coordination_validation_failures_total",
        "coordination_dead_letters",
        "coordination_redis_errors_total",
    ):
        assert needed in used, needed


def test_every_label_a_query_groups_or_filters_by_is_one_its_series_carry() -> None:
    names = exported()
    for expr in expressions():
        carried = set.union(*(names[name] for name in _NAME.findall(expr)))
        for group in _BY.findall(expr):
            for label in (part.strip() for part in group.split(",")):
                assert label in carried, f"by ({label}) on series without it: {expr}"
        for label in _MATCHER.findall(expr):
            assert label in carried, f"{{{label}=...}} on series without it: {expr}"


def test_the_model_has_the_two_variables_and_every_query_reads_the_chosen_datasource() -> None:
    model = grafana_dashboard()
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert set(variables) == {"datasource", "operation"}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    operation = variables["operation"]
    assert operation["includeAll"] is True
    assert operation["allValue"] == VARIABLES_ALL["$operation"]
    assert "coordination_operations_total" in operation["definition"]
    assert len(model["panels"]) == len(PANELS)
    for panel in model["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].count("(") == target["expr"].count(")")
    assert any("$operation" in expr for expr in expressions())
    # Panels do not overlap: two a row, each its own cell.
    cells = {(p["gridPos"]["x"], p["gridPos"]["y"]) for p in model["panels"]}
    assert len(cells) == len(PANELS)


def test_the_command_prints_the_model() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coordination", "dashboard", "--title", "Shop", "--uid", "shop-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == grafana_dashboard(title="Shop", uid="shop-1")


@given(st.text(max_size=60))
def test_any_title_is_kept_as_text_or_refused_when_blank(title: str) -> None:
    model, refused = attempt(lambda: grafana_dashboard(title=title))
    if refused is not None:
        assert refused.field == "title"
        assert not title.strip()
        return
    assert json.loads(json.dumps(model))["title"] == title


@given(st.text(max_size=50))
def test_any_uid_is_grafanas_shape_or_a_config_error(uid: str) -> None:
    model, refused = attempt(lambda: grafana_dashboard(uid=uid))
    if refused is not None:
        assert refused.field == "uid"
        assert str(refused).startswith("--uid: ")
        return
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", model["uid"])


@pytest.mark.parametrize("expr", expressions())
def test_no_query_hides_an_empty_result_behind_a_constant(expr: str) -> None:
    # "or vector(0)" would make every query "return data" on Prometheus whatever it reads.
    assert "vector(" not in expr
    assert "absent(" not in expr
