"""``RuleSet``: a rule set compiled once into a jsonschema-rs validator.

``is_valid`` is the engine's own bound method (the fast path allocates nothing); only an
invalid message pays for ``issues``, which turns the engine's errors into
``ValidationIssue`` items phrased from the compiler's notes, with secret values redacted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jsonschema_rs

from .._errors import RuleSetError
from .._redact import REDACTED, is_secret_name, safe_repr, truncate
from ._compiler import CompiledRules, ConditionNote, FieldNote
from ._result import ErrorCode, ValidationIssue, field_label, json_pointer

__all__ = ["RuleSet"]

Path = tuple[str | int, ...]

# JSON Schema keyword (the engine's error kind) -> the issue's code
_CODES: dict[str, ErrorCode] = {
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


def _engine_options() -> dict[str, Any]:
    # Formats are assertions here (the vocabulary's datetime, email, ... must be checked);
    # the regex crate's engine is linear-time, so no pattern can backtrack catastrophically;
    # offline: a rule file never makes the engine fetch a remote $ref.
    return {
        "validate_formats": True,
        "pattern_options": jsonschema_rs.RegexOptions(),
        "offline": True,
    }


class RuleSet:
    """A compiled rule set. Make one with ``CoordinationValidator.compile``.

    >>> from coordination.validation import CoordinationValidator
    >>> rules = CoordinationValidator(config={}).compile({"required_fields": ["id"]}, name="x")
    >>> rules.is_valid({"id": 1}), rules.is_valid({})
    (True, False)
    """

    __slots__ = (
        "_iter_errors",
        "_notes",
        "_secret_names",
        "is_valid",
        "name",
        "raw",
        "schema",
        "source",
    )

    is_valid: Callable[[Any], bool]

    def __init__(self, name: str, compiled: CompiledRules, *, source: str | None = None) -> None:
        self.name = name
        self.source = source
        self.schema = compiled.schema
        self.raw = compiled.raw
        self._notes = compiled.notes
        self._secret_names = frozenset(compiled.secret_names)
        try:
            validator = jsonschema_rs.validator_for(compiled.schema, **_engine_options())
        except jsonschema_rs.ValidationError as exc:
            where = json_pointer(tuple(exc.instance_path)) or "/"
            raise RuleSetError(
                f"rule set {name!r} ({source or 'inline rules'}): invalid JSON Schema at "
                f"{where}: {truncate(exc.message, 300)}",
                source=source,
            ) from exc
        except (jsonschema_rs.ReferencingError, ValueError) as exc:
            raise RuleSetError(
                f"rule set {name!r} ({source or 'inline rules'}): cannot compile: {exc}",
                source=source,
            ) from exc
        self.is_valid = validator.is_valid
        self._iter_errors = validator.iter_errors

    def __repr__(self) -> str:
        return f"RuleSet({self.name!r}, source={self.source!r})"

    @property
    def field_names(self) -> frozenset[str]:
        """The top-level fields the rules name (``properties`` and ``required``)."""
        if not isinstance(self.schema, dict):
            return frozenset()
        names = set(self.schema.get("properties", {})) | set(self.schema.get("required", []))
        return frozenset(n for n in names if isinstance(n, str))

    def is_secret_path(self, path: Path) -> bool:
        """Whether a value at ``path`` must never be shown (a secret-looking name on it)."""
        return any(
            isinstance(part, str) and (part in self._secret_names or is_secret_name(part))
            for part in path
        )

    def issues(self, data: Any, *, fail_fast: bool = False) -> list[ValidationIssue]:
        """Every way ``data`` breaks the rules (the first one only with ``fail_fast``)."""
        issues: list[ValidationIssue] = []
        for error in self._iter_errors(data):
            issues.extend(self._translate(error))
            if fail_fast and issues:
                return issues[:1]
        return issues

    # --- turning an engine error into issues --------------------------------------------

    def _translate(self, error: jsonschema_rs.ValidationError) -> Iterator[ValidationIssue]:
        kind: Any = error.kind  # the attributes depend on the subclass (the keyword)
        keyword = kind.name
        at: Path = tuple(error.instance_path)
        schema_path: Path = tuple(error.schema_path)
        value = error.instance
        if keyword == "required":
            yield self._required(at, schema_path, kind.property, value)
            return
        if keyword in ("additionalProperties", "unevaluatedProperties"):
            for name in kind.unexpected:
                path = (*at, name)
                yield self._issue(
                    ErrorCode.ADDITIONAL_FIELD,
                    path,
                    "is not an allowed field (no additional fields are allowed here)",
                )
            return
        if keyword == "falseSchema":
            condition = self._condition(schema_path)
            if condition is None:
                yield self._issue(ErrorCode.FORBIDDEN, at, "is not allowed here")
            else:
                yield self._issue(condition.code, at, f"must not be present {condition.reason}")
            return
        note = self._notes.get(schema_path[:-1])
        field_note = note if isinstance(note, FieldNote) else None
        if keyword == "type" and value is None and field_note is not None and field_note.required:
            yield self._issue(ErrorCode.REQUIRED, at, "is required and may not be null")
            return
        code = _CODES.get(keyword, ErrorCode.SCHEMA)
        yield self._issue(code, at, self._expectation(keyword, kind, field_note, error, at))

    def _required(self, at: Path, schema_path: Path, name: str, value: Any) -> ValidationIssue:
        path = (*at, name)
        if schema_path and schema_path[-1] == "dependentRequired":
            triggers = self._dependent_triggers(schema_path, name, value)
            return self._issue(ErrorCode.REQUIRES, path, f"is required when {triggers} is present")
        condition = self._condition(schema_path)
        if condition is not None:
            return self._issue(ErrorCode.REQUIRED, path, f"is required {condition.reason}")
        return self._issue(ErrorCode.REQUIRED, path, "is required")

    def _dependent_triggers(self, schema_path: Path, name: str, value: Any) -> str:
        node: Any = self.schema
        for part in schema_path:
            node = node.get(part) if isinstance(node, dict) else None
        present = value if isinstance(value, dict) else {}
        triggers = [
            t for t, needs in (node or {}).items() if t in present and name in (needs or [])
        ]
        return " or ".join(repr(t) for t in triggers) or "another field"

    def _condition(self, schema_path: Path) -> ConditionNote | None:
        for end in range(len(schema_path), 0, -1):
            note = self._notes.get(schema_path[:end])
            if isinstance(note, ConditionNote):
                return note
        return None

    def _expectation(
        self,
        keyword: str,
        kind: Any,
        note: FieldNote | None,
        error: jsonschema_rs.ValidationError,
        at: Path,
    ) -> str:
        value: Any = error.instance
        got = self._shown(value, at)
        if keyword == "type":
            expected = note.type_label if note else " or ".join(kind.types)
            return f"must be {expected}, got {_type_name(value)} {got}"
        if keyword == "format":
            expected = note.type_label if note and note.type_label else f"a valid {kind.format}"
            return f"must be {expected}, got {got}"
        if keyword in ("minLength", "maxLength"):
            bound = "at least" if keyword == "minLength" else "at most"
            return f"must have {bound} {_plural(kind.limit, 'character')}, got {len(value)} ({got})"
        if keyword in ("minItems", "maxItems"):
            bound = "at least" if keyword == "minItems" else "at most"
            return f"must have {bound} {_plural(kind.limit, 'item')}, got {len(value)}"
        if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            sign = {
                "minimum": "≥",
                "maximum": "≤",
                "exclusiveMinimum": ">",
                "exclusiveMaximum": "<",
            }
            return f"must be {sign[keyword]} {kind.limit}, got {got}"
        if keyword == "pattern":
            return f"must match the pattern {kind.pattern!r}, got {got}"
        if keyword == "enum":
            options = ", ".join(safe_repr(o, 40) for o in kind.options[:20])
            return f"must be one of {options}, got {got}"
        if keyword == "const":
            return f"must be {safe_repr(kind.expected_value, 60)}, got {got}"
        if keyword == "uniqueItems":
            return "must not contain duplicate items"
        if self.is_secret_path(at):
            return f"does not satisfy the schema's {keyword!r} keyword"
        return f"does not satisfy the schema's {keyword!r} keyword: {truncate(error.message, 200)}"

    def _shown(self, value: Any, at: Path) -> str:
        return REDACTED if self.is_secret_path(at) else safe_repr(value, 60)

    def _issue(self, code: ErrorCode | str, path: Path, text: str) -> ValidationIssue:
        return ValidationIssue(
            ErrorCode(code),
            path,
            json_pointer(path),
            self.name,
            f"{field_label(path)}: {truncate(text, 400)}",
        )


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "list", tuple: "list", str: "string", bool: "boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    return names.get(type(value), type(value).__name__)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
