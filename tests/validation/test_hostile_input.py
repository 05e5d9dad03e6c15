"""Hostile messages get a clear result: never a crash, a hang or unbounded memory."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from coordination.validation import CoordinationValidator

RECURSIVE = {"schema": {"type": "object", "additionalProperties": {"$ref": "#"}}}


@pytest.fixture
def validator() -> CoordinationValidator:
    return CoordinationValidator(config={})


def nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


def codes(validator: CoordinationValidator, data: Any, rules: Any = None) -> list[str]:
    return [i.code for i in validator.validate_message_structure(data, rules).errors]


def test_deep_nesting_never_reaches_the_engine_in_process(validator: CoordinationValidator) -> None:
    result = validator.validate(nested(100_000), RECURSIVE)
    (issue,) = result.errors
    assert issue.code == "too_deep"
    assert len(issue.path) == 64
    assert "nests deeper than 64 levels" in issue.message


def test_the_process_survives_a_recursive_schema_and_deep_data() -> None:
    """jsonschema-rs alone dies of a native stack overflow here; the pre-check prevents it."""
    script = textwrap.dedent(
        """
        from coordination.validation import CoordinationValidator
        root = node = {}
        for _ in range(100_000):
            node["a"] = {}
            node = node["a"]
        rules = {"schema": {"type": "object", "additionalProperties": {"$ref": "#"}}}
        validator = CoordinationValidator(config={})
        for rule_set in (rules, {"required_fields": ["a"]}, {"fields": {"a": "object"}}):
            print(validator.validate(root, rule_set).errors[0].code)
        print(validator.validate_message_structure(root).errors[0].code)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["too_deep"] * 4


def test_depth_limit_is_configurable() -> None:
    validator = CoordinationValidator(config={"validation_max_depth": 3})
    assert codes(validator, nested(2)) == []
    assert codes(validator, nested(3)) == ["too_deep"]
    assert codes(validator, {"a": [[{"b": 1}]]}) == ["too_deep"]


def test_cycles(validator: CoordinationValidator) -> None:
    loop: dict[str, Any] = {"name": "x"}
    loop["self"] = loop
    listed: list[Any] = []
    listed.append(listed)
    assert codes(validator, loop) == ["cycle"]
    assert codes(validator, {"items": listed}) == ["cycle"]
    (issue,) = validator.validate(loop, RECURSIVE).errors
    assert (issue.code, issue.path) == ("cycle", ("self",))


def test_shared_references_are_fine_but_bounded(validator: CoordinationValidator) -> None:
    shared = {"v": 1}
    assert codes(validator, {"a": shared, "b": shared}) == []
    # each level doubles the document: 2**40 values described by 40 small lists
    bomb: list[Any] = [1]
    for _ in range(40):
        bomb = [bomb, bomb]
    # CPU time, not wall time: the bound is on the walk's work, not on the machine's load
    started = time.process_time()
    assert codes(validator, {"bomb": bomb}) == ["too_large"]
    assert time.process_time() - started < 10


def test_huge_strings_and_lists(validator: CoordinationValidator) -> None:
    big = "x" * 50_000_000
    started = time.perf_counter()
    result = validator.validate({"note": big}, {"fields": {"note": {"type": "string"}}})
    assert time.perf_counter() - started < 5
    (issue,) = result.errors
    assert issue.code == "string_too_long"
    assert "at most 1000000 characters, got 50000000" in issue.message
    assert len(issue.message) < 200
    assert codes(validator, {"items": list(range(100_001))}) == ["too_many_items"]
    assert codes(validator, dict.fromkeys(map(str, range(100_001)), 1)) == ["too_many_items"]


@pytest.mark.parametrize(
    ("value", "code", "words"),
    [
        ({1, 2}, "not_json", "got set {1, 2}"),
        (b"bytes", "not_json", "got bytes b'bytes'"),
        (object(), "not_json", "got object"),
        (math.nan, "not_finite", "got nan"),
        (math.inf, "not_finite", "got inf"),
        (1 + 2j, "not_json", "got complex"),
    ],
)
def test_values_json_cannot_carry(
    validator: CoordinationValidator, value: Any, code: str, words: str
) -> None:
    for rules in (None, {"fields": {"other": "string"}}, RECURSIVE):
        (issue,) = validator.validate_message_structure({"v": value}, rules).errors
        assert (issue.code, issue.path) == (code, ("v",))
        assert words in issue.message


def test_non_string_keys(validator: CoordinationValidator) -> None:
    (issue,) = validator.validate({1: "a"}, {"required_fields": []}).errors
    assert issue.code == "non_string_key"
    assert "keys must be strings, got int 1" in issue.message


def test_not_a_mapping(validator: CoordinationValidator) -> None:
    for data in ([1], "text", None, 3):
        (issue,) = validator.validate(data, {"required_fields": []}).errors
        assert issue.code == "not_a_mapping"


def test_json_subclasses_and_tuples_are_accepted(validator: CoordinationValidator) -> None:
    from collections import OrderedDict
    from enum import IntEnum, StrEnum

    class Colour(StrEnum):
        RED = "red"

    class Level(IntEnum):
        HIGH = 3

    data = OrderedDict(colour=Colour.RED, level=Level.HIGH, pair=(1, "a"), flag=True)
    rules = {"fields": {"colour": {"allowed": ["red"]}, "level": "integer", "pair": "list"}}
    assert validator.validate(data, rules).is_valid


def test_hostile_repr_does_not_break_reporting(validator: CoordinationValidator) -> None:
    class Nasty:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    (issue,) = validator.validate_message_structure({"v": Nasty()}).errors
    assert issue.code == "not_json"
    assert "Nasty" in issue.message


def test_secret_values_are_not_shown(validator: CoordinationValidator) -> None:
    (issue,) = validator.validate_message_structure({"api_key": {"sk-123"}}).errors
    assert "sk-123" not in issue.message
    assert "[redacted]" in issue.message


def test_fail_fast_stops_at_the_first_problem() -> None:
    validator = CoordinationValidator(config={"validation_fail_fast": True})
    assert len(validator.validate_message_structure({"a": {1}, "b": {2}}).errors) == 1
    rules = {"fields": {"a": "integer", "b": "integer"}}
    assert len(validator.validate({"a": "x", "b": "y"}, rules).errors) == 1
    assert len(validator.validate({"a": "x", "b": {"c": "y"}}, rules).errors) == 1
