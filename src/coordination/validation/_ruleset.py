"""``RuleSet``: a rule set compiled once into a jsonschema-rs validator.

``is_valid`` is the engine's own bound method, so the fast path allocates nothing. Only an
invalid message pays for ``issues``. Building the engine's error objects is its costly part
(about 1.5 µs each), so for the common shape — a vocabulary rule set over a flat object —
the issues are found with a *plan*: one small engine validator per field, and per keyword
of a failing field, each asked only "valid?". The engine still decides every keyword (but a
``type`` the value's exact class settles, such as a str for "string"); the plan only avoids
materialising its error objects. Anything else (raw schemas, cross-field rules, nested
fields) is read from the engine's errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

from .._errors import RuleSetError
from .._redact import truncate
from ._compiler import CompiledRules, ConditionNote, FieldNote
from ._messages import (
    CODES,
    KIND_ATTRIBUTE,
    Render,
    describe_failure,
    make_issue,
    renderer,
    secret_part,
)
from ._result import ErrorCode, ValidationIssue, field_label, json_pointer

__all__ = ["RuleSet", "SchemaRetriever"]

Path = tuple[str | int, ...]

_REQUIRED = ErrorCode.REQUIRED.value
_TYPE = ErrorCode.TYPE.value
_TYPE_OR_REQUIRED = "type or required"  # a marker, compared by identity
_new_issue = object.__new__
_PLANNABLE_ROOT = {"$schema", "type", "properties", "required", "additionalProperties"}
_PLANNABLE_KEYWORDS = {
    "type", "format", "minLength", "maxLength", "pattern", "enum", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "uniqueItems",
}  # fmt: skip


SchemaRetriever = Callable[[str], Any]


def _engine(
    schema: dict[str, Any] | bool, *, formats: bool = True, retriever: SchemaRetriever | None = None
) -> jsonschema_rs.Validator:
    # Formats are assertions unless a rule set says `formats: annotate` (the vocabulary's
    # datetime, email, ... must be checked);
    # the regex crate is linear-time, so no pattern can backtrack catastrophically;
    # offline unless the validator was given a retriever: a rule file never makes the
    # engine fetch a remote $ref by itself.
    if retriever is not None:
        return jsonschema_rs.validator_for(
            schema,
            validate_formats=formats,
            pattern_options=jsonschema_rs.RegexOptions(),
            retriever=retriever,
        )
    return jsonschema_rs.validator_for(
        schema,
        validate_formats=formats,
        pattern_options=jsonschema_rs.RegexOptions(),
        offline=True,
    )


@dataclass(frozen=True, slots=True)
class _FieldCheck:
    """One top-level field of a planned rule set."""

    name: str
    required: bool
    path: Path
    pointer: str
    prefix: str  # "name: ", how its messages start
    secret: bool
    is_valid: Callable[[Any], bool]
    # (a validator of one keyword alone, the issue's code, its message for a value,
    # the classes it surely accepts, whether it is the field's last keyword); None: nested
    # rules, read from the field validator's errors instead.
    keywords: tuple[tuple[Callable[[Any], bool], str, Render, frozenset[type], bool], ...] | None
    iter_errors: Callable[[Any], Iterator[jsonschema_rs.ValidationError]]
    note: FieldNote | None
    missing: ValidationIssue  # the issue when the field is required and absent (shared)


class RuleSet:
    """A compiled rule set. Make one with ``CoordinationValidator.compile``.

    >>> from coordination.validation import CoordinationValidator
    >>> rules = CoordinationValidator(config={}).compile({"required_fields": ["id"]}, name="x")
    >>> rules.is_valid({"id": 1}), rules.is_valid({})
    (True, False)
    """

    __slots__ = (
        "_field_names",
        "_forbid_extra",
        "_formats",
        "_iter_errors",
        "_notes",
        "_plan",
        "_properties",
        "_rows",
        "_secret_names",
        "dict_issues",
        "is_valid",
        "name",
        "raw",
        "schema",
        "source",
    )

    is_valid: Callable[[Any], bool]
    dict_issues: Callable[[dict[str, Any], bool], list[ValidationIssue]]

    def __init__(
        self,
        name: str,
        compiled: CompiledRules,
        *,
        source: str | None = None,
        retriever: SchemaRetriever | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.schema = compiled.schema
        self.raw = compiled.raw
        self._notes = compiled.notes
        self._secret_names = frozenset(compiled.secret_names)
        self._formats = compiled.assert_formats
        try:
            validator = _engine(compiled.schema, formats=self._formats, retriever=retriever)
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
        self._plan = self._make_plan()
        # (name, is_valid, check): what every present field needs, unpacked in C; the rest
        # is read from the check only when the field fails or is missing
        self._rows = tuple((c.name, c.is_valid, c) for c in self._plan or ())
        # ``issues`` for a dict already known to be one, chosen once (the invalid hot path)
        self.dict_issues = self._planned_issues if self._plan is not None else self._engine_issues
        properties = self.schema.get("properties", {}) if isinstance(self.schema, dict) else {}
        self._properties = frozenset(properties)
        self._forbid_extra = (
            isinstance(self.schema, dict) and self.schema.get("additionalProperties") is False
        )
        self._field_names = _named_fields(self.schema)

    def __repr__(self) -> str:
        return f"RuleSet({self.name!r}, source={self.source!r})"

    @property
    def field_names(self) -> frozenset[str]:
        """The top-level fields the rules name: ``properties``, ``required`` and the
        dependent and conditional rules (``conditions``, ``requires``, ``excludes``)."""
        return self._field_names

    def is_secret_path(self, path: Path) -> bool:
        """Whether a value at ``path`` must never be shown (a secret-looking name on it)."""
        declared = self._secret_names
        return any(secret_part(part, declared) for part in path)

    def issues(self, data: Any, fail_fast: bool = False) -> list[ValidationIssue]:
        """Every way ``data`` breaks the rules (the first one only with ``fail_fast``).

        ``data`` must already have passed the structure checks (``check_structure``).
        """
        if data.__class__ is dict:
            return self.dict_issues(data, fail_fast)
        return self._engine_issues(data, fail_fast)

    # --- the plan ---------------------------------------------------------------------

    def _make_plan(self) -> tuple[_FieldCheck, ...] | None:
        schema = self.schema
        if self.raw or not isinstance(schema, dict) or not set(schema) <= _PLANNABLE_ROOT:
            return None
        required = set(schema.get("required", []))
        plan = []
        for name, field_schema in schema.get("properties", {}).items():
            note = self._notes.get(("properties", name))
            field_note = note if isinstance(note, FieldNote) else None
            check = self._check(
                name, name in required, _engine(field_schema, formats=self._formats), field_note
            )
            if set(field_schema) <= _PLANNABLE_KEYWORDS:
                entries = [self._keyword(check, k, v) for k, v in field_schema.items()]
                last = len(entries) - 1
                keywords = tuple((*entry, i == last) for i, entry in enumerate(entries))
                check = dataclasses.replace(check, keywords=keywords)
            plan.append(check)
        missing = required - {check.name for check in plan}
        plan.extend(self._check(name, True, None, None) for name in sorted(missing))
        return tuple(plan)

    def _check(
        self,
        name: str,
        required: bool,
        engine: jsonschema_rs.Validator | None,
        note: FieldNote | None,
    ) -> _FieldCheck:
        path = (name,)
        return _FieldCheck(
            name=name,
            required=required,
            path=path,
            pointer=json_pointer(path),
            prefix=f"{field_label(path)}: ",
            secret=self.is_secret_path(path),
            is_valid=engine.is_valid if engine else _always_valid,
            keywords=None if engine else (),
            iter_errors=engine.iter_errors if engine else _no_errors,
            note=note,
            missing=ValidationIssue(
                _REQUIRED, path, json_pointer(path), self.name, f"{field_label(path)}: is required"
            ),
        )

    def _keyword(
        self, check: _FieldCheck, keyword: str, expected: Any
    ) -> tuple[Callable[[Any], bool], str, Render, frozenset[type]]:
        keyword_is_valid = _engine({keyword: expected}, formats=self._formats).is_valid
        render = renderer(keyword, expected, check.note, check.secret, check.prefix)
        note = check.note
        surely = _surely_of_type(expected) if keyword == "type" else _NOTHING
        if keyword == "type" and note is not None and note.required:
            # the type keyword of a required field: null means the field is missing
            text = check.prefix + "is required and may not be null"
            plain = render
            render = lambda value: text if value is None else plain(value)  # noqa: E731
            return keyword_is_valid, _TYPE_OR_REQUIRED, render, surely
        return keyword_is_valid, CODES[keyword], render, surely

    def _planned_issues(self, data: dict[str, Any], fail_fast: bool) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        append = issues.append
        rule_set = self.name
        # Rows are plain tuples unpacked in C. A failing keyword's issue keeps its renderer
        # and the value (an immutable scalar: the message is flat and clean) and phrases the
        # message when it is read: rendering is most of an issue's cost.
        for name, is_valid, check in self._rows:
            if name not in data:
                if check.required:
                    append(check.missing)  # immutable, made once with the plan
            else:
                value = data[name]
                if is_valid(value):
                    continue
                keywords = check.keywords
                if keywords is None:
                    for error in check.iter_errors(value):
                        issues.extend(self._translate(error, (name,), ("properties", name)))
                else:
                    # The engine decides each keyword alone. The field is the AND of its
                    # keywords, so when every keyword but the last passed, the last failed:
                    # no need to ask. Nor for a type keyword the value's exact class
                    # satisfies (a str is a JSON string, ...: see _SURELY_OF_TYPE).
                    failed = False
                    path = check.path
                    pointer = check.pointer
                    for keyword_is_valid, code, render, surely, last in keywords:
                        if (last and not failed) or (
                            value.__class__ not in surely and not keyword_is_valid(value)
                        ):
                            failed = True
                            if code is _TYPE_OR_REQUIRED:
                                code = _REQUIRED if value is None else _TYPE
                            # the message is rendered when first read (ValidationIssue.message)
                            issue: ValidationIssue = _new_issue(ValidationIssue)
                            issue._code = code
                            issue._path = path
                            issue._pointer = pointer
                            issue._rule_set = rule_set
                            if value.__class__ in _IMMUTABLE:
                                issue._message = None
                                issue._render = render
                                issue._value = value
                            else:  # a container may change after validating: phrase it now
                                issue._message = render(value)
                                issue._render = issue._value = None
                            append(issue)
            if fail_fast and issues:
                return issues[:1]
        if self._forbid_extra:
            properties = self._properties
            issues.extend(self._extra_field((key,)) for key in data if key not in properties)
        return issues[:1] if fail_fast else issues

    # --- the engine's errors ------------------------------------------------------------

    def _engine_issues(self, data: Any, fail_fast: bool) -> list[ValidationIssue]:
        issues: list[ValidationIssue] = []
        for error in self._iter_errors(data):
            issues.extend(self._translate(error, (), ()))
            if fail_fast and issues:
                return issues[:1]
        return issues

    def _translate(
        self, error: jsonschema_rs.ValidationError, at_prefix: Path, schema_prefix: Path
    ) -> Iterator[ValidationIssue]:
        kind: Any = error.kind  # its attributes depend on the keyword
        keyword = kind.name
        at: Path = (*at_prefix, *error.instance_path)
        schema_path: Path = (*schema_prefix, *error.schema_path)
        value: Any = error.instance
        if keyword == "required":
            yield self._required(at, schema_path, kind.property, value)
            return
        if keyword in ("additionalProperties", "unevaluatedProperties"):
            for name in kind.unexpected:
                yield self._extra_field((*at, name))
            return
        if keyword == "falseSchema":
            condition = self._condition(schema_path)
            if condition is None:
                yield make_issue(ErrorCode.FORBIDDEN, at, self.name, "is not allowed here")
            else:
                text = f"must not be present {condition.reason}"
                yield make_issue(condition.code, at, self.name, text)
            return
        note = self._notes.get(schema_path[:-1])
        field_note = note if isinstance(note, FieldNote) else None
        if keyword == "type" and value is None and field_note is not None and field_note.required:
            yield make_issue(ErrorCode.REQUIRED, at, self.name, "is required and may not be null")
            return
        code = CODES.get(keyword, ErrorCode.SCHEMA)
        secret = self.is_secret_path(at)
        if keyword in KIND_ATTRIBUTE or keyword == "uniqueItems":
            expected = getattr(kind, KIND_ATTRIBUTE.get(keyword, "name"))
            text = describe_failure(keyword, expected, value, field_note, secret)
        else:
            text = f"does not satisfy the schema's {keyword!r} keyword"
            if not secret:  # the engine's wording quotes the value
                text += f": {truncate(error.message, 200)}"
        yield make_issue(code, at, self.name, text)

    def _extra_field(self, path: Path) -> ValidationIssue:
        text = "is not an allowed field (no additional fields are allowed here)"
        return make_issue(ErrorCode.ADDITIONAL_FIELD, path, self.name, text)

    def _required(self, at: Path, schema_path: Path, name: str, value: Any) -> ValidationIssue:
        path = (*at, name)
        if schema_path and schema_path[-1] == "dependentRequired":
            triggers = self._dependent_triggers(schema_path, name, value)
            text = f"is required when {triggers} is present"
            return make_issue(ErrorCode.REQUIRES, path, self.name, text)
        condition = self._condition(schema_path)
        if condition is not None:
            text = f"is required {condition.reason}"
            return make_issue(ErrorCode.REQUIRED, path, self.name, text)
        return make_issue(ErrorCode.REQUIRED, path, self.name, "is required")

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


# Exact classes the engine always accepts for a JSON type (float is left out: NaN is not a
# number to the engine; subclasses and tuples are left to the engine too).
_SURELY_OF_TYPE: dict[str, frozenset[type]] = {
    "string": frozenset({str}),
    "integer": frozenset({int}),
    "number": frozenset({int}),
    "boolean": frozenset({bool}),
    "null": frozenset({type(None)}),
    "object": frozenset({dict}),
    "array": frozenset({list}),
}
_NOTHING: frozenset[type] = frozenset()
# Values whose message may be phrased later: the exact immutable scalars of a flat message.
_IMMUTABLE: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def _surely_of_type(expected: Any) -> frozenset[type]:
    names = expected if isinstance(expected, list) else [expected]
    return frozenset().union(
        *(_SURELY_OF_TYPE.get(n, _NOTHING) for n in names if isinstance(n, str))
    )


# Keywords whose subschemas apply to the same object (so their properties are its fields).
_IN_PLACE = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else")


def _named_fields(schema: Any) -> frozenset[str]:
    """The names of the top-level object's fields the schema mentions anywhere it applies
    to that object itself (not below a property, nor behind a ``$ref``)."""
    names: set[str] = set()
    pending = [schema]
    seen = 0
    while pending and seen < 10_000:  # bounded: a raw schema may be large
        node = pending.pop()
        seen += 1
        if not isinstance(node, dict):
            continue
        properties = node.get("properties")
        if isinstance(properties, dict):
            names.update(properties)
        for key in ("required",):
            value = node.get(key)
            if isinstance(value, list):
                names.update(v for v in value if isinstance(v, str))
        dependent = node.get("dependentRequired")
        if isinstance(dependent, dict):
            names.update(dependent)
            for needed in dependent.values():
                if isinstance(needed, list):
                    names.update(v for v in needed if isinstance(v, str))
        schemas = node.get("dependentSchemas")
        if isinstance(schemas, dict):
            names.update(schemas)
            pending.extend(schemas.values())
        for key in _IN_PLACE:
            sub = node.get(key)
            pending.extend(sub if isinstance(sub, list) else [sub])
    return frozenset(n for n in names if isinstance(n, str))


def _always_valid(_value: Any) -> bool:
    return True


def _no_errors(_value: Any) -> Iterator[jsonschema_rs.ValidationError]:
    return iter(())
