"""How an issue is phrased: the field, what was expected, what was found (never a secret)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .._redact import REDACTED, is_secret_name, safe_repr, truncate
from ._compiler import FieldNote
from ._result import ErrorCode, ValidationIssue, field_label, json_pointer

__all__ = [
    "CODES",
    "KIND_ATTRIBUTE",
    "Render",
    "describe_failure",
    "make_issue",
    "renderer",
    "secret_part",
]

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
_SHORT = 60  # a value's repr is cut to this many characters in a message
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
    return renderer(keyword, expected, note, secret)(value)


Render = Callable[[Any], str]


def renderer(
    keyword: str, expected: Any, note: FieldNote | None, secret: bool, prefix: str = ""
) -> Render:
    """A function phrasing ``keyword``'s failure for a value: ``prefix`` + what was expected +
    what was found. Everything that does not depend on the value is formatted here, once,
    so a rule set's plan can keep the renderers of its fields ready."""
    shown: Render = _redacted if secret else _short_repr
    label = note.type_label if note else None
    if keyword == "type":
        wanted = f"{prefix}must be {label or _types(expected)}, got "
        return lambda value: f"{wanted}{_type_name(value)} {shown(value)}"
    # Below, a short string (the usual bad value) is shown inline: one call fewer per issue.
    if keyword in ("minLength", "maxLength", "minItems", "maxItems"):
        bound = "at least" if keyword.startswith("min") else "at most"
        noun = "character" if keyword.endswith("Length") else "item"
        text = f"{prefix}must have {bound} {_plural(expected, noun)}, got "
        if noun == "item":
            return lambda value: f"{text}{len(value)}"
        if secret:
            return lambda value: f"{text}{len(value)} ({REDACTED})"
        return lambda value: (
            f"{text}{len(value)} ({value!r})"
            if value.__class__ is str and len(value) <= _SHORT
            else f"{text}{len(value)} ({shown(value)})"
        )
    if keyword == "uniqueItems":
        text = f"{prefix}must not contain duplicate items"
        return lambda value: text
    if keyword == "format":
        text = f"{prefix}must be {label or f'a valid {expected}'}, got "
    elif keyword in _SIGNS:
        text = f"{prefix}must be {_SIGNS[keyword]} {expected}, got "
    elif keyword == "pattern":
        text = f"{prefix}must match the pattern {truncate(repr(expected), 200)}, got "
    elif keyword == "enum":
        text = f"{prefix}must be one of {_options(expected)}, got "
    elif keyword == "const":
        text = f"{prefix}must be {safe_repr(expected, 60)}, got "
    else:
        text = f"{prefix}does not satisfy the schema's {keyword!r} keyword"
        return lambda value: text
    if secret:
        return lambda value: text + REDACTED
    return lambda value: (
        text + (repr(value) if value.__class__ is str and len(value) <= _SHORT else shown(value))
    )


def _redacted(value: Any) -> str:
    return REDACTED


def _options(expected: list[Any]) -> str:
    more = f" (and {len(expected) - 20} more)" if len(expected) > 20 else ""
    return ", ".join(safe_repr(option, 40) for option in expected[:20]) + more


def _short_repr(value: Any) -> str:
    if value.__class__ is str and len(value) <= _SHORT:
        return repr(value)
    return safe_repr(value, _SHORT)


def _types(expected: Any) -> str:
    names = expected if isinstance(expected, list) else [expected]
    return " or ".join(str(name) for name in names)


_TYPE_NAMES = {dict: "object", list: "list", tuple: "list", str: "string", bool: "boolean"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
