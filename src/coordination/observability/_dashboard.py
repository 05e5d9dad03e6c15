"""``coordination dashboard``: a Grafana dashboard (JSON model) over the library's series.

The panels are data (``PANELS``): a title, a unit and PromQL targets written only over
the series the collector exports (``_series.SERIES``) and the backends' error counters.
``tests/operators`` checks every name against that catalogue and docs/observability.md,
and runs every target on a real Prometheus scraping ``coordination demo --serve``.

Two variables: ``datasource`` (any Prometheus data source) and ``operation`` (the
operations the error handler and the monitor report; "All" is the regex ``.*``). Rates use
Grafana's ``$__rate_interval``, which follows the data source's scrape interval.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError
from .._quote import quote
from ._output_files import write_files

__all__ = [
    "PANELS",
    "VARIABLES_ALL",
    "Panel",
    "Target",
    "grafana_dashboard",
    "run_dashboard",
]

# What each Grafana variable stands for when every value is selected: the test and the
# renderer replace them so, and Grafana does the same for "All" (allValue below).
VARIABLES_ALL: Mapping[str, str] = {
    "$__rate_interval": "1m",
    "$operation": ".*",
}
_OP = 'operation=~"$operation"'
_BREAKER = 'breaker=~"$operation"'  # a breaker is named after its operation
_RATE = "[$__rate_interval]"


@dataclass(frozen=True, slots=True)
class Target:
    """One PromQL query of a panel and its legend (Grafana's ``{{label}}`` templates)."""

    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class Panel:
    """One time-series panel: what it shows, in which unit, from which queries."""

    title: str
    description: str
    unit: str
    targets: tuple[Target, ...]
    # Grafana value mappings (e.g. 0 → CLOSED) for gauges that encode a state.
    mappings: tuple[tuple[int, str, str], ...] = ()


def _rate(series: str, by: str, selector: str = "") -> str:
    selected = f"{series}{{{selector}}}" if selector else series
    return f"sum by ({by}) (rate({selected}{_RATE}))"


def _quantile(q: float, series: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({q:g}, {_rate(series + '_bucket', 'le, ' + by, selector)})"


def _ratio(series: str, by: str, part: str, whole: str = "") -> str:
    return f"{_rate(series, by, part)} / {_rate(series, by, whole)}"


PANELS: tuple[Panel, ...] = (
    Panel(
        "HTTP requests by route",
        "Requests through the middleware per second, by method and route template.",
        "reqps",
        (
            Target(
                _rate("coordination_http_requests_total", "method, route"), "{{method}} {{route}}"
            ),
        ),
    ),
    Panel(
        "HTTP errors by route",
        "Responses with 5xx and 4xx codes per second, by route template and status "
        "(503: an open breaker, a full limit; 422: a message that broke its rules).",
        "reqps",
        (
            Target(
                _rate("coordination_http_requests_total", "method, route, status", 'status=~"5.."'),
                "{{status}} {{method}} {{route}}",
            ),
            Target(
                _rate("coordination_http_requests_total", "method, route, status", 'status=~"4.."'),
                "{{status}} {{method}} {{route}}",
            ),
        ),
    ),
    Panel(
        "Latency quantiles by operation",
        "p50, p95 and p99 from the monitor's latency histograms.",
        "s",
        tuple(
            Target(
                _quantile(q, "coordination_operation_duration_seconds", "operation", _OP),
                f"p{q * 100:g} {{{{operation}}}}",
            )
            for q in (0.5, 0.95, 0.99)
        ),
    ),
    Panel(
        "HTTP latency p95 by route",
        "Time until the response body was sent, 95th percentile, by route template.",
        "s",
        (
            Target(
                _quantile(0.95, "coordination_http_request_duration_seconds", "method, route"),
                "p95 {{method}} {{route}}",
            ),
        ),
    ),
    Panel(
        "Error ratio by operation",
        "The share of an operation's calls that failed (after their retries; refusals "
        "by a breaker, a bulkhead or a rate limit included).",
        "percentunit",
        (
            Target(
                _ratio(
                    "coordination_operations_total",
                    "operation",
                    f'{_OP},outcome="failure"',
                    _OP,
                ),
                "{{operation}}",
            ),
        ),
    ),
    Panel(
        "Errors by type and severity",
        "Errors raised by protected operations per second, by exception class and by "
        "configured severity.",
        "ops",
        (
            Target(_rate("coordination_errors_total", "error_type"), "{{error_type}}"),
            Target(_rate("coordination_errors_by_severity_total", "severity"), "{{severity}}"),
        ),
    ),
    Panel(
        "Circuit breaker states",
        "0 CLOSED, 1 HALF_OPEN, 2 OPEN, by breaker.",
        "short",
        (
            Target(
                f"max by (breaker) (coordination_circuit_breaker_state{{{_BREAKER}}})",
                "{{breaker}}",
            ),
        ),
        mappings=((0, "CLOSED", "green"), (1, "HALF_OPEN", "yellow"), (2, "OPEN", "red")),
    ),
    Panel(
        "Circuit breaker transitions",
        "State changes in each interval, by breaker and transition (CLOSED->OPEN, "
        "OPEN->HALF_OPEN, HALF_OPEN->CLOSED, ...).",
        "short",
        (
            Target(
                "sum by (breaker, transition) (increase("
                f"coordination_circuit_breaker_transitions_total{{{_BREAKER}}}{_RATE}))",
                "{{breaker}} {{transition}}",
            ),
        ),
    ),
    Panel(
        "Retries and rejections",
        "Retries, calls an open breaker refused, failures a spent retry budget raised at "
        "once, and attempts stopped by a timeout, per second by operation.",
        "ops",
        tuple(
            Target(
                _rate(f"coordination_{name}_total", "operation", _OP), f"{label} {{{{operation}}}}"
            )
            for name, label in (
                ("retries", "retries"),
                ("circuit_breaker_rejections", "breaker rejected"),
                ("retry_budget_exhausted", "budget spent"),
                ("timeouts", "timed out"),
            )
        ),
    ),
    Panel(
        "Rate limiting",
        "Calls an operation's rate limit refused, and requests the middleware answered 429 "
        "(client or route limits), per second.",
        "ops",
        (
            Target(_rate("coordination_rate_limited_total", "operation", _OP), "{{operation}}"),
            Target(f"sum(rate(coordination_http_rate_limited_total{_RATE}))", "HTTP 429 (clients)"),
        ),
    ),
    Panel(
        "Bulkheads and adaptive limits",
        "Each adaptive concurrency limit and the calls holding it (summed over processes), "
        "calls shed by severity, and full bulkheads per second.",
        "short",
        (
            Target("sum by (group) (coordination_concurrency_limit)", "limit {{group}}"),
            Target("sum by (group) (coordination_concurrency_in_flight)", "in flight {{group}}"),
            Target(
                _rate("coordination_concurrency_shed_total", "group, severity"),
                "shed {{severity}} {{group}} /s",
            ),
            Target(
                _rate("coordination_bulkhead_rejections_total", "operation", _OP),
                "bulkhead full {{operation}} /s",
            ),
        ),
    ),
    Panel(
        "Validation failures by rule set",
        "Validation errors per second by rule set and error code, and the messages "
        "found invalid per second by rule set.",
        "ops",
        (
            Target(
                _rate("coordination_validation_failures_total", "rule_set, code"),
                "{{rule_set}} {{code}}",
            ),
            Target(
                _rate("coordination_validations_total", "rule_set", 'result="invalid"'),
                "invalid messages {{rule_set}}",
            ),
        ),
    ),
    Panel(
        "Dead letters",
        "Dead letters in each event processor's store, journal entries in progress, and "
        "whether the store answered (1) or not (0).",
        "short",
        (
            Target(
                "sum by (store, namespace) (coordination_dead_letters)",
                "dead letters {{store}}/{{namespace}}",
            ),
            Target(
                "sum by (store, namespace) (coordination_dead_letters_pending)",
                "pending {{store}}/{{namespace}}",
            ),
            Target(
                "min by (store, namespace) (coordination_dead_letter_store_available)",
                "store available {{store}}/{{namespace}}",
            ),
        ),
    ),
    Panel(
        "Redis errors",
        "Redis commands that failed per second, by component kind (breaker, rate_limit, "
        "retry_budget, stream); the components run on their outage policy meanwhile.",
        "ops",
        (Target(_rate("coordination_redis_errors_total", "component"), "{{component}}"),),
    ),
)


def _datasource() -> dict[str, str]:
    return {"type": "prometheus", "uid": "${datasource}"}


def _panel(index: int, panel: Panel) -> dict[str, Any]:
    width, height = 12, 8
    defaults: dict[str, Any] = {"unit": panel.unit, "custom": {"lineWidth": 1, "fillOpacity": 10}}
    if panel.mappings:
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {
                    str(value): {"text": text, "color": color, "index": i}
                    for i, (value, text, color) in enumerate(panel.mappings)
                },
            }
        ]
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": _datasource(),
        "gridPos": {"h": height, "w": width, "x": (index % 2) * width, "y": (index // 2) * height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": _datasource(),
                "expr": target.expr,
                "legendFormat": target.legend,
                "range": True,
            }
            for i, target in enumerate(panel.targets)
        ],
    }


def grafana_dashboard(*, title: str = "coordination", uid: str = "coordination") -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (import it, or provision it as a file)."""
    if not title.strip():
        raise ConfigError("--title: must not be empty", field="title", value=title)
    # Grafana's uid: at most 40 characters of letters, digits, '-' and '_'.
    if not (
        0 < len(uid) <= 40 and uid.isascii() and uid.replace("-", "").replace("_", "").isalnum()
    ):
        raise ConfigError(
            f"--uid: must be 1 to 40 letters, digits, '-' or '_', got {quote(uid)}",
            field="uid",
            value=uid,
        )
    return {
        "uid": uid,
        "title": title,
        "description": "Operations, breakers, retries, limits, validation, dead letters and "
        "Redis of the coordination library (coordination dashboard).",
        "tags": ["coordination"],
        "timezone": "utc",
        "editable": True,
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "refresh": 1,
                },
                {
                    "name": "operation",
                    "label": "Operation",
                    "type": "query",
                    "datasource": _datasource(),
                    "definition": "label_values(coordination_operations_total, operation)",
                    "query": {
                        "query": "label_values(coordination_operations_total, operation)",
                        "refId": "operation",
                    },
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                    "allValue": VARIABLES_ALL["$operation"],
                    "current": {"text": "All", "value": "$__all"},
                    "sort": 1,
                },
            ]
        },
        "panels": [_panel(i, panel) for i, panel in enumerate(PANELS)],
    }


def run_dashboard(args: argparse.Namespace) -> int:
    """The ``coordination dashboard`` command: the JSON model on stdout (or ``--output``)."""
    text = json.dumps(grafana_dashboard(title=args.title, uid=args.uid), indent=2) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    write_files([(args.output, text, "output")])
    return 0
