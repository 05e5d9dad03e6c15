"""``tree_checker``: the fast "nothing wrong here" walk agrees with ``check_structure``.

It may say False for a message ``check_structure`` accepts (then the slow walk runs), but
never True for one with an issue; on trees of the JSON types the two agree exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coordination.validation._limits import MessageLimits, check_structure, tree_checker

LIMITS = MessageLimits(max_depth=4, max_string_length=8, max_items=5)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["\ud800", "a\udfff", "é"]),
)
keys = st.one_of(st.text(max_size=6), st.sampled_from(["\ud834", "k"]), st.integers(0, 3))
# Big ints within the digit limit are fine but not "clean" (the slow walk measures them).
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["\ud800", "a\udfff", "é"]),
)
json_trees = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=7), st.dictionaries(st.text(max_size=6), inner, max_size=7)
    ),
    max_leaves=40,
)
odd_trees = st.recursive(
    st.one_of(scalars, st.just(b"bytes"), st.just(object())),
    lambda inner: st.one_of(
        st.lists(inner, max_size=7),
        st.tuples(inner, inner),
        st.dictionaries(keys, inner, max_size=7),
    ),
    max_leaves=40,
)


def issues(data: Any) -> list[Any]:
    return check_structure(data, LIMITS, rule_set=None, is_secret_path=lambda path: False)


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_trees, max_size=7))
def test_on_json_trees_the_two_walks_agree(data: dict[str, Any]) -> None:
    assert tree_checker(LIMITS)(data) == (not issues(data))


@settings(max_examples=120, deadline=None)
@given(st.dictionaries(keys, odd_trees, max_size=7))
def test_clean_is_never_said_of_a_message_with_an_issue(data: dict[Any, Any]) -> None:
    if tree_checker(LIMITS)(data):
        assert issues(data) == []


def test_a_cycle_is_not_clean() -> None:
    data: dict[str, Any] = {"a": []}
    data["a"].append(data)
    assert not tree_checker(LIMITS)(data)
    assert issues(data)


def test_the_values_budget_counts_every_value() -> None:
    limits = MessageLimits(max_depth=10, max_string_length=8, max_items=5)  # 50 values
    wide = {str(i): [1, 2, 3, 4] for i in range(5)}  # 1 + 5 + 20 = 26 values
    assert tree_checker(limits)(wide)
    deeper = {str(i): [[1, 2, 3, 4, 5]] * 2 for i in range(5)}  # 1 + 5 + 10 + 50 = 66
    assert not tree_checker(limits)(deeper)
    assert issues_with(limits, deeper)


def issues_with(limits: MessageLimits, data: Any) -> list[Any]:
    return check_structure(data, limits, rule_set=None, is_secret_path=lambda path: False)
