"""Each keyword of the rule vocabulary, and each error code it produces."""

from __future__ import annotations

from typing import Any

import pytest

from coordination.validation import CoordinationValidator, ErrorCode, ValidationIssue


@pytest.fixture
def validator() -> CoordinationValidator:
    return CoordinationValidator(config={})


def issues(
    validator: CoordinationValidator, rules: dict[str, Any], data: Any
) -> list[ValidationIssue]:
    return list(validator.validate(data, rules).errors)


# (field rules, a valid value, an invalid value, the code, words the message must contain)
CITY = {"fields": {"city": {"type": "string", "required": True}}}
KEYWORDS = [
    ({"type": "string"}, "x", 5, "type", ["must be a string", "got number 5"]),
    ({"type": "integer"}, 3, 3.5, "type", ["an integer"]),
    ({"type": "integer"}, 3, True, "type", ["an integer", "boolean"]),
    ({"type": "number"}, 2.5, "2.5", "type", ["a number"]),
    ({"type": "boolean"}, False, "false", "type", ["a boolean"]),
    ({"type": "object"}, {"a": 1}, [1], "type", ["an object"]),
    ({"type": "list"}, [1], {"a": 1}, "type", ["a list"]),
    ({"type": "null"}, None, 0, "type", ["null"]),
    ({"type": "datetime"}, "2024-01-01T12:00:00Z", "2024-01-01", "format", ["date-time"]),
    ({"type": "date"}, "2024-02-29", "2023-02-29", "format", ["a date"]),
    ({"type": "time"}, "12:00:00Z", "25:00:00Z", "format", ["a time"]),
    ({"type": "email"}, "ann@example.com", "ann-at-example", "format", ["an email address"]),
    ({"type": "uuid"}, "123e4567-e89b-12d3-a456-426614174000", "123", "format", ["a UUID"]),
    ({"type": "uri"}, "https://example.com/a", "not a uri", "format", ["a URI"]),
    ({"type": "ipv4"}, "10.0.0.1", "10.0.0.256", "format", ["an IPv4 address"]),
    ({"type": "integer", "min": 0}, 0, -1, "min", ["must be ≥ 0", "got -1"]),
    ({"type": "number", "max": 10}, 10, 10.5, "max", ["must be ≤ 10"]),
    ({"type": "number", "exclusive_min": 0}, 0.1, 0, "min", ["must be > 0"]),
    ({"type": "number", "exclusive_max": 1}, 0.9, 1, "max", ["must be < 1"]),
    ({"type": "string", "min_length": 2}, "ab", "a", "min_length", ["least 2 characters", "got 1"]),
    ({"type": "string", "max_length": 2}, "ab", "abc", "max_length", ["at most 2 characters"]),
    ({"type": "string", "pattern": "^[a-z]+$"}, "abc", "ab1", "pattern", ["^[a-z]+$", "'ab1'"]),
    ({"allowed": ["a", "b"]}, "a", "c", "allowed", ["one of 'a', 'b'", "got 'c'"]),
    ({"type": "list", "items": {"type": "integer"}}, [1, 2], [1, "x"], "type", ["an integer"]),
    ({"type": "list", "min_items": 1}, [1], [], "min_items", ["at least 1 item,"]),
    ({"type": "list", "max_items": 1}, [1], [1, 2], "max_items", ["at most 1 item,"]),
    ({"type": "list", "unique_items": True}, [1, 2], [1, 1], "unique_items", ["duplicate"]),
    (CITY, {"city": "Oslo"}, {}, "required", ["is required"]),
]  # fmt: skip


@pytest.mark.parametrize(("rules", "good", "bad", "code", "words"), KEYWORDS)
def test_keyword(
    validator: CoordinationValidator,
    rules: dict[str, Any],
    good: Any,
    bad: Any,
    code: str,
    words: list[str],
) -> None:
    rule_set = validator.compile({"fields": {"f": rules}}, name="kw")
    assert validator.validate({"f": good}, rule_set).is_valid
    assert validator.validate({}, rule_set).is_valid  # not required: may be absent
    found = validator.validate({"f": bad}, rule_set).errors
    assert [i.code for i in found] == [code]
    issue = found[0]
    assert issue.code == ErrorCode(code)
    assert issue.path[0] == "f"
    assert issue.pointer.startswith("/f")
    assert issue.rule_set == "kw"
    assert issue.message.startswith(issue.field + ": ")
    for word in words:
        assert word in issue.message


def test_type_errors_name_what_was_found(validator: CoordinationValidator) -> None:
    (issue,) = issues(validator, {"fields": {"amount": "number"}}, {"amount": "12"})
    assert issue.message == "amount: must be a number, got string '12'"


def test_required_means_present_and_not_null(validator: CoordinationValidator) -> None:
    rules = {"fields": {"name": {"type": "string", "required": True}}}
    (missing,) = issues(validator, rules, {})
    (null,) = issues(validator, rules, {"name": None})
    assert (missing.code, missing.message) == ("required", "name: is required")
    assert (null.code, null.message) == ("required", "name: is required and may not be null")


def test_nullable_allows_null(validator: CoordinationValidator) -> None:
    strict = {"fields": {"n": {"type": "integer"}}}
    loose = {"fields": {"n": {"type": "integer", "nullable": True, "allowed": [1, 2]}}}
    assert [i.code for i in issues(validator, strict, {"n": None})] == ["type"]
    assert issues(validator, loose, {"n": None}) == []
    assert [i.code for i in issues(validator, loose, {"n": 3})] == ["allowed"]


def test_required_and_nullable_must_be_present_but_may_be_null(
    validator: CoordinationValidator,
) -> None:
    rules = {"fields": {"n": {"type": "integer", "required": True, "nullable": True}}}
    assert issues(validator, rules, {"n": None}) == []
    assert [i.code for i in issues(validator, rules, {})] == ["required"]


def test_additional_fields_forbid_and_allow(validator: CoordinationValidator) -> None:
    forbid = {"fields": {"a": "integer"}, "additional_fields": "forbid"}
    (extra,) = issues(validator, forbid, {"a": 1, "b": 2})
    assert (extra.code, extra.path, extra.pointer) == ("additional_field", ("b",), "/b")
    assert issues(validator, {"fields": {"a": "integer"}}, {"a": 1, "b": 2}) == []


def test_nested_fields_report_full_paths(validator: CoordinationValidator) -> None:
    rules = {
        "fields": {
            "address": {
                "fields": {"city": {"type": "string", "required": True}, "zip": "integer"},
                "additional_fields": "forbid",
            }
        }
    }
    found = issues(validator, rules, {"address": {"zip": "x", "planet": "Mars"}})
    assert {(i.code, i.path, i.pointer) for i in found} == {
        ("required", ("address", "city"), "/address/city"),
        ("type", ("address", "zip"), "/address/zip"),
        ("additional_field", ("address", "planet"), "/address/planet"),
    }
    assert any(i.message.startswith("address.zip: must be an integer") for i in found)


def test_list_items_report_their_index(validator: CoordinationValidator) -> None:
    rules = {"fields": {"tags": {"type": "list", "items": {"type": "string", "max_length": 3}}}}
    (issue,) = issues(validator, rules, {"tags": ["ok", "toolong"]})
    assert (issue.code, issue.path, issue.pointer) == ("max_length", ("tags", 1), "/tags/1")


def test_pointer_escapes_slash_and_tilde(validator: CoordinationValidator) -> None:
    (issue,) = issues(validator, {"required_fields": ["a/b~c"]}, {})
    assert issue.pointer == "/a~1b~0c"


def test_requires_names_the_field_that_needs_it(validator: CoordinationValidator) -> None:
    rules = {"fields": {"card": {"type": "string", "requires": ["expiry", "cvc"]}}}
    found = issues(validator, rules, {"card": "4111"})
    assert {(i.code, i.path) for i in found} == {("requires", ("expiry",)), ("requires", ("cvc",))}
    assert "expiry: is required when 'card' is present" in [i.message for i in found]
    assert issues(validator, rules, {"expiry": "12/30"}) == []


def test_excludes_forbids_the_other_field(validator: CoordinationValidator) -> None:
    rules = {"fields": {"email": {"type": "string", "excludes": "phone"}}}
    (issue,) = issues(validator, rules, {"email": "a@b.c", "phone": "123"})
    assert (issue.code, issue.path) == ("excludes", ("phone",))
    assert issue.message == "phone: must not be present when 'email' is present"
    assert issues(validator, rules, {"phone": "123"}) == []


def test_conditional_requirements(validator: CoordinationValidator) -> None:
    rules = {
        "fields": {"method": {"allowed": ["card", "bank"]}},
        "conditions": [
            {"when": {"method": "card"}, "require": ["card_number"], "forbid": ["iban"]},
            {"when": {"method": ["bank"]}, "require": ["iban"]},
        ],
    }
    found = issues(validator, rules, {"method": "card", "iban": "DE00"})
    assert {(i.code, i.path) for i in found} == {
        ("required", ("card_number",)),
        ("forbidden", ("iban",)),
    }
    messages = {i.message for i in found}
    assert "card_number: is required when method is 'card'" in messages
    assert "iban: must not be present when method is 'card'" in messages
    assert [i.path for i in issues(validator, rules, {"method": "bank"})] == [("iban",)]
    assert issues(validator, rules, {"method": "card", "card_number": "4111"}) == []
    assert issues(validator, rules, {}) == []


def test_required_fields_shorthand_of_the_spec(validator: CoordinationValidator) -> None:
    rules = {"required_fields": ["name", "email"]}
    assert validator.validate({"name": "John", "email": "john@example.com"}, rules).is_valid
    found = issues(validator, rules, {"name": None})
    assert [(i.code, i.path) for i in found] == [("required", ("name",)), ("required", ("email",))]


def test_required_fields_merge_with_field_rules(validator: CoordinationValidator) -> None:
    rules = {"fields": {"age": {"type": "integer", "min": 0}}, "required_fields": ["age"]}
    assert [i.code for i in issues(validator, rules, {})] == ["required"]
    assert [i.code for i in issues(validator, rules, {"age": -1})] == ["min"]


def test_raw_schema_rule_set(validator: CoordinationValidator) -> None:
    rules = {
        "schema": {
            "type": "object",
            "properties": {"n": {"type": "integer", "multipleOf": 3}},
            "required": ["n"],
            "minProperties": 1,
            "propertyNames": {"maxLength": 3},
        }
    }
    assert validator.validate({"n": 9}, rules).is_valid
    assert [i.code for i in issues(validator, rules, {"n": 4})] == ["multiple_of"]
    assert [i.code for i in issues(validator, rules, {"n": 3, "long": 1})] == ["field_name"]
    assert {i.code for i in issues(validator, rules, {})} == {"required", "min_fields"}


def test_raw_schema_codes_for_combinators(validator: CoordinationValidator) -> None:
    cases = [
        ({"not": {"type": "integer"}}, {"x": 1}, "not"),
        ({"anyOf": [{"type": "string"}, {"type": "boolean"}]}, {"x": 1}, "any_of"),
        ({"oneOf": [{"type": "integer"}, {"minimum": 0}]}, {"x": 1}, "one_of"),
        ({"type": "array", "contains": {"type": "string"}}, {"x": [1]}, "contains"),
        ({"const": 2}, {"x": 1}, "allowed"),
        (False, {"x": 1}, "forbidden"),
    ]
    for field_schema, data, code in cases:
        rules = {"schema": {"properties": {"x": field_schema}}}
        assert [i.code for i in issues(validator, rules, data)] == [code], field_schema


def test_formats_annotate_turns_format_checks_off(validator: CoordinationValidator) -> None:
    schema = {"properties": {"when": {"type": "string", "format": "date-time"}}}
    assert not validator.validate({"when": "nope"}, {"schema": schema}).is_valid
    assert validator.validate({"when": "nope"}, {"schema": schema, "formats": "annotate"}).is_valid


def test_patterns_are_linear_time(validator: CoordinationValidator) -> None:
    # (a+)+$ backtracks catastrophically in Python's re; the engine's regex crate does not
    rules = {"fields": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    (issue,) = issues(validator, rules, {"s": "a" * 50_000 + "!"})
    assert issue.code == "pattern"
    assert "[" in issue.message or "…" in issue.message  # the long value is shortened


def test_every_error_code_is_documented() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    missing = [code.value for code in ErrorCode if f"`{code.value}`" not in text]
    assert not missing, f"docs/rules.md does not document {missing}"


def test_cross_field_rules_inside_a_nested_object(validator: CoordinationValidator) -> None:
    rules = {
        "fields": {
            "contact": {
                "fields": {
                    "email": {"type": "string", "excludes": "phone"},
                    "card": {"requires": "cvc"},
                }
            },
            "n": "integer",
        }
    }
    rule_set = validator.compile(rules, name="nested")
    data = {"contact": {"email": "a@b.c", "phone": "1", "card": "4111"}, "n": "x"}
    found = validator.validate(data, rule_set).errors
    assert {(i.code, i.path) for i in found} == {
        ("requires", ("contact", "cvc")),
        ("excludes", ("contact", "phone")),
        ("type", ("n",)),
    }
    # the per-field plan and the engine's own errors tell the same story
    assert sorted(rule_set.issues(data)) == sorted(rule_set._engine_issues(data, False))
