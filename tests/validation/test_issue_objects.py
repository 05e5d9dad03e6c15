"""``ValidationIssue`` as a value: equality, hashing, unpacking, pickling, immutability, and
the planned path's lazily phrased messages (same text whenever and by whomever read)."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest

from coordination.validation import CoordinationValidator, ValidationIssue

RULES = {
    "name": "user_event",
    "fields": {
        "user_id": {"type": "string", "required": True, "min_length": 1},
        "action": {"type": "string", "required": True, "allowed": ["login", "logout"]},
        "password": {"type": "string", "min_length": 8},
        "tags": {"type": "string"},
    },
}
INVALID = {"user_id": "", "action": "jump", "password": "short"}
EXPECTED = [
    ("min_length", ("user_id",), "/user_id", "user_id: must have at least 1 character, got 0 ('')"),
    ("allowed", ("action",), "/action", "action: must be one of 'login', 'logout', got 'jump'"),
    ("min_length", ("password",), "/password",
     "password: must have at least 8 characters, got 5 ([redacted])"),
]  # fmt: skip


def _issues(data: dict[str, Any]) -> tuple[ValidationIssue, ...]:
    return CoordinationValidator(config={}).validate(data, RULES).errors


def test_issues_behave_as_the_tuple_they_hold() -> None:
    issues = _issues(INVALID)
    assert [(i.code, i.path, i.pointer, i.message) for i in issues] == EXPECTED
    first = issues[0]
    code, path, pointer, rule_set, message = first
    assert (code, path, pointer, rule_set, message) == (
        *EXPECTED[0][:3],
        "user_event",
        EXPECTED[0][3],
    )
    assert len(first) == 5
    assert first[0] == "min_length"
    assert first[4] == message
    eager = ValidationIssue(code, path, pointer, rule_set, message)
    assert eager == first
    assert hash(eager) == hash(first)
    assert repr(eager) == repr(first)
    assert str(first) == message
    assert [i.code for i in sorted(issues)] == ["allowed", "min_length", "min_length"]
    assert first != ValidationIssue(code, path, pointer, rule_set, message + "!")


def test_an_issue_is_immutable_and_pickles_its_text_not_its_value() -> None:
    issue = _issues(INVALID)[2]  # the password's: its value must never travel
    for name in ("code", "path", "pointer", "rule_set", "message"):
        with pytest.raises(AttributeError):
            setattr(issue, name, "x")
    data = pickle.dumps(issue)
    assert b"short" not in data
    assert pickle.loads(data) == issue
    assert "short" not in repr(issue)
    assert "short" not in str(issue.to_dict())


def test_a_lazily_phrased_message_is_the_same_for_every_thread() -> None:
    for _ in range(50):
        issues = _issues(INVALID)
        barrier = threading.Barrier(8)
        seen: list[list[str]] = []

        def read(
            issues: tuple[ValidationIssue, ...] = issues,
            barrier: threading.Barrier = barrier,
            seen: list[list[str]] = seen,
        ) -> None:
            barrier.wait()
            seen.append([issue.message for issue in issues])

        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert seen == [[text for *_, text in EXPECTED]] * 8


def test_a_container_value_is_phrased_at_once_not_when_read() -> None:
    validator = CoordinationValidator(config={})
    tags = ["a"]
    # not flat, so the structure walk runs first; the rule set's plan then reports the field
    result = validator.validate({"user_id": "u", "action": "login", "tags": tags}, RULES)
    tags.append("added later")
    (issue,) = result.errors
    assert issue.code == "type"
    assert issue.message == "tags: must be a string, got list ['a']"
