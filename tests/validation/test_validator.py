"""CoordinationValidator: the API of the contract, the report, redaction and switches."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from coordination import ValidationError
from coordination.validation import (
    CoordinationValidator,
    RuleSet,
    ValidationIssue,
    ValidationResult,
)

VALID_EVENT = {"user_id": "123", "action": "login", "timestamp": "2024-01-01T12:00:00Z"}
INVALID_EVENT = {"user_id": "", "action": "jump", "timestamp": "2024-01-01T12:00:00Z"}


def test_validate_by_name(validator: CoordinationValidator) -> None:
    assert validator.validate(VALID_EVENT, "user_event") == ValidationResult(True, ())
    result = validator.validate(INVALID_EVENT, "user_event")
    assert not result.is_valid
    assert result.rule_set == "user_event"
    assert [(i.code, i.path) for i in result.errors] == [
        ("min_length", ("user_id",)),
        ("allowed", ("action",)),
    ]


def test_nested_valid_message_takes_the_full_path(validator: CoordinationValidator) -> None:
    event = {**VALID_EVENT, "tags": ["a"], "address": {"city": "Oslo"}}
    assert validator.validate(event, "user_event").is_valid
    bad = {**VALID_EVENT, "address": {}}
    assert [i.path for i in validator.validate(bad, "user_event").errors] == [("address", "city")]


def test_compile_once_validate_many(validator: CoordinationValidator) -> None:
    rule_set = validator.compile({"required_fields": ["id"]}, name="ids")
    assert isinstance(rule_set, RuleSet)
    assert rule_set.name == "ids"
    assert validator.validate({"id": 1}, rule_set).is_valid
    assert validator.validate({}, rule_set).errors[0].rule_set == "ids"
    assert validator.get_validation_report()["by_rule_set"]["ids"] == {"valid": 1, "invalid": 1}


def test_inline_rules_are_compiled_once(validator: CoordinationValidator) -> None:
    rules = {"required_fields": ["id"]}
    first = validator.rule_set(rules)
    assert validator.rule_set({"required_fields": ["id"]}) is first
    assert first.name.startswith("inline-")
    assert validator.rule_set({"name": "named", "required_fields": ["id"]}).name == "named"


def test_validate_message_structure_without_rules(validator: CoordinationValidator) -> None:
    # the spec's wrapper passes {"args": args, "kwargs": kwargs}: tuples are JSON arrays
    data = {"args": ({"name": "John"},), "kwargs": {}}
    assert validator.validate_message_structure(data).is_valid
    assert not validator.validate_message_structure({"args": (object(),)}).is_valid
    with_rules = validator.validate_message_structure({}, {"required_fields": ["x"]})
    assert [i.code for i in with_rules.errors] == ["required"]


def test_ensure_valid_raises_a_value_error_naming_every_field(
    validator: CoordinationValidator,
) -> None:
    validator.ensure_valid(VALID_EVENT, "user_event")
    with pytest.raises(ValidationError) as caught:
        validator.ensure_valid(INVALID_EVENT, "user_event")
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.rule_set == "user_event"
    assert [i.code for i in error.errors] == ["min_length", "allowed"]
    assert "user_id:" in str(error)
    assert "action:" in str(error)
    assert "'user_event'" in str(error)


def test_results_and_issues_serialise(validator: CoordinationValidator) -> None:
    result = validator.validate(INVALID_EVENT, "user_event")
    document = json.loads(json.dumps(result.to_dict()))
    assert document["is_valid"] is False
    assert document["errors"][0] == {
        "code": "min_length",
        "path": ["user_id"],
        "pointer": "/user_id",
        "rule_set": "user_event",
        "message": "user_id: must have at least 1 character, got 0 ('')",
    }
    issue = result.errors[0]
    assert isinstance(issue, ValidationIssue)
    assert str(issue) == issue.message


def test_report(validator: CoordinationValidator) -> None:
    validator.validate(VALID_EVENT, "user_event")
    validator.validate(VALID_EVENT, "user_event")
    validator.validate(INVALID_EVENT, "user_event")
    validator.validate({}, {"name": "other", "required_fields": ["id"]})
    validator.validate_message_structure({"ok": 1})
    report = validator.get_validation_report()
    json.dumps(report)  # serialisable
    assert report["status"] == "HEALTHY"
    assert (report["total_validations"], report["valid"], report["invalid"]) == (5, 3, 2)
    assert report["by_rule_set"] == {
        "user_event": {"valid": 2, "invalid": 1},
        "other": {"valid": 0, "invalid": 1},
        "message_structure": {"valid": 1, "invalid": 0},
    }
    assert report["by_error_code"] == {"min_length": 1, "allowed": 1, "required": 1}
    assert report["by_field"] == {"user_id": 1, "action": 1, "id": 1}
    assert {"rule_set": "other", "code": "required", "count": 1} in report[
        "failures_by_rule_set_and_code"
    ]
    recent = report["recent_failures"]
    assert [f["rule_set"] for f in recent] == ["user_event", "other"]
    assert recent[0]["error_count"] == 2
    assert recent[0]["errors"][0]["code"] == "min_length"
    assert recent[0]["timestamp"].endswith("+00:00")
    assert report["rule_sets"] == ["user_event"]


def test_report_tables_are_bounded() -> None:
    validator = CoordinationValidator(config={"max_operation_names": 5})
    rules = validator.compile({"fields": {}, "additional_fields": "forbid"}, name="closed")
    for n in range(50):
        validator.validate({f"field{n}": 1, "x" * 10_000: 2}, rules)
    report = validator.get_validation_report()
    assert len(report["by_field"]) <= 6
    assert "__overflow__" in report["by_field"]
    assert all(len(name) <= 121 for name in report["by_field"])
    assert len(report["recent_failures"]) == 20


def test_secret_values_never_appear(
    validator: CoordinationValidator, caplog: pytest.LogCaptureFixture
) -> None:
    debug = CoordinationValidator(config={}, debug=True)
    rules = {
        "fields": {
            "password": {"type": "string", "min_length": 12},
            "apiKey": {"allowed": ["a"]},
            "pin_code": {"type": "integer"},
            "note": {"type": "string", "max_length": 2, "secret": True},
        }
    }
    data = {"password": "hunter2", "apiKey": "sk-live-1", "pin_code": "9137", "note": "private"}
    with caplog.at_level(logging.DEBUG, logger="coordination.validation"):
        result = debug.validate(data, rules)
    assert {i.code for i in result.errors} == {"min_length", "allowed", "type", "max_length"}
    shown = json.dumps([result.to_dict(), debug.get_validation_report()]) + caplog.text
    for secret in ("hunter2", "sk-live-1", "9137", "private"):
        assert secret not in shown
    assert "[redacted]" in shown
    assert "validation against" in caplog.text  # debug logging did happen


def test_disabled_validation_is_a_no_op() -> None:
    validator = CoordinationValidator(config={"enable_validation": False})
    assert validator.validate({}, {"required_fields": ["x"]}).is_valid
    assert validator.validate_message_structure({1: {2}}).is_valid
    validator.ensure_valid({}, {"required_fields": ["x"]})
    assert validator.get_validation_report()["total_validations"] == 0


def test_health(validator: CoordinationValidator) -> None:
    health = validator.get_health_status()
    assert health == {
        "status": "HEALTHY",
        "enabled": True,
        "rule_sets": 1,
        "loaded_rule_sets": 1,
        "validations": 0,
    }


def test_health_counts_compiled_rule_sets_in_use_and_every_validation(
    validator: CoordinationValidator,
) -> None:
    # Route rules, decorators and event rules are compiled, not loaded from files: the
    # health document once said "rule_sets": 0 for a service validating with them.
    route = validator.compile({"required_fields": ["sku"]}, name="route POST /orders")
    validator.validate({"sku": "a"}, route)
    validator.validate({}, route)
    validator.validate({"x": 1}, {"required_fields": ["x"]})
    health = validator.get_health_status()
    assert health["rule_sets"] == 3  # the loaded one, the route's, the inline one
    assert health["loaded_rule_sets"] == 1
    assert health["validations"] == 3


def test_spec_default_construction_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, clean_environment: None, rules_dir: Any
) -> None:
    monkeypatch.setenv("COORDINATION_RULES_PATH", str(rules_dir))
    monkeypatch.setenv("COORDINATION_VALIDATION_MAX_DEPTH", "2")
    validator = CoordinationValidator()
    assert validator.rule_set_names == ["user_event"]
    assert not validator.validate_message_structure({"a": {"b": {}}}).is_valid


def test_counts_are_exact_under_threads(validator: CoordinationValidator) -> None:
    def work() -> None:
        for _ in range(2000):
            validator.validate(VALID_EVENT, "user_event")
            validator.validate(INVALID_EVENT, "user_event")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = validator.get_validation_report()
    assert report["by_rule_set"]["user_event"] == {"valid": 8000, "invalid": 8000}


def test_reloading_never_hides_a_loaded_name(validator: CoordinationValidator) -> None:
    failures: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                validator.validate(VALID_EVENT, "user_event")
            except Exception as exc:  # a miss would raise RuleSetError (unknown rule set)
                failures.append(exc)
                return

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for _ in range(30):
        validator.reload_rules()
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []


def test_report_counts_match_the_results_across_batches() -> None:
    """Failures are counted in batches (by code, and by field through its JSON pointer):
    several batches of two rule sets, nested paths and names with '/' and '~' in them."""
    from collections import Counter

    validator = CoordinationValidator(config={})
    flat = validator.compile(
        {"fields": {"a/b": {"type": "integer"}, "x~y": {"type": "string", "min_length": 2}}},
        name="flat",
    )
    nested = validator.compile(
        {"fields": {"address": {"type": "object", "fields": {"city": {"type": "string"}}}}},
        name="nested",
    )
    codes: Counter[str] = Counter()
    fields: Counter[str] = Counter()
    pairs: Counter[tuple[str | None, str]] = Counter()
    for n in range(900):  # a batch of one rule set first, then batches of both
        if n < 300 or n % 3:
            result = validator.validate({"a/b": "text", "x~y": "z" * (n % 3)}, flat)
        else:
            result = validator.validate({"address": {"city": n}}, nested)
        codes.update(issue.code for issue in result.errors)
        fields.update(issue.field for issue in result.errors)
        pairs.update((issue.rule_set, issue.code) for issue in result.errors)
    report = validator.get_validation_report()
    assert report["by_error_code"] == dict(codes)
    assert report["by_field"] == dict(fields)
    assert set(report["by_field"]) == {"a/b", "x~y", "address.city"}
    reported = {
        (f["rule_set"], f["code"]): f["count"] for f in report["failures_by_rule_set_and_code"]
    }
    assert reported == dict(pairs)
    assert set(reported) == {("flat", "type"), ("flat", "min_length"), ("nested", "type")}


def test_debug_logging_follows_a_level_set_after_creation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    validator = CoordinationValidator(config={})
    rules = validator.compile({"required_fields": ["id"]}, name="ids")
    validator.validate({}, rules)  # the logger now remembers "not enabled for DEBUG"
    with caplog.at_level(logging.DEBUG, logger="coordination.validation"):
        validator.validate({}, rules)
    assert "validation against 'ids' failed: id: is required" in caplog.text


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"n": True, "s": None}, [("type", ("n",)), ("required", ("s",))]),  # bool is no int
        ({"n": 1.5, "s": "ab"}, [("type", ("n",)), ("min_length", ("s",))]),
        ({"n": 2, "s": 7}, [("type", ("s",))]),
        ({"n": 2.0, "s": "abc"}, []),  # 2.0 is an integer to JSON Schema
    ],
)
def test_type_and_keyword_issues_of_a_failing_field(
    message: dict[str, Any], expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    validator = CoordinationValidator(config={})
    rules = validator.compile(
        {
            "fields": {
                "n": {"type": "integer"},
                "s": {"type": "string", "required": True, "min_length": 3},
            }
        },
        name="typed",
    )
    result = validator.validate(message, rules)
    assert [(issue.code, issue.path) for issue in result.errors] == expected
    assert sorted(rules.issues(message)) == sorted(rules._engine_issues(message, False))
