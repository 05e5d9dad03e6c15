"""An invalid event is dead-lettered, and what ``process_event`` raises is a ``ValueError``.

The spec's examples catch ``ValueError`` for a validation failure; the dead-letter
contract raises ``EventDeadLettered``. ``InvalidEvent`` is both.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coordination import EventDeadLettered, InvalidEvent, ValidationError
from coordination.integration import CoordinationEventProcessor

RULES = {"user_activity": {"required_fields": ["user_id", "action"]}}


def make() -> CoordinationEventProcessor:
    return CoordinationEventProcessor(
        dead_letter_path=":memory:", rules=RULES, config={"base_delay": 0.0, "max_retries": 0}
    )


def test_the_spec_catches_value_error_and_the_event_is_kept() -> None:
    processor = make()
    try:
        processor.process_event({"user_id": "123"}, "user_activity")
    except ValueError as exc:  # the spec's own except clause
        caught: Exception = exc
    else:
        raise AssertionError("an invalid event was processed")
    assert isinstance(caught, InvalidEvent)
    assert isinstance(caught, EventDeadLettered)
    assert isinstance(caught, ValidationError)
    assert [e.code for e in caught.errors] == ["required"]
    assert caught.errors[0].pointer == "/action"
    (letter,) = processor.dead_letters.list()
    assert letter.id == caught.dead_letter_id
    assert letter.reason == "invalid"
    assert "dead-lettered" in str(caught)
    assert "action" in str(caught)


def test_a_failing_handler_is_not_a_value_error() -> None:
    processor = make()

    @processor.on("user_activity")
    def fail(event: Any, event_type: str) -> None:
        raise RuntimeError("downstream is down")

    with pytest.raises(EventDeadLettered) as caught:
        processor.process_event({"user_id": "1", "action": "login"}, "user_activity")
    assert not isinstance(caught.value, ValueError)


def test_the_async_door_and_the_structure_check_raise_the_same() -> None:
    processor = make()
    with pytest.raises(InvalidEvent) as caught:
        asyncio.run(processor.aprocess_event({"user_id": "1"}, "user_activity"))
    assert caught.value.reason.startswith("invalid")
    # no rules for the type, but not a mapping of JSON values: still invalid, still kept
    with pytest.raises(ValueError, match="dead-lettered"):
        processor.process_event({"when": object()}, "other")
    assert [letter.reason for letter in processor.dead_letters.list()] == ["invalid", "invalid"]
