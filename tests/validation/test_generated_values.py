"""Generated JSON-ish values against generated rule sets (Hypothesis).

``validate()`` promises to raise only ``RuleSetError`` (for rules that cannot be found or
compiled); anything wrong with the data is an issue of the result. The values here are
what hostile or careless input holds: ints far beyond the int-to-string limit (both
signs), NaN and infinities, lone surrogates as keys and values, deep and wide nesting,
non-string keys, objects JSON cannot carry. Bounds (``min``/``max`` and a raw schema's
``minimum``/``maximum``) are checked against Python's own exact comparison.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordination.validation import CoordinationValidator, RuleSetError, ValidationResult
from coordination.validation._limits import MAX_INT_DIGITS

LIMITS = {"validation_max_depth": 12, "validation_max_items": 40}
HUGE = 10**MAX_INT_DIGITS  # the first int with one digit too many

# ints of every size: small, around 2**63 and 2**64, long, and past the limit
INTS = st.one_of(
    st.integers(),
    st.integers(min_value=2**62, max_value=2**65),
    st.integers(min_value=-(2**65), max_value=-(2**62)),
    st.integers(min_value=1, max_value=MAX_INT_DIGITS).map(lambda d: 10 ** (d - 1)),
    st.integers(min_value=-3, max_value=3).map(lambda k: HUGE + k),
    st.integers(min_value=-3, max_value=3).map(lambda k: -HUGE + k),
    # (mapped, not st.just: Hypothesis would print the strategy's repr, which str()s it)
    st.sampled_from([1, -1]).map(lambda sign: sign * 10**5000),
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXT = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), SURROGATES, st.sampled_from("a@.é")),
    max_size=12,
)
KEYS = st.one_of(TEXT, st.integers(), st.none(), st.tuples(st.integers()), st.booleans())
SCALARS = st.one_of(
    st.none(), st.booleans(), INTS, FLOATS, TEXT, st.binary(max_size=4), st.builds(object)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.tuples(inner, inner),
        st.dictionaries(KEYS, inner, max_size=6),
        st.sets(st.integers(), max_size=3),
    ),
    max_leaves=30,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    value: Any = draw(SCALARS)
    for _ in range(draw(st.integers(min_value=0, max_value=40))):
        value = [value] if draw(st.booleans()) else {draw(TEXT): value}
    return value


MESSAGES = st.one_of(
    VALUES,
    st.dictionaries(TEXT, VALUES, max_size=8),
    deep(),
    st.lists(st.integers(), min_size=30, max_size=60),  # wide: past max_items sometimes
)

BOUND = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=1, max_value=MAX_INT_DIGITS).map(lambda d: 10 ** (d - 1)),
    st.floats(allow_nan=False, allow_infinity=False),
)
FIELD_TYPES = ["string", "integer", "number", "boolean", "email", "any", "list", "object"]


@st.composite
def field_rules(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(FIELD_TYPES))
    rules: dict[str, Any] = {"type": kind, "required": draw(st.booleans())}
    if kind in ("integer", "number"):
        for keyword in draw(st.sets(st.sampled_from(["min", "max", "exclusive_max"]))):
            rules[keyword] = draw(BOUND)
    if kind == "string":
        if draw(st.booleans()):
            rules["pattern"] = draw(st.sampled_from(["^a", "[0-9]+", "é$", ".*"]))
        if draw(st.booleans()):
            rules["max_length"] = draw(st.integers(min_value=0, max_value=5))
    if kind == "any" and draw(st.booleans()):
        rules["allowed"] = draw(st.lists(st.one_of(TEXT, INTS, st.none()), min_size=1, max_size=3))
    return rules


RAW_SCHEMAS = st.recursive(
    st.one_of(
        st.builds(dict),
        st.booleans(),
        st.fixed_dictionaries({"maximum": BOUND}),
        st.fixed_dictionaries({"minimum": BOUND}),
        st.fixed_dictionaries({"type": st.sampled_from(["string", "integer", "array", "null"])}),
        st.fixed_dictionaries({"pattern": st.sampled_from(["^a", "b"])}),
        st.fixed_dictionaries({"enum": st.lists(st.one_of(TEXT, INTS), min_size=1, max_size=3)}),
        st.fixed_dictionaries({"format": st.sampled_from(["email", "date-time", "uri"])}),
    ),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"properties": st.dictionaries(TEXT, inner, max_size=3)}),
        st.fixed_dictionaries({"items": inner}),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"additionalProperties": inner}),
        st.fixed_dictionaries({"propertyNames": inner}),
    ),
    max_leaves=8,
)
RULE_SETS = st.one_of(
    st.builds(lambda f: {"fields": f}, st.dictionaries(TEXT, field_rules(), max_size=4)),
    st.builds(lambda s: {"schema": s}, RAW_SCHEMAS),
    st.builds(lambda names: {"required_fields": names}, st.lists(TEXT, max_size=3)),
)

VALIDATOR = CoordinationValidator(config=LIMITS)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=MESSAGES, rules=RULE_SETS)
def test_validate_raises_only_what_it_documents(data: Any, rules: dict[str, Any]) -> None:
    try:
        result = VALIDATOR.validate(data, rules)
    except RuleSetError:
        return  # generated rules that do not compile (a surrogate in a pattern, ...)
    assert isinstance(result, ValidationResult)
    assert result.is_valid == (not result.errors)
    for issue in result.errors:
        issue.message.encode("utf-8")  # every message is printable, loggable text
        issue.pointer.encode("utf-8")


def _expected(value: Any, low: Any, high: Any, exclusive: bool) -> str | None:
    """The reference: the issue code a bounded number must get, or None when it is valid."""
    if isinstance(value, float) and not math.isfinite(value):
        return "not_finite"
    if isinstance(value, int) and abs(value) >= HUGE:
        return "integer_too_large"
    if low is not None and value < low:
        return "min"
    if high is not None and (value >= high if exclusive else value > high):
        return "max"
    return None


NUMBERS = st.one_of(INTS, FLOATS)
OPTIONAL_BOUND = st.one_of(st.none(), BOUND)


@settings(max_examples=400, deadline=None)
@given(value=NUMBERS, low=OPTIONAL_BOUND, high=OPTIONAL_BOUND, exclusive=st.booleans())
def test_bounds_agree_with_python_for_every_number(
    value: Any, low: Any, high: Any, exclusive: bool
) -> None:
    expected = _expected(value, low, high, exclusive)
    field: dict[str, Any] = {"type": "number"}
    keywords: dict[str, Any] = {}
    if low is not None:
        field["min"], keywords["minimum"] = low, low
    if high is not None:
        key = "exclusive_max" if exclusive else "max"
        field[key] = high
        keywords["exclusiveMaximum" if exclusive else "maximum"] = high
    cases = [
        ({"x": value}, {"fields": {"x": field}}),  # the vocabulary, planned path
        ({"x": value}, {"schema": {"properties": {"x": keywords}}}),  # a raw schema
        ({"x": [value]}, {"schema": {"properties": {"x": {"items": keywords}}}}),  # nested
        (value, {"schema": keywords}),  # a bare number
    ]
    for data, rules in cases:
        result = VALIDATOR.validate(data, rules)
        codes = [issue.code for issue in result.errors]
        if expected is None:
            assert result.is_valid, (rules, codes)
        elif expected in ("not_finite", "integer_too_large"):
            assert codes == [expected], rules
        else:
            assert expected in codes, (rules, codes)


@pytest.mark.parametrize(
    "data",
    [
        {"\ud800": 1},
        {"x": "\udfff"},
        {"x": ["a", "b\ud800c"]},
        "\ud800",
        ["\udc00"],
        {"x": {"y\ud800": None}},
    ],
)
@pytest.mark.parametrize(
    "rules",
    [
        {"fields": {"x": {"type": "string", "pattern": "^a"}}},
        {"fields": {"x": {"type": "email"}}},
        {"fields": {"x": {"allowed": ["a"]}}},
        {"schema": {"properties": {"x": {"type": "string", "pattern": "a"}}}},
        {"schema": {"propertyNames": {"maxLength": 3}}},
        {"schema": {}},
        {"required_fields": []},
    ],
)
def test_lone_surrogates_are_an_issue_never_an_exception(data: Any, rules: Any) -> None:
    result = VALIDATOR.validate(data, rules)
    codes = {issue.code for issue in result.errors}
    if "schema" in rules or isinstance(data, dict):
        assert codes == {"invalid_unicode"}
    else:  # a vocabulary rule set checks mappings
        assert codes == {"not_a_mapping"}


def test_huge_ints_never_pass_a_bound() -> None:
    for value in (10**5000, -(10**5000), HUGE, -HUGE):
        for rules in (
            {"fields": {"x": {"type": "integer", "max": 0}}},
            {"fields": {"x": {"type": "integer", "min": 0}}},
            {"schema": {"properties": {"x": {"maximum": 0}}}},
        ):
            (issue,) = VALIDATOR.validate({"x": value}, rules).errors
            assert issue.code == "integer_too_large"
            assert f"at most {MAX_INT_DIGITS} digits" in issue.message
    # one digit fewer is compared exactly
    assert not VALIDATOR.validate({"x": HUGE - 1}, {"fields": {"x": {"max": 0}}}).is_valid
    assert VALIDATOR.validate({"x": HUGE - 1}, {"fields": {"x": {"min": 0}}}).is_valid


def test_a_lower_process_limit_lowers_the_cap() -> None:
    import sys

    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(1000)
    try:
        (issue,) = VALIDATOR.validate({"x": 10**1500}, {"fields": {"x": {"min": 0}}}).errors
        assert issue.code == "integer_too_large"
        assert "at most 1000 digits" in issue.message
    finally:
        sys.set_int_max_str_digits(before)


def test_rules_with_huge_ints_or_surrogates_are_rule_set_errors() -> None:
    for rules in (
        {"fields": {"x": {"type": "integer", "max": 10**5000}}},
        {"fields": {"x": {"allowed": [10**5000]}}},
        {"schema": {"maximum": 10**5000}},
        {"fields": {"x": {"type": "string", "pattern": "\ud800"}}},
        {"fields": {"\ud800": "string"}},
        {1: "a", "b": 2},
    ):
        with pytest.raises(RuleSetError):
            VALIDATOR.validate({"x": 1}, rules)
