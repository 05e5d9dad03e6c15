"""The checks every message passes before a rule (or the JSON-Schema engine) sees it.

jsonschema-rs walks data recursively in native code: a dict nested 100 000 deep kills the
process with a native stack overflow, and a cycle never ends. It also lets sets, bytes,
arbitrary objects and NaN through wherever a schema does not constrain them, and raises a
bare ``ValueError`` on a non-string key. So depth, cycles, sizes and JSON-compatibility
are checked here, in bounded time and memory, for every rule set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._config import CoordinationConfig
from .._redact import REDACTED, safe_repr
from ._result import ErrorCode, ValidationIssue, field_label, json_pointer

__all__ = ["MessageLimits", "check_structure", "is_flat_and_clean"]

# Shared references are legal (they are not cycles), but expanding them can make a small
# object describe a huge document; the walk counts every value it visits against this
# multiple of max_items.
_VALUES_PER_ITEM_LIMIT = 10
# A hostile message can hold millions of bad values; a report of the first ones is enough.
_MAX_STRUCTURE_ISSUES = 100

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """The size limits a message must respect (from ``CoordinationConfig``)."""

    max_depth: int
    max_string_length: int
    max_items: int
    fail_fast: bool = False

    @classmethod
    def from_config(cls, config: CoordinationConfig) -> MessageLimits:
        return cls(
            max_depth=config.validation_max_depth,
            max_string_length=config.validation_max_string_length,
            max_items=config.validation_max_items,
            fail_fast=config.validation_fail_fast,
        )

    @property
    def max_values(self) -> int:
        return self.max_items * _VALUES_PER_ITEM_LIMIT


def is_flat_and_clean(data: dict[Any, Any], limits: MessageLimits) -> bool:
    """True for the common message: a dict of string keys and in-limit scalar values.

    The hot path of every validation, so it compares exact classes only; anything else
    (nesting, subclasses, NaN) returns False and goes through ``check_structure``.
    """
    if len(data) > limits.max_items:
        return False
    max_length = limits.max_string_length
    for key, value in data.items():
        cls = value.__class__
        if cls is str:
            if len(value) > max_length:
                return False
        elif cls is float:
            if value - value:  # NaN and ±inf give NaN (truthy); finite values give 0.0
                return False
        elif cls is not int and cls is not bool and value is not None:
            return False
        if key.__class__ is not str:
            return False
    return True


def check_structure(
    data: Any,
    limits: MessageLimits,
    *,
    rule_set: str | None,
    is_secret_path: Callable[[Path], bool],
) -> list[ValidationIssue]:
    """Every way ``data`` is not a well-formed, in-limit JSON object (empty: it is).

    Iterative (no recursion), so its own stack is never at risk; it stops descending at
    ``max_depth`` and at cycles, and stops visiting after ``max_values`` values.
    """
    issues: list[ValidationIssue] = []
    wanted = 1 if limits.fail_fast else _MAX_STRUCTURE_ISSUES

    def add(code: ErrorCode, path: Path, text: str) -> bool:
        where = field_label(path)
        issues.append(
            ValidationIssue(code.value, path, json_pointer(path), rule_set, f"{where}: {text}")
        )
        return len(issues) >= wanted

    if not isinstance(data, dict):
        add(ErrorCode.NOT_A_MAPPING, (), f"must be a mapping, got {_describe(data, ())}")
        return issues

    # Entries are (value, path, leaving): ``leaving`` marks the exit from a container,
    # so ``on_path`` holds exactly the containers between the root and the current value.
    stack: list[tuple[Any, Path, bool]] = [(data, (), False)]
    on_path: set[int] = set()
    children: list[tuple[Any, Path, bool]] = []
    visited = 0
    while stack:
        value, path, leaving = stack.pop()
        if leaving:
            on_path.discard(id(value))
            continue
        visited += 1
        if visited > limits.max_values:
            add(ErrorCode.TOO_LARGE, (), f"holds more than {limits.max_values} values in all")
            break
        if isinstance(value, str):
            if len(value) > limits.max_string_length and add(
                ErrorCode.STRING_TOO_LONG,
                path,
                f"must be at most {limits.max_string_length} characters, got {len(value)}",
            ):
                break
        elif value is None or isinstance(value, int):  # bool is an int
            continue
        elif isinstance(value, float):
            if not math.isfinite(value) and add(
                ErrorCode.NOT_FINITE, path, f"must be a finite number, got {value!r}"
            ):
                break
        elif isinstance(value, dict | list | tuple):
            stop = _enter(value, path, limits, on_path, add)
            if stop is None:
                continue
            if stop:
                break
            stack.append((value, path, True))
            on_path.add(id(value))
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        if add(
                            ErrorCode.NON_STRING_KEY,
                            (*path, safe_repr(key, 40)),
                            f"keys must be strings, got {type(key).__name__} {safe_repr(key, 40)}",
                        ):
                            return issues
                        continue
                    children.append((item, (*path, key), False))
            else:
                children.extend((item, (*path, index), False) for index, item in enumerate(value))
            stack.extend(reversed(children))  # popped in document order
            children.clear()
        elif add(
            ErrorCode.NOT_JSON,
            path,
            f"must be a JSON value, got {_describe(value, path, is_secret_path)}",
        ):
            break
    return issues


def _enter(
    value: dict[Any, Any] | list[Any] | tuple[Any, ...],
    path: Path,
    limits: MessageLimits,
    on_path: set[int],
    add: Callable[[ErrorCode, Path, str], bool],
) -> bool | None:
    """Whether the walk may descend into ``value``: False yes, None skip it, True stop."""
    depth = len(path) + 1
    if depth > limits.max_depth:
        return add(ErrorCode.TOO_DEEP, path, f"nests deeper than {limits.max_depth} levels") or None
    if id(value) in on_path:
        return add(ErrorCode.CYCLE, path, "contains itself (a cyclic reference)") or None
    if len(value) > limits.max_items:
        return (
            add(
                ErrorCode.TOO_MANY_ITEMS,
                path,
                f"must have at most {limits.max_items} items, got {len(value)}",
            )
            or None
        )
    return False


def _describe(value: Any, path: Path, is_secret_path: Callable[[Path], bool] | None = None) -> str:
    kind = type(value).__name__
    if is_secret_path is not None and is_secret_path(path):
        return f"{kind} {REDACTED}"
    return f"{kind} {safe_repr(value, 40)}"
