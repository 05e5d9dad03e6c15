"""Rule files: loading, the ways they can be wrong, and the messages that say how."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from coordination.validation import CoordinationValidator, RuleSetError, load_rule_sets

MakeValidator = Callable[..., CoordinationValidator]


def test_loads_a_folder_by_name(validator: CoordinationValidator) -> None:
    assert validator.rule_set_names == ["user_event"]
    assert validator.validate(
        {"user_id": "1", "action": "login", "timestamp": "2024-01-01T00:00:00Z"}, "user_event"
    ).is_valid


def test_several_rule_sets_per_file(tmp_path: Path) -> None:
    listed = tmp_path / "listed.yaml"
    listed.write_text("rule_sets:\n  - {name: a, required_fields: [x]}\n  - {name: b}\n")
    documents = tmp_path / "documents.yml"
    documents.write_text("name: c\nrequired_fields: [y]\n---\nname: d\n")
    assert sorted(load_rule_sets(tmp_path)) == ["a", "b", "c", "d"]
    validator = CoordinationValidator(tmp_path, config={})
    assert not validator.validate({}, "a").is_valid
    assert validator.validate({}, "b").is_valid


def test_a_lone_unnamed_rule_set_takes_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "orders.yaml").write_text("required_fields: [id]\n")
    assert list(load_rule_sets(tmp_path)) == ["orders"]


def test_missing_path_loads_nothing(tmp_path: Path) -> None:
    validator = CoordinationValidator(tmp_path / "absent", config={})
    assert validator.rule_set_names == []


def test_rules_path_comes_from_config(rules_dir: Path) -> None:
    validator = CoordinationValidator(config={"validation_rules_path": str(rules_dir)})
    assert validator.rule_set_names == ["user_event"]


def test_yaml_syntax_error_names_file_and_line(make_validator: MakeValidator) -> None:
    with pytest.raises(RuleSetError, match=r"made\.yaml, line 4, column 4: expected ','"):
        make_validator("name: x\nfields:\n  a: {type: string\n  b: 1\n")


def test_unknown_keyword_names_keyword_file_field_and_suggestion(
    make_validator: MakeValidator,
) -> None:
    text = "name: users\nfields:\n  name:\n    type: string\n    min_lenght: 3\n"
    with pytest.raises(RuleSetError) as caught:
        make_validator(text)
    message = str(caught.value)
    for part in ("'min_lenght'", "made.yaml, line 5", "field 'name'", "did you mean 'min_length'"):
        assert part in message
    assert "rule set 'users'" in message


def test_unknown_rule_set_keyword_suggests(make_validator: MakeValidator) -> None:
    with pytest.raises(RuleSetError, match="did you mean 'required_fields'"):
        make_validator("name: x\nrequired_field: [a]\n")


def test_unknown_type_suggests(make_validator: MakeValidator) -> None:
    with pytest.raises(RuleSetError, match="unknown type 'strng'; did you mean 'string'"):
        make_validator("name: x\nfields: {a: {type: strng}}\n")


def test_invalid_regular_expression_fails_at_load(make_validator: MakeValidator) -> None:
    with pytest.raises(RuleSetError, match=r"field 'code'.*'pattern' '\(a' is not a valid"):
        make_validator("name: x\nfields:\n  code: {type: string, pattern: '(a'}\n")


def test_backtracking_constructs_are_refused(make_validator: MakeValidator) -> None:
    with pytest.raises(RuleSetError, match="look-around"):
        make_validator("name: x\nfields:\n  code: {type: string, pattern: '(?=a)b'}\n")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (
            "{a: {type: integer, min_length: 1}}",
            "'min_length' does not apply to a field of type 'integer'",
        ),
        ("{a: {type: string, min: 1}}", "'min' does not apply"),
        ("{a: {type: string, required: yes please}}", "'required' must be true or false"),
        ("{a: {type: number, min: ten}}", "'min' must be a finite number"),
        ("{a: {type: string, max_length: -1}}", "'max_length' must be a whole number"),
        ("{a: {allowed: []}}", "'allowed' must be a non-empty list"),
        ("{a: {type: integer, items: {type: string}}}", "'items' does not apply"),
        (
            "{a: {type: list, items: {type: string, required: true}}}",
            "unknown field keyword 'required'",
        ),
        ("{a: {type: string, fields: {b: string}}}", "'fields' does not apply"),
        ("{a: {requires: [1]}}", "'requires' must be a field name"),
        ("{a: 5}", "must be a mapping (or a type name)"),
    ],
)
def test_bad_field_rules(make_validator: MakeValidator, fields: str, words: str) -> None:
    with pytest.raises(RuleSetError) as caught:
        make_validator(f"name: x\nfields: {fields}\n")
    assert words in str(caught.value)
    assert "made.yaml" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: x\nadditional_fields: maybe\n", "'additional_fields' must be 'allow' or 'forbid'"),
        ("name: x\nconditions: [{when: {a: 1}}]\n", "at least one given"),
        ("name: x\nconditions: [{when: {a: 1}, require: [b], otherwise: [c]}]\n", "'otherwise'"),
        ("name: x\nschema: {type: object}\nfields: {a: string}\n", "cannot be combined"),
        ("name: x\nschema: {type: strin}\n", "invalid JSON Schema"),
        ("name: x\nformats: sometimes\n", "'formats' must be 'assert' or 'annotate'"),
        ("- a\n- b\n", "must hold mappings"),
        ("rule_sets: {a: 1}\n", "must be a list of rule sets"),
        ("rule_sets: [{name: a}, {name: a}]\n", "defined twice"),
        ("rule_sets: [{required_fields: [a]}]\n", "needs a 'name'"),
    ],
)
def test_bad_rule_sets(make_validator: MakeValidator, text: str, words: str) -> None:
    with pytest.raises(RuleSetError) as caught:
        make_validator(text)
    assert words in str(caught.value)


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: same\n")
    (tmp_path / "b.yaml").write_text("name: same\n")
    with pytest.raises(RuleSetError, match=r"'same' at .*b\.yaml.* already defined at .*a\.yaml"):
        load_rule_sets(tmp_path)


def test_unknown_rule_set_name_lists_the_loaded_ones(validator: CoordinationValidator) -> None:
    with pytest.raises(RuleSetError) as caught:
        validator.validate({}, "user_events")
    message = str(caught.value)
    assert "unknown rule set 'user_events'" in message
    assert "did you mean 'user_event'" in message
    assert "user_event" in message.split(":")[-1]


def test_rule_set_given_as_a_path(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text("name: one\nrequired_fields: [id]\n")
    validator = CoordinationValidator(tmp_path / "none", config={})
    assert not validator.validate({}, path).is_valid
    assert validator.validate({"id": 1}, path).is_valid
    assert validator.rule_set(path) is validator.rule_set(path)  # cached while unchanged
    # a str is a name, never a path of its own (names come from data: event types, ...)
    with pytest.raises(RuleSetError, match=r"unknown rule set .*pathlib\.Path"):
        validator.validate({"id": 1}, str(path))


def test_reload_picks_up_changes_and_keeps_old_rules_on_error(rules_dir: Path) -> None:
    validator = CoordinationValidator(rules_dir, config={})
    (rules_dir / "extra.yaml").write_text("name: extra\nrequired_fields: [id]\n")
    assert validator.reload_rules() == ["extra", "user_event"]
    assert not validator.validate({}, "extra").is_valid

    (rules_dir / "broken.yaml").write_text("name: broken\nfields: {a: {type: nope}}\n")
    with pytest.raises(RuleSetError, match="unknown type 'nope'"):
        validator.reload_rules()
    assert validator.rule_set_names == ["extra", "user_event"]  # still in use
    health = validator.get_health_status()
    assert health["status"] == "DEGRADED"
    assert "nope" in health["error"]

    (rules_dir / "broken.yaml").unlink()
    validator.reload_rules()
    assert validator.get_health_status()["status"] == "HEALTHY"


def test_bad_rule_files_fail_the_constructor(make_validator: MakeValidator) -> None:
    with pytest.raises(RuleSetError):
        make_validator("name: x\nfields: {a: {type: nope}}\n")


def test_inline_rules_must_be_a_mapping(validator: CoordinationValidator) -> None:
    with pytest.raises(RuleSetError, match="rules must be a mapping"):
        validator.compile(["a"])  # type: ignore[arg-type]
    with pytest.raises(RuleSetError, match="rule_set must be"):
        validator.validate({}, 42)  # type: ignore[arg-type]
