"""The ``coordination`` command: ``validate``, ``rules check``, ``config``, ``demo``.

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
    demo.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    demo.add_argument("--redis", metavar="URL", default=None, help="share state through Redis")
    demo.set_defaults(handler="demo")
    return parser


def _run_config(args: argparse.Namespace) -> int:
    from ._config import describe_config, unknown_environment_variables

    with warnings.catch_warnings():
        # The unknown variables are listed below, not warned about as well.
        warnings.simplefilter("ignore", ConfigWarning)
        rows = describe_config(args.file)
    unknown = unknown_environment_variables()
    if args.format == "json":
        shown: dict[str, Any] = {name: {"value": v, "source": s} for name, v, s in rows}
        if unknown:
            shown["unknown_environment_variables"] = [
                {"name": name, "did_you_mean": close} for name, close in unknown
            ]
        print(json.dumps(shown, indent=2))
        return 0
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        print(f"{name:<{width}}  {value!r:<36}  {source}")
    if unknown:
        print("\nunknown environment variables (ignored):")
        for name, close in unknown:
            print(f"  {name}" + (f"  did you mean {close}?" if close else ""))
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
