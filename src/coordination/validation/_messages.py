"""How an issue is phrased: the field, what was expected, what was found (never a secret)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .._redact import REDACTED, is_secret_name, safe_repr, truncate
from ._compiler import FieldNote
from ._result import ErrorCode, ValidationIssue, field_label, json_pointer

__all__ = ["CODES", "KIND_ATTRIBUTE", "describe_failure", "make_issue", "secret_part"]

Path = tuple[str | int, ...]

# JSON Schema keyword (the engine's error kind) -> the issue's code
_KEYWORD_CODES: dict[str, ErrorCode] = {
    "required": ErrorCode.REQUIRED,
    "type": ErrorCode.TYPE,
    "format": ErrorCode.FORMAT,
    "minimum": ErrorCode.MIN,
    "exclusiveMinimum": ErrorCode.MIN,
    "maximum": ErrorCode.MAX,
    "exclusiveMaximum": ErrorCode.MAX,
    "minLength": ErrorCode.MIN_LENGTH,
    "maxLength": ErrorCode.MAX_LENGTH,
    "pattern": ErrorCode.PATTERN,
    "enum": ErrorCode.ALLOWED,
    "const": ErrorCode.ALLOWED,
    "minItems": ErrorCode.MIN_ITEMS,
    "maxItems": ErrorCode.MAX_ITEMS,
    "uniqueItems": ErrorCode.UNIQUE_ITEMS,
    "additionalProperties": ErrorCode.ADDITIONAL_FIELD,
    "unevaluatedProperties": ErrorCode.ADDITIONAL_FIELD,
    "falseSchema": ErrorCode.FORBIDDEN,
    "multipleOf": ErrorCode.MULTIPLE_OF,
    "minProperties": ErrorCode.MIN_FIELDS,
    "maxProperties": ErrorCode.MAX_FIELDS,
    "contains": ErrorCode.CONTAINS,
    "minContains": ErrorCode.CONTAINS,
    "maxContains": ErrorCode.CONTAINS,
    "not": ErrorCode.NOT,
    "anyOf": ErrorCode.ANY_OF,
    "oneOf": ErrorCode.ONE_OF,
    "propertyNames": ErrorCode.FIELD_NAME,
    "additionalItems": ErrorCode.ADDITIONAL_ITEMS,
    "unevaluatedItems": ErrorCode.ADDITIONAL_ITEMS,
    "contentEncoding": ErrorCode.CONTENT,
    "contentMediaType": ErrorCode.CONTENT,
}

# Issues carry the code as a plain str: it compares equal to the ErrorCode member, and
# hashes in C (an Enum's __hash__ is Python code, paid again at every report count).
CODES: dict[str, str] = {keyword: code.value for keyword, code in _KEYWORD_CODES.items()}

# keyword -> the attribute of the engine's error kind holding the keyword's value
KIND_ATTRIBUTE = {
    "type": "types",
    "format": "format",
    "minLength": "limit",
    "maxLength": "limit",
    "minItems": "limit",
    "maxItems": "limit",
    "minimum": "limit",
    "maximum": "limit",
    "exclusiveMinimum": "limit",
    "exclusiveMaximum": "limit",
    "pattern": "pattern",
    "enum": "options",
    "const": "expected_value",
}
_SIGNS = {"minimum": "≥", "maximum": "≤", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


@functools.lru_cache(maxsize=4096)
def _secret_name(name: str) -> bool:
    return is_secret_name(name)


def secret_part(part: str | int, declared: frozenset[str]) -> bool:
    """Whether a path element names a secret (by its look, or declared ``secret: true``)."""
    return isinstance(part, str) and (part in declared or _secret_name(part))


def make_issue(
    code: ErrorCode | str, path: Path, rule_set: str | None, text: str
) -> ValidationIssue:
    """An issue whose message starts with the field's name."""
    plain = code.value if isinstance(code, ErrorCode) else code
    if len(path) == 1:  # the common case, spelled out: a top-level field
        name = path[0]
        if name.__class__ is str and len(name) <= 120 and "~" not in name and "/" not in name:
            return ValidationIssue(
                plain, path, f"/{name}", rule_set, f"{name}: {truncate(text, 400)}"
            )
    return ValidationIssue(
        plain, path, json_pointer(path), rule_set, f"{field_label(path)}: {truncate(text, 400)}"
    )


def describe_failure(
    keyword: str, expected: Any, value: Any, note: FieldNote | None, secret: bool
) -> str:
    """What ``keyword`` (whose schema value is ``expected``) wanted, and what ``value`` was."""
    describe = _DESCRIBE.get(keyword)
    if describe is None:
        return f"does not satisfy the schema's {keyword!r} keyword"
    return describe(keyword, expected, value, note, REDACTED if secret else _short_repr(value))


def _type(keyword: str, expected: Any, value: Any, note: FieldNote | None, got: str) -> str:
    wanted = note.type_label if note and note.type_label else _types(expected)
    return f"must be {wanted}, got {_type_name(value)} {got}"


def _format(keyword: str, expected: Any, value: Any, note: FieldNote | None, got: str) -> str:
    wanted = note.type_label if note and note.type_label else f"a valid {expected}"
    return f"must be {wanted}, got {got}"


def _length(keyword: str, expected: Any, value: Any, note: FieldNote | None, got: str) -> str:
    bound = "at least" if keyword == "minLength" else "at most"
    return f"must have {bound} {_plural(expected, 'character')}, got {len(value)} ({got})"


def _items(keyword: str, expected: Any, value: Any, note: FieldNote | None, got: str) -> str:
    bound = "at least" if keyword == "minItems" else "at most"
    return f"must have {bound} {_plural(expected, 'item')}, got {len(value)}"


def _bound(keyword: str, expected: Any, value: Any, note: FieldNote | None, got: str) -> str:
    return f"must be {_SIGNS[keyword]} {expected}, got {got}"


def _pattern(keyword: str, expected: Any, value: Any, note: FieldNote | None, got: str) -> str:
    return f"must match the pattern {expected!r}, got {got}"


def _enum(keyword: str, expected: Any, value: Any, note: FieldNote | None, got: str) -> str:
    try:
        options = _options(tuple(expected))
    except TypeError:  # unhashable options (lists, objects) are not cached
        options = _options.__wrapped__(tuple(expected))
    return f"must be one of {options}, got {got}"


def _const(keyword: str, expected: Any, value: Any, note: FieldNote | None, got: str) -> str:
    return f"must be {safe_repr(expected, 60)}, got {got}"


def _unique(keyword: str, expected: Any, value: Any, note: FieldNote | None, got: str) -> str:
    return "must not contain duplicate items"


# keyword -> how its failure is phrased (a dict: one lookup instead of a chain of tests)
_DESCRIBE: dict[str, Callable[[str, Any, Any, FieldNote | None, str], str]] = {
    "type": _type,
    "format": _format,
    "minLength": _length,
    "maxLength": _length,
    "minItems": _items,
    "maxItems": _items,
    "minimum": _bound,
    "maximum": _bound,
    "exclusiveMinimum": _bound,
    "exclusiveMaximum": _bound,
    "pattern": _pattern,
    "enum": _enum,
    "const": _const,
    "uniqueItems": _unique,
}


@functools.lru_cache(maxsize=256)
def _options(expected: tuple[Any, ...]) -> str:
    more = f" (and {len(expected) - 20} more)" if len(expected) > 20 else ""
    return ", ".join(map(_short_repr, expected[:20])) + more


def _short_repr(value: Any) -> str:
    if value.__class__ is str and len(value) <= 60:
        return repr(value)
    return safe_repr(value, 60)


def _types(expected: Any) -> str:
    names = expected if isinstance(expected, list) else [expected]
    return " or ".join(str(name) for name in names)


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "list", tuple: "list", str: "string", bool: "boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return names.get(type(value), type(value).__name__)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
