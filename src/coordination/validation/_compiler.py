"""The rule vocabulary, compiled to a JSON Schema 2020-12 document.

The compiler also keeps ``notes``: for each place in the schema that came from a field or
a cross-field rule, what the user wrote there. Error messages are phrased from the notes
(``timestamp: must be a date-time``) rather than from the engine's wording, and the notes
decide the codes of cross-field rules (``requires``, ``excludes``, ``forbidden``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs

from .._errors import RuleSetError
from .._quote import quote
from ._limits import int_digits_limit, int_too_large
from ._loader import line_of

__all__ = [
    "FIELD_KEYWORDS",
    "FIELD_TYPES",
    "RULE_SET_KEYWORDS",
    "CompiledRules",
    "ConditionNote",
    "FieldNote",
    "compile_rules",
]

SchemaPath = tuple[str | int, ...]

# vocabulary type -> (JSON Schema, how a message names it)
FIELD_TYPES: dict[str, tuple[dict[str, Any], str]] = {
    "string": ({"type": "string"}, "a string"),
    "integer": ({"type": "integer"}, "an integer"),
    "number": ({"type": "number"}, "a number"),
    "boolean": ({"type": "boolean"}, "a boolean"),
    "object": ({"type": "object"}, "an object"),
    "list": ({"type": "array"}, "a list"),
    "array": ({"type": "array"}, "a list"),
    "null": ({"type": "null"}, "null"),
    "any": ({}, "any value"),
    "datetime": ({"type": "string", "format": "date-time"}, "a date-time (RFC 3339)"),
    "date": ({"type": "string", "format": "date"}, "a date (YYYY-MM-DD)"),
    "time": ({"type": "string", "format": "time"}, "a time (RFC 3339)"),
    "email": ({"type": "string", "format": "email"}, "an email address"),
    "uuid": ({"type": "string", "format": "uuid"}, "a UUID"),
    "uri": ({"type": "string", "format": "uri"}, "a URI"),
    "ipv4": ({"type": "string", "format": "ipv4"}, "an IPv4 address"),
    "ipv6": ({"type": "string", "format": "ipv6"}, "an IPv6 address"),
    "hostname": ({"type": "string", "format": "hostname"}, "a hostname"),
}
_STRING_TYPES = {
    "string",
    "datetime",
    "date",
    "time",
    "email",
    "uuid",
    "uri",
    "ipv4",
    "ipv6",
    "hostname",
}
_NUMBER_TYPES = {"integer", "number"}
_NOT_NULL = ["string", "number", "boolean", "object", "array"]

FIELD_KEYWORDS = (
    "type", "required", "nullable", "description", "secret",
    "min", "max", "exclusive_min", "exclusive_max",
    "min_length", "max_length", "pattern", "allowed",
    "items", "min_items", "max_items", "unique_items",
    "fields", "additional_fields", "requires", "excludes",
)  # fmt: skip
RULE_SET_KEYWORDS = (
    "name", "description", "fields", "required_fields", "additional_fields", "conditions",
    "schema", "formats",
)  # fmt: skip
_CONDITION_KEYWORDS = ("when", "require", "forbid")
_MAX_FIELD_NESTING = 32

# keyword -> (JSON Schema keyword, the field types it applies to; None: any)
_CONSTRAINTS: dict[str, tuple[str, set[str] | None]] = {
    "min": ("minimum", _NUMBER_TYPES),
    "max": ("maximum", _NUMBER_TYPES),
    "exclusive_min": ("exclusiveMinimum", _NUMBER_TYPES),
    "exclusive_max": ("exclusiveMaximum", _NUMBER_TYPES),
    "min_length": ("minLength", _STRING_TYPES),
    "max_length": ("maxLength", _STRING_TYPES),
    "pattern": ("pattern", _STRING_TYPES),
    "min_items": ("minItems", {"list", "array"}),
    "max_items": ("maxItems", {"list", "array"}),
    "unique_items": ("uniqueItems", {"list", "array"}),
}


@dataclass(frozen=True, slots=True)
class FieldNote:
    """What the rules say about the field at one schema location."""

    type_label: str | None
    required: bool
    nullable: bool
    secret: bool


@dataclass(frozen=True, slots=True)
class ConditionNote:
    """A cross-field rule: errors under its schema location get ``code`` and ``reason``."""

    code: str
    reason: str


@dataclass(slots=True)
class CompiledRules:
    """A rule set turned into one JSON Schema document, plus the notes for messages."""

    schema: dict[str, Any] | bool
    notes: dict[SchemaPath, FieldNote | ConditionNote] = field(default_factory=dict)
    secret_names: set[str] = field(default_factory=set)
    raw: bool = False
    assert_formats: bool = True


class _Where:
    """Where a rule was written, for error messages: rule set, file, field, line."""

    def __init__(self, rule_set: str, source: str | None) -> None:
        self.rule_set = rule_set
        self.source = source

    def error(
        self, text: str, *, field: str | None = None, mapping: object = None, key: object = None
    ) -> RuleSetError:
        line = line_of(mapping, key) if mapping is not None else None
        location = self.source or "inline rules"
        if line is not None:
            location += f", line {line}"
        subject = f"rule set {quote(self.rule_set)} ({location})"
        if field:
            subject += f", field {quote(field)}"
        return RuleSetError(f"{subject}: {text}", field=field, source=location)


def compile_rules(
    rules: Mapping[Any, Any], *, name: str, source: str | None = None
) -> CompiledRules:
    """``rules`` (the vocabulary, ``required_fields`` or ``schema``) as a JSON Schema."""
    where = _Where(name, source)
    _check_keys(rules, RULE_SET_KEYWORDS, where, what="rule set keyword", field=None)
    formats = rules.get("formats", "assert")
    if formats not in ("assert", "annotate"):
        raise where.error(
            f"'formats' must be 'assert' or 'annotate', got {quote(formats)}",
            mapping=rules,
            key="formats",
        )
    if "schema" in rules:
        others = sorted(
            str(k) for k in rules if k not in ("schema", "name", "description", "formats")
        )
        if others:
            raise where.error(
                f"'schema' cannot be combined with {others}", mapping=rules, key="schema"
            )
        schema = rules["schema"]
        if not isinstance(schema, dict | bool):
            raise where.error(
                "'schema' must be a JSON Schema (a mapping or a boolean)",
                mapping=rules,
                key="schema",
            )
        return CompiledRules(schema=_plain(schema), raw=True, assert_formats=formats == "assert")

    compiled = CompiledRules(schema={}, assert_formats=formats == "assert")
    fields = rules.get("fields", {})
    if fields is None:
        fields = {}
    if not isinstance(fields, Mapping):
        raise where.error(
            "'fields' must be a mapping of field names to rules", mapping=rules, key="fields"
        )
    fields = dict(fields)
    required_fields = rules.get("required_fields", [])
    if not _is_name_list(required_fields):
        raise where.error(
            "'required_fields' must be a list of field names", mapping=rules, key="required_fields"
        )
    for name_ in required_fields:
        spec = fields.get(name_, {})
        spec = {"type": spec} if isinstance(spec, str) else spec
        if isinstance(spec, Mapping):
            fields[name_] = {**spec, "required": True}
    schema = _object_schema(
        fields, rules.get("additional_fields", "allow"), (), 0, compiled, where, rules
    )
    conditions = rules.get("conditions", [])
    if conditions:
        schema["allOf"] = _conditions(conditions, compiled, where, rules)
    compiled.schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return compiled


def _object_schema(
    fields: Mapping[Any, Any],
    additional: Any,
    at: SchemaPath,
    depth: int,
    compiled: CompiledRules,
    where: _Where,
    owner: Mapping[Any, Any],
) -> dict[str, Any]:
    if depth > _MAX_FIELD_NESTING:
        raise where.error(f"fields nest deeper than {_MAX_FIELD_NESTING} levels")
    if additional not in ("allow", "forbid"):
        raise where.error(
            f"'additional_fields' must be 'allow' or 'forbid', got {quote(additional)}",
            mapping=owner,
            key="additional_fields",
        )
    schema: dict[str, Any] = {"type": "object"}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in fields.items():
        if not isinstance(name, str):
            raise where.error(
                f"field names must be strings, got {quote(name)}", mapping=fields, key=name
            )
        path = (*at, "properties", name)
        dotted = ".".join(str(p) for p in path[1::2])
        spec = {"type": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, Mapping):
            raise where.error(
                "the rules of a field must be a mapping (or a type name)",
                field=dotted,
                mapping=fields,
                key=name,
            )
        properties[name] = _field_schema(
            spec, path, dotted, depth, compiled, where, allow_required=True
        )
        if spec.get("required", False):
            required.append(name)
        for keyword, target in (
            ("requires", "dependentRequired"),
            ("excludes", "dependentSchemas"),
        ):
            others = spec.get(keyword)
            if others is None:
                continue
            others = [others] if isinstance(others, str) else others
            if not _is_name_list(others) or not others:
                raise where.error(
                    f"'{keyword}' must be a field name or a list of them",
                    field=dotted,
                    mapping=spec,
                    key=keyword,
                )
            if keyword == "requires":
                schema.setdefault(target, {})[name] = list(others)
            else:
                schema.setdefault(target, {})[name] = {"properties": dict.fromkeys(others, False)}
                compiled.notes[(*at, target, name)] = ConditionNote(
                    "excludes", f"when {quote(name)} is present"
                )
    if properties:
        schema["properties"] = properties
    if required:
        schema["required"] = required
    if additional == "forbid":
        schema["additionalProperties"] = False
    return schema


def _field_schema(
    spec: Mapping[Any, Any],
    path: SchemaPath,
    dotted: str,
    depth: int,
    compiled: CompiledRules,
    where: _Where,
    *,
    allow_required: bool,
) -> dict[str, Any]:
    allowed_keys = (
        FIELD_KEYWORDS
        if allow_required
        else tuple(k for k in FIELD_KEYWORDS if k not in ("required", "requires", "excludes"))
    )
    _check_keys(spec, allowed_keys, where, what="field keyword", field=dotted)
    type_name = spec.get("type", "object" if "fields" in spec else "any")
    if not isinstance(type_name, str) or type_name not in FIELD_TYPES:
        close = _close_match(type_name, FIELD_TYPES)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise where.error(
            f"unknown type {quote(type_name)}{hint} (types: {', '.join(FIELD_TYPES)})",
            field=dotted,
            mapping=spec,
            key="type",
        )
    flags = {k: spec.get(k, False) for k in ("required", "nullable", "secret", "unique_items")}
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise where.error(
                f"'{flag}' must be true or false, got {quote(value)}",
                field=dotted,
                mapping=spec,
                key=flag,
            )
    base, label = FIELD_TYPES[type_name]
    schema: dict[str, Any] = dict(base)
    if flags["nullable"] and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    elif flags["required"] and not flags["nullable"] and "type" not in schema:
        schema["type"] = list(_NOT_NULL)  # "required" means present and not null
    for keyword, (target, applies_to) in _CONSTRAINTS.items():
        if keyword not in spec:
            continue
        if applies_to is not None and type_name not in applies_to and type_name != "any":
            raise where.error(
                f"'{keyword}' does not apply to a field of type {type_name!r}"
                f" (it applies to {', '.join(sorted(applies_to))})",
                field=dotted,
                mapping=spec,
                key=keyword,
            )
        schema[target] = _constraint_value(keyword, spec[keyword], where, dotted, spec)
    if "allowed" in spec:
        options = spec["allowed"]
        if not isinstance(options, list) or not options:
            raise where.error(
                "'allowed' must be a non-empty list of values",
                field=dotted,
                mapping=spec,
                key="allowed",
            )
        schema["enum"] = [*_plain(options), *([None] if flags["nullable"] else [])]
    if "items" in spec:
        if type_name not in ("list", "array", "any"):
            raise where.error(
                f"'items' does not apply to a field of type {type_name!r}",
                field=dotted,
                mapping=spec,
                key="items",
            )
        items = spec["items"]
        items = {"type": items} if isinstance(items, str) else items
        if not isinstance(items, Mapping):
            raise where.error(
                "'items' must be the rules of one item (a mapping or a type)",
                field=dotted,
                mapping=spec,
                key="items",
            )
        schema["items"] = _field_schema(
            items, (*path, "items"), f"{dotted}[]", depth + 1, compiled, where, allow_required=False
        )
    if "fields" in spec or "additional_fields" in spec:
        if type_name not in ("object", "any"):
            raise where.error(
                f"'fields' does not apply to a field of type {type_name!r}",
                field=dotted,
                mapping=spec,
                key="fields",
            )
        nested = spec.get("fields") or {}
        if not isinstance(nested, Mapping):
            raise where.error(
                "'fields' must be a mapping of field names to rules",
                field=dotted,
                mapping=spec,
                key="fields",
            )
        inner = _object_schema(
            nested, spec.get("additional_fields", "allow"), path, depth + 1, compiled, where, spec
        )
        inner.pop("type")
        schema.update(inner)
    if flags["secret"]:
        compiled.secret_names.add(path[-1] if isinstance(path[-1], str) else dotted)
    compiled.notes[path] = FieldNote(label, flags["required"], flags["nullable"], flags["secret"])
    return schema


def _constraint_value(
    keyword: str, value: Any, where: _Where, dotted: str, spec: Mapping[Any, Any]
) -> Any:
    if keyword == "pattern":
        if not isinstance(value, str):
            raise where.error(
                "'pattern' must be a regular expression (a string)",
                field=dotted,
                mapping=spec,
                key=keyword,
            )
        try:
            jsonschema_rs.validator_for(
                {"pattern": value}, pattern_options=jsonschema_rs.RegexOptions()
            )
        except jsonschema_rs.ValidationError:
            raise where.error(
                f"'pattern' {quote(value)} is not a valid regular expression (the engine accepts "
                "linear-time syntax: no look-around or back-references)",
                field=dotted,
                mapping=spec,
                key=keyword,
            ) from None
        return value
    if keyword == "unique_items":
        return value
    if keyword in ("min", "max", "exclusive_min", "exclusive_max"):
        if isinstance(value, int) and not isinstance(value, bool):
            if int_too_large(value):
                raise where.error(
                    f"'{keyword}' must have at most {int_digits_limit()} digits",
                    field=dotted,
                    mapping=spec,
                    key=keyword,
                )
            return value
        if not isinstance(value, float) or not math.isfinite(value):
            raise where.error(
                f"'{keyword}' must be a finite number, got {quote(value)}",
                field=dotted,
                mapping=spec,
                key=keyword,
            )
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise where.error(
            f"'{keyword}' must be a whole number ≥ 0, got {quote(value)}",
            field=dotted,
            mapping=spec,
            key=keyword,
        )
    return value


def _conditions(
    conditions: Any, compiled: CompiledRules, where: _Where, rules: Mapping[Any, Any]
) -> list[dict[str, Any]]:
    if not isinstance(conditions, list):
        raise where.error("'conditions' must be a list", mapping=rules, key="conditions")
    result = []
    for index, condition in enumerate(conditions):
        label = f"conditions[{index}]"
        if not isinstance(condition, Mapping):
            raise where.error(f"{label} must be a mapping with 'when' and 'require'/'forbid'")
        _check_keys(condition, _CONDITION_KEYWORDS, where, what="condition keyword", field=label)
        when = condition.get("when")
        if not isinstance(when, Mapping) or not when or not all(isinstance(k, str) for k in when):
            raise where.error(
                f"{label}: 'when' must map field names to values", mapping=condition, key="when"
            )
        require = condition.get("require", [])
        forbid = condition.get("forbid", [])
        if not (_is_name_list(require) and _is_name_list(forbid)) or not (require or forbid):
            raise where.error(
                f"{label}: 'require' and 'forbid' must be lists of field names, at least one given",
                mapping=condition,
            )
        test = {
            "properties": {
                k: {"enum": _plain(v)} if isinstance(v, list) else {"const": _plain(v)}
                for k, v in when.items()
            },
            "required": list(when),
        }
        then: dict[str, Any] = {}
        if require:
            then["required"] = list(require)
        if forbid:
            then["properties"] = dict.fromkeys(forbid, False)
        reason = "when " + " and ".join(f"{k} is {quote(v)}" for k, v in when.items())
        compiled.notes[("allOf", index, "then")] = ConditionNote("forbidden", reason)
        result.append({"if": test, "then": then})
    return result


def _check_keys(
    mapping: Mapping[Any, Any],
    known: tuple[str, ...],
    where: _Where,
    *,
    what: str,
    field: str | None,
) -> None:
    for key in mapping:
        if key in known:
            continue
        close = _close_match(key, known, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
        raise where.error(
            f"unknown {what} {quote(key)}{hint}", field=field, mapping=mapping, key=key
        )


def _close_match(word: object, known: Any, *, cutoff: float = 0.6) -> list[str]:
    """The known name closest to ``word`` (a list of at most one), for "did you mean".

    Only short strings are compared: ``str()`` of anything else (a huge value, a list
    shared through YAML aliases) could be unbounded work, and cannot be a typo anyway.
    """
    if not isinstance(word, str) or len(word) > 80:
        return []
    return difflib.get_close_matches(word, known, n=1, cutoff=cutoff)


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _plain(value: Any) -> Any:
    """``value`` with YAML's ``LineMapping`` dicts turned back into plain dicts."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
