"""The ``coordination`` command: ``validate``, ``rules check``, ``config``, ``demo``,
``dashboard``, ``alerts``.

Each subcommand's work lives beside the capability it belongs to and is imported only
when that subcommand runs, so ``coordination --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TextIO

from ._errors import ConfigError, ConfigWarning
from ._version import __version__

# subcommand -> "module:function"; each function takes the parsed arguments and returns
# the exit status.
_HANDLERS = {
    "validate": "coordination.validation._cli:run_validate",
    "rules-check": "coordination.validation._cli:run_rules_check",
    "demo": "coordination.demo:run_demo",
    "dashboard": "coordination.observability._dashboard:run_dashboard",
    "alerts": "coordination.observability._alerts:run_alerts",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coordination",
        description="Validation, fault tolerance and observability for existing services.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="validate a JSON or YAML document against a rule set",
        description="Exit status: 0 valid, 1 invalid, 2 usage or rule errors.",
    )
    validate.add_argument("--rules", required=True, help="rule file or folder of rule files")
    validate.add_argument("--rule-set", required=True, help="name of the rule set to apply")
    validate.add_argument("--format", choices=("table", "json"), default="table")
    validate.add_argument("input", help="JSON or YAML file to validate, or - for stdin")
    validate.set_defaults(handler="validate")

    rules = commands.add_parser("rules", help="work with rule files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_commands.add_parser("check", help="lint rule files: load and compile each")
    check.add_argument("path", help="rule file or folder of rule files")
    check.add_argument("--format", choices=("table", "json"), default="table")
    check.set_defaults(handler="rules-check")

    config = commands.add_parser(
        "config", help="show the effective configuration and where each value comes from"
    )
    config.add_argument("--file", default=None, help="YAML configuration file")
    config.add_argument("--format", choices=("table", "json"), default="table")
    config.set_defaults(handler="config")

    demo = commands.add_parser(
        "demo", help="run a failing service under coordination and watch it cope"
    )
    demo.add_argument("--duration", type=float, default=20.0, help="seconds of load (20)")
    demo.add_argument(
        "--serve", action="store_true", help="keep serving afterwards (status page, metrics)"
    )
    demo.add_argument(
        "--port",
        type=int,
        default=0,
        help="port to listen on (0: a free one; with --redis, the first worker's)",
    )
    demo.add_argument("--redis", metavar="URL", default=None, help="share state through Redis")
    demo.set_defaults(handler="demo")
    _add_operator_commands(commands)
    return parser


def _add_operator_commands(commands: Any) -> None:
    """``dashboard`` and ``alerts``: files for Grafana and Prometheus, printed."""
    dashboard = commands.add_parser(
        "dashboard",
        help="print a Grafana dashboard (JSON model) over the library's Prometheus series",
        description="Import the output in Grafana (Dashboards > New > Import), or provision "
        "it as a file; its datasource variable picks the Prometheus data source.",
    )
    dashboard.add_argument("--title", default="coordination", help="dashboard title")
    dashboard.add_argument("--uid", default="coordination", help="dashboard uid (for links)")
    dashboard.add_argument("--output", "-o", default=None, help="write to a file, not stdout")
    dashboard.set_defaults(handler="dashboard")

    alerts = commands.add_parser(
        "alerts",
        help="print Prometheus alerting rules (breakers, errors, retries, dead letters, ...)",
        description="A rule file for Prometheus' rule_files; check it with promtool check "
        "rules. Durations use Prometheus' spelling (30s, 5m, 1h30m); ratios are shares "
        "(0.05 is 5 %%). Each alert's runbook_url points into docs/troubleshooting.md.",
    )
    alerts.add_argument(
        "--breaker-open-for", default="5m", help="a breaker not closed this long pages (5m)"
    )
    alerts.add_argument(
        "--error-ratio", type=float, default=0.05, help="share of failed calls (0.05)"
    )
    alerts.add_argument(
        "--retry-ratio", type=float, default=0.5, help="retries per call: a retry storm (0.5)"
    )
    alerts.add_argument(
        "--validation-failure-ratio",
        type=float,
        default=0.2,
        help="share of invalid messages of a rule set (0.2)",
    )
    alerts.add_argument(
        "--dead-letters-window", default="15m", help="dead letters grew within this (15m)"
    )
    alerts.add_argument(
        "--outage-for", default="2m", help="Redis failing, dead-letter store down (2m)"
    )
    alerts.add_argument("--window", default="5m", help="the rates' window (5m)")
    alerts.add_argument(
        "--pending-for", default="5m", help="how long a ratio stays above its threshold (5m)"
    )
    alerts.add_argument(
        "--runbook-url",
        default="docs/troubleshooting.md",
        help="where your copy of docs/troubleshooting.md is served (the anchors are added)",
    )
    alerts.add_argument("--output", "-o", default=None, help="write to a file, not stdout")
    alerts.add_argument(
        "--prometheus-config",
        metavar="PATH",
        default=None,
        help="also write a prometheus.yml loading --output and scraping --scrape",
    )
    alerts.add_argument(
        "--scrape",
        metavar="HOST:PORT",
        action="append",
        default=None,
        help="a target for --prometheus-config (repeatable; 127.0.0.1:8000)",
    )
    alerts.add_argument("--scrape-interval", default="15s", help="for --prometheus-config (15s)")
    alerts.set_defaults(handler="alerts")


def _run_config(args: argparse.Namespace) -> int:
    from ._config import (
        deprecated_environment_variables,
        describe_layers,
        unknown_environment_variables,
    )

    with warnings.catch_warnings(record=True) as caught:
        # The unknown and the deprecated variables are listed below, not warned about
        # as well; an old spelling in the file is warned about on stderr, once.
        warnings.simplefilter("ignore", ConfigWarning)
        warnings.simplefilter("always", DeprecationWarning)
        rows, options = describe_layers(args.file)
    unknown = unknown_environment_variables()
    deprecated = deprecated_environment_variables()
    old_variables = tuple(f"{old!r} " for old, _, _ in deprecated)
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, DeprecationWarning) and not text.startswith(old_variables):
            print(f"coordination: warning: {text}", file=sys.stderr)
    if args.format == "json":
        shown: dict[str, Any] = {name: {"value": v, "source": s} for name, v, s in rows}
        by_operation: dict[str, dict[str, Any]] = {}
        for operation, option, value, source in options:
            by_operation.setdefault(operation, {})[option] = {"value": value, "source": source}
        shown["operations"] = {"value": by_operation, "source": shown["operations"]["source"]}
        if unknown:
            shown["unknown_environment_variables"] = [
                {"name": name, "did_you_mean": close} for name, close in unknown
            ]
        if deprecated:
            shown["deprecated_environment_variables"] = [
                {"name": old, "use": new, "read": read} for old, new, read in deprecated
            ]
        print(json.dumps(shown, indent=2, default=repr))
        return 0
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        if name == "operations" and options:
            value = f"<{len({operation for operation, *_ in options})} operation(s), below>"
            print(f"{name:<{width}}  {value:<36}  {source}")
            continue
        print(f"{name:<{width}}  {value!r:<36}  {source}")
    if options:
        print("\noperations (over the settings above; the code's own options win):")
        names = max(len(operation) for operation, *_ in options)
        keys = max(len(option) for _, option, _, _ in options)
        for operation, option, value, source in options:
            print(f"  {operation:<{names}}  {option:<{keys}}  {value!r:<20}  {source}")
    if unknown:
        print("\nunknown environment variables (ignored):")
        for name, close in unknown:
            print(f"  {name}" + (f"  did you mean {close}?" if close else ""))
    if deprecated:
        print("\ndeprecated environment variables (renamed; read for one more release):")
        for old, new, read in deprecated:
            state = "read" if read else f"ignored: {new} is set"
            print(f"  {old}  use {new}  ({state})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    show_other_warning = warnings.showwarning

    def show_warning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        """A configuration warning as one line on stderr, like the command's errors."""
        if issubclass(category, ConfigWarning):
            print(f"coordination: warning: {message}", file=sys.stderr)
        else:
            show_other_warning(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            if args.handler == "config":
                return _run_config(args)
            module_name, _, function_name = _HANDLERS[args.handler].partition(":")
            handler = getattr(importlib.import_module(module_name), function_name)
            status: int = handler(args)
            return status
        except ConfigError as exc:  # RuleSetError too: a usage error, in one line
            print(f"coordination: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
