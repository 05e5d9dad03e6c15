"""``coordination validate`` and ``coordination rules check``.

Exit status: 0 valid (or every rule file compiles), 1 invalid, 2 usage or rule errors.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from .._errors import RuleSetError
from .._logging import library_logger
from .._yaml import BoundedSafeLoader, yaml_problem
from ._loader import rule_files
from ._validator import CoordinationValidator, compile_rule_file

__all__ = ["run_rules_check", "run_validate"]


class _DataLoader(BoundedSafeLoader):
    """YAML as JSON sees it: ``2024-01-01`` stays a string instead of becoming a date.

    Bounded like every YAML this library reads; a message may be larger than a rule file,
    so it may expand to more nodes.
    """

    max_nodes = 1_000_000
    max_characters = 100_000_000
    allow_surrogates = True  # the validator reports them as issues


_DataLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _fail(message: str) -> int:
    print(f"coordination: {message}", file=sys.stderr)
    return 2


class _UnreadableDocument(Exception):
    """The input is neither JSON nor YAML this command can read; the message says why."""


def _read_document(name: str, stdin: TextIO) -> Any:
    """The JSON (or YAML) document in file ``name`` (``-``: standard input).

    Raises ``OSError``/``UnicodeDecodeError`` when it cannot be read, and
    ``_UnreadableDocument`` when it is not a document: never quoting its content.
    """
    text = stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except RecursionError:
        raise _UnreadableDocument("its JSON nests too deeply to read") from None
    except json.JSONDecodeError as exc:
        json_problem = f"{exc.msg}, line {exc.lineno}, column {exc.colno}"
    except ValueError as exc:  # JSON, but a number Python cannot read (4300+ digits)
        detail = str(exc).split(";")[0][:160]
        raise _UnreadableDocument(
            f"its JSON holds a number Python cannot read ({detail})"
        ) from None
    loader: _DataLoader | None = None
    try:
        loader = _DataLoader(text)  # the reader checks the characters here already
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        where, problem = yaml_problem(exc)
        raise _UnreadableDocument(
            f"neither JSON nor YAML (JSON: {json_problem}; YAML: {problem}{where})"
        ) from exc
    except RecursionError:  # the loader's depth bound makes this unreachable: a net
        raise _UnreadableDocument("its YAML nests too deeply to read") from None
    finally:
        if loader is not None:
            loader.dispose()


def run_validate(args: argparse.Namespace) -> int:
    """Validate one document against one rule set; print a table or JSON."""
    if not rule_files(args.rules):
        return _fail(f"no rule files at {args.rules} (a YAML file or a folder of them)")
    # rules first: a broken rule file is reported before any input is read
    with _quiet_library_log():
        validator = CoordinationValidator(args.rules)  # limits from COORDINATION_* variables
    rule_set = validator.rule_set(args.rule_set)
    try:
        document = _read_document(args.input, sys.stdin)
    except UnicodeDecodeError as exc:
        return _fail(f"cannot read {args.input}: not UTF-8 text (byte {exc.start + 1})")
    except OSError as exc:
        return _fail(f"cannot read {args.input}: {exc}")
    except _UnreadableDocument as exc:
        return _fail(f"cannot read {args.input}: {exc}")
    result = validator.validate(document, rule_set)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    elif result.is_valid:
        print(f"valid: {args.input} satisfies rule set {args.rule_set!r}")
    else:
        count = len(result.errors)
        print(f"invalid: {args.input} breaks rule set {args.rule_set!r} ({count} errors)")
        rows = [(str(e.code), e.pointer or "/", e.message) for e in result.errors]
        _print_table(("CODE", "POINTER", "MESSAGE"), rows)
    return 0 if result.is_valid else 1


@contextlib.contextmanager
def _quiet_library_log() -> Iterator[None]:
    """Keep the validator's own log of a broken rule file off stderr.

    The command prints the error itself, in one line; without a handler of the
    application's, Python's last-resort handler would print the same error once more.
    """
    library = library_logger()
    quiet = logging.NullHandler()
    library.addHandler(quiet)
    try:
        yield
    finally:
        library.removeHandler(quiet)


def run_rules_check(args: argparse.Namespace) -> int:
    """Load and compile every rule file at ``args.path``; report each file."""
    files = rule_files(args.path)
    if not files:
        return _fail(f"no rule files at {args.path} (a YAML file or a folder of them)")
    reports: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for file in files:
        report: dict[str, Any] = {"file": str(file), "rule_sets": [], "error": None}
        try:
            compiled = compile_rule_file(file)
        except RuleSetError as exc:
            report["error"] = str(exc)
            compiled = []
        for rule_set in compiled:
            report["rule_sets"].append(rule_set.name)
            if rule_set.name in seen and report["error"] is None:
                report["error"] = (
                    f"rule set {rule_set.name!r} at {rule_set.source} is already defined at "
                    f"{seen[rule_set.name]}"
                )
            seen.setdefault(rule_set.name, str(rule_set.source))
        reports.append(report)
    ok = all(r["error"] is None for r in reports)
    if args.format == "json":
        print(json.dumps({"ok": ok, "files": reports}, indent=2, ensure_ascii=False))
    else:
        rows = [
            (
                "ok" if r["error"] is None else "ERROR",
                r["file"],
                r["error"] or ", ".join(r["rule_sets"]),
            )
            for r in reports
        ]
        _print_table(("STATUS", "FILE", "RULE SETS / PROBLEM"), rows)
    return 0 if ok else 2


def _print_table(header: tuple[str, str, str], rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(2)]
    for row in [header, *rows]:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
