"""Hypothesis: compiled rule sets agree with a direct reading of the rules, and the two ways
of finding issues (the per-field plan and the engine's own errors) agree with each other."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination.validation import CoordinationValidator

VALIDATOR = CoordinationValidator(config={})
NAMES = ["a", "b", "c", "password"]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-20, 20),
    st.floats(-20, 20, allow_nan=False),
    st.text(max_size=6),
)


@st.composite
def field_rules(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["string", "integer", "number", "boolean", "any"]))
    rules: dict[str, Any] = {"type": kind}
    for flag in ("required", "nullable"):
        if draw(st.booleans()):
            rules[flag] = draw(st.booleans())
    if kind == "string":
        for key in ("min_length", "max_length"):
            if draw(st.booleans()):
                rules[key] = draw(st.integers(0, 5))
        if draw(st.booleans()):
            rules["allowed"] = draw(st.lists(st.text(max_size=3), min_size=1, max_size=3))
    if kind in ("integer", "number"):
        for key in ("min", "max", "exclusive_min", "exclusive_max"):
            if draw(st.booleans()):
                rules[key] = draw(st.integers(-10, 10))
        if draw(st.booleans()):
            rules["allowed"] = draw(st.lists(st.integers(-5, 5), min_size=1, max_size=3))
    return rules


@st.composite
def rule_sets(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    rule_set: dict[str, Any] = {"fields": {name: draw(field_rules()) for name in names}}
    if draw(st.booleans()):
        rule_set["additional_fields"] = draw(st.sampled_from(["allow", "forbid"]))
    return rule_set


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A rule set and a message whose values often sit right on the rules' boundaries."""
    rule_set = draw(rule_sets())
    data: dict[str, Any] = {}
    for name in [*NAMES, "extra"]:
        if not draw(st.booleans()):
            continue
        rules = rule_set["fields"].get(name, {})
        edges: list[Any] = list(rules.get("allowed", []))
        for key in ("min", "max", "exclusive_min", "exclusive_max"):
            if key in rules:
                edges += [rules[key], rules[key] + 1, rules[key] - 1, float(rules[key])]
        for key in ("min_length", "max_length"):
            if key in rules:
                edges += ["x" * rules[key], "x" * (rules[key] + 1), "x" * max(rules[key] - 1, 0)]
        choices = [scalars, st.sampled_from(edges)] if edges else [scalars]
        data[name] = draw(st.one_of(*choices))
    return rule_set, data


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema sees it: booleans are not numbers, 1 == 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def field_ok(rules: dict[str, Any], value: Any) -> bool:
    kind = rules["type"]
    required = rules.get("required", False)
    nullable = rules.get("nullable", False)
    if value is None:
        null_ok = nullable or (kind == "any" and not required)
        if not null_ok:
            return False
    else:
        type_ok = {
            "string": isinstance(value, str),
            "integer": is_number(value) and float(value).is_integer(),
            "number": is_number(value),
            "boolean": isinstance(value, bool),
            "any": True,
        }[kind]
        if not type_ok:
            return False
    if "allowed" in rules:
        options = [*rules["allowed"], *([None] if nullable else [])]
        if not any(json_equal(value, option) for option in options):
            return False
    if isinstance(value, str):
        if len(value) < rules.get("min_length", 0):
            return False
        if len(value) > rules.get("max_length", math.inf):
            return False
    if is_number(value):
        checks = [
            value >= rules.get("min", -math.inf),
            value <= rules.get("max", math.inf),
            value > rules.get("exclusive_min", -math.inf),
            value < rules.get("exclusive_max", math.inf),
        ]
        if not all(checks):
            return False
    return True


def oracle(rule_set: dict[str, Any], data: dict[str, Any]) -> set[str]:
    """The fields a direct reading of the rules says are wrong."""
    fields = rule_set["fields"]
    wrong = {
        name
        for name, rules in fields.items()
        if (name not in data and rules.get("required", False))
        or (name in data and not field_ok(rules, data[name]))
    }
    if rule_set.get("additional_fields") == "forbid":
        wrong |= set(data) - set(fields)
    return wrong


@SETTINGS
@given(cases())
def test_compiled_rules_agree_with_a_direct_reading(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    rule_set, data = case
    compiled = VALIDATOR.compile(rule_set, name="generated")
    result = VALIDATOR.validate(data, compiled)
    expected = oracle(rule_set, data)
    assert result.is_valid == (not expected)
    assert {issue.path[0] for issue in result.errors} == expected
    for issue in result.errors:
        assert issue.rule_set == "generated"
        assert issue.pointer == f"/{issue.path[0]}"
        if issue.path[0] == "password" and "got" in issue.message:
            assert issue.message.endswith("[redacted]") or "([redacted])" in issue.message


@SETTINGS
@given(cases())
def test_the_plan_and_the_engine_report_the_same_issues(
    case: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    rule_set, data = case
    compiled = VALIDATOR.compile(rule_set, name="generated")
    planned = compiled.issues(data)
    engine = compiled._engine_issues(data, fail_fast=False)
    assert sorted(planned) == sorted(engine)
    assert bool(planned) == (not compiled.is_valid(data))
