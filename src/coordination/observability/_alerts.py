"""``coordination alerts``: Prometheus alerting rules over the library's series.

Each rule says when an operator should look (a breaker that stays open, an error ratio, a
retry storm, dead letters growing, a validation spike, a Redis outage) and points at its
runbook, a section of docs/troubleshooting.md named after the alert. Thresholds and
durations are options, checked here so a typo is a one-line error, never a rule file
Prometheus refuses. ``tests/operators`` runs ``promtool check rules`` and ``promtool test
rules`` on the output and loads it into a real Prometheus.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .._errors import ConfigError
from .._quote import quote
from ._output_files import write_files

__all__ = [
    "ALERT_NAMES",
    "AlertOptions",
    "alert_rules",
    "format_duration",
    "parse_duration",
    "prometheus_config",
    "rules_text",
    "run_alerts",
]

# Prometheus' own duration grammar (model.ParseDuration), units in descending order.
_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
# Longer than any sensible window or pending period; past it Prometheus' lookback and
# retention (15 days by default) would make the rule silently see nothing.
_MAX_SECONDS = 7 * 86400
_MAX_URL = 2000
# An alert's runbook_url is a link in Alertmanager's and Grafana's pages: an address with
# a scheme must be a web one (not javascript: or data:), else a path (the default's).
_RUNBOOK_ADDRESS = re.compile(r"(?i:https?://)|(?![A-Za-z][A-Za-z0-9+.-]*:)")
ALERT_NAMES = (
    "CoordinationCircuitBreakerOpen",
    "CoordinationErrorRatioHigh",
    "CoordinationRetryStorm",
    "CoordinationDeadLettersGrowing",
    "CoordinationDeadLetterStoreDown",
    "CoordinationValidationFailureSpike",
    "CoordinationRedisOutage",
)


def parse_duration(text: str, *, field: str) -> int:
    """Seconds of a Prometheus duration such as ``5m``, ``90s`` or ``1h30m`` (1 s to 7 d)."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) and text.isascii() else None
    if match is None or not any(match.groups()):
        raise ConfigError(
            f"--{field.replace('_', '-')}: expected a duration such as 30s, 5m or 1h30m, "
            f"got {quote(text)}",
            field=field,
            value=text,
            source="command line",
        )
    seconds = sum(
        int(amount) * unit
        for amount, (_, unit) in zip(match.groups(), _UNITS, strict=True)
        if amount is not None
    )
    if not 1 <= seconds <= _MAX_SECONDS:
        raise ConfigError(
            f"--{field.replace('_', '-')}: must be between 1s and 7d, got {quote(text)}",
            field=field,
            value=text,
            source="command line",
        )
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest Prometheus spelling of ``seconds``: 300 → ``5m``, 5400 → ``1h30m``."""
    parts = []
    for suffix, unit in _UNITS[2:]:  # days and below: a week reads better as 7d than 1w
        amount, seconds = divmod(seconds, unit)
        if amount:
            parts.append(f"{amount}{suffix}")
    return "".join(parts) or "0s"


def _ratio(value: float, *, field: str, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        ok = False
    else:
        ok = 0 < value <= maximum
    if not ok:
        raise ConfigError(
            f"--{field.replace('_', '-')}: must be a number above 0 and at most {maximum:g}, "
            f"got {quote(value)}",
            field=field,
            value=value,
            source="command line",
        )
    return float(value)


@dataclass(frozen=True, slots=True)
class AlertOptions:
    """The thresholds, as the command's options give them (checked by ``checked()``)."""

    breaker_open_for: str = "5m"
    error_ratio: float = 0.05
    retry_ratio: float = 0.5
    validation_failure_ratio: float = 0.2
    dead_letters_window: str = "15m"
    outage_for: str = "2m"
    window: str = "5m"
    pending_for: str = "5m"
    runbook_url: str = "docs/troubleshooting.md"

    def checked(self) -> dict[str, Any]:
        """Every option validated and in the spelling the rule file uses."""
        url = self.runbook_url
        if (
            not isinstance(url, str)
            or not url
            or len(url) > _MAX_URL
            or not url.isprintable()
            or any(c.isspace() or c in "#{}" for c in url)
            or not _RUNBOOK_ADDRESS.match(url)
        ):
            raise ConfigError(
                "--runbook-url: expected the address of docs/troubleshooting.md (http, https "
                f"or a path; printable, no spaces, no '#', at most {_MAX_URL} characters), "
                f"got {quote(url)}",
                field="runbook_url",
                value=url,
                source="command line",
            )
        durations = {
            name: format_duration(parse_duration(getattr(self, name), field=name))
            for name in (
                "breaker_open_for",
                "dead_letters_window",
                "outage_for",
                "window",
                "pending_for",
            )
        }
        return {
            **durations,
            "error_ratio": _ratio(self.error_ratio, field="error_ratio", maximum=1),
            # A call may be retried several times: a ratio above 1 is a real threshold.
            "retry_ratio": _ratio(self.retry_ratio, field="retry_ratio", maximum=100),
            "validation_failure_ratio": _ratio(
                self.validation_failure_ratio, field="validation_failure_ratio", maximum=1
            ),
            "runbook_url": url,
        }


def _rule(
    name: str,
    expr: str,
    for_: str,
    severity: str,
    summary: str,
    description: str,
    runbook: str,
) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            # GitHub's anchor of a "### <AlertName>" heading: the name in lower case.
            "runbook_url": f"{runbook}#{name.lower()}",
        },
    }


def _rate(series: str, by: str, window: str, selector: str = "") -> str:
    selected = f"{series}{{{selector}}}" if selector else series
    return f"sum by ({by}) (rate({selected}[{window}]))"


def alert_rules(options: AlertOptions | None = None) -> dict[str, Any]:
    """The rule file as data: ``groups:`` with one group, ``coordination``."""
    o = (options or AlertOptions()).checked()
    window, pending, runbook = o["window"], o["pending_for"], o["runbook_url"]
    operation = "job, component, operation"
    failed, invalid = 'outcome="failure"', 'result="invalid"'
    rule_set = "job, component, rule_set"
    rules = [
        _rule(
            "CoordinationCircuitBreakerOpen",
            "max by (job, instance, component, breaker) (coordination_circuit_breaker_state) > 0",
            o["breaker_open_for"],
            "critical",
            "Breaker {{ $labels.breaker }} has not closed for " + o["breaker_open_for"],
            "The circuit breaker {{ $labels.breaker }} of {{ $labels.instance }} has been open "
            "or half-open (state {{ $value }}: 1 HALF_OPEN, 2 OPEN) for "
            f"{o['breaker_open_for']}: its calls fail at once.",
            runbook,
        ),
        _rule(
            "CoordinationErrorRatioHigh",
            f"{_rate('coordination_operations_total', operation, window, failed)}"
            f" / {_rate('coordination_operations_total', operation, window)}"
            f" > {o['error_ratio']:g}",
            pending,
            "warning",
            "{{ $labels.operation }} fails {{ $value | humanizePercentage }} of its calls",
            f"More than {o['error_ratio'] * 100:g}% of the calls "
            "of {{ $labels.operation }} ({{ $labels.job }}, component {{ $labels.component }}) "
            f"failed over the last {window}.",
            runbook,
        ),
        _rule(
            "CoordinationRetryStorm",
            f"{_rate('coordination_retries_total', operation, window)}"
            f" / {_rate('coordination_operations_total', operation, window)}"
            f" > {o['retry_ratio']:g}",
            pending,
            "warning",
            "Retry storm on {{ $labels.operation }}: {{ $value | humanize }} retries per call",
            "{{ $labels.operation }} ({{ $labels.job }}) made more than "
            f"{o['retry_ratio']:g} retries per call over the last {window}: the dependency "
            "is sent more calls while it is failing.",
            runbook,
        ),
        _rule(
            "CoordinationDeadLettersGrowing",
            "max by (job, component, store, namespace) "
            f"(delta(coordination_dead_letters[{o['dead_letters_window']}])) > 0",
            pending,
            "warning",
            "Dead letters of {{ $labels.store }}/{{ $labels.namespace }} are growing",
            "{{ $value | humanize }} more dead letters in the last "
            f"{o['dead_letters_window']} ({{{{ $labels.job }}}}, component "
            "{{ $labels.component }}): events keep failing their handler or their rules.",
            runbook,
        ),
        _rule(
            "CoordinationDeadLetterStoreDown",
            "min by (job, instance, component, store, namespace) "
            "(coordination_dead_letter_store_available) == 0",
            o["outage_for"],
            "critical",
            "The dead-letter store {{ $labels.store }}/{{ $labels.namespace }} does not answer",
            "The event processor of {{ $labels.instance }} cannot count its dead-letter store: "
            "failed events cannot be kept while it is down.",
            runbook,
        ),
        _rule(
            "CoordinationValidationFailureSpike",
            f"{_rate('coordination_validations_total', rule_set, window, invalid)}"
            f" / {_rate('coordination_validations_total', rule_set, window)}"
            f" > {o['validation_failure_ratio']:g}",
            pending,
            "warning",
            "{{ $value | humanizePercentage }} of the messages break {{ $labels.rule_set }}",
            f"More than {o['validation_failure_ratio'] * 100:g}% of the messages validated against "
            "{{ $labels.rule_set }} ({{ $labels.job }}) were invalid over the last "
            f"{window}: a client or a producer changed what it sends.",
            runbook,
        ),
        _rule(
            "CoordinationRedisOutage",
            f"{_rate('coordination_redis_errors_total', 'job, instance, component', window)} > 0",
            o["outage_for"],
            "critical",
            "Redis commands fail on {{ $labels.instance }} ({{ $labels.component }})",
            "Redis commands of the {{ $labels.component }} components of "
            "{{ $labels.instance }} have failed for " + o["outage_for"] + ": breakers and "
            "limits run on their outage_policy (each process on its own) meanwhile.",
            runbook,
        ),
    ]
    return {"groups": [{"name": "coordination", "rules": rules}]}


def rules_text(options: AlertOptions | None = None) -> str:
    """The rule file as YAML, as ``coordination alerts`` prints it."""
    header = "# Prometheus alerting rules of the coordination library (coordination alerts).\n"
    return header + yaml.safe_dump(
        alert_rules(options), sort_keys=False, allow_unicode=True, width=1000
    )


def options_from(args: argparse.Namespace | Mapping[str, Any]) -> AlertOptions:
    """The command's parsed options as ``AlertOptions``."""
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    names = AlertOptions.__dataclass_fields__
    return AlertOptions(**{k: v for k, v in given.items() if k in names and v is not None})


# host:port, as a Prometheus static target: a name, an IPv4 address or a bracketed IPv6.
_TARGET = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\]):\d{1,5}")


def prometheus_config(rules: str, targets: list[str], *, interval: str = "15s") -> str:
    """A minimal ``prometheus.yml``: the rule file loaded, each target scraped (job
    ``coordination``), rules evaluated as often as the targets are scraped."""
    for target in targets:
        if not _TARGET.fullmatch(target) or not 0 < int(target.rsplit(":", 1)[1]) < 65536:
            raise ConfigError(
                f"--scrape: expected host:port such as 127.0.0.1:8000, got {quote(target)}",
                field="scrape",
                value=target,
                source="command line",
            )
    every = format_duration(parse_duration(interval, field="scrape_interval"))
    config = {
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "rule_files": [rules],
        "scrape_configs": [
            {"job_name": "coordination", "static_configs": [{"targets": list(targets)}]}
        ],
    }
    header = "# Prometheus scraping the coordination library (coordination alerts).\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def run_alerts(args: argparse.Namespace) -> int:
    """The ``coordination alerts`` command: the rule file on stdout (or ``--output``);
    with ``--prometheus-config``, also a Prometheus configuration loading it."""
    text = rules_text(options_from(args))
    config_path = getattr(args, "prometheus_config", None)
    if config_path is not None:
        if args.output in (None, "-"):
            raise ConfigError(
                "--prometheus-config: needs --output, the rule file it loads",
                field="prometheus_config",
                value=config_path,
                source="command line",
            )
        config = prometheus_config(
            os.path.abspath(args.output),
            list(args.scrape or ["127.0.0.1:8000"]),
            interval=args.scrape_interval,
        )
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    outputs = [(args.output, text, "output")]
    if config_path is not None:
        outputs.append((config_path, config, "prometheus-config"))
    write_files(outputs)
    return 0
