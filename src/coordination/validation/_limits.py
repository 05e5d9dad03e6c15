"""The checks every message passes before a rule (or the JSON-Schema engine) sees it.

jsonschema-rs walks data recursively in native code: a dict nested 100 000 deep kills the
process with a native stack overflow, and a cycle never ends. It also lets sets, bytes,
arbitrary objects and NaN through wherever a schema does not constrain them, and raises a
bare ``ValueError`` on a non-string key. It reads an int through its decimal text, so an
int longer than Python's int-to-string limit (4 300 digits) escapes every bound, and it
raises ``UnicodeEncodeError`` on a lone surrogate (``"\\ud800"``) in a key or a string —
but only where a keyword happens to read it. So depth, cycles, sizes, number sizes, text
and JSON-compatibility are checked here, in bounded time and memory, for every rule set.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._config import CoordinationConfig
from .._redact import REDACTED, safe_repr
from ._result import ErrorCode, ValidationIssue, field_label, json_pointer

__all__ = [
    "MessageLimits",
    "check_structure",
    "flat_checker",
    "is_flat_and_clean",
    "tree_checker",
]

# Shared references are legal (they are not cycles), but expanding them can make a small
# object describe a huge document; the walk counts every value it visits against this
# multiple of max_items.
_VALUES_PER_ITEM_LIMIT = 10
# A hostile message can hold millions of bad values; a report of the first ones is enough.
_MAX_STRUCTURE_ISSUES = 100
# The longest int (in decimal digits) a message may hold: CPython's default int-to-string
# limit, lowered to the process's own limit when that is set lower (the engine reads ints
# through their text). Longer ints are refused (``integer_too_large``), never mis-checked.
MAX_INT_DIGITS = 4300
# Ints inside ±2**63 are far below any limit: only larger ones are measured.
_SMALL_INT = 2**63
_surrogate = re.compile("[\ud800-\udfff]").search

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


def flat_checker(
    limits: MessageLimits, known_keys: frozenset[str] = frozenset()
) -> Callable[[dict[Any, Any]], bool]:
    """``is_clean(data)``: True for the common message, a dict of string keys and in-limit
    scalar values — made once per rule set, with the limits and keys bound.

    The hot path of every validation, so it compares exact classes only; anything else
    (nesting, subclasses, NaN, big ints, non-ASCII text holding a lone surrogate) returns
    False and goes through ``check_structure``. ``known_keys`` (the rule set's own field
    names, which are clean text) skip the key check: a set lookup costs less than asking.
    """
    max_items = limits.max_items
    max_length = limits.max_string_length
    small = _SMALL_INT
    surrogate = _surrogate

    def is_clean(data: dict[Any, Any]) -> bool:
        if len(data) > max_items:
            return False
        for key, value in data.items():
            cls = value.__class__
            if cls is str:
                # isascii() is one C call and rules out a lone surrogate for nearly any string
                if len(value) > max_length or not (value.isascii() or surrogate(value) is None):
                    return False
            elif cls is float:
                if value - value:  # NaN and ±inf give NaN (truthy); finite values give 0.0
                    return False
            elif cls is int:
                if not -small < value < small:
                    return False
            elif cls is not bool and value is not None:
                return False
            if key not in known_keys and (
                key.__class__ is not str or not (key.isascii() or surrogate(key) is None)
            ):
                return False
        return True

    return is_clean


def tree_checker(limits: MessageLimits) -> Callable[[dict[Any, Any]], bool]:
    """``is_clean(data)`` for nested messages: True when ``check_structure`` would find
    nothing — dicts of string keys, lists and in-limit scalars, within depth, items and
    values — made once, with the limits bound.

    The common event is a small tree (an order with its items), which ``check_structure``
    walks building a path for every value in case one is wrong. This walk builds nothing:
    exact classes only, and anything unusual (a tuple, a subclass, NaN, a big int, a
    lone surrogate, too deep — a cycle is too deep) returns False for ``check_structure``
    to describe.
    """
    max_items = limits.max_items
    max_length = limits.max_string_length
    max_depth = limits.max_depth
    max_values = limits.max_values
    small = _SMALL_INT
    surrogate = _surrogate

    def clean(container: dict[Any, Any] | list[Any], depth: int, budget: list[int]) -> bool:
        if depth > max_depth or len(container) > max_items:
            return False
        budget[0] -= len(container)
        if budget[0] < 0:
            return False
        if container.__class__ is dict:
            for key in container:
                if key.__class__ is not str or not (key.isascii() or surrogate(key) is None):
                    return False
            values: Any = container.values()
        else:
            values = container
        for value in values:
            cls = value.__class__
            if cls is str:
                if len(value) > max_length or not (value.isascii() or surrogate(value) is None):
                    return False
            elif cls is int:
                if not -small < value < small:
                    return False
            elif cls is float:
                if value - value:  # NaN and ±inf
                    return False
            elif cls is dict or cls is list:
                if not clean(value, depth + 1, budget):
                    return False
            elif cls is not bool and value is not None:
                return False
        return True

    def is_clean(data: dict[Any, Any]) -> bool:
        return clean(data, 1, [max_values - 1])

    return is_clean


def is_flat_and_clean(
    data: dict[Any, Any], limits: MessageLimits, known_keys: frozenset[str] = frozenset()
) -> bool:
    """``flat_checker(limits, known_keys)(data)``, for a single use."""
    return flat_checker(limits, known_keys)(data)


def int_digits_limit() -> int:
    """The most decimal digits an int may have to be checked exactly (see MAX_INT_DIGITS)."""
    process_limit = sys.get_int_max_str_digits()
    return MAX_INT_DIGITS if process_limit == 0 else min(process_limit, MAX_INT_DIGITS)


_POWERS_OF_TEN: dict[int, int] = {}


def int_too_large(value: int) -> bool:
    """Whether ``value`` has more digits than ``int_digits_limit()`` (measured without str())."""
    if -_SMALL_INT < value < _SMALL_INT:
        return False
    digits = int_digits_limit()
    bound = _POWERS_OF_TEN.get(digits)
    if bound is None:
        bound = _POWERS_OF_TEN.setdefault(digits, 10**digits)
    return not -bound < value < bound


def lone_surrogate_at(text: str) -> int | None:
    """The index of the first lone surrogate in ``text`` (not valid Unicode), or None."""
    if text.isascii():
        return None
    found = _surrogate(text)
    return None if found is None else found.start()


def check_structure(
    data: Any,
    limits: MessageLimits,
    *,
    rule_set: str | None,
    is_secret_path: Callable[[Path], bool],
    require_mapping: bool = True,
) -> list[ValidationIssue]:
    """Every way ``data`` is not a well-formed, in-limit JSON object (empty: it is).

    With ``require_mapping=False`` (a raw JSON Schema), any JSON value is a message: an
    array, a string, a number, a boolean or null. Iterative (no recursion), so its own
    stack is never at risk; it stops descending at ``max_depth`` and at cycles, and stops
    visiting after ``max_values`` values.
    """
    issues: list[ValidationIssue] = []
    wanted = 1 if limits.fail_fast else _MAX_STRUCTURE_ISSUES

    def add(code: ErrorCode, path: Path, text: str) -> bool:
        where = field_label(path)
        issues.append(
            ValidationIssue(code.value, path, json_pointer(path), rule_set, f"{where}: {text}")
        )
        return len(issues) >= wanted

    if require_mapping and not isinstance(data, dict):
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
            if len(value) > limits.max_string_length:
                if add(
                    ErrorCode.STRING_TOO_LONG,
                    path,
                    f"must be at most {limits.max_string_length} characters, got {len(value)}",
                ):
                    break
            elif (
                not value.isascii()  # (inlined: this loop may visit a million values)
                and (at := lone_surrogate_at(value)) is not None
                and add(
                    ErrorCode.INVALID_UNICODE,
                    path,
                    f"must be valid Unicode text, got a lone surrogate at character {at}",
                )
            ):
                break
        elif value is None:
            continue
        elif isinstance(value, int):  # bool is an int, and small
            if -_SMALL_INT < value < _SMALL_INT:
                continue
            if int_too_large(value) and add(
                ErrorCode.INTEGER_TOO_LARGE,
                path,
                f"must have at most {int_digits_limit()} digits, got an integer of about "
                f"{_approximate_digits(value)} digits",
            ):
                break
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
                    at = lone_surrogate_at(key)
                    if at is not None:
                        # the key itself cannot be shown (nor encoded): its escaped repr is
                        if add(
                            ErrorCode.INVALID_UNICODE,
                            (*path, safe_repr(key, 40)),
                            f"keys must be valid Unicode text, got a lone surrogate at "
                            f"character {at}",
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


def _approximate_digits(value: int) -> int:
    # from the bit length: str() of such an int is exactly what cannot be done
    return int(abs(value).bit_length() * 0.30103) + 1


def _describe(value: Any, path: Path, is_secret_path: Callable[[Path], bool] | None = None) -> str:
    kind = type(value).__name__
    if is_secret_path is not None and is_secret_path(path):
        return f"{kind} {REDACTED}"
    return f"{kind} {safe_repr(value, 40)}"
